//! `vericlip-train loeo`: leave-one-engine-out (LOEO) cross-validation.
//!
//! A detector is judged by the TTS engines it was *not* trained on: the next engine it meets
//! will be new. [`run`] trains one model per fake engine family (`crate::data::naming::family_of`)
//! with that family's fakes removed from training and validation (the stages of `fit`:
//! `crate::pipeline`'s data, normalizer, train, export and threshold; nothing is calibrated or
//! published) and scores it on the held-out family's fakes against all real test clips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use vericlip_core::metrics::{self, Metrics};
use vericlip_core::runtime;

use crate::augment::AugmentConfig;
use crate::data::{Composition, SplitData, composition, file_families, file_labels, subset};
use crate::eval;
use crate::model::train::TrainConfig;
use crate::pipeline::{self, Training};

pub struct LoeoArgs {
    pub data: PathBuf,
    /// Families to leave out (default: every fake family of the training split).
    pub families: Vec<String>,
    pub cache: Option<PathBuf>,
    /// Features, training and augmentation, as `fit`'s.
    pub training: Training,
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
    /// The two neural folds, the held-out headline (docs/MODEL_CARD.md, "Detection v3").
    pub neural: NeuralFolds,
    pub mean_detection_rate: Option<f64>,
    pub config: TrainConfig,
    pub augment: usize,
    pub augment_config: AugmentConfig,
}

/// The neural-TTS fold (`kokoro`) and the neural-vocoder fold (the mean of the
/// leave-one-vocoder-out folds, one per [`crate::data::naming::NEURAL_VOCODERS`] family run).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct NeuralFolds {
    pub neural_tts_eer: Option<f64>,
    pub neural_vocoder_eer: Option<f64>,
    /// Leave-one-vocoder-out folds in `neural_vocoder_eer`.
    pub neural_vocoder_folds: usize,
    /// Mean of the two above when both were run (the rule's first criterion).
    pub mean: Option<f64>,
}

impl NeuralFolds {
    /// From (left-out family, EER) of each fold.
    pub fn of<'a>(folds: impl Iterator<Item = (&'a str, Option<f64>)> + Clone) -> Self {
        let tts = folds.clone().find(|(f, _)| *f == "kokoro").and_then(|(_, e)| e);
        let vocoders: Vec<f64> =
            folds.filter(|(f, _)| crate::data::naming::is_neural_vocoder(f)).filter_map(|(_, e)| e).collect();
        let voc = mean(vocoders.iter().copied());
        Self {
            neural_tts_eer: tts,
            neural_vocoder_eer: voc,
            neural_vocoder_folds: vocoders.len(),
            mean: tts.zip(voc).map(|(a, b)| (a + b) / 2.0),
        }
    }
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Leave-one-engine-out cross-validation on a for-2sec dataset.
pub fn run(args: &LoeoArgs) -> anyhow::Result<LoeoSummary> {
    let t = &args.training;
    t.validate()?;
    let mut loaded = pipeline::data::load(
        &args.data,
        &["training", "validation", "testing"],
        &t.spec,
        args.cache.clone(),
        args.progress,
    )?;
    let splits = [loaded.take("training"), loaded.take("validation"), loaded.take("testing")];
    let training_families = composition(&splits[0]).fake_families;
    let families = families_to_leave_out(&args.families, &training_families)?;
    // Augmented copies as `fit` draws them (same stream), made once and filtered per fold.
    let augmented = pipeline::data::augmented(&args.data, &loaded.extractor, t)?;
    // ONNX Runtime must be there before the first fold trains.
    runtime::init(None)?;
    let mut folds = Vec::new();
    for family in &families {
        tracing::info!(family, "leave one engine out: training without it");
        let data = FoldData::leaving_out(family, &splits, augmented.as_ref())?;
        let fold = fold(family, data, t)?;
        tracing::info!(family, eer = ?fold.eer, detection_rate = fold.detection_rate, "left-out family scored");
        folds.push(fold);
    }
    Ok(LoeoSummary {
        data: args.data.clone(),
        training_families,
        mean_eer: mean(folds.iter().filter_map(|f| f.eer)),
        neural: NeuralFolds::of(folds.iter().map(|f| (f.left_out.as_str(), f.eer))),
        mean_detection_rate: mean(folds.iter().map(|f| f.detection_rate)),
        folds,
        config: t.config.clone(),
        augment: t.augment,
        augment_config: t.augment_config.clone(),
    })
}

/// `asked` (checked against the training split's families), or every family when it is empty.
fn families_to_leave_out(asked: &[String], training: &BTreeMap<String, usize>) -> anyhow::Result<Vec<String>> {
    let families: Vec<String> = if asked.is_empty() {
        training.keys().cloned().collect()
    } else {
        for f in asked {
            if !training.contains_key(f) {
                bail!(
                    "family {f} has no fakes in the training split (its families: {})",
                    training.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        asked.to_vec()
    };
    if families.is_empty() {
        bail!("the training split has no fake clips");
    }
    Ok(families)
}

/// A fold's splits (not yet normalized) and where its validation and test fakes came from.
struct FoldData {
    train: SplitData,
    val: SplitData,
    test: SplitData,
    validation_fakes_from: String,
    test_fakes_from: String,
}

impl FoldData {
    /// `splits` (training, validation, testing) without `family`'s fakes in training and
    /// validation, and with only that family's fakes (and every real clip) in the test.
    fn leaving_out(family: &str, splits: &[SplitData; 3], augmented: Option<&SplitData>) -> anyhow::Result<Self> {
        let [train_d, val_d, test_d] = splits;
        // Per file: is it a fake of the family being left out?
        let fakes_of = |d: &SplitData| -> Vec<bool> {
            file_families(d).iter().zip(file_labels(d)).map(|(fam, fake)| fake && fam == family).collect()
        };
        let (train_out, val_out, test_out) = (fakes_of(train_d), fakes_of(val_d), fakes_of(test_d));
        let (train_fake, test_fake) = (file_labels(train_d), file_labels(test_d));
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
        if let Some(a) = augmented {
            let aug_out = fakes_of(a);
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
        Ok(Self { train, val, test, validation_fakes_from, test_fakes_from })
    }
}

/// Trains the fold's model as `fit` does (without calibration and publishing) and scores it on
/// the left-out family.
fn fold(family: &str, data: FoldData, t: &Training) -> anyhow::Result<Fold> {
    let FoldData { mut train, mut val, mut test, validation_fakes_from, test_fakes_from } = data;
    let (training, validation) = (composition(&train), composition(&val));
    debug_assert!(!training.fake_families.contains_key(family));
    let normalizer = pipeline::normalize::fit(&t.spec, &train)?;
    pipeline::normalize::apply(&normalizer, [&mut train, &mut val, &mut test]);
    let model = pipeline::train::train(&t.spec, &normalizer, train, &val, &t.config, Some(family))?;
    let onnx = pipeline::export::export(&model.weights, &[("vericlip.loeo", family)]);
    let mut session = pipeline::export::session(&onnx).context("loading the fold's model in ONNX Runtime")?;
    let val_scores = eval::score(&mut session, &val)?;
    let threshold = pipeline::evaluate::threshold(&val_scores, &val);
    let scores = eval::score(&mut session, &test)?;
    let by_source = eval::evaluate(&scores, &test, threshold).per_source;
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
    Ok(Fold {
        left_out: family.to_string(),
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
        epochs: model.epochs(),
        best_epoch: model.best_epoch,
        training_seconds: model.seconds,
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
    let n = &s.neural;
    if n.neural_tts_eer.is_some() || n.neural_vocoder_eer.is_some() {
        out.push_str(&format!(
            "neural folds: tts (kokoro) eer {}, vocoders (mean of {}) eer {}, mean {}\n",
            pct(n.neural_tts_eer),
            n.neural_vocoder_folds,
            pct(n.neural_vocoder_eer),
            pct(n.mean)
        ));
    }
    out
}

#[cfg(test)]
mod neural_fold_tests {
    use super::NeuralFolds;

    #[test]
    fn neural_headline_is_the_mean_of_the_tts_fold_and_the_vocoder_folds_mean() {
        let folds = [
            ("espeak", Some(0.10)),
            ("kokoro", Some(0.20)),
            ("neural-vocoder-hifigan-universal", Some(0.30)),
            ("neural-vocoder-istft", Some(0.10)),
            ("neural-vocoder-hifigan-finetune", None),
        ];
        let n = NeuralFolds::of(folds.iter().map(|(f, e)| (*f, *e)));
        assert_eq!(n.neural_tts_eer, Some(0.20));
        assert_eq!(n.neural_vocoder_folds, 2);
        assert!((n.neural_vocoder_eer.unwrap() - 0.20).abs() < 1e-12);
        assert!((n.mean.unwrap() - 0.20).abs() < 1e-12);
        // Without a vocoder fold there is no headline mean.
        let only_tts = NeuralFolds::of(folds[..2].iter().map(|(f, e)| (*f, *e)));
        assert_eq!((only_tts.neural_vocoder_eer, only_tts.mean), (None, None));
    }
}
