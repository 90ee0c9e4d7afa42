"""Executable reference for the feature kinds beyond the seed spec: LFCC, the linear
log-spectrogram, deltas, the phase-advance deviation, the excitation and the fine kinds (the
spectral fine structure and linear log spectrum of a longer STFT) (librosa 1.0.x,
numpy, scipy). reference_features.py (vendored unchanged from shared/reference) stays the
definition of the seed spec; this module extends it and its first blocks are exactly that spec's.

A spec here is reference_features.SPEC plus these fields (names as in core's FeatureSpec; all
0 means the kind is absent, which is the seed spec):
  n_lfcc          LFCC coefficients kept (0: no LFCC block)
  n_lfcc_filters  linear-spaced triangular filters over fmin..fmax (the mel band's range)
  deltas          0: none; 1: first-order deltas; 2: first- and second-order deltas
  delta_width     librosa.feature.delta width (odd, >= 3), mode "interp"
  n_log_spec      linear log-spectrogram: the first n_log_spec STFT bins (0: no such block)
  n_phase_dev     phase-advance deviation cepstrum: coefficients kept (0: no such block)
  excitation_order  LPC order of the excitation block (0: no such block; else 2 values per frame)
  fine_n_fft      n_fft of the second, longer STFT of the fine kinds (0: none); same hop, Hann
                  window of that length, centre zero padding: frame t is centred on sample
                  t * hop_length as the seed STFT's frame t is, and there are as many frames
  n_fine_structure  spectral fine structure: the first n_fine_structure bins (0: no such block)
  fine_lifter     cepstral coefficients kept for the fine structure's envelope (Q)
  n_fine_log_spec linear log power spectrum of the fine STFT: the first n_fine_log_spec bins

Frame vector, in this order:
  [mfcc n_mfcc, chroma n_chroma, log-mel n_mels,                      <- the seed spec
   lfcc n_lfcc,
   log_spec n_log_spec,
   phase_dev n_phase_dev,
   excitation 2 (when excitation_order > 0),
   fine_structure n_fine_structure,
   fine_log_spec n_fine_log_spec,
   delta1 of (mfcc, lfcc), delta2 of (mfcc, lfcc)]                     <- up to `deltas`

LFCC: the same power spectrogram as the mel path -> linear triangular filterbank (librosa's mel
triangle construction with the band edges spaced linearly in Hz instead of in mel, peak weight 1,
no area normalization) -> power_to_db(ref=db_ref, amin=db_amin, top_db=db_top) over the LFCC
filter matrix of the segment -> DCT-II, norm "ortho", first n_lfcc coefficients.
Linear log-spectrogram: power_to_db(ref=db_ref, amin=db_amin, top_db=db_top) of rows
0..n_log_spec of that power spectrogram (the floor is over those rows of the segment).
Phase-advance deviation: X = the complex STFT (complex64, as above); for frames t >= 1 and bins
k, z = X[k,t] conj(X[k,t-1]) exp(-2 pi i k hop / n_fft), m = |z|, value (m - Re z) / (m + floor)
(= (1 - cos(angle z)) m / (m + floor)) with floor = max(max(|X|**2) 10**(-db_top/10), db_amin);
frame 0 is all zeros; then DCT-II, norm "ortho", over the bins, first n_phase_dev.
Excitation (how pulse-like the source under the spectral envelope is): per frame, the
autocorrelation at lags 0..p of the pre-emphasized (1 - 0.97 z^-1) windowed frame, from the
power spectrogram: r[m] = sum_k P[k,t] |1 - 0.97 e^{-i w_k}|^2 mult_k cos(w_k m) / n_fft
(w_k = 2 pi k / n_fft, mult 1 at k = 0 and n_fft / 2, else 2); r[0] *= 1.0001 (white-noise
correction, -40 dB: no predictor is perfect, so a pure tone's residual is not rounding noise);
Levinson-Durbin to order p = excitation_order (stops early if the error stops being positive);
the inverse filter A(z) (1 - 0.97 z^-1) run over the float64 zero-padded signal (as the STFT's
centre padding) for the frame's central hop of samples (t hop - hop/2 .. t hop + hop/2 of the
unpadded signal); value 0 = ln(hop sum e^4 / (sum e^2)^2) (the residual's kurtosis; 0 when the
residual is all zeros), value 1 = 1.0 where r[0] > 0 and r[0] >= 10^(-20/10) of the segment's
largest r[0] (the loud frames), else 0.0. Natural voiced speech leaves a residual with glottal
pulses of a natural peakiness; pulse-excited vocoders leave a peakier one, phase-reconstructing
ones (Griffin-Lim) a flatter one.
Fine kinds: P = |librosa.stft(y, n_fft=fine_n_fft, hop_length, win_length=fine_n_fft, "hann",
center=True, pad_mode="constant")|**2 (all K = fine_n_fft / 2 + 1 bins, 0..sample_rate / 2);
L = power_to_db(P, ref=db_ref, amin=db_amin, top_db=db_top) with the floor over all K bins of the
segment (float32, as librosa computes it).
  Linear log power spectrum: rows 0..n_fine_log_spec of L.
  Fine structure: L minus its cepstrally liftered envelope, per frame: c = irfft(L, n=fine_n_fft)
  (the real cepstrum of the frame's log spectrum, float64), c[Q : fine_n_fft - Q + 1] = 0 (keep
  quefrencies |q| < Q = fine_lifter), E = rfft(c).real; value L - E, rows 0..n_fine_structure.
  With Q = 30 at 16 kHz the envelope keeps spectral ripples slower than 16000 / 30 = 533 Hz
  (formants, tilt); harmonics of any voice under 533 Hz (quefrency > 30 samples) and whatever a
  vocoder leaves between them are in the fine structure.
Deltas: librosa.feature.delta(block, width=delta_width, order=k, mode="interp", axis=-1) of the
float32 MFCC and LFCC blocks (for order 2 that is a second derivative straight from the
cepstra, Savitzky-Golay, not a delta of the delta).
"""
import librosa
import numpy as np
import scipy.fft

import reference_features as ref

EXT_ABSENT = dict(n_lfcc=0, n_lfcc_filters=0, deltas=0, delta_width=0, n_log_spec=0, n_phase_dev=0,
                  excitation_order=0, fine_n_fft=0, n_fine_structure=0, fine_lifter=0, n_fine_log_spec=0)

# Today's 96 + LFCC 20 (70 linear filters over 0..8000 Hz, as the ASVspoof LFCC baseline) +
# first-order deltas of MFCC and LFCC: 156 floats per frame. Rust: FeatureSpec::lfcc_deltas().
SPEC_LFCC_DELTAS = dict(ref.SPEC, n_lfcc=20, n_lfcc_filters=70, deltas=1, delta_width=9)

# Today's 96 + the linear log-spectrogram of all 257 bins: 353 floats per frame.
# Rust: FeatureSpec::log_spec().
SPEC_LOG_SPEC = dict(ref.SPEC, n_log_spec=257)

# Today's 96 + 30 phase-advance deviation coefficients: 126 floats per frame.
# Rust: FeatureSpec::phase_dev().
SPEC_PHASE_DEV = dict(ref.SPEC, n_phase_dev=30)

# Today's 96 + the excitation block (LPC order 16 at 16 kHz): 98 floats per frame.
# Rust: FeatureSpec::excitation().
SPEC_EXCITATION = dict(ref.SPEC, excitation_order=16)

# Today's 96 + the fine structure of all 513 bins of a 1024-point STFT (lifter 30): 609 floats per
# frame. Rust: FeatureSpec::fine_structure().
SPEC_FINE_STRUCTURE = dict(ref.SPEC, fine_n_fft=1024, n_fine_structure=513, fine_lifter=30)

# Today's 96 + the linear log power spectrum of all 513 bins of a 1024-point STFT: 609.
# Rust: FeatureSpec::fine_log_spec().
SPEC_FINE_LOG_SPEC = dict(ref.SPEC, fine_n_fft=1024, n_fine_log_spec=513)

# Today's 96 + 30 phase-advance deviation coefficients + the fine structure: 639.
# Rust: FeatureSpec::fine_phase().
SPEC_FINE_PHASE = dict(SPEC_FINE_STRUCTURE, n_phase_dev=30)

PRE_EMPHASIS = 0.97
WHITE_NOISE_CORRECTION = 1.0001
LOUD_DB = 20.0


def levinson(r: np.ndarray, p: int) -> np.ndarray:
    """[1, a1..ap] of the order-p predictor for autocorrelation r[0..p] (sequential sums, as
    core's features::excitation)."""
    a = np.zeros(p + 1)
    a[0] = 1.0
    err = float(r[0])
    if err <= 0.0:
        return a
    for i in range(1, p + 1):
        acc = float(r[i])
        for j in range(1, i):
            acc += a[j] * r[i - j]
        k = -acc / err
        prev = a.copy()
        for j in range(1, i):
            a[j] = prev[j] + k * prev[i - j]
        a[i] = k
        err *= 1.0 - k * k
        if err <= 0.0:
            break
    return a


def excitation(y: np.ndarray, power: np.ndarray, s: dict) -> np.ndarray:
    """[2, frames] from the float32 signal and its [1 + n_fft // 2, frames] power spectrogram."""
    n_fft, hop, p = s["n_fft"], s["hop_length"], s["excitation_order"]
    pw = power.astype(np.float64)
    k = np.arange(pw.shape[0])
    w = 2 * np.pi * k / n_fft
    weight = (1 + PRE_EMPHASIS ** 2 - 2 * PRE_EMPHASIS * np.cos(w)) * np.where((k == 0) | (k == n_fft // 2), 1.0, 2.0)
    r_all = (np.cos(np.outer(np.arange(p + 1), w)) * (weight / n_fft)) @ pw  # [p + 1, frames]
    x = np.pad(y.astype(np.float64), n_fft // 2)
    floor = r_all[0].max() * 10 ** (-LOUD_DB / 10)
    out = np.zeros((2, pw.shape[1]))
    for t in range(pw.shape[1]):
        r = r_all[:, t].copy()
        loud = r[0] > 0.0 and r[0] >= floor
        r[0] *= WHITE_NOISE_CORRECTION
        c = np.convolve(levinson(r, p), [1.0, -PRE_EMPHASIS])
        start = t * hop + n_fft // 2 - hop // 2
        e = np.convolve(x[start - (p + 1): start + hop], c, mode="valid")
        m2, m4 = np.sum(e * e), np.sum(e ** 4)
        out[0, t] = np.log(hop * m4 / (m2 * m2)) if m2 > 0 else 0.0
        out[1, t] = 1.0 if loud else 0.0
    return out


def phase_dev(stft: np.ndarray, s: dict) -> np.ndarray:
    """[n_phase_dev, frames] from the complex [1 + n_fft // 2, frames] STFT."""
    x = stft.astype(np.complex128)
    k = np.arange(x.shape[0])[:, None]
    z = x[:, 1:] * np.conj(x[:, :-1]) * np.exp(-2j * np.pi * k * s["hop_length"] / s["n_fft"])
    m = np.abs(x[:, 1:]) * np.abs(x[:, :-1])
    floor = max(float((np.abs(x) ** 2).max()) * 10 ** (-s["db_top"] / 10), s["db_amin"])
    dev = np.concatenate([np.zeros((x.shape[0], 1)), (m - z.real) / (m + floor)], axis=1)
    return scipy.fft.dct(dev, axis=0, type=2, norm="ortho")[: s["n_phase_dev"]]


def fine_db(y: np.ndarray, s: dict) -> np.ndarray:
    """[K, frames] float32 dB of the fine STFT's power (K = fine_n_fft // 2 + 1), floor over all of it."""
    n = s["fine_n_fft"]
    stft = librosa.stft(y, n_fft=n, hop_length=s["hop_length"], win_length=n, window=s["window"],
                        center=s["center"], pad_mode=s["pad_mode"])
    return librosa.power_to_db(np.abs(stft) ** s["power"], ref=s["db_ref"], amin=s["db_amin"], top_db=s["db_top"])


def fine_structure(db: np.ndarray, s: dict) -> np.ndarray:
    """[n_fine_structure, frames]: each frame's log spectrum minus its liftered envelope."""
    n, q = s["fine_n_fft"], s["fine_lifter"]
    ceps = np.fft.irfft(db.astype(np.float64), n=n, axis=0)
    ceps[q: n - q + 1] = 0.0
    envelope = np.fft.rfft(ceps, n=n, axis=0).real
    return (db - envelope)[: s["n_fine_structure"]]


def linear_filterbank(sr: int, n_fft: int, n_filters: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_filters, 1 + n_fft // 2] float32 triangles, librosa.filters.mel's construction with
    band edges np.linspace(fmin, fmax, n_filters + 2) in Hz and no normalization."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = np.linspace(fmin, fmax, n_filters + 2)
    fdiff = np.diff(edges)
    ramps = np.subtract.outer(edges, fftfreqs)
    weights = np.zeros((n_filters, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_filters):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    return weights


def lfcc(power: np.ndarray, s: dict) -> np.ndarray:
    """[n_lfcc, frames] float32 from the [1 + n_fft // 2, frames] power spectrogram."""
    fb = linear_filterbank(s["sample_rate"], s["n_fft"], s["n_lfcc_filters"], s["fmin"], s["fmax"])
    lin = np.einsum("...ft,mf->...mt", power, fb, optimize=True)  # as librosa's melspectrogram
    lin_db = librosa.power_to_db(lin, ref=s["db_ref"], amin=s["db_amin"], top_db=s["db_top"])
    return scipy.fft.dct(lin_db, axis=-2, type=2, norm="ortho")[: s["n_lfcc"]]


def features(y: np.ndarray, spec: dict) -> np.ndarray:
    """[frames, n_features] float32 for `spec` (reference_features.SPEC plus the fields above)."""
    s = dict(EXT_ABSENT, **spec)
    assert {k: s[k] for k in ref.SPEC} == ref.SPEC, "the seed fields must be reference_features.SPEC"
    base = ref.features(y).T  # [96, frames]
    n_mfcc = s["n_mfcc"]
    blocks = [base]
    ceps = [base[:n_mfcc]]
    stft = librosa.stft(y, n_fft=s["n_fft"], hop_length=s["hop_length"], win_length=s["win_length"],
                        window=s["window"], center=s["center"], pad_mode=s["pad_mode"])
    power = np.abs(stft) ** s["power"]
    if s["n_lfcc"]:
        c = lfcc(power, s).astype(np.float32)
        blocks.append(c)
        ceps.append(c)
    if s["n_log_spec"]:
        blocks.append(librosa.power_to_db(power[: s["n_log_spec"]], ref=s["db_ref"], amin=s["db_amin"],
                                          top_db=s["db_top"]).astype(np.float32))
    if s["n_phase_dev"]:
        blocks.append(phase_dev(stft, s).astype(np.float32))
    if s["excitation_order"]:
        blocks.append(excitation(y, power, s).astype(np.float32))
    if s["fine_n_fft"]:
        db = fine_db(y, s)
        if s["n_fine_structure"]:
            blocks.append(fine_structure(db, s).astype(np.float32))
        if s["n_fine_log_spec"]:
            blocks.append(db[: s["n_fine_log_spec"]].astype(np.float32))
    for order in range(1, s["deltas"] + 1):
        for c in ceps:
            blocks.append(librosa.feature.delta(c, width=s["delta_width"], order=order, mode="interp", axis=-1))
    return np.vstack(blocks).T.astype(np.float32)


def n_features(spec: dict) -> int:
    s = dict(EXT_ABSENT, **spec)
    return (s["n_mfcc"] + s["n_chroma"] + s["n_mels"] + s["n_lfcc"] + s["n_log_spec"] + s["n_phase_dev"]
            + (2 if s["excitation_order"] else 0) + s["n_fine_structure"] + s["n_fine_log_spec"]
            + s["deltas"] * (s["n_mfcc"] + s["n_lfcc"]))
