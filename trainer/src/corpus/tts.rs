//! Synthetic speech from the TTS engines Debian ships (espeak-ng, flite, festival).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use vericlip_core::audio::{AudioInput, AudioLimits, load_mono};

use super::process::SR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Formant synthesis; voice variants `+m1`, `+f2`, ...
    Espeak,
    /// Diphone/cluster-unit synthesis (CMU flite voices).
    Flite,
    /// Festival diphone voices (`text2wave`).
    Festival,
}

impl Engine {
    pub fn program(self) -> &'static str {
        match self {
            Engine::Espeak => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Festival => "text2wave",
        }
    }
}

/// Speaks `text`; returns 16 kHz mono audio. `scratch` is a file path the engine may write.
pub fn speak(
    engine: Engine,
    voice: &str,
    lang: &str,
    text: &str,
    speed: u32,
    pitch: u32,
    scratch: &Path,
) -> anyhow::Result<Vec<f32>> {
    let mut cmd = match engine {
        Engine::Espeak => {
            let mut c = Command::new("espeak-ng");
            c.args(["-v", &format!("{lang}+{voice}"), "-s", &speed.to_string(), "-p", &pitch.to_string(), "-w"])
                .arg(scratch)
                .arg(text);
            c
        }
        Engine::Flite => {
            let mut c = Command::new("flite");
            c.args(["-voice", voice, "-t", text, "-o"]).arg(scratch);
            c
        }
        Engine::Festival => {
            let mut c = Command::new("text2wave");
            c.args(["-eval", &format!("(voice_{voice})"), "-o"]).arg(scratch);
            c
        }
    };
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().with_context(|| {
            format!("running {} (apt-get install espeak-ng flite festival festvox-kallpc16k)", engine.program())
        })?;
    if engine == Engine::Festival {
        use std::io::Write;
        child.stdin.take().context("text2wave stdin")?.write_all(text.as_bytes())?;
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} failed: {}", engine.program(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let bytes = std::fs::read(scratch).with_context(|| format!("reading {}", scratch.display()))?;
    Ok(load_mono(AudioInput::Encoded(&bytes), SR, &AudioLimits::default())?.samples)
}
