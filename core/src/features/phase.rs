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
//! STFT of the power path (f64 transform rounded to complex64, as librosa's), so this agrees with
//! `tests/golden/reference_features_ext.py` to ~1e-6.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::dct::Dct;

pub struct PhaseDeviation {
    r2c: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// `exp(-2 pi i k hop / n_fft)` per bin.
    advance: Vec<(f64, f64)>,
    dct: Dct,
    n_fft: usize,
    hop: usize,
}

/// Per-worker buffers of [`PhaseDeviation::apply`].
#[derive(Default)]
pub struct PhaseScratch {
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    fft_scratch: Vec<Complex<f64>>,
    /// This frame's and the previous frame's spectrum, rounded to complex64, as split real and
    /// imaginary parts in f64 (so the per-bin pass is element-wise and vectorizes).
    cur_re: Vec<f64>,
    cur_im: Vec<f64>,
    prev_re: Vec<f64>,
    prev_im: Vec<f64>,
    /// One frame's values, before they go to their bin-major column.
    row: Vec<f64>,
    /// `[n_bins][frames]` weighted deviations, the DCT's input.
    dev: Vec<f64>,
}

impl PhaseDeviation {
    pub fn new(n_fft: usize, hop: usize, n_out: usize) -> Self {
        let r2c = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let n_bins = n_fft / 2 + 1;
        let window = super::stft::hann(n_fft);
        let advance = (0..n_bins)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 * hop as f64 / n_fft as f64;
                (angle.cos(), angle.sin())
            })
            .collect();
        Self { r2c, window, advance, dct: Dct::new(n_bins, n_out), n_fft, hop }
    }

    /// The block for `frames` frames of `padded` (the zero-padded signal of the STFT) into `out`
    /// (`[n_out][frames]`), given the segment's largest power-spectrum value.
    /// Always inlined, so the extractor's AVX2 / AVX-512 copies compile it for those targets.
    #[inline(always)]
    pub fn apply<const WIDE: bool>(
        &self,
        padded: &[f32],
        frames: usize,
        max_power: f32,
        (db_amin, db_top): (f64, f64),
        s: &mut PhaseScratch,
        out: &mut [f64],
    ) {
        let n_bins = self.advance.len();
        s.input.resize(self.n_fft, 0.0);
        s.spectrum.resize(n_bins, Complex::default());
        s.fft_scratch.resize(self.r2c.get_scratch_len(), Complex::default());
        for v in [&mut s.cur_re, &mut s.cur_im, &mut s.prev_re, &mut s.prev_im, &mut s.row] {
            v.resize(n_bins, 0.0);
        }
        s.dev.clear();
        s.dev.resize(n_bins * frames, 0.0);
        let floor = (f64::from(max_power) * 10f64.powf(-db_top / 10.0)).max(db_amin);
        for t in 0..frames {
            let src = &padded[t * self.hop..t * self.hop + self.n_fft];
            for ((f, x), w) in s.input.iter_mut().zip(src).zip(&self.window) {
                *f = f64::from(*x) * w;
            }
            // The buffers have the plan's own lengths, so this cannot fail; if it ever did, the
            // frame would read as silence rather than take the worker down.
            if self.r2c.process_with_scratch(&mut s.input, &mut s.spectrum, &mut s.fft_scratch).is_err() {
                s.spectrum.fill(Complex::default());
            }
            for (k, c) in s.spectrum.iter().enumerate() {
                s.cur_re[k] = f64::from(c.re as f32);
                s.cur_im[k] = f64::from(c.im as f32);
            }
            if t > 0 {
                deviation_row(&s.cur_re, &s.cur_im, &s.prev_re, &s.prev_im, &self.advance, floor, &mut s.row);
                for (k, v) in s.row.iter().enumerate() {
                    s.dev[k * frames + t] = *v;
                }
            }
            std::mem::swap(&mut s.cur_re, &mut s.prev_re);
            std::mem::swap(&mut s.cur_im, &mut s.prev_im);
        }
        self.dct.apply_columns::<WIDE>(&s.dev, frames, out);
    }
}

/// `(m - Re z) / (m + floor)` per bin (see the module comment): `b` this frame, `a` the previous.
#[inline(always)]
fn deviation_row(
    b_re: &[f64],
    b_im: &[f64],
    a_re: &[f64],
    a_im: &[f64],
    advance: &[(f64, f64)],
    floor: f64,
    out: &mut [f64],
) {
    let n = out.len();
    let (b_re, b_im, a_re, a_im, advance) = (&b_re[..n], &b_im[..n], &a_re[..n], &a_im[..n], &advance[..n]);
    for k in 0..n {
        // c = b * conj(a); Re(c * advance).
        let c_re = b_re[k] * a_re[k] + b_im[k] * a_im[k];
        let c_im = b_im[k] * a_re[k] - b_re[k] * a_im[k];
        let re = c_re * advance[k].0 - c_im * advance[k].1;
        let m = ((a_re[k] * a_re[k] + a_im[k] * a_im[k]) * (b_re[k] * b_re[k] + b_im[k] * b_im[k])).sqrt();
        out[k] = (m - re) / (m + floor);
    }
}
