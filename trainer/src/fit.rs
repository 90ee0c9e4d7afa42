//! `vericlip-train fit`: features (parallel, cached) -> normalizer (training split only) -> LSTM
//! training with early stopping -> ONNX export -> parity check of ONNX Runtime against the
//! trainer's own forward pass -> threshold at the validation EER -> test metrics (per source) ->
//! atomic publish with manifest and report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use vericlip_core::features::NormalizerFit;
use vericlip_core::metrics::{self, Metrics};
use vericlip_core::registry::{self, Manifest, Provenance, Published};
use vericlip_core::runtime::{self, ModelSession};
use vericlip_core::{FeatureExtractor, FeatureSpec};

use crate::augment::AugmentConfig;
use crate::calibrate;
use crate::dataset::{self, FeatureCache, Skipped, SplitCounts, SplitData};
use crate::evaluate::{self, Evaluation};
use crate::excitation;
use crate::train::{self, EpochStats, TrainConfig};

/// Largest |ORT - trainer| accepted on validation segments before publishing.
pub const PARITY_TOLERANCE: f32 = 1e-4;
/// Validation segments used for the parity check.
const PARITY_SEGMENTS: usize = 256;

pub struct FitArgs {
    pub data: PathBuf,
    pub registry: PathBuf,
    pub name: String,
    pub cache: Option<PathBuf>,
    /// The model's input features (recorded in the manifest; the server computes the same).
    pub spec: FeatureSpec,
    pub config: TrainConfig,
    /// Augmented copies of each training segment added to the training set (0: none).
    pub augment: usize,
    /// How the copies are made (kinds, probabilities, codecs).
    pub augment_config: AugmentConfig,
    pub progress: bool,
}

#[derive(Debug, Serialize)]
pub struct FitSummary {
    pub name: String,
    pub version: u64,
    pub dir: PathBuf,
    pub threshold: f64,
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

/// Platt scaling fitted on validation and folded into the model (see `calibrate`), with the
/// expected calibration error of segment scores before and after.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationSummary {
    pub method: &'static str,
    pub fitted_on: &'static str,
    pub a: f64,
    pub c: f64,
    pub validation_ece_before: f64,
    pub validation_ece_after: f64,
    pub test_ece_before: f64,
    pub test_ece_after: f64,
}

/// The random stream augmentation draws from (a fork of the training seed), shared with `loeo`
/// so a fold's augmented copies are the ones `fit` would make.
pub const AUGMENT_STREAM: u64 = 0xa06;

pub fn fit(args: &FitArgs) -> anyhow::Result<FitSummary> {
    registry::validate_name(&args.name)?;
    if args.augment > 0 {
        // Before any features: a missing codec must not surface mid-run.
        args.augment_config.validate()?;
    }
    let spec = args.spec.clone();
    let ex = FeatureExtractor::new(spec.clone())?;
    let cache = FeatureCache::new(args.cache.clone(), &spec)?;
    let mut splits = BTreeMap::new();
    let mut data = BTreeMap::new();
    for (split, (d, c)) in
        dataset::load_splits(&args.data, &["training", "validation", "testing"], &ex, &cache, args.progress)?
    {
        splits.insert(split.to_string(), c);
        data.insert(split, d);
    }
    let (mut train_d, mut val_d, mut test_d) = (
        data.remove("training").unwrap_or_default(),
        data.remove("validation").unwrap_or_default(),
        data.remove("testing").unwrap_or_default(),
    );
    if args.augment > 0 {
        let rng = crate::rng::Rng::new(args.config.seed).fork(AUGMENT_STREAM);
        let extra =
            dataset::augmented_split(&args.data.join("training"), &ex, args.augment, &args.augment_config, &rng)?;
        tracing::info!(copies = args.augment, segments = extra.len(), "augmented training segments");
        train_d.extend(extra);
    }

    // Normalization statistics from the training split only (augmented copies included: they are
    // what the model is fitted to).
    let mut nf = NormalizerFit::new(spec.n_features());
    nf.add(&train_d.features);
    let normalizer = nf.finish()?;
    for d in [&mut train_d, &mut val_d, &mut test_d] {
        normalizer.apply(&mut d.features);
    }
    // With the excitation block: its statistics per segment, the LSTM's splits without it, and
    // the full-width validation and test splits kept for ONNX Runtime.
    let exc = excitation::Columns::of(&spec, &normalizer)?;
    let mut full = None;
    if let Some(x) = &exc {
        let stats = [x.stats(&train_d), x.stats(&val_d), x.stats(&test_d)];
        full = Some((val_d.clone(), test_d.clone(), stats));
        for d in [&mut train_d, &mut val_d, &mut test_d] {
            x.drop_from(d);
        }
    }

    let outcome = train::train(&train_d, &val_d, &args.config, |e| {
        tracing::info!(
            epoch = e.epoch,
            train_loss = e.train_loss,
            val_loss = e.val_loss,
            val_eer = e.val_eer,
            seconds = e.seconds,
            "epoch"
        );
    })?;

    // Calibration on validation (Platt), folded into the dense layer before export.
    let mut weights = outcome.weights.clone();
    let (mut val_logits, mut test_logits) = (train::logits(&weights, &val_d)?, train::logits(&weights, &test_d)?);
    if let (Some(x), Some((full_val, full_test, [st, sv, ste]))) = (&exc, full) {
        let branch = x.fit(&st, &train_d.labels, &sv, &val_d.labels)?;
        weights.excitation = Some(branch);
        excitation::fuse(&mut val_logits, &sv, &branch);
        excitation::fuse(&mut test_logits, &ste, &branch);
        (val_d, test_d) = (full_val, full_test);
    }
    drop(train_d);
    let platt = calibrate::fit_platt(&val_logits, &val_d.labels);
    // Folding Platt into max(LSTM, branch) needs a positive slope (a model whose scores rank
    // real above fake on validation has nothing to publish anyway).
    anyhow::ensure!(
        weights.excitation.is_none() || platt.a > 0.0,
        "Platt slope {} on validation is not positive: the model ranks validation reals above fakes",
        platt.a
    );
    weights.calibrate(platt);
    let ece = |z: &[f64], labels: &[bool], p: calibrate::Platt| {
        calibrate::ece(&z.iter().map(|&v| p.apply(v)).collect::<Vec<_>>(), labels)
    };
    let calibration = CalibrationSummary {
        method: "platt",
        fitted_on: "validation segments",
        a: platt.a,
        c: platt.c,
        validation_ece_before: ece(&val_logits, &val_d.labels, calibrate::Platt::IDENTITY),
        validation_ece_after: ece(&val_logits, &val_d.labels, platt),
        test_ece_before: ece(&test_logits, &test_d.labels, calibrate::Platt::IDENTITY),
        test_ece_after: ece(&test_logits, &test_d.labels, platt),
    };
    tracing::info!(
        a = platt.a,
        c = platt.c,
        val_ece_before = calibration.validation_ece_before,
        val_ece_after = calibration.validation_ece_after,
        "calibration (Platt, validation)"
    );

    let onnx = crate::onnx::export_lstm_classifier(&weights, &[("vericlip.name", args.name.as_str())]);
    let rt = runtime::init(None)?;
    let mut session = ModelSession::from_bytes(rt, &onnx).context("loading the exported model in ONNX Runtime")?;

    // Parity: the exported graph must compute what the trainer computed.
    let idx: Vec<usize> = (0..val_d.len().min(PARITY_SEGMENTS)).collect();
    let ours = train::predict(&weights, &val_d, &idx)?;
    let sub = SplitData {
        features: val_d.features[..idx.len() * val_d.frames * val_d.n_features].to_vec(),
        labels: val_d.labels[..idx.len()].to_vec(),
        ..SplitData::empty(&spec)
    };
    let theirs = evaluate::score(&mut session, &sub)?;
    let parity = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    tracing::info!(max_abs_diff = parity, segments = idx.len(), "ONNX Runtime vs trainer parity");
    if parity > PARITY_TOLERANCE {
        bail!(
            "ONNX Runtime differs from the trainer by {parity} (> {PARITY_TOLERANCE}) on validation segments; not publishing"
        );
    }

    let val_scores = evaluate::score(&mut session, &val_d)?;
    let threshold = metrics::eer(&val_scores, &val_d.labels).map_or(0.5, |e| e.1).clamp(0.0, 1.0);
    let validation = evaluate::evaluate(&val_scores, &val_d, threshold);
    let test_scores = evaluate::score(&mut session, &test_d)?;
    let test = evaluate::evaluate(&test_scores, &test_d, threshold);

    let mut manifest_metrics: BTreeMap<String, Metrics> = BTreeMap::new();
    manifest_metrics.insert("validation".into(), validation.overall.clone());
    manifest_metrics.insert("test".into(), test.overall.clone());
    for (src, m) in &test.per_source {
        manifest_metrics.insert(format!("test/{src}"), m.clone());
    }
    let epochs = outcome.history.len() as u32;
    let provenance = Provenance {
        dataset_fingerprint: dataset::fingerprint(&args.data, &["training", "validation", "testing"])?,
        seed: args.config.seed,
        epochs,
        trainer_version: env!("CARGO_PKG_VERSION").into(),
        training_seconds: outcome.seconds,
    };
    let mut manifest = Manifest::new(&args.name, spec.clone(), normalizer.clone(), threshold, provenance);
    manifest.metrics = manifest_metrics;
    let head = crate::model::LstmClassifierWeights::describe_head(
        args.config.head,
        args.config.bidirectional,
        args.config.conv,
    );
    manifest.model = serde_json::json!({
        "kind": "lstm_classifier",
        "layers": 1,
        "hidden": args.config.hidden,
        "head": head,
        "pooling": args.config.head,
        "bidirectional": args.config.bidirectional,
        "input_norm": if args.config.segment_mean_norm { "per-segment mean frame subtracted (CMN)" } else { "none" },
        "onnx": {"ir_version": 8, "opset": 17},
        "calibration": calibration,
        "training": {"optimizer": "adam", "learning_rate": args.config.learning_rate, "clip_norm": args.config.clip_norm, "batch": args.config.batch,
                      "max_epochs": args.config.max_epochs, "patience": args.config.patience, "best_epoch": outcome.best_epoch,
                      "augmentation": if args.augment > 0 {
                          args.augment_config.provenance(args.augment)
                      } else { serde_json::json!("none") }},
    });
    if let Some(model) = manifest.model.as_object_mut() {
        if let Some(e) = &weights.excitation {
            model.insert(
                "excitation_branch".into(),
                serde_json::json!({
                    "what": "one-class detector on the excitation block, fitted on real speech; the segment's logit is max(LSTM, branch)",
                    "lstm_input": weights.input,
                    "false_alarms_on_validation_reals": excitation::FALSE_ALARMS,
                    "slope_per_sd": excitation::SLOPE_PER_SD,
                    "loud_mid": e.loud_mid, "center": e.center, "slope": e.slope, "bias": e.bias,
                }),
            );
        }
        if let Some((channels, kernel)) = args.config.conv {
            model.insert(
                "conv_front_end".into(),
                serde_json::json!({"channels": channels, "kernel": kernel, "activation": "relu"}),
            );
        }
        let (feature_mask, time_mask) = (args.config.feature_mask, args.config.time_mask);
        if feature_mask > 0 || time_mask > 0 {
            model.insert(
                "training_masks".into(),
                serde_json::json!({"max_feature_columns": feature_mask, "max_frames": time_mask}),
            );
        }
    }
    let mut summary = FitSummary {
        name: args.name.clone(),
        version: 0,
        dir: PathBuf::new(),
        threshold,
        validation,
        test,
        epochs,
        best_epoch: outcome.best_epoch,
        training_seconds: outcome.seconds,
        parity_max_abs_diff: parity,
        calibration,
        splits,
        config: args.config.clone(),
        augment: args.augment,
        augment_config: args.augment_config.clone(),
        history: outcome.history,
    };
    let mut report = vec![
        ("metrics.json".to_string(), serde_json::to_vec_pretty(&summary)?),
        ("roc.png".to_string(), crate::report::roc_png(&test_scores, &test_d.labels)?),
        ("training.png".to_string(), crate::report::training_png(&summary.history)?),
    ];
    report.extend(crate::report::family_roc_pngs(&test_scores, &test_d)?);
    let report: Vec<(&str, Vec<u8>)> = report.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let Published { version, dir, .. } = registry::publish(&args.registry, manifest, &onnx, &report)?;
    (summary.version, summary.dir) = (version, dir);
    Ok(summary)
}

/// Where features are cached unless `--cache` says otherwise.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|c| c.join("vericlip").join("features"))
}

/// `vericlip-train eval`: a published version scored through ONNX Runtime on a dataset.
pub fn eval(
    model_dir: &Path,
    data: &Path,
    split: &str,
    cache: Option<PathBuf>,
    with_segments: bool,
    progress: bool,
) -> anyhow::Result<(Evaluation, Vec<Skipped>)> {
    let loaded = registry::load_version(model_dir)?;
    let m = &loaded.manifest;
    let ex = FeatureExtractor::new(m.feature_spec.clone())?;
    let cache = FeatureCache::new(cache, &m.feature_spec)?;
    let dir = if data.join(split).is_dir() { data.join(split) } else { data.to_path_buf() };
    let (mut d, skipped) = dataset::load_split(&dir, &ex, &cache, progress)?;
    if d.is_empty() {
        bail!("{}: no readable audio under real/ or fake/", dir.display());
    }
    m.normalization.apply(&mut d.features);
    let rt = runtime::init(None)?;
    let mut session = ModelSession::from_bytes(rt, &loaded.model_onnx)?;
    let scores = evaluate::score(&mut session, &d)?;
    let mut e = evaluate::evaluate(&scores, &d, m.threshold);
    if with_segments {
        e.segments = evaluate::segment_scores(&scores, &d, m.threshold);
    }
    Ok((e, skipped))
}
