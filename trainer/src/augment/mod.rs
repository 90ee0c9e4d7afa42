//! Training-time augmentation, so the model leans on cues that survive real-world recording and
//! transmission rather than on the level, noise floor, bandwidth or codec of the stand-in corpus.
//! Applied to the 16 kHz audio of each 2 s training segment before features
//! (`pipeline::data::augmented`); every copy draws from its own seeded stream, so results do not
//! depend on thread scheduling.
//!
//! Kinds (`--augment-kinds`, each applied to a copy with its probability `p`; `kind=P` sets it),
//! in the order they are applied:
//!
//! | kind | what | default p |
//! |---|---|---|
//! | `shift` | time shift by -0.25..+0.25 s, zero-filled | 1 |
//! | `reverb` | synthetic room ([`reverb`]): RT60 0.2..0.8 s, pre-delay 1..8 ms, wet share 0.2..0.8, input level kept | 0.3 |
//! | `rawboost` | RawBoost ([`rawboost`]): convolutive band-stop chains with polynomial distortion, impulsive signal-dependent noise, stationary coloured noise at 10..40 dB SNR (a non-empty subset) | 0.5 |
//! | `bandlimit` | Butterworth low-pass 3.4..7 kHz (order 4 or 8) and/or high-pass 50..300 Hz (order 2 or 4): low only, high only or both, a third each | 0.3 |
//! | `tilt` | spectral tilt: high shelf of -15..+10 dB above a corner at 0.5..3 kHz, level kept (a dull or bright microphone, room or equalizer, so the balance of high and low bands is no cue) | 0.5 |
//! | `resample` | 16 kHz -> 8, 11.025, 22.05 or 44.1 kHz -> 16 kHz through core's resampler | 0.3 |
//! | `channel` | telephone channel: 8 kHz band limit or GSM 06.10 round trip (sox), half each; otherwise wideband | 0.5 |
//! | `codec` | lossy round trip ([`codec`]): MP3, Ogg Vorbis, Opus or AMR-NB (`--augment-codecs`, uniformly), setting drawn per copy | 0.5 |
//! | `noise` | white noise at 15..40 dB SNR | 0.5 |
//! | `gain` | gain -12..+6 dB | 1 |
//!
//! The result is always clipped to [-1, 1], like a real recording chain. The default is today's
//! set, `shift,channel,noise,gain`, which reproduces the earlier augmentation exactly (same draws,
//! same samples); the other kinds are off until chosen. Those four draw from the copy's stream in
//! the earlier order; every other kind draws from its own fork of it, so turning one kind on or
//! off never changes what another draws. Tools a kind needs (sox for `channel` and most codecs,
//! opus-tools for Opus) are checked by [`AugmentConfig::validate`] before any work starts.

mod codec;
mod dsp;
pub mod rawboost;
pub mod reverb;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use serde::Serialize;
use vericlip_core::audio::resample;

pub use codec::{Codec, CodecFamily};

use crate::data::corpus::process::{Channel, SR, apply_channel};
use crate::rng::Rng;

/// One augmentation kind. The numbers salt each kind's random stream: never renumber them (the
/// declaration order is the order of application).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Shift = 0,
    Reverb = 1,
    Rawboost = 2,
    Bandlimit = 3,
    Resample = 4,
    Channel = 5,
    Codec = 6,
    Noise = 7,
    Gain = 8,
    Tilt = 9,
}

impl Kind {
    /// Every kind, in the order they are applied.
    pub const ALL: [Kind; 10] = [
        Kind::Shift,
        Kind::Reverb,
        Kind::Rawboost,
        Kind::Bandlimit,
        Kind::Tilt,
        Kind::Resample,
        Kind::Channel,
        Kind::Codec,
        Kind::Noise,
        Kind::Gain,
    ];
    /// The kinds on by default (the augmentation before these kinds existed).
    pub const DEFAULT: [Kind; 4] = [Kind::Shift, Kind::Channel, Kind::Noise, Kind::Gain];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Shift => "shift",
            Kind::Reverb => "reverb",
            Kind::Rawboost => "rawboost",
            Kind::Bandlimit => "bandlimit",
            Kind::Resample => "resample",
            Kind::Channel => "channel",
            Kind::Codec => "codec",
            Kind::Noise => "noise",
            Kind::Gain => "gain",
            Kind::Tilt => "tilt",
        }
    }

    /// Probability per copy when the kind is named without `=P`.
    pub fn default_probability(self) -> f64 {
        match self {
            Kind::Shift | Kind::Gain => 1.0,
            Kind::Channel | Kind::Noise | Kind::Codec | Kind::Rawboost | Kind::Tilt => 0.5,
            Kind::Reverb | Kind::Bandlimit | Kind::Resample => 0.3,
        }
    }

    /// Drawn from the copy's own stream in the earlier order (the others from forks of it).
    fn draws_in_order(self) -> bool {
        Kind::DEFAULT.contains(&self)
    }

    /// What the kind does, for people and the manifest.
    fn describe(self, codecs: &[CodecFamily]) -> String {
        match self {
            Kind::Shift => "time shift +-0.25 s".into(),
            Kind::Reverb => "synthetic room reverb, RT60 0.2-0.8 s, wet 0.2-0.8".into(),
            Kind::Rawboost => {
                "RawBoost (convolutive + polynomial, impulsive, stationary coloured noise 10-40 dB SNR)".into()
            }
            Kind::Bandlimit => "band limit: low-pass 3.4-7 kHz and/or high-pass 50-300 Hz".into(),
            Kind::Resample => "resampling 16k -> 8k/11.025k/22.05k/44.1k -> 16k".into(),
            Kind::Channel => "channel: half 8 kHz, half GSM (else wideband)".into(),
            Kind::Codec => format!(
                "codec round trip: {}",
                codecs.iter().map(|c| format!("{} ({})", c.name(), c.settings())).collect::<Vec<_>>().join(", ")
            ),
            Kind::Noise => "white noise 15-40 dB SNR".into(),
            Kind::Gain => "gain -12..+6 dB".into(),
            Kind::Tilt => "spectral tilt: high shelf -15..+10 dB above 0.5-3 kHz".into(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds that are on and the probability of each (the `--augment-kinds` value):
/// comma-separated `kind` or `kind=P` (P in 0..=1), or `all` for every kind at its default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindSet(pub BTreeMap<Kind, f64>);

impl Default for KindSet {
    fn default() -> Self {
        Self(Kind::DEFAULT.iter().map(|k| (*k, k.default_probability())).collect())
    }
}

impl FromStr for KindSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut kinds = BTreeMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "all" {
                kinds.extend(Kind::ALL.iter().map(|k| (*k, k.default_probability())));
                continue;
            }
            let (name, p) = match item.split_once('=') {
                Some((n, p)) => (n.trim(), Some(p.trim())),
                None => (item, None),
            };
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                format!(
                    "unknown augmentation kind {name:?} (kinds: {}, or all)",
                    Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                )
            })?;
            let p = match p {
                None => kind.default_probability(),
                Some(p) => match p.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => v,
                    _ => return Err(format!("augmentation kind {name}: probability {p:?} is not a number in 0..1")),
                },
            };
            if kinds.insert(kind, p).is_some() {
                return Err(format!("augmentation kind {name} is given twice"));
            }
        }
        Ok(Self(kinds))
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(k, p)| format!("{k}={p}")).collect();
        f.write_str(&items.join(","))
    }
}

/// Which kinds are on (with their probabilities) and which codecs `codec` draws from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AugmentConfig {
    pub kinds: KindSet,
    /// Only used when `codec` is on.
    pub codecs: Vec<CodecFamily>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { kinds: KindSet::default(), codecs: CodecFamily::ALL.to_vec() }
    }
}

/// The fork of a copy's stream that kinds outside [`Kind::DEFAULT`] draw from (one fork each).
const EXTRA_STREAM: u64 = 0xa_0602;

impl AugmentConfig {
    /// A config from the flags' values; repeated codecs are dropped.
    pub fn new(kinds: KindSet, codecs: &[CodecFamily]) -> anyhow::Result<Self> {
        let mut unique: Vec<CodecFamily> = Vec::new();
        for c in codecs {
            if !unique.contains(c) {
                unique.push(*c);
            }
        }
        if kinds.0.contains_key(&Kind::Codec) && unique.is_empty() {
            bail!("augmentation kind codec is on but --augment-codecs names no codec");
        }
        Ok(Self { kinds, codecs: unique })
    }

    /// One kind alone, always applied (tests and timing).
    pub fn only(kind: Kind) -> Self {
        Self { kinds: KindSet([(kind, 1.0)].into_iter().collect()), ..Self::default() }
    }

    pub fn probability(&self, kind: Kind) -> Option<f64> {
        self.kinds.0.get(&kind).copied()
    }

    /// Checks that the external tools the chosen kinds need work here (sox's GSM for `channel`,
    /// each codec for `codec`), so a missing one fails before features are computed, not in
    /// the middle of augmentation. Pure-Rust kinds need nothing.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.probability(Kind::Channel).is_some_and(|p| p > 0.0) {
            let tone: Vec<f32> = (0..4000).map(|i| (0.3 * (i as f64 * 0.09).sin()) as f32).collect();
            apply_channel(&tone, Channel::Gsm).map_err(|e| {
                anyhow::anyhow!(
                    "augmentation kind channel needs sox with GSM (scripts/setup.sh installs it), or leave it out \
                     of --augment-kinds: {e:#}"
                )
            })?;
        }
        if self.probability(Kind::Codec).is_some_and(|p| p > 0.0) {
            for c in &self.codecs {
                c.probe()?;
            }
        }
        Ok(())
    }

    /// The kinds in the order applied, with probabilities, as one line.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter_map(|k| self.probability(*k).map(|p| format!("{} (p {p})", k.describe(&self.codecs))))
            .collect();
        if parts.is_empty() { "none".into() } else { parts.join("; ") }
    }

    /// What the manifest records: kinds with probabilities, codecs (when on), and the text.
    pub fn provenance(&self, copies: usize) -> serde_json::Value {
        let mut v = serde_json::json!({
            "copies_per_segment": copies,
            "kinds": self.kinds,
            "transforms": self.describe(),
        });
        if self.probability(Kind::Codec).is_some() {
            v["codecs"] = serde_json::json!(self.codecs);
        }
        v
    }
}

/// `p` decides without a draw when it is 1 (so the default kinds draw exactly as before).
fn happens(p: f64, rng: &mut Rng) -> bool {
    p >= 1.0 || rng.uniform() < p
}

/// One augmented copy of a 16 kHz segment (same length, finite, within [-1, 1]).
pub fn augment(y: &[f32], cfg: &AugmentConfig, rng: &mut Rng) -> anyhow::Result<Vec<f32>> {
    let n = y.len();
    let extra = rng.fork(EXTRA_STREAM);
    let mut x = y.to_vec();
    if let Some(p) = cfg.probability(Kind::Shift)
        && happens(p, rng)
    {
        // Time shift by up to 0.25 s either way, zero-filled.
        let shift = (rng.range(-0.25, 0.25) * 16_000.0) as isize;
        x = (0..n as isize).map(|i| y.get((i - shift) as usize).copied().unwrap_or(0.0)).collect();
    }
    for kind in [Kind::Reverb, Kind::Rawboost, Kind::Bandlimit, Kind::Tilt, Kind::Resample] {
        let Some(p) = cfg.probability(kind) else { continue };
        let mut r = extra.fork(kind as u64);
        if !happens(p, &mut r) {
            continue;
        }
        x = match kind {
            Kind::Reverb => dsp::to_f32(&reverb::reverb(&dsp::to_f64(&x), &mut r)),
            Kind::Rawboost => dsp::to_f32(&rawboost::rawboost(&dsp::to_f64(&x), &mut r)),
            Kind::Bandlimit => dsp::to_f32(&bandlimit(dsp::to_f64(&x), &mut r)),
            Kind::Tilt => dsp::to_f32(&tilt(dsp::to_f64(&x), &mut r)),
            _ => resample_chain(&x, &mut r)?,
        };
    }
    if let Some(p) = cfg.probability(Kind::Channel) {
        // Channel: with probability p a telephone channel, half 8 kHz band limit, half GSM 06.10
        // (p = 0.5 draws exactly as the earlier quarter / quarter / half split did).
        let u = rng.uniform();
        let channel = if u < p / 2.0 {
            Channel::Narrowband8k
        } else if u < p {
            Channel::Gsm
        } else {
            Channel::Wideband
        };
        if channel != Channel::Wideband {
            x = apply_channel(&x, channel)?;
            x.resize(n, 0.0);
        }
    }
    if let Some(p) = cfg.probability(Kind::Codec) {
        let mut r = extra.fork(Kind::Codec as u64);
        if happens(p, &mut r) && !cfg.codecs.is_empty() {
            x = r.choose(&cfg.codecs).draw(&mut r).round_trip(&x)?;
        }
    }
    if let Some(p) = cfg.probability(Kind::Noise)
        && rng.uniform() < p
    {
        // Additive white noise at 15..40 dB SNR.
        let rms = (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
        let sigma = rms * 10f64.powf(-rng.range(15.0, 40.0) / 20.0);
        for v in &mut x {
            *v += (sigma * rng.normal()) as f32;
        }
    }
    let gain = match cfg.probability(Kind::Gain) {
        Some(p) if happens(p, rng) => 10f64.powf(rng.range(-12.0, 6.0) / 20.0) as f32,
        _ => 1.0,
    };
    // Clipped like a real recording chain would.
    for v in &mut x {
        *v = (*v * gain).clamp(-1.0, 1.0);
    }
    if cfg.kinds.0.keys().any(|k| !k.draws_in_order()) {
        // The forks above come from the stream's state: move it on, so the next segment of the
        // copy draws anew even when no default kind drew.
        rng.next_u64();
    }
    Ok(x)
}

/// Low-pass (3.4..7 kHz, Butterworth order 4 or 8), high-pass (50..300 Hz, order 2 or 4), or
/// both, a third each.
fn bandlimit(mut x: Vec<f64>, r: &mut Rng) -> Vec<f64> {
    let which = r.below(3);
    if which != 1 {
        let (fc, order) = (r.range(3400.0, 7000.0), if r.below(2) == 0 { 4 } else { 8 });
        dsp::butterworth(&mut x, order, fc, f64::from(SR), false);
    }
    if which != 0 {
        let (fc, order) = (r.range(50.0, 300.0), if r.below(2) == 0 { 2 } else { 4 });
        dsp::butterworth(&mut x, order, fc, f64::from(SR), true);
    }
    x
}

/// A high shelf of -15..+10 dB (uniform) above a corner drawn log-uniformly in 0.5..3 kHz, input
/// RMS kept. Wider toward dull than bright: recordings and codecs lose highs more often than
/// they gain them.
fn tilt(mut x: Vec<f64>, r: &mut Rng) -> Vec<f64> {
    let level = dsp::rms(&x);
    let (gain, fc) = (r.range(-15.0, 10.0), 500.0 * 6f64.powf(r.uniform()));
    dsp::high_shelf(&mut x, gain, fc, f64::from(SR));
    dsp::match_rms(&mut x, level);
    x
}

/// The rates a resampling chain goes through.
pub const RESAMPLE_RATES: [u32; 4] = [8000, 11_025, 22_050, 44_100];

fn resample_chain(x: &[f32], r: &mut Rng) -> anyhow::Result<Vec<f32>> {
    let rate = *r.choose(&RESAMPLE_RATES);
    let mut out = resample(&resample(x, SR, rate)?, rate, SR)?;
    out.resize(x.len(), 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests;
