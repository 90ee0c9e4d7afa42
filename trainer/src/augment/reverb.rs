//! Reverberation with a synthetic room impulse response: a direct path (a unit impulse at 0)
//! and, after a pre-delay of 1..8 ms, Gaussian noise decaying exponentially by 60 dB over RT60
//! (0.2..0.8 s), the tail scaled to the direct path's energy. The reverberant signal is mixed
//! with the dry one (wet share 0.2..0.8) and brought back to the input's RMS level. Same length:
//! the tail that would ring past the segment's end is cut.

use super::dsp;
use crate::rng::Rng;

const FS: f64 = 16_000.0;

/// The room impulse response for `rt60` seconds, pre-delay `pre` samples.
pub fn room_response(rt60: f64, pre: usize, rng: &mut Rng) -> Vec<f64> {
    let len = (rt60 * FS).ceil() as usize + pre;
    let mut h = vec![0.0; len.max(1)];
    // 60 dB of amplitude decay over rt60: exp(-ln(1000) t / rt60).
    let k = 1000f64.ln() / (rt60 * FS);
    for (t, v) in h.iter_mut().enumerate().skip(pre.max(1)) {
        *v = rng.normal() * (-k * (t - pre) as f64).exp();
    }
    let tail = h[1..].iter().map(|v| v * v).sum::<f64>().sqrt();
    if tail > 0.0 {
        h[1..].iter_mut().for_each(|v| *v /= tail);
    }
    h[0] = 1.0;
    h
}

pub fn reverb(x: &[f64], rng: &mut Rng) -> Vec<f64> {
    let rt60 = rng.range(0.2, 0.8);
    let pre = (rng.range(0.001, 0.008) * FS) as usize;
    let wet = rng.range(0.2, 0.8);
    let h = room_response(rt60, pre, rng);
    let r = dsp::fir_filter(x, &h);
    let mut y: Vec<f64> = x.iter().zip(&r).map(|(d, w)| (1.0 - wet) * d + wet * w).collect();
    dsp::match_rms(&mut y, dsp::rms(x));
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_decays_by_rt60() {
        let h = room_response(0.5, 40, &mut Rng::new(1));
        assert_eq!(h.len(), 8000 + 40);
        assert_eq!(h[0], 1.0);
        assert!(h[1..40].iter().all(|v| *v == 0.0), "nothing before the pre-delay");
        let e = |a: usize, b: usize| h[a..b].iter().map(|v| v * v).sum::<f64>() / (b - a) as f64;
        // 60 dB over 0.5 s: 48 dB down from the first 0.1 s to the fifth (0.4 s later).
        let drop = 10.0 * (e(40, 1640) / e(6440, 8040)).log10();
        assert!((drop - 48.0).abs() < 4.0, "{drop} dB between 0-0.1 s and 0.4-0.5 s");
    }
}
