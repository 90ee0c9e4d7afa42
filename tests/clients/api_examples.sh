#!/usr/bin/env bash
# Runs docs/API.md's marked examples (<!-- test: NAME --> before the block) against a real server
# and checks what each prints: the documentation's own code, not a copy of it.
# Usage: tests/clients/api_examples.sh GRPC_ADDR HTTP_ADDR PYTHON
#   (VERICLIP_API_KEY: the server's key; PYTHON: an interpreter with vericlip_client installed)
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

out=$(bash -o pipefail -c "$(block api-curl-request-id)")
expect api-curl-request-id "$out" '^x-request-id: my-order-17'
expect api-curl-request-id "$out" '^vericlip-error: undecodable_audio'

out=$("$py" -c "$(block api-python-errors)")
expect api-python-errors "$out" '^StatusCode.INVALID_ARGUMENT empty_audio [0-9a-f]{8}-[0-9a-f]{8} None$'

out=$(node -e "$(block api-node-errors)")
expect api-node-errors "$out" '^3 empty_audio [0-9a-f]{8}-[0-9a-f]{8} null$'

exit $failed
