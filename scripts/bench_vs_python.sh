#!/usr/bin/env bash
# Vericlip vs a reference Python gRPC server doing the same job (bench/python_server/server.py:
# soundfile + the librosa 1.0 reference features of the served manifest's feature_spec +
# onnxruntime 1.31.1, one process per core with so_reuseport), side by side in one run: same model
# version, same clips (models/samples/*/*.wav), same load generator (`vericlip bench`), all on
# 127.0.0.1. All servers run at once and the levels go round-robin over them. Per concurrency
# level: clips/s, p50, p99, server CPU per clip (utime+stime of the server processes from
# /proc/PID/stat, in `getconf CLK_TCK` ticks, / requests served), the Rust servers' mean ONNX
# Runtime batch (from /metrics), and the CPU ratios. Checks first that both servers give the same
# scores (max |diff| <= 1e-3) with the same model version. About 1.5 minutes.
#
# Usage: scripts/bench_vs_python.sh [--out FILE.json] [--concurrency 1,4,16] [--seconds 10]
#                                   [--version N] [--baseline-bin PATH [--baseline-label NAME]]
#                                   [--workers 2] [--threads 4] [--clients 1] [--only rust,python]
#                                   [--rust-env KEY=VALUE]... [--no-cache-filterbanks]
#                                   [--tail-rule end-aligned|padded] [--profile DIR]
#   --version N: the model version both servers serve (default: the registry's highest; the
#   report names it and its feature spec). The Rust server is pinned to it.
#   --baseline-bin PATH: also measure another vericlip-server binary (e.g. an earlier commit's,
#   built into a separate folder) in the same run, as NAME (default "before").
#   --clients K runs K load-generator processes per level (concurrency split between them), so
#   the Python workers, which the kernel hands whole connections, can all get traffic.
#   --no-cache-filterbanks: the Python server rebuilds librosa's mel/chroma filter banks per call,
#   as tests/golden/reference_features.py does (by default it memoizes them, as a competent
#   deployment would; the features are bit-identical either way).
#   --profile DIR: one more (unmeasured) level at the highest concurrency under `perf record`
#   (if installed) per server; perf reports by shared object and symbol go into DIR.
# Needs the release build (`cargo build --release -p vericlip-server -p vericlip-cli --bins`, built
# here when missing) and scripts/setup.sh's ONNX Runtime; installs the Python side's pinned packages
# (bench/requirements.txt) into .vendor/bench-venv when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bin=${CARGO_TARGET_DIR:-$root/target}/release
if [ ! -x "$bin/vericlip-server" ] || [ ! -x "$bin/vericlip" ]; then
    echo "building the release binaries..." >&2
    cargo build --release -p vericlip-server -p vericlip-cli --bins >&2
fi
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$root/.vendor/onnxruntime/libonnxruntime.so.1.31.1}
[ -f "$ORT_DYLIB_PATH" ] || { echo "ONNX Runtime not found at $ORT_DYLIB_PATH: run scripts/setup.sh" >&2; exit 1; }

# The Python side's own venv (Python >= 3.12 for librosa 1.0), from the pinned requirements.
venv=$root/.vendor/bench-venv
stamp=$venv/.requirements.sha256
want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    py=${BENCH_PYTHON:-}
    if [ -z "$py" ]; then
        for c in "$root/.venv/bin/python3" python3.13 python3.12 python3; do
            if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
                # A venv's interpreter: make the new venv from its base, not on top of it.
                py=$("$c" -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))'); break
            fi
        done
    fi
    [ -n "$py" ] || { echo "need Python >= 3.12 (set BENCH_PYTHON)" >&2; exit 1; }
    echo "installing bench/requirements.txt into $venv ($py)..." >&2
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt >&2
    echo "$want" >"$stamp"
fi

# OPENBLAS_CORETYPE/L2_SIZE slow a current numpy down on some machines (see bench_vs_librosa.sh).
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" bench/run_bench.py \
    --server-bin "$bin/vericlip-server" --client-bin "$bin/vericlip" --python "$venv/bin/python" \
    --clk-tck "$(getconf CLK_TCK)" "$@"
