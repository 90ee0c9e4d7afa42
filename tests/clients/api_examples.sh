#!/usr/bin/env bash
# Runs docs/API.md's marked examples (<!-- test: NAME --> before the block) against a real server
# and checks what each prints: the documentation's own code, not a copy of it.
# Usage: tests/clients/api_examples.sh GRPC_ADDR HTTP_ADDR PYTHON
#   (VERICLIP_API_KEY: the server's key; PYTHON: an interpreter with vericlip_client installed;
#   VERICLIP_GO_PROXY: the release's Go module proxy directory, scripts/release-clients.sh's
#   go-proxy, for the Go programs, built in an empty module outside the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
grpc=${1:?usage: api_examples.sh GRPC_ADDR HTTP_ADDR PYTHON} http=${2:?} py=${3:?}
doc=$root/docs/API.md
block() { python3 "$root/tests/clients/readme_block.py" "$doc" "$1" \
    | sed -e "s#127.0.0.1:50051#$grpc#g" -e "s#127.0.0.1:8080#$http#g"; }
cd "$root"
failed=0
expect() {  # NAME OUTPUT REGEX
    if grep -Eq "$3" <<<"$2"; then echo "ok: docs/API.md $1"; else echo "FAILED: docs/API.md $1 printed: $2" >&2; failed=1; fi
}
expect_lines() {  # NAME OUTPUT REGEX...: exactly one line per regex, in order
    local name=$1 out=$2; shift 2
    local -a lines; mapfile -t lines <<<"$out"
    local i ok=1
    [ ${#lines[@]} -eq $# ] || ok=0
    for ((i = 0; ok && i < $#; i++)); do
        local re=${*:i+1:1}
        grep -Eq "^$re\$" <<<"${lines[i]}" || ok=0
    done
    if [ $ok = 1 ]; then echo "ok: docs/API.md $name"; else echo "FAILED: docs/API.md $name printed: $out" >&2; failed=1; fi
}

out=$(bash -o pipefail -c "$(block api-curl-request-id)")
expect api-curl-request-id "$out" '^x-request-id: my-order-17'
expect api-curl-request-id "$out" '^vericlip-error: undecodable_audio'

out=$("$py" -c "$(block api-python-errors)")
expect api-python-errors "$out" '^StatusCode.INVALID_ARGUMENT empty_audio [0-9a-f]{8}-[0-9a-f]{8} None$'

out=$(node -e "$(block api-node-errors)")
expect api-node-errors "$out" '^3 empty_audio [0-9a-f]{8}-[0-9a-f]{8} null$'

# The basic examples: curl (raw body, form upload, raw PCM, models), Node, Python.
out=$(bash -o pipefail -c "$(block api-curl-classify)")
kinds=$("$py" -c 'import json, sys
docs = [json.loads(line) for line in sys.stdin.read().splitlines()]
print(" ".join(d.get("verdict", "models" if "models" in d else "?") for d in docs))' <<<"$out" || true)
expect api-curl-classify "$kinds" '^(real|fake) (real|fake) no_speech models$'

out=$(node -e "$(block api-node-classify)")
expect_lines api-node-classify "$out" 'VERDICT_(REAL|FAKE) 0\.[0-9]{4} 0\.[0-9]{4}'

out=$("$py" -c "$(block api-python-classify)")
expect api-python-classify "$out" '^(real|fake) 0\.[0-9]+ 0\.[0-9]+$'
expect api-python-classify "$out" '^segment 0 (real|fake)$'
expect api-python-classify "$out" '^summary (real|fake)$'

# The service config block is the one the clients set.
doc_config=$(block api-service-config)
out=$("$py" - "$doc_config" <<'PY'
import json, subprocess, sys
import vericlip_client as vc
doc = json.loads(sys.argv[1])
node = json.loads(subprocess.run(["node", "-e", "console.log(JSON.stringify(require('./clients/node').SERVICE_CONFIG))"],
                                 check=True, capture_output=True, text=True).stdout)
print("python", doc == vc.SERVICE_CONFIG, "node", doc == node)
PY
)
expect api-service-config "$out" '^python True node True$'

# Batches: each clip's own result or error, in order.
out=$(bash -o pipefail -c "$(block api-curl-batch)")
kinds=$("$py" -c 'import json, sys; b = json.load(sys.stdin)
print(" ".join(next(iter(r)) for r in b["results"]), b["results"][1]["error"]["name"], b["results"][0]["response"]["verdict"])' <<<"$out" || true)
expect api-curl-batch "$kinds" '^response error undecodable_audio (real|fake)$'

out=$("$py" -c "$(block api-python-batch)")
expect_lines api-python-batch "$out" '(real|fake) 0\.[0-9]+ [0-9]+' '(real|fake) 0\.[0-9]+ [0-9]+' \
    'error undecodable_audio StatusCode.INVALID_ARGUMENT'

out=$(node -e "$(block api-node-batch)")
expect_lines api-node-batch "$out" 'VERDICT_(REAL|FAKE) 0\.[0-9]{3}' 'error undecodable_audio 3'

# Go: the block is a whole program, built against the release as a user's module would be.
work=$(mktemp -d -t vericlip-api-go.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
(
    cd "$work"
    export GOPROXY=file://${VERICLIP_GO_PROXY:?set VERICLIP_GO_PROXY to the release go-proxy directory} GOSUMDB=off \
        GOFLAGS=-mod=mod GOMODCACHE=$work/modcache
    go mod init example.com/batch >/dev/null 2>&1
    block api-go-batch > main.go
    go get "github.com/vericlip/vericlip/clients/go@v$(cat "$root/clients/VERSION")" >/dev/null 2>&1
    go build -o batch .
) || { echo "FAILED: docs/API.md api-go-batch does not build" >&2; failed=1; }
out=$("$work/batch" 2>&1 || true)
expect_lines api-go-batch "$out" 'VERDICT_(REAL|FAKE) 0\.[0-9]+' 'VERDICT_(REAL|FAKE) 0\.[0-9]+' \
    'error empty_audio InvalidArgument'

exit $failed
