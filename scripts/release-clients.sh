#!/usr/bin/env bash
# Builds the client release artefacts, all with the API client version in clients/VERSION:
#   dist/clients/go-proxy/   the Go module github.com/vericlip/vericlip/clients/go@vVERSION with
#                            the modules it builds with (from Debian's Go source packages), in
#                            the layout a module proxy serves: GOPROXY=file://.../go-proxy
#   dist/clients/vericlip-client-VERSION.tgz   the Node package (npm), the proto and the
#                            generated TypeScript types inside
#   dist/clients/vericlip_client-VERSION-py3-none-any.whl   the Python package (import
#                            vericlip_client; the stubs and the proto inside)
# Needs what clients/setup.sh installs. Usage: scripts/release-clients.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/dist/clients}")
version=$(tr -d ' \n' < "$root/clients/VERSION")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "clients/VERSION: not a version: $version" >&2; exit 1; }
log() { printf '[release-clients] %s\n' "$*" >&2; }

mkdir -p "$out"
rm -rf "$out/go-proxy"
python3 "$root/clients/go/module_proxy.py" "$out/go-proxy" "$version" >/dev/null
log "Go: $out/go-proxy (github.com/vericlip/vericlip/clients/go@v$version)"

# Node: the package with the proto inside (the client loads it at run time), as an npm tarball.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$root"/clients/node/{package.json,index.js,index.d.ts,example.js,live_example.js,README.md} "$stage/"
cp -r "$root/clients/node/types" "$stage/"
mkdir -p "$stage/proto/vericlip/v1"
cp "$root/proto/vericlip/v1/vericlip.proto" "$stage/proto/vericlip/v1/"
(cd "$stage" && npm version --no-git-tag-version --allow-same-version "$version" >/dev/null \
    && npm pack --silent --pack-destination "$out" >/dev/null)
log "Node: $out/vericlip-client-$version.tgz"

# Python: the wheel, built with tests/api/.venv's setuptools (pinned) from a copy whose version is
# the release's.
pystage=$(mktemp -d)
trap 'rm -rf "$stage" "$pystage"' EXIT
cp -r "$root/clients/python/pyproject.toml" "$root/clients/python/README.md" "$root/clients/python/src" "$pystage/"
rm -rf "$pystage/src/"*.egg-info
sed -i -e "s/^version = .*/version = \"$version\"/" "$pystage/pyproject.toml"
"${PYTHON:-$root/tests/api/.venv/bin/python}" -m pip wheel -q --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$out" "$pystage" >/dev/null
log "Python: $out/vericlip_client-$version-py3-none-any.whl"
