//! What a request declares about its audio, parsed once for every transport: gRPC (`Classify`,
//! `ClassifyStream`), HTTP (`POST /v1/classify`) and WebSocket (`/v1/stream`) each read their
//! own fields and spelling, then come here.

use vericlip_core::AudioLimits;
use vericlip_core::audio::PcmFormat;

use crate::error::{ServiceError, quote_bounded};
use crate::pipeline::Audio;

/// The audio a request or stream carries: an encoded file (any container core decodes), or raw
/// PCM in a given encoding, rate and channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Encoded,
    Pcm { format: PcmFormat, sample_rate: u32, channels: u32 },
}

/// How a transport spells the two PCM encodings (`s16le` over HTTP, `PCM_ENCODING_S16LE` over
/// gRPC), so that an error names the ones its client can send.
#[derive(Debug, Clone, Copy)]
pub struct Spelling {
    pub s16le: &'static str,
    pub f32le: &'static str,
}

impl AudioFormat {
    /// Raw PCM as a client declared it: `encoding` in the transport's `spelling` (`None`: the
    /// client sent no format at all), `sample_rate` `None` when it gave none.
    pub fn pcm(
        encoding: Option<&str>,
        spelling: Spelling,
        sample_rate: Option<u32>,
        channels: u32,
    ) -> Result<Self, ServiceError> {
        let Some(encoding) = encoding else {
            return Err(ServiceError::bad_request("missing_pcm_format", "raw PCM needs a `format`"));
        };
        let format = if encoding == spelling.s16le {
            PcmFormat::S16Le
        } else if encoding == spelling.f32le {
            PcmFormat::F32Le
        } else {
            return Err(ServiceError::bad_request(
                "invalid_pcm_encoding",
                format!(
                    "PCM encoding {} is not supported; use {} or {}",
                    quote_bounded(encoding),
                    spelling.s16le,
                    spelling.f32le
                ),
            ));
        };
        let sample_rate = sample_rate
            .ok_or_else(|| ServiceError::bad_request("missing_pcm_format", "raw PCM needs `sample_rate`"))?;
        Ok(Self::Pcm { format, sample_rate, channels })
    }

    /// For a stream, checked against the limits before any audio arrives (a one-shot request's
    /// audio is checked as it is decoded).
    pub fn checked(self, limits: &AudioLimits) -> Result<Self, ServiceError> {
        if let Self::Pcm { sample_rate, channels, .. } = self {
            limits.check_format(sample_rate, channels)?;
        }
        Ok(self)
    }

    /// A one-shot request's audio: `data` in this format.
    pub fn with(self, data: Vec<u8>) -> Audio {
        match self {
            Self::Encoded => Audio::Encoded(data),
            Self::Pcm { format, sample_rate, channels } => Audio::Pcm { data, format, sample_rate, channels },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: Spelling = Spelling { s16le: "s16le", f32le: "f32le" };

    #[test]
    fn pcm_is_parsed_in_the_transports_spelling() {
        assert_eq!(
            AudioFormat::pcm(Some("f32le"), HTTP, Some(16_000), 1).unwrap(),
            AudioFormat::Pcm { format: PcmFormat::F32Le, sample_rate: 16_000, channels: 1 }
        );
        let e = AudioFormat::pcm(Some("PCM_ENCODING_F32LE"), HTTP, Some(16_000), 1).unwrap_err();
        assert_eq!(e.name(), "invalid_pcm_encoding");
        assert!(e.to_string().contains("use s16le or f32le"), "{e}");
        assert_eq!(AudioFormat::pcm(None, HTTP, Some(16_000), 1).unwrap_err().name(), "missing_pcm_format");
        assert_eq!(AudioFormat::pcm(Some("s16le"), HTTP, None, 1).unwrap_err().name(), "missing_pcm_format");
        let limits = AudioLimits::default();
        let loud = AudioFormat::Pcm { format: PcmFormat::S16Le, sample_rate: 16_000, channels: 1000 };
        assert!(loud.checked(&limits).is_err());
        assert_eq!(AudioFormat::Encoded.checked(&limits).unwrap(), AudioFormat::Encoded);
    }
}
