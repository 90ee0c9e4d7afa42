//! Joining one speaker's short recordings (isolated words, syllables, game lines) into continuous
//! speech that is then cut into 2 s clips, and the silence statistics that check the result.
//!
//! Why not fixed pauses: corpus v5 joined hedgewars lines with 0.25 s of digital silence, a
//! pattern no TTS clip has and a model can key on. Here each joint keeps a pause drawn per joint
//! from [`PAUSE`], made of the two recordings' own lead-out and lead-in (their room tone, not
//! inserted zeros or noise), with a short crossfade; a recording without that much margin gives a
//! shorter pause. The test compares the silence statistics of joined words with those of a TTS
//! sentence of the same length.

use super::process::{SR, trim};
use crate::rng::Rng;

/// Crossfade at each joint (10 ms): no click, no audible splice.
const CROSSFADE: usize = SR as usize / 100;
/// The pause kept at a joint, seconds (drawn uniformly per joint). Isolated recordings bring
/// their own quiet onsets and decays, so joints without any pause already leave ~4 % of a clip
/// silent; 0-80 ms more gives joined espeak-ng words the silence of the same words spoken as a
/// sentence (0.03-0.2 s gave about three times the sentence's silent frames).
const PAUSE: (f64, f64) = (0.0, 0.08);
/// Level, below the loudest frame, under which a recording's edges count as silence (the trim rule
/// of every corpus source).
const TRIM_DB: f64 = 35.0;

/// The recordings joined in order: each one's speech (its [`trim`] bounds) plus half of a pause
/// drawn for each joint on either side, taken from the recording itself, crossfaded into the next.
pub fn join(recordings: &[Vec<f32>], rng: &mut Rng) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::new();
    // Half of the pause before the current recording (none before the first).
    let mut lead_in = 0usize;
    for y in recordings {
        let speech = trim(y, TRIM_DB);
        if speech.is_empty() {
            continue;
        }
        // Offset of the speech inside the recording (`trim` returns a subslice of `y`).
        let start = (speech.as_ptr() as usize - y.as_ptr() as usize) / std::mem::size_of::<f32>();
        let end = start + speech.len();
        let pause_after = (rng.range(PAUSE.0, PAUSE.1) * f64::from(SR)) as usize;
        let lead_out = pause_after - pause_after / 2;
        let piece = &y[start.saturating_sub(lead_in + CROSSFADE)..(end + lead_out).min(y.len())];
        lead_in = pause_after / 2;
        crossfade_onto(&mut out, piece);
    }
    out
}

/// Appends `piece` to `out`, overlapping the last [`CROSSFADE`] samples with equal-power fades.
fn crossfade_onto(out: &mut Vec<f32>, piece: &[f32]) {
    let n = CROSSFADE.min(out.len()).min(piece.len());
    let base = out.len() - n;
    for i in 0..n {
        let t = (i as f64 + 0.5) / n as f64;
        let (fade_out, fade_in) = ((t * std::f64::consts::FRAC_PI_2).cos(), (t * std::f64::consts::FRAC_PI_2).sin());
        out[base + i] = (f64::from(out[base + i]) * fade_out + f64::from(piece[i]) * fade_in) as f32;
    }
    out.extend_from_slice(&piece[n..]);
}

/// How much of a clip is silence: 20 ms frames more than [`TRIM_DB`] below the clip's loudest.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SilenceStats {
    /// Share of silent frames.
    pub silent_fraction: f64,
    /// Mean length of a run of silent frames, seconds (0 when there is none).
    pub mean_pause_s: f64,
    /// Longest run of silent frames, seconds.
    pub longest_pause_s: f64,
}

pub fn silence_stats(y: &[f32]) -> SilenceStats {
    const FRAME: usize = SR as usize / 50;
    let energy: Vec<f64> = y
        .chunks_exact(FRAME)
        .map(|f| f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / FRAME as f64 + 1e-12)
        .collect();
    let max = energy.iter().fold(0f64, |m, e| m.max(*e));
    let silent: Vec<bool> = energy.iter().map(|e| 10.0 * (e / max).log10() < -TRIM_DB).collect();
    let mut runs = Vec::new();
    let mut run = 0usize;
    for &s in silent.iter().chain(std::iter::once(&false)) {
        if s {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    let frame_s = FRAME as f64 / f64::from(SR);
    SilenceStats {
        silent_fraction: silent.iter().filter(|s| **s).count() as f64 / silent.len().max(1) as f64,
        mean_pause_s: if runs.is_empty() {
            0.0
        } else {
            runs.iter().sum::<usize>() as f64 / runs.len() as f64 * frame_s
        },
        longest_pause_s: runs.iter().max().copied().unwrap_or(0) as f64 * frame_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "word": `len` samples of a decaying 180 Hz harmonic tone between `margin` samples of
    /// room tone (-60 dB noise) on either side.
    fn word(len: usize, margin: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..len + 2 * margin)
            .map(|i| {
                let noise = r.range(-1e-3, 1e-3);
                if i < margin || i >= margin + len {
                    return noise as f32;
                }
                let t = (i - margin) as f64 / f64::from(SR);
                let env = (std::f64::consts::PI * (i - margin) as f64 / len as f64).sin();
                (noise + 0.3 * env * (2.0 * std::f64::consts::PI * 180.0 * t).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn joints_keep_the_recordings_own_room_tone_and_vary() {
        let words: Vec<Vec<f32>> = (0..12).map(|k| word(4000 + 300 * k, 4000, k as u64)).collect();
        let joined = join(&words, &mut Rng::new(7));
        // Never inserted digital silence: every 5 ms stretch carries the recordings' noise.
        assert!(joined.chunks_exact(80).all(|c| c.iter().any(|s| s.abs() > 1e-5)), "a run of zeros was inserted");
        // Pauses are drawn per joint: their lengths differ (no fixed pattern).
        let stats = silence_stats(&joined);
        assert!(stats.longest_pause_s > stats.mean_pause_s + 0.02, "{stats:?}");
        let words_len: usize = words.iter().map(|w| w.len() - 8000).sum();
        let max_len = words_len + 12 * ((PAUSE.1 * f64::from(SR)) as usize + 2 * CROSSFADE);
        assert!(
            joined.len() > words_len * 9 / 10 && joined.len() < max_len,
            "{} vs {words_len}..{max_len}",
            joined.len()
        );
        // Another draw, other pauses.
        assert_ne!(join(&words, &mut Rng::new(8)).len(), joined.len());
        // A recording without margins joins without a pause and without zeros.
        let bare: Vec<Vec<f32>> = (0..3).map(|k| word(4000, 0, k)).collect();
        assert!(join(&bare, &mut Rng::new(1)).len() <= 12_000);
    }

    #[test]
    fn silence_stats_measure_pauses() {
        let mut y = word(16_000, 0, 1);
        y.extend(vec![0.0; 8000]);
        y.extend(word(8000, 0, 2));
        let s = silence_stats(&y);
        assert!((s.silent_fraction - 0.25).abs() < 0.06, "{s:?}");
        assert!((s.longest_pause_s - 0.5).abs() < 0.06, "{s:?}");
    }

    /// The corpus's joined real speech against a TTS clip of the same length: the words of a
    /// sentence spoken one by one by espeak-ng (recordings with their own silent margins, as
    /// isolated-word recordings are), joined, then cut to 2 s like every corpus clip, against the
    /// same engine speaking the sentence, trimmed and cut the same way. Their silence statistics
    /// must agree within a tolerance that an inserted fixed pause (corpus v5's 0.25 s) breaks.
    #[test]
    fn joined_words_have_the_silence_of_a_tts_sentence() {
        let dir = std::env::temp_dir().join(format!("vericlip-join-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scratch = dir.join("s.wav");
        let speak = |text: &str| {
            super::super::tts::speak(super::super::tts::Engine::Espeak, "m1", "en", text, 170, 50, &scratch).unwrap()
        };
        let two_s = |y: &[f32]| -> Vec<f32> {
            let t = trim(y, TRIM_DB);
            assert!(t.len() >= 2 * SR as usize, "sentence shorter than 2 s");
            t[..2 * SR as usize].to_vec()
        };
        // Long enough that the words alone, joined, exceed 2 s.
        let sentences = [
            "Please hold the line while we connect your call to the next available agent in our customer service team.",
            "The meeting has been moved to Thursday afternoon at the main office because the director is travelling this week.",
            "Your package will arrive between nine and noon tomorrow morning, so please make sure someone is at home to sign.",
            "The weather tonight will be cold with light rain in the north and strong winds along the eastern coast.",
        ];
        let (mut joined_stats, mut tts_stats, mut fixed_stats) = (vec![], vec![], vec![]);
        let mut rng = Rng::new(3);
        for s in sentences {
            let words: Vec<Vec<f32>> = s.split_whitespace().map(speak).collect();
            joined_stats.push(silence_stats(&two_s(&join(&words, &mut rng))));
            tts_stats.push(silence_stats(&two_s(&speak(s))));
            // Corpus v5's hedgewars joining: trimmed lines with 0.25 s of zeros between.
            let mut fixed = Vec::new();
            for w in &words {
                fixed.extend_from_slice(trim(w, TRIM_DB));
                fixed.extend(std::iter::repeat_n(0.0, SR as usize / 4));
            }
            fixed_stats.push(silence_stats(&two_s(&fixed)));
        }
        std::fs::remove_dir_all(&dir).ok();
        let mean = |v: &[SilenceStats], f: fn(&SilenceStats) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        let frac = |s: &SilenceStats| s.silent_fraction;
        let pause = |s: &SilenceStats| s.mean_pause_s;
        let (j, t, x) = (mean(&joined_stats, frac), mean(&tts_stats, frac), mean(&fixed_stats, frac));
        let (jp, tp, xp) = (mean(&joined_stats, pause), mean(&tts_stats, pause), mean(&fixed_stats, pause));
        eprintln!(
            "silent fraction joined {j:.3} tts {t:.3} fixed {x:.3}; mean pause joined {jp:.3} tts {tp:.3} fixed {xp:.3}"
        );
        // Measured when written: joined 0.077 / 0.031 s, TTS 0.073 / 0.029 s, fixed pauses
        // 0.397 / 0.199 s.
        assert!((j - t).abs() < 0.07, "silent fraction: joined {j:.3}, TTS {t:.3}");
        assert!((jp - tp).abs() < 0.03, "mean pause: joined {jp:.3} s, TTS {tp:.3} s");
        // The tolerance has teeth: the fixed 0.25 s pauses fall outside it.
        assert!((x - t).abs() >= 0.07 && (xp - tp).abs() >= 0.03, "fixed pauses pass: {x:.3} / {xp:.3} s");
    }
}
