#!/usr/bin/env bash
# Regenerates types/ (the TypeScript types of every message and of the VericlipClient, its
# methods included) from proto/ with @grpc/proto-loader's proto-loader-gen-types (pinned in
# package-lock.json), with the options index.js loads the proto with (keepCase, enums as names,
# 64-bit integers as numbers, defaults, oneofs). `generate-types.sh --check` regenerates into a
# temporary folder and fails if the committed files differ (tests/api/run.sh runs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
out=types
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
rm -rf "${out:?}/vericlip" "$out/vericlip.ts"
# Run from here with the proto as ../../proto, so the files' "Original file" lines never change.
./node_modules/.bin/proto-loader-gen-types --keepCase --longs=Number --enums=String --defaults --oneofs \
    --grpcLib=@grpc/grpc-js --includeDirs ../../proto --outDir="$out" vericlip/v1/vericlip.proto >/dev/null
if [ "${1:-}" = "--check" ]; then
    diff -ru types "$out" || { echo "clients/node/types is stale: run clients/node/generate-types.sh and commit" >&2; exit 1; }
    echo "clients/node: generated types are current"
fi
