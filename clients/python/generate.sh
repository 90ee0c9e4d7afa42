#!/usr/bin/env bash
# Regenerates src/vericlip/v1/vericlip_pb2{,_grpc}.py from proto/ with grpcio-tools (pinned in
# tests/api/requirements.txt). `generate.sh --check` regenerates into a temporary folder and fails
# if the committed files differ (tests/api/run.sh runs it). PYTHON: the interpreter with
# grpcio-tools (default: tests/api/.venv, which clients/setup.sh creates).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$here/../../proto
py=${PYTHON:-$here/../../tests/api/.venv/bin/python}
out=$here/src
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
"$py" -m grpc_tools.protoc -I "$proto" --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
    vericlip/v1/vericlip.proto
if [ "${1:-}" = "--check" ]; then
    for f in vericlip_pb2.py vericlip_pb2.pyi vericlip_pb2_grpc.py; do
        diff -u "$here/src/vericlip/v1/$f" "$out/vericlip/v1/$f" \
            || { echo "clients/python/src/vericlip/v1/$f is stale: run clients/python/generate.sh and commit" >&2; exit 1; }
    done
    echo "clients/python: generated code is current"
fi
