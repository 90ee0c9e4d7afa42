//! `vericlip-train corpus`: builds a stand-in for the Fake-or-Real for-2sec set
//! (`{training,validation,testing}/{real,fake}/*.wav`, 16 kHz mono PCM16, exactly 2 s) from
//! Debian packages only, following `shared/reference/corpus/`:
//! real speech from game dialogue, IVR prompts and language-course recordings, speaker-disjoint
//! across splits; synthetic speech from espeak-ng, flite and festival, with engines and voices
//! split by set; each fake passed through the telephone channels of its split's real clips.
//! File names carry the source (`<source>__...`) for per-source evaluation.

mod debian;
pub mod process;
mod texts;
mod tts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use vericlip_core::audio::{AudioLimits, load_file, write_wav_pcm16};

use crate::rng::Rng;
use process::{Channel, SR};
use tts::Engine;

pub const SPLITS: [&str; 3] = ["training", "validation", "testing"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A few dozen clips per split from ~2.5 MB of packages; seconds to build (tests, CI).
    Tiny,
    /// The reference recipe: ~210 MB of packages, thousands of clips, a few minutes.
    Full,
}

/// Which files of an unpacked package belong to a real speaker.
#[derive(Debug, Clone, Copy)]
enum Select {
    /// Every file with this extension.
    Ext(&'static str),
    /// Every other file with this extension, starting at the given offset (splits one speaker's
    /// prompts between validation and test in the tiny corpus).
    Alternate(&'static str, usize),
    /// fillets-ng voice files of one speaker key (`<level>-<speaker>-...ogg`), or `None` for all
    /// speakers other than the leads `v` and `m`.
    Fillets(Option<&'static str>),
    /// klettres recordings of these languages.
    Klettres(&'static [&'static str]),
}

struct RealSource {
    name: &'static str,
    package: &'static str,
    select: Select,
    channel: Channel,
    split: &'static str,
}

struct FakeGroup {
    name: &'static str,
    engine: Engine,
    voices: &'static [&'static str],
    langs: &'static [&'static str],
    split: &'static str,
}

struct Plan {
    real: Vec<RealSource>,
    fakes: Vec<FakeGroup>,
    /// Most real clips per split (tiny mode), `None` for all.
    cap: Option<usize>,
}

fn plan(mode: Mode) -> Plan {
    use Channel::*;
    use Engine::*;
    match mode {
        Mode::Tiny => Plan {
            real: vec![
                RealSource {
                    name: "ast_fr_armelle",
                    package: "asterisk-prompt-fr-armelle",
                    select: Select::Ext("gsm"),
                    channel: Gsm,
                    split: "training",
                },
                RealSource {
                    name: "ast_es_co",
                    package: "asterisk-prompt-es-co",
                    select: Select::Alternate("gsm", 0),
                    channel: Gsm,
                    split: "validation",
                },
                RealSource {
                    name: "ast_es_co",
                    package: "asterisk-prompt-es-co",
                    select: Select::Alternate("gsm", 1),
                    channel: Gsm,
                    split: "testing",
                },
            ],
            fakes: vec![
                FakeGroup {
                    name: "espeak_train",
                    engine: Espeak,
                    voices: &["m1", "f1", "m3"],
                    langs: &["fr", "en"],
                    split: "training",
                },
                FakeGroup {
                    name: "espeak_val",
                    engine: Espeak,
                    voices: &["m2", "f3"],
                    langs: &["es"],
                    split: "validation",
                },
                FakeGroup {
                    name: "espeak_test",
                    engine: Espeak,
                    voices: &["f4", "m7"],
                    langs: &["es", "en"],
                    split: "testing",
                },
                FakeGroup { name: "flite_test", engine: Flite, voices: &["rms"], langs: &["en"], split: "testing" },
            ],
            cap: Some(40),
        },
        Mode::Full => Plan {
            real: vec![
                RealSource {
                    name: "fillets_cs_v",
                    package: "fillets-ng-data-cs",
                    select: Select::Fillets(Some("v")),
                    channel: Wideband,
                    split: "training",
                },
                RealSource {
                    name: "ast_it_carlo",
                    package: "asterisk-core-sounds-it-wav",
                    select: Select::Ext("wav"),
                    channel: Narrowband8k,
                    split: "training",
                },
                RealSource {
                    name: "ast_ru_f",
                    package: "asterisk-core-sounds-ru-wav",
                    select: Select::Ext("wav"),
                    channel: Narrowband8k,
                    split: "training",
                },
                RealSource {
                    name: "klettres_ml_hu_ar",
                    package: "klettres-data",
                    select: Select::Klettres(&["ml", "hu", "ar"]),
                    channel: Wideband,
                    split: "training",
                },
                RealSource {
                    name: "fillets_cs_m",
                    package: "fillets-ng-data-cs",
                    select: Select::Fillets(Some("m")),
                    channel: Wideband,
                    split: "validation",
                },
                RealSource {
                    name: "ast_fr_armelle",
                    package: "asterisk-prompt-fr-armelle",
                    select: Select::Ext("gsm"),
                    channel: Gsm,
                    split: "validation",
                },
                RealSource {
                    name: "fillets_cs_other",
                    package: "fillets-ng-data-cs",
                    select: Select::Fillets(None),
                    channel: Wideband,
                    split: "testing",
                },
                RealSource {
                    name: "ast_it_menardi",
                    package: "asterisk-prompt-it-menardi-wav",
                    select: Select::Ext("wav"),
                    channel: Narrowband8k,
                    split: "testing",
                },
                RealSource {
                    name: "ast_es_co",
                    package: "asterisk-prompt-es-co",
                    select: Select::Ext("gsm"),
                    channel: Gsm,
                    split: "testing",
                },
            ],
            fakes: vec![
                FakeGroup {
                    name: "espeak_train",
                    engine: Espeak,
                    voices: &["m1", "m3", "f1", "f2", "m5"],
                    langs: &["cs", "it", "ru", "fr", "en"],
                    split: "training",
                },
                FakeGroup {
                    name: "flite_train",
                    engine: Flite,
                    voices: &["kal16", "awb"],
                    langs: &["en"],
                    split: "training",
                },
                FakeGroup {
                    name: "fest_kal_train",
                    engine: Festival,
                    voices: &["kal_diphone"],
                    langs: &["en"],
                    split: "training",
                },
                FakeGroup {
                    name: "espeak_val",
                    engine: Espeak,
                    voices: &["m2", "f3"],
                    langs: &["cs", "it", "fr"],
                    split: "validation",
                },
                FakeGroup {
                    name: "espeak_test",
                    engine: Espeak,
                    voices: &["m4", "f4", "m7"],
                    langs: &["cs", "it", "es", "en"],
                    split: "testing",
                },
                FakeGroup { name: "flite_test", engine: Flite, voices: &["rms"], langs: &["en"], split: "testing" },
            ],
            cap: None,
        },
    }
}

impl Select {
    fn files(self, root: &Path) -> Vec<PathBuf> {
        let all = debian::files(root);
        let ext = |p: &PathBuf, e: &str| p.extension().and_then(|x| x.to_str()) == Some(e);
        match self {
            Select::Ext(e) => all.into_iter().filter(|p| ext(p, e)).collect(),
            Select::Alternate(e, offset) => all.into_iter().filter(|p| ext(p, e)).skip(offset).step_by(2).collect(),
            Select::Fillets(speaker) => all
                .into_iter()
                .filter(|p| ext(p, "ogg") && !p.to_string_lossy().contains("/sound/share/"))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let key: Vec<&str> = name.split('-').collect();
                    let lead = key.len() > 2 && matches!(key[1], "v" | "m");
                    match speaker {
                        Some(s) => key.len() > 2 && key[1] == s,
                        None => !lead,
                    }
                })
                .collect(),
            Select::Klettres(langs) => all
                .into_iter()
                .filter(|p| {
                    ext(p, "ogg") && langs.iter().any(|l| p.to_string_lossy().contains(&format!("/klettres/{l}/")))
                })
                .collect(),
        }
    }
}

/// What was built, written to `<out>/corpus.json`.
#[derive(Debug, Serialize)]
pub struct CorpusReport {
    pub mode: String,
    pub seed: u64,
    /// split -> label -> source -> clips
    pub clips: BTreeMap<String, BTreeMap<String, BTreeMap<String, usize>>>,
    /// split -> channel -> real clips
    pub real_channels: BTreeMap<String, BTreeMap<String, usize>>,
    pub skipped_files: Vec<String>,
    pub packages: Vec<String>,
}

fn load_real(path: &Path) -> anyhow::Result<Vec<f32>> {
    if path.extension().and_then(|e| e.to_str()) == Some("gsm") {
        process::load_gsm(&std::fs::read(path)?)
    } else {
        Ok(load_file(path, SR, &AudioLimits::default())?.samples)
    }
}

/// Builds the corpus into `out` (work files, e.g. downloaded packages, under `work`).
pub fn build(out: &Path, work: &Path, mode: Mode, seed: u64) -> anyhow::Result<CorpusReport> {
    let plan = plan(mode);
    let rng = Rng::new(seed);
    for split in SPLITS {
        for label in ["real", "fake"] {
            std::fs::create_dir_all(out.join(split).join(label))?;
        }
    }
    let mut report = CorpusReport {
        mode: format!("{mode:?}").to_lowercase(),
        seed,
        clips: BTreeMap::new(),
        real_channels: BTreeMap::new(),
        skipped_files: Vec::new(),
        packages: Vec::new(),
    };
    let mut licences = String::from(
        "# Corpus sources\n\nBuilt by `vericlip-train corpus`. Real speech comes from these Debian packages; their copyright files follow.\n",
    );

    // Real speech.
    for src in &plan.real {
        let root = debian::fetch(src.package, work)?;
        if !report.packages.iter().any(|p| p == src.package) {
            report.packages.push(src.package.to_string());
            licences.push_str(&format!(
                "\n## {}\n\n```\n{}\n```\n",
                src.package,
                debian::copyright(src.package, &root).unwrap_or_else(|| "(no copyright file)".into())
            ));
        }
        let mut files = src.select.files(&root);
        if let Some(cap) = plan.cap {
            // Take longer prompts first in tiny mode (short ones yield no 2 s window).
            files.sort_by_key(|f| std::cmp::Reverse(std::fs::metadata(f).map_or(0, |m| m.len())));
            files.truncate(cap * 2);
            files.sort();
        }
        let dir = out.join(src.split).join("real");
        let results: Vec<(usize, Result<usize, String>)> = files
            .par_iter()
            .enumerate()
            .map(|(j, f)| {
                let r = load_real(f).map_err(|e| format!("{}: {e:#}", f.display())).and_then(|y| {
                    let trimmed = process::trim(&y, 35.0);
                    let ws = process::windows(trimmed);
                    for (w, c) in ws.iter().enumerate() {
                        let path = dir.join(format!("{}__{j:05}_{w}.wav", src.name));
                        write_wav_pcm16(&path, &process::normalize(c), SR).map_err(|e| e.to_string())?;
                    }
                    Ok(ws.len())
                });
                (j, r)
            })
            .collect();
        let mut n = 0;
        for (_, r) in results {
            match r {
                Ok(k) => n += k,
                Err(e) => report.skipped_files.push(e),
            }
        }
        if let Some(cap) = plan.cap {
            n = cap_clips(&dir, src.name, cap)?;
        }
        *report
            .clips
            .entry(src.split.into())
            .or_default()
            .entry("real".into())
            .or_default()
            .entry(src.name.into())
            .or_default() += n;
        *report.real_channels.entry(src.split.into()).or_default().entry(src.channel.tag().into()).or_default() += n;
        tracing::info!(source = src.name, split = src.split, clips = n, "real clips");
    }

    // Synthetic speech, balanced against the real clips of each split.
    let texts = match mode {
        Mode::Tiny => texts::builtin(),
        Mode::Full => {
            let root = debian::fetch("fillets-ng-data", work)?;
            report.packages.push("fillets-ng-data".into());
            licences.push_str(&format!(
                "\n## fillets-ng-data (TTS texts)\n\n```\n{}\n```\n",
                debian::copyright("fillets-ng-data", &root).unwrap_or_default()
            ));
            texts::from_fillets(&root, &["cs", "en", "fr", "it", "ru", "es"])
        }
    };
    let scratch_dir = work.join("tts");
    std::fs::create_dir_all(&scratch_dir)?;
    for split in SPLITS {
        let real_total: usize = report.clips.get(split).and_then(|l| l.get("real")).map_or(0, |s| s.values().sum());
        let channels: Vec<(Channel, f64)> = report.real_channels.get(split).map_or(vec![], |m| {
            m.iter()
                .map(|(tag, n)| {
                    let ch = [Channel::Wideband, Channel::Narrowband8k, Channel::Gsm]
                        .into_iter()
                        .find(|c| c.tag() == tag)
                        .unwrap_or(Channel::Wideband);
                    (ch, *n as f64)
                })
                .collect()
        });
        let groups: Vec<&FakeGroup> = plan.fakes.iter().filter(|g| g.split == split).collect();
        for (gi, group) in groups.iter().enumerate() {
            let target = real_total / groups.len() + usize::from(gi < real_total % groups.len());
            let n =
                generate_fakes(group, target, &channels, &texts, &out.join(split).join("fake"), &scratch_dir, &rng)?;
            *report
                .clips
                .entry(split.into())
                .or_default()
                .entry("fake".into())
                .or_default()
                .entry(group.name.into())
                .or_default() += n;
            tracing::info!(group = group.name, split, clips = n, "fake clips");
        }
    }
    std::fs::write(out.join("SOURCES.md"), licences)?;
    std::fs::write(out.join("corpus.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// Keeps the first `cap` clips of a source in a directory (sorted by name), deleting the rest.
fn cap_clips(dir: &Path, source: &str, cap: usize) -> anyhow::Result<usize> {
    let mut clips: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{source}__"))))
        .collect();
    clips.sort();
    for extra in clips.iter().skip(cap) {
        std::fs::remove_file(extra)?;
    }
    Ok(clips.len().min(cap))
}

/// A clip to be written: file name and 16 kHz samples.
type NamedClip = (String, Vec<f32>);

/// Generates utterances of a group until `target` 2 s clips exist. Utterance `i` draws its voice,
/// language, text, speed, pitch and channel from its own random stream, so the result does not
/// depend on thread scheduling.
fn generate_fakes(
    group: &FakeGroup,
    target: usize,
    channels: &[(Channel, f64)],
    texts: &BTreeMap<String, Vec<String>>,
    dir: &Path,
    scratch: &Path,
    rng: &Rng,
) -> anyhow::Result<usize> {
    const BATCH: usize = 32;
    let weights: Vec<f64> = channels.iter().map(|c| c.1).collect();
    // Each group draws from its own stream (FNV-1a of its name).
    let group_salt =
        group.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut made = 0;
    let mut next = 0usize;
    let mut failures = 0usize;
    while made < target {
        let batch: Vec<usize> = (next..next + BATCH).collect();
        next += BATCH;
        let results: Vec<anyhow::Result<Vec<NamedClip>>> = batch
            .par_iter()
            .map(|&i| {
                let mut r = rng.fork(group_salt).fork(i as u64);
                let voice = *r.choose(group.voices);
                let lang = *r.choose(group.langs);
                let pool = texts
                    .get(lang)
                    .filter(|t| !t.is_empty())
                    .with_context(|| format!("no texts for language {lang}"))?;
                let text = r.choose(pool);
                let (speed, pitch) = (140 + r.below(51) as u32, 35 + r.below(31) as u32);
                let ch = if channels.is_empty() { Channel::Wideband } else { channels[r.weighted(&weights)].0 };
                let scratch = scratch.join(format!("{}_{i}.wav", group.name));
                let y = tts::speak(group.engine, voice, lang, text, speed, pitch, &scratch)?;
                let _ = std::fs::remove_file(&scratch);
                let trimmed = process::trim(&y, 35.0);
                process::windows(trimmed)
                    .into_iter()
                    .enumerate()
                    .map(|(w, c)| {
                        let name =
                            format!("{}__{}__{}_{voice}_{lang}_{i:05}_{w}.wav", group.name, ch.tag(), group.name);
                        Ok((name, process::normalize(&process::apply_channel(c, ch)?)))
                    })
                    .collect()
            })
            .collect();
        for r in results {
            match r {
                Ok(clips) => {
                    for (name, clip) in clips {
                        if made < target {
                            write_wav_pcm16(&dir.join(name), &clip, SR)?;
                            made += 1;
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(group = group.name, error = %format!("{e:#}"), "TTS utterance failed");
                    anyhow::ensure!(failures <= 8 + made, "{}: TTS keeps failing: {e:#}", group.name);
                }
            }
        }
    }
    Ok(made)
}
