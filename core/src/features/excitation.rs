//! Excitation: how pulse-like the source under the spectral envelope is, per frame.
//!
//! Why: every magnitude feature (MFCC, log-mel, LFCC, the linear log-spectrogram) describes the
//! envelope and harmonics, which a vocoder reproduces by design. What a vocoder has to invent is
//! the excitation: pulse-excited vocoders (LPC, WORLD, HTS and diphone engines) drive the
//! envelope with idealized pulses, which leaves a residual peakier than a glottis does;
//! phase-reconstructing ones (Griffin-Lim) smear the pulses, which leaves a flatter one. The
//! kurtosis of the LPC residual measures that in one number per frame, both ways.
//!
//! Per frame `t` (the STFT's frames): the autocorrelation at lags `0..=order` of the
//! pre-emphasized (`1 - 0.97 z^-1`) windowed frame, read off the power spectrogram
//! (`r[m] = sum_k P[k,t] |1 - 0.97 e^{-i w_k}|^2 mult_k cos(w_k m) / n_fft`, `mult` 1 at DC and
//! Nyquist, else 2); `r[0] *= 1.0001` (white-noise correction, -40 dB, so that no predictor is
//! perfect and a pure tone's residual is not rounding noise); Levinson-Durbin; the inverse
//! filter `A(z) (1 - 0.97 z^-1)` over the zero-padded signal for the frame's central hop of
//! samples; value 0 = `ln(hop sum e^4 / (sum e^2)^2)` (0 for an all-zero residual), value 1 =
//! 1.0 where the frame is within 20 dB of the segment's loudest (`r[0]` before the correction),
//! else 0.0. Reference: `excitation` in `tests/golden/reference_features_ext.py`.

pub const PRE_EMPHASIS: f64 = 0.97;
pub const WHITE_NOISE_CORRECTION: f64 = 1.0001;
/// Frames this far under the segment's loudest are not "loud" (value 1 = 0.0).
pub const LOUD_DB: f64 = 20.0;

pub struct Excitation {
    order: usize,
    n_fft: usize,
    hop: usize,
    n_bins: usize,
    /// `[order + 1][n_bins]`: `cos(w_k m) |1 - 0.97 e^{-i w_k}|^2 mult_k / n_fft`.
    lag_basis: Vec<f64>,
}

/// Per-worker buffers of [`Excitation::apply`].
#[derive(Default)]
pub struct ExcitationScratch {
    /// `[order + 1][frames]` autocorrelations.
    r: Vec<f64>,
    /// The padded signal in f64.
    x: Vec<f64>,
    /// One frame's autocorrelation, white-noise corrected.
    rt: Vec<f64>,
    a: Vec<f64>,
    prev: Vec<f64>,
    /// `A(z) (1 - 0.97 z^-1)`: `order + 2` taps.
    taps: Vec<f64>,
    /// One frame's residual.
    e: Vec<f64>,
}

impl Excitation {
    pub fn new(n_fft: usize, hop: usize, order: usize) -> Self {
        let n_bins = n_fft / 2 + 1;
        let mut lag_basis = Vec::with_capacity((order + 1) * n_bins);
        for m in 0..=order {
            for k in 0..n_bins {
                let w = 2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
                let mult = if k == 0 || k == n_fft / 2 { 1.0 } else { 2.0 };
                let weight = (1.0 + PRE_EMPHASIS * PRE_EMPHASIS - 2.0 * PRE_EMPHASIS * w.cos()) * mult;
                lag_basis.push((w * m as f64).cos() * (weight / n_fft as f64));
            }
        }
        Self { order, n_fft, hop, n_bins, lag_basis }
    }

    /// The block for `frames` frames into `out` (`[2][frames]`), from the bin-major power
    /// spectrogram `power` (`[n_bins][frames]`) and the STFT's zero-padded signal `padded`.
    /// Always inlined, so the extractor's AVX2 / AVX-512 copies compile it for those targets.
    #[inline(always)]
    pub fn apply(&self, power: &[f32], padded: &[f32], frames: usize, sc: &mut ExcitationScratch, out: &mut [f64]) {
        let (p, hop) = (self.order, self.hop);
        debug_assert_eq!(out.len(), 2 * frames);
        // Autocorrelations of all frames at once: rows of the power spectrogram scaled and summed.
        sc.r.clear();
        sc.r.resize((p + 1) * frames, 0.0);
        for (basis, r) in self.lag_basis.chunks_exact(self.n_bins).zip(sc.r.chunks_exact_mut(frames)) {
            for (&b, row) in basis.iter().zip(power.chunks_exact(frames)) {
                for (acc, &v) in r.iter_mut().zip(row) {
                    *acc += b * f64::from(v);
                }
            }
        }
        sc.x.clear();
        sc.x.extend(padded.iter().map(|&v| f64::from(v)));
        let loudest = sc.r[..frames].iter().fold(0f64, |m, &v| m.max(v));
        let floor = loudest * 10f64.powf(-LOUD_DB / 10.0);
        let (kurt, loud) = out.split_at_mut(frames);
        for t in 0..frames {
            let r0 = sc.r[t];
            loud[t] = if r0 > 0.0 && r0 >= floor { 1.0 } else { 0.0 };
            sc.rt.clear();
            sc.rt.extend((0..=p).map(|m| sc.r[m * frames + t]));
            sc.rt[0] *= WHITE_NOISE_CORRECTION;
            levinson(&sc.rt, &mut sc.a, &mut sc.prev);
            // Taps of A(z) (1 - 0.97 z^-1).
            sc.taps.clear();
            sc.taps.push(sc.a[0]);
            sc.taps.extend((1..=p).map(|j| sc.a[j] - PRE_EMPHASIS * sc.a[j - 1]));
            sc.taps.push(-PRE_EMPHASIS * sc.a[p]);
            // The residual over the frame's central hop, vectorized over samples.
            // `padded` starts with n_fft / 2 zeros (centre padding): frame t is centred on sample
            // t hop of the audio, i.e. t hop + n_fft / 2 of `padded`.
            let start = t * hop + self.n_fft / 2 - hop / 2;
            sc.e.clear();
            sc.e.resize(hop, 0.0);
            for (k, &c) in sc.taps.iter().enumerate() {
                let src = &sc.x[start - k..start - k + hop];
                for (e, &x) in sc.e.iter_mut().zip(src) {
                    *e += c * x;
                }
            }
            let (m2, m4) = sc.e.iter().fold((0f64, 0f64), |(m2, m4), &e| {
                let e2 = e * e;
                (m2 + e2, m4 + e2 * e2)
            });
            kurt[t] = if m2 > 0.0 { (hop as f64 * m4 / (m2 * m2)).ln() } else { 0.0 };
        }
    }
}

/// Levinson-Durbin on `r[0..=order]` into `a` (`[1, a1..a_order]`), with sequential sums as the
/// reference; stops early when the prediction error stops being positive.
fn levinson(r: &[f64], a: &mut Vec<f64>, prev: &mut Vec<f64>) {
    let p = r.len() - 1;
    a.clear();
    a.resize(p + 1, 0.0);
    a[0] = 1.0;
    let mut err = r[0];
    if err <= 0.0 {
        return;
    }
    for i in 1..=p {
        let mut acc = r[i];
        for j in 1..i {
            acc += a[j] * r[i - j];
        }
        let k = -acc / err;
        prev.clear();
        prev.extend_from_slice(a);
        for j in 1..i {
            a[j] = prev[j] + k * prev[i - j];
        }
        a[i] = k;
        err *= 1.0 - k * k;
        if err <= 0.0 {
            break;
        }
    }
}
