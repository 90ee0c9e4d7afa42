"""Shared helpers for tests/k8s: the pinned tools of .vendor/k8s-venv and kustomize rendering."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KUBECTL = str(VENV_BIN / "kubectl")

# Overlays an operator installs, and the optional pieces rendered on top of them for the checks
# (overlay, components): every component at least once, each on the overlay it is meant for.
OVERLAYS = ["cpu", "gpu"]
COMPONENT_RENDERS = [
    ("cpu", ["tls-auth"]),
    ("gpu", ["tls-auth"]),
    ("cpu", ["keda-autoscaling"]),
    ("cpu", ["gateway-grpcroute"]),
    ("gpu", ["nvidia-runtime-class"]),
]
# The sample operator kustomizations (docs/OPERATIONS.md, "Build and point at your image").
OPERATOR_SAMPLE = "tests/k8s/operator-overlay"


def tool(name):
    path = VENV_BIN / name
    if not path.exists():
        sys.exit(f"[k8s] FAIL tools: {path} missing; run scripts/setup.sh k8s")
    return str(path)


def render(kustomization_dir):
    """`kubectl kustomize DIR` as (text, list of objects)."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(kustomization_dir)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {kustomization_dir}: {out.stderr.strip()}")
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def render_with_components(overlay, components, base="overlays"):
    """Renders k8s/BASE/OVERLAY with components added, through a throwaway kustomization
    (kustomize only accepts relative paths to other kustomizations)."""
    with tempfile.TemporaryDirectory(prefix="vericlip-kustomize-") as tmp:
        rel = os.path.relpath(ROOT / "k8s", tmp)
        target = f"{rel}/{base}/{overlay}" if overlay else f"{rel}/{base}"
        doc = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [target],
            "components": [f"{rel}/components/{c}" for c in components],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(doc))
        return render(tmp)


def find(objs, kind, name):
    for o in objs:
        if o.get("kind") == kind and o["metadata"]["name"] == name:
            return o
    raise KeyError(f"{kind}/{name} not in the rendered manifests")


def pod_specs(objs):
    """(object label, pod spec) for every workload."""
    for o in objs:
        kind, name = o.get("kind"), o["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield f"{kind}/{name}", o["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield f"{kind}/{name}", o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield f"{kind}/{name}", o["spec"]
