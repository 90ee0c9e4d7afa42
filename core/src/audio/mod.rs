//! Audio in: bytes of any supported container (sniffed from content) or raw PCM, decoded,
//! checked, downmixed to mono, resampled to the feature spec's rate, and cut into segments.

pub mod activity;
mod decode;
mod pcm;
mod resample;
pub mod segment;
mod wav;

use thiserror::Error;

pub use decode::decode_container;
pub use pcm::{PcmFormat, decode_pcm};
pub use resample::{StreamResampler, resample};
pub use segment::{Segment, segment_plan};
pub use wav::write_wav_pcm16;

/// Mono audio at a known rate.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl MonoAudio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// What a caller hands in: encoded bytes (format sniffed) or headerless PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioInput<'a> {
    Encoded(&'a [u8]),
    Pcm { bytes: &'a [u8], format: PcmFormat, sample_rate: u32, channels: u32 },
}

/// Bounds that protect a process from hostile or absurd input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// Longest audio accepted, in seconds (checked against headers before decoding, and while decoding).
    pub max_seconds: f64,
    pub min_sample_rate: u32,
    pub max_sample_rate: u32,
    pub max_channels: u32,
}

impl Default for AudioLimits {
    fn default() -> Self {
        Self { max_seconds: 600.0, min_sample_rate: 1000, max_sample_rate: 384_000, max_channels: 32 }
    }
}

impl AudioLimits {
    /// Rejects a sample rate or channel count outside the limits (before any decoding).
    pub fn check_format(&self, sample_rate: u32, channels: u32) -> Result<(), AudioError> {
        if !(self.min_sample_rate..=self.max_sample_rate).contains(&sample_rate) {
            return Err(AudioError::InvalidSampleRate {
                rate: sample_rate,
                min: self.min_sample_rate,
                max: self.max_sample_rate,
            });
        }
        if channels == 0 || channels > self.max_channels {
            return Err(AudioError::InvalidChannels { channels, max: self.max_channels });
        }
        Ok(())
    }

    pub(crate) fn check_frames(&self, frames: u64, sample_rate: u32) -> Result<(), AudioError> {
        let seconds = frames as f64 / f64::from(sample_rate.max(1));
        if seconds > self.max_seconds {
            return Err(AudioError::TooLong { seconds, limit: self.max_seconds });
        }
        Ok(())
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AudioError {
    #[error("audio is empty: no samples")]
    Empty,
    #[error("audio could not be decoded: {0}")]
    Undecodable(String),
    #[error("unsupported audio format or codec: {0}")]
    Unsupported(String),
    #[error("audio contains a non-finite sample (NaN or infinity) at frame {frame}")]
    NonFinite { frame: usize },
    #[error("invalid sample rate {rate} Hz: must be within {min}..={max} Hz")]
    InvalidSampleRate { rate: u32, min: u32, max: u32 },
    #[error("invalid channel count {channels}: must be within 1..={max}")]
    InvalidChannels { channels: u32, max: u32 },
    #[error("audio is {seconds:.1} s long, over the limit of {limit:.1} s")]
    TooLong { seconds: f64, limit: f64 },
    #[error("audio is {seconds:.2} s long; at least {min:.2} s is needed for a verdict")]
    TooShort { seconds: f64, min: f64 },
    #[error("raw PCM is {len} bytes, not a whole number of {frame_bytes}-byte frames")]
    RaggedPcm { len: usize, frame_bytes: usize },
    #[error("audio I/O failed: {0}")]
    Io(String),
    #[error("resampling from {from} Hz to {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },
    #[error(
        "the server's memory budget cannot hold this audio now ({needed_bytes} bytes needed, {free_bytes} free of {budget_bytes}); retry later or send shorter audio"
    )]
    OverBudget { needed_bytes: u64, free_bytes: u64, budget_bytes: u64 },
    #[error("the request was cancelled (its caller went away or its deadline passed)")]
    Cancelled,
}

impl AudioError {
    /// Stable, machine-readable name of the error (API error details, metrics labels).
    pub fn name(&self) -> &'static str {
        match self {
            AudioError::Empty => "empty_audio",
            AudioError::Undecodable(_) => "undecodable_audio",
            AudioError::Unsupported(_) => "unsupported_audio",
            AudioError::NonFinite { .. } => "non_finite_samples",
            AudioError::InvalidSampleRate { .. } => "invalid_sample_rate",
            AudioError::InvalidChannels { .. } => "invalid_channels",
            AudioError::TooLong { .. } => "audio_too_long",
            AudioError::TooShort { .. } => "audio_too_short",
            AudioError::RaggedPcm { .. } => "ragged_pcm",
            AudioError::Io(_) => "audio_io",
            AudioError::Resample { .. } => "resample_failed",
            AudioError::OverBudget { .. } => "memory_budget_exhausted",
            AudioError::Cancelled => "cancelled",
        }
    }
}

/// Index of the first NaN or infinity in `x`.
#[inline]
pub(crate) fn first_non_finite(x: &[f32]) -> Option<usize> {
    first_non_finite_bits(x.iter().map(|v| v.to_bits()))
}

/// Index of the first NaN or infinity among f32 bit patterns (all exponent bits set), however
/// they are stored (`f32` values, little-endian bytes). The common case, none, is one
/// integer-maximum pass over the exponent bits, which vectorizes (an early-exit search does not).
#[inline(always)]
pub(crate) fn first_non_finite_bits(mut bits: impl Iterator<Item = u32> + Clone) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    if bits.clone().fold(0u32, |m, b| m.max(b & EXP)) != EXP {
        return None;
    }
    bits.position(|b| b & EXP == EXP)
}

/// Appends interleaved samples to `mono`, averaging channels; rejects NaN/inf (the error's
/// frame index counts from the start of `mono`).
pub(crate) fn downmix_into(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) -> Result<(), AudioError> {
    if let Some(i) = first_non_finite(interleaved) {
        return Err(AudioError::NonFinite { frame: mono.len() + i / channels.max(1) });
    }
    if channels == 1 {
        mono.extend_from_slice(interleaved);
    } else {
        let scale = 1.0 / channels as f32;
        mono.extend(interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * scale));
    }
    Ok(())
}

/// Told, before and while audio is decoded and resampled, how many f32 samples the work is
/// about to hold at most (a declared length counts before any decoding); it may refuse with
/// an error, which stops the work: the service's memory budget and cancellation use this.
pub type SampleBudget<'a> = &'a mut dyn FnMut(usize) -> Result<(), AudioError>;

/// A budget that never refuses.
pub fn unbudgeted(_: usize) -> Result<(), AudioError> {
    Ok(())
}

/// Decodes `input`, downmixes to mono and resamples to `target_rate`: the one entry point that
/// both the trainer and the service use to turn bytes into model-rate audio.
pub fn load_mono(input: AudioInput<'_>, target_rate: u32, limits: &AudioLimits) -> Result<MonoAudio, AudioError> {
    load_mono_budgeted(input, target_rate, limits, &mut unbudgeted)
}

/// [`load_mono`] that asks `budget` before holding more samples (see [`SampleBudget`]).
pub fn load_mono_budgeted(
    input: AudioInput<'_>,
    target_rate: u32,
    limits: &AudioLimits,
    budget: SampleBudget<'_>,
) -> Result<MonoAudio, AudioError> {
    let audio = match input {
        AudioInput::Encoded(bytes) => decode::decode_container_budgeted(bytes, limits, budget)?,
        AudioInput::Pcm { bytes, format, sample_rate, channels } => {
            pcm::decode_pcm_budgeted(bytes, format, sample_rate, channels, limits, budget)?
        }
    };
    if audio.samples.is_empty() {
        return Err(AudioError::Empty);
    }
    if audio.sample_rate == target_rate {
        return Ok(audio);
    }
    let out_len = resample::output_len(audio.samples.len() as u64, audio.sample_rate, target_rate);
    budget(audio.samples.len().saturating_add(usize::try_from(out_len).unwrap_or(usize::MAX)))?;
    let samples = resample(&audio.samples, audio.sample_rate, target_rate)?;
    Ok(MonoAudio { samples, sample_rate: target_rate })
}

/// Reads and loads a file (format sniffed from its bytes, never from its name).
pub fn load_file(path: &std::path::Path, target_rate: u32, limits: &AudioLimits) -> Result<MonoAudio, AudioError> {
    let bytes = std::fs::read(path).map_err(|e| AudioError::Io(format!("cannot read {}: {e}", path.display())))?;
    load_mono(AudioInput::Encoded(&bytes), target_rate, limits)
}
