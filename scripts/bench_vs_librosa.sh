#!/usr/bin/env bash
# Per-clip CPU cost of the reference feature pipeline (librosa 1.0) vs Vericlip's Rust core on
# the same clips, single thread. Prints both and the ratio.
# Usage: scripts/bench_vs_librosa.sh [REPEATS]   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-200}
out=tests/golden/out
[ -f "$out/goldens.json" ] || .venv/bin/python tests/golden/make_goldens.py "$out" >/dev/null
clips=("$out"/clips/{speech,noise,sweep,dc_offset}.wav)
cargo build -q --release -p vericlip-core --example clip_timing
# OPENBLAS_CORETYPE/L2_SIZE slow a current numpy down on some machines: unset for this run only.
py=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python scripts/bench_librosa.py "$(( repeats / 10 > 0 ? repeats / 10 : 1 ))" "${clips[@]}")
rs=$(taskset -c 0 target/release/examples/clip_timing "$repeats" "${clips[@]}" 2>/dev/null || target/release/examples/clip_timing "$repeats" "${clips[@]}")
python3 - "$py" "$rs" <<'PY'
import json, sys
py, rs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'per 2 s clip':<22}{'librosa 1.0':>14}{'vericlip':>12}{'ratio':>9}")
for key, label in (("features_us", "features"), ("decode_features_us", "read + features")):
    print(f"{label:<22}{py[key]:>11.1f} us{rs[key]:>9.1f} us{py[key] / rs[key]:>8.1f}x")
PY
