"""Pod contract test without a cluster (driven by service/tests/pod_contract.rs).

For each overlay, renders it with `kubectl kustomize` and runs the real vericlip-server binary the
way the kubelet would run the server pod:
  - the command line is the image's ENTRYPOINT/CMD (parsed from the Dockerfile that builds the
    overlay's image) overridden by the container's command/args by Kubernetes' rules; the
    environment is the Dockerfile's ENV overridden by the container's env (ConfigMap references
    resolved from the rendered objects);
  - the container filesystem is a temp dir: the Dockerfile's COPY sources from the repo (the
    bundled models at /opt/vericlip/models), the ConfigMap's files at its mount path, a registry
    dir for the PVC, an emptyDir for /tmp; absolute paths in args, env and the config file are
    rewritten to those dirs (mounts shadow image paths, as in a container). Built artifacts stand
    in for the build stage's output: the binary under test and .vendor/onnxruntime's
    libonnxruntime (the CPU library also for the GPU image: there is no GPU here, so for the gpu
    overlay only VERICLIP__RUNTIME__EXECUTION_PROVIDER is set back to "auto", the one change);
  - the ports: the effective config must bind the containerPorts; the test then overrides
    VERICLIP__GRPC__ADDR and VERICLIP__HTTP__ADDR with free loopback ports (the one other change)
    and sends the probes there;
  - as root, processes run as the pod's runAsUser/runAsGroup with fsGroup as their only group
    (setpriv), the registry is group-writable for the init container (fsGroup), then made
    read-only (`chmod -R a-w`, the server's readOnly mount), the image root read-only too;
  - the init container (registry seeding) runs first, to completion, twice (a pod restart
    reruns it: nothing may change the second time);
  - probes as the kubelet: startup every periodSeconds until success within failureThreshold,
    then readiness (must pass) and liveness, each with timeoutSeconds as the HTTP timeout; one
    classification over HTTP; RSS must stay inside the memory headroom; every metric the
    PrometheusRule names must be exported;
  - termination: preStop sleep, SIGTERM, readiness 503 (or refused) at once, exit code 0 within
    terminationGracePeriodSeconds - preStop.
Also: static pod-spec contracts (no replicas under an HPA, Pod Security "restricted" fields,
grace period covers preStop + drain, memory limit >= budget + headroom), a registry-less start
(alive, not ready, never restarted), and the old command line (--config twice) must be caught
as a crash by the same runner.
Prints `pod contract: all checks passed` at the end, or exits 1.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from k8stools import ROOT, find, pod_specs, render  # noqa: E402

# Which Dockerfile builds which image (the overlays' `images:` entries).
# The manifests use the plain names that scripts/build-image.sh builds and that an operator's
# kustomization retargets (`kustomize edit set image vericlip-server=REGISTRY/...`).
IMAGE_DOCKERFILES = {
    "vericlip-server": "deploy/Dockerfile",
    "vericlip-server-cuda": "deploy/Dockerfile.cuda",
}
# Where GPU nodes put the driver's libcuda.so.1: GKE's mount, the NVIDIA container toolkit's
# (EKS GPU AMIs, the GPU operator). The CUDA image's and the gpu pod's LD_LIBRARY_PATH need both.
DRIVER_LIB_DIRS = ["/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu"]
# The image each overlay must run (a kustomize `images:` entry that no longer matches the name the
# base gave would silently keep the CPU image).
OVERLAY_DOCKERFILES = {"cpu": "deploy/Dockerfile", "gpu": "deploy/Dockerfile.cuda"}
ORT_LIB = "libonnxruntime.so.1.31.1"
GRACE_MARGIN_S = 5  # terminationGracePeriodSeconds must exceed preStop + drain by at least this
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

failures = []


def check(cond, what):
    print(f"[pod] {'ok  ' if cond else 'FAIL'} {what}", flush=True)
    if not cond:
        failures.append(what)
    return cond


# ---------------------------------------------------------------- Dockerfile (final stage)


class Image:
    def __init__(self, dockerfile):
        self.dockerfile = dockerfile
        self.entrypoint, self.cmd, self.env, self.copies, self.user = [], [], {}, [], None
        lines, buf = [], ""
        for raw in (ROOT / dockerfile).read_text().splitlines():
            if not buf and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            if raw.rstrip().endswith("\\"):
                buf += raw.rstrip()[:-1] + " "
                continue
            lines.append(buf + raw)
            buf = ""
        final = []
        for line in lines:
            if line.split()[0].upper() == "FROM":
                final = []  # only the last stage is the image
            final.append(line)
        for line in final:
            op, rest = line.split(None, 1) if " " in line.strip() else (line.strip(), "")
            op = op.upper()
            if op == "ENTRYPOINT":
                self.entrypoint, self.cmd = json.loads(rest), []  # ENTRYPOINT resets CMD
            elif op == "CMD":
                self.cmd = json.loads(rest)
            elif op == "ENV":
                for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                    self.env[k] = v.strip('"')
            elif op == "COPY":
                parts = rest.split()
                if not any(p.startswith("--from") for p in parts):
                    srcs, dst = [p for p in parts[:-1] if not p.startswith("--")], parts[-1]
                    self.copies += [(s, dst) for s in srcs]
            elif op == "USER":
                self.user = rest.strip()
        if not self.entrypoint and not self.cmd:
            raise ValueError(f"{dockerfile}: no ENTRYPOINT or CMD")


def effective_command(image, container):
    """Kubernetes: command replaces ENTRYPOINT (and drops CMD); args replace CMD."""
    if container.get("command"):
        return list(container["command"]) + list(container.get("args") or [])
    if container.get("args") is not None:
        return list(image.entrypoint) + list(container["args"])
    return list(image.entrypoint) + list(image.cmd)


# ---------------------------------------------------------------- the pod's filesystem


class PodFs:
    """A temp dir standing in for the container filesystem: image content, then mounts."""

    def __init__(self, tmp, image, server_bin, uid, gid):
        self.tmp, self.image, self.uid, self.gid = tmp, image, uid, gid
        self.rootfs = tmp / "rootfs"
        self.mounts = {}  # container path -> host dir
        for src, dst in image.copies:
            target = self.rootfs / dst.lstrip("/")
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / src, target / Path(src).name if dst.endswith("/") else target)
        # Build-stage output (COPY --from=build): the binary under test and the ONNX Runtime
        # library that .vendor/onnxruntime holds (the CPU library, for the CUDA image too).
        bindir = self.rootfs / "usr/local/bin"
        bindir.mkdir(parents=True, exist_ok=True)
        shutil.copy(server_bin, bindir / "vericlip-server")
        ort = image.env.get("ORT_DYLIB_PATH")
        if ort:
            dst = self.rootfs / ort.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / ".vendor/onnxruntime" / ORT_LIB, dst)

    def with_mounts(self, container, hosts):
        """This filesystem as one container sees it: its own volumeMounts over the image."""
        f = PodFs.__new__(PodFs)
        f.__dict__.update(self.__dict__)
        f.mounts = {}
        for m in container.get("volumeMounts") or []:
            f.mount(m["mountPath"], hosts[m["name"]])
        return f

    def mount(self, path, host):
        self.mounts[path.rstrip("/")] = host

    def host(self, path):
        """Container path -> host path; the longest mount prefix wins, else the image."""
        best = None
        for m in self.mounts:
            if path == m or path.startswith(m + "/"):
                if best is None or len(m) > len(best):
                    best = m
        if best is not None:
            return str(self.mounts[best]) + path[len(best):]
        return str(self.rootfs) + path

    def rewrite(self, value):
        """Maps every absolute path in a string (also colon-separated lists) to the host."""
        return ":".join(self.host(p) if p.startswith("/") else p for p in value.split(":"))

    def which(self, name, env):
        if "/" in name:
            return self.host(name)
        for d in env.get("PATH", DEFAULT_PATH).split(":"):
            p = Path(self.host(d)) / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
        raise FileNotFoundError(f"{name}: not on the image's PATH")


def make_readable(path):
    """Other users (the pod's uid) must reach the temp tree: a container runtime's layers are
    world-readable too."""
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = Path(dirpath, f)
            p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.stat().st_mode & 0o100 else 0))


def make_read_only(path):
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            p = Path(dirpath, f)
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        os.chmod(dirpath, os.stat(dirpath).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(path):
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR)


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_prefix(uid, gid, fs_group):
    if os.geteuid() != 0:
        return []  # already unprivileged: run as this user
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={fs_group}", "--"]


class Container:
    """One container's process: argv resolved against the pod filesystem."""

    def __init__(self, argv, env, prefix, log_path):
        self.argv, self.env, self.prefix, self.log_path = argv, env, prefix, log_path
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.prefix + self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def run(self, timeout):
        self.start()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()

    def output(self):
        return Path(self.log_path).read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


def http_get(url, timeout):
    """(status, body) or (None, error) as a kubelet probe sees it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def probe_ok(status):
    return status is not None and 200 <= status < 400


def probe_url(probe, ports):
    hg = probe["httpGet"]
    if not isinstance(hg["port"], str):
        raise ValueError(f"probe port {hg['port']}: name the container port instead")
    port = ports[hg["port"]]
    scheme = hg.get("scheme", "HTTP").lower()
    return f"{scheme}://127.0.0.1:{port}{hg.get('path', '/')}"


def run_startup_probe(probe, ports, proc):
    """Every periodSeconds until success; failureThreshold failures in a row = restart."""
    url, period = probe_url(probe, ports), probe.get("periodSeconds", 10)
    timeout, threshold = probe.get("timeoutSeconds", 1), probe.get("failureThreshold", 3)
    time.sleep(probe.get("initialDelaySeconds", 0))
    t0 = time.monotonic()
    for attempt in range(1, threshold + 1):
        if proc.poll() is not None:
            return False, f"process exited with {proc.returncode} before the startup probe passed"
        status, _ = http_get(url, timeout)
        if probe_ok(status):
            return True, f"startup probe passed on attempt {attempt} after {time.monotonic() - t0:.1f} s"
        time.sleep(period)
    return False, f"startup probe failed {threshold} times: the kubelet would restart the container"


def resolve_env(container, objs, fs, image):
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": "vericlip-server-test"}
    env.update({k: v for k, v in image.env.items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "valueFrom" in e and "configMapKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["configMapKeyRef"]
            env[e["name"]] = find(objs, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            raise ValueError(f"env {e['name']}: unsupported source {e}")
    for ef in container.get("envFrom") or []:
        cm = find(objs, "ConfigMap", ef["configMapRef"]["name"])
        for k, v in cm.get("data", {}).items():
            env.setdefault(ef.get("prefix", "") + k, v)
    # PATH stays the container's (which() maps it); other paths are mapped to the pod dirs.
    return {k: (fs.rewrite(v) if "/" in v and k != "PATH" else v) for k, v in env.items()}


def config_values(binary_argv, env, prefix):
    """The effective settings as the binary loads them (`vericlip-server config`)."""
    out = subprocess.run(prefix + binary_argv + ["config"], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"vericlip-server config failed: {out.stderr}")
    text = out.stdout

    def section(name):
        m = re.search(rf"\b{name}: \w+ \{{(.*?)\n    \}}", text, re.S)
        if not m:
            raise RuntimeError(f"no section {name} in:\n{text}")
        return m.group(1)

    def field(sec, key):
        m = re.search(rf"\b{key}: (\"[^\"]*\"|[^,\n]+)", section(sec))
        if not m:
            raise RuntimeError(f"no {sec}.{key} in:\n{text}")
        return m.group(1).strip('"')

    return {
        "grpc.addr": field("grpc", "addr"),
        "http.addr": field("http", "addr"),
        "shutdown.drain_seconds": float(field("shutdown", "drain_seconds")),
        "limits.memory_budget_mb": int(field("limits", "memory_budget_mb")),
        "runtime.execution_provider": field("runtime", "execution_provider"),
        "registry.path": field("registry", "path"),
    }


def mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    return float(m.group(1)) * units.get(m.group(2), 1 / 2**20)


def vm_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


# ---------------------------------------------------------------- static contracts


def check_static(overlay, objs):
    dep = find(objs, "Deployment", "vericlip-server")
    # An HPA, or a KEDA ScaledObject (which creates and owns one).
    scalers = [o for o in objs if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    scaled = [(h["spec"]["scaleTargetRef"].get("kind", "Deployment"), h["spec"]["scaleTargetRef"]["name"]) for h in scalers]
    check(scaled.count(("Deployment", "vericlip-server")) == 1, f"{overlay}: exactly one HPA or ScaledObject scales the Deployment ({[o['kind'] for o in scalers]})")
    for o in objs:
        if (o["kind"], o["metadata"]["name"]) in scaled:
            check("replicas" not in o["spec"], f"{overlay}: {o['kind']}/{o['metadata']['name']} has no spec.replicas (the HPA owns it)")
    for label, spec in pod_specs(objs):
        psc = spec.get("securityContext") or {}
        check(spec.get("automountServiceAccountToken") is False, f"{overlay}: {label}: automountServiceAccountToken false")
        check(not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), f"{overlay}: {label}: no host namespaces")
        check(not any("hostPath" in v for v in spec.get("volumes") or []), f"{overlay}: {label}: no hostPath volumes")
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            csc = c.get("securityContext") or {}
            name = f"{overlay}: {label}/{c['name']}"
            run_as_non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            caps = csc.get("capabilities") or {}
            ok = (
                run_as_non_root is True
                and uid not in (None, 0)
                and seccomp in ("RuntimeDefault", "Localhost")
                and csc.get("allowPrivilegeEscalation") is False
                and csc.get("privileged") is not True
                and caps.get("drop") == ["ALL"]
                and set(caps.get("add") or []) <= {"NET_BIND_SERVICE"}
                and csc.get("readOnlyRootFilesystem") is True
            )
            check(ok, f"{name}: Pod Security restricted (non-root uid {uid}, seccomp {seccomp}, no escalation, drop ALL) + read-only root")
            limits = (c.get("resources") or {}).get("limits") or {}
            check("memory" in limits, f"{name}: has a memory limit")
    return dep


# ---------------------------------------------------------------- running the pod


def run_pod(overlay, objs, server_bin, work, exported, registry_seeded=True, override_env=None):
    """Runs the server pod of the rendered overlay; returns nothing, records checks."""
    dep = find(objs, "Deployment", "vericlip-server")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    server = next(c for c in spec["containers"] if c["name"] == "server")
    image_name = server["image"].rsplit(":", 1)[0].split("@")[0]
    dockerfile = IMAGE_DOCKERFILES.get(image_name)
    if not check(
        dockerfile is not None and dockerfile == OVERLAY_DOCKERFILES.get(overlay, dockerfile),
        f"{overlay}: image {server['image']} is built by {dockerfile} (want {OVERLAY_DOCKERFILES.get(overlay)})",
    ):
        return
    image = Image(dockerfile)
    psc = spec.get("securityContext") or {}
    uid, gid = psc.get("runAsUser", 10001), psc.get("runAsGroup", 10001)
    fs_group = psc.get("fsGroup", gid)
    prefix = user_prefix(uid, gid, fs_group)
    tag = f"{overlay}{'' if registry_seeded else ' (no loadable model)'}"

    tmp = Path(tempfile.mkdtemp(prefix=f"vericlip-pod-{overlay}-", dir=work))
    fs = PodFs(tmp, image, server_bin, uid, gid)
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    hosts = {}
    for name, v in volumes.items():
        host = tmp / "volumes" / name
        host.mkdir(parents=True)
        if "configMap" in v:
            cm = find(objs, "ConfigMap", v["configMap"]["name"])
            for k, text in cm.get("data", {}).items():
                (host / k).write_text(text)
        elif not ("persistentVolumeClaim" in v or "emptyDir" in v):
            check(False, f"{tag}: volume {name}: only configMap, PVC and emptyDir are modelled")
        hosts[name] = host
    make_readable(tmp)
    # fsGroup: volumes belong to the group and are group-writable (setgid dirs).
    for name, v in volumes.items():
        if "persistentVolumeClaim" in v or "emptyDir" in v:
            if os.geteuid() == 0:
                os.chown(hosts[name], 0, fs_group)
            os.chmod(hosts[name], 0o2775)

    # ConfigMap files are rewritten for the pod's path mapping (the mount is read-only anyway).
    sfs = fs.with_mounts(server, hosts)
    for name, v in volumes.items():
        if "configMap" in v:
            for p in hosts[name].iterdir():
                p.chmod(0o644)
                p.write_text(re.sub(r'"(/[^"]*)"', lambda m: '"' + sfs.rewrite(m.group(1)) + '"', p.read_text()))
    make_read_only(fs.rootfs)  # readOnlyRootFilesystem

    # ------------------------------------------------ init containers
    registry_volume = next(n for n, v in volumes.items() if "persistentVolumeClaim" in v)
    registry = hosts[registry_volume]
    if registry_seeded:
        for ic in spec.get("initContainers") or []:
            ifs = fs.with_mounts(ic, hosts)
            ienv = resolve_env(ic, objs, ifs, image)
            argv = effective_command(image, ic)
            argv = [ifs.which(argv[0], ienv)] + [ifs.rewrite(a) if a.startswith("/") else a for a in argv[1:]]
            snapshots = []
            for attempt in (1, 2):
                c = Container(argv, ienv, prefix, tmp / f"init-{ic['name']}-{attempt}.log")
                rc = c.run(timeout=120)
                check(rc == 0, f"{tag}: init container {ic['name']} (run {attempt}) exits 0:\n{c.output().strip()}")
                snapshots.append(sorted((str(p.relative_to(registry)), p.stat().st_mtime_ns) for p in registry.rglob("*")))
            check(snapshots[0] == snapshots[1], f"{tag}: a second seeding run (pod restart) changes nothing")
            check(not [p for p in registry.rglob(".*")], f"{tag}: no staging dot-folders left in the registry")
            if prefix:
                owners = {p.stat().st_uid for p in registry.rglob("*")}
                check(owners == {uid}, f"{tag}: the init container ran as uid {uid} (registry files owned by {sorted(owners)})")
        bundled = fs.host("/opt/vericlip/models")  # the image's bundled registry
        want = sorted(str(p.relative_to(bundled)) for p in Path(bundled).glob("*/*") if p.is_dir())
        have = sorted(str(p.relative_to(registry)) for p in registry.glob("*/*") if p.is_dir())
        check(want and want == have, f"{tag}: registry seeded with the bundled versions {want} (has {have})")
    else:
        # No init container, and the only version in the registry is broken (its model.onnx
        # does not match the manifest's sha256): nothing can serve.
        broken = registry / "vericlip-lstm" / "1"
        shutil.copytree(fs.host("/opt/vericlip/models") + "/vericlip-lstm/1", broken)
        (broken / "model.onnx").write_bytes(b"not an onnx model")
        make_readable(registry / "vericlip-lstm")
    # The server's mount is readOnly: nothing (not even the fsGroup) may write it.
    ro = any(m.get("readOnly") for m in server.get("volumeMounts") or [] if m["name"] == registry_volume)
    check(ro, f"{tag}: the server mounts the registry read-only")
    make_read_only(registry)

    # ------------------------------------------------ the server container
    env = resolve_env(server, objs, sfs, image)
    env.update(override_env or {})
    argv = effective_command(image, server)
    argv = [sfs.which(argv[0], env)] + [sfs.rewrite(a) if a.startswith("/") else a for a in argv[1:]]
    print(f"[pod] {tag}: command line {effective_command(image, server)} (image {dockerfile})", flush=True)
    cfg = config_values(argv[:1], env, prefix)
    container_ports = {p["name"]: p["containerPort"] for p in server.get("ports") or []}
    for name in ("grpc", "http"):
        bound = int(cfg[f"{name}.addr"].rsplit(":", 1)[1])
        check(
            bound == container_ports.get(name) and cfg[f"{name}.addr"].startswith("0.0.0.0:"),
            f"{tag}: {name}.addr {cfg[name + '.addr']} is the containerPort {container_ports.get(name)} on all interfaces",
        )
    check(cfg["registry.path"] == sfs.host("/models"), f"{tag}: registry.path is the registry mount")
    if registry_seeded:
        static_memory(tag, pod, server, cfg)
        drain = cfg["shutdown.drain_seconds"]
        pre_stop = server.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        check(
            grace >= pre_stop + drain + GRACE_MARGIN_S,
            f"{tag}: terminationGracePeriodSeconds {grace} >= preStop {pre_stop} + drain {drain} + {GRACE_MARGIN_S}",
        )

    ports = {name: free_port() for name in container_ports}
    env["VERICLIP__GRPC__ADDR"] = f"127.0.0.1:{ports['grpc']}"
    env["VERICLIP__HTTP__ADDR"] = f"127.0.0.1:{ports['http']}"
    env["VERICLIP__ADMIN__ADDR"] = f"127.0.0.1:{ports['admin']}" if "admin" in ports else "127.0.0.1:0"
    c = Container(argv, env, prefix, tmp / "server.log").start()
    try:
        headroom = int(pod["metadata"].get("annotations", {}).get("vericlip.io/memory-headroom-mib", "0"))
        drive_probes(tag, spec, server, ports, c, registry_seeded, exported, headroom)
    finally:
        c.stop()
        if failures:
            print(f"[pod] {tag}: server log (last lines):\n" + "\n".join(c.output().splitlines()[-30:]))
    make_writable(tmp)


def static_memory(tag, pod, server, cfg):
    limits = server["resources"]["limits"]
    requests = server["resources"].get("requests") or {}
    budget = cfg["limits.memory_budget_mb"]
    headroom = int(pod["metadata"].get("annotations", {}).get("vericlip.io/memory-headroom-mib", "0"))
    limit = mib(limits["memory"])
    check(budget > 0, f"{tag}: limits.memory_budget_mb is set explicitly ({budget} MiB)")
    check(headroom > 0, f"{tag}: the memory headroom is stated (annotation vericlip.io/memory-headroom-mib = {headroom})")
    check(limit >= budget + headroom, f"{tag}: memory limit {limit:.0f} MiB >= budget {budget} + headroom {headroom} MiB")
    if "memory" in requests:
        check(mib(requests["memory"]) <= limit, f"{tag}: memory request <= limit")


def exported_metrics(ports):
    """Sample names in /metrics (families appear once they have a sample)."""
    status, body = http_get(f"http://127.0.0.1:{ports['http']}/metrics", 5)
    exported = set()
    for line in body.decode().splitlines() if status == 200 else []:
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            exported |= {f"{name}_total"} if kind == "counter" else {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return exported


def drive_probes(tag, spec, server, ports, c, registry_seeded, exported, headroom):
    ok, msg = run_startup_probe(server["startupProbe"], ports, c.proc)
    if not check(ok, f"{tag}: {msg}"):
        return
    live = server["livenessProbe"]
    for _ in range(2):
        status, _ = http_get(probe_url(live, ports), live.get("timeoutSeconds", 1))
        check(probe_ok(status), f"{tag}: liveness {live['httpGet']['path']} -> {status} (timeout {live.get('timeoutSeconds', 1)} s)")
    ready = server["readinessProbe"]
    rurl, rtimeout = probe_url(ready, ports), ready.get("timeoutSeconds", 1)
    if not registry_seeded:
        # No model: alive (never restarted) but not ready, over several probe periods.
        window = server["startupProbe"].get("periodSeconds", 10) * 3
        t_end, statuses = time.monotonic() + window, set()
        while time.monotonic() < t_end:
            statuses.add(http_get(rurl, rtimeout)[0])
            lstatus = http_get(probe_url(live, ports), live.get("timeoutSeconds", 1))[0]
            if not probe_ok(lstatus) or c.proc.poll() is not None:
                break
            time.sleep(ready.get("periodSeconds", 10) / 2)
        check(statuses == {503}, f"{tag}: readiness stays 503 without a model (saw {sorted(map(str, statuses))})")
        check(probe_ok(lstatus) and c.proc.poll() is None, f"{tag}: liveness stays 200 without a model (no restart loop)")
        exported |= exported_metrics(ports)
    else:
        t0, deadline = time.monotonic(), time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and c.proc.poll() is None:
            status, _ = http_get(rurl, rtimeout)
            if probe_ok(status):
                break
            time.sleep(ready.get("periodSeconds", 10))
        if not check(probe_ok(status), f"{tag}: readiness {ready['httpGet']['path']} passes ({time.monotonic() - t0:.1f} s after startup)"):
            return
        sample = sorted((ROOT / "models/samples/fake").glob("*"))[0]
        req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/v1/classify", data=sample.read_bytes(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
        check(r.status == 200 and "verdict" in json.dumps(body).lower(), f"{tag}: POST /v1/classify answers ({body.get('verdict')})")
        rss = vm_rss_mib(c.proc.pid)
        check(
            rss is not None and rss < headroom,
            f"{tag}: server VmRSS after ready + one request = {rss:.0f} MiB, inside the {headroom} MiB headroom",
        )
        exported |= exported_metrics(ports)

    # ------------------------------------------------ termination, as the kubelet does it
    pre_stop = server.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    time.sleep(pre_stop)
    check(c.proc.poll() is None, f"{tag}: still running after the preStop sleep ({pre_stop} s)")
    t0 = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    status, _ = http_get(rurl, rtimeout)
    check(status is None or status == 503, f"{tag}: readiness after SIGTERM -> {status or 'refused'} (503 or refused)")
    try:
        rc = c.proc.wait(timeout=grace - pre_stop)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    check(rc == 0, f"{tag}: exit code {rc} within terminationGracePeriodSeconds - preStop = {grace - pre_stop} s (took {took:.1f} s)")


def negative_double_config(objs, server_bin, work):
    """The old image/pod pair: ENTRYPOINT with --config and args --config again. The same
    runner must report a crash (non-zero exit, never listening)."""
    dep = find(objs, "Deployment", "vericlip-server")
    spec = dep["spec"]["template"]["spec"]
    server = dict(next(c for c in spec["containers"] if c["name"] == "server"))
    image = Image("deploy/Dockerfile")
    image.entrypoint = ["vericlip-server", "--config", "/etc/vericlip/config.toml"]
    image.cmd = []
    server["args"] = ["--config", "/etc/vericlip/config.toml"]
    psc = spec.get("securityContext") or {}
    prefix = user_prefix(psc.get("runAsUser", 10001), psc.get("runAsGroup", 10001), psc.get("fsGroup", 10001))
    tmp = Path(tempfile.mkdtemp(prefix="vericlip-pod-old-", dir=work))
    fs = PodFs(tmp, image, server_bin, 0, 0)
    cfg_dir = tmp / "config"
    cfg_dir.mkdir()
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    (cfg_dir / "config.toml").write_text(cm["data"]["config.toml"])
    fs.mount("/etc/vericlip", cfg_dir)
    make_readable(tmp)
    env = {"PATH": DEFAULT_PATH, "ORT_DYLIB_PATH": fs.rewrite(image.env["ORT_DYLIB_PATH"])}
    port = free_port()
    env["VERICLIP__HTTP__ADDR"] = f"127.0.0.1:{port}"
    env["VERICLIP__GRPC__ADDR"] = f"127.0.0.1:{free_port()}"
    env["VERICLIP__ADMIN__ADDR"] = "127.0.0.1:0"
    argv = effective_command(image, server)
    check(argv.count("--config") == 2, f"old pod: command line {argv} repeats --config")
    argv = [fs.which(argv[0], env)] + [fs.rewrite(a) if a.startswith("/") else a for a in argv[1:]]
    c = Container(argv, env, prefix, tmp / "old.log").start()
    ok, msg = run_startup_probe({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 5}, {"http": port}, c.proc)
    c.stop()
    check(not ok and c.proc.returncode not in (0, None), f"old pod: the runner reports the crash ({msg}): {c.output().strip()[:200]}")
    make_writable(tmp)


def check_gpu_environment(server):
    """The GPU pod's command line and library path as the container gets them (image ENV, then
    the container's env): the driver's directories on every platform, and the image's own CUDA
    libraries still first (a pod env entry replaces the image's value whole)."""
    image = Image("deploy/Dockerfile.cuda")
    argv = effective_command(image, server)
    check(argv == ["vericlip-server", "serve"], f"gpu: command line {argv} is the image's entrypoint with `serve`")
    image_path = image.env.get("LD_LIBRARY_PATH", "").split(":")
    env = dict(image.env)
    env.update({e["name"]: e["value"] for e in server.get("env") or [] if "value" in e})
    pod_path = env.get("LD_LIBRARY_PATH", "").split(":")
    wheels = [d for d in image_path if d.startswith("/usr/local/lib/vericlip/")]
    check(len(wheels) == 2 and pod_path[: len(wheels)] == wheels, f"gpu: LD_LIBRARY_PATH starts with the image's CUDA/cuDNN libraries {wheels}: {pod_path}")
    for d in DRIVER_LIB_DIRS:
        check(d in pod_path, f"gpu: the pod's LD_LIBRARY_PATH has the driver directory {d}")
        check(d in image_path, f"gpu: deploy/Dockerfile.cuda's LD_LIBRARY_PATH has the driver directory {d} (docker run)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the vericlip-server binary under test")
    ap.add_argument("--overlays", default="cpu,gpu")
    args = ap.parse_args()
    server_bin = Path(args.server).resolve()
    work = Path(tempfile.mkdtemp(prefix="vericlip-pod-contract-"))
    os.chmod(work, 0o755)

    _, mon = render(ROOT / "k8s/monitoring")
    rule_metrics = set()
    for o in mon:
        if o["kind"] == "PrometheusRule":
            for g in o["spec"]["groups"]:
                for r in g["rules"]:
                    rule_metrics |= set(re.findall(r"\bvericlip_[a-z_]+", r["expr"]))

    exported = set()  # metric samples seen in /metrics over all runs
    try:
        for i, overlay in enumerate(args.overlays.split(",")):
            _, objs = render(ROOT / "k8s/overlays" / overlay)
            check_static(overlay, objs)
            override = {}
            if overlay == "gpu":
                # The one deviation: this machine has no GPU and the binary is the CPU build.
                server = next(c for c in find(objs, "Deployment", "vericlip-server")["spec"]["template"]["spec"]["containers"])
                ep = {e["name"]: e.get("value") for e in server.get("env") or []}.get("VERICLIP__RUNTIME__EXECUTION_PROVIDER")
                check(ep == "cuda", f"gpu: the overlay selects the CUDA execution provider ({ep})")
                check_gpu_environment(server)
                print("[pod] gpu: running the CPU binary with VERICLIP__RUNTIME__EXECUTION_PROVIDER=auto (no GPU here)")
                override["VERICLIP__RUNTIME__EXECUTION_PROVIDER"] = "auto"
            steps = [lambda: run_pod(overlay, objs, server_bin, work, exported, True, override)]
            if i == 0:
                steps.append(lambda: run_pod(overlay, objs, server_bin, work, exported, False, override))
                steps.append(lambda: negative_double_config(objs, server_bin, work))
            for step in steps:
                try:
                    step()
                except Exception as e:  # a broken step is a failed check, and the others still run
                    check(False, f"{overlay}: {type(e).__name__}: {e}")
        missing = sorted(rule_metrics - exported)
        check(not missing, f"/metrics of the runs exports every metric the PrometheusRule uses {sorted(rule_metrics)} (missing: {missing})")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if failures:
        print(f"pod contract: {len(failures)} checks failed")
        return 1
    print("pod contract: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
