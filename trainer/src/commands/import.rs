//! `vericlip-train import`: publish an ONNX model trained elsewhere (Keras, PyTorch, ... on the
//! same features) into the registry, as `fit` publishes its own.
//!
//! 1. Contract, read from the ONNX graph: one input `features` float32 `[batch, frames,
//!    n_features]` with the spec's frames and features (fixed or symbolic) and a dynamic batch;
//!    an output `fake_prob` float32 `[batch]` or `[batch, 1]`.
//! 2. Contract, run through ONNX Runtime (the service's `ModelSession`): the service's warm-up
//!    (zeros, batch 1) and a probe batch of 3 give one probability in 0..1 per segment, and
//!    batched scores equal one-at-a-time scores (the service batches segments of many requests).
//! 3. Normalization from `--normalization` (`{"mean": [...], "std": [...]}`) or fitted on the
//!    training split as `fit` does (no augmentation).
//! 4. Validation and test scores through ONNX Runtime; every score must be a probability; a
//!    validation AUC under 0.5 (P(real) instead of P(fake)?) refuses the model. Threshold at the
//!    validation EER, test metrics overall and per source (as `fit`).
//! 5. Atomic publish of the ONNX bytes unchanged, with a manifest (model.kind "imported", the
//!    file's name and sha256) and `report/{metrics.json, roc.png}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ndarray::Array3;
use serde::Serialize;
use vericlip_core::metrics;
use vericlip_core::registry::contract::{self, Declared};
use vericlip_core::registry::{self, Dim, Manifest, Provenance};
use vericlip_core::runtime::{ModelSession, ORT_VERSION};
use vericlip_core::{FeatureSpec, Normalizer};

use crate::commands::model::{self, PublishedAs};
use crate::data::{self, SplitCounts, SplitData};
use crate::eval::{self, Evaluation};
use crate::pipeline;
use crate::pipeline::publish::Release;

/// Largest |batched - one at a time| accepted on the probe batch.
pub const BATCH_TOLERANCE: f32 = 1e-4;
/// Segments in the probe batch.
const PROBE_BATCH: usize = 3;

pub struct ImportArgs {
    /// The ONNX model file.
    pub onnx: PathBuf,
    /// for-2sec dataset root (validation and testing are evaluated; training fits the normalizer
    /// when `normalization` is `None`).
    pub data: PathBuf,
    pub registry: PathBuf,
    pub name: String,
    /// JSON `{"mean": [...], "std": [...]}`, one entry per feature.
    pub normalization: Option<PathBuf>,
    /// JSON feature spec (all fields, as in a manifest's `feature_spec`); default spec if `None`.
    pub spec: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    /// Make the new version stable at once (else it is a candidate; see `commands::model`).
    pub promote: bool,
    pub progress: bool,
}

/// What the ONNX file declares, for people and the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct OnnxSource {
    /// The imported file's name (not its directory).
    pub onnx_file: String,
    pub sha256: String,
    pub bytes: usize,
    /// Producer, IR version, opsets, input and output as the file declares them.
    #[serde(flatten)]
    pub declared: Declared,
}

#[derive(Debug, Serialize)]
pub struct ImportSummary {
    /// Name, version, folder and threshold.
    #[serde(flatten)]
    pub release: Release,
    /// Whether the version serves (stable) or waits for a canary / promote (candidate).
    pub published_as: PublishedAs,
    pub source: OnnxSource,
    /// `"<file>"` when read from `--normalization`, else `"training split"`.
    pub normalization: String,
    /// Largest |batched - one at a time| score on the probe batch.
    pub probe_batch_max_abs_diff: f32,
    pub validation: Evaluation,
    pub test: Evaluation,
    pub splits: BTreeMap<String, SplitCounts>,
}

/// Checks the model's declared input and output against the serving contract and `spec`
/// (`vericlip_core::registry::contract`); the error says what does not match and what is needed.
pub fn check_declared_contract(onnx: &[u8], spec: &FeatureSpec) -> anyhow::Result<OnnxSource> {
    let declared = contract::check_onnx(onnx, spec)?;
    Ok(OnnxSource { onnx_file: String::new(), sha256: registry::sha256_hex(onnx), bytes: onnx.len(), declared })
}

/// Runs the model the way the service does: its warm-up (zeros, batch 1) and a probe batch whose
/// batched scores must equal one-at-a-time scores. Returns the largest batched/single difference.
pub fn probe(session: &mut ModelSession, spec: &FeatureSpec) -> anyhow::Result<f32> {
    let (frames, nf) = (spec.frames_per_segment(), spec.n_features());
    let check = |what: &str, scores: &[f32], n: usize| -> anyhow::Result<()> {
        if scores.len() != n {
            bail!(
                "{what}: the model returned {} values for {n} segment(s); it must return one P(fake) per segment",
                scores.len()
            );
        }
        if let Some(v) = scores.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            bail!(
                "{what}: the model returned {v}, not a probability in 0..1 (does it end in a Sigmoid? the output must be P(fake))"
            );
        }
        Ok(())
    };
    let run = |session: &mut ModelSession, x: &Array3<f32>, what: &str| -> anyhow::Result<Vec<f32>> {
        session.run(x.view()).with_context(|| {
            format!("{what}: ONNX Runtime could not run the model on [{}, {frames}, {nf}] float32", x.shape()[0])
        })
    };
    let zeros = Array3::<f32>::zeros((1, frames, nf));
    check("warm-up (zeros)", &run(session, &zeros, "warm-up (zeros)")?, 1)?;
    // Normalized features are roughly N(0, 1): a fixed pseudo-random batch in that range.
    let mut rng = crate::rng::Rng::new(0x1a9_0a7);
    let x = Array3::from_shape_fn((PROBE_BATCH, frames, nf), |_| rng.normal() as f32);
    let batched = run(session, &x, "probe batch")?;
    check("probe batch", &batched, PROBE_BATCH)?;
    let mut diff = 0f32;
    for (i, b) in batched.iter().enumerate() {
        let one = x.slice(ndarray::s![i..i + 1, .., ..]).to_owned();
        let single = run(session, &one, "probe segment")?;
        check("probe segment", &single, 1)?;
        diff = diff.max((single[0] - b).abs());
    }
    if diff > BATCH_TOLERANCE {
        bail!(
            "a segment's score depends on the other segments in its batch (differs by {diff} > {BATCH_TOLERANCE}); the server batches segments of different requests together"
        );
    }
    Ok(diff)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{what} {}", path.display()))
}

fn check_scores(scores: &[f32], d: &SplitData, split: &str) -> anyhow::Result<()> {
    if let Some(i) = scores.iter().position(|v| !(0.0..=1.0).contains(v)) {
        bail!(
            "{split}: the model scored {} (segment {i}) {}, not a probability in 0..1; the output must be P(fake) (does it end in a Sigmoid?)",
            d.files[d.file_of[i]].display(),
            scores[i]
        );
    }
    Ok(())
}

pub fn import(args: &ImportArgs) -> anyhow::Result<ImportSummary> {
    registry::validate_name(&args.name)?;
    let spec = match &args.spec {
        Some(p) => read_json::<FeatureSpec>(p, "--spec")?,
        None => FeatureSpec::default(),
    };
    spec.validate().context("the feature spec")?;
    let normalization = match &args.normalization {
        Some(p) => {
            let n = read_json::<Normalizer>(p, "--normalization")?;
            n.validate(spec.n_features()).with_context(|| format!("--normalization {}", p.display()))?;
            Some(n)
        }
        None => None,
    };

    // The contract first: a model that cannot serve is refused before any audio is read.
    let onnx = std::fs::read(&args.onnx).with_context(|| format!("reading {}", args.onnx.display()))?;
    let mut source =
        check_declared_contract(&onnx, &spec).with_context(|| format!("{} is refused", args.onnx.display()))?;
    source.onnx_file = args.onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut session = pipeline::export::session(&onnx)
        .with_context(|| format!("ONNX Runtime {ORT_VERSION} could not load {}", args.onnx.display()))?;
    let probe_diff = probe(&mut session, &spec).with_context(|| format!("{} is refused", args.onnx.display()))?;
    tracing::info!(input = %source.declared.input, output = %source.declared.output, probe_batch_max_abs_diff = probe_diff, "model contract ok");

    let needed: &[&'static str] =
        if normalization.is_some() { &["validation", "testing"] } else { &["training", "validation", "testing"] };
    let mut loaded = pipeline::data::load(&args.data, needed, &spec, args.cache.clone(), args.progress)?;
    let (norm_from, normalizer) = match normalization {
        Some(n) => (args.normalization.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), n),
        None => ("training split".to_string(), pipeline::normalize::fit(&spec, &loaded.take("training"))?),
    };
    let (mut val, mut test) = (loaded.take("validation"), loaded.take("testing"));
    pipeline::normalize::apply(&normalizer, [&mut val, &mut test]);

    let scores = pipeline::evaluate::score(&mut session, &val, &test)?;
    check_scores(&scores.validation, &val, "validation")?;
    check_scores(&scores.test, &test, "testing")?;
    if let Some(auc) = metrics::auc(&scores.validation, &val.labels)
        && auc < 0.5
    {
        bail!(
            "validation AUC is {auc:.3}, worse than chance: the output looks like P(real), not P(fake) (Vericlip's labels: real = 0, fake = 1); not publishing"
        );
    }
    let evaluated = pipeline::evaluate::evaluate(&scores, &val, &test);

    let provenance = Provenance {
        dataset_fingerprint: data::fingerprint(&args.data, needed)?,
        seed: 0,
        epochs: 0,
        trainer_version: format!("imported by vericlip-train {}", env!("CARGO_PKG_VERSION")),
        training_seconds: 0.0,
    };
    let mut manifest = Manifest::new(&args.name, spec.clone(), normalizer, evaluated.threshold, provenance);
    if source.declared.output_2d {
        manifest.output.shape = vec![Dim::Named("batch".into()), Dim::Fixed(1)];
    }
    manifest.metrics = evaluated.manifest_metrics();
    manifest.model = serde_json::json!({
        "kind": "imported",
        "imported": {
            "onnx_file": source.onnx_file,
            "sha256": source.sha256,
            "bytes": source.bytes,
            "producer": source.declared.producer,
            "ir_version": source.declared.ir_version,
            "opsets": source.declared.opsets,
            "declared_input": source.declared.input,
            "declared_output": source.declared.output,
        },
        "normalization": if args.normalization.is_some() { format!("from {}", source_name(args.normalization.as_deref())) } else { "fitted on the training split".into() },
        "dataset_fingerprint_splits": needed,
    });
    let plots = pipeline::publish::plots(&scores.test, &test, None)?;
    let (release, published_as) =
        model::publish_placed(&args.registry, &args.name, manifest, &onnx, &plots, args.promote)?;
    let summary = ImportSummary {
        release,
        published_as,
        source,
        normalization: norm_from,
        probe_batch_max_abs_diff: probe_diff,
        validation: evaluated.validation,
        test: evaluated.test,
        splits: loaded.counts,
    };
    pipeline::publish::report(&summary.release, &summary)?;
    Ok(summary)
}

/// A file's name without its directory, for manifests (no local paths).
fn source_name(p: Option<&Path>) -> String {
    p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The summary for people.
pub fn text(s: &ImportSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model {} ({} bytes, sha256 {})", s.source.onnx_file, s.source.bytes, s.source.sha256);
    let _ = writeln!(out, "  input  {}\n  output {}", s.source.declared.input, s.source.declared.output);
    let _ = writeln!(out, "  probe batch vs one at a time: {:.1e}", s.probe_batch_max_abs_diff);
    let _ = writeln!(out, "normalization: {}", s.normalization);
    for (split, c) in &s.splits {
        let _ = writeln!(out, "{split:<11} {c}");
    }
    let _ = writeln!(out, "validation:\n{}", eval::table(&s.validation));
    let _ = writeln!(out, "test:\n{}", eval::table(&s.test));
    let r = &s.release;
    let _ = writeln!(out, "{}", model::published_text(&r.name, r.version, &r.dir, s.published_as));
    out
}
