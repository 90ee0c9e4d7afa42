//! Clip processing shared by every corpus source (the reference recipe's `build.py`): trim
//! silence, cut at most two non-overlapping 2 s windows per utterance, pass through a telephone
//! channel, normalize loudness.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use vericlip_core::audio::{AudioLimits, PcmFormat, decode_pcm, resample};

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
