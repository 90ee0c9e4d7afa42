#!/usr/bin/env python3
"""Writes the Go client's release: a module proxy directory (the layout `GOPROXY=file://DIR`
serves) with the client module `github.com/vericlip/vericlip/clients/go` at VERSION and the
modules it builds with, taken from Debian's Go source packages (clients/setup.sh installs them).

Why a proxy directory: a Go program uses the client in module mode with `go get`, and the
public module proxy is not reachable where this is built and tested; the directory is what such
a proxy would serve, so the documented `go get` / `go mod tidy` work offline, in any empty module.
Each dependency is served at the version Debian packages (pinned in clients/go/go.mod); its go.mod
is reduced to its module and go lines, so the module graph closes over these modules (Debian's
packages do not ship the rest of upstream's graph, which the client never imports).

Usage: clients/go/module_proxy.py OUT_DIR VERSION     (VERSION like 1.1.0)
"""
import json
import os
import sys
import zipfile

GOCODE = "/usr/share/gocode/src"
MODULE = "github.com/vericlip/vericlip/clients/go"
HERE = os.path.dirname(os.path.abspath(__file__))
# A fixed time for every zip entry and .info: the same inputs give the same bytes (and go.sum).
STAMP = (2026, 1, 1, 0, 0, 0)
STAMP_RFC3339 = "2026-01-01T00:00:00Z"


def requirements():
    """The dependency modules and versions from clients/go/go.mod's require block."""
    deps, inside = {}, False
    with open(os.path.join(HERE, "go.mod"), encoding="utf-8") as f:
        for line in f:
            line = line.split("//")[0].strip()
            if line.startswith("require ("):
                inside = True
            elif inside and line == ")":
                inside = False
            elif inside and line:
                path, version = line.split()
                deps[path] = version
    if not deps:
        sys.exit("clients/go/go.mod has no require block")
    return deps


def escape(path):
    """Module path escaping of the proxy protocol: an upper-case letter becomes '!' + lower."""
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


def module_files(root):
    """(relative path, absolute path) of every file of the module at root: regular files only,
    no nested modules (a directory with its own go.mod), no vendor directories, no VCS data."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if d in ("vendor", ".git") or os.path.islink(full) or os.path.exists(os.path.join(full, "go.mod")):
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            out.append((rel.replace(os.sep, "/"), full))
    return out


def write_module(out, path, version, files, go_mod):
    """One module version in the proxy layout: @v/list, .info, .mod, .zip."""
    vdir = os.path.join(out, escape(path), "@v")
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, "list"), "w", encoding="utf-8") as f:
        f.write(version + "\n")
    with open(os.path.join(vdir, version + ".info"), "w", encoding="utf-8") as f:
        json.dump({"Version": version, "Time": STAMP_RFC3339}, f)
    with open(os.path.join(vdir, version + ".mod"), "w", encoding="utf-8") as f:
        f.write(go_mod)
    prefix = f"{path}@{version}/"
    with zipfile.ZipFile(os.path.join(vdir, version + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for rel, full in files:
            if rel == "go.mod":
                continue
            info = zipfile.ZipInfo(prefix + rel, STAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as src:
                z.writestr(info, src.read())
        info = zipfile.ZipInfo(prefix + "go.mod", STAMP)
        info.external_attr = 0o644 << 16
        z.writestr(info, go_mod)


def reduced_go_mod(root, path):
    """Debian's go.mod of the module at root without its requirements: the module line and
    its `go` directive (the language version its code is compiled with)."""
    go_line = ""
    with open(os.path.join(root, "go.mod"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("go "):
                go_line = line.strip() + "\n"
    return f"module {path}\n\n{go_line}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, version = sys.argv[1], "v" + sys.argv[2].lstrip("v")
    os.makedirs(out, exist_ok=True)
    for path, dep_version in requirements().items():
        root = os.path.join(GOCODE, path)
        if not os.path.isfile(os.path.join(root, "go.mod")):
            sys.exit(f"{root}: missing; run clients/setup.sh (Debian's Go source packages)")
        write_module(out, path, dep_version, module_files(root), reduced_go_mod(root, path))
    with open(os.path.join(HERE, "go.mod"), encoding="utf-8") as f:
        client_mod = f.read()
    files = [(rel, full) for rel, full in module_files(HERE)
             if not rel.startswith(("example/", "live/")) and rel not in ("go.sum",)
             and not rel.endswith((".py", ".sh"))]
    write_module(out, MODULE, version, files, client_mod)
    print(f"{out}: {MODULE}@{version} and {len(requirements())} dependencies from Debian")


if __name__ == "__main__":
    main()
