//! A clip to its segments' features: decode (any container or raw PCM), downmix, resample to
//! the spec's rate, check the duration, cut into segments by the spec's rule (DESIGN.md's tail
//! rule), extract and optionally normalize each segment. The one composition of those steps:
//! the trainer's dataset loader and the service's feature pool both call [`clip_features`]
//! (the trainer without a normalizer, since it caches raw features; the service with the
//! model's, and with its memory budget as the [`ClipBudget`]).

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::audio::{AudioInput, Segment, load_mono_budgeted};
use crate::{AudioError, AudioLimits, FeatureError, FeatureExtractor, Normalizer};

/// Why a clip has no features.
#[derive(Debug, Error)]
pub enum ClipError {
    /// Decoding, the budget, cancellation, or a clip too short for a verdict.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Extraction itself (an internal error: decoded audio always has features).
    #[error(transparent)]
    Features(#[from] FeatureError),
}

/// Told how much memory a clip's work holds as it goes, and may refuse (the error stops the
/// work): the service's memory budget and cancellation. Every step defaults to "no limit".
pub trait ClipBudget {
    /// While decoding and resampling: about to hold at most `samples` f32 samples (see
    /// [`crate::audio::SampleBudget`]); the input is still held.
    fn decoding(&mut self, samples: usize) -> Result<(), AudioError> {
        let _ = samples;
        Ok(())
    }

    /// Decoded, and the input dropped: `samples` mono samples at the spec's rate are held.
    fn decoded(&mut self, samples: usize) -> Result<(), AudioError> {
        let _ = samples;
        Ok(())
    }

    /// About to extract: the `samples` and `features` f32 values will be held together.
    fn extracting(&mut self, samples: usize, features: usize) -> Result<(), AudioError> {
        let _ = (samples, features);
        Ok(())
    }

    /// Extracted, and the samples dropped: only the `features` f32 values are held.
    fn extracted(&mut self, features: usize) -> Result<(), AudioError> {
        let _ = features;
        Ok(())
    }
}

/// A budget that never refuses.
pub struct Unbudgeted;

impl ClipBudget for Unbudgeted {}

/// Audio a caller hands over to [`clip_features`], which drops it as soon as it is decoded (so
/// a request's bytes are freed before extraction).
pub trait ClipAudio {
    fn input(&self) -> AudioInput<'_>;
}

impl ClipAudio for AudioInput<'_> {
    fn input(&self) -> AudioInput<'_> {
        *self
    }
}

/// A clip's features, `[kept segments][frames][n_features]` row-major, and what they came from.
#[derive(Debug, Clone)]
pub struct ClipFeatures {
    pub features: Vec<f32>,
    pub segments: Vec<Segment>,
    /// Which of `segments` have features (all of them unless a gate was given; see
    /// [`clip_features_gated`]).
    pub kept: Vec<bool>,
    /// Mono samples at the spec's rate.
    pub samples: usize,
    /// Time spent decoding and resampling.
    pub decode: Duration,
    /// Time spent segmenting and extracting.
    pub extract: Duration,
}

/// Decodes `audio` and computes its segments' features (normalized when `normalizer` is given),
/// telling `budget` before each buffer grows and as buffers are freed.
pub fn clip_features(
    extractor: &FeatureExtractor,
    normalizer: Option<&Normalizer>,
    audio: impl ClipAudio,
    limits: &AudioLimits,
    budget: &mut impl ClipBudget,
) -> Result<ClipFeatures, ClipError> {
    clip_features_gated(extractor, normalizer, audio, limits, budget, |_, _| true)
}

/// [`clip_features`] for the segments that pass `gate` (given each segment's real, unpadded
/// samples and the spec's rate): the others are not featurized, and `kept` says which is which.
/// The budget is still told the features of every segment (an upper bound).
pub fn clip_features_gated(
    extractor: &FeatureExtractor,
    normalizer: Option<&Normalizer>,
    audio: impl ClipAudio,
    limits: &AudioLimits,
    budget: &mut impl ClipBudget,
    gate: impl Fn(&[f32], u32) -> bool,
) -> Result<ClipFeatures, ClipError> {
    let spec = extractor.spec();
    let t0 = Instant::now();
    let mono = {
        let mut decoding = |samples: usize| budget.decoding(samples);
        load_mono_budgeted(audio.input(), spec.sample_rate, limits, &mut decoding)?
    };
    drop(audio);
    budget.decoded(mono.samples.len())?;
    let decode = t0.elapsed();
    let t1 = Instant::now();
    // Too short for a verdict (and too short to learn from).
    spec.check_duration(mono.samples.len())?;
    let segments = spec.segments(mono.samples.len(), spec.segment_samples);
    let floats = segments.len() * spec.frames_per_segment() * spec.n_features();
    budget.extracting(mono.samples.len(), floats)?;
    let (features, kept) = gated_segment_features(extractor, normalizer, &mono.samples, &segments, gate)?;
    let samples = mono.samples.len();
    drop(mono);
    budget.extracted(floats)?;
    Ok(ClipFeatures { features, segments, kept, samples, decode, extract: t1.elapsed() })
}

/// Features of `segments` of `samples` (mono at the spec's rate), normalized when `normalizer`
/// is given: each segment straight into its place in the output, with this thread's scratch.
pub fn segment_features(
    extractor: &FeatureExtractor,
    normalizer: Option<&Normalizer>,
    samples: &[f32],
    segments: &[Segment],
) -> Result<Vec<f32>, FeatureError> {
    Ok(gated_segment_features(extractor, normalizer, samples, segments, |_, _| true)?.0)
}

/// [`segment_features`] of the segments that pass `gate` (called with each segment's real,
/// unpadded samples, before padding and features, and the spec's rate), and which passed.
pub fn gated_segment_features(
    extractor: &FeatureExtractor,
    normalizer: Option<&Normalizer>,
    samples: &[f32],
    segments: &[Segment],
    gate: impl Fn(&[f32], u32) -> bool,
) -> Result<(Vec<f32>, Vec<bool>), FeatureError> {
    let spec = extractor.spec();
    let kept: Vec<bool> =
        segments.iter().map(|s| gate(&samples[s.start..s.start + s.valid], spec.sample_rate)).collect();
    let per = spec.frames_per_segment() * spec.n_features();
    let mut out = vec![0.0; kept.iter().filter(|&&k| k).count() * per];
    extractor.with_thread_scratch(|scratch| {
        let passed = segments.iter().zip(&kept).filter(|(_, k)| **k).map(|(s, _)| s);
        for (s, o) in passed.zip(out.chunks_exact_mut(per)) {
            extractor.extract_to(&s.samples(samples, spec.segment_samples), scratch, o)?;
            if let Some(n) = normalizer {
                n.apply(o);
            }
        }
        Ok::<_, FeatureError>(())
    })?;
    Ok((out, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FeatureSpec;
    use crate::audio::write_wav_pcm16;

    /// Records what the budget was told, and refuses past a limit.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(&'static str, usize)>,
        refuse_above: Option<usize>,
    }

    impl ClipBudget for Recorder {
        fn decoding(&mut self, samples: usize) -> Result<(), AudioError> {
            self.calls.push(("decoding", samples));
            match self.refuse_above {
                Some(max) if samples > max => Err(AudioError::Cancelled),
                _ => Ok(()),
            }
        }
        fn decoded(&mut self, samples: usize) -> Result<(), AudioError> {
            self.calls.push(("decoded", samples));
            Ok(())
        }
        fn extracting(&mut self, samples: usize, features: usize) -> Result<(), AudioError> {
            self.calls.push(("extracting", samples + features));
            Ok(())
        }
        fn extracted(&mut self, features: usize) -> Result<(), AudioError> {
            self.calls.push(("extracted", features));
            Ok(())
        }
    }

    fn wav(seconds: f64) -> Vec<u8> {
        let n = (seconds * 8000.0) as usize;
        let y: Vec<f32> =
            (0..n).map(|i| (0.3 * (i as f32 * 0.07).sin()) + 0.01 * ((i * 7919 % 101) as f32 / 101.0)).collect();
        let path = std::env::temp_dir().join(format!("vericlip-clip-{}-{seconds}.wav", std::process::id()));
        write_wav_pcm16(&path, &y, 8000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        bytes
    }

    #[test]
    fn features_equal_segment_by_segment_extraction_and_the_budget_is_told_each_step() {
        let spec = FeatureSpec::default();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let bytes = wav(4.5);
        let mut budget = Recorder::default();
        let clip = clip_features(&ex, None, AudioInput::Encoded(&bytes), &AudioLimits::default(), &mut budget).unwrap();
        // 4.5 s at 16 kHz: two full segments and a tail long enough to keep (padded).
        let mono = crate::audio::load_mono(AudioInput::Encoded(&bytes), 16_000, &AudioLimits::default()).unwrap();
        assert_eq!(clip.samples, mono.samples.len());
        let segments = spec.segments(mono.samples.len(), spec.segment_samples);
        assert_eq!(clip.segments, segments);
        assert!(segments.len() >= 2);
        let per = spec.frames_per_segment() * spec.n_features();
        let mut one = Vec::new();
        for (s, got) in segments.iter().zip(clip.features.chunks_exact(per)) {
            ex.extract_into(&s.samples(&mono.samples, spec.segment_samples), &mut ex.scratch(), &mut one).unwrap();
            assert_eq!(got, one.as_slice());
        }
        let steps: Vec<&str> = budget.calls.iter().map(|c| c.0).collect();
        let last_decoding = steps.iter().rposition(|s| *s == "decoding").unwrap();
        assert_eq!(&steps[last_decoding + 1..], ["decoded", "extracting", "extracted"]);
        assert_eq!(budget.calls.last().unwrap().1, clip.features.len());

        // Normalized: the same features through the normalizer.
        let n = Normalizer { mean: vec![1.0; spec.n_features()], std: vec![2.0; spec.n_features()] };
        let normalized =
            clip_features(&ex, Some(&n), AudioInput::Encoded(&bytes), &AudioLimits::default(), &mut Unbudgeted)
                .unwrap();
        let mut want = clip.features.clone();
        n.apply(&mut want);
        assert_eq!(normalized.features, want);
    }

    #[test]
    fn a_gate_leaves_out_the_segments_it_refuses_and_keeps_the_others_unchanged() {
        let spec = FeatureSpec::default();
        let ex = FeatureExtractor::new(spec.clone()).unwrap();
        let bytes = wav(4.5);
        let all =
            clip_features(&ex, None, AudioInput::Encoded(&bytes), &AudioLimits::default(), &mut Unbudgeted).unwrap();
        assert!(all.kept.iter().all(|&k| k));
        let mut budget = Recorder::default();
        // Keeps every other segment, each given its real samples at the spec's rate.
        let seen = std::cell::Cell::new(0);
        let full = spec.segment_samples;
        let gated = clip_features_gated(
            &ex,
            None,
            AudioInput::Encoded(&bytes),
            &AudioLimits::default(),
            &mut budget,
            |s, rate| {
                assert!(s.len() <= full && rate == spec.sample_rate);
                seen.set(seen.get() + 1);
                seen.get() % 2 == 1
            },
        )
        .unwrap();
        assert_eq!(gated.segments, all.segments);
        let want: Vec<bool> = (0..all.segments.len()).map(|i| i % 2 == 0).collect();
        assert_eq!(gated.kept, want);
        assert!(want.contains(&false) && want.contains(&true));
        let per = spec.frames_per_segment() * spec.n_features();
        let expected: Vec<f32> = all
            .features
            .chunks_exact(per)
            .zip(&want)
            .filter(|(_, k)| **k)
            .flat_map(|(f, _)| f.iter().copied())
            .collect();
        assert_eq!(gated.features, expected);
        // The budget is told every segment's features, gated or not.
        assert_eq!(budget.calls.last().unwrap().1, all.features.len());
    }

    #[test]
    fn a_refusing_budget_and_a_short_clip_stop_the_work() {
        let ex = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let bytes = wav(3.0);
        let mut refuse = Recorder { refuse_above: Some(1000), ..Recorder::default() };
        let e = clip_features(&ex, None, AudioInput::Encoded(&bytes), &AudioLimits::default(), &mut refuse);
        assert!(matches!(e, Err(ClipError::Audio(AudioError::Cancelled))), "{e:?}");
        assert!(!refuse.calls.iter().any(|c| c.0 == "extracting"));
        let short = wav(0.2);
        let e = clip_features(&ex, None, AudioInput::Encoded(&short), &AudioLimits::default(), &mut Unbudgeted);
        assert!(matches!(e, Err(ClipError::Audio(AudioError::TooShort { .. }))), "{e:?}");
    }
}
