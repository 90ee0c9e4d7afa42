//! Phase-advance deviation: how far each bin's phase moved from one frame to the next, against
//! the advance a stationary sinusoid at the bin's centre frequency would make
//! (`2 pi k hop / n_fft`), as a cepstrum over the bins.
//!
//! Why: magnitude features (MFCC, log-mel, LFCC, the linear log-spectrogram) describe what a
//! vocoder reproduces by design (the envelope, even the harmonics), while vocoders rebuild the
//! phase from a model (minimum phase in WORLD and LPC, iterated guesses in Griffin-Lim) rather
//! than from a glottis. Natural speech's frame-to-frame phase advance differs from theirs.
//!
//! Per frame `t >= 1` and bin `k`: `z = X[t,k] conj(X[t-1,k]) exp(-2 pi i k hop / n_fft)`,
//! `m = |z| = sqrt(P[t,k] P[t-1,k])`, and the value `(m - Re z) / (m + floor)`, i.e.
//! `(1 - cos d) m / (m + floor)` for the deviation angle `d`: 0 when the phase advanced as a
//! steady sinusoid's, 2 when opposite, weighted by the bin's level against
//! `floor = max(max power of the segment * 10^(-db_top/10), db_amin)` (bins far below the
//! segment's loudest carry no phase worth the name, nor a stable one between implementations,
//! and their weight vanishes). `1 - cos d` rather than `|d|`: no arctangent and no `hypot` per
//! bin, a sixth of the cost (docs/BENCHMARKS.md). Frame 0 has no predecessor: all
//! zeros. Then an orthonormal DCT-II over the bins, first `n_phase_dev` coefficients. `X` is the
//! power path's own STFT (`Stft::power_and_spectra`: f64 transform rounded to complex64, as
//! librosa's; one FFT per frame for both), so this agrees with
//! `tests/golden/reference_features_ext.py` to ~1e-6.

use super::dct::Dct;

pub struct PhaseDeviation {
    /// `exp(-2 pi i k hop / n_fft)` per bin.
    advance: Vec<(f64, f64)>,
    dct: Dct,
}

/// Per-worker buffers of [`PhaseDeviation::apply`].
#[derive(Default)]
pub struct PhaseScratch {
    /// `[frames][n_bins]` complex64 spectra of the power path, real and imaginary parts.
    pub re: Vec<f32>,
    pub im: Vec<f32>,
    /// One frame's values, before they go to their bin-major column.
    row: Vec<f64>,
    /// `[n_bins][frames]` weighted deviations, the DCT's input.
    dev: Vec<f64>,
}

impl PhaseDeviation {
    pub fn new(n_fft: usize, hop: usize, n_out: usize) -> Self {
        let n_bins = n_fft / 2 + 1;
        let advance = (0..n_bins)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 * hop as f64 / n_fft as f64;
                (angle.cos(), angle.sin())
            })
            .collect();
        Self { advance, dct: Dct::new(n_bins, n_out) }
    }

    /// Sizes `s.re` and `s.im` for `frames` frames, for `Stft::power_and_spectra` to fill.
    pub fn prepare(&self, frames: usize, s: &mut PhaseScratch) {
        let n = self.advance.len() * frames;
        s.re.resize(n, 0.0);
        s.im.resize(n, 0.0);
    }

    /// The block for the `frames` spectra in `s.re` / `s.im` into `out` (`[n_out][frames]`),
    /// given the segment's largest power-spectrum value.
    /// Always inlined, so the extractor's AVX2 / AVX-512 copies compile it for those targets.
    #[inline(always)]
    pub fn apply<const WIDE: bool>(
        &self,
        frames: usize,
        max_power: f32,
        (db_amin, db_top): (f64, f64),
        s: &mut PhaseScratch,
        out: &mut [f64],
    ) {
        let n_bins = self.advance.len();
        s.row.resize(n_bins, 0.0);
        s.dev.clear();
        s.dev.resize(n_bins * frames, 0.0);
        let floor = (f64::from(max_power) * 10f64.powf(-db_top / 10.0)).max(db_amin);
        for t in 1..frames {
            let (prev, cur) = ((t - 1) * n_bins..t * n_bins, t * n_bins..(t + 1) * n_bins);
            let (b, a) = ((&s.re[cur.clone()], &s.im[cur]), (&s.re[prev.clone()], &s.im[prev]));
            deviation_row(b, a, &self.advance, floor, &mut s.row);
            for (k, v) in s.row.iter().enumerate() {
                s.dev[k * frames + t] = *v;
            }
        }
        self.dct.apply_columns::<WIDE>(&s.dev, frames, out);
    }
}

/// `(m - Re z) / (m + floor)` per bin (see the module comment): `b` this frame's complex64
/// spectrum (real, imaginary parts), `a` the previous one's; the arithmetic in f64.
#[inline(always)]
fn deviation_row(
    (b_re, b_im): (&[f32], &[f32]),
    (a_re, a_im): (&[f32], &[f32]),
    advance: &[(f64, f64)],
    floor: f64,
    out: &mut [f64],
) {
    let n = out.len();
    let (b_re, b_im, a_re, a_im, advance) = (&b_re[..n], &b_im[..n], &a_re[..n], &a_im[..n], &advance[..n]);
    for k in 0..n {
        let (b_re, b_im, a_re, a_im) = (f64::from(b_re[k]), f64::from(b_im[k]), f64::from(a_re[k]), f64::from(a_im[k]));
        // c = b * conj(a); Re(c * advance).
        let c_re = b_re * a_re + b_im * a_im;
        let c_im = b_im * a_re - b_re * a_im;
        let re = c_re * advance[k].0 - c_im * advance[k].1;
        let m = ((a_re * a_re + a_im * a_im) * (b_re * b_re + b_im * b_im)).sqrt();
        out[k] = (m - re) / (m + floor);
    }
}
