#!/usr/bin/env bash
# Regenerates src/vericlip_client/v1/vericlip_pb2{,_grpc}.py (+ .pyi) from proto/ with grpcio-tools
# 1.62.3 (generate-requirements.txt: its protobuf 4.25 gencode loads on protobuf 4.21.6 through
# 7.x), imports made relative to the package, and copies the .proto into the package
# (src/vericlip_client/proto/, shipped in the wheel). `generate.sh --check` regenerates into a
# temporary folder and fails if the committed files differ (tests/api/run.sh runs it).
# PYTHON: the interpreter with grpcio-tools (default: clients/python/.gen-venv, which
# clients/setup.sh creates).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$here/../../proto
py=${PYTHON:-$here/.gen-venv/bin/python}
pkg=$here/src/vericlip_client
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$py" -m grpc_tools.protoc -I "$proto" --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
    vericlip/v1/vericlip.proto
# The package is vericlip_client.v1, not a top-level vericlip.v1 (the proto's own path).
sed -i -e 's/^from vericlip\.v1 import vericlip_pb2 as /from . import vericlip_pb2 as /' \
    "$out/vericlip/v1/vericlip_pb2_grpc.py"
sed -i -e "s/'vericlip\.v1\.vericlip_pb2'/'vericlip_client.v1.vericlip_pb2'/" "$out/vericlip/v1/vericlip_pb2.py"
mkdir -p "$out/proto/vericlip/v1"
cp "$proto/vericlip/v1/vericlip.proto" "$out/proto/vericlip/v1/"
files="v1/vericlip_pb2.py v1/vericlip_pb2.pyi v1/vericlip_pb2_grpc.py proto/vericlip/v1/vericlip.proto"
if [ "${1:-}" = "--check" ]; then
    for f in $files; do
        src=$out/${f/#v1\//vericlip/v1/}
        diff -u "$pkg/$f" "$src" \
            || { echo "clients/python/src/vericlip_client/$f is stale: run clients/python/generate.sh and commit" >&2; exit 1; }
    done
    echo "clients/python: generated code is current"
else
    mkdir -p "$pkg/v1" "$pkg/proto/vericlip/v1"
    for f in $files; do cp "${out}/${f/#v1\//vericlip/v1/}" "$pkg/$f"; done
fi
