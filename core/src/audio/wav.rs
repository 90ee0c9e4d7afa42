//! Writing 16-bit PCM WAV (corpus building, test fixtures, sample clips).

use std::path::Path;

use super::AudioError;

/// Writes mono samples as 16-bit PCM WAV, clipping to [-1, 1].
pub fn write_wav_pcm16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), AudioError> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let err = |e: hound::Error| AudioError::Io(format!("cannot write {}: {e}", path.display()));
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(err)?;
    }
    w.finalize().map_err(err)
}
