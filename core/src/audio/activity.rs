//! Is there anything to judge in a window? A model asked about digital silence, or a line's hiss,
//! still answers with a score (3 s of silence came back a confident REAL): it was never trained
//! to say "nothing here". This energy gate, applied once per window to the model-rate audio
//! *before* feature extraction and normalization, lets the service answer `no_speech` instead,
//! the same way for a clip and for each streamed window.
//!
//! The rule (docs/ARCHITECTURE.md, "API semantics"): the window's audio is cut into 25 ms frames;
//! a frame is *active* when its RMS level reaches `FLOOR_DBFS` (-55 dBFS, full scale = 1.0); a
//! window has speech when its active frames add up to at least `MIN_ACTIVE_SECONDS` (0.2 s).
//! Only the window's real audio counts (the zero padding of a short clip never does). It is an
//! energy gate, not a speech recognizer: loud non-speech (music, a tone, hum above the floor)
//! still gets a verdict.

/// Frame length of the gate, in seconds.
pub const FRAME_SECONDS: f64 = 0.025;
/// A frame whose RMS level is below this (dBFS, full scale = 1.0) is silent. Speech recorded at
/// any usable level has most frames far above it (the bundled clips: median -26 to -33 dBFS).
pub const FLOOR_DBFS: f64 = -55.0;
/// Active audio a window needs to have speech (8 frames of 25 ms).
pub const MIN_ACTIVE_SECONDS: f64 = 0.2;

/// Whether `samples` (mono at `rate`, unnormalized) hold enough active audio to be judged.
pub fn has_speech(samples: &[f32], rate: u32) -> bool {
    let frame = ((FRAME_SECONDS * f64::from(rate)).round() as usize).max(1);
    let needed = ((MIN_ACTIVE_SECONDS / FRAME_SECONDS).round() as usize).max(1);
    // Mean square against the floor's square: no log, no sqrt per frame.
    let floor_power = 10f64.powf(FLOOR_DBFS / 10.0);
    let mut active = 0;
    for chunk in samples.chunks(frame) {
        // A trailing partial frame counts only if it is at least half a frame long.
        if chunk.len() * 2 < frame {
            break;
        }
        let power = chunk.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / chunk.len() as f64;
        if power >= floor_power {
            active += 1;
            if active >= needed {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    /// `seconds` of a 220 Hz tone at `dbfs` RMS.
    fn tone(seconds: f64, dbfs: f64) -> Vec<f32> {
        let amp = 10f64.powf(dbfs / 20.0) * std::f64::consts::SQRT_2;
        (0..(seconds * f64::from(RATE)) as usize)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * 220.0 * i as f64 / f64::from(RATE)).sin()) as f32)
            .collect()
    }

    /// Deterministic white-ish noise at about `dbfs` RMS.
    fn noise(seconds: f64, dbfs: f64) -> Vec<f32> {
        let amp = 10f64.powf(dbfs / 20.0) * 3f64.sqrt();
        let mut x = 0x2545_f491_u32;
        (0..(seconds * f64::from(RATE)) as usize)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                ((f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0) * amp) as f32
            })
            .collect()
    }

    #[test]
    fn silence_and_near_silence_have_no_speech() {
        assert!(!has_speech(&vec![0.0; 2 * RATE as usize], RATE));
        assert!(!has_speech(&noise(2.0, -70.0), RATE));
        assert!(!has_speech(&noise(2.0, -60.0), RATE));
        assert!(!has_speech(&[], RATE));
    }

    #[test]
    fn audible_signal_has_speech() {
        assert!(has_speech(&noise(2.0, -30.0), RATE));
        assert!(has_speech(&tone(2.0, -50.0), RATE));
    }

    #[test]
    fn the_active_time_decides() {
        // 0.15 s of signal in silence is not enough; 0.25 s is.
        let burst = |active: f64| {
            let mut v = vec![0.0; RATE as usize];
            v.extend(tone(active, -20.0));
            v.extend(vec![0.0; RATE as usize]);
            v
        };
        assert!(!has_speech(&burst(0.15), RATE));
        assert!(has_speech(&burst(0.25), RATE));
    }

    #[test]
    fn frames_follow_the_rate() {
        // The same 0.3 s burst at 8 kHz and 48 kHz.
        for rate in [8_000, 48_000] {
            let mut v = vec![0.0f32; rate as usize];
            v.extend((0..(0.3 * f64::from(rate)) as usize).map(|i| if i % 2 == 0 { 0.1 } else { -0.1 }));
            assert!(has_speech(&v, rate), "{rate} Hz");
            assert!(!has_speech(&vec![0.0; 2 * rate as usize], rate), "{rate} Hz");
        }
    }
}
