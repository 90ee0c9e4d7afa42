#!/usr/bin/env bash
# Idempotent set-up of what the API checks and the client tests need (tests/api/run.sh), on a
# fresh Debian machine, from package registries only:
#   - Debian: Go, protoc, protoc-gen-go, protoc-gen-go-grpc, and grpc-go / protobuf-go / genproto
#     / go-cmp as Debian's Go source packages (scripts/release-clients.sh serves them with the Go
#     client as a module proxy directory: module mode without a network proxy); Node.js and npm
#     when `node` is missing; python3-venv;
#   - npm (exact versions, package-lock.json): buf (tests/api/), @grpc/grpc-js and
#     @grpc/proto-loader (clients/node/);
#   - PyPI (pinned, tests/api/requirements.txt) into tests/api/.venv: the OpenAPI validator,
#     jsonschema, websockets, grpcio and grpcio-tools; then the Python client package
#     (clients/python) installed into it with pip; and grpcio-tools 1.62.3 (the Python stub
#     generator, clients/python/generate-requirements.txt) into clients/python/.gen-venv.
# Usage: clients/setup.sh        (safe to run again; does only what is missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[clients/setup] %s\n' "$*" >&2; }

# golang-github-golang-protobuf-1-5-dev: grpc-go's codec goes through github.com/golang/protobuf,
# and only its 1.5 line (a wrapper over protobuf-go) marshals protoc-gen-go 1.28's messages; apt
# would otherwise pick the 1.3 line for golang-google-grpc-dev.
APT=(golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc golang-github-golang-protobuf-1-5-dev
     golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev golang-github-google-go-cmp-dev
     golang-golang-x-net-dev golang-golang-x-sys-dev golang-golang-x-text-dev python3-venv)
command -v node >/dev/null 2>&1 || APT+=(nodejs)
command -v npm >/dev/null 2>&1 || APT+=(npm)
missing=()
for p in "${APT[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
else
    log "Debian packages: present"
fi

# npm ci when node_modules is missing or older than the lock file.
npm_install() {
    local dir=$1 stamp=$1/node_modules/.package-lock.json
    if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then log "$dir: node modules present"; return; fi
    log "$dir: npm ci"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$stamp"
}
npm_install tests/api
npm_install clients/node

venv=tests/api/.venv
want=$(cat tests/api/requirements.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    log "$venv: present"
else
    log "$venv: creating (tests/api/requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/api/requirements.txt
    echo "$want" > "$venv/.requirements.sha256"
fi
# The stub generator (clients/python/generate.sh) in a venv of its own: grpcio-tools 1.62.3 needs
# protobuf < 5, which the checks' venv (protobuf 7) cannot hold.
gen=clients/python/.gen-venv
want=$(sha256sum clients/python/generate-requirements.txt | cut -d' ' -f1)
if [ -x "$gen/bin/python" ] && [ "$(cat "$gen/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    log "$gen: present"
else
    log "$gen: creating (clients/python/generate-requirements.txt)"
    rm -rf "$gen"
    python3 -m venv "$gen"
    "$gen/bin/python" -m pip install -q --disable-pip-version-check -r clients/python/generate-requirements.txt
    echo "$want" > "$gen/.requirements.sha256"
fi
# Reinstalled every time (a few seconds, no download: setuptools is in the venv) so the checks
# run the package as it is in the tree, installed the way a user installs it.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall \
    ./clients/python >/dev/null
log "clients/python: installed into $venv"
