//! Level, conversion and test-signal helpers of the augmentation kinds; the heavy kernels (FFT
//! convolution, filter design, Butterworth, delay search) are `vericlip_core::dsp`, compiled
//! optimised even in debug builds.

use std::f64::consts::PI;

pub use vericlip_core::dsp::*;

pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Scales `x` to the RMS level `target` (silence stays silence).
pub fn match_rms(x: &mut [f64], target: f64) {
    let r = rms(x);
    if r > 1e-12 {
        x.iter_mut().for_each(|v| *v *= target / r);
    }
}

/// Divides by the peak when it exceeds 1 (RawBoost's `normWav(x, 0)`).
pub fn limit_peak(x: &mut [f64]) {
    let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if peak > 1.0 {
        x.iter_mut().for_each(|v| *v /= peak);
    }
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

pub fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// `n` samples of a synthetic vowel-like voice at 16 kHz (source-filter: a glottal pulse train
/// at a gliding 95..165 Hz through three moving formant resonators, syllable envelope, peak
/// 0.5): what speech codecs are built for, so a probe through them stays waveform-comparable.
pub fn voice(n: usize) -> Vec<f32> {
    let fs = 16_000.0;
    let (mut phase, mut glottal) = (0.0f64, 0.0f64);
    let mut state = [[0.0f64; 2]; 3];
    let mut out: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let f0 = 130.0 + 25.0 * (2.0 * PI * 0.7 * t).sin() + 10.0 * (2.0 * PI * 2.3 * t).sin();
            phase += f0 / fs;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            glottal = 0.9 * glottal + pulse;
            let formants = [
                (550.0 + 200.0 * (2.0 * PI * 1.1 * t).sin(), 80.0),
                (1500.0 + 500.0 * (2.0 * PI * 0.8 * t + 1.0).sin(), 120.0),
                (2600.0 + 200.0 * (2.0 * PI * 0.5 * t).sin(), 160.0),
            ];
            let mut v = glottal;
            for ((f, bw), z) in formants.iter().zip(state.iter_mut()) {
                let r = (-PI * bw / fs).exp();
                let y = (1.0 - r) * v + 2.0 * r * (2.0 * PI * f / fs).cos() * z[0] - r * r * z[1];
                *z = [y, z[0]];
                v = y;
            }
            v * (0.6 + 0.4 * (2.0 * PI * 3.0 * t).sin())
        })
        .collect();
    let mean = out.iter().sum::<f64>() / n.max(1) as f64;
    out.iter_mut().for_each(|v| *v -= mean);
    let peak = out.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    out.iter().map(|v| (0.5 * v / peak) as f32).collect()
}

/// Pearson correlation of two equally long signals.
#[cfg(test)]
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    let (ma, mb) = (a.iter().map(|&v| f64::from(v)).sum::<f64>() / n, b.iter().map(|&v| f64::from(v)).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 0.0 || sbb <= 0.0 { 0.0 } else { sab / (saa * sbb).sqrt() }
}
