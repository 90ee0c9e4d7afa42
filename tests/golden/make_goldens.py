"""Write librosa golden features and audio fixtures for Vericlip's Rust parity tests.

usage: make_goldens.py OUTDIR

OUTDIR/clips/<name>.wav    16 kHz mono clips: speech, silence, sine sweep, white noise, DC offset,
                           short (< 2 s), float WAV
OUTDIR/goldens.json        {"spec": {...}, "features": {"<name>": [[96 floats] x frames]}} from
                           reference_features.py (librosa 1.0) on each clip's first 2 s, exactly as
                           the reference script computes them
OUTDIR/goldens_lfcc_deltas.json    the same format for reference_features_ext.SPEC_LFCC_DELTAS
                           (the seed spec + 20 LFCC + first-order deltas: 156 floats per frame),
OUTDIR/goldens_lfcc_deltas2.json   and for the same spec with second-order deltas too (196)
OUTDIR/goldens_log_spec.json       and for reference_features_ext.SPEC_LOG_SPEC (the seed spec + the
                           linear log-spectrogram of all 257 bins: 353)
OUTDIR/goldens_phase_dev.json      and for reference_features_ext.SPEC_PHASE_DEV (the seed spec + 30
                           phase-advance deviation coefficients: 126)
OUTDIR/goldens_excitation.json     and for reference_features_ext.SPEC_EXCITATION (the seed spec + the
                           excitation block, LPC order 16: 98)
OUTDIR/goldens_fine_structure.json and for reference_features_ext.SPEC_FINE_STRUCTURE (the seed spec +
                           the spectral fine structure of a 1024-point STFT, all 513 bins: 609)
OUTDIR/goldens_fine_log_spec.json  and for reference_features_ext.SPEC_FINE_LOG_SPEC (the seed spec +
                           the linear log power spectrum of that STFT: 609)
OUTDIR/goldens_fine_phase.json     and for reference_features_ext.SPEC_FINE_PHASE (the seed spec + 30
                           phase-advance deviation coefficients + the fine structure: 639)
OUTDIR/formats/<name>.*    the speech clip as WAV u8/s16/s24/s32/f32, FLAC, OGG Vorbis, MP3, stereo
                           44.1 kHz and 8 kHz WAV; OUTDIR/formats/index.json says, per file, whether
                           it is lossless and where libsndfile's decode of it (float32 raw) lies
Deterministic for a given espeak-ng build: noise uses a fixed seed.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_features as ref  # noqa: E402
import reference_features_ext as ext  # noqa: E402

SR = ref.SPEC["sample_rate"]
TEXT = ("Synthetic voices can now imitate anyone. Careful listening, and careful measurement, "
        "still tell them apart.")


def speech() -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "s.wav")
        subprocess.run(["espeak-ng", "-v", "en", "-s", "165", "-w", p, TEXT], check=True)
        y, sr = sf.read(p, dtype="float32", always_2d=True)
    y = soxr.resample(y.mean(axis=1), sr, SR, "HQ").astype(np.float32)
    return 0.7 * y / np.abs(y).max()


def clips() -> dict[str, np.ndarray]:
    t = np.arange(2 * SR) / SR
    rng = np.random.default_rng(0)
    sp = speech()
    # Logarithmic sweep 50 Hz -> 7.9 kHz over 2 s.
    f0, f1 = 50.0, 7900.0
    k = np.log(f1 / f0) / 2.0
    sweep = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    dc = 0.25 + 0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
    return {
        "speech": sp[: int(3.1 * SR)],
        "silence": np.zeros(2 * SR),
        "sweep": sweep,
        "noise": 0.1 * rng.standard_normal(2 * SR),
        "dc_offset": dc,
        "short": sp[int(0.4 * SR): int(1.6 * SR)],
    }


def main() -> None:
    out = sys.argv[1]
    os.makedirs(f"{out}/clips", exist_ok=True)
    os.makedirs(f"{out}/formats", exist_ok=True)
    paths = {}
    for name, y in clips().items():
        p = f"{out}/clips/{name}.wav"
        sf.write(p, np.clip(y, -1, 1), SR, subtype="PCM_16")
        paths[name] = p
    # One clip stored as float so no quantization stands between the two sides.
    sp = clips()["speech"]
    sf.write(f"{out}/clips/speech_float.wav", sp, SR, subtype="FLOAT")
    paths["speech_float"] = f"{out}/clips/speech_float.wav"

    specs_ext = {"lfcc_deltas": ext.SPEC_LFCC_DELTAS, "lfcc_deltas2": dict(ext.SPEC_LFCC_DELTAS, deltas=2),
                 "log_spec": ext.SPEC_LOG_SPEC, "phase_dev": ext.SPEC_PHASE_DEV,
                 "excitation": ext.SPEC_EXCITATION, "fine_structure": ext.SPEC_FINE_STRUCTURE,
                 "fine_log_spec": ext.SPEC_FINE_LOG_SPEC, "fine_phase": ext.SPEC_FINE_PHASE}
    feats, feats_ext = {}, {key: {} for key in specs_ext}
    for name, p in paths.items():
        # Read exactly as reference_features.main() does.
        y, sr = sf.read(p, dtype="float32", always_2d=True)
        assert sr == SR
        y = y.mean(axis=1)[: ref.SPEC["segment_samples"]]
        feats[name] = ref.features(y).tolist()
        for key, spec in specs_ext.items():
            f = ext.features(y, spec)
            assert f.shape[1] == ext.n_features(spec)
            feats_ext[key][name] = f.tolist()
    with open(f"{out}/goldens.json", "w") as f:
        json.dump({"spec": ref.SPEC, "features": feats}, f)
    for key, spec in specs_ext.items():
        with open(f"{out}/goldens_{key}.json", "w") as f:
            # Every optional kind's field, 0 where absent, so the test sees what the reference used.
            json.dump({"spec": dict(ext.EXT_ABSENT, **spec), "features": feats_ext[key]}, f)

    # Container / codec fixtures, all from the speech clip.
    index = {}
    variants = [
        ("wav_u8.wav", SR, 1, "WAV", "PCM_U8", True),
        ("wav_s16.wav", SR, 1, "WAV", "PCM_16", True),
        ("wav_s24.wav", SR, 1, "WAV", "PCM_24", True),
        ("wav_s32.wav", SR, 1, "WAV", "PCM_32", True),
        ("wav_f32.wav", SR, 1, "WAV", "FLOAT", True),
        ("flac_s16.flac", SR, 1, "FLAC", "PCM_16", True),
        ("ogg_vorbis.ogg", SR, 1, "OGG", "VORBIS", False),
        ("mp3.mp3", SR, 1, "MP3", "MPEG_LAYER_III", False),
        ("wav_stereo_44k.wav", 44100, 2, "WAV", "PCM_16", True),
        ("wav_8k.wav", 8000, 1, "WAV", "PCM_16", True),
    ]
    for fname, sr, ch, fmt, subtype, lossless in variants:
        y = sp if sr == SR else soxr.resample(sp, SR, sr, "VHQ")
        if ch == 2:
            y = np.stack([y, 0.5 * y], axis=1)
        p = f"{out}/formats/{fname}"
        sf.write(p, y, sr, format=fmt, subtype=subtype)
        dec, dsr = sf.read(p, dtype="float32", always_2d=True)
        raw = f"{p}.f32"
        dec.mean(axis=1).astype("<f4").tofile(raw)
        index[fname] = {"sample_rate": dsr, "channels": ch, "lossless": lossless,
                        "frames": int(dec.shape[0]), "libsndfile_decode": os.path.basename(raw)}
    with open(f"{out}/formats/index.json", "w") as f:
        json.dump(index, f, indent=1)
    print(f"wrote {len(feats)} goldens (and for {len(specs_ext)} richer specs) and {len(index)} format fixtures to {out}")


if __name__ == "__main__":
    main()
