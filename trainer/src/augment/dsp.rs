//! Signal processing for the augmentation kinds: FFT convolution, windowed-sinc band-stop FIR
//! design, Butterworth biquad cascades, a high shelf, cross-correlation delay search, and
//! level, conversion and test-signal helpers. The trainer is compiled optimised even in debug
//! builds (`[profile.dev.package.vericlip-train]` in the workspace `Cargo.toml`): a 65536-point
//! FFT convolution unoptimised took ~70 ms, optimised about a millisecond.

use std::cell::RefCell;
use std::f64::consts::PI;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

thread_local! {
    // Plans are cached per size by the planner; one planner per rayon worker.
    static PLANNER: RefCell<RealFftPlanner<f64>> = RefCell::new(RealFftPlanner::new());
}

/// Sum over `terms` of `x_k * h_k` (linear convolution), first `n` samples: `lfilter(h, 1, x)`
/// for each pair, added. One inverse FFT for all terms.
pub fn convolve_sum(terms: &[(&[f64], &[f64])], n: usize) -> Vec<f64> {
    let longest = terms.iter().map(|(x, h)| x.len().min(n) + h.len()).max().unwrap_or(0);
    if n == 0 || longest == 0 {
        return vec![0.0; n];
    }
    let size = (longest.max(n) + 1).next_power_of_two();
    PLANNER.with(|p| {
        let mut p = p.borrow_mut();
        let (fwd, inv) = (p.plan_fft_forward(size), p.plan_fft_inverse(size));
        let bins = size / 2 + 1;
        let mut acc = vec![Complex::new(0.0, 0.0); bins];
        let (mut a, mut b) = (vec![0.0; size], vec![0.0; size]);
        let (mut sa, mut sb) = (fwd.make_output_vec(), fwd.make_output_vec());
        for (x, h) in terms {
            a.fill(0.0);
            b.fill(0.0);
            let m = x.len().min(n);
            a[..m].copy_from_slice(&x[..m]);
            b[..h.len()].copy_from_slice(h);
            // Sizes are ours and consistent: the FFT cannot fail.
            fwd.process(&mut a, &mut sa).expect("forward FFT");
            fwd.process(&mut b, &mut sb).expect("forward FFT");
            for ((c, u), v) in acc.iter_mut().zip(&sa).zip(&sb) {
                *c += u * v;
            }
        }
        // The inverse needs a real DC and Nyquist bin; a product of real spectra has them up to rounding.
        acc[0].im = 0.0;
        acc[bins - 1].im = 0.0;
        let mut out = vec![0.0; size];
        inv.process(&mut acc, &mut out).expect("inverse FFT");
        out.truncate(n);
        let scale = 1.0 / size as f64;
        out.iter_mut().for_each(|v| *v *= scale);
        out
    })
}

/// `lfilter(h, 1, x)`: causal FIR filtering, same length as `x`.
pub fn fir_filter(x: &[f64], h: &[f64]) -> Vec<f64> {
    convolve_sum(&[(x, h)], x.len())
}

/// Full linear convolution of two short sequences (filter cascades).
pub fn convolve_direct(a: &[f64], b: &[f64]) -> Vec<f64> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { (PI * x).sin() / (PI * x) }
}

/// Hamming-windowed band-stop FIR of odd length `taps` removing `f1..f2` Hz, unit gain at DC
/// (scipy's `firwin(taps, [f1, f2], window="hamming", fs=fs)`, `pass_zero=True`).
pub fn bandstop(taps: usize, f1: f64, f2: f64, fs: f64) -> Vec<f64> {
    let m = (taps - 1) as f64 / 2.0;
    let (c1, c2) = (2.0 * f1 / fs, 2.0 * f2 / fs);
    let mut h: Vec<f64> = (0..taps)
        .map(|i| {
            let t = i as f64 - m;
            let ideal = sinc(t) - c2 * sinc(c2 * t) + c1 * sinc(c1 * t);
            let w = if taps > 1 { 0.54 - 0.46 * (2.0 * PI * i as f64 / (taps - 1) as f64).cos() } else { 1.0 };
            ideal * w
        })
        .collect();
    let dc: f64 = h.iter().sum();
    if dc.abs() > 1e-12 {
        h.iter_mut().for_each(|v| *v /= dc);
    }
    h
}

/// Largest magnitude of the frequency response of FIR `h` (sampled on at least 1024 points).
pub fn max_gain(h: &[f64]) -> f64 {
    let size = (h.len().max(1024)).next_power_of_two();
    PLANNER.with(|p| {
        let fwd = p.borrow_mut().plan_fft_forward(size);
        let mut a = vec![0.0; size];
        a[..h.len()].copy_from_slice(h);
        let mut spec = fwd.make_output_vec();
        fwd.process(&mut a, &mut spec).expect("forward FFT");
        spec.iter().map(|c| c.norm()).fold(0.0, f64::max)
    })
}

/// Butterworth filter of even `order` (a cascade of `order / 2` RBJ biquads with the
/// Butterworth pole Qs), low-pass or high-pass at `fc` Hz, applied in place.
pub fn butterworth(x: &mut [f64], order: usize, fc: f64, fs: f64, highpass: bool) {
    let sections = (order / 2).max(1);
    let w0 = 2.0 * PI * fc / fs;
    let (sin, cos) = w0.sin_cos();
    for k in 0..sections {
        let q = 1.0 / (2.0 * (PI * (2 * k + 1) as f64 / (4 * sections) as f64).cos());
        let alpha = sin / (2.0 * q);
        let (b0, b1) = if highpass { ((1.0 + cos) / 2.0, -(1.0 + cos)) } else { ((1.0 - cos) / 2.0, 1.0 - cos) };
        biquad(x, [b0, b1, b0], [1.0 + alpha, -2.0 * cos, 1.0 - alpha]);
    }
}

/// RBJ high-shelf (shelf slope 1): `gain_db` above `fc` Hz, 0 dB well below it, in place. A
/// negative gain dulls the top of the spectrum, a positive one brightens it (the tilt of a
/// microphone, a room or an equalizer).
pub fn high_shelf(x: &mut [f64], gain_db: f64, fc: f64, fs: f64) {
    let a = 10f64.powf(gain_db / 40.0);
    let (sin, cos) = (2.0 * PI * fc / fs).sin_cos();
    let beta = 2.0 * a.sqrt() * sin / 2.0 * 2f64.sqrt();
    biquad(
        x,
        [
            a * ((a + 1.0) + (a - 1.0) * cos + beta),
            -2.0 * a * ((a - 1.0) + (a + 1.0) * cos),
            a * ((a + 1.0) + (a - 1.0) * cos - beta),
        ],
        [(a + 1.0) - (a - 1.0) * cos + beta, 2.0 * ((a - 1.0) - (a + 1.0) * cos), (a + 1.0) - (a - 1.0) * cos - beta],
    );
}

/// One biquad section `b / a` (not normalized: `a[0]` divides), transposed direct form II, in place.
fn biquad(x: &mut [f64], b: [f64; 3], a: [f64; 3]) {
    let (b0, b1, b2, a1, a2) = (b[0] / a[0], b[1] / a[0], b[2] / a[0], a[1] / a[0], a[2] / a[0]);
    let (mut z1, mut z2) = (0.0, 0.0);
    for v in x.iter_mut() {
        let y = b0 * *v + z1;
        z1 = b1 * *v - a1 * y + z2;
        z2 = b2 * *v - a2 * y;
        *v = y;
    }
}

/// The delay `d` in `-early..=late` that best aligns `y` to `x` (`y[i + d] ~ x[i]`), by
/// cross-correlation through the FFT; 0 for silence.
pub fn delay_of(x: &[f32], y: &[f32], early: usize, late: usize) -> isize {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0;
    }
    let (early, late) = (early.min(n - 1), late.min(n - 1));
    // c[k] = sum_i x[i] y[i + k - (n - 1)]: (reversed x) * y.
    let xr: Vec<f64> = x[..n].iter().rev().map(|&v| f64::from(v)).collect();
    let yy: Vec<f64> = y[..n].iter().map(|&v| f64::from(v)).collect();
    let c = convolve_sum(&[(&xr, &yy)], n + late);
    let (mut best, mut best_v) = (0isize, 0.0);
    for d in -(early as isize)..=late as isize {
        let v = c[(n as isize - 1 + d) as usize];
        if v > best_v {
            (best, best_v) = (d, v);
        }
    }
    best
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_convolution_matches_direct() {
        let x: Vec<f64> = (0..3000).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        let h: Vec<f64> = (0..77).map(|i| (i as f64 * 0.3).cos() / (1.0 + i as f64)).collect();
        let fast = fir_filter(&x, &h);
        let slow = convolve_direct(&x, &h);
        assert_eq!(fast.len(), x.len());
        let err = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-9, "{err}");
    }

    #[test]
    fn bandstop_removes_its_band_and_keeps_dc() {
        let fs = 16_000.0;
        let h = bandstop(101, 1500.0, 2500.0, fs);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let gain_at = |f: f64| {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, v) in h.iter().enumerate() {
                re += v * (2.0 * PI * f * i as f64 / fs).cos();
                im -= v * (2.0 * PI * f * i as f64 / fs).sin();
            }
            (re * re + im * im).sqrt()
        };
        assert!(gain_at(2000.0) < 0.05, "{}", gain_at(2000.0));
        assert!((gain_at(500.0) - 1.0).abs() < 0.05 && (gain_at(5000.0) - 1.0).abs() < 0.05);
        assert!(max_gain(&h) >= gain_at(5000.0) - 1e-3);
    }

    #[test]
    fn butterworth_passes_and_stops() {
        let fs = 16_000.0;
        let tone = |f: f64| -> Vec<f64> { (0..16_000).map(|i| (2.0 * PI * f * i as f64 / fs).sin()).collect() };
        let level = |mut x: Vec<f64>, hp: bool| {
            butterworth(&mut x, 4, 1000.0, fs, hp);
            (x[4000..].iter().map(|v| v * v).sum::<f64>() / 12_000.0).sqrt() * 2f64.sqrt()
        };
        assert!(level(tone(200.0), false) > 0.95 && level(tone(5000.0), false) < 0.01);
        assert!(level(tone(5000.0), true) > 0.95 && level(tone(200.0), true) < 0.01);
        // -3 dB at the cutoff.
        assert!((level(tone(1000.0), false) - 0.5f64.sqrt()).abs() < 0.02);
    }

    #[test]
    fn delay_is_found() {
        let x: Vec<f32> = (0..8000).map(|i| (((i * 7919) % 997) as f32 / 498.0 - 1.0) * 0.5).collect();
        let mut y = vec![0f32; 137];
        y.extend_from_slice(&x[..8000 - 137]);
        assert_eq!(delay_of(&x, &y, 64, 2000), 137);
        assert_eq!(delay_of(&y, &x, 200, 2000), -137);
        assert_eq!(delay_of(&x, &x, 64, 2000), 0);
    }
}
