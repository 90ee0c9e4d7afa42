//! Clip processing shared by every corpus source (the reference recipe's `build.py`): trim
//! silence, cut at most two non-overlapping 2 s windows per utterance, pass through a telephone
//! channel, normalize loudness.
//!
//! Every clip of the corpus ends with a [`PostChain`] (issue 30): its channel, then with
//! probability [`CORPUS_CODEC_RATE`] a codec or band limit ([`CorpusCodec`]), loudness
//! normalised before and after. A real clip is processed once up to the *vocoder input* (read,
//! 16 kHz, trimmed, windowed, normalised: kept under [`vocoder_input_dir`]); the real written to
//! the corpus is that input through its post-chain, and every vocoder copy of it is the
//! vocoder's output through the *same* post-chain (drawn from the real's name, [`PostChain::of_real`]),
//! so a real and its copy differ only by the vocoder. TTS fakes draw their post-chain with the
//! same codec rates ([`PostChain::of_fake`]).

use std::io::Write;
use std::process::{Command, Stdio};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rayon::prelude::*;
use vericlip_core::audio::{AudioLimits, PcmFormat, decode_pcm, load_file, resample, write_wav_pcm16};

use crate::augment::{self, AugmentConfig, Codec, Kind};
use crate::data::naming;
use crate::rng::Rng;

pub const SR: u32 = 16_000;
/// Windows taken from one utterance at most.
const MAX_WINDOWS: usize = 2;

/// The transmission channel a clip went through (real clips: their source's; fakes: drawn to
/// match the real clips of the same split, so bandwidth is never a shortcut).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Wideband,
    Narrowband8k,
    Gsm,
}

impl Channel {
    pub fn tag(self) -> &'static str {
        match self {
            Channel::Wideband => "wb",
            Channel::Narrowband8k => "8k",
            Channel::Gsm => "gsm",
        }
    }

    /// The band a clip of this channel keeps: a telephone source's real clips already carry its
    /// codec, so their post-chain (and their copies') only keeps the 8 kHz band, which removes a
    /// vocoder-made upper band from the copy and leaves the real as it was.
    fn band(self) -> Channel {
        match self {
            Channel::Wideband => Channel::Wideband,
            Channel::Narrowband8k | Channel::Gsm => Channel::Narrowband8k,
        }
    }
}

/// Share of the corpus's clips (real and fake alike) that pass through a [`CorpusCodec`].
pub const CORPUS_CODEC_RATE: f64 = 0.3;

/// A codec or band limit of the corpus post-chain, drawn uniformly among the seven kinds, its
/// setting drawn too. G.722 is not among them (neither sox nor any installed tool has it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CorpusCodec {
    /// GSM 06.10 full rate (sox).
    Gsm,
    /// G.711 mu-law at 8 kHz (sox).
    MuLaw,
    /// G.711 A-law at 8 kHz (sox).
    ALaw,
    /// AMR-NB, Opus at 8 or 12 kbit/s, MP3 at 16-32 kbit/s: the trainer's codec round trips.
    Lossy(Codec),
    /// The trainer's `bandlimit` augmentation (low-pass 3.4-7 kHz and/or high-pass 50-300 Hz),
    /// its draw seeded by this value.
    BandLimit(u64),
}

impl CorpusCodec {
    fn draw(rng: &mut Rng) -> Self {
        match rng.below(7) {
            0 => CorpusCodec::Gsm,
            1 => CorpusCodec::MuLaw,
            2 => CorpusCodec::ALaw,
            3 => CorpusCodec::Lossy(Codec::AmrNb { mode: rng.below(8) as u8 }),
            4 => CorpusCodec::Lossy(Codec::Opus { kbps: *rng.choose(&[8, 12]) }),
            5 => CorpusCodec::Lossy(Codec::Mp3 { kbps: *rng.choose(&[16, 24, 32]) }),
            _ => CorpusCodec::BandLimit(rng.next_u64()),
        }
    }

    /// The kind, for the corpus report (`gsm`, `mu-law`, `a-law`, `amr-nb`, `opus`, `mp3`, `band-limit`).
    pub fn kind(self) -> &'static str {
        match self {
            CorpusCodec::Gsm => "gsm",
            CorpusCodec::MuLaw => "mu-law",
            CorpusCodec::ALaw => "a-law",
            CorpusCodec::Lossy(Codec::AmrNb { .. }) => "amr-nb",
            CorpusCodec::Lossy(Codec::Opus { .. }) => "opus",
            CorpusCodec::Lossy(Codec::Mp3 { .. }) => "mp3",
            CorpusCodec::Lossy(Codec::Vorbis { .. }) => "vorbis",
            CorpusCodec::BandLimit(_) => "band-limit",
        }
    }

    fn apply(self, y: &[f32]) -> anyhow::Result<Vec<f32>> {
        match self {
            CorpusCodec::Gsm => apply_channel(y, Channel::Gsm),
            CorpusCodec::MuLaw => telephone_round_trip(y, "ul"),
            CorpusCodec::ALaw => telephone_round_trip(y, "al"),
            CorpusCodec::Lossy(c) => c.round_trip(y),
            CorpusCodec::BandLimit(seed) => {
                augment::augment(y, &AugmentConfig::only(Kind::Bandlimit), &mut Rng::new(seed))
            }
        }
    }
}

/// What every clip goes through last: normalise, the channel, the codec (if drawn), normalise.
/// Scale-invariant (it starts by normalising), so a vocoder's output level does not matter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostChain {
    pub channel: Channel,
    pub codec: Option<CorpusCodec>,
}

/// Salt of the stream real clips' post-chains are drawn from (one fork per clip name).
const REAL_CHAIN_STREAM: u64 = 0x30_c0de;

impl PostChain {
    /// The post-chain of the real clip `name` (as [`crate::data::naming::real_clip`] wrote it)
    /// of a source with `channel`: the source's band, and a codec drawn from `rng` forked by the
    /// name, so the real clip and every copy of it get the same one.
    pub fn of_real(name: &str, channel: Channel, rng: &Rng) -> Self {
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut r = rng.fork(REAL_CHAIN_STREAM).fork(salt);
        Self { channel: channel.band(), codec: Self::draw_codec(&mut r) }
    }

    /// The post-chain of a fake made from text: the channel drawn for it (a telephone channel
    /// in full, codec included, as the split's real sources had it) and a codec at the rate
    /// real clips have one.
    pub fn of_fake(channel: Channel, rng: &mut Rng) -> Self {
        Self { channel, codec: Self::draw_codec(rng) }
    }

    fn draw_codec(rng: &mut Rng) -> Option<CorpusCodec> {
        let u = rng.uniform();
        let codec = CorpusCodec::draw(rng);
        (u < CORPUS_CODEC_RATE).then_some(codec)
    }

    /// `y` through the chain; same length.
    pub fn apply(&self, y: &[f32]) -> anyhow::Result<Vec<f32>> {
        let n = y.len();
        let mut x = apply_channel(&normalize(y), self.channel)?;
        x.resize(n, 0.0);
        if let Some(codec) = self.codec {
            x = codec.apply(&x).with_context(|| format!("corpus codec {}", codec.kind()))?;
            x.resize(n, 0.0);
        }
        Ok(normalize(&x))
    }
}

/// A vocoder's copy of a real clip (`vocoded`, any level) made comparable to the real: cut to the
/// real clip's `len` samples (an error when shorter), then the real's own post-chain.
pub fn vocoded_copy(vocoded: &[f32], len: usize, chain: &PostChain) -> anyhow::Result<Vec<f32>> {
    anyhow::ensure!(
        vocoded.len() >= len,
        "vocoder output of {} samples is shorter than its input's {len}",
        vocoded.len()
    );
    chain.apply(&vocoded[..len])
}

/// Where a corpus build keeps the vocoder inputs of a split's real clips (`<work>/vocoder-input/<split>`,
/// the same file names as the split's `real/` clips): the training split's are what the vocoders
/// made here learn from, and every split's are what its vocoded fakes are made of.
pub fn vocoder_input_dir(work: &Path, split: &str) -> PathBuf {
    work.join("vocoder-input").join(split)
}

/// Drops leading and trailing audio more than `top_db` below the loudest 400-sample frame.
pub fn trim(y: &[f32], top_db: f64) -> &[f32] {
    const FRAME: usize = 400;
    const HOP: usize = FRAME / 2;
    if y.len() < FRAME {
        return &y[..0];
    }
    let energy: Vec<f64> = (0..=(y.len() - FRAME) / HOP)
        .map(|i| {
            (y[i * HOP..i * HOP + FRAME].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / FRAME as f64 + 1e-12)
                .sqrt()
        })
        .collect();
    let max = energy.iter().fold(0f64, |m, e| m.max(*e));
    let loud = |e: &f64| 20.0 * (e / max).log10() > -top_db;
    match (energy.iter().position(loud), energy.iter().rposition(loud)) {
        (Some(a), Some(b)) => &y[a * HOP..(b * HOP + FRAME).min(y.len())],
        _ => &y[..0],
    }
}

/// Up to [`MAX_WINDOWS`] consecutive non-overlapping 2 s windows.
pub fn windows(y: &[f32]) -> Vec<&[f32]> {
    let len = 2 * SR as usize;
    y.chunks_exact(len).take(MAX_WINDOWS).collect()
}

/// Scales to -26 dBFS RMS, then down if the peak would exceed 0.98.
pub fn normalize(c: &[f32]) -> Vec<f32> {
    let rms = (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len().max(1) as f64).sqrt();
    let gain = 10f64.powf(-26.0 / 20.0) / (rms + 1e-9);
    let peak = c.iter().fold(0f64, |m, s| m.max(f64::from(s.abs()))) * gain;
    let gain = if peak > 0.98 { gain * 0.98 / peak } else { gain };
    c.iter().map(|&s| (f64::from(s) * gain) as f32).collect()
}

/// Passes 16 kHz audio through a channel and back to 16 kHz.
pub fn apply_channel(y: &[f32], ch: Channel) -> anyhow::Result<Vec<f32>> {
    Ok(match ch {
        Channel::Wideband => y.to_vec(),
        Channel::Narrowband8k => resample(&resample(y, SR, 8000)?, 8000, SR)?,
        Channel::Gsm => {
            let pcm: Vec<u8> = y.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
            let sr = SR.to_string();
            let gsm = sox(
                &["-t", "raw", "-r", &sr, "-c", "1", "-b", "16", "-e", "signed", "-", "-r", "8000", "-t", "gsm", "-"],
                &pcm,
            )?;
            load_gsm(&gsm)?
        }
    })
}

/// Empties (or creates) `dir`: a directory a build rewrites in full, so that no clip of an
/// earlier build with other sources stays in it.
pub fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes every split's real clips, `<out>/<split>/real/<name>`: the vocoder input of the same
/// name through its [`PostChain::of_real`] (the source's channel from `channel_of`, by the source
/// in the name). Returns split -> codec kind (`none` without one) -> clips.
pub fn write_reals(
    out: &Path,
    work: &Path,
    splits: &[&str],
    channel_of: &BTreeMap<&str, Channel>,
    rng: &Rng,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, usize>>> {
    let mut counts = BTreeMap::new();
    for split in splits {
        let dir = out.join(split).join("real");
        fresh_dir(&dir)?;
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(vocoder_input_dir(work, split))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("wav"))
            .collect();
        inputs.sort();
        let kinds: Vec<anyhow::Result<&'static str>> = inputs
            .par_iter()
            .map(|input| {
                let name = input.file_name().and_then(|n| n.to_str()).context("clip without a file name")?;
                let ch = channel_of.get(naming::source_of(input).as_str()).copied().unwrap_or(Channel::Wideband);
                let chain = PostChain::of_real(name, ch, rng);
                let x = load_file(input, SR, &AudioLimits::default())?.samples;
                write_wav_pcm16(&dir.join(name), &chain.apply(&x).with_context(|| format!("real clip {name}"))?, SR)?;
                Ok(chain.codec.map_or("none", CorpusCodec::kind))
            })
            .collect();
        let per_kind: &mut BTreeMap<String, usize> = counts.entry((*split).to_string()).or_default();
        for k in kinds {
            *per_kind.entry(k?.to_string()).or_default() += 1;
        }
    }
    Ok(counts)
}

/// 16 kHz audio through a sox telephone format at 8 kHz (`ul` mu-law, `al` A-law) and back.
fn telephone_round_trip(y: &[f32], format: &str) -> anyhow::Result<Vec<f32>> {
    let narrow = resample(y, SR, 8000)?;
    let pcm: Vec<u8> = narrow.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
    let raw = ["-t", "raw", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed"];
    let coded = sox(&[&raw[..], &["-", "-t", format, "-"]].concat(), &pcm)?;
    let back = sox(&[&["-t", format, "-r", "8000", "-c", "1", "-"][..], &raw, &["-"]].concat(), &coded)?;
    let audio = decode_pcm(&back, PcmFormat::S16Le, 8000, 1, &AudioLimits::default())?;
    Ok(resample(&audio.samples, 8000, SR)?)
}

/// Decodes a raw GSM 06.10 file (asterisk prompts) with sox, to 16 kHz.
pub fn load_gsm(bytes: &[u8]) -> anyhow::Result<Vec<f32>> {
    let raw = sox(&["-t", "gsm", "-r", "8000", "-c", "1", "-", "-t", "raw", "-b", "16", "-e", "signed", "-"], bytes)?;
    let audio = decode_pcm(&raw, PcmFormat::S16Le, 8000, 1, &AudioLimits::default())?;
    Ok(resample(&audio.samples, 8000, SR)?)
}

/// Runs sox with `input` on stdin, returns stdout. `-D -R`: no automatic dither and repeatable
/// mode; by default sox dithers with a time-seeded generator when it lowers precision (16-bit to
/// GSM), which made corpus building and augmentation differ from run to run.
pub fn sox(args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("sox")
        .args(["-D", "-R"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sox (apt-get install sox)")?;
    let mut stdin = child.stdin.take().context("sox stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().context("waiting for sox")?;
    writer.join().map_err(|_| anyhow::anyhow!("sox writer thread panicked"))?.context("writing to sox")?;
    if !out.status.success() {
        bail!("sox {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_window_normalize() {
        let mut y = vec![0f32; 8000];
        y.extend((0..40_000).map(|i| (i as f32 * 0.05).sin() * 0.3));
        y.extend(vec![0f32; 8000]);
        let t = trim(&y, 35.0);
        assert!(t.len() >= 40_000 && t.len() <= 40_400, "{}", t.len());
        assert_eq!(windows(t).len(), 1);
        let n = normalize(windows(t)[0]);
        let rms = (n.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / n.len() as f64).sqrt();
        assert!((20.0 * rms.log10() + 26.0).abs() < 0.01);
        assert!(trim(&[0.0; 100], 35.0).is_empty());
    }

    #[test]
    fn post_chains_draw_codecs_at_one_rate_for_reals_and_fakes_and_pair_copies_with_their_real() {
        let rng = Rng::new(7);
        let n = 4000;
        let reals: Vec<PostChain> =
            (0..n).map(|i| PostChain::of_real(&format!("src__{i:05}_0.wav"), Channel::Gsm, &rng)).collect();
        let mut fake_rng = rng.fork(1);
        let fakes: Vec<PostChain> = (0..n).map(|_| PostChain::of_fake(Channel::Gsm, &mut fake_rng)).collect();
        let share = |v: &[PostChain]| v.iter().filter(|c| c.codec.is_some()).count() as f64 / n as f64;
        for (what, v) in [("real", &reals), ("fake", &fakes)] {
            let s = share(v);
            assert!((s - CORPUS_CODEC_RATE).abs() < 0.03, "{what}: codec share {s}");
            let kinds: std::collections::BTreeSet<&str> =
                v.iter().filter_map(|c| c.codec.map(CorpusCodec::kind)).collect();
            assert_eq!(kinds.len(), 7, "{what}: {kinds:?}");
        }
        // A telephone source's real keeps only its band (its codec is in the source); a fake
        // drawn onto that channel gets the channel in full.
        assert!(reals.iter().all(|c| c.channel == Channel::Narrowband8k));
        assert!(fakes.iter().all(|c| c.channel == Channel::Gsm));
        // The copy of a real draws the real's chain again, whatever was drawn in between.
        assert_eq!(PostChain::of_real("src__00012_0.wav", Channel::Gsm, &rng), reals[12]);
        assert_ne!(reals[..50].iter().filter(|c| c.codec.is_some()).count(), 0);
    }

    #[test]
    fn every_corpus_codec_keeps_length_and_level() {
        let y: Vec<f32> = (0..32_000)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                ((0.3 * (2.0 * std::f64::consts::PI * 180.0 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * 2300.0 * t).sin())
                    * (0.5 + 0.5 * (3.0 * t).sin().abs())) as f32
            })
            .collect();
        let codecs = [
            CorpusCodec::Gsm,
            CorpusCodec::MuLaw,
            CorpusCodec::ALaw,
            CorpusCodec::Lossy(Codec::AmrNb { mode: 3 }),
            CorpusCodec::Lossy(Codec::Opus { kbps: 8 }),
            CorpusCodec::Lossy(Codec::Mp3 { kbps: 16 }),
            CorpusCodec::BandLimit(3),
        ];
        for codec in codecs {
            let chain = PostChain { channel: Channel::Wideband, codec: Some(codec) };
            let z = chain.apply(&y).unwrap();
            assert_eq!(z.len(), y.len(), "{codec:?}");
            let rms = (z.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / z.len() as f64).sqrt();
            assert!((20.0 * rms.log10() + 26.0).abs() < 0.1, "{codec:?}: {rms}");
            assert_ne!(z, normalize(&y), "{codec:?} changed nothing");
            // Aligned and still the same signal (cosine similarity of the samples).
            let (a, b) = (normalize(&y), &z);
            let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
            let cos = dot(&a, b) / (dot(&a, &a) * dot(b, b)).sqrt();
            assert!(cos > 0.5, "{codec:?} lost the signal: cosine {cos}");
        }
    }

    #[test]
    fn gsm_channel_is_deterministic() {
        let y: Vec<f32> = (0..16_000).map(|i| ((i as f64 * 0.07).sin() * 0.3) as f32).collect();
        let (a, b) = (apply_channel(&y, Channel::Gsm).unwrap(), apply_channel(&y, Channel::Gsm).unwrap());
        assert_eq!(a, b);
        assert!(a.iter().any(|v| v.abs() > 0.05), "GSM round trip lost the signal");
    }

    #[test]
    fn narrowband_channel_removes_the_upper_band() {
        // Phase in f64: an f32 argument near 3.7e4 rad carries ~-54 dB of phase noise in-band.
        let tone: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f64::consts::PI * 6000.0 * i as f64 / 16_000.0).sin() as f32).collect();
        let out = apply_channel(&tone, Channel::Narrowband8k).unwrap();
        let peak = out[1600..14_400].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak < 1e-4, "6 kHz survived an 8 kHz channel: {peak}");
    }
}
