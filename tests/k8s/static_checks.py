"""Static checks of k8s/ and deploy/Dockerfile* (driven by tests/k8s/static_checks.sh).

One line per check: `[k8s] PASS name` or `[k8s] FAIL name` followed by the details. Exit 1 if any
check failed. Accepted findings come from tests/k8s/skips.yaml; an accepted finding that no
longer occurs fails too (stale entry), so the list stays true.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from k8stools import COMPONENTS, OVERLAYS, ROOT, render, render_with_components, tool  # noqa: E402

# Oldest Kubernetes the manifests support (preStop `sleep`, PodSecurity `restricted` as used
# here) and the newest the pinned kubernetes-validate knows.
K8S_VERSIONS = ["1.34.0", "1.37.0"]
DOCKERFILES = ["deploy/Dockerfile", "deploy/Dockerfile.cuda"]
# Custom resources kubernetes-validate has no schema for; checked by check_monitoring instead.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

results = {"pass": 0, "fail": 0}


def report(name, problems):
    if problems:
        results["fail"] += 1
        print(f"[k8s] FAIL {name}")
        for p in problems:
            for line in str(p).rstrip().splitlines():
                print(f"    {line}")
    else:
        results["pass"] += 1
        print(f"[k8s] PASS {name}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


def load_skips():
    doc = yaml.safe_load((ROOT / "tests/k8s/skips.yaml").read_text())
    problems = []
    for tool_name in ("checkov", "hadolint"):
        for e in doc.get(tool_name) or []:
            if not str(e.get("reason", "")).strip() or not e.get("id"):
                problems.append(f"{tool_name} entry {e!r}: needs an id and a reason")
    report("skips.yaml: every entry has an id and a reason", problems)
    return doc


def compare_findings(name, found, accepted, used):
    """found: set of (id, resource); accepted: list of skip entries. Marks used entries."""
    problems = []
    for check_id, resource, title in sorted(found):
        ok = False
        for i, e in enumerate(accepted):
            if e["id"] == check_id and (not e.get("resources") or resource in e["resources"]):
                used.add((i, check_id, resource))
                ok = True
        if not ok:
            problems.append(f"{check_id} {resource}: {title}")
    report(name, problems)


def check_yamllint():
    out = run([tool("yamllint"), "-c", "tests/k8s/yamllint.yaml", "--strict", "k8s/", "tests/k8s/"])
    report("yamllint k8s/ tests/k8s/", [out.stdout + out.stderr] if out.returncode else [])


def check_hadolint(skips):
    accepted = skips.get("hadolint") or []
    used = set()
    for df in DOCKERFILES:
        out = run([tool("hadolint"), "-f", "json", "--failure-threshold", "info", df])
        try:
            findings = json.loads(out.stdout or "[]")
        except json.JSONDecodeError:
            report(f"hadolint {df}", [out.stdout + out.stderr])
            continue
        found = {(f["code"], df, f"line {f['line']}: {f['message']}") for f in findings}
        compare_findings(f"hadolint {df}", found, accepted, used)
    return accepted, used


def checkov(path, framework):
    out = run([tool("checkov"), "-f", str(path), "--framework", framework, "--skip-download", "--quiet", "-o", "json"])
    try:
        doc = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov {path}: no JSON output\n{out.stdout}\n{out.stderr}")
    docs = doc if isinstance(doc, list) else [doc]
    found = set()
    for d in docs:
        summary = d.get("summary", {})
        if summary.get("parsing_errors"):
            raise RuntimeError(f"checkov {path}: {summary['parsing_errors']} parsing errors")
        if summary.get("resource_count", 1) == 0:
            raise RuntimeError(f"checkov {path}: scanned no resource")
        for f in d.get("results", {}).get("failed_checks", []):
            found.add((f["check_id"], f["resource"], f["check_name"]))
    return found


def validate_core(label, text, objs):
    """kubernetes-validate --strict on every core kind, for each supported version."""
    core = [o for o in objs if (o.get("apiVersion"), o.get("kind")) not in CUSTOM_KINDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(core, f)
        path = f.name
    try:
        for version in K8S_VERSIONS:
            out = run([tool("kubernetes-validate"), "--strict", "-k", version, path])
            lines = (out.stdout + out.stderr).splitlines()
            passed = [line for line in lines if " passed for resource " in line]
            bad = [line for line in lines if " passed for resource " not in line and line.strip()]
            problems = bad if (out.returncode or bad) else []
            if len(passed) != len(core):
                problems.append(f"{len(passed)} of {len(core)} objects validated")
            report(f"kubernetes-validate --strict {version} {label} ({len(core)} objects)", problems)
    finally:
        Path(path).unlink()


def metric_families():
    """Sample names the server exports, read from service/src/metrics.rs (prefix vericlip_;
    counters are sampled as NAME_total, histograms as NAME_bucket/_sum/_count)."""
    src = (ROOT / "service/src/metrics.rs").read_text()
    kinds = dict(re.findall(r"pub (\w+): (?:Family<\w+, )?(Counter|Gauge|Histogram)", src))
    names = set()
    for m in re.finditer(r'register\(\s*"([a-z_]+)"\s*,\s*"[^"]*"\s*,\s*([a-z_]+)\.clone\(\)', src, re.S):
        base, kind = f"vericlip_{m.group(1)}", kinds.get(m.group(2), "Gauge")
        if kind == "Counter":
            names.add(f"{base}_total")
        elif kind == "Histogram":
            names.update(f"{base}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(base)
    return names


def check_monitoring(service_objs):
    """The Prometheus Operator objects: kubernetes-validate has no schema for them, so check the
    fields they rely on, parse every PromQL expression, and look up every metric name."""
    import promql_parser

    label = "k8s/monitoring"
    try:
        text, objs = render(ROOT / "k8s/monitoring")
    except RuntimeError as e:
        report(f"render {label}", [e])
        return
    report(f"render {label} ({len(objs)} objects)", [])
    kinds = {(o.get("apiVersion"), o.get("kind")) for o in objs}
    report(f"{label}: only ServiceMonitor and PrometheusRule", [] if kinds <= CUSTOM_KINDS else [kinds - CUSTOM_KINDS])
    services = [o for o in service_objs if o["kind"] == "Service"]
    known = metric_families()
    problems = []
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["metadata"].get("namespace") != "vericlip":
            problems.append(f"{name}: namespace is not vericlip")
        spec = o.get("spec") or {}
        if o["kind"] == "ServiceMonitor":
            sel = spec.get("selector", {}).get("matchLabels") or {}
            matched = [s for s in services if sel and all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
            eps = spec.get("endpoints") or []
            if not matched or not eps:
                problems.append(f"{name}: selects no Service of the overlays or has no endpoints")
            for ep in eps:
                with_port = [s for s in matched if any(p.get("name") == ep.get("port") for p in s["spec"]["ports"])]
                if len(with_port) != 1:
                    problems.append(f"{name}: port {ep.get('port')!r} is on {len(with_port)} selected Services (want exactly 1)")
                if ep.get("path") != "/metrics":
                    problems.append(f"{name}: path {ep.get('path')!r}, the server serves /metrics")
        elif o["kind"] == "PrometheusRule":
            rules = [r for g in spec.get("groups") or [] for r in g.get("rules") or []]
            if not rules:
                problems.append(f"{name}: no rules")
            for r in rules:
                rname = r.get("alert") or r.get("record") or "?"
                expr = r.get("expr")
                if not r.get("alert") or not expr:
                    problems.append(f"{name}/{rname}: needs alert and expr")
                    continue
                try:
                    promql_parser.parse(expr)
                except Exception as e:  # the parser raises ValueError with its message
                    problems.append(f"{name}/{rname}: PromQL does not parse: {e}")
                if "for" in r and not re.fullmatch(r"(\d+[smhdwy])+", str(r["for"])):
                    problems.append(f"{name}/{rname}: bad duration for: {r['for']}")
                if (r.get("labels") or {}).get("severity") not in ("warning", "critical"):
                    problems.append(f"{name}/{rname}: severity must be warning or critical")
                for metric in set(re.findall(r"\bvericlip_[a-z_]+", expr)):
                    if metric not in known:
                        problems.append(f"{name}/{rname}: {metric} is not a metric of service/src/metrics.rs")
        else:
            problems.append(f"{name}: unexpected kind")
    report(f"{label}: ServiceMonitor matches the Service, rules parse (PromQL) and name real metrics", problems)


def main():
    skips = load_skips()
    check_yamllint()
    hadolint_accepted, hadolint_used = check_hadolint(skips)

    checkov_accepted = skips.get("checkov") or []
    checkov_used = set()
    for df in DOCKERFILES:
        try:
            compare_findings(f"checkov {df}", checkov(ROOT / df, "dockerfile"), checkov_accepted, checkov_used)
        except RuntimeError as e:
            report(f"checkov {df}", [e])

    try:
        render(ROOT / "k8s/base")
        report("render k8s/base (not an install target: overlays add storage class and memory)", [])
    except RuntimeError as e:
        report("render k8s/base", [e])

    targets = [(f"k8s/overlays/{o}", lambda o=o: render(ROOT / "k8s/overlays" / o)) for o in OVERLAYS]
    targets += [
        (f"k8s/overlays/{o} + components/{c}", lambda o=o, c=c: render_with_components(o, [c]))
        for o in OVERLAYS
        for c in COMPONENTS
    ]
    service_objs = []
    for label, fn in targets:
        try:
            text, objs = fn()
        except RuntimeError as e:
            report(f"render {label}", [e])
            continue
        report(f"render {label} ({len(objs)} objects)", [])
        if not service_objs:
            service_objs = objs  # the first overlay's Services, for the ServiceMonitor check
        validate_core(label, text, objs)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            compare_findings(f"checkov {label}", checkov(f.name, "kubernetes"), checkov_accepted, checkov_used)
        except RuntimeError as e:
            report(f"checkov {label}", [e])
        finally:
            Path(f.name).unlink()

    check_monitoring(service_objs)

    stale = []
    for tool_name, accepted, used in (
        ("checkov", checkov_accepted, checkov_used),
        ("hadolint", hadolint_accepted, hadolint_used),
    ):
        for i, e in enumerate(accepted):
            for res in e.get("resources") or [None]:
                if not any(u[0] == i and (res is None or u[2] == res) for u in used):
                    stale.append(f"{tool_name} {e['id']} {res or ''}: accepted but no longer found (remove it)")
    report("skips.yaml: no stale entries", stale)

    print(f"[k8s] static checks: {results['pass']} ok, {results['fail']} failing")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
