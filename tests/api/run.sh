#!/usr/bin/env bash
# The API contract checks, run by scripts/test.sh (after cargo has built the server):
#   1. proto: `buf lint`, `buf breaking` against proto/released/, and generated client code
#      current (clients/go, clients/python regenerate identically);
#   2. OpenAPI: service/src/http/openapi.json is a valid OpenAPI 3.1 document
#      (openapi-spec-validator), and every route it lists answers a real server as it says
#      (tests/api/check_routes.py);
#   3. clients: the Go, Node and Python clients' tests and README examples against that server.
# One server (the bundled registry models/, an API key, on loopback) serves every check, plus an
# empty one (no model) for the not-ready answers. Installs what it needs: clients/setup.sh.
# Usage: tests/api/run.sh            (VERICLIP_SERVER_BIN=PATH: test that binary, no cargo build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
log() { printf '[api] %s\n' "$*" >&2; }

bash clients/setup.sh
py=$root/tests/api/.venv/bin/python
buf=$root/tests/api/node_modules/.bin/buf

log "buf lint, buf breaking (against proto/released)"
(cd proto && "$buf" lint)
"$buf" breaking proto --against proto/released
log "generated client code is current"
clients/go/generate.sh --check
clients/python/generate.sh --check
test -z "$(gofmt -l clients/go)" || { gofmt -l clients/go; log "clients/go: run gofmt -w"; exit 1; }
clients/node/generate-types.sh --check
(cd clients/node && npm run --silent typecheck)

# openapi-python-client (pinned) in a venv of its own: its pydantic and the route check's differ.
oapi=tests/api/.oapi-venv
want=$(sha256sum tests/api/openapi-client-requirements.txt | cut -d' ' -f1)
if [ "$(cat "$oapi/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    log "$oapi: creating (tests/api/openapi-client-requirements.txt)"
    rm -rf "$oapi"
    python3 -m venv "$oapi"
    "$oapi/bin/python" -m pip install -q --disable-pip-version-check -r tests/api/openapi-client-requirements.txt
    echo "$want" > "$oapi/.requirements.sha256"
fi

log "OpenAPI document: openapi-spec-validator"
"$py" -c 'import sys
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
doc, _ = read_from_filename(sys.argv[1]); validate(doc); print("openapi.json: valid OpenAPI", doc["openapi"])' \
    service/src/http/openapi.json

# VERICLIP_SERVER_BIN: check a server built elsewhere (e.g. another branch's) instead.
bin=${VERICLIP_SERVER_BIN:-}
if [ -z "$bin" ]; then
    log "building vericlip-server"
    cargo build --locked -q -p vericlip-server --bin vericlip-server
    bin=${CARGO_TARGET_DIR:-$root/target}/debug/vericlip-server
fi
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$root/.vendor/onnxruntime/libonnxruntime.so.1.31.1}

tmp=$(mktemp -d -t vericlip-api.XXXXXX)
pids=()
cleanup() {
    local p; for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    chmod -R u+w "$tmp" 2>/dev/null  # the Go module cache is read-only
    rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME ENV...: starts a server on loopback ports; sets $grpc and $http.
start() {
    local name=$1; shift
    env VERICLIP__GRPC__ADDR=127.0.0.1:0 VERICLIP__HTTP__ADDR=127.0.0.1:0 VERICLIP__ADMIN__ADDR=127.0.0.1:0 RUST_LOG=warn "$@" \
        "$bin" >"$tmp/$name.out" 2>"$tmp/$name.log" &
    pids+=($!)
    local i
    for i in $(seq 1 600); do
        grep -q '^vericlip-server listening' "$tmp/$name.out" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/$name.log" >&2; log "$name server exited"; exit 1; }
        sleep 0.1
    done
    local line; line=$(grep '^vericlip-server listening' "$tmp/$name.out") \
        || { cat "$tmp/$name.log" >&2; log "$name server did not start"; exit 1; }
    grpc=${line#*grpc=}; grpc=${grpc%% *}
    http=${line#*http=}; http=${http%% *}
}

key=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
echo "$key" > "$tmp/api-keys"
mkdir "$tmp/empty-registry"
# Small limits, so the size errors are cheap to reach (the samples are far under them).
start main VERICLIP__REGISTRY__PATH="$root/models" VERICLIP__AUTH__API_KEY_FILE="$tmp/api-keys" \
    VERICLIP__GRPC__MAX_MESSAGE_BYTES=4194304 VERICLIP__LIMITS__MAX_AUDIO_SECONDS=30
main_grpc=$grpc main_http=$http
start empty VERICLIP__REGISTRY__PATH="$tmp/empty-registry" VERICLIP__LIMITS__MAX_STREAMS=1 \
    VERICLIP__LIMITS__STREAM_IDLE_SECONDS=2
empty_http=$http empty_grpc=$grpc
"$py" - "$main_http" <<'PY'
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(f"http://{sys.argv[1]}/readyz", timeout=5).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit("the server never became ready")
PY
log "servers: main gRPC $main_grpc HTTP $main_http (API key set), empty HTTP $empty_http"

failed=()
run() { local what=$1; shift; log "$what"; "$@" || { failed+=("$what"); log "FAILED: $what"; }; }
expect=$tmp/expect.json
export VERICLIP_GRPC_ADDR=$main_grpc VERICLIP_API_KEY=$key VERICLIP_SAMPLES=$root/models/samples VERICLIP_EXPECT=$expect
# The server with no model: every client's retry of UNAVAILABLE is counted there (its metrics).
export VERICLIP_EMPTY_GRPC_ADDR=$empty_grpc VERICLIP_EMPTY_HTTP=$empty_http

# Live streaming (each client's stream_pcm) of a 4.25 s file fed in real time: the first window's verdict must
# arrive while the audio is still being sent, and every window and the summary must come.
live_check() {  # COMMAND...: runs a live example, checks what it printed
    local out; out=$("$@")
    echo "$out"
    awk '/window 0 / { first = $2 } /window/ { n++ } /^summary: / { s = 1 }
         END { if (!(n >= 3 && s && first != "" && first + 0 < 3.5)) { print "live: first window after " first " s, " n " windows, summary " s > "/dev/stderr"; exit 1 } }' <<<"$out"
}
live_sample=models/samples/fake/espeak_en__computer_voice.wav

run "OpenAPI route check against the server" "$py" tests/api/check_routes.py --spec service/src/http/openapi.json \
    --http "$main_http" --empty-http "$empty_http" --api-key "$key" --samples models/samples --expect-out "$expect"
[ -s "$expect" ] || { log "the route check wrote no expected scores; the clients cannot be compared"; exit 1; }

run "OpenAPI: a client generated by openapi-python-client, against the server" \
    "$oapi/bin/python" tests/api/openapi_client.py --spec service/src/http/openapi.json --http "$main_http" \
    --api-key "$key" --samples models/samples --expect "$expect"

run "Python client (clients/python, pip-installed): tests/clients/python/test_client.py" \
    "$py" tests/clients/python/test_client.py --addr "$main_grpc" --samples models/samples --expect "$expect" \
    --api-key "$key" --empty-addr "$empty_grpc" --empty-http "$empty_http" --http "$main_http"
run "Python client README example" "$py" clients/python/example.py "$main_grpc" models/samples/real/*.wav
run "Python wheel (release) with the lowest and the newest protobuf/grpcio, outside the repository" \
    tests/clients/python_wheel.sh "$main_grpc"
run "Python live streaming example (stream_pcm in real time)" \
    live_check "$py" clients/python/live_example.py "$main_grpc" "$live_sample"

# Go in module mode: the dependencies come from the release's module proxy directory (Debian's
# Go packages, see clients/go/module_proxy.py); go.sum is written locally (not committed).
bash scripts/release-clients.sh "$tmp/release"
gorun() { (cd clients/go && GOPROXY="file://$tmp/release/go-proxy" GOSUMDB=off GOFLAGS=-mod=mod \
    GOMODCACHE="$tmp/gomodcache" "$@"); }
run "Go client: go vet" gorun go vet ./...
run "Go client: go test" gorun go test -count=1 ./...
run "Go client example" gorun go run ./example -addr "$main_grpc" "$root"/models/samples/real/*.wav
run "Go live streaming example (StreamPCM in real time)" \
    live_check gorun go run ./live -addr "$main_grpc" "$root/$live_sample"
run "Go client README install + example, in an empty module outside the repository" \
    tests/clients/go_install.sh "$main_grpc"

run "Node client: npm test (node --test)" bash -c 'cd clients/node && npm test --silent'
run "Node live streaming example (streamPcm in real time)" \
    live_check node clients/node/live_example.js "$main_grpc" "$live_sample"
run "Node client README install (release tarball) + example, in an empty project outside the repository" \
    tests/clients/node_install.sh "$main_grpc"
run "Node client README example" bash -c "cd clients/node && node example.js '$main_grpc' ../../models/samples/real/*.wav"

run "docs/API.md examples (request ids, typed errors, batches)" \
    env VERICLIP_GO_PROXY="$tmp/release/go-proxy" tests/clients/api_examples.sh "$main_grpc" "$main_http" "$py"

if [ ${#failed[@]} -gt 0 ]; then
    log "failed: ${failed[*]}"
    log "server logs: main"; tail -n 20 "$tmp/main.log" >&2
    exit 1
fi
log "all API checks passed"
