#!/usr/bin/env bash
# Vericlip's full test suite from a fresh Debian machine: installs what it needs (scripts/setup.sh),
# regenerates the librosa goldens, runs the static checks of the Kubernetes manifests and container
# images (tests/k8s/static_checks.sh), then format, lint and every test of the workspace (the pod
# contract test, service/tests/pod_contract.rs, among them).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "[test] generating librosa 1.0 goldens"
.venv/bin/python tests/golden/make_goldens.py tests/golden/out

echo "[test] k8s and image static checks"
bash tests/k8s/static_checks.sh

echo "[test] cargo fmt --check"
cargo fmt --all -- --check

echo "[test] cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "[test] cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One total over every test binary (cargo prints one line per binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
bash tests/api/run.sh  # buf lint/breaking, OpenAPI validation and route check, Go/Node/Python clients vs a real server
