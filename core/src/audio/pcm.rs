//! Headerless PCM (`s16le`, `f32le`) with a caller-given rate and channel count.

use super::{AudioError, AudioLimits, MonoAudio, downmix_into};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmFormat {
    S16Le,
    F32Le,
}

impl PcmFormat {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            PcmFormat::S16Le => 2,
            PcmFormat::F32Le => 4,
        }
    }
}

pub fn decode_pcm(
    bytes: &[u8],
    format: PcmFormat,
    sample_rate: u32,
    channels: u32,
    limits: &AudioLimits,
) -> Result<MonoAudio, AudioError> {
    limits.check_format(sample_rate, channels)?;
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let frame_bytes = format.bytes_per_sample() * channels as usize;
    if !bytes.len().is_multiple_of(frame_bytes) {
        return Err(AudioError::RaggedPcm { len: bytes.len(), frame_bytes });
    }
    limits.check_frames((bytes.len() / frame_bytes) as u64, sample_rate)?;
    let interleaved: Vec<f32> = match format {
        PcmFormat::S16Le => {
            bytes.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect()
        }
        PcmFormat::F32Le => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
    };
    let mut samples = Vec::with_capacity(interleaved.len() / channels as usize);
    downmix_into(&interleaved, channels as usize, &mut samples)?;
    Ok(MonoAudio { samples, sample_rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s16_stereo_is_averaged_to_mono() {
        let frames: [[i16; 2]; 2] = [[16384, -16384], [16384, 16384]];
        let bytes: Vec<u8> = frames.iter().flatten().flat_map(|s| s.to_le_bytes()).collect();
        let a = decode_pcm(&bytes, PcmFormat::S16Le, 16_000, 2, &AudioLimits::default()).unwrap();
        assert_eq!(a.samples, vec![0.0, 0.5]);
    }

    #[test]
    fn bad_pcm_is_rejected_with_a_reason() {
        let l = AudioLimits::default();
        let nan: Vec<u8> = [0.1f32, f32::NAN].iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(decode_pcm(&nan, PcmFormat::F32Le, 16_000, 1, &l), Err(AudioError::NonFinite { frame: 1 }));
        assert!(matches!(decode_pcm(&[0; 4], PcmFormat::S16Le, 0, 1, &l), Err(AudioError::InvalidSampleRate { .. })));
        assert!(matches!(
            decode_pcm(&[0; 4], PcmFormat::S16Le, 16_000, 1_000_000_000, &l),
            Err(AudioError::InvalidChannels { .. })
        ));
        assert!(matches!(decode_pcm(&[0; 3], PcmFormat::S16Le, 16_000, 1, &l), Err(AudioError::RaggedPcm { .. })));
        assert_eq!(decode_pcm(&[], PcmFormat::S16Le, 16_000, 1, &l), Err(AudioError::Empty));
        let long = vec![0u8; 2 * 16_000 * 11];
        let short_limit = AudioLimits { max_seconds: 10.0, ..l };
        assert!(matches!(
            decode_pcm(&long, PcmFormat::S16Le, 16_000, 1, &short_limit),
            Err(AudioError::TooLong { .. })
        ));
    }
}
