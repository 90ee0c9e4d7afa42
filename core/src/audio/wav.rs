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

/// The common WAV encodings (16-bit integer and 32-bit float PCM, plain or extensible),
/// converted straight from the file's bytes into the mono buffer: one pass, no intermediate
/// buffers, no copy of the file. `None` for anything else (other bit depths, compressed
/// formats, odd layouts), which the container decoder handles. Samples convert exactly as
/// symphonia's do (`i16 / 32768`), so the two paths give identical audio.
pub(crate) fn decode_simple_wav(
    bytes: &[u8],
    limits: &super::AudioLimits,
    budget: super::SampleBudget<'_>,
) -> Option<Result<super::MonoAudio, AudioError>> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (mut fmt, mut data, mut declared) = (None, None, 0usize);
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32_at(header, 4) as usize;
        let body = at + 8;
        match &header[0..4] {
            b"fmt " => fmt = bytes.get(body..body.saturating_add(size)),
            // A truncated data chunk keeps what is there, as the container decoder does.
            b"data" => {
                declared = size;
                data = Some(&bytes[body.min(bytes.len())..body.saturating_add(size).min(bytes.len())]);
                break;
            }
            _ => {}
        }
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    let (fmt, data) = (fmt?, data?);
    if fmt.len() < 16 {
        return None;
    }
    let mut tag = u16_at(fmt, 0);
    if tag == 0xFFFE && fmt.len() >= 26 {
        // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag.
        tag = u16_at(fmt, 24);
    }
    let (channels, rate, bits) = (u16_at(fmt, 2) as usize, u32_at(fmt, 4), u16_at(fmt, 14));
    let float = match (tag, bits) {
        (1, 16) => false,
        (3, 32) => true,
        _ => return None,
    };
    Some((|| {
        limits.check_format(rate, channels as u32)?;
        let frame_bytes = channels * usize::from(bits / 8);
        let frames = data.len() / frame_bytes;
        // A header that declares hours of audio is refused before anything is converted.
        limits.check_frames((declared / frame_bytes).max(frames) as u64, rate)?;
        budget(frames)?;
        let data = &data[..frames * frame_bytes];
        let mut samples = Vec::with_capacity(frames);
        match (float, channels) {
            (true, _) => super::pcm::mix_f32le(data, channels, &mut samples)?,
            (false, 1) => super::pcm::mono_s16le(data, &mut samples),
            (false, _) => {
                // As symphonia's samples (`i16 / 32768`) through `downmix_into`.
                let scale = 1.0 / channels as f32;
                samples.extend(data.chunks_exact(frame_bytes).map(|f| {
                    f.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0).sum::<f32>()
                        * scale
                }));
            }
        }
        if samples.is_empty() {
            return Err(AudioError::Empty);
        }
        Ok(super::MonoAudio { samples, sample_rate: rate })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioLimits, unbudgeted};

    /// The direct path and symphonia give the same samples, bit for bit.
    #[test]
    fn simple_wav_matches_the_container_decoder() {
        let dir = std::env::temp_dir().join(format!("vericlip-wav-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.wav");
        let x: Vec<f32> = (0..20_000).map(|i| ((i as f32) * 0.01).sin() * 0.8).collect();
        write_wav_pcm16(&path, &x, 16_000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let limits = AudioLimits::default();
        let direct = decode_simple_wav(&bytes, &limits, &mut unbudgeted).unwrap().unwrap();
        let via = super::super::decode::decode_with_symphonia(&bytes, &limits, &mut unbudgeted).unwrap();
        assert_eq!(direct, via);
        // Truncated mid-frame: the whole frames that are there.
        let cut = &bytes[..bytes.len() - 3];
        let direct = decode_simple_wav(cut, &limits, &mut unbudgeted).unwrap().unwrap();
        assert_eq!(direct.samples.len(), x.len() - 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
