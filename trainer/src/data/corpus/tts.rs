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

/// [`speak`] through a cache under `cache_dir`, keyed by engine, voice, language, text, speed
/// and pitch (and the engine's version string, so an upgraded engine re-synthesizes): a corpus
/// rebuild only runs the engines for utterances it has not made before.
#[allow(clippy::too_many_arguments)]
pub fn speak_cached(
    engine: Engine,
    voice: &str,
    lang: &str,
    text: &str,
    speed: u32,
    pitch: u32,
    scratch: &Path,
    cache_dir: &Path,
) -> anyhow::Result<Vec<f32>> {
    let key = serde_json::json!({
        "engine": engine.program(), "version": engine_version(engine), "voice": voice, "lang": lang,
        "text": text, "speed": speed, "pitch": pitch,
    });
    let path =
        cache_dir.join(format!("{}.wav", &vericlip_core::registry::sha256_hex(key.to_string().as_bytes())[..32]));
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(load_mono(AudioInput::Encoded(&bytes), SR, &AudioLimits::default())?.samples);
    }
    let y = speak(engine, voice, lang, text, speed, pitch, scratch)?;
    std::fs::create_dir_all(cache_dir)?;
    // Unique per thread: two utterances of a batch may share a key.
    let tmp = path.with_extension(format!("tmp-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
    vericlip_core::audio::write_wav_pcm16(&tmp, &y, SR)?;
    std::fs::rename(&tmp, &path)?;
    // What a rebuild will read (16-bit), so first build and rebuild give the same corpus.
    Ok(load_mono(AudioInput::Encoded(&std::fs::read(&path)?), SR, &AudioLimits::default())?.samples)
}

/// The engine's version line (cached per process).
fn engine_version(engine: Engine) -> String {
    use std::sync::OnceLock;
    static VERSIONS: OnceLock<[String; 3]> = OnceLock::new();
    let versions = VERSIONS.get_or_init(|| {
        let v = |prog: &str, arg: &str| {
            Command::new(prog)
                .arg(arg)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(if o.stdout.is_empty() { &o.stderr } else { &o.stdout })
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default()
        };
        [v("espeak-ng", "--version"), v("flite", "--version"), v("festival", "--version")]
    });
    versions[engine as usize].clone()
}

/// The bytes `text2wave` reads for `text`. The Italian diphone voices' letter-to-sound rules
/// match ISO 8859-1 bytes: given UTF-8, every sentence with an accented letter ("perché", "è")
/// came back as empty audio, so the Italian groups held only accent-free sentences. A letter
/// outside Latin-1 becomes a space. Other languages keep UTF-8 (the Czech voices read it).
fn festival_text(lang: &str, text: &str) -> Vec<u8> {
    if lang != "it" {
        return text.as_bytes().to_vec();
    }
    text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b' ')).collect()
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
        child.stdin.take().context("text2wave stdin")?.write_all(&festival_text(lang, text))?;
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

#[cfg(test)]
mod tests {
    use super::festival_text;

    #[test]
    fn italian_festival_text_is_latin1_and_other_languages_keep_utf8() {
        assert_eq!(festival_text("it", "perché è"), b"perch\xe9 \xe8".to_vec());
        // Outside Latin-1 (a Czech letter, an emoji): a space, never a dropped word boundary.
        assert_eq!(festival_text("it", "a\u{159}b\u{1F600}c"), b"a b c".to_vec());
        assert_eq!(festival_text("cs", "p\u{159}\u{ed}li\u{161}"), "p\u{159}\u{ed}li\u{161}".as_bytes().to_vec());
    }
}
