#!/usr/bin/env bash
# Static checks of the Kubernetes manifests (k8s/) and the container images (deploy/Dockerfile*),
# with the pinned tools that `scripts/setup.sh k8s` installs into .vendor/k8s-venv/:
#   yamllint on k8s/; hadolint and checkov on both Dockerfiles; each overlay (and the tls-auth
#   component, and k8s/monitoring) rendered with `kubectl kustomize`, core kinds validated
#   strictly with kubernetes-validate against the oldest supported and the newest known
#   Kubernetes, checkov on the rendered manifests; the Prometheus Operator objects (CRDs unknown
#   to kubernetes-validate) checked structurally, their PromQL parsed, their metric names looked
#   up in the server's metrics; probes, config and ServiceMonitor on the admin port (9090, plain
#   HTTP) and the NetworkPolicy per port (9090 only from the metrics namespaces, which get no API
#   port). Accepted findings: tests/k8s/skips.yaml (each with a reason).
# Prints one line per check and exits non-zero if any fails.
# Usage: tests/k8s/static_checks.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.vendor/k8s-venv/bin/python
if [ ! -x "$py" ]; then
    echo "[k8s] FAIL tools: .vendor/k8s-venv missing; run scripts/setup.sh k8s" >&2
    exit 1
fi
exec "$py" tests/k8s/static_checks.py "$@"
