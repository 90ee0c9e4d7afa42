#!/usr/bin/env bash
# Vericlip's full test suite from a fresh Debian machine: installs what it needs (scripts/setup.sh),
# regenerates the librosa goldens, runs the static checks of the Kubernetes manifests and container
# images (tests/k8s/static_checks.sh), then format, lint, every test of the workspace (the pod
# contract test, service/tests/pod_contract.rs, among them) and the README's demo
# (scripts/demo.sh, with this shell's CARGO_TARGET_DIR, as a person would run it).
# A failing step or test binary does not hide the others: every step runs (cargo test with
# --no-fail-fast), the line `tests: N passed, N failed` is always printed, then the failed steps,
# and the exit status is non-zero if anything failed.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Prerequisites: without them nothing below means anything, so they stop the script.
bash scripts/setup.sh
echo "[test] generating librosa 1.0 goldens"
.venv/bin/python tests/golden/make_goldens.py tests/golden/out

failed_steps=()
# Runs one step; a failure is recorded, not fatal.
step() {
    local name=$1; shift
    echo "[test] $name"
    if ! "$@"; then
        failed_steps+=("$name")
        echo "[test] FAILED: $name" >&2
    fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo_tests() {
    cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
    # A binary that did not build or crashed has no "test result" line: cargo's status tells.
    return "${PIPESTATUS[0]}"
}

step "k8s and image static checks" bash tests/k8s/static_checks.sh
# The alert rules evaluated on recorded series by promtool (installs Debian's prometheus package
# for it when missing): canary worse than stable, stable-version skew, a first load failure.
step "alert rule unit tests (promtool)" bash k8s/monitoring/tests/test-rules.sh
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test (every test binary)" cargo_tests
# The README's first command after setup, under this shell's CARGO_TARGET_DIR (CI sets one outside
# the checkout): the server, the CLI and curl against the bundled registry, then a clean stop.
# With the binaries cargo test has just built (a separate build would resolve features anew).
step "scripts/demo.sh" bash scripts/demo.sh --no-build
# buf lint/breaking, OpenAPI validation and route check, Go/Node/Python clients vs a real server.
# With the server binary cargo test has just built (as the demo, no second build).
step "API contract (tests/api/run.sh)" env VERICLIP_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/vericlip-server" \
    bash tests/api/run.sh

# One total over every test binary (cargo prints one line per binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
if [ ${#failed_steps[@]} -gt 0 ]; then
    printf '[test] failed steps: %s\n' "$(IFS=';'; echo "${failed_steps[*]}")" >&2
    exit 1
fi
echo "[test] all steps passed"
