"""Time the reference feature pipeline (librosa 1.0) per clip, single thread.

usage: bench_librosa.py [--spec seed|lfcc_deltas] REPEATS CLIP [CLIP ...]   -> JSON on stdout

Each clip is read with soundfile (WAV or FLAC, as the reference script reads files), averaged to
mono, cut to its first 2 s segment, and featurized: tests/golden/reference_features.py for the
seed spec, reference_features_ext.py for FeatureSpec::lfcc_deltas (156 per frame). Numeric pools
at one thread (set before numpy loads). CPU time via time.process_time, in batches: the median
batch is reported, as core/examples/clip_timing.rs does on the Rust side.
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import soundfile as sf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import reference_features as ref  # noqa: E402
import reference_features_ext as ext  # noqa: E402

BATCHES = 10


def read(data: bytes):
    y, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return y.mean(axis=1)[: ref.SPEC["segment_samples"]]


def median_us(n, f):
    per = max(1, -(-n // BATCHES))
    batches = []
    for _ in range(BATCHES):
        t0 = time.process_time()
        for _ in range(per):
            f()
        batches.append((time.process_time() - t0) * 1e6 / per)
    return statistics.median(batches)


def main():
    args = sys.argv[1:]
    spec = "seed"
    if args and args[0] == "--spec":
        spec, args = args[1], args[2:]
    if spec == "seed":
        features = ref.features
    elif spec == "lfcc_deltas":
        features = lambda y: ext.features(y, ext.SPEC_LFCC_DELTAS)  # noqa: E731
    else:
        raise SystemExit(f"unknown spec {spec} (seed or lfcc_deltas)")
    repeats, paths = int(args[0]), args[1:]
    files = [open(p, "rb").read() for p in paths]  # noqa: SIM115
    ys = [read(b) for b in files]
    for y in ys:  # warm-up: imports, numba/scipy caches
        features(y)
    state = {"i": 0}

    def read_features():
        state["i"] += 1
        features(read(files[state["i"] % len(files)]))

    def features_only():
        state["i"] += 1
        features(ys[state["i"] % len(ys)])

    n = repeats * len(files)
    out = {"clips": n, "spec": spec, "decode_features_us": median_us(n, read_features),
           "features_us": median_us(n, features_only)}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
