#!/usr/bin/env bash
# Regenerates vericlip/v1/*.pb.go from proto/ with Debian's protoc, protoc-gen-go and
# protoc-gen-go-grpc (clients/setup.sh installs them). `generate.sh --check` regenerates into a
# temporary folder and fails if the committed files differ (tests/api/run.sh runs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$here/../../proto
pkg=github.com/vericlip/vericlip/clients/go/vericlip/v1
out=$here
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out/vericlip/v1"
# The .proto has no go_package option (adding one is a change buf breaking refuses within v1),
# so the import path is given here with M.
protoc -I "$proto" \
    --go_out="$out" --go_opt=paths=source_relative --go_opt="Mvericlip/v1/vericlip.proto=$pkg;vericlipv1" \
    --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
    --go-grpc_opt="Mvericlip/v1/vericlip.proto=$pkg;vericlipv1" \
    vericlip/v1/vericlip.proto
if [ "${1:-}" = "--check" ]; then
    for f in vericlip.pb.go vericlip_grpc.pb.go; do
        diff -u "$here/vericlip/v1/$f" "$out/vericlip/v1/$f" \
            || { echo "clients/go/vericlip/v1/$f is stale: run clients/go/generate.sh and commit" >&2; exit 1; }
    done
    echo "clients/go: generated code is current"
fi
