"""Reference Python implementation of `vericlip.v1.Vericlip/Classify`, the competitor in
scripts/bench_vs_python.sh: what a competent Python team would deploy for the same job.

- gRPC: grpcio, stubs generated from proto/ at start with grpcio-tools into a temp dir (as
  tests/clients/python/test_client.py does); one worker process per core, all bound to the same
  port with `grpc.so_reuseport` (grpc's documented way to scale a Python server past the GIL);
  each worker serves with a small thread pool.
- Decoding: soundfile (WAV/FLAC/OGG), channels averaged to mono; other rates resampled to the
  model's rate with soxr (librosa.resample, soxr_hq); raw PCM s16le/f32le as the proto defines.
- Features: the served manifest's `feature_spec`, computed by the repository's references,
  imported, not copied: tests/golden/reference_features.py for the seed spec (librosa 1.0: 20
  MFCC, 12 chroma, 64 log-mel per frame) and tests/golden/reference_features_ext.py when the spec
  adds LFCC or deltas (the seed blocks from reference_features.py, then LFCC through librosa's
  STFT and power_to_db and scipy's DCT, then librosa.feature.delta); then the manifest's
  mean/std. librosa's mel and chroma filter banks and the LFCC's linear filter bank are memoized
  (librosa rebuilds them on every call; --no-cache-filterbanks turns that off). The extended
  reference computes the STFT twice (once inside reference_features.features, once for the
  LFCC), as it is written; that is what this server runs.
- Segments: 2 s windows with the Rust server's tail rule (core/src/audio/segment.rs
  `segment_plan`, core/src/features/spec.rs `FeatureSpec::segments`/`check_duration`): a tail of
  >= min_tail_seconds is scored by a window aligned to the end of the audio, audio under
  min_audio_seconds is refused; `--tail-rule padded` mirrors the earlier zero-padded tail rule.
- Model: the same model.onnx on onnxruntime (CPU, intra_op_num_threads=1), all of a clip's
  segments in one batch [segments, frames, features]; the graph does its own per-segment mean
  subtraction, as in the Rust server.
- Answer: the same ClassifyResponse (mean segment score against the manifest's threshold).

Only Classify is implemented (ListModels/GetModel/ClassifyStream answer UNIMPLEMENTED).

usage: server.py --addr 127.0.0.1:PORT [--workers N] [--threads T] [--registry models]
                 [--model vericlip-lstm] [--version 0] [--tail-rule end-aligned|padded]
                 [--no-cache-filterbanks]
Prints `ready pids=P1,P2,... addr=... version=N n_features=F` on stdout once every worker is
serving; SIGTERM/SIGINT stop all.
"""

import argparse
import os

# One thread per process for every numeric pool (before numpy/numba are imported): the workers
# are the parallelism, one per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Slow a current numpy down on some machines (as scripts/bench_vs_librosa.sh notes).
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import importlib
import io
import json
import multiprocessing
import signal
import sys
import tempfile
import time
import uuid
from concurrent import futures

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def generate_stubs(proto_dir: str, out_dir: str):
    """Stubs generated from proto/ at start, by the Python client test's own `generate`."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "clients", "python"))
    from test_client import generate

    return generate(proto_dir, out_dir)


def segment_plan(n: int, length: int, step: int, min_tail: int, tail_rule: str = "end-aligned"):
    """core/src/audio/segment.rs `segment_plan`: (start, valid) windows over n samples.

    Full windows every `step`; audio left after the last full window (the tail) is scored when
    at least `min_tail` samples long. tail_rule "end-aligned" (the current rule): by one more
    full window ending with the audio (overlapping the previous one, no padding); "padded" (the
    rule before it): by a window at the next step, zero-padded. Audio shorter than one window is
    one zero-padded window under both."""
    length, step = max(length, 1), max(step, 1)
    out = []
    start = 0
    while start + length <= n:
        out.append((start, length))
        start += step
    covered = out[-1][0] + out[-1][1] if out else 0
    if tail_rule == "end-aligned":
        if not out:
            if n > 0:
                out.append((0, n))
        elif n > covered and n - covered >= min_tail:
            out.append((n - length, length))
    elif start < n:
        uncovered = n - covered
        if not out or (uncovered > 0 and uncovered >= min_tail):
            out.append((start, n - start))
    return out


def resolve_model_dir(registry: str, name: str, version: int) -> str:
    """The version the Rust server serves when none is pinned: the highest one."""
    base = os.path.join(registry, name)
    if version == 0:
        versions = [int(d) for d in os.listdir(base) if d.isdigit() and os.path.isfile(os.path.join(base, d, "model.onnx"))]
        if not versions:
            sys.exit(f"no model versions under {base}")
        version = max(versions)
    return os.path.join(base, str(version))


class Model:
    """One model version: manifest, normalizer, ONNX Runtime session (CPU, one thread)."""

    def __init__(self, model_dir: str):
        import numpy as np
        import onnxruntime as ort

        with open(os.path.join(model_dir, "manifest.json")) as f:
            m = json.load(f)
        self.manifest = m
        self.name = m["name"]
        self.version = int(m["version"])
        self.threshold = float(m["threshold"])
        self.spec = m["feature_spec"]
        self.mean = np.asarray(m["normalization"]["mean"], dtype=np.float32)
        self.std = np.asarray(m["normalization"]["std"], dtype=np.float32)
        self.input_name = m["input"]["name"]
        self.output_name = m["output"]["name"]
        self.rate = int(self.spec["sample_rate"])
        self.segment_samples = int(self.spec["segment_samples"])
        # FeatureSpec::segments: min_tail_seconds * rate, rounded.
        self.min_tail = int(round(float(self.spec["min_tail_seconds"]) * self.rate))
        # FeatureSpec::check_duration: shorter audio is `audio_too_short` (manifests without the
        # field read it as 1.0 s).
        self.min_audio_seconds = float(self.spec.get("min_audio_seconds", 1.0))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])


def cache_filterbanks():
    """Memoizes librosa.filters.mel and .chroma (pure functions of the spec; librosa rebuilds them
    on every call, ~35 % of the reference's feature time) and reference_features_ext's linear
    (LFCC) filter bank: what a competent deployment would do. The features stay bit-identical;
    the cached arrays are read-only."""
    import functools

    import librosa.filters

    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    import reference_features_ext

    reference_features_ext.linear_filterbank = functools.lru_cache(maxsize=16)(reference_features_ext.linear_filterbank)

    for name in ("mel", "chroma"):
        fn = getattr(librosa.filters, name)

        @functools.lru_cache(maxsize=16)
        def cached(_fn=fn, **kwargs):
            out = _fn(**kwargs)
            out.setflags(write=False)
            return out

        def wrapper(*args, _cached=cached, _fn=fn, **kwargs):
            if args:
                return _fn(*args, **kwargs)
            try:
                return _cached(**kwargs)
            except TypeError:  # an unhashable argument: no caching
                return _fn(**kwargs)

        setattr(librosa.filters, name, wrapper)


def features_for_spec(spec: dict):
    """`features(y) -> [frames, n_features] float32` for a manifest's `feature_spec`: the seed
    reference (tests/golden/reference_features.py) when the spec is the seed's, the extended one
    (reference_features_ext.py) when it adds LFCC or deltas. Exits naming the field when the spec
    is one the references do not implement."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    import reference_features
    import reference_features_ext

    # The references implement the seed spec's fields as reference_features.SPEC has them (same
    # rate, segment, STFT, bands) plus the optional kinds of reference_features_ext.
    for k, v in reference_features.SPEC.items():
        if spec.get(k, v) != v:
            sys.exit(f"model feature_spec.{k} = {spec[k]!r}, reference_features has {v!r}")
    ext = {k: spec.get(k, 0) for k in reference_features_ext.EXT_ABSENT}
    known = set(reference_features.SPEC) | set(ext) | {"min_tail_seconds", "min_audio_seconds"}
    unknown = set(spec) - known
    if unknown:
        sys.exit(f"model feature_spec has fields the references do not implement: {sorted(unknown)}")
    if not any(ext.values()):
        return reference_features.features
    full = dict(reference_features.SPEC, **ext)
    return lambda y: reference_features_ext.features(y, full)


class Servicer:
    def __init__(self, pb2, model: Model, max_seconds: float, tail_rule: str):
        import numpy as np
        import soundfile as sf

        self.np, self.sf = np, sf
        self.pb2 = pb2
        self.model = model
        self.max_seconds = max_seconds
        self.tail_rule = tail_rule
        self.features = features_for_spec(model.spec)
        self.n_features = int(model.manifest["input"]["shape"][-1])
        probe = self.features(np.zeros(model.segment_samples, dtype=np.float32))
        if probe.shape[1] != self.n_features:
            sys.exit(f"the references give {probe.shape[1]} features per frame, the model takes {self.n_features}")

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, request):
        np, pb2 = self.np, self.pb2
        kind = request.WhichOneof("audio")
        if kind == "encoded":
            if not request.encoded:
                raise ValueError("empty audio")
            y, sr = self.sf.read(io.BytesIO(request.encoded), dtype="float32", always_2d=True)
            y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
        elif kind == "pcm":
            fmt = request.pcm.format
            sr, ch = int(fmt.sample_rate), int(fmt.channels)
            if sr < 1000 or sr > 384000 or ch < 1:
                raise ValueError(f"bad PCM format: {sr} Hz, {ch} channels")
            if fmt.encoding == pb2.PCM_ENCODING_S16LE:
                y = np.frombuffer(request.pcm.data, dtype="<i2").astype(np.float32) / 32768.0
            elif fmt.encoding == pb2.PCM_ENCODING_F32LE:
                y = np.frombuffer(request.pcm.data, dtype="<f4").astype(np.float32)
            else:
                raise ValueError("PCM encoding unspecified")
            y = y[: len(y) - len(y) % ch].reshape(-1, ch).mean(axis=1, dtype=np.float32)
        else:
            raise ValueError("no audio")
        if y.size == 0:
            raise ValueError("empty audio")
        if not np.isfinite(y).all():
            raise ValueError("non-finite samples")
        if y.size / sr > self.max_seconds:
            raise ValueError(f"clip longer than {self.max_seconds} s")
        if sr != self.model.rate:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=self.model.rate, res_type="soxr_hq").astype(np.float32)
        return y

    # -- the RPC ----------------------------------------------------------------------------

    def Classify(self, request, context):
        import grpc

        np, pb2, m = self.np, self.pb2, self.model
        t0 = time.perf_counter()
        if request.model and request.model != m.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.model!r}")
        if request.version and request.version != m.version:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{m.name} version {request.version} is not loaded")
        try:
            y = self.decode(request)
        except Exception as e:  # soundfile raises its own types for undecodable bytes
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode audio: {e}")
        t1 = time.perf_counter()
        if self.tail_rule == "end-aligned" and y.size / m.rate < m.min_audio_seconds:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"audio is {y.size / m.rate:.2f} s long; at least {m.min_audio_seconds:.2f} s is needed for a verdict")
        plan = segment_plan(y.size, m.segment_samples, m.segment_samples, m.min_tail, self.tail_rule)
        feats = []
        for start, valid in plan:
            seg = y[start:start + valid]
            if valid < m.segment_samples:
                seg = np.pad(seg, (0, m.segment_samples - valid))
            feats.append(self.features(seg))  # [frames, n_features] float32
        x = (np.stack(feats) - m.mean) / m.std  # [segments, frames, n_features]
        x = x.astype(np.float32, copy=False)
        t2 = time.perf_counter()
        scores = m.session.run([m.output_name], {m.input_name: x})[0].reshape(-1).astype(np.float32)
        t3 = time.perf_counter()
        mean = float(np.mean(scores.astype(np.float64))) if scores.size else 0.0

        def verdict(score: float):
            return pb2.VERDICT_FAKE if score >= m.threshold else pb2.VERDICT_REAL

        segments = [
            pb2.SegmentScore(index=i, start_seconds=start / m.rate, end_seconds=(start + valid) / m.rate,
                             fake_score=float(s), verdict=verdict(float(s)))
            for i, ((start, valid), s) in enumerate(zip(plan, scores))
        ]
        ms = lambda d: d * 1e3  # noqa: E731
        return pb2.ClassifyResponse(
            verdict=verdict(mean), fake_score=mean, threshold=m.threshold, segments=segments,
            model=m.name, model_version=m.version, duration_seconds=y.size / m.rate,
            timings=pb2.StageTimings(decode_ms=ms(t1 - t0), features_ms=ms(t2 - t1), queue_ms=0.0,
                                     inference_ms=ms(t3 - t2), total_ms=ms(time.perf_counter() - t0)),
            request_id=uuid.uuid4().hex[:16],
        )


def worker(args, ready, stop_event):
    """One serving process: its own stubs, model session and grpc server on the shared port."""
    import grpc

    with tempfile.TemporaryDirectory(prefix="vericlip-py-stubs-") as stubs:
        pb2, pb2_grpc = generate_stubs(os.path.join(ROOT, "proto"), stubs)
        if args.cache_filterbanks:
            cache_filterbanks()
        model = Model(resolve_model_dir(args.registry, args.model, args.version))
        servicer = Servicer(pb2, model, args.max_seconds, args.tail_rule)
        # Warm up (numba/librosa first calls, ORT's first run) before taking traffic.
        import numpy as np

        warm = np.sin(np.arange(model.segment_samples, dtype=np.float32) * 0.05).astype(np.float32)
        x = ((servicer.features(warm) - model.mean) / model.std)[None].astype(np.float32)
        model.session.run([model.output_name], {model.input_name: x})

        class Handler(pb2_grpc.VericlipServicer):
            def Classify(self, request, context):
                return servicer.Classify(request, context)

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.threads),
            options=[
                ("grpc.so_reuseport", 1),
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        pb2_grpc.add_VericlipServicer_to_server(Handler(), server)
        if server.add_insecure_port(args.addr) == 0:
            sys.exit(f"cannot bind {args.addr}")
        server.start()
        ready.put((os.getpid(), model.version, servicer.n_features))
        stop_event.wait()
        server.stop(grace=2).wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addr", default="127.0.0.1:50071")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    ap.add_argument("--threads", type=int, default=4, help="gRPC handler threads per process")
    ap.add_argument("--registry", default=os.path.join(ROOT, "models"))
    ap.add_argument("--model", default="vericlip-lstm")
    ap.add_argument("--version", type=int, default=0, help="0 = the highest version (what the Rust server serves)")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--tail-rule", choices=["end-aligned", "padded"], default="end-aligned",
                    help="the Rust server's tail rule: end-aligned (current; with min_audio_seconds) or padded (before)")
    ap.add_argument("--no-cache-filterbanks", dest="cache_filterbanks", action="store_false",
                    help="rebuild librosa's mel and chroma filter banks on every call, as the reference does")
    args = ap.parse_args()

    # Fork before anything starts gRPC threads in this process (grpc's multiprocessing example).
    ctx = multiprocessing.get_context("fork")
    ready, stop_event = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=worker, args=(args, ready, stop_event), daemon=False) for _ in range(args.workers)]
    for p in procs:
        p.start()

    # The handler only sets a flag: setting a multiprocessing.Event from a signal handler can
    # deadlock on the Event's own lock; the loops below pass the flag on.
    stopping = []

    def on_signal(_sig=None, _frm=None):
        stopping.append(True)

    def stop():
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pids, served = [], set()
    deadline = time.monotonic() + 300
    while len(pids) < len(procs):
        if stopping or any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
            stop()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
            sys.exit("stopped before ready" if stopping else "a worker failed to start")
        try:
            pid, version, n_features = ready.get(timeout=0.2)
            pids.append(pid)
            served.add((version, n_features))
        except Exception:
            pass
    (version, n_features), = served
    print(f"ready pids={','.join(map(str, pids))} addr={args.addr} version={version} n_features={n_features}", flush=True)
    while not stopping and any(p.is_alive() for p in procs):
        time.sleep(0.2)
    stop()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
