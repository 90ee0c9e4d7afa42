#!/usr/bin/env bash
# Per-clip CPU cost of reading + featurizing a 2 s clip: soundfile + librosa 1.0 (the reference
# feature code in tests/golden) vs Vericlip's Rust core (load_mono + FeatureExtractor), on the
# same clips, single thread, for WAV and FLAC and for the seed spec and FeatureSpec::lfcc_deltas.
# Prints both sides and the ratio. Both sides report the median batch of process CPU time, and
# the two run alternately per row, so other load on a shared machine falls on both alike.
#
# Usage: scripts/bench_vs_librosa.sh [REPEATS] [--spec seed|lfcc_deltas|both]  (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=200
specs="seed lfcc_deltas"
while [ $# -gt 0 ]; do
    case "$1" in
        --spec) [ "$2" = both ] || specs=$2; shift 2 ;;
        *) repeats=$1; shift ;;
    esac
done
out=tests/golden/out
[ -f "$out/goldens.json" ] || .venv/bin/python tests/golden/make_goldens.py "$out" >/dev/null
names=(speech noise sweep dc_offset)
wavs=()
for n in "${names[@]}"; do wavs+=("$out/clips/$n.wav"); done
# FLAC copies of the same clips (16-bit, soundfile's libFLAC encoder), made once.
flac_dir=${TMPDIR:-/tmp}/vericlip-bench-flac
mkdir -p "$flac_dir"
flacs=()
for n in "${names[@]}"; do flacs+=("$flac_dir/$n.flac"); done
.venv/bin/python - "$flac_dir" "${wavs[@]}" <<'PY'
import os, sys
import soundfile as sf
for wav in sys.argv[2:]:
    dst = os.path.join(sys.argv[1], os.path.basename(wav)[:-4] + ".flac")
    if not os.path.exists(dst):
        y, sr = sf.read(wav, dtype="int16")
        sf.write(dst, y, sr, subtype="PCM_16", format="FLAC")
PY
cargo build -q --release -p vericlip-core --example clip_timing
bin=${CARGO_TARGET_DIR:-target}/release/examples/clip_timing
py_repeats=$(( repeats / 10 > 0 ? repeats / 10 : 1 ))
rows=()
for spec in $specs; do
    for fmt in wav flac; do
        if [ "$fmt" = wav ]; then clips=("${wavs[@]}"); else clips=("${flacs[@]}"); fi
        # OPENBLAS_CORETYPE/L2_SIZE slow a current numpy down on some machines: unset for this run only.
        py=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python scripts/bench_librosa.py --spec "$spec" "$py_repeats" "${clips[@]}")
        rs=$(taskset -c 0 "$bin" --spec "$spec" "$repeats" "${clips[@]}" 2>/dev/null || "$bin" --spec "$spec" "$repeats" "${clips[@]}")
        rows+=("$spec" "$fmt" "$py" "$rs")
    done
done
python3 - "${rows[@]}" <<'PY'
import json, sys
a = sys.argv[1:]
print(f"{'per 2 s clip':<34}{'librosa 1.0':>14}{'vericlip':>12}{'ratio':>9}")
for i in range(0, len(a), 4):
    spec, fmt, py, rs = a[i], a[i + 1], json.loads(a[i + 2]), json.loads(a[i + 3])
    rows = [("features", "features_us")] if fmt == "wav" else []
    rows.append((f"read {fmt.upper()} + features", "decode_features_us"))
    for label, key in rows:
        print(f"{spec + ': ' + label:<34}{py[key]:>11.1f} us{rs[key]:>9.1f} us{py[key] / rs[key]:>8.1f}x")
PY
