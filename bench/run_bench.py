"""Vericlip (Rust) vs the reference Python server (bench/python_server/server.py), side by side:
same model, same clips, same load generator (`vericlip bench`). Run by scripts/bench_vs_python.sh.

For each server in turn: start it on 127.0.0.1, wait until it serves, classify the clips once with
`vericlip classify --json` (the score check), warm up for a second, then for each concurrency
level run `vericlip bench CLIPS --concurrency L --seconds S --json` and read the server's CPU time
(utime + stime, and cutime + cstime, of the server process and, for Python, every worker process)
from /proc/PID/stat before and after the level; CPU per clip = that difference / requests served.
Then stop the server with SIGTERM. Prints the table, writes it as JSON to --out, exits 1 when the
scores disagree by more than --tolerance or a server fails.

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
        res[r["file"]] = (r["fake_score"], [s["fake_score"] for s in r["segments"]], r["verdict"])
    return res


def bench_level(client, addr, clips, level, seconds, n_clients, pids):
    """One concurrency level: n_clients load-generator processes at level/n_clients each."""
    per = [level // n_clients + (1 if i < level % n_clients else 0) for i in range(n_clients)]
    per = [c for c in per if c > 0]
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
        # Everything else the machine ran meanwhile (other users' jobs): 0 on a quiet machine.
        "other_cpu_seconds": max((busy1 - busy0 - sum(cpu.values())) / CLK_TCK - client_cpu, 0.0),
    }


def profile(args, kind, addr, clips, pids):
    """An extra, unmeasured level at the highest concurrency with `perf record` on the server
    processes; writes perf's report by shared object and by symbol into --profile DIR."""
    os.makedirs(args.profile, exist_ok=True)
    data = os.path.join(args.profile, f"{kind}.perf.data")
    level = max(args.levels)
    rec = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", data, "-p", ",".join(map(str, pids))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    try:
        bench_level(args.client_bin, addr, clips, level, min(args.seconds, 5.0), min(args.clients, level), pids)
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


def run_server(kind, args, clips, tmp):
    env = dict(os.environ)
    if kind == "rust":
        env.update({
            "VERICLIP__GRPC__ADDR": f"127.0.0.1:{free_port()}",
            "VERICLIP__HTTP__ADDR": "127.0.0.1:0",
            "VERICLIP__REGISTRY__PATH": os.path.join(ROOT, "models"),
        })
        env.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".vendor/onnxruntime/libonnxruntime.so.1.31.1"))
        srv = Server("rust", [args.server_bin], env, r"^vericlip-server listening grpc=(\S+)", tmp)
        addr = srv.wait_ready(120).group(1)
        for _ in range(300):  # listening, then the model loads: wait for SERVING
            if subprocess.run([args.client_bin, "--addr", f"http://{addr}", "health"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        pids = [srv.proc.pid]
        desc = "vericlip-server (release, defaults)"
    else:
        addr = f"127.0.0.1:{free_port()}"
        srv = Server("python", [args.python, os.path.join(ROOT, "bench/python_server/server.py"), "--addr", addr,
                                "--workers", str(args.workers), "--threads", str(args.threads),
                                "--tail-rule", args.tail_rule,
                                *([] if args.cache_filterbanks else ["--no-cache-filterbanks"])], env,
                     r"^ready pids=(\S+)", tmp)
        m = srv.wait_ready(300)
        pids = [srv.proc.pid] + [int(p) for p in m.group(1).split(",")]
        desc = (f"bench/python_server/server.py ({args.workers} processes x {args.threads} threads, so_reuseport, "
                f"filter banks {'cached' if args.cache_filterbanks else 'rebuilt per call'})")
    log(f"{kind}: serving on {addr} (pids {pids})")
    result = {"server": desc, "addr": addr, "pids": pids}
    try:
        result["scores"] = scores(args.client_bin, addr, clips)
        run_client(args.client_bin, addr, ["bench", *clips, "--concurrency", "4", "--seconds", "1", "--json"])  # warm-up
        result["levels"] = []
        for level in args.levels:
            row = bench_level(args.client_bin, addr, clips, level, args.seconds, min(args.clients, level), pids)
            shares = "/".join(f"{t / max(sum(row['server_cpu_ticks'].values()), 1):.0%}" for t in row["server_cpu_ticks"].values())
            log(f"{kind}: c={level}: {row['clips_per_second']:.0f} clips/s, p50 {row['p50_ms']:.1f} ms, "
                f"p99 {row['p99_ms']:.1f} ms, {row['server_cpu_us_per_clip']:.0f} us CPU/clip (per pid: {shares}); "
                f"client {row['client_cpu_us_per_clip']:.0f} us CPU/clip; other load {row['other_cpu_seconds']:.1f} CPU-s")
            row["server_cpu_ticks"] = {str(k): v for k, v in row["server_cpu_ticks"].items()}
            result["levels"].append(row)
        if args.profile:
            result["profile"] = profile(args, kind, addr, clips, pids)
    finally:
        result["exit_code"] = srv.stop()
        log(f"{kind}: stopped (exit {result['exit_code']})")
    return result


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
    ap.add_argument("--only", choices=["rust", "python"], help="run one server only")
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

    global LOADAVG_AT_START
    LOADAVG_AT_START = os.getloadavg()[0]
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory(prefix="vericlip-bench-") as tmp:
        for kind in ("rust", "python"):
            if args.only in (None, kind):
                results[kind] = run_server(kind, args, clips, tmp)

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
        "clips": clips,
        "seconds_per_level": args.seconds,
        "clients_per_level": args.clients,
        "agreement": agreement,
        "results": results,
        "table": [],
    }
    print()
    print(f"{len(clips)} clips round-robin, {args.seconds:g} s per level, load generator `vericlip bench` "
          f"({args.clients} process(es) per level) on the same machine; {os.cpu_count()} x {cpu_model()}")
    if agreement:
        print(f"scores: max |rust - python| = {agreement['max_clip_score_diff']:.2e} (clip), "
              f"{agreement['max_segment_score_diff']:.2e} (segment); verdicts "
              f"{'agree' if agreement['same_verdicts'] else 'DIFFER'}; "
              f"{'OK' if agreement['ok'] else 'FAILED'} (tolerance {args.tolerance:g})")
    hdr = (f"{'conc':>4} | {'rust clips/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/clip':>11} | "
           f"{'py clips/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/clip':>11} | {'thrpt x':>7} {'CPU x':>6}")
    print(hdr)
    print("-" * len(hdr))
    rl = {r["concurrency"]: r for r in results.get("rust", {}).get("levels", [])}
    pl = {r["concurrency"]: r for r in results.get("python", {}).get("levels", [])}
    nan = float("nan")
    for level in args.levels:
        r, p = rl.get(level, {}), pl.get(level, {})
        g = lambda d, k: d.get(k, nan)  # noqa: E731
        tx = g(r, "clips_per_second") / g(p, "clips_per_second") if r and p else nan
        cx = g(p, "server_cpu_us_per_clip") / g(r, "server_cpu_us_per_clip") if r and p else nan
        print(f"{level:>4} | {g(r, 'clips_per_second'):>12.0f} {g(r, 'p50_ms'):>7.2f} {g(r, 'p99_ms'):>7.2f} "
              f"{g(r, 'server_cpu_us_per_clip'):>11.0f} | {g(p, 'clips_per_second'):>10.0f} {g(p, 'p50_ms'):>7.2f} "
              f"{g(p, 'p99_ms'):>7.2f} {g(p, 'server_cpu_us_per_clip'):>11.0f} | {tx:>6.1f}x {cx:>5.1f}x")
        report["table"].append({
            "concurrency": level,
            "rust": {k: r.get(k) for k in ("clips_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_clip", "errors")},
            "python": {k: p.get(k) for k in ("clips_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_clip", "errors")},
            "throughput_ratio_rust_over_python": tx,
            "cpu_per_clip_ratio_python_over_rust": cx,
        })
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
