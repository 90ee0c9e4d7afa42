#!/usr/bin/env bash
# Idempotent set-up of everything Vericlip's build and tests need on a fresh Debian machine:
#   - ONNX Runtime's shared library, from the PyPI wheel onnxruntime==1.31.1 (sha256-checked),
#     unpacked into .vendor/onnxruntime/ (the path .cargo/config.toml's ORT_DYLIB_PATH names);
#   - Debian packages: TTS engines (espeak-ng, flite, festival) and sox for the corpus, unzip,
#     curl (scripts/demo.sh calls the HTTP endpoint with it);
#   - a Python >= 3.12 virtual environment in .venv/ with librosa 1.0.0 (feature goldens,
#     reference benchmark) and grpcio (the cross-language client test).
# Usage: scripts/setup.sh            (safe to run again; does only what is missing)
#        scripts/setup.sh ort        (ONNX Runtime only: what a container image build needs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_DIR=$root/.vendor/onnxruntime
ORT_LIB=$ORT_DIR/libonnxruntime.so.${ORT_VERSION}

log() { printf '[setup] %s\n' "$*" >&2; }

find_python() {
    # librosa 1.0 needs Python >= 3.12. Prefer an explicit $VERICLIP_PYTHON, then PATH, then pyenv.
    local c
    for c in "${VERICLIP_PYTHON:-}" python3.13 python3.12 \
             "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3 2>/dev/null | tail -n1)" \
             python3; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k sox libsox-fmt-base unzip curl)

install_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: present"; return; fi
    log "installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
}

install_ort() {
    if [ -f "$ORT_LIB" ]; then log "ONNX Runtime ${ORT_VERSION}: present"; return; fi
    local tmp; tmp=$(mktemp -d)
    log "downloading ${ORT_WHEEL} from PyPI"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 "onnxruntime==${ORT_VERSION}" -d "$tmp"
    echo "${ORT_SHA256}  $tmp/${ORT_WHEEL}" | sha256sum -c --quiet - \
        || { log "sha256 mismatch for ${ORT_WHEEL}"; exit 1; }
    mkdir -p "$ORT_DIR"
    unzip -q -o -j "$tmp/${ORT_WHEEL}" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" -d "$ORT_DIR"
    rm -rf "$tmp"
    log "ONNX Runtime ${ORT_VERSION}: $ORT_LIB"
}

install_venv() {
    # The librosa reference stack (goldens) and the Python gRPC client test, one venv.
    local reqs=("$root/tests/golden/requirements.txt" "$root/tests/clients/python/requirements.txt")
    local stamp=$root/.venv/.requirements.sha256
    local want; want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        log "Python venv: present"; return
    fi
    if [ ! -x .venv/bin/python ]; then
        local py; py=$(find_python) || { log "no Python >= 3.12 found (set VERICLIP_PYTHON)"; exit 1; }
        log "creating .venv with $py"
        "$py" -m venv .venv
        .venv/bin/python -m pip install -q --upgrade pip
    fi
    local r; for r in "${reqs[@]}"; do .venv/bin/python -m pip install -q -r "$r"; done
    echo "$want" > "$stamp"
}

case "${1:-all}" in
    ort) install_ort ;;
    all) install_apt; install_ort; install_venv ;;
    *) log "usage: scripts/setup.sh [all|ort]"; exit 2 ;;
esac
log "done"
