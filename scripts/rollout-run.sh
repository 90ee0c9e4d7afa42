#!/usr/bin/env bash
# The measured rollout run (docs/BENCHMARKS.md "Rollout on two replicas"): two real
# vericlip-server replicas on one registry under continuous load, driven by the real
# `vericlip-train model` commands: canary share of 1,000 routing keys at fraction 0.1 (and
# whether each key got the same version on both replicas), abort, canary, promote and rollback
# with the requests each overlapped and the failed ones, and the time until every replica
# reports the new generation (`model status --wait`). Prints the machine's load first.
# Usage: scripts/rollout-run.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [[ "${1:-}" == "--release" ]]; then profile=(--release); fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --workspace --locked "${profile[@]}" --bin vericlip-server --bin vericlip-train
cargo test --workspace --locked "${profile[@]}" --test lifecycle measured_rollout_run -- --ignored --nocapture
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
