//! `vericlip-train fit`: the whole procedure (`crate::pipeline`) on a for-2sec dataset:
//! features and augmented copies -> normalizer (training split only) -> LSTM (and excitation
//! branch) with early stopping -> Platt calibration -> ONNX export and parity check -> threshold
//! at the validation EER -> test metrics (per source, per family) -> publish -> report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use vericlip_core::registry::{self, Manifest, Provenance};

use crate::augment::AugmentConfig;
use crate::commands::model::{self, PublishedAs};
use crate::data::{self, SplitCounts};
use crate::eval::Evaluation;
use crate::model::excitation;
use crate::model::train::{EpochStats, TrainConfig};
use crate::pipeline::calibrate::CalibrationSummary;
use crate::pipeline::publish::Release;
use crate::pipeline::train::Trained;
use crate::pipeline::{self, Training};

pub struct FitArgs {
    pub data: PathBuf,
    pub registry: PathBuf,
    pub name: String,
    pub cache: Option<PathBuf>,
    pub training: Training,
    /// Make the new version stable at once (else it is a candidate; see `commands::model`).
    pub promote: bool,
    pub progress: bool,
}

#[derive(Debug, Serialize)]
pub struct FitSummary {
    /// Name, version, folder and threshold.
    #[serde(flatten)]
    pub release: Release,
    /// Whether the version serves (stable) or waits for a canary / promote (candidate).
    pub published_as: PublishedAs,
    pub validation: Evaluation,
    pub test: Evaluation,
    pub epochs: u32,
    pub best_epoch: u32,
    pub training_seconds: f64,
    pub parity_max_abs_diff: f32,
    pub calibration: CalibrationSummary,
    pub splits: BTreeMap<String, SplitCounts>,
    pub config: TrainConfig,
    pub augment: usize,
    pub augment_config: AugmentConfig,
    pub history: Vec<EpochStats>,
}

const SPLITS: [&str; 3] = ["training", "validation", "testing"];

pub fn fit(args: &FitArgs) -> anyhow::Result<FitSummary> {
    registry::validate_name(&args.name)?;
    let t = &args.training;
    t.validate()?;
    // ONNX Runtime (export, parity, the test split) must be there before minutes of training.
    vericlip_core::runtime::init(None)?;
    let mut loaded = pipeline::data::load(&args.data, &SPLITS, &t.spec, args.cache.clone(), args.progress)?;
    let (mut train, mut val, mut test) = (loaded.take("training"), loaded.take("validation"), loaded.take("testing"));
    if let Some(extra) = pipeline::data::augmented(&args.data, &loaded.extractor, t)? {
        train.extend(extra);
    }
    let normalizer = pipeline::normalize::fit(&t.spec, &train)?;
    pipeline::normalize::apply(&normalizer, [&mut train, &mut val, &mut test]);

    let mut model = pipeline::train::train(&t.spec, &normalizer, train, &val, &t.config, None)?;
    let calibration = pipeline::calibrate::calibrate(&mut model, &val, &test)?;

    let onnx = pipeline::export::export(&model.weights, &[("vericlip.name", args.name.as_str())]);
    let mut session = pipeline::export::session(&onnx).context("loading the exported model in ONNX Runtime")?;
    let parity = pipeline::export::parity(&model.weights, &mut session, &val)?;
    let scores = pipeline::evaluate::score(&mut session, &val, &test)?;
    let evaluated = pipeline::evaluate::evaluate(&scores, &val, &test);

    let provenance = Provenance {
        dataset_fingerprint: data::fingerprint(&args.data, &SPLITS)?,
        seed: t.config.seed,
        epochs: model.epochs(),
        trainer_version: env!("CARGO_PKG_VERSION").into(),
        training_seconds: model.seconds,
    };
    let mut manifest = Manifest::new(&args.name, t.spec.clone(), normalizer.clone(), evaluated.threshold, provenance);
    manifest.metrics = evaluated.manifest_metrics();
    manifest.model = model_description(t, &model, &calibration);
    let plots = pipeline::publish::plots(&scores.test, &test, Some(&model.history))?;
    let (release, published_as) =
        model::publish_placed(&args.registry, &args.name, manifest, &onnx, &plots, args.promote)?;
    let summary = FitSummary {
        release,
        published_as,
        validation: evaluated.validation,
        test: evaluated.test,
        epochs: model.epochs(),
        best_epoch: model.best_epoch,
        training_seconds: model.seconds,
        parity_max_abs_diff: parity,
        calibration,
        splits: loaded.counts,
        config: t.config.clone(),
        augment: t.augment,
        augment_config: t.augment_config.clone(),
        history: model.history,
    };
    pipeline::publish::report(&summary.release, &summary)?;
    Ok(summary)
}

/// The manifest's `model`: what was trained and how.
fn model_description(t: &Training, model: &Trained, calibration: &CalibrationSummary) -> serde_json::Value {
    let c = &t.config;
    let head = crate::model::LstmRecipe::describe_head(c.head, c.bidirectional, c.conv);
    let mut description = serde_json::json!({
        "kind": "lstm_classifier",
        "layers": 1,
        "hidden": c.hidden,
        "head": head,
        "pooling": c.head,
        "bidirectional": c.bidirectional,
        "input_norm": if c.segment_mean_norm { "per-segment mean frame subtracted (CMN)" } else { "none" },
        "onnx": {"ir_version": 8, "opset": 17},
        "calibration": calibration,
        "training": {"optimizer": "adam", "learning_rate": c.learning_rate, "clip_norm": c.clip_norm, "batch": c.batch,
                      "max_epochs": c.max_epochs, "patience": c.patience, "best_epoch": model.best_epoch,
                      "augmentation": if t.augment > 0 {
                          t.augment_config.provenance(t.augment)
                      } else { serde_json::json!("none") }},
    });
    if let Some(m) = description.as_object_mut() {
        if let Some((e, lstm_input)) = model.weights.excitation() {
            m.insert(
                "excitation_branch".into(),
                serde_json::json!({
                    "what": "one-class detector on the excitation block, fitted on real speech; the segment's logit is max(LSTM, branch)",
                    "lstm_input": lstm_input,
                    "false_alarms_on_validation_reals": excitation::FALSE_ALARMS,
                    "slope_per_sd": excitation::SLOPE_PER_SD,
                    "loud_mid": e.loud_mid, "center": e.center, "slope": e.slope, "bias": e.bias,
                }),
            );
        }
        if let Some((channels, kernel)) = c.conv {
            m.insert(
                "conv_front_end".into(),
                serde_json::json!({"channels": channels, "kernel": kernel, "activation": "relu"}),
            );
        }
        if c.objectives() {
            m.insert(
                "training_objectives".into(),
                serde_json::json!({
                    "paired_batches": c.paired_batches,
                    "family_weight": c.family_weight,
                    "oc_softmax": {"weight": c.oc_softmax, "margin_real": crate::model::objectives::OC_MARGIN_REAL,
                                   "margin_fake": crate::model::objectives::OC_MARGIN_FAKE, "scale": crate::model::objectives::OC_SCALE},
                    "pair_contrast": {"weight": c.pair_contrast, "margin": crate::model::objectives::PAIR_MARGIN},
                    "exported": "no: the objectives' parameters are dropped after training",
                }),
            );
        }
        if c.feature_mask > 0 || c.time_mask > 0 {
            m.insert(
                "training_masks".into(),
                serde_json::json!({"max_feature_columns": c.feature_mask, "max_frames": c.time_mask}),
            );
        }
    }
    description
}
