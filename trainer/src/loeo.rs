//! Engine families and leave-one-engine-out (LOEO) cross-validation.
//!
//! A detector is judged by the TTS engines it was *not* trained on: the next engine it meets
//! will be new. [`family_of`] names the engine family of a fake clip from its file name (the
//! corpus writes `<group>__<channel>__<group>_<voice>_<lang>_<utt>_<window>.wav`, the group
//! being `<engine-ish stem>_<split>`, e.g. `espeak_train`, `fest_kal_train`, `flite_test`) and
//! the source of a real one. `eval` reports metrics per fake family (its fakes against all
//! reals of the split); [`run`] trains one model per family with that family's fakes removed
//! from training and validation (the same loading, augmentation, normalization, training,
//! ONNX export and ONNX Runtime scoring as `fit`, nothing published) and scores it on the
//! held-out family's fakes against all real test clips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use vericlip_core::features::NormalizerFit;
use vericlip_core::metrics::{self, Metrics};
use vericlip_core::runtime::{self, ModelSession};
use vericlip_core::{FeatureExtractor, FeatureSpec};

use crate::dataset::{self, FeatureCache, SplitData, source_of};
use crate::evaluate;
use crate::train::{self, TrainConfig};

/// Group-name stems (after the split suffix is removed, `-` read as `_`) and their families.
/// A stem matches an entry when it equals it or starts with it followed by `_`. Festival is
/// refined by voice (see [`festival_family`]).
const FAMILIES: &[(&str, &str)] = &[
    ("espeak_ng", "espeak"),
    ("espeak", "espeak"),
    ("flite", "flite"),
    ("mimic3", "mimic3"),
    ("mimic", "mimic"),
    ("kokoro", "kokoro"),
    ("vits", "vits"),
    ("xtts", "xtts"),
    ("coqui", "coqui"),
    ("tacotron", "tacotron"),
    ("vocoder_world", "vocoder-world"),
    ("world", "vocoder-world"),
    ("griffin_lim", "griffin-lim"),
    ("griffinlim", "griffin-lim"),
    ("lpc", "vocoder-lpc"),
    ("hifigan", "hifigan"),
    ("melgan", "melgan"),
    ("wavenet", "wavenet"),
];

/// Split suffixes the corpus appends to group names.
const SPLIT_SUFFIXES: &[&str] = &["_training", "_validation", "_testing", "_train", "_val", "_test"];

fn matches_stem(stem: &str, prefix: &str) -> bool {
    stem == prefix || stem.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('_'))
}

/// The voice in a corpus fake's name (`<group>__<channel>__<group>_<voice>_<lang>_<utt>_<w>.wav`),
/// if the name has that shape. Voices may contain `_` (`kal_diphone`).
fn voice_of(name: &str, group: &str) -> Option<String> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let tail = stem.split("__").nth(2)?.strip_prefix(group)?.strip_prefix('_')?;
    let parts: Vec<&str> = tail.rsplitn(4, '_').collect();
    (parts.len() == 4).then(|| parts[3].to_string())
}

/// Festival voices: `*_diphone` and the Czech `czech_*` voices (diphone concatenation), `*hts*` (HMM), `*_cg` / `*clunits*`
/// (cluster units); a name without a voice falls back to its stem (`fest_kal` -> kal, diphone).
fn festival_family(stem: &str, voice: Option<&str>) -> String {
    let v = voice.unwrap_or(stem).to_ascii_lowercase();
    let kind = if v.contains("hts") {
        "hts"
    } else if v.ends_with("_cg") || v.contains("clunits") || v.contains("arctic") {
        "clunits"
    } else if v.contains("diphone")
        || v.starts_with("czech_")
        || ["kal", "ked", "rab", "don"].iter().any(|d| matches_stem(stem, &format!("fest_{d}")))
    {
        "diphone"
    } else {
        return "festival".into();
    };
    format!("festival-{kind}")
}

/// The engine family of a fake clip (`fake = true`) or the source of a real one, from the file
/// name as the corpus writes it. Unknown fake groups map to `other:<stem>`.
pub fn family_of(path: &Path, fake: bool) -> String {
    let source = source_of(path);
    if !fake {
        return source;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = source.to_ascii_lowercase().replace('-', "_");
    let stem = SPLIT_SUFFIXES.iter().find_map(|s| lower.strip_suffix(s)).unwrap_or(&lower);
    if matches_stem(stem, "fest") || matches_stem(stem, "festival") {
        return festival_family(stem, voice_of(name, &source).as_deref());
    }
    match FAMILIES.iter().find(|(p, _)| matches_stem(stem, p)) {
        Some((_, family)) => (*family).to_string(),
        None => format!("other:{stem}"),
    }
}

/// Whether each file of a split is fake (every segment carries its file's label).
pub fn file_labels(data: &SplitData) -> Vec<bool> {
    let mut fake = vec![false; data.files.len()];
    for (i, &f) in data.file_of.iter().enumerate() {
        fake[f] |= data.labels[i];
    }
    fake
}

/// Family (fakes) or source (reals) of every file of a split.
pub fn file_families(data: &SplitData) -> Vec<String> {
    data.files.iter().zip(file_labels(data)).map(|(p, f)| family_of(p, f)).collect()
}

/// The segments of the files `keep` accepts (by file index), in order.
pub fn subset(data: &SplitData, keep: impl Fn(usize) -> bool) -> SplitData {
    let mut out = SplitData { frames: data.frames, n_features: data.n_features, ..Default::default() };
    let mut new_index = vec![usize::MAX; data.files.len()];
    for (f, path) in data.files.iter().enumerate() {
        if keep(f) {
            new_index[f] = out.files.len();
            out.files.push(path.clone());
        }
    }
    for i in 0..data.len() {
        let f = data.file_of[i];
        if new_index[f] != usize::MAX {
            out.features.extend_from_slice(data.segment(i));
            out.labels.push(data.labels[i]);
            out.sources.push(data.sources[i].clone());
            out.file_of.push(new_index[f]);
        }
    }
    out
}

/// Segments per real source and per fake family.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Composition {
    pub segments: usize,
    pub real: usize,
    pub fake: usize,
    pub real_sources: BTreeMap<String, usize>,
    pub fake_families: BTreeMap<String, usize>,
}

pub fn composition(data: &SplitData) -> Composition {
    let families = file_families(data);
    let mut c = Composition { segments: data.len(), ..Default::default() };
    for (i, &fake) in data.labels.iter().enumerate() {
        let fam = families[data.file_of[i]].clone();
        if fake {
            c.fake += 1;
            *c.fake_families.entry(fam).or_default() += 1;
        } else {
            c.real += 1;
            *c.real_sources.entry(fam).or_default() += 1;
        }
    }
    c
}

pub struct LoeoArgs {
    pub data: PathBuf,
    /// Families to leave out (default: every fake family of the training split).
    pub families: Vec<String>,
    pub cache: Option<PathBuf>,
    /// The model's input features, as `fit --features`.
    pub spec: FeatureSpec,
    pub config: TrainConfig,
    /// Augmented copies per training segment, as `fit --augment`.
    pub augment: usize,
    /// How they are made, as `fit`'s.
    pub augment_config: crate::augment::AugmentConfig,
    pub progress: bool,
}

/// One left-out family.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    pub left_out: String,
    /// What the model was trained on (augmented copies included): `fake_families` never holds
    /// `left_out`.
    pub training: Composition,
    pub validation: Composition,
    /// `validation` when the validation split still had fakes of other families; otherwise
    /// every 5th remaining training fake file was held back from training for validation.
    pub validation_fakes_from: String,
    /// Where the left-out family's fakes for the test came from: `testing`, or (when the test
    /// split has none) its training and validation files, which this fold never trained on.
    pub test_fakes_from: String,
    /// Threshold at the validation EER (0.5 when undefined), as `fit` sets it.
    pub threshold: f64,
    /// The left-out family's fakes against every real test clip, at `threshold`.
    pub test: Metrics,
    pub eer: Option<f64>,
    /// Share of the left-out family's fakes called fake at `threshold`.
    pub detection_rate: f64,
    /// Share of real test clips called fake at `threshold`.
    pub false_alarm_rate: f64,
    /// The same per real source (speaker or voice pack) of the test split: one hard speaker
    /// (e.g. a dull GSM recording) can carry most of `false_alarm_rate`, and this says which.
    pub false_alarms_by_source: BTreeMap<String, SourceFalseAlarms>,
    pub epochs: u32,
    pub best_epoch: u32,
    pub training_seconds: f64,
}

/// Real clips of one source and how many of them a fold called fake.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SourceFalseAlarms {
    pub reals: u64,
    pub called_fake: u64,
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoeoSummary {
    pub data: PathBuf,
    /// Fake families of the training split, segments each (before augmentation).
    pub training_families: BTreeMap<String, usize>,
    pub folds: Vec<Fold>,
    /// Mean over folds with a defined EER.
    pub mean_eer: Option<f64>,
    pub mean_detection_rate: Option<f64>,
    pub config: TrainConfig,
    pub augment: usize,
    pub augment_config: crate::augment::AugmentConfig,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Leave-one-engine-out cross-validation on a for-2sec dataset.
pub fn run(args: &LoeoArgs) -> anyhow::Result<LoeoSummary> {
    if args.augment > 0 {
        args.augment_config.validate()?;
    }
    let spec = args.spec.clone();
    let ex = FeatureExtractor::new(spec.clone())?;
    let cache = FeatureCache::new(args.cache.clone(), &spec)?;
    let splits: BTreeMap<&str, SplitData> =
        dataset::load_splits(&args.data, &["training", "validation", "testing"], &ex, &cache, args.progress)?
            .into_iter()
            .map(|(split, (d, _))| (split, d))
            .collect();
    let (train_d, val_d, test_d) = (&splits["training"], &splits["validation"], &splits["testing"]);
    let training_families = composition(train_d).fake_families;
    let families: Vec<String> = if args.families.is_empty() {
        training_families.keys().cloned().collect()
    } else {
        for f in &args.families {
            if !training_families.contains_key(f) {
                bail!(
                    "family {f} has no fakes in the training split (its families: {})",
                    training_families.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        args.families.clone()
    };
    if families.is_empty() {
        bail!("the training split has no fake clips");
    }
    // Augmented copies as `fit` draws them (same stream), made once and filtered per fold.
    let augmented = if args.augment > 0 {
        let rng = crate::rng::Rng::new(args.config.seed).fork(crate::fit::AUGMENT_STREAM);
        Some(dataset::augmented_split(&args.data.join("training"), &ex, args.augment, &args.augment_config, &rng)?)
    } else {
        None
    };
    let rt = runtime::init(None)?;
    // Per file: is it a fake of the family being left out?
    let fakes_of = |d: &SplitData, family: &str| -> Vec<bool> {
        file_families(d).iter().zip(file_labels(d)).map(|(fam, fake)| fake && fam == family).collect()
    };
    let (train_fake, test_fake) = (file_labels(train_d), file_labels(test_d));

    let mut folds = Vec::new();
    for family in &families {
        tracing::info!(family, "leave one engine out: training without it");
        let (train_out, val_out, test_out) =
            (fakes_of(train_d, family), fakes_of(val_d, family), fakes_of(test_d, family));
        let mut val = subset(val_d, |f| !val_out[f]);
        // Files of the training split held back for validation (when validation has no fakes left).
        let mut held_back: BTreeSet<PathBuf> = BTreeSet::new();
        let validation_fakes_from = if val.labels.iter().any(|l| *l) {
            "validation".to_string()
        } else {
            let candidates: Vec<usize> = (0..train_d.files.len()).filter(|&f| train_fake[f] && !train_out[f]).collect();
            held_back.extend(candidates.iter().step_by(5).map(|&f| train_d.files[f].clone()));
            val.extend(subset(train_d, |f| held_back.contains(&train_d.files[f])));
            tracing::warn!(
                family,
                held_back = held_back.len(),
                "validation has no other fakes: every 5th training fake file held back for validation"
            );
            "training (every 5th fake file held back)".to_string()
        };
        let mut train = subset(train_d, |f| !train_out[f] && !held_back.contains(&train_d.files[f]));
        if let Some(a) = &augmented {
            let aug_out = fakes_of(a, family);
            train.extend(subset(a, |f| !aug_out[f] && !held_back.contains(&a.files[f])));
        }
        if !train.labels.iter().any(|l| *l) {
            bail!("leaving out {family} leaves no fakes to train on");
        }
        let mut test = subset(test_d, |f| !test_fake[f] || test_out[f]);
        let test_fakes_from = if test.labels.iter().any(|l| *l) {
            "testing".to_string()
        } else {
            // Never trained on in this fold: the family's own training and validation files.
            test.extend(subset(train_d, |f| train_out[f]));
            test.extend(subset(val_d, |f| val_out[f]));
            "training+validation (absent from testing)".to_string()
        };
        let (training, validation) = (composition(&train), composition(&val));
        debug_assert!(!training.fake_families.contains_key(family));

        let mut nf = NormalizerFit::new(spec.n_features());
        nf.add(&train.features);
        let normalizer = nf.finish()?;
        for d in [&mut train, &mut val, &mut test] {
            normalizer.apply(&mut d.features);
        }
        // With the excitation block, as `fit`: the LSTM trains without it, the branch is fitted on
        // the fold's real speech, and the fold's model is scored on the full-width splits.
        let exc = crate::excitation::Columns::of(&spec, &normalizer)?;
        let exc_stats = exc.as_ref().map(|x| (x.stats(&train), x.stats(&val)));
        let mut lstm_train = train;
        let mut narrow_val = None;
        if let Some(x) = &exc {
            x.drop_from(&mut lstm_train);
            let mut v = val.clone();
            x.drop_from(&mut v);
            narrow_val = Some(v);
        }
        let lstm_val = narrow_val.as_ref().unwrap_or(&val);
        let outcome = train::train(&lstm_train, lstm_val, &args.config, |e| {
            tracing::info!(family, epoch = e.epoch, train_loss = e.train_loss, val_loss = e.val_loss, "epoch");
        })?;
        let mut weights = outcome.weights.clone();
        if let (Some(x), Some((st, sv))) = (&exc, &exc_stats) {
            weights.excitation = Some(x.fit(st, &lstm_train.labels, sv, &val.labels)?);
        }
        drop((lstm_train, narrow_val));
        let onnx = crate::onnx::export_lstm_classifier(&weights, &[("vericlip.loeo", family.as_str())]);
        let mut session = ModelSession::from_bytes(rt, &onnx).context("loading the fold's model in ONNX Runtime")?;
        let val_scores = evaluate::score(&mut session, &val)?;
        let threshold = metrics::eer(&val_scores, &val.labels).map_or(0.5, |e| e.1).clamp(0.0, 1.0);
        let scores = evaluate::score(&mut session, &test)?;
        let by_source = evaluate::evaluate(&scores, &test, threshold).per_source;
        let false_alarms_by_source = by_source
            .into_iter()
            .filter(|(_, m)| m.confusion.tp + m.confusion.fn_ == 0)
            .map(|(source, m)| {
                let (reals, called_fake) = (m.confusion.fp + m.confusion.tn, m.confusion.fp);
                (source, SourceFalseAlarms { reals, called_fake, rate: ratio(called_fake, reals) })
            })
            .collect();
        let m = metrics::metrics(&scores, &test.labels, threshold);
        let c = m.confusion;
        let fold = Fold {
            left_out: family.clone(),
            training,
            validation,
            validation_fakes_from,
            test_fakes_from,
            threshold,
            eer: m.eer,
            detection_rate: ratio(c.tp, c.tp + c.fn_),
            false_alarm_rate: ratio(c.fp, c.fp + c.tn),
            false_alarms_by_source,
            test: m,
            epochs: outcome.history.len() as u32,
            best_epoch: outcome.best_epoch,
            training_seconds: outcome.seconds,
        };
        tracing::info!(family, eer = ?fold.eer, detection_rate = fold.detection_rate, "left-out family scored");
        folds.push(fold);
    }
    Ok(LoeoSummary {
        data: args.data.clone(),
        training_families,
        mean_eer: mean(folds.iter().filter_map(|f| f.eer)),
        mean_detection_rate: mean(folds.iter().map(|f| f.detection_rate)),
        folds,
        config: args.config.clone(),
        augment: args.augment,
        augment_config: args.augment_config.clone(),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A fixed-width table for people.
pub fn table(s: &LoeoSummary) -> String {
    let pct = |v: Option<f64>| v.map_or("    -".to_string(), |v| format!("{:5.1}", 100.0 * v));
    let mut out = format!(
        "{:<24}{:>8}{:>8}{:>8}{:>8}{:>8}{:>10}{:>8}   test fakes from (%)\n",
        "left-out family", "fakes", "reals", "eer", "auc", "detect", "false-al", "thresh"
    );
    for f in &s.folds {
        let c = f.test.confusion;
        out.push_str(&format!(
            "{:<24}{:>8}{:>8}{:>8}{:>8}{:>8}{:>10}{:>8.4}   {}\n",
            f.left_out,
            c.tp + c.fn_,
            c.fp + c.tn,
            pct(f.eer),
            pct(f.test.auc),
            pct(Some(f.detection_rate)),
            pct(Some(f.false_alarm_rate)),
            f.threshold,
            f.test_fakes_from
        ));
    }
    out.push_str(&format!(
        "{:<24}{:>8}{:>8}{:>8}{:>8}{:>8}\n",
        "mean",
        "",
        "",
        pct(s.mean_eer),
        "",
        pct(s.mean_detection_rate)
    ));
    out
}
