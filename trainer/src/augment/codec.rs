//! Lossy codec round trips: 16 kHz audio encoded and decoded again by the real codec, then
//! aligned back to the input (an encoder's look-ahead delays the decoded audio by a few hundred
//! samples) and cut to the input's length.
//!
//! | codec | through | parameter drawn per copy |
//! |---|---|---|
//! | MP3 (LAME, MPEG-2 layer III at 16 kHz) | sox (`libsox-fmt-mp3`) | 16, 24, 32 or 64 kbit/s |
//! | Ogg Vorbis | sox (`libsox-fmt-base`) | quality -1, 1 or 3 (~ 20-40 kbit/s at 16 kHz) |
//! | Opus (SILK/hybrid at these rates, complexity 5) | opusenc / opusdec (`opus-tools`) | 8, 12, 16 or 24 kbit/s |
//! | AMR-NB (8 kHz, via core's resampler) | sox (`libsox-fmt-base`, opencore) | mode 0-7 (4.75-12.2 kbit/s) |
//!
//! sox runs through the corpus builder's helper (`-D -R`: no time-seeded dither), opus-tools
//! with a fixed stream serial and no dither, so a round trip is a pure function of its input.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Serialize;
use vericlip_core::audio::{AudioLimits, PcmFormat, decode_pcm, resample};

use super::dsp;
use crate::data::corpus::process::{SR, sox};
use crate::rng::Rng;

/// A codec the `codec` augmentation kind can draw (`--augment-codecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CodecFamily {
    Mp3,
    Vorbis,
    Opus,
    AmrNb,
}

impl CodecFamily {
    pub const ALL: [CodecFamily; 4] = [CodecFamily::Mp3, CodecFamily::Vorbis, CodecFamily::Opus, CodecFamily::AmrNb];

    pub fn name(self) -> &'static str {
        match self {
            CodecFamily::Mp3 => "mp3",
            CodecFamily::Vorbis => "vorbis",
            CodecFamily::Opus => "opus",
            CodecFamily::AmrNb => "amr-nb",
        }
    }

    /// What to install when the codec is missing.
    fn package(self) -> &'static str {
        match self {
            CodecFamily::Mp3 => "sox with libsox-fmt-mp3",
            CodecFamily::Vorbis | CodecFamily::AmrNb => "sox with libsox-fmt-base",
            CodecFamily::Opus => "opus-tools (opusenc, opusdec)",
        }
    }

    /// The settings drawn from, as text (for the manifest).
    pub fn settings(self) -> &'static str {
        match self {
            CodecFamily::Mp3 => "16/24/32/64 kbit/s",
            CodecFamily::Vorbis => "quality -1/1/3",
            CodecFamily::Opus => "8/12/16/24 kbit/s",
            CodecFamily::AmrNb => "modes 0-7 (4.75-12.2 kbit/s), at 8 kHz",
        }
    }

    /// One concrete setting, uniformly.
    pub fn draw(self, rng: &mut Rng) -> Codec {
        match self {
            CodecFamily::Mp3 => Codec::Mp3 { kbps: *rng.choose(&[16, 24, 32, 64]) },
            CodecFamily::Vorbis => Codec::Vorbis { quality: *rng.choose(&[-1, 1, 3]) },
            CodecFamily::Opus => Codec::Opus { kbps: *rng.choose(&[8, 12, 16, 24]) },
            CodecFamily::AmrNb => Codec::AmrNb { mode: rng.below(8) as u8 },
        }
    }

    /// Fails, naming what to install, when this machine cannot run the codec (a quarter second
    /// of a synthetic voice through its lowest setting must come back).
    pub fn probe(self) -> anyhow::Result<()> {
        let voice = dsp::voice(4000);
        let codec = match self {
            CodecFamily::Mp3 => Codec::Mp3 { kbps: 16 },
            CodecFamily::Vorbis => Codec::Vorbis { quality: -1 },
            CodecFamily::Opus => Codec::Opus { kbps: 8 },
            CodecFamily::AmrNb => Codec::AmrNb { mode: 0 },
        };
        match codec.round_trip(&voice) {
            Ok(y) if y.iter().any(|v| v.abs() > 0.01) => Ok(()),
            Ok(_) => bail!("augmentation codec {}: the round trip came back silent", self.name()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "augmentation codec {} does not work on this machine (needs {}; scripts/setup.sh installs it), \
                     or leave it out of --augment-codecs",
                    self.name(),
                    self.package()
                )
            }),
        }
    }
}

/// A codec at one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Mp3 {
        kbps: u32,
    },
    Vorbis {
        quality: i32,
    },
    Opus {
        kbps: u32,
    },
    /// AMR-NB mode 0..=7.
    AmrNb {
        mode: u8,
    },
}

/// Encoder delays searched when aligning the decoded audio to the input (MP3's is ~1100 samples).
const MAX_DELAY: usize = 2048;

impl Codec {
    /// 16 kHz in, 16 kHz out, same length, aligned to the input.
    pub fn round_trip(self, y: &[f32]) -> anyhow::Result<Vec<f32>> {
        let decoded = match self {
            Codec::Mp3 { kbps } => sox_round_trip(y, SR, "mp3", &kbps.to_string())?,
            Codec::Vorbis { quality } => sox_round_trip(y, SR, "vorbis", &quality.to_string())?,
            Codec::AmrNb { mode } => {
                let narrow = resample(y, SR, 8000)?;
                resample(&sox_round_trip(&narrow, 8000, "amr-nb", &mode.min(7).to_string())?, 8000, SR)?
            }
            Codec::Opus { kbps } => {
                let k = kbps.to_string();
                let opus = run_piped(
                    "opusenc",
                    &[
                        "--quiet",
                        "--comp",
                        "5",
                        "--raw",
                        "--raw-rate",
                        "16000",
                        "--raw-chan",
                        "1",
                        "--bitrate",
                        &k,
                        "--serial",
                        "1",
                        "-",
                        "-",
                    ],
                    &pcm16(y),
                )?;
                from_pcm16(&run_piped("opusdec", &["--quiet", "--rate", "16000", "--no-dither", "-", "-"], &opus)?, SR)?
            }
        };
        let d = dsp::delay_of(y, &decoded, 64, MAX_DELAY);
        let mut out: Vec<f32> = if d >= 0 {
            decoded.get(d as usize..).unwrap_or_default().to_vec()
        } else {
            [vec![0.0; d.unsigned_abs()], decoded].concat()
        };
        out.resize(y.len(), 0.0);
        Ok(out)
    }
}

/// Encodes `y` (mono at `rate`) to sox type `format` with compression setting `-C compression`
/// and decodes it again at `rate`.
fn sox_round_trip(y: &[f32], rate: u32, format: &str, compression: &str) -> anyhow::Result<Vec<f32>> {
    let r = rate.to_string();
    let raw = ["-t", "raw", "-r", &r, "-c", "1", "-b", "16", "-e", "signed"];
    let encoded = sox(&[&raw[..], &["-", "-t", format, "-C", compression, "-"]].concat(), &pcm16(y))?;
    let decoded = sox(&[&["-t", format, "-"][..], &raw, &["-"]].concat(), &encoded)?;
    from_pcm16(&decoded, rate)
}

fn pcm16(y: &[f32]) -> Vec<u8> {
    y.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect()
}

fn from_pcm16(bytes: &[u8], rate: u32) -> anyhow::Result<Vec<f32>> {
    Ok(decode_pcm(bytes, PcmFormat::S16Le, rate, 1, &AudioLimits::default())?.samples)
}

/// Runs a codec tool that is not sox (opus-tools) with `input` on stdin; its stdout.
fn run_piped(program: &str, args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = input.to_vec();
    // A writer thread: the tool may fill its stdout pipe before it has read all of stdin.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().with_context(|| format!("waiting for {program}"))?;
    let written = writer.join().map_err(|_| anyhow::anyhow!("{program} writer thread panicked"))?;
    // A tool that failed explains why on stderr; a broken pipe on our side would not.
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    written.with_context(|| format!("writing to {program}"))?;
    Ok(out.stdout)
}
