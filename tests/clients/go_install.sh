#!/usr/bin/env bash
# The Go client as a user installs it: scripts/release-clients.sh builds the release, then
# clients/go/README.md's own blocks (go-install, go-example as main.go, go-run) run in an empty
# directory outside the repository, in module mode, against a real server. Passes when the
# program prints a verdict and a request id for every sample it was given.
# Usage: tests/clients/go_install.sh GRPC_ADDR      (VERICLIP_API_KEY: the server's key, if any)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
addr=${1:?usage: go_install.sh GRPC_ADDR}
work=$(mktemp -d -t vericlip-go-install.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
readme=$root/clients/go/README.md
block() { python3 "$root/tests/clients/readme_block.py" "$readme" "$1"; }

bash "$root/scripts/release-clients.sh" "$work/release"
# The README's placeholders: where the release and the repository are, and the server.
place() { sed -e "s#/path/to/vericlip/dist/clients#$work/release#g" -e "s#/path/to/vericlip#$root#g" \
              -e "s#127.0.0.1:50051#$addr#g"; }
{
    echo 'set -euo pipefail'
    block go-install | place
    echo "cat > main.go <<'VERICLIP_EOF'"
    block go-example
    echo 'VERICLIP_EOF'
    block go-run | place
} > "$work/steps.sh"
mkdir "$work/home"
out=$(cd "$work/home" && GOMODCACHE="$work/modcache" GOFLAGS= bash "$work/steps.sh")
echo "$out"
n=0
for f in "$root"/models/samples/real/*.wav; do
    n=$((n + 1))
    grep -E "^$f: VERDICT_(REAL|FAKE|NO_SPEECH) fake_score=[0-9.]+ model=[^ ]+ v[0-9]+ request_id=[0-9a-f-]+$" <<<"$out" >/dev/null \
        || { echo "go_install: no verdict line for $f" >&2; exit 1; }
done
[ "$n" -gt 0 ] || { echo "go_install: no samples" >&2; exit 1; }
echo "go_install: the README's install and example work in an empty module ($n files classified)"
