#!/usr/bin/env bash
# The main job on the embedded default: starts vericlip-server on the bundled registry
# (models/), waits until it is ready, classifies the bundled sample clips with the `vericlip`
# client (unary), streams one clip (verdicts per window as they arrive), lists the models, and
# stops the server with SIGTERM. Run scripts/setup.sh first (ONNX Runtime).
# The server listens on the ports the `vericlip` CLI and a browser expect (gRPC 127.0.0.1:50051,
# HTTP 127.0.0.1:8080) when they are free, else on free ones; either way the demo prints the exact
# `vericlip --addr ...` command that reaches it. VERICLIP__GRPC__ADDR / VERICLIP__HTTP__ADDR
# override. Binaries are built into cargo's target directory (CARGO_TARGET_DIR is honoured).
# Usage: scripts/demo.sh            the demo, then stop
#        scripts/demo.sh --serve    the demo, then keep the server up for the web page (Ctrl-C stops)
#        scripts/demo.sh --no-build with the binaries already in the target directory (scripts/test.sh,
#                                   right after `cargo test --workspace` built them: a plain build of
#                                   one package resolves features differently and would rebuild)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
serve=false
build=true
for arg in "$@"; do
    case "$arg" in
        --serve) serve=true ;;
        --no-build) build=false ;;
        *) echo "usage: scripts/demo.sh [--serve] [--no-build]" >&2; exit 2 ;;
    esac
done

if $build; then
    # The first build takes several minutes on a small machine: show its progress.
    echo "building vericlip-server and vericlip (the first build takes a few minutes)..."
    cargo build -p vericlip-server -p vericlip-cli --bins
fi
# Wherever cargo put them: CARGO_TARGET_DIR, build.target-dir, or target/.
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin=$target/debug
for b in vericlip-server vericlip; do
    [ -x "$bin/$b" ] || { echo "$bin/$b missing: run scripts/demo.sh without --no-build" >&2; exit 1; }
done

# The server's output, removed when the demo ends (kept only to be shown if the server fails).
tmp=$(mktemp -d -t vericlip-demo.XXXXXX)
log=$tmp/server.log
out=$tmp/server.out
server=
cleanup() {
    if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# keep_warm 3: the bundled registry's serving state serves version 4 and, by default, loads only
# it; the demo also loads the three older versions so the page can compare a clip across them.
# The CLI's default (50051) and the page's usual port (8080) when free; else any free port.
in_use() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
pick() { if in_use "$1"; then echo "${1%:*}:0"; else echo "$1"; fi; }
VERICLIP__GRPC__ADDR=${VERICLIP__GRPC__ADDR:-$(pick 127.0.0.1:50051)} \
VERICLIP__HTTP__ADDR=${VERICLIP__HTTP__ADDR:-$(pick 127.0.0.1:8080)} \
VERICLIP__ADMIN__ADDR=${VERICLIP__ADMIN__ADDR:-127.0.0.1:0} \
VERICLIP__REGISTRY__KEEP_WARM=${VERICLIP__REGISTRY__KEEP_WARM:-3} \
    "$bin/vericlip-server" >"$out" 2>"$log" &
server=$!

for _ in $(seq 1 300); do
    grep -q '^vericlip-server listening' "$out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; server=; exit 1; }
    sleep 0.1
done
line=$(grep '^vericlip-server listening' "$out") || { cat "$log" >&2; exit 1; }
grpc=${line#*grpc=}; grpc=${grpc%% *}
http=${line#*http=}; http=${http%% *}
echo "vericlip-server: gRPC $grpc, HTTP $http"
vericlip() { "$bin/vericlip" --addr "http://$grpc" "$@"; }
for _ in $(seq 1 300); do
    vericlip health >/dev/null 2>&1 && break
    sleep 0.1
done

echo; echo "== vericlip models"
vericlip models
echo; echo "== vericlip classify models/samples/*/*.wav"
table=$(vericlip classify models/samples/real/*.wav models/samples/fake/*.wav)
echo "$table"
# Say it when a bundled real clip is called fake: a known limit of the bundled model, not a fault.
if echo "$table" | grep -q '^models/samples/real/ast_es_co.* FAKE '; then
    echo "note: real/ast_es_co__00100_0.wav (a GSM telephone prompt of a speaker the model never heard) is"
    echo "      called FAKE: a known false alarm of the bundled model (GSM Spanish prompts are called fake"
    echo "      about half the time); see docs/MODEL_CARD.md, \"Headline, honestly\" and \"Limits\"."
fi
echo; echo "== vericlip stream (4x real time, 1 s step): models/samples/fake/espeak_en__computer_voice.wav"
vericlip stream --speed 4 models/samples/fake/espeak_en__computer_voice.wav
echo; echo "== curl -F file=@clip.wav http://$http/v1/classify"
curl -sS -F file=@models/samples/real/fillets_cs_other__00000_0.wav "http://$http/v1/classify"
echo

if $serve; then
    echo
    echo "== the web page: open http://$http/ in a browser (drop a clip or record); Ctrl-C stops the server"
    echo "== the CLI from another shell (put it on PATH: cargo install --path cli;"
    echo "   or run $bin/vericlip):"
    if [ "$grpc" = 127.0.0.1:50051 ]; then
        echo "   vericlip classify models/samples/real/*.wav"
    else
        echo "   vericlip --addr http://$grpc classify models/samples/real/*.wav"
    fi
    echo "   curl -F file=@models/samples/real/ast_it_menardi__00000_0.wav http://$http/v1/classify"
    trap 'kill -TERM $server 2>/dev/null || true' INT TERM
    wait "$server" || true
    server=
    echo "server stopped"
    exit 0
fi

kill -TERM "$server"
wait "$server"
server=
echo "server stopped cleanly (scripts/demo.sh --serve keeps it up for the page and the vericlip CLI)"
