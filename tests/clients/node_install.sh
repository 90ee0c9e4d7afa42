#!/usr/bin/env bash
# The Node client as a user installs it: scripts/release-clients.sh builds the npm tarball, then
# clients/node/README.md's own blocks (node-install, node-example as main.js, node-run) run in an
# empty directory outside the repository against a real server. Passes when the program prints a
# verdict and a request id for every sample it was given.
# Usage: tests/clients/node_install.sh GRPC_ADDR      (VERICLIP_API_KEY: the server's key, if any)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
addr=${1:?usage: node_install.sh GRPC_ADDR}
work=$(mktemp -d -t vericlip-node-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
readme=$root/clients/node/README.md
block() { python3 "$root/tests/clients/readme_block.py" "$readme" "$1"; }

bash "$root/scripts/release-clients.sh" "$work/release"
place() { sed -e "s#/path/to/vericlip/dist/clients#$work/release#g" -e "s#/path/to/vericlip#$root#g" \
              -e "s#127.0.0.1:50051#$addr#g"; }
{
    echo 'set -euo pipefail'
    block node-install | place
    echo "cat > main.js <<'VERICLIP_EOF'"
    block node-example
    echo 'VERICLIP_EOF'
    block node-run | place
} > "$work/steps.sh"
mkdir "$work/home"
out=$(cd "$work/home" && bash "$work/steps.sh")
echo "$out"
n=0
for f in "$root"/models/samples/real/*.wav; do
    n=$((n + 1))
    grep -E "^$f: VERDICT_(REAL|FAKE|NO_SPEECH) fake_score=[0-9.]+ request_id=[0-9a-f-]+$" <<<"$out" >/dev/null \
        || { echo "node_install: no verdict line for $f" >&2; exit 1; }
done
[ "$n" -gt 0 ] || { echo "node_install: no samples" >&2; exit 1; }
echo "node_install: the README's install and example work in an empty project ($n files classified)"
