//! RawBoost (Tak et al., "RawBoost: a raw data boosting and augmentation method applied to
//! automatic speaker verification anti-spoofing", ICASSP 2022), with the paper's default
//! parameters at 16 kHz:
//!
//! 1. **Linear and non-linear convolutive noise** (LnL): `sum_{j=1..5} h_j * x^j`, each `h_j` a
//!    cascade of 5 Hamming-windowed band-stop FIRs (centre 20..8000 Hz, width 100..1000 Hz, 11..101
//!    taps, odd), normalised to a peak gain of 0 dB for `j = 1` and -20..-5 dB for the
//!    higher-order terms; the result has its mean removed and is scaled down if it peaks above 1.
//! 2. **Impulsive signal-dependent noise** (ISD): up to 10 % of the samples (share drawn
//!    uniformly) get `x[i] += 2 x[i] (2u-1)(2v-1)`.
//! 3. **Stationary signal-independent noise** (SSI): white noise through a random band-stop
//!    cascade as in 1, added at 10..40 dB SNR.
//!
//! Each copy that RawBoost touches gets a non-empty subset of the three (each of the seven
//! subsets equally likely), applied in the order 1, 2, 3 (the paper's series combinations).

use super::dsp;
use crate::rng::Rng;

const FS: f64 = 16_000.0;

/// The band-stop cascade of RawBoost's `genNotchCoeffs` (5 bands, 20..8000 Hz, 100..1000 Hz
/// wide, 11..101 taps), scaled so that its largest gain is `gain_db`.
fn notch_cascade(rng: &mut Rng, gain_db: f64) -> Vec<f64> {
    let mut b = vec![1.0];
    for _ in 0..5 {
        let fc = rng.range(20.0, 8000.0);
        let bw = rng.range(100.0, 1000.0);
        // 10..99 taps, made odd as RawBoost does (an even count gets one more).
        let taps = (10 + rng.below(90)) | 1;
        let f1 = (fc - bw / 2.0).max(1e-3);
        let f2 = (fc + bw / 2.0).min(FS / 2.0 - 1e-3);
        b = dsp::convolve_direct(&dsp::bandstop(taps, f1, f2, FS), &b);
    }
    let peak = dsp::max_gain(&b).max(1e-12);
    let g = 10f64.powf(gain_db / 20.0) / peak;
    b.iter_mut().for_each(|v| *v *= g);
    b
}

/// 1. Linear and non-linear convolutive noise.
pub fn convolutive(x: &[f64], rng: &mut Rng) -> Vec<f64> {
    let powers: Vec<Vec<f64>> = (1..=5).map(|j| x.iter().map(|v| v.powi(j)).collect()).collect();
    let filters: Vec<Vec<f64>> = (0..5)
        .map(|j| {
            let gain_db = if j == 0 { 0.0 } else { rng.range(-20.0, -5.0) };
            notch_cascade(rng, gain_db)
        })
        .collect();
    let terms: Vec<(&[f64], &[f64])> = powers.iter().zip(&filters).map(|(p, h)| (p.as_slice(), h.as_slice())).collect();
    let mut y = dsp::convolve_sum(&terms, x.len());
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    y.iter_mut().for_each(|v| *v -= mean);
    dsp::limit_peak(&mut y);
    y
}

/// 2. Impulsive signal-dependent noise, in place.
pub fn impulsive(x: &mut [f64], rng: &mut Rng) {
    let share = rng.range(0.0, 0.10);
    let n = (x.len() as f64 * share) as usize;
    // n distinct positions: a partial Fisher-Yates shuffle.
    let mut idx: Vec<usize> = (0..x.len()).collect();
    for k in 0..n {
        let j = k + rng.below(x.len() - k);
        idx.swap(k, j);
        let p = idx[k];
        let f = (2.0 * rng.uniform() - 1.0) * (2.0 * rng.uniform() - 1.0);
        x[p] += 2.0 * x[p] * f;
    }
    dsp::limit_peak(x);
}

/// 3. Stationary coloured noise at 10..40 dB SNR, in place.
pub fn stationary(x: &mut [f64], rng: &mut Rng) {
    let white: Vec<f64> = (0..x.len()).map(|_| rng.normal()).collect();
    let noise = dsp::fir_filter(&white, &notch_cascade(rng, 0.0));
    let snr = rng.range(10.0, 40.0);
    let (px, pn) = (dsp::rms(x), dsp::rms(&noise));
    if pn > 0.0 {
        let g = px / pn * 10f64.powf(-snr / 20.0);
        x.iter_mut().zip(&noise).for_each(|(v, n)| *v += g * n);
    }
}

/// One RawBoost pass: a non-empty subset of the three, in order.
pub fn rawboost(x: &[f64], rng: &mut Rng) -> Vec<f64> {
    let mask = 1 + rng.below(7);
    let mut y = if mask & 1 != 0 { convolutive(x, rng) } else { x.to_vec() };
    if mask & 2 != 0 {
        impulsive(&mut y, rng);
    }
    if mask & 4 != 0 {
        stationary(&mut y, rng);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speechy() -> Vec<f64> {
        (0..32_000)
            .map(|i| {
                let t = i as f64 / FS;
                0.3 * (2.0 * std::f64::consts::PI * 180.0 * t).sin()
                    * (1.0 + (2.0 * std::f64::consts::PI * 3.0 * t).sin())
                    / 2.0
                    + 0.1 * (2.0 * std::f64::consts::PI * 2300.0 * t).sin()
            })
            .collect()
    }

    #[test]
    fn each_part_changes_the_signal_and_keeps_its_size() {
        let x = speechy();
        let mut r = Rng::new(3);
        let c = convolutive(&x, &mut r);
        assert_eq!(c.len(), x.len());
        let diff = |a: &[f64], b: &[f64]| dsp::rms(&a.iter().zip(b).map(|(u, v)| u - v).collect::<Vec<_>>());
        assert!(diff(&c, &x) > 0.01 * dsp::rms(&x), "LnL left the signal as it was");
        assert!(c.iter().all(|v| v.is_finite() && v.abs() <= 1.0));

        let mut i = x.clone();
        impulsive(&mut i, &mut Rng::new(4));
        let changed = i.iter().zip(&x).filter(|(a, b)| a != b).count();
        assert!(changed > 0 && changed <= 3200, "{changed} samples changed (at most 10 %)");

        let mut s = x.clone();
        stationary(&mut s, &mut Rng::new(5));
        let snr = 20.0 * (dsp::rms(&x) / diff(&s, &x)).log10();
        assert!((10.0 - 1e-6..=40.0 + 1e-6).contains(&snr), "SNR {snr} dB");
    }

    #[test]
    fn notch_cascade_peaks_at_its_gain() {
        let b = notch_cascade(&mut Rng::new(9), -6.0);
        assert!((20.0 * dsp::max_gain(&b).log10() + 6.0).abs() < 1e-6);
    }
}
