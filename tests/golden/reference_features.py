"""Vendored unchanged from shared/reference/features.py (the spec's executable definition).

Executable reference for Vericlip's default feature spec (librosa 1.0.x, Python >= 3.12).

Usage: python features.py CLIP.wav [more.wav ...] > out.json
Prints, per file, the frame-by-frame feature matrix [frames][96] that the Rust extractor must
reproduce for the same 16 kHz mono samples: 20 MFCC, 12 chroma, 64 log-mel, in that order.
Clips are read as 16 kHz mono; anything else is an error here (resampling is tested separately).
"""
import json
import sys

import librosa
import numpy as np
import soundfile as sf

SPEC = dict(
    sample_rate=16000,
    segment_samples=32000,  # 2.0 s
    n_fft=512,
    hop_length=256,
    win_length=512,
    window="hann",
    center=True,
    pad_mode="constant",
    n_mels=64,
    fmin=0.0,
    fmax=8000.0,
    mel_scale="slaney",
    mel_norm="slaney",
    power=2.0,
    db_ref=1.0,
    db_amin=1e-10,
    db_top=80.0,
    n_mfcc=20,
    n_chroma=12,
    chroma_tuning=0.0,
    chroma_norm="inf",
)


def features(y: np.ndarray) -> np.ndarray:
    s = SPEC
    power = np.abs(librosa.stft(y, n_fft=s["n_fft"], hop_length=s["hop_length"],
                                win_length=s["win_length"], window=s["window"],
                                center=s["center"], pad_mode=s["pad_mode"])) ** s["power"]
    mel = librosa.feature.melspectrogram(S=power, sr=s["sample_rate"], n_mels=s["n_mels"],
                                         fmin=s["fmin"], fmax=s["fmax"], htk=False, norm="slaney")
    logmel = librosa.power_to_db(mel, ref=s["db_ref"], amin=s["db_amin"], top_db=s["db_top"])
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=s["n_mfcc"], dct_type=2, norm="ortho")
    chroma = librosa.feature.chroma_stft(S=power, sr=s["sample_rate"], n_fft=s["n_fft"],
                                         n_chroma=s["n_chroma"], tuning=s["chroma_tuning"], norm=np.inf)
    return np.vstack([mfcc, chroma, logmel]).T.astype(np.float32)  # [frames, 96]


def main() -> None:
    out = {}
    for path in sys.argv[1:]:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != SPEC["sample_rate"]:
            sys.exit(f"{path}: sample rate {sr}, expected {SPEC['sample_rate']}")
        y = y.mean(axis=1)[: SPEC["segment_samples"]]
        out[path] = features(y).tolist()
    json.dump({"spec": SPEC, "features": out}, sys.stdout)


if __name__ == "__main__":
    main()
