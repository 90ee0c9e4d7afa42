//! The feature specification: every parameter that defines the model's input, recorded in each
//! model's manifest. Field names follow `shared/reference/features.py` so the JSON is the same.

use serde::{Deserialize, Serialize};

use super::FeatureError;

/// Analysis window. Only Hann (periodic, as `scipy.signal.get_window(.., fftbins=True)`) is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Hann,
}

/// Padding of the signal edges when `center = true`. Only zero padding is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    Constant,
}

/// Mel scale and filter normalization. Only Slaney's (librosa's default) is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slaney {
    Slaney,
}

/// Per-frame chroma normalization. Only the max (infinity) norm is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChromaNorm {
    Inf,
}

fn default_min_audio_seconds() -> f64 {
    1.0
}

/// Everything that determines the features a model sees. Defaults are DESIGN.md's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub sample_rate: u32,
    /// Samples per segment (2.0 s at 16 kHz).
    pub segment_samples: usize,
    /// Audio left after the last full window is scored when it is at least this long, by one
    /// more window aligned to the end of the audio (overlapping the previous one: real audio
    /// only, never zero padding that would dilute the clip's score).
    pub min_tail_seconds: f64,
    /// Shorter audio is an `audio_too_short` error rather than a verdict; audio between this and
    /// one segment is scored as one zero-padded window. Manifests written before this field
    /// existed read it as the default (1.0 s).
    #[serde(default = "default_min_audio_seconds")]
    pub min_audio_seconds: f64,
    pub n_fft: usize,
    pub hop_length: usize,
    pub win_length: usize,
    pub window: Window,
    pub center: bool,
    pub pad_mode: PadMode,
    pub n_mels: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub mel_scale: Slaney,
    pub mel_norm: Slaney,
    pub power: f64,
    pub db_ref: f64,
    pub db_amin: f64,
    pub db_top: f64,
    pub n_mfcc: usize,
    pub n_chroma: usize,
    pub chroma_tuning: f64,
    pub chroma_norm: ChromaNorm,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            segment_samples: 32_000,
            min_tail_seconds: 0.5,
            min_audio_seconds: default_min_audio_seconds(),
            n_fft: 512,
            hop_length: 256,
            win_length: 512,
            window: Window::Hann,
            center: true,
            pad_mode: PadMode::Constant,
            n_mels: 64,
            fmin: 0.0,
            fmax: 8000.0,
            mel_scale: Slaney::Slaney,
            mel_norm: Slaney::Slaney,
            power: 2.0,
            db_ref: 1.0,
            db_amin: 1e-10,
            db_top: 80.0,
            n_mfcc: 20,
            n_chroma: 12,
            chroma_tuning: 0.0,
            chroma_norm: ChromaNorm::Inf,
        }
    }
}

impl FeatureSpec {
    /// Floats per frame: `[n_mfcc MFCC, n_chroma chroma, n_mels log-mel]`.
    pub fn n_features(&self) -> usize {
        self.n_mfcc + self.n_chroma + self.n_mels
    }

    /// STFT frames for `n_samples` samples (`center = true`): `1 + n / hop`.
    pub fn frames_for(&self, n_samples: usize) -> usize {
        1 + n_samples / self.hop_length
    }

    /// Frames in one full segment (126 for the default spec).
    pub fn frames_per_segment(&self) -> usize {
        self.frames_for(self.segment_samples)
    }

    /// The model's segments of `n_samples` of audio: windows of `segment_samples` every
    /// `step_samples` (use `segment_samples` for non-overlapping), the tail by
    /// `min_tail_seconds`; none for audio under `min_audio_seconds` (see `check_duration`).
    pub fn segments(&self, n_samples: usize, step_samples: usize) -> Vec<crate::audio::Segment> {
        if self.check_duration(n_samples).is_err() {
            return Vec::new();
        }
        let min_tail = (self.min_tail_seconds * f64::from(self.sample_rate)).round() as usize;
        crate::audio::segment_plan(n_samples, self.segment_samples, step_samples, min_tail)
    }

    /// `audio_too_short` for audio under `min_audio_seconds`: the one rule that trainer,
    /// evaluation and server apply before segmenting.
    pub fn check_duration(&self, n_samples: usize) -> Result<(), crate::AudioError> {
        let seconds = n_samples as f64 / f64::from(self.sample_rate);
        if seconds < self.min_audio_seconds {
            return Err(crate::AudioError::TooShort { seconds, min: self.min_audio_seconds });
        }
        Ok(())
    }

    /// Segment length in seconds.
    pub fn segment_seconds(&self) -> f64 {
        self.segment_samples as f64 / f64::from(self.sample_rate)
    }

    /// Checks that the spec is one this extractor implements exactly; the error names the field.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |field: &'static str, reason: String| Err(FeatureError::InvalidSpec { field, reason });
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(1000..=192_000).contains(&self.sample_rate) {
            return bad("sample_rate", format!("{} Hz is outside 1000..=192000", self.sample_rate));
        }
        if self.n_fft < 16 || self.n_fft > 1 << 16 || !self.n_fft.is_multiple_of(2) {
            return bad("n_fft", format!("{} must be even and within 16..=65536", self.n_fft));
        }
        if self.win_length != self.n_fft {
            return bad("win_length", format!("{} must equal n_fft ({})", self.win_length, self.n_fft));
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad("hop_length", format!("{} must be within 1..=n_fft", self.hop_length));
        }
        if !self.center {
            return bad("center", "only center = true is implemented".into());
        }
        if self.segment_samples < self.n_fft {
            return bad("segment_samples", format!("{} is shorter than n_fft", self.segment_samples));
        }
        if !(self.min_tail_seconds >= 0.0 && self.min_tail_seconds <= self.segment_seconds()) {
            return bad("min_tail_seconds", format!("{} must be within 0..=segment length", self.min_tail_seconds));
        }
        if !(self.min_audio_seconds > 0.0 && self.min_audio_seconds <= self.segment_seconds()) {
            return bad("min_audio_seconds", format!("{} must be within (0, segment length]", self.min_audio_seconds));
        }
        if self.n_mels == 0 || self.n_mels > 512 {
            return bad("n_mels", format!("{} must be within 1..=512", self.n_mels));
        }
        if !(self.fmin >= 0.0 && self.fmin < self.fmax && self.fmax <= nyquist) {
            return bad("fmax", format!("need 0 <= fmin ({}) < fmax ({}) <= {nyquist}", self.fmin, self.fmax));
        }
        if self.power != 2.0 {
            return bad("power", format!("{} is not implemented (only 2.0)", self.power));
        }
        if !(self.db_amin > 0.0 && self.db_ref > 0.0 && self.db_top >= 0.0) {
            return bad("db_amin", "db_amin and db_ref must be > 0, db_top >= 0".into());
        }
        if self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            return bad("n_mfcc", format!("{} must be within 1..=n_mels", self.n_mfcc));
        }
        if self.n_chroma != 12 {
            return bad("n_chroma", format!("{} is not implemented (only 12)", self.n_chroma));
        }
        if !self.chroma_tuning.is_finite() || self.chroma_tuning.abs() > 0.5 {
            return bad("chroma_tuning", format!("{} must be within -0.5..=0.5", self.chroma_tuning));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid_and_has_126_frames_of_96() {
        let s = FeatureSpec::default();
        s.validate().unwrap();
        assert_eq!(s.frames_per_segment(), 126);
        assert_eq!(s.n_features(), 96);
    }

    #[test]
    fn spec_json_round_trips_and_rejects_unknown_fields() {
        let s = FeatureSpec::default();
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"window\":\"hann\""), "{j}");
        assert_eq!(serde_json::from_str::<FeatureSpec>(&j).unwrap(), s);
        let extra = j.replacen('{', "{\"bogus\":1,", 1);
        assert!(serde_json::from_str::<FeatureSpec>(&extra).is_err());
    }

    #[test]
    fn segments_apply_the_tail_rule_in_samples() {
        let s = FeatureSpec::default();
        // 4.25 s: two full segments, the 0.25 s tail is under 0.5 s and not scored again.
        assert_eq!(s.segments(68_000, s.segment_samples).len(), 2);
        // 4.5 s: the tail is scored by a full window aligned to the end (2.5..4.5 s).
        let last = s.segments(72_000, s.segment_samples).last().copied().unwrap();
        assert_eq!((last.start, last.valid), (40_000, 32_000));
        // Under a second: too short to judge; 1.5 s: one padded window.
        assert!(s.segments(15_999, s.segment_samples).is_empty());
        let e = s.check_duration(1).unwrap_err();
        assert_eq!(e.name(), "audio_too_short");
        assert_eq!(s.segments(24_000, s.segment_samples), vec![crate::audio::Segment { start: 0, valid: 24_000 }]);
        // Manifests from before `min_audio_seconds` read it as the default.
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("min_audio_seconds");
        let back: FeatureSpec = serde_json::from_value(old).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn invalid_spec_names_the_field() {
        let s = FeatureSpec { n_chroma: 24, ..FeatureSpec::default() };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("n_chroma"), "{e}");
        let s = FeatureSpec { fmax: 9000.0, ..FeatureSpec::default() };
        assert!(s.validate().unwrap_err().to_string().contains("fmax"));
    }
}
