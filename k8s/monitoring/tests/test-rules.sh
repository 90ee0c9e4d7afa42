#!/usr/bin/env bash
# promtool's rule unit tests (tests/rules-test.yaml) on the alert rules of prometheusrule.yaml:
# each alert is evaluated on recorded series and must fire (or stay quiet) as the test says.
# promtool comes from Debian's `prometheus` package, installed here when it is missing.
# Usage: k8s/monitoring/tests/test-rules.sh
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null; then
    echo "[rules] installing promtool (Debian package prometheus)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The PrometheusRule's spec (its last top-level key) is a plain Prometheus rule file, indented.
sed -n '/^spec:/,$p' ../prometheusrule.yaml | tail -n +2 | sed 's/^  //' >"$tmp/rules.yaml"
cp rules-test.yaml "$tmp/"
cd "$tmp"
promtool check rules rules.yaml
promtool test rules rules-test.yaml
