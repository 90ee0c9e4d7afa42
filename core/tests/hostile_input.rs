//! Bad input of every kind gets a typed error with a clear message, never a panic or a hang.

use proptest::prelude::*;
use vericlip_core::audio::{AudioError, AudioInput, AudioLimits, PcmFormat, decode_container, load_mono};

/// A canonical 44-byte WAV header followed by `data`; sizes as given (they may lie).
fn wav(format_tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32, data: &[u8]) -> Vec<u8> {
    let block = channels.wrapping_mul(bits / 8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36u32.wrapping_add(data_len)).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn pcm16_tone(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (((i as f32 * 0.05).sin() * 10_000.0) as i16).to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Result<usize, AudioError> {
    load_mono(AudioInput::Encoded(bytes), 16_000, &AudioLimits::default()).map(|a| a.samples.len())
}

#[test]
fn valid_header_decodes() {
    let data = pcm16_tone(16_000);
    assert_eq!(decode(&wav(1, 1, 16_000, 16, data.len() as u32, &data)), Ok(16_000));
}

#[test]
fn each_bad_input_has_its_own_error() {
    let data = pcm16_tone(16_000);
    let good = wav(1, 1, 16_000, 16, data.len() as u32, &data);
    assert_eq!(decode(b""), Err(AudioError::Empty));
    let e = decode(b"this is not audio at all, it is a text file").unwrap_err();
    assert_eq!(e.name(), "undecodable_audio");
    assert!(e.to_string().contains("not a recognised audio format"), "{e}");
    // Header only, no samples.
    assert_eq!(decode(&good[..44]).unwrap_err(), AudioError::Empty);
    // Truncated mid-data: what is there decodes.
    assert_eq!(decode(&good[..44 + 2000]), Ok(1000));
    // Truncated mid-header.
    assert!(decode(&good[..30]).is_err());
    // Sample rate 0 and absurd channel counts are refused up front.
    let e = decode(&wav(1, 1, 0, 16, data.len() as u32, &data)).unwrap_err();
    assert!(matches!(e, AudioError::InvalidSampleRate { rate: 0, .. }), "{e:?}");
    let e = decode(&wav(1, 65_535, 16_000, 16, data.len() as u32, &data)).unwrap_err();
    assert!(matches!(e, AudioError::InvalidChannels { channels: 65_535, .. }), "{e:?}");
    assert!(e.to_string().contains("invalid channel count 65535"), "{e}");
    // A header that declares six hours of audio is refused before decoding it.
    let six_hours = 6 * 3600 * 16_000 * 2;
    let e = decode(&wav(1, 1, 16_000, 16, six_hours, &data)).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { .. }), "{e:?}");
    assert!(e.to_string().contains("over the limit"), "{e}");
    // Float WAV with NaN and infinity.
    let nan: Vec<u8> = [0.1f32, f32::NAN, 0.2].iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(decode(&wav(3, 1, 16_000, 32, 12, &nan)), Err(AudioError::NonFinite { frame: 1 }));
    let inf: Vec<u8> = [f32::INFINITY; 4].iter().flat_map(|s| s.to_le_bytes()).collect();
    assert!(matches!(decode(&wav(3, 1, 16_000, 32, 16, &inf)), Err(AudioError::NonFinite { .. })));
    // An unknown WAV codec tag.
    let e = decode(&wav(0x1234, 1, 16_000, 16, data.len() as u32, &data)).unwrap_err();
    assert!(matches!(e, AudioError::Unsupported(_) | AudioError::Undecodable(_)), "{e:?}");
    // Raw PCM: rate 0, 1e9 channels, NaN.
    let l = AudioLimits::default();
    let pcm = |rate, channels, format| {
        load_mono(AudioInput::Pcm { bytes: &data, format, sample_rate: rate, channels }, 16_000, &l)
    };
    assert!(matches!(pcm(0, 1, PcmFormat::S16Le), Err(AudioError::InvalidSampleRate { rate: 0, .. })));
    assert!(matches!(pcm(16_000, 1_000_000_000, PcmFormat::S16Le), Err(AudioError::InvalidChannels { .. })));
    assert!(matches!(pcm(4_000_000_000, 1, PcmFormat::S16Le), Err(AudioError::InvalidSampleRate { .. })));
}

#[test]
fn over_long_audio_is_refused_while_decoding() {
    // The header tells the truth here; the limit is what is small.
    let data = pcm16_tone(48_000);
    let limits = AudioLimits { max_seconds: 2.0, ..AudioLimits::default() };
    let e = decode_container(&wav(1, 1, 16_000, 16, data.len() as u32, &data), &limits).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { .. }), "{e:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_wav_never_panics(pos in 0usize..200, val in any::<u8>(), cut in 0usize..600, n in 1usize..8) {
        let data = pcm16_tone(300);
        let mut w = wav(1, 1, 16_000, 16, data.len() as u32, &data);
        for i in 0..n {
            let p = (pos + i * 37) % w.len();
            w[p] = val.wrapping_add(i as u8);
        }
        w.truncate(w.len().saturating_sub(cut));
        let _ = decode(&w);
    }

    #[test]
    fn random_pcm_parameters_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), rate in any::<u32>(), channels in any::<u32>(), f32le in any::<bool>()) {
        let format = if f32le { PcmFormat::F32Le } else { PcmFormat::S16Le };
        let _ = load_mono(AudioInput::Pcm { bytes: &bytes, format, sample_rate: rate, channels }, 16_000, &AudioLimits::default());
    }
}
