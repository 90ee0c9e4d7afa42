//! Training-time augmentation, so the model leans on cues that survive real-world transmission
//! rather than on the level, noise floor or bandwidth of the stand-in corpus: random gain,
//! time shift, additive noise, and a telephone channel (8 kHz band limit or a GSM round trip).
//! Applied to the 16 kHz audio of each training segment before features; every copy draws from
//! its own seeded stream, so results do not depend on thread scheduling.

use crate::corpus::process::{Channel, apply_channel};
use crate::rng::Rng;

/// One augmented copy of a 16 kHz segment (same length).
pub fn augment(y: &[f32], rng: &mut Rng) -> anyhow::Result<Vec<f32>> {
    let n = y.len();
    // Time shift by up to 0.25 s either way, zero-filled.
    let shift = (rng.range(-0.25, 0.25) * 16_000.0) as isize;
    let mut x: Vec<f32> = (0..n as isize).map(|i| y.get((i - shift) as usize).copied().unwrap_or(0.0)).collect();
    // Channel: half wideband, a quarter 8 kHz band limit, a quarter GSM 06.10.
    let channel = match rng.below(4) {
        0 => Channel::Narrowband8k,
        1 => Channel::Gsm,
        _ => Channel::Wideband,
    };
    if channel != Channel::Wideband {
        x = apply_channel(&x, channel)?;
        x.resize(n, 0.0);
    }
    // Additive white noise at 15..40 dB SNR, half the time.
    if rng.below(2) == 0 {
        let rms = (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
        let sigma = rms * 10f64.powf(-rng.range(15.0, 40.0) / 20.0);
        for v in &mut x {
            *v += (sigma * rng.normal()) as f32;
        }
    }
    // Gain -12..+6 dB, clipped like a real recording chain would.
    let gain = 10f64.powf(rng.range(-12.0, 6.0) / 20.0) as f32;
    for v in &mut x {
        *v = (*v * gain).clamp(-1.0, 1.0);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_differ_keep_length_and_are_reproducible() {
        let y: Vec<f32> = (0..32_000).map(|i| ((i as f64 * 0.031).sin() * 0.3) as f32).collect();
        let (a, b) = (augment(&y, &mut Rng::new(1)).unwrap(), augment(&y, &mut Rng::new(2)).unwrap());
        assert_eq!((a.len(), b.len()), (32_000, 32_000));
        assert_ne!(a, b);
        assert_eq!(a, augment(&y, &mut Rng::new(1)).unwrap());
        assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }
}
