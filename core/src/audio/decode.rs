//! Container decoding with symphonia: WAV (PCM 8/16/24/32-bit int, 32-bit float), FLAC, MP3,
//! OGG Vorbis. The format is sniffed from the bytes (no file-name hint), so a mislabelled
//! upload still decodes and a renamed non-audio file is still rejected.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymErr;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{AudioError, AudioLimits, MonoAudio, SampleBudget, downmix_into, first_non_finite, unbudgeted};

/// Consecutive undecodable packets after which a stream is declared broken.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 64;

/// Decodes an encoded file held in memory to mono at its native rate.
///
/// symphonia is defensive but not panic-free on every malformed stream; a panic inside it is
/// caught here and reported as undecodable input, so no request can take a worker down.
pub fn decode_container(bytes: &[u8], limits: &AudioLimits) -> Result<MonoAudio, AudioError> {
    decode_container_budgeted(bytes, limits, &mut unbudgeted)
}

/// [`decode_container`] that asks `budget` for a declared length before decoding and for every
/// packet's growth while decoding (formats without a declared length stop at the budget).
pub(crate) fn decode_container_budgeted(
    bytes: &[u8],
    limits: &AudioLimits,
    budget: SampleBudget<'_>,
) -> Result<MonoAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    precheck_wav_format(bytes, limits)?;
    if let Some(result) = super::wav::decode_simple_wav(bytes, limits, budget) {
        return result;
    }
    decode_with_symphonia(bytes, limits, budget)
}

/// Every supported container through symphonia (the direct WAV path's fallback).
pub(crate) fn decode_with_symphonia(
    bytes: &[u8],
    limits: &AudioLimits,
    budget: SampleBudget<'_>,
) -> Result<MonoAudio, AudioError> {
    catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, limits, budget)))
        .unwrap_or_else(|_| Err(AudioError::Undecodable("the decoder failed on malformed data".into())))
}

/// For WAV, reads the `fmt ` chunk's channel count and rate and checks them against `limits`
/// before symphonia sees the stream: absurd values (65535 channels) overflow its arithmetic, and
/// the caller deserves "invalid channel count" rather than "malformed data".
fn precheck_wav_format(bytes: &[u8], limits: &AudioLimits) -> Result<(), AudioError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[0..4] == b"fmt " {
            let Some(fmt) = bytes.get(at + 8..at + 16) else {
                return Ok(());
            };
            let channels = u32::from(u16::from_le_bytes([fmt[2], fmt[3]]));
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            return limits.check_format(rate, channels);
        }
        // Chunks are padded to an even size.
        at = at.saturating_add(8).saturating_add(size).saturating_add(size & 1);
    }
    Ok(())
}

fn decode_inner(bytes: &[u8], limits: &AudioLimits, budget: SampleBudget<'_>) -> Result<MonoAudio, AudioError> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(&Hint::new(), mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| match e {
            SymErr::Unsupported(_) => {
                AudioError::Undecodable("not a recognised audio format (expected WAV, FLAC, MP3 or OGG Vorbis)".into())
            }
            other => AudioError::Undecodable(other.to_string()),
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Undecodable("the container has no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported("the audio track has no audio codec parameters".into()))?
        .clone();
    let mut sample_rate =
        params.sample_rate.ok_or_else(|| AudioError::Undecodable("the stream declares no sample rate".into()))?;
    let declared_channels = params.channels.as_ref().map(|c| c.count() as u32);
    limits.check_format(sample_rate, declared_channels.unwrap_or(1))?;
    if let Some(n) = track.num_frames {
        // Reject a header that declares hours of audio before decoding any of it.
        limits.check_frames(n, sample_rate)?;
        // ... and one whose length does not fit the budget.
        budget(usize::try_from(n).unwrap_or(usize::MAX))?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(e.to_string()))?;

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut bad_run = 0usize;
    let mut last_error: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A truncated file ends early: keep what decoded.
            Err(SymErr::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymErr::ResetRequired) => break,
            Err(SymErr::LimitError(what)) => {
                return Err(AudioError::Undecodable(format!("stream exceeds a decoder limit: {what}")));
            }
            Err(e) => {
                if mono.is_empty() {
                    return Err(AudioError::Undecodable(e.to_string()));
                }
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                bad_run = 0;
                let channels = buf.spec().channels().count();
                let rate = buf.spec().rate();
                limits.check_format(rate, channels as u32)?;
                sample_rate = rate;
                budget(mono.len() + buf.frames() + buf.frames() * channels)?;
                if channels == 1 {
                    // Mono: converted straight into the output, no interleaved copy.
                    let at = mono.len();
                    mono.reserve(buf.frames());
                    budget(mono.capacity())?;
                    mono.resize(at + buf.frames(), 0.0);
                    buf.copy_to_slice_interleaved(&mut mono[at..]);
                    if let Some(i) = first_non_finite(&mono[at..]) {
                        return Err(AudioError::NonFinite { frame: at + i });
                    }
                } else {
                    buf.copy_to_vec_interleaved(&mut interleaved);
                    mono.reserve(buf.frames());
                    budget(mono.capacity() + interleaved.capacity())?;
                    downmix_into(&interleaved, channels, &mut mono)?;
                }
                limits.check_frames(mono.len() as u64, sample_rate)?;
            }
            Err(SymErr::DecodeError(msg)) => {
                last_error = Some(msg.to_string());
                bad_run += 1;
                if bad_run >= MAX_CONSECUTIVE_BAD_PACKETS {
                    return Err(AudioError::Undecodable(format!("too many corrupt packets: {msg}")));
                }
            }
            Err(SymErr::Unsupported(what)) => {
                return Err(AudioError::Unsupported(what.to_string()));
            }
            Err(e) => return Err(AudioError::Undecodable(e.to_string())),
        }
    }
    if mono.is_empty() {
        return Err(match last_error {
            Some(msg) => AudioError::Undecodable(msg),
            None => AudioError::Empty,
        });
    }
    Ok(MonoAudio { samples: mono, sample_rate })
}
