"""Static checks of k8s/ and deploy/Dockerfile* (driven by tests/k8s/static_checks.sh).

One line per check: `[k8s] PASS name` or `[k8s] FAIL name` followed by the details. Exit 1 if any
check failed. Accepted findings come from tests/k8s/skips.yaml; an accepted finding that no
longer occurs fails too (stale entry), so the list stays true.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from k8stools import (  # noqa: E402
    COMPONENT_RENDERS,
    OPERATOR_SAMPLE,
    OVERLAYS,
    ROOT,
    find,
    pod_specs,
    render,
    render_with_components,
    tool,
)

# Oldest Kubernetes the manifests support (preStop `sleep`, PodSecurity `restricted` as used
# here) and the newest the pinned kubernetes-validate knows.
K8S_VERSIONS = ["1.34.0", "1.37.0"]
DOCKERFILES = ["deploy/Dockerfile", "deploy/Dockerfile.cuda"]
# Custom resources kubernetes-validate has no schema for; checked structurally instead
# (check_monitoring, check_custom_resources).
MONITORING_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
CUSTOM_KINDS = MONITORING_KINDS | {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
}
# Kinds without a namespace (everything else an install renders must sit in the Deployment's).
CLUSTER_SCOPED_KINDS = {"Namespace", "RuntimeClass", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "PriorityClass"}
# gRPC services the server registers (server.rs), for GRPCRoute method matches.
GRPC_SERVICES = {"vericlip.v1.Vericlip", "grpc.health.v1.Health"}
# The driver library directories the GPU image and pod need (GKE; NVIDIA container toolkit).
DRIVER_LIB_DIRS = ["/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu"]

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
    report(f"{label}: only ServiceMonitor and PrometheusRule", [] if kinds <= MONITORING_KINDS else [kinds - MONITORING_KINDS])
    services = [o for o in service_objs if o["kind"] == "Service"]
    known = metric_families()
    problems = []
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["metadata"].get("namespace") != "vericlip":
            problems.append(f"{name}: namespace is not vericlip")
        if not (o["metadata"].get("labels") or {}).get("release"):
            problems.append(f"{name}: no release label (kube-prometheus-stack selects by it; the kustomization sets it)")
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
    check_scrape_on_admin(objs, service_objs)


def promql_problems(where, expr, known):
    import promql_parser

    problems = []
    try:
        promql_parser.parse(expr)
    except Exception as e:  # the parser raises ValueError with its message
        problems.append(f"{where}: PromQL does not parse: {e}")
    for metric in set(re.findall(r"\bvericlip_[a-z_]+", expr)):
        if metric not in known:
            problems.append(f"{where}: {metric} is not a metric of service/src/metrics.rs")
    return problems


def check_custom_resources(label, objs):
    """KEDA ScaledObjects and Gateway API GRPCRoutes (no schema in kubernetes-validate): what
    they point at exists in the same install, their queries parse and name real metrics."""
    problems = []
    known = metric_families()
    hpa_targets = [
        (o["spec"]["scaleTargetRef"].get("kind"), o["spec"]["scaleTargetRef"]["name"])
        for o in objs
        if o["kind"] == "HorizontalPodAutoscaler"
    ]
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        spec = o.get("spec") or {}
        if o["kind"] == "ScaledObject":
            ref = spec.get("scaleTargetRef") or {}
            kind = ref.get("kind", "Deployment")
            if not any(x["kind"] == kind and x["metadata"]["name"] == ref.get("name") for x in objs):
                problems.append(f"{name}: scaleTargetRef {kind}/{ref.get('name')} is not in the install")
            if (kind, ref.get("name")) in hpa_targets:
                problems.append(f"{name}: an HPA also scales {kind}/{ref.get('name')} (KEDA creates its own: they would fight)")
            lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            if not (1 <= lo <= hi):
                problems.append(f"{name}: replicas {lo}..{hi} (want 1 <= min <= max: never scaled to zero, a cold start loads a model)")
            fb = spec.get("fallback")
            if fb and not (lo <= fb.get("replicas", -1) <= hi):
                problems.append(f"{name}: fallback replicas {fb.get('replicas')} outside {lo}..{hi}")
            triggers = spec.get("triggers") or []
            if not triggers:
                problems.append(f"{name}: no triggers")
            # Both kinds of load: unary requests wait in the queue, streams hold a pod without
            # ever showing there.
            queries = " ".join((t.get("metadata") or {}).get("query", "") for t in triggers)
            # Each query is scoped to the ScaledObject's own namespace (query-namespace.yaml),
            # never a hard-coded one: in another namespace it would scale on someone else's pods,
            # or on none.
            own = o["metadata"].get("namespace")
            for t in triggers:
                q = (t.get("metadata") or {}).get("query", "")
                if t.get("type") != "prometheus":
                    continue
                found = re.findall(r'namespace\s*=~?\s*"([^"]*)"', q)
                if not found:
                    problems.append(f"{name}: query {q!r} is not scoped to a namespace (it would sum every install's pods)")
                for ns in found:
                    if ns != own:
                        problems.append(f"{name}: query {q!r} reads namespace {ns!r}, the ScaledObject is in {own!r} (hard-coded?)")
            for metric in ("vericlip_queue_depth", "vericlip_active_streams"):
                if metric not in queries:
                    problems.append(f"{name}: no trigger reads {metric}")
            for t in triggers:
                md = t.get("metadata") or {}
                if t.get("type") == "prometheus":
                    problems += promql_problems(f"{name} trigger", md.get("query", ""), known)
                    if "vericlip_" not in md.get("query", ""):
                        problems.append(f"{name}: the prometheus trigger reads none of the server's metrics")
                    try:
                        ok = float(md.get("threshold")) > 0
                    except (TypeError, ValueError):
                        ok = False
                    if not ok:
                        problems.append(f"{name}: threshold {md.get('threshold')!r} is not a positive number (a string)")
                    if not str(md.get("serverAddress", "")).startswith(("http://", "https://")):
                        problems.append(f"{name}: serverAddress {md.get('serverAddress')!r}")
                    if fb and t.get("metricType", "AverageValue") != "AverageValue":
                        problems.append(f"{name}: KEDA's fallback needs metricType AverageValue")
        elif o["kind"] == "GRPCRoute":
            if not spec.get("parentRefs"):
                problems.append(f"{name}: no parentRefs")
            for rule in spec.get("rules") or []:
                for m in rule.get("matches") or []:
                    svc = (m.get("method") or {}).get("service")
                    if svc not in GRPC_SERVICES:
                        problems.append(f"{name}: matches gRPC service {svc!r}, the server has {sorted(GRPC_SERVICES)}")
                for b in rule.get("backendRefs") or []:
                    services = [x for x in objs if x["kind"] == "Service" and x["metadata"]["name"] == b.get("name")]
                    ports = [p for x in services for p in x["spec"]["ports"] if p.get("port") == b.get("port")]
                    if len(ports) != 1 or ports[0].get("appProtocol") != "grpc":
                        problems.append(f"{name}: backendRef {b} is not one gRPC port of a Service in the install")
                if not rule.get("backendRefs"):
                    problems.append(f"{name}: a rule without backendRefs")
    kinds = {o["kind"] for o in objs if (o.get("apiVersion"), o.get("kind")) in CUSTOM_KINDS}
    report(f"{label}: custom resources {sorted(kinds) or '(none)'} point at objects of the install, queries parse", problems)


def container(objs, kind, name, cname):
    obj = find(objs, kind, name)
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else obj["spec"]["template"]["spec"]
    return next(c for c in (spec.get("initContainers") or []) + spec["containers"] if c["name"] == cname)


def image_name(ref):
    return ref.rsplit(":", 1)[0].split("@")[0] if ":" in ref.rsplit("/", 1)[-1] else ref.split("@")[0]


# The admin port (service/src/admin.rs): /healthz, /readyz, /metrics, plaintext, its own listener.
ADMIN_PORT = 9090
API_PORTS = {50051, 8080}
METRICS_NS_LABEL = ("vericlip.io/metrics", "true")


def check_scrape_on_admin(mon_objs, service_objs):
    """The ServiceMonitor scrapes the admin port over plain HTTP (the admin port has no TLS),
    through the one Service that carries it, whose admin port targets the containerPort 9090."""
    problems = []
    for ep in find(mon_objs, "ServiceMonitor", "vericlip-server")["spec"].get("endpoints") or []:
        if ep.get("port") != "admin":
            problems.append(f"endpoint scrapes port {ep.get('port')!r}, want admin (the API ports are not for Prometheus)")
        if ep.get("scheme", "http") != "http" or "tlsConfig" in ep:
            problems.append(f"endpoint scheme {ep.get('scheme')!r} / tlsConfig: the admin port is plaintext")
    with_admin = [s for s in service_objs if s["kind"] == "Service" and any(p.get("name") == "admin" for p in s["spec"]["ports"])]
    if [s["metadata"]["name"] for s in with_admin] != ["vericlip-server"]:
        problems.append(f"the admin port is on Services {[s['metadata']['name'] for s in with_admin]}, want only vericlip-server (not the clients' headless one)")
    for s in with_admin:
        port = next(p for p in s["spec"]["ports"] if p.get("name") == "admin")
        if (port.get("port"), port.get("targetPort")) != (ADMIN_PORT, "admin"):
            problems.append(f"Service/{s['metadata']['name']} admin port {port}: want port {ADMIN_PORT}, targetPort admin")
    report("k8s/monitoring: ServiceMonitor scrapes the admin port of vericlip-server over plain HTTP", problems)


def check_admin_port(label, objs):
    """Probes on the admin port (plain HTTP, so no component may switch them to HTTPS), the
    ConfigMap binds admin where the containerPort says, and the NetworkPolicy admits 9090 only
    from the metrics namespaces, which get no API port."""
    problems = []
    server = container(objs, "Deployment", "vericlip-server", "server")
    ports = {p["name"]: p["containerPort"] for p in server.get("ports") or []}
    if ports.get("admin") != ADMIN_PORT:
        problems.append(f"server containerPorts {ports}: want admin {ADMIN_PORT}")
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        hg = (server.get(kind) or {}).get("httpGet") or {}
        want_path = "/readyz" if kind == "readinessProbe" else "/healthz"
        if hg.get("port") != "admin" or hg.get("path") != want_path or hg.get("scheme", "HTTP") != "HTTP":
            problems.append(f"{kind} {hg}: want httpGet {want_path} on port admin, scheme HTTP")
    cm = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("vericlip-server-config")), None)
    admin_cfg = tomllib.loads(cm["data"]["config.toml"]).get("admin", {}) if cm else {}
    if admin_cfg.get("addr") != f"0.0.0.0:{ADMIN_PORT}":
        problems.append(f"config.toml [admin] addr {admin_cfg.get('addr')!r}: want 0.0.0.0:{ADMIN_PORT} (the probes' port)")
    pol = find(objs, "NetworkPolicy", "vericlip-server")["spec"]
    admin_rules, api_rules = [], []
    for rule in pol.get("ingress") or []:
        rports = {p.get("port") for p in rule.get("ports") or []}
        if not rule.get("ports") or not rule.get("from"):
            problems.append(f"NetworkPolicy rule {rule}: every rule names its ports and its sources")
            continue
        if ADMIN_PORT in rports or "admin" in rports:
            admin_rules.append(rule)
        if rports & API_PORTS:
            api_rules.append(rule)
        if rports - API_PORTS - {ADMIN_PORT}:
            problems.append(f"NetworkPolicy rule opens ports {sorted(map(str, rports - API_PORTS - {ADMIN_PORT}))} the server does not serve")
    for rule in admin_rules:
        for src in rule["from"]:
            ns = (src.get("namespaceSelector") or {}).get("matchLabels") or {}
            if set(src) != {"namespaceSelector"} or ns.get(METRICS_NS_LABEL[0]) != METRICS_NS_LABEL[1]:
                problems.append(f"port {ADMIN_PORT} admitted from {src}: want only namespaces labelled {'='.join(METRICS_NS_LABEL)}")
        if {p.get("port") for p in rule["ports"]} & API_PORTS:
            problems.append(f"the rule for port {ADMIN_PORT} also opens an API port: a Prometheus namespace could classify")
    if not admin_rules:
        problems.append(f"no rule admits port {ADMIN_PORT}: Prometheus cannot scrape")
    for rule in api_rules:
        for src in rule["from"]:
            labels = {**((src.get("podSelector") or {}).get("matchLabels") or {}), **((src.get("namespaceSelector") or {}).get("matchLabels") or {})}
            if METRICS_NS_LABEL[0] in labels:
                problems.append(f"an API port is admitted from {src}: the metrics namespaces must not classify")
    if not API_PORTS <= {p for r in api_rules for p in (x.get("port") for x in r["ports"])}:
        problems.append(f"the API ports {sorted(API_PORTS)} are not both admitted for clients")
    report(f"{label}: probes and config on the admin port {ADMIN_PORT} (HTTP), NetworkPolicy per port (9090 only for metrics namespaces)", problems)


def check_namespaces(label, objs):
    """Every namespaced object of an install sits in the Deployment's namespace: one left
    without a namespace lands in whatever namespace kubectl's context names, away from what it
    scales or routes to (a ScaledObject there scales nothing; a GRPCRoute routes nowhere)."""
    want = find(objs, "Deployment", "vericlip-server")["metadata"].get("namespace")
    problems = [] if want else ["Deployment/vericlip-server has no namespace"]
    for o in objs:
        if o["kind"] in CLUSTER_SCOPED_KINDS:
            continue
        got = o["metadata"].get("namespace")
        if got != want:
            problems.append(f"{o['kind']}/{o['metadata']['name']}: namespace {got!r}, the Deployment's is {want!r}")
    report(f"{label}: every namespaced object in the Deployment's namespace", problems)


def check_dockerfiles(objs):
    """Each image EXPOSEs every port the server container declares (the admin port 9090
    included: `docker run -P` and tools that read the image's metadata see it), and each base
    image is pinned by digest or is a build argument the operator pins (`--build-arg
    NAME=image@sha256:...`, documented in the Dockerfile)."""
    problems = []
    ports = {p["containerPort"] for p in container(objs, "Deployment", "vericlip-server", "server").get("ports") or []}
    for df in DOCKERFILES:
        text = (ROOT / df).read_text()
        exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in re.findall(r"\d+", line)}
        if not ports <= exposed:
            problems.append(f"{df}: EXPOSE {sorted(exposed)} lacks the container ports {sorted(ports - exposed)}")
        args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", text.split("\nFROM ", 1)[0], re.M))
        for ref in re.findall(r"^FROM\s+(\S+)", text, re.M):
            arg = re.fullmatch(r"\$\{?(\w+)\}?", ref)
            if "@sha256:" in ref:
                continue
            if not arg or arg.group(1) not in args:
                problems.append(f"{df}: FROM {ref} is neither pinned by digest nor a build argument declared before the first FROM")
            elif "--build-arg " + arg.group(1) + "=" not in text and "digest" not in text:
                problems.append(f"{df}: FROM {ref}: say how to pin {arg.group(1)} by digest")
    report("deploy/Dockerfile*: EXPOSE every container port, base images pinned by digest or pinnable build arguments", problems)


def check_registry_owner(app_objs):
    """k8s/storage/registry-owner (the one-time chown for NFS volumes that ignore fsGroup): a Job
    that mounts the registry claim where the pods do and hands its root to the uid and gid the
    pods run as (drift between the two would leave the registry unwritable again)."""
    label = "k8s/storage/registry-owner"
    try:
        text, objs = render(ROOT / label)
    except RuntimeError as e:
        report(f"render {label}", [e])
        return
    report(f"render {label} ({len(objs)} objects)", [])
    validate_core(label, text, objs)
    problems = []
    job = find(objs, "Job", "vericlip-registry-owner")
    spec = job["spec"]["template"]["spec"]
    c = spec["containers"][0]
    mount = next((m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/models"), None)
    vol = next((v for v in spec.get("volumes") or [] if mount and v["name"] == mount["name"]), {})
    if (vol.get("persistentVolumeClaim") or {}).get("claimName") != "vericlip-registry":
        problems.append(f"mounts {vol} at /models, want the claim vericlip-registry")
    pod_sc = find(app_objs, "Deployment", "vericlip-server")["spec"]["template"]["spec"]["securityContext"]
    want = f"chown {pod_sc['runAsUser']}:{pod_sc['fsGroup']} /models"
    if want not in " ".join(c.get("args") or []):
        problems.append(f"args {c.get('args')}: want `{want}` (the pods' runAsUser and fsGroup)")
    if "CHOWN" not in ((c.get("securityContext") or {}).get("capabilities") or {}).get("add", []):
        problems.append("no CHOWN capability")
    report(f"{label}: chowns the registry claim's root to the pods' uid/gid", problems)


def check_install(label, objs, overlay):
    """What every install needs (the storage stays out, arch selector, PDB policy) and, for the
    gpu overlay, what a GPU pool needs."""
    problems = []
    for o in objs:
        if o["kind"] in ("PersistentVolumeClaim", "Namespace"):
            problems.append(f"{o['kind']}/{o['metadata']['name']}: belongs in k8s/storage (`kubectl delete -k` of the app would delete it)")
    for what, spec in pod_specs(objs):
        if (spec.get("nodeSelector") or {}).get("kubernetes.io/arch") != "amd64":
            problems.append(f"{what}: no nodeSelector kubernetes.io/arch: amd64 (the images are x86-64 only)")
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            if c.get("imagePullPolicy") != "IfNotPresent":
                problems.append(f"{what}/{c['name']}: imagePullPolicy {c.get('imagePullPolicy')} (tags are immutable: IfNotPresent)")
    pdb = find(objs, "PodDisruptionBudget", "vericlip-server")["spec"]
    if pdb.get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
        problems.append("PodDisruptionBudget: unhealthyPodEvictionPolicy is not AlwaysAllow (unready pods block drains)")
    if overlay == "gpu":
        dep = find(objs, "Deployment", "vericlip-server")
        spec = dep["spec"]["template"]["spec"]
        for c in ("seed-registry", "server"):
            img = image_name(container(objs, "Deployment", "vericlip-server", c)["image"]).rsplit("/", 1)[-1]
            if img != "vericlip-server-cuda":
                problems.append(f"gpu: {c} runs {img}, want vericlip-server-cuda")
        img = image_name(container(objs, "CronJob", "vericlip-train", "train")["image"]).rsplit("/", 1)[-1]
        if img != "vericlip-server":
            problems.append(f"gpu: the CPU-only trainer runs {img}, want the CPU image vericlip-server")
        ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
        if (ru.get("maxSurge"), ru.get("maxUnavailable")) != (0, 1):
            problems.append(f"gpu: rollingUpdate {ru}: on a full GPU pool a surge pod never schedules (want maxSurge 0, maxUnavailable 1)")
        terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        keys = {e["key"] for t in terms for e in t.get("matchExpressions") or []}
        for k in ("cloud.google.com/gke-accelerator", "eks.amazonaws.com/nodegroup"):
            if k not in keys:
                problems.append(f"gpu: no node affinity term on {k}")
        if not any(t["kind"] == "ScaledObject" for t in objs) or any(t["kind"] == "HorizontalPodAutoscaler" for t in objs):
            problems.append("gpu: scales with a CPU HPA, not the KEDA ScaledObject on requests in progress")
        env = {e["name"]: e.get("value", "") for e in container(objs, "Deployment", "vericlip-server", "server").get("env") or []}
        for d in DRIVER_LIB_DIRS:
            if d not in env.get("LD_LIBRARY_PATH", "").split(":"):
                problems.append(f"gpu: LD_LIBRARY_PATH {env.get('LD_LIBRARY_PATH')!r} lacks the driver directory {d}")
    report(f"{label}: no storage objects, amd64 selector, IfNotPresent, PDB AlwaysAllow{', GPU pool contract' if overlay == 'gpu' else ''}", problems)


def check_storage():
    label = "k8s/storage"
    try:
        text, objs = render(ROOT / label)
    except RuntimeError as e:
        report(f"render {label}", [e])
        return None
    report(f"render {label} ({len(objs)} objects)", [])
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    want = [("Namespace", "vericlip"), ("PersistentVolumeClaim", "vericlip-dataset"), ("PersistentVolumeClaim", "vericlip-registry")]
    problems = [] if kinds == want else [f"holds {kinds}, want {want}"]
    for o in objs:
        if o["kind"] == "PersistentVolumeClaim" and not o["spec"].get("storageClassName"):
            problems.append(f"claim {o['metadata']['name']}: no storageClassName (the cluster default may be none, or unsuitable): name a placeholder to edit")
    claims = {c["persistentVolumeClaim"]["claimName"] for _, spec in pod_specs(render(ROOT / "k8s/overlays/cpu")[1]) for c in spec.get("volumes") or [] if "persistentVolumeClaim" in c}
    if not claims <= {n for k, n in kinds if k == "PersistentVolumeClaim"}:
        problems.append(f"the pods mount claims {sorted(claims)} that k8s/storage does not create")
    report(f"{label}: the namespace and every claim the pods mount, nothing else", problems)
    return text, objs


def check_operator_sample(app_objs, storage_objs):
    """The sample operator kustomization renders the images it names (both, where each belongs),
    its memory sizing and its storage class."""
    doc = yaml.safe_load((ROOT / OPERATOR_SAMPLE / "app/kustomization.yaml").read_text())
    named = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in doc["images"]}
    problems = []
    want = {
        ("Deployment", "vericlip-server", "server"): named["vericlip-server-cuda"],
        ("Deployment", "vericlip-server", "seed-registry"): named["vericlip-server-cuda"],
        ("CronJob", "vericlip-train", "train"): named["vericlip-server"],
    }
    for (kind, name, cname), ref in want.items():
        got = container(app_objs, kind, name, cname)["image"]
        if got != ref:
            problems.append(f"{kind}/{name}/{cname} runs {got}, the sample names {ref}")
    for what, spec in pod_specs(app_objs):
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            if c["image"] not in named.values():
                problems.append(f"{what}/{c['name']}: image {c['image']} is not one the sample names")
    server = container(app_objs, "Deployment", "vericlip-server", "server")
    env = {e["name"]: e.get("value") for e in server.get("env") or []}
    if (env.get("VERICLIP__LIMITS__MEMORY_BUDGET_MB"), server["resources"]["limits"].get("memory")) != ("4096", "6Gi"):
        problems.append(f"memory budget/limit {env.get('VERICLIP__LIMITS__MEMORY_BUDGET_MB')}/{server['resources']['limits'].get('memory')}, the sample sets 4096/6Gi")
    if server["resources"]["limits"].get("nvidia.com/gpu") != 1:
        problems.append("the sample's memory patch dropped the GPU limit")
    reg = find(storage_objs, "PersistentVolumeClaim", "vericlip-registry")["spec"]
    if reg.get("storageClassName") != "efs-sc" or reg.get("accessModes") != ["ReadWriteMany"]:
        problems.append(f"registry claim {reg}: the sample sets storageClassName efs-sc (ReadWriteMany kept)")
    data = find(storage_objs, "PersistentVolumeClaim", "vericlip-dataset")["spec"]
    if data.get("storageClassName") != "gp3":
        problems.append(f"dataset claim {data}: the sample sets storageClassName gp3")
    report(f"{OPERATOR_SAMPLE}: renders the images, memory and storage class it sets", problems)


def check_build_recipe():
    """scripts/build-image.sh with a stand-in engine: both images built from the right
    Dockerfile with a version+commit tag, and the `kustomize edit set image` line it prints,
    applied as kustomize applies it (an images: entry per name=ref), retargets every container of
    the gpu overlay; with no engine at all, a clear error."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="vericlip-engine-") as tmp:
        log = Path(tmp, "calls")
        shim = Path(tmp, "docker")
        shim.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 0\n')
        shim.chmod(0o755)
        env = {"PATH": f"{tmp}:/usr/bin:/bin", "HOME": tmp}
        out = run(["bash", "scripts/build-image.sh", "--registry", "registry.example.com/ml"], env=env)
        calls = log.read_text().splitlines() if log.exists() else []
        builds = [c for c in calls if c.startswith("build ")]
        version = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
        commit = run(["git", "rev-parse", "--short=7", "HEAD"]).stdout.strip()
        tag_re = re.escape(f"{version}-{commit}") + r"(-dirty\.[0-9a-f]{8})?"
        for df, name in (("deploy/Dockerfile", "vericlip-server"), ("deploy/Dockerfile.cuda", "vericlip-server-cuda")):
            if not any(re.search(rf"-f {re.escape(df)} -t registry\.example\.com/ml/{name}:{tag_re} \.$", b) for b in builds):
                problems.append(f"no build of {name} from {df} with tag {version}-{commit}[-dirty.HASH]: {builds}")
        line = next((ln for ln in out.stdout.splitlines() if "kustomize edit set image" in ln), "")
        pairs = dict(p.split("=", 1) for p in line.split("set image", 1)[-1].split()) if line else {}
        if out.returncode or set(pairs) != {"vericlip-server", "vericlip-server-cuda"}:
            problems.append(f"exit {out.returncode}, printed {line!r}\n{out.stderr}")
        else:
            kdir = Path(tmp, "operator")
            kdir.mkdir()
            images = [{"name": n, "newName": r.rsplit(":", 1)[0], "newTag": r.rsplit(":", 1)[1]} for n, r in pairs.items()]
            doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                   "resources": [os.path.relpath(ROOT / "k8s/overlays/gpu", kdir)], "images": images}
            Path(kdir, "kustomization.yaml").write_text(yaml.safe_dump(doc))
            _, objs = render(kdir)
            got = {(what, c["name"]): c["image"] for what, spec in pod_specs(objs) for c in (spec.get("initContainers") or []) + spec["containers"]}
            want = {
                ("Deployment/vericlip-server", "seed-registry"): pairs["vericlip-server-cuda"],
                ("Deployment/vericlip-server", "server"): pairs["vericlip-server-cuda"],
                ("CronJob/vericlip-train", "train"): pairs["vericlip-server"],
            }
            if got != want:
                problems.append(f"the printed line retargets {got}, want {want}")
        none = run(["bash", "scripts/build-image.sh"], env={"PATH": "/nonexistent:/usr/bin:/bin", "HOME": tmp})
        if none.returncode == 0 or "no usable container engine" not in none.stderr:
            if not Path("/usr/bin/docker").exists() and not Path("/usr/bin/podman").exists():
                problems.append(f"without an engine: exit {none.returncode}, {none.stderr!r}")
    report("scripts/build-image.sh: both images, version+commit tag, the printed set-image line retargets an install", problems)


def check_hpa_migration(rendered):
    """docs/OPERATIONS.md's move of a running CPU install to KEDA, its commands taken from the
    page and played against the rendered manifests: `kubectl apply -k` of the overlay with the
    component (no pruning: the old HPA stays) and KEDA's own HPA (`keda-hpa-<ScaledObject>`),
    then the documented `kubectl delete hpa ...`; the documented `kubectl get hpa -n NS` must
    then list only KEDA's, in the Deployment's namespace."""
    before = rendered.get("k8s/overlays/cpu")
    after = rendered.get("k8s/overlays/cpu + components/keda-autoscaling")
    if before is None or after is None:
        report("docs/OPERATIONS.md HPA -> KEDA migration commands", ["the cpu overlay or its KEDA render is missing"])
        return
    docs = (ROOT / "docs/OPERATIONS.md").read_text()
    at = docs.find("- Moving a running CPU install to KEDA:")
    bullet = " ".join(docs[at:docs.find("\n- ", at + 1)].split()) if at >= 0 else ""
    problems = [] if bullet else ["the step 'Moving a running CPU install to KEDA' is gone from docs/OPERATIONS.md"]
    deletes = re.findall(r"`kubectl delete hpa (\S+) -n (\S+)`", bullet)
    gets = re.findall(r"`kubectl get hpa -n (\S+)`", bullet)
    if not deletes or not gets:
        problems.append(f"the step names no `kubectl delete hpa NAME -n NS` or `kubectl get hpa -n NS`: {bullet!r}")
    hpas = lambda objs: {(o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs if o["kind"] == "HorizontalPodAutoscaler"}
    cluster = hpas(before) | hpas(after)  # apply without pruning
    for o in after:
        if o["kind"] == "ScaledObject":
            cluster.add((f"keda-hpa-{o['metadata']['name']}", o["metadata"].get("namespace")))
            if f"`keda-hpa-{o['metadata']['name']}`" not in bullet:
                problems.append(f"the step does not name KEDA's HPA keda-hpa-{o['metadata']['name']}")
    for name, ns in deletes:
        if (name, ns) not in cluster:
            problems.append(f"`kubectl delete hpa {name} -n {ns}`: no such HPA in the install (NotFound)")
        cluster.discard((name, ns))
    deployment_ns = find(after, "Deployment", "vericlip-server")["metadata"].get("namespace")
    for ns in gets:
        if ns != deployment_ns:
            problems.append(f"`kubectl get hpa -n {ns}`: the install is in {deployment_ns!r}")
        listed = sorted(n for n, n_ns in cluster if n_ns == ns)
        if not listed or not all(n.startswith("keda-hpa-") for n in listed):
            problems.append(f"`kubectl get hpa -n {ns}` would list {listed}, not only KEDA's")
    report("docs/OPERATIONS.md HPA -> KEDA migration commands, played against the cpu overlay and its KEDA render", problems)


def render_in_namespace(overlay, namespace):
    """An operator's kustomization that moves an overlay to another namespace, as
    docs/OPERATIONS.md ("Scaling on load") says: `namespace:` and the KEDA component's
    query-namespace.yaml copied beside it as a replacement."""
    with tempfile.TemporaryDirectory(prefix="vericlip-kustomize-ns-") as tmp:
        src = ROOT / "k8s/components/keda-autoscaling/query-namespace.yaml"
        Path(tmp, src.name).write_text(src.read_text())
        doc = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": [os.path.relpath(ROOT / "k8s/overlays" / overlay, tmp)],
            "replacements": [{"path": src.name}],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(doc))
        return render(tmp)


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

    targets = [(f"k8s/overlays/{o}", o, lambda o=o: render(ROOT / "k8s/overlays" / o)) for o in OVERLAYS]
    targets += [
        (f"k8s/overlays/{o} + " + " + ".join(f"components/{c}" for c in cs), o, lambda o=o, cs=cs: render_with_components(o, cs))
        for o, cs in COMPONENT_RENDERS
    ]
    targets.append((f"{OPERATOR_SAMPLE}/app", "gpu", lambda: render(ROOT / OPERATOR_SAMPLE / "app")))
    moved = "k8s/overlays/gpu moved to namespace team-a (query-namespace.yaml)"
    targets.append((moved, "gpu", lambda: render_in_namespace("gpu", "team-a")))
    service_objs = []
    rendered = {}
    storage = check_storage()
    if storage:
        validate_core("k8s/storage", *storage)
    for label, overlay, fn in targets:
        try:
            text, objs = fn()
        except RuntimeError as e:
            report(f"render {label}", [e])
            continue
        report(f"render {label} ({len(objs)} objects)", [])
        rendered[label] = objs
        if not service_objs:
            service_objs = objs  # the first overlay's Services, for the ServiceMonitor check
        validate_core(label, text, objs)
        check_custom_resources(label, objs)
        check_namespaces(label, objs)
        check_install(label, objs, overlay)
        check_admin_port(label, objs)
        if label == moved:
            continue  # the gpu overlay's objects, checked by checkov above (its skips name the namespace)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            compare_findings(f"checkov {label}", checkov(f.name, "kubernetes"), checkov_accepted, checkov_used)
        except RuntimeError as e:
            report(f"checkov {label}", [e])
        finally:
            Path(f.name).unlink()

    check_hpa_migration(rendered)
    check_monitoring(service_objs)
    check_dockerfiles(service_objs)
    check_registry_owner(service_objs)
    try:
        _, sample_storage = render(ROOT / OPERATOR_SAMPLE / "storage")
        report(f"render {OPERATOR_SAMPLE}/storage", [])
        if f"{OPERATOR_SAMPLE}/app" in rendered:
            check_operator_sample(rendered[f"{OPERATOR_SAMPLE}/app"], sample_storage)
    except RuntimeError as e:
        report(f"render {OPERATOR_SAMPLE}/storage", [e])
    check_build_recipe()

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
