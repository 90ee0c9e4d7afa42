"""Vericlip (Rust) vs the reference Python server (bench/python_server/server.py), side by side:
same model version, same clips, same load generator (`vericlip bench`). Run by
scripts/bench_vs_python.sh.

The model version is explicit (`--version`, default the registry's highest): the Rust server is
pinned to it (`[registry.pin]` in a temporary config file), the Python server loads it, and both
must answer with it. With `--baseline-bin` a second Rust server binary (e.g. built from an
earlier commit) runs in the same session, so before/after ratios come from one run.

For each server in turn: start it on 127.0.0.1, wait until it serves, classify the clips once with
`vericlip classify --json` (the score check), warm up for a second, then for each concurrency
level run `vericlip bench CLIPS --concurrency L --seconds S --json` and read the server's CPU time
(utime + stime, and cutime + cstime, of the server process and, for Python, every worker process)
from /proc/PID/stat before and after the level; CPU per clip = that difference / requests served.
For Rust servers the mean ONNX Runtime batch over the level comes from /metrics
(`batch_size` histogram). Then stop the server with SIGTERM. Prints the table, writes it as JSON
to --out, exits 1 when the scores disagree by more than --tolerance or a server fails.

Only the standard library: runs under any Python 3.8+.
"""

import argparse
import glob
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of one process (all its threads; waited-for children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17.
    return sum(int(x) for x in fields[11:15])


def machine_busy_ticks() -> int:
    """All CPUs' non-idle time (/proc/stat `cpu` line, without idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def cpu_ticks(pids):
    return {pid: proc_cpu_ticks(pid) for pid in pids}


def batch_sums(http_addr):
    """(sum, count) of the Rust server's `batch_size` histogram from /metrics, or None."""
    if not http_addr:
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    got = {}
    for line in text.splitlines():
        m = re.match(r"^\w*batch_size_(sum|count)\s+(\S+)", line)
        if m:
            got[m.group(1)] = float(m.group(2))
    return (got["sum"], got["count"]) if len(got) == 2 else None


def registry_versions(registry, name):
    base = os.path.join(registry, name)
    return sorted(int(d) for d in os.listdir(base)
                  if d.isdigit() and os.path.isfile(os.path.join(base, d, "model.onnx")))


class Server:
    def __init__(self, name, argv, env, ready_re, tmp):
        self.name = name
        self.out_path = os.path.join(tmp, f"{name}.out")
        self.err_path = os.path.join(tmp, f"{name}.err")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=open(self.out_path, "w"),
                                     stderr=open(self.err_path, "w"), stdin=subprocess.DEVNULL)
        self.ready_re = ready_re
        self.match = None

    def wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path) as f:
                m = re.search(self.ready_re, f.read(), re.M)
            if m:
                self.match = m
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        with open(self.err_path) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"{self.name} server did not become ready (exit {self.proc.returncode}):\n{tail}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name}: no exit {timeout} s after SIGTERM, killing")
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def run_client(client, addr, args, timeout=120):
    r = subprocess.run([client, "--addr", f"http://{addr}", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"vericlip {' '.join(args[:1])} against {addr} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def scores(client, addr, clips):
    """{file: (fake_score, [segment scores], verdict)} as the server answers `vericlip classify`."""
    out = json.loads(run_client(client, addr, ["classify", "--json", *clips]))
    res = {}
    for r in out:
        if "error" in r:
            raise SystemExit(f"{addr}: {r['file']}: {r['error']}")
        res[r["file"]] = (r["fake_score"], [s["fake_score"] for s in r["segments"]], r["verdict"], r["model_version"])
    return res


def bench_level(client, addr, clips, level, seconds, n_clients, pids, http_addr=None):
    """One concurrency level: n_clients load-generator processes at level/n_clients each."""
    per = [level // n_clients + (1 if i < level % n_clients else 0) for i in range(n_clients)]
    per = [c for c in per if c > 0]
    batches0 = batch_sums(http_addr)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_ticks(pids)
    busy0 = machine_busy_ticks()
    t0 = time.monotonic()
    procs = [subprocess.Popen([client, "--addr", f"http://{addr}", "bench", *clips, "--concurrency", str(c),
                               "--seconds", str(seconds), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in per]
    outs = [p.communicate(timeout=seconds + 120) for p in procs]
    wall = time.monotonic() - t0
    after = cpu_ticks(pids)
    busy1 = machine_busy_ticks()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    batches1 = batch_sums(http_addr)
    mean_batch = None
    if batches0 and batches1 and batches1[1] > batches0[1]:
        mean_batch = (batches1[0] - batches0[0]) / (batches1[1] - batches0[1])
    rows = []
    for p, (o, e) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"vericlip bench against {addr} failed ({p.returncode}): {e.strip()}")
        rows.append(json.loads(o)[0])
    clips_ok = sum(r["clips"] for r in rows)
    errors = {}
    for r in rows:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    served = clips_ok + sum(errors.values())
    cpu = {pid: after[pid] - before[pid] for pid in pids}
    client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {
        "concurrency": level,
        "clients": len(rows),
        "clips": clips_ok,
        "errors": errors,
        "clips_per_second": sum(r["clips_per_second"] for r in rows),
        # One client: its exact percentiles. Several: clip-weighted mean of p50s, max of p99s.
        "p50_ms": sum(r["p50_ms"] * r["clips"] for r in rows) / max(clips_ok, 1),
        "p99_ms": max(r["p99_ms"] for r in rows),
        "max_ms": max(r["max_ms"] for r in rows),
        "wall_seconds": wall,
        "server_cpu_ticks": cpu,
        "server_cpu_seconds": sum(cpu.values()) / CLK_TCK,
        "server_cpu_us_per_clip": sum(cpu.values()) / CLK_TCK * 1e6 / max(served, 1),
        "client_cpu_us_per_clip": client_cpu * 1e6 / max(served, 1),
        "mean_batch": mean_batch,
        # Everything else the machine ran meanwhile (other users' jobs): 0 on a quiet machine.
        "other_cpu_seconds": max((busy1 - busy0 - sum(cpu.values())) / CLK_TCK - client_cpu, 0.0),
    }


def profile(args, kind, addr, clips, pids, http_addr=None):
    """An extra, unmeasured level at the highest concurrency with `perf record` on the server
    processes; writes perf's report by shared object and by symbol into --profile DIR."""
    os.makedirs(args.profile, exist_ok=True)
    data = os.path.join(args.profile, f"{kind}.perf.data")
    level = max(args.levels)
    rec = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", data, "-p", ",".join(map(str, pids))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    try:
        bench_level(args.client_bin, addr, clips, level, min(args.seconds, 5.0), min(args.clients, level), pids, http_addr)
    finally:
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=60)
    if rec.returncode not in (0, -signal.SIGINT):
        log(f"{kind}: perf record failed ({rec.returncode}): {err.strip()[-500:]}")
        return None
    reports = {}
    for sort in ("dso", "symbol"):
        out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                              "--percent-limit", "1", "--sort", sort], capture_output=True, text=True).stdout
        path = os.path.join(args.profile, f"{kind}.by-{sort}.txt")
        with open(path, "w") as f:
            f.write(out)
        lines = [re.sub(r"\s+", " ", re.sub(r"(\s+-)+\s*$", "", ln)).strip() for ln in out.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        reports[sort] = lines[:15]
        log(f"{kind}: perf by {sort} (top):\n  " + "\n  ".join(reports[sort][:10]))
    return reports


class Run:
    """One server under test: `kind` rust or python, `label` its name in the report."""

    def __init__(self, label, kind, args, clips, tmp, server_bin=None):
        self.label, self.kind, self.args, self.clips = label, kind, args, clips
        env = dict(os.environ)
        self.http_addr = None
        if kind == "rust":
            config = os.path.join(tmp, f"{label}.toml")
            with open(config, "w") as f:
                f.write(f'[registry.pin]\n"{args.model}" = {args.version}\n')
            env.update({
                "VERICLIP__GRPC__ADDR": f"127.0.0.1:{free_port()}",
                "VERICLIP__HTTP__ADDR": f"127.0.0.1:{free_port()}",
                "VERICLIP__ADMIN__ADDR": "127.0.0.1:0",
                "VERICLIP__REGISTRY__PATH": args.registry,
            })
            env.update(dict(kv.split("=", 1) for kv in args.rust_env))
            env.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".vendor/onnxruntime/libonnxruntime.so.1.31.1"))
            self.srv = Server(label, [server_bin, "--config", config], env,
                              r"^vericlip-server listening grpc=(\S+)(?: http=(\S+))?", tmp)
            extra = f", env {' '.join(args.rust_env)}" if args.rust_env else ""
            shown = os.path.relpath(server_bin, ROOT) if server_bin.startswith(ROOT) else server_bin
            self.desc = f"{shown} (release, defaults{extra})"
        else:
            self.addr = f"127.0.0.1:{free_port()}"
            self.srv = Server(label, [args.python, os.path.join(ROOT, "bench/python_server/server.py"), "--addr", self.addr,
                                      "--workers", str(args.workers), "--threads", str(args.threads),
                                      "--registry", args.registry, "--model", args.model, "--version", str(args.version),
                                      "--tail-rule", args.tail_rule,
                                      *([] if args.cache_filterbanks else ["--no-cache-filterbanks"])], env,
                              r"^ready pids=(\S+)", tmp)
            self.desc = (f"bench/python_server/server.py ({args.workers} processes x {args.threads} threads, so_reuseport, "
                         f"filter banks {'cached' if args.cache_filterbanks else 'rebuilt per call'})")
        self.result = {"kind": kind, "server": self.desc, "levels": []}

    def ready(self):
        """Waits until it serves; checks scores and the served version; warms up."""
        args = self.args
        if self.kind == "rust":
            m = self.srv.wait_ready(120)
            self.addr, self.http_addr = m.group(1), m.group(2)
            for _ in range(300):  # listening, then the model loads: wait for SERVING
                if subprocess.run([args.client_bin, "--addr", f"http://{self.addr}", "health"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            self.pids = [self.srv.proc.pid]
        else:
            m = self.srv.wait_ready(300)
            self.pids = [self.srv.proc.pid] + [int(p) for p in m.group(1).split(",")]
        log(f"{self.label}: serving on {self.addr} (pids {self.pids})")
        self.result.update({"addr": self.addr, "pids": self.pids})
        self.result["scores"] = scores(args.client_bin, self.addr, self.clips)
        served = {v[3] for v in self.result["scores"].values()}
        if served != {args.version}:
            raise SystemExit(f"{self.label} answered with model version(s) {sorted(served)}, not {args.version}")
        run_client(args.client_bin, self.addr, ["bench", *self.clips, "--concurrency", "4", "--seconds", "1", "--json"])

    def level(self, level):
        args = self.args
        row = bench_level(args.client_bin, self.addr, self.clips, level, args.seconds, min(args.clients, level),
                          self.pids, self.http_addr)
        shares = "/".join(f"{t / max(sum(row['server_cpu_ticks'].values()), 1):.0%}" for t in row["server_cpu_ticks"].values())
        batch = f", mean batch {row['mean_batch']:.2f}" if row["mean_batch"] else ""
        log(f"{self.label}: c={level}: {row['clips_per_second']:.0f} clips/s, p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, {row['server_cpu_us_per_clip']:.0f} us CPU/clip (per pid: {shares}){batch}; "
            f"client {row['client_cpu_us_per_clip']:.0f} us CPU/clip; other load {row['other_cpu_seconds']:.1f} CPU-s")
        row["server_cpu_ticks"] = {str(k): v for k, v in row["server_cpu_ticks"].items()}
        self.result["levels"].append(row)

    def stop(self):
        self.result["exit_code"] = self.srv.stop()
        log(f"{self.label}: stopped (exit {self.result['exit_code']})")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    global CLK_TCK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--client-bin", required=True)
    ap.add_argument("--python", required=True, help="interpreter of the Python server (its venv)")
    ap.add_argument("--clk-tck", type=int, default=os.sysconf("SC_CLK_TCK"))
    ap.add_argument("--registry", default=os.path.join(ROOT, "models"))
    ap.add_argument("--model", default="vericlip-lstm")
    ap.add_argument("--version", type=int, default=0,
                    help="model version both servers serve (default: the registry's highest)")
    ap.add_argument("--baseline-bin", metavar="PATH",
                    help="a second vericlip-server binary (e.g. an earlier commit's) measured in the same run")
    ap.add_argument("--baseline-label", default="before", help="its name in the report")
    ap.add_argument("--rust-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for the Rust server(s), e.g. VERICLIP__RUNTIME__SESSIONS=1 (repeatable)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2, help="Python server processes")
    ap.add_argument("--threads", type=int, default=4, help="Python server threads per process")
    ap.add_argument("--clients", type=int, default=1,
                    help="load-generator processes per level (each its own HTTP/2 connection)")
    ap.add_argument("--no-cache-filterbanks", dest="cache_filterbanks", action="store_false",
                    help="Python server: rebuild librosa's filter banks per call, as the reference does")
    ap.add_argument("--tail-rule", choices=["end-aligned", "padded"], default="end-aligned",
                    help="Python server: which of the Rust tail rules to mirror (see server.py)")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--only", help="comma list of the servers to run: rust, python, and the baseline's label")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--profile", metavar="DIR",
                    help="after the measured levels, one more at the highest concurrency under `perf record`; reports into DIR")
    args = ap.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds like an error, so the servers are still stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    CLK_TCK = args.clk_tck
    args.levels = [int(x) for x in args.concurrency.split(",")]
    clips = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "models/samples/*/*.wav")))
    if not clips:
        raise SystemExit("no clips under models/samples/")
    versions = registry_versions(args.registry, args.model)
    if not versions:
        raise SystemExit(f"no versions of {args.model} under {args.registry}")
    if args.version == 0:
        args.version = versions[-1]
    elif args.version not in versions:
        raise SystemExit(f"{args.model} has no version {args.version} (versions: {versions})")
    with open(os.path.join(args.registry, args.model, str(args.version), "manifest.json")) as f:
        manifest = json.load(f)
    spec = manifest["feature_spec"]
    n_features = manifest["input"]["shape"][-1]
    kinds = [k for k in ("n_lfcc", "deltas") if spec.get(k)]
    model_desc = (f"{args.model} v{args.version} ({n_features} features per frame"
                  f"{': seed spec' if not kinds else ' with ' + ', '.join(f'{k}={spec[k]}' for k in kinds)}; "
                  f"registry versions {versions})")
    log(f"model: {model_desc}")

    servers = [("rust", "rust", args.server_bin)]
    if args.baseline_bin:
        servers.append((args.baseline_label, "rust", args.baseline_bin))
    servers.append(("python", "python", None))
    if args.only:
        wanted = set(args.only.split(","))
        servers = [s for s in servers if s[0] in wanted]

    global LOADAVG_AT_START
    LOADAVG_AT_START = os.getloadavg()[0]
    started = time.time()
    results = {}
    # All servers run at once (an idle one costs nothing) and the levels go round-robin over
    # them, so load from other jobs on a shared machine drifts over all of them alike.
    with tempfile.TemporaryDirectory(prefix="vericlip-bench-") as tmp:
        runs = []
        try:
            for label, kind, binary in servers:
                runs.append(Run(label, kind, args, clips, tmp, binary))
            for r in runs:
                r.ready()
            for level in args.levels:
                for r in runs:
                    r.level(level)
            if args.profile:
                for r in runs:
                    r.result["profile"] = profile(args, r.label, r.addr, clips, r.pids, r.http_addr)
        finally:
            for r in runs:
                r.stop()
                results[r.label] = r.result

    ok = all(r["exit_code"] == 0 for r in results.values())
    agreement = None
    if "rust" in results and "python" in results:
        rs, py = results["rust"]["scores"], results["python"]["scores"]
        clip_diff = max(abs(rs[f][0] - py[f][0]) for f in clips)
        seg_diff = max(max((abs(a - b) for a, b in zip(rs[f][1], py[f][1])), default=0.0) for f in clips)
        same_segments = all(len(rs[f][1]) == len(py[f][1]) for f in clips)
        same_verdicts = all(rs[f][2] == py[f][2] for f in clips)
        agreement = {"max_clip_score_diff": clip_diff, "max_segment_score_diff": seg_diff,
                     "same_segment_counts": same_segments, "same_verdicts": same_verdicts,
                     "tolerance": args.tolerance,
                     "ok": same_segments and same_verdicts and max(clip_diff, seg_diff) <= args.tolerance}
        ok = ok and agreement["ok"]

    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "clk_tck": CLK_TCK,
                    "kernel": platform.release(), "loadavg_at_start": LOADAVG_AT_START},
        "model": {"name": args.model, "version": args.version, "n_features": n_features, "feature_spec": spec},
        "clips": clips,
        "seconds_per_level": args.seconds,
        "clients_per_level": args.clients,
        "agreement": agreement,
        "results": results,
        "table": [],
    }
    print()
    print(f"model {model_desc}")
    print(f"{len(clips)} clips round-robin, {args.seconds:g} s per level, load generator `vericlip bench` "
          f"({args.clients} process(es) per level) on the same machine; {os.cpu_count()} x {cpu_model()}")
    for label, r in results.items():
        print(f"  {label}: {r['server']}")
    if agreement:
        print(f"scores: max |rust - python| = {agreement['max_clip_score_diff']:.2e} (clip), "
              f"{agreement['max_segment_score_diff']:.2e} (segment); verdicts "
              f"{'agree' if agreement['same_verdicts'] else 'DIFFER'}; "
              f"{'OK' if agreement['ok'] else 'FAILED'} (tolerance {args.tolerance:g})")
    labels = list(results)
    by = {lab: {r["concurrency"]: r for r in results[lab].get("levels", [])} for lab in labels}
    nan = float("nan")
    g = lambda d, k: d.get(k, nan) if d.get(k) is not None else nan  # noqa: E731
    hdr = f"{'conc':>4}"
    for lab in labels:
        hdr += f" | {lab[:10] + ' clips/s':>18} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/clip':>11}"
        if results[lab]["kind"] == "rust":
            hdr += f" {'batch':>5}"
    rust_labels = [lab for lab in labels if results[lab]["kind"] == "rust"]
    if "python" in labels:
        hdr += "".join(f" | {'CPU py/' + lab[:8]:>15}" for lab in rust_labels)
    print(hdr)
    print("-" * len(hdr))
    for level in args.levels:
        line = f"{level:>4}"
        row = {"concurrency": level}
        for lab in labels:
            d = by[lab].get(level, {})
            line += (f" | {g(d, 'clips_per_second'):>18.0f} {g(d, 'p50_ms'):>7.2f} {g(d, 'p99_ms'):>7.2f} "
                     f"{g(d, 'server_cpu_us_per_clip'):>11.0f}")
            if results[lab]["kind"] == "rust":
                line += f" {g(d, 'mean_batch'):>5.2f}"
            row[lab] = {k: d.get(k) for k in ("clips_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_clip",
                                              "mean_batch", "errors")}
        if "python" in labels:
            p = by["python"].get(level, {})
            for lab in rust_labels:
                cx = g(p, "server_cpu_us_per_clip") / g(by[lab].get(level, {}), "server_cpu_us_per_clip")
                line += f" | {cx:>14.1f}x"
                row[f"cpu_per_clip_ratio_python_over_{lab}"] = cx
                row[f"throughput_ratio_{lab}_over_python"] = (g(by[lab].get(level, {}), "clips_per_second")
                                                              / g(p, "clips_per_second"))
        print(line)
        report["table"].append(row)
    other = {k: round(sum(r["other_cpu_seconds"] for r in v.get("levels", [])), 1) for k, v in results.items()}
    print(f"other processes' CPU during the measured levels (0 on a quiet machine): {other} CPU-s; "
          f"load average at start {LOADAVG_AT_START:.2f}")
    errs = {k: sum(sum(r["errors"].values()) for r in v.get("levels", [])) for k, v in results.items()}
    print(f"errors: {errs}; server exit codes: { {k: v['exit_code'] for k, v in results.items()} }")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2, allow_nan=True)
        print(f"wrote {args.out}")
    sys.exit(0 if ok and not any(errs.values()) else 1)


CLK_TCK = 100
LOADAVG_AT_START = 0.0

if __name__ == "__main__":
    main()
