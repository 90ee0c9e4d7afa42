//! Every supported container/codec decodes, through the same sniffing entry point, to what
//! libsndfile decodes (lossless formats) or to the same audio within codec error (lossy ones).

mod common;

use std::collections::BTreeMap;

use vericlip_core::audio::{AudioInput, AudioLimits, decode_container, load_mono};

#[derive(serde::Deserialize)]
struct Fixture {
    sample_rate: u32,
    lossless: bool,
    frames: usize,
    libsndfile_decode: String,
}

fn fixtures() -> BTreeMap<String, Fixture> {
    let path = common::golden_dir().join("formats/index.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn all_formats_decode_like_libsndfile() {
    let dir = common::golden_dir().join("formats");
    let fx = fixtures();
    for required in [
        "wav_u8.wav",
        "wav_s16.wav",
        "wav_s24.wav",
        "wav_s32.wav",
        "wav_f32.wav",
        "flac_s16.flac",
        "ogg_vorbis.ogg",
        "mp3.mp3",
        "wav_stereo_44k.wav",
    ] {
        assert!(fx.contains_key(required), "fixture {required} missing");
    }
    for (name, f) in &fx {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let want = common::read_f32_le(&dir.join(&f.libsndfile_decode));
        let got = decode_container(&bytes, &AudioLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.sample_rate, f.sample_rate, "{name}: sample rate");
        if f.lossless {
            assert_eq!(got.samples.len(), f.frames, "{name}: frame count");
            let max = got.samples.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // Integer -> float scaling conventions differ by at most one LSB of 8-bit audio.
            let tol = if name.contains("u8") { 1.0 / 64.0 } else { 1e-6 };
            assert!(max <= tol, "{name}: max abs diff {max} vs libsndfile");
        } else {
            // Lossy codecs: decoders may differ in priming/padding by a frame; energy must agree.
            let diff = got.samples.len().abs_diff(f.frames);
            assert!(diff <= 2304, "{name}: {} frames vs libsndfile's {}", got.samples.len(), f.frames);
            let (a, b) = (rms(&got.samples), rms(&want));
            assert!((a / b - 1.0).abs() < 0.05, "{name}: rms {a} vs {b}");
        }
    }
}

#[test]
fn format_is_sniffed_from_bytes_not_names() {
    // The loader never sees a file name; a FLAC and an MP3 decode from bytes alone.
    let dir = common::golden_dir().join("formats");
    for name in ["flac_s16.flac", "mp3.mp3", "ogg_vorbis.ogg"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let a = load_mono(AudioInput::Encoded(&bytes), 16_000, &AudioLimits::default()).unwrap();
        assert!(a.duration_seconds() > 3.0, "{name}: {} s", a.duration_seconds());
    }
}

#[test]
fn stereo_44k_loads_as_16k_mono_matching_the_16k_original() {
    let dir = common::golden_dir().join("formats");
    let stereo = std::fs::read(dir.join("wav_stereo_44k.wav")).unwrap();
    let a = load_mono(AudioInput::Encoded(&stereo), 16_000, &AudioLimits::default()).unwrap();
    let original = decode_container(&std::fs::read(dir.join("wav_f32.wav")).unwrap(), &AudioLimits::default()).unwrap();
    assert_eq!(a.sample_rate, 16_000);
    assert!(a.samples.len().abs_diff(original.samples.len()) <= 1);
    // Channels were [y, 0.5 y]: the mono mix is 0.75 y (up to PCM16 and resampling error).
    let err: Vec<f32> = a
        .samples
        .iter()
        .zip(&original.samples)
        .skip(400)
        .take(original.samples.len() - 800)
        .map(|(x, y)| x - 0.75 * y)
        .collect();
    let snr_db = 20.0 * (rms(&original.samples) * 0.75 / rms(&err)).log10();
    // The 16 kHz original holds energy up to 8 kHz; about -35 dB of it lies above the anti-alias
    // filter's 7.5 kHz cutoff and is removed on the way 16k -> 44.1k (soxr) -> 16k (ours).
    assert!(snr_db > 33.0, "resampled stereo vs original: SNR {snr_db:.1} dB");
}
