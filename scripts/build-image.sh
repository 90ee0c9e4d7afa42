#!/usr/bin/env bash
# Builds the two container images from this checkout, with whichever engine is installed
# (docker, podman or buildah; CONTAINER_ENGINE=... picks one):
#   REGISTRY/vericlip-server:TAG        deploy/Dockerfile       (CPU; also the trainer's image)
#   REGISTRY/vericlip-server-cuda:TAG   deploy/Dockerfile.cuda  (NVIDIA GPUs)
# TAG = crate version + short commit (0.1.0-3f9c2ab), so every build of different code (or
# different bundled models) gets a different tag, and imagePullPolicy: IfNotPresent is safe. A
# tree with uncommitted changes gets -dirty.<hash of the changes> (still one tag per content).
# Prints the `kustomize edit set image` line that points a kustomization at the images.
# Usage: scripts/build-image.sh [--registry REGISTRY] [--push] [--only cpu|cuda]
#                               [--platform linux/amd64] [--dry-run]
#   --registry  prefix of the image names (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml
#               or europe-docker.pkg.dev/PROJECT/REPO); default: none (local names)
#   --push      push both after building
#   --dry-run   print the commands instead of running them (no engine needed)
set -euo pipefail
cd "$(dirname "$0")/.."

registry="" push=0 only="" platform="linux/amd64" dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
        --push) push=1; shift ;;
        --only) only="${2:?--only needs cpu or cuda}"; shift 2 ;;
        --platform) platform="${2:?--platform needs a value}"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$only" in ""|cpu|cuda) ;; *) echo "build-image: --only takes cpu or cuda, not $only" >&2; exit 2 ;; esac
# The images hold x86-64 libraries (ONNX Runtime and CUDA wheels for manylinux x86_64).
[ "$platform" = linux/amd64 ] || echo "build-image: warning: the images are x86-64 only; --platform $platform will not run" >&2

usable() { # engine: installed, and (docker, podman) its daemon / machine answers
    command -v "$1" >/dev/null 2>&1 || return 1
    case "$1" in
        docker|podman) "$1" info >/dev/null 2>&1 ;;
        *) true ;;
    esac
}
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
    for e in docker podman buildah; do
        if usable "$e"; then engine="$e"; break; fi
    done
fi
if [ "$dry" = 0 ]; then
    if [ -z "$engine" ]; then
        found=$(for e in docker podman buildah; do command -v "$e" >/dev/null 2>&1 && printf ' %s' "$e"; done; true)
        echo "build-image: no usable container engine: install docker, podman or buildah (or set CONTAINER_ENGINE)${found:+; installed but not answering (daemon not running?):$found}" >&2
        exit 1
    fi
    if ! usable "$engine"; then
        echo "build-image: CONTAINER_ENGINE=$engine is not installed or not answering ($engine info fails)" >&2
        exit 1
    fi
fi
engine="${engine:-docker}"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build-image: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
commit=$(git rev-parse --short=7 HEAD 2>/dev/null) || { echo "build-image: not a git checkout (the tag names the commit)" >&2; exit 1; }
tag="$version-$commit"
changes=$(git status --porcelain --untracked-files=normal)
# The bundled registry (models/) is copied into the images whole, git-ignored files included
# (a serving.json or version folder hidden by a global ignore rule): they count as changes too,
# so a different bundle never reuses a tag.
bundled_ignored=$(git ls-files --others --ignored --exclude-standard -- models/)
if [ -n "$changes$bundled_ignored" ]; then
    # What the build context holds beyond the commit: tracked changes and untracked files.
    sum=$( {
        git diff HEAD --binary
        { git ls-files --others --exclude-standard -z; git ls-files --others --ignored --exclude-standard -z -- models/; } |
            while IFS= read -r -d '' f; do
                if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum "$f"; fi
            done
    } | sha256sum | cut -c1-8)
    tag="$tag-dirty.$sum"
    echo "build-image: uncommitted changes: tag $tag (commit them for a release tag)" >&2
fi
prefix="${registry:+${registry%/}/}"

run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    [ "$dry" = 1 ] || "$@"
}

build() { # name dockerfile
    local ref="$prefix$1:$tag"
    case "$engine" in
        buildah) run buildah bud --platform "$platform" -f "$2" -t "$ref" . ;;
        *) run "$engine" build --platform "$platform" -f "$2" -t "$ref" . ;;
    esac
    [ "$push" = 0 ] || run "$engine" push "$ref"
    refs+=("$1=$ref")
}

refs=()
[ "$only" = cuda ] || build vericlip-server deploy/Dockerfile
[ "$only" = cpu ] || build vericlip-server-cuda deploy/Dockerfile.cuda

echo
echo "Images: ${refs[*]#*=}"
echo "Point your kustomization (over k8s/overlays/cpu or gpu) at them, in its folder:"
echo "  kustomize edit set image ${refs[*]}"
