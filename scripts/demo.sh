#!/usr/bin/env bash
# The main job on the embedded default: starts vericlip-server on the bundled registry
# (models/), waits until it is ready, classifies the bundled sample clips with the `vericlip`
# client (unary), streams one clip (verdicts per window as they arrive), lists the models, and
# stops the server with SIGTERM. Run scripts/setup.sh first (ONNX Runtime).
# Usage: scripts/demo.sh            the demo, then stop
#        scripts/demo.sh --serve    the demo, then keep the server up for the web page (Ctrl-C stops)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
serve=false
case "${1:-}" in
    --serve) serve=true ;;
    "") ;;
    *) echo "usage: scripts/demo.sh [--serve]" >&2; exit 2 ;;
esac

# The first build takes several minutes on a small machine: show its progress.
echo "building vericlip-server (the first build takes a few minutes)..."
cargo build -p vericlip-server --bins
bin=${CARGO_TARGET_DIR:-$root/target}/debug
log=$(mktemp -t vericlip-server.XXXXXX.log)
out=$(mktemp -t vericlip-server.XXXXXX.out)

# A person opening the page wants a port to type: 8080 with --serve, else any free one.
default_http=127.0.0.1:0; $serve && default_http=127.0.0.1:8080
VERICLIP__GRPC__ADDR=${VERICLIP__GRPC__ADDR:-127.0.0.1:0} VERICLIP__HTTP__ADDR=${VERICLIP__HTTP__ADDR:-$default_http} \
    VERICLIP__ADMIN__ADDR=${VERICLIP__ADMIN__ADDR:-127.0.0.1:0} "$bin/vericlip-server" >"$out" 2>"$log" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
    grep -q '^vericlip-server listening' "$out" 2>/dev/null && break
    kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
line=$(grep '^vericlip-server listening' "$out")
grpc=${line#*grpc=}; grpc=${grpc%% *}
http=${line#*http=}; http=${http%% *}
echo "vericlip-server: gRPC $grpc, HTTP $http (log: $log)"
for _ in $(seq 1 300); do
    "$bin/vericlip" --addr "http://$grpc" health >/dev/null 2>&1 && break
    sleep 0.1
done

echo; echo "== vericlip models"
"$bin/vericlip" --addr "http://$grpc" models
echo; echo "== vericlip classify models/samples/*/*.wav"
"$bin/vericlip" --addr "http://$grpc" classify models/samples/real/*.wav models/samples/fake/*.wav
echo; echo "== vericlip stream (4x real time, 1 s step): models/samples/fake/espeak_en__computer_voice.wav"
"$bin/vericlip" --addr "http://$grpc" stream --speed 4 models/samples/fake/espeak_en__computer_voice.wav
echo; echo "== curl -X POST --data-binary @clip.wav http://$http/v1/classify"
curl -sS -X POST --data-binary @models/samples/real/fillets_cs_other__00000_0.wav "http://$http/v1/classify"
echo

if $serve; then
    echo
    echo "== the web page: open http://$http/ in a browser (drop a clip or record); Ctrl-C stops the server"
    trap 'kill -TERM $server 2>/dev/null || true' INT TERM
    wait $server || true
    trap - EXIT
    echo "server stopped"
    exit 0
fi

kill -TERM $server
wait $server
trap - EXIT
echo "server stopped cleanly"
