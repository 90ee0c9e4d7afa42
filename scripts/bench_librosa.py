"""Time the reference feature pipeline (librosa 1.0, tests/golden/reference_features.py) per clip.

usage: bench_librosa.py REPEATS CLIP.wav [CLIP.wav ...]   -> JSON on stdout
Single-threaded (set OMP/OPENBLAS/MKL/NUMBA threads to 1 before numpy loads); CPU time via
time.process_time. Reads each clip with soundfile exactly as the reference script does.
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import soundfile as sf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import reference_features as ref  # noqa: E402


def read(path):
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    return y.mean(axis=1)[: ref.SPEC["segment_samples"]]


def main():
    repeats, paths = int(sys.argv[1]), sys.argv[2:]
    for p in paths:  # warm-up: imports, numba/scipy caches
        ref.features(read(p))
    t0 = time.process_time()
    for _ in range(repeats):
        for p in paths:
            ref.features(read(p))
    t1 = time.process_time()
    ys = [read(p) for p in paths]
    t2 = time.process_time()
    for _ in range(repeats):
        for y in ys:
            ref.features(y)
    t3 = time.process_time()
    n = repeats * len(paths)
    json.dump({"clips": n, "decode_features_us": 1e6 * (t1 - t0) / n, "features_us": 1e6 * (t3 - t2) / n}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
