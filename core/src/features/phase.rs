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
//! `d = |arg z|` (in `[0, pi]`), weighted by `w = m / (m + floor)` with `m = |X[t,k]| |X[t-1,k]|`
//! and `floor = max(max power of the segment * 10^(-db_top/10), db_amin)`: bins far below the
//! segment's loudest carry no phase worth the name (and no stable one between implementations),
//! and their weight vanishes. Frame 0 has no predecessor: all zeros. Then an orthonormal
//! DCT-II over the bins, first `n_phase_dev` coefficients. `X` is the STFT of the power path
//! (f64 transform rounded to complex64, as librosa's), so this agrees with
//! `tests/golden/reference_features_ext.py` to ~1e-5.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::dct::Dct;

pub struct PhaseDeviation {
    r2c: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// `exp(-2 pi i k hop / n_fft)` per bin.
    advance: Vec<Complex<f64>>,
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
    /// The previous frame's spectrum, rounded to complex64.
    prev: Vec<Complex<f32>>,
    /// `[n_bins][frames]` weighted deviations, the DCT's input.
    dev: Vec<f64>,
}

impl PhaseDeviation {
    pub fn new(n_fft: usize, hop: usize, n_out: usize) -> Self {
        let r2c = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let n_bins = n_fft / 2 + 1;
        // The periodic Hann window, as the power path's.
        let window =
            (0..n_fft).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()).collect();
        let advance = (0..n_bins)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 * hop as f64 / n_fft as f64;
                Complex { re: angle.cos(), im: angle.sin() }
            })
            .collect();
        Self { r2c, window, advance, dct: Dct::new(n_bins, n_out), n_fft, hop }
    }

    /// The block for `frames` frames of `padded` (the zero-padded signal of the STFT) into `out`
    /// (`[n_out][frames]`), given the segment's largest power-spectrum value.
    #[allow(clippy::too_many_arguments)]
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
        s.prev.resize(n_bins, Complex::default());
        s.dev.clear();
        s.dev.resize(n_bins * frames, 0.0);
        let floor = (f64::from(max_power) * 10f64.powf(-db_top / 10.0)).max(db_amin);
        for t in 0..frames {
            let src = &padded[t * self.hop..t * self.hop + self.n_fft];
            for ((f, x), w) in s.input.iter_mut().zip(src).zip(&self.window) {
                *f = f64::from(*x) * w;
            }
            // The lengths are the plan's own, so the transform cannot fail.
            if self.r2c.process_with_scratch(&mut s.input, &mut s.spectrum, &mut s.fft_scratch).is_err() {
                unreachable!("real FFT buffers sized by its own plan");
            }
            for (k, c) in s.spectrum.iter().enumerate() {
                let now = Complex { re: c.re as f32, im: c.im as f32 };
                if t > 0 {
                    let (a, b) = (to64(now), to64(s.prev[k]));
                    let z = a * b.conj() * self.advance[k];
                    let m = a.norm() * b.norm();
                    s.dev[k * frames + t] = m / (m + floor) * z.im.atan2(z.re).abs();
                }
                s.prev[k] = now;
            }
        }
        self.dct.apply_columns::<WIDE>(&s.dev, frames, out);
    }
}

fn to64(c: Complex<f32>) -> Complex<f64> {
    Complex { re: f64::from(c.re), im: f64::from(c.im) }
}
