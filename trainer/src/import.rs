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
use prost::Message;
use serde::Serialize;
use vericlip_core::features::NormalizerFit;
use vericlip_core::metrics::{self, Metrics};
use vericlip_core::registry::{self, Dim, Manifest, Provenance, Published};
use vericlip_core::runtime::{self, INPUT_NAME, ModelSession, ORT_VERSION, OUTPUT_NAME};
use vericlip_core::{FeatureExtractor, FeatureSpec, Normalizer};

use crate::dataset::{self, FeatureCache, SplitCounts, SplitData};
use crate::evaluate::{self, Evaluation};
use crate::onnx::proto::{DimValue, ModelProto, ValueInfoProto};

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
    pub progress: bool,
}

/// What the ONNX file declares, for people and the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct OnnxSource {
    /// The imported file's name (not its directory).
    pub onnx_file: String,
    pub sha256: String,
    pub bytes: usize,
    pub producer: String,
    pub ir_version: i64,
    /// `domain:version` of every imported opset (`ai.onnx` for the default domain).
    pub opsets: Vec<String>,
    /// Declared input, e.g. `features [N, 126, 96] float32`.
    pub input: String,
    /// Declared output, e.g. `fake_prob [N] float32`.
    pub output: String,
    /// Whether the output is `[batch, 1]` (else `[batch]`).
    #[serde(skip)]
    pub output_2d: bool,
}

#[derive(Debug, Serialize)]
pub struct ImportSummary {
    pub name: String,
    pub version: u64,
    pub dir: PathBuf,
    pub threshold: f64,
    pub source: OnnxSource,
    /// `"<file>"` when read from `--normalization`, else `"training split"`.
    pub normalization: String,
    /// Largest |batched - one at a time| score on the probe batch.
    pub probe_batch_max_abs_diff: f32,
    pub validation: Evaluation,
    pub test: Evaluation,
    pub splits: BTreeMap<String, SplitCounts>,
}

fn elem_type_name(t: i32) -> String {
    match t {
        1 => "float32".into(),
        2 => "uint8".into(),
        3 => "int8".into(),
        5 => "int16".into(),
        6 => "int32".into(),
        7 => "int64".into(),
        9 => "bool".into(),
        10 => "float16".into(),
        11 => "float64".into(),
        16 => "bfloat16".into(),
        0 => "of unknown type".into(),
        t => format!("of element type {t}"),
    }
}

/// `None`: no shape declared. A dimension is `Ok(size)` when fixed, `Err(name)` when symbolic
/// (`"?"` when it has neither).
type Dims = Option<Vec<Result<i64, String>>>;

fn dims(v: &ValueInfoProto) -> Dims {
    let shape = v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(DimValue::Value(n)) => Ok(*n),
                Some(DimValue::Param(p)) if !p.is_empty() => Err(p.clone()),
                _ => Err("?".into()),
            })
            .collect(),
    )
}

fn elem_type(v: &ValueInfoProto) -> i32 {
    v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).map_or(0, |t| t.elem_type)
}

fn show_dims(d: &Dims) -> String {
    match d {
        None => "[no shape declared]".into(),
        Some(d) => format!(
            "[{}]",
            d.iter().map(|x| x.as_ref().map_or_else(Clone::clone, i64::to_string)).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn show(v: &ValueInfoProto) -> String {
    format!("{} {} {}", v.name, show_dims(&dims(v)), elem_type_name(elem_type(v)))
}

const RENAME_HINT: &str = "name them when exporting: torch.onnx.export(..., input_names=[\"features\"], \
     output_names=[\"fake_prob\"], dynamic_axes={\"features\": {0: \"batch\"}, \"fake_prob\": {0: \"batch\"}}); \
     tf2onnx: --rename-inputs/--rename-outputs";

/// Checks the model's declared input and output against the runtime contract and `spec`; the
/// error says what does not match and what is needed.
pub fn check_declared_contract(onnx: &[u8], spec: &FeatureSpec) -> anyhow::Result<OnnxSource> {
    let (frames, n_features) = (spec.frames_per_segment() as i64, spec.n_features() as i64);
    let need_in = format!("{INPUT_NAME} [batch, {frames}, {n_features}] float32 (batch dynamic)");
    let need_out = format!("{OUTPUT_NAME} [batch] or [batch, 1] float32, P(fake) in 0..1");
    let model = ModelProto::decode(onnx).map_err(|e| anyhow::anyhow!("not an ONNX model (protobuf: {e})"))?;
    let graph = model.graph.as_ref().context("not an ONNX model: it has no graph")?;
    // Before IR 4 initializers were listed as inputs too: they are not fed.
    let inputs: Vec<&ValueInfoProto> =
        graph.input.iter().filter(|i| !graph.initializer.iter().any(|t| t.name == i.name)).collect();
    let [input] = inputs.as_slice() else {
        bail!(
            "the model takes {} inputs ({}); Vericlip feeds exactly one: {need_in}",
            inputs.len(),
            inputs.iter().map(|i| show(i)).collect::<Vec<_>>().join("; ")
        );
    };
    if input.name != INPUT_NAME {
        bail!("the model's input is `{}`; Vericlip feeds {need_in}: {RENAME_HINT}", show(input));
    }
    let Some(output) = graph.output.iter().find(|o| o.name == OUTPUT_NAME) else {
        bail!(
            "the model has no output `{OUTPUT_NAME}` (its outputs: {}); Vericlip reads {need_out}: {RENAME_HINT}",
            graph.output.iter().map(show).collect::<Vec<_>>().join("; ")
        );
    };

    let in_dims = dims(input);
    let mut wrong = Vec::new();
    if elem_type(input) != 1 {
        wrong.push(format!("its element type is {}, not float32", elem_type_name(elem_type(input))));
    }
    match &in_dims {
        None => {} // no declared shape: the probe run decides
        Some(d) if d.len() != 3 => wrong.push(format!("it has {} dimensions, not 3", d.len())),
        Some(d) => {
            if let Ok(b) = d[0] {
                wrong.push(format!(
                    "its batch dimension is fixed at {b}; the server batches segments, so it must be dynamic"
                ));
            }
            if matches!(d[1], Ok(f) if f != frames) {
                wrong.push(format!("it has {} frames, the feature spec {frames}", show_dim(&d[1])));
            }
            if matches!(d[2], Ok(f) if f != n_features) {
                wrong.push(format!("it has {} features per frame, the feature spec {n_features}", show_dim(&d[2])));
            }
        }
    }
    if !wrong.is_empty() {
        bail!("the model's input `{}` does not fit: {}; Vericlip feeds {need_in}", show(input), wrong.join("; "));
    }

    let out_dims = dims(output);
    let mut wrong = Vec::new();
    if elem_type(output) != 1 {
        wrong.push(format!("its element type is {}, not float32", elem_type_name(elem_type(output))));
    }
    let mut output_2d = false;
    match &out_dims {
        None => {}
        Some(d) if d.is_empty() || d.len() > 2 => {
            wrong.push(format!("it has {} dimensions, not 1 ([batch]) or 2 ([batch, 1])", d.len()));
        }
        Some(d) => {
            if let Ok(b) = d[0] {
                wrong.push(format!("its batch dimension is fixed at {b}; it must be dynamic"));
            }
            if d.len() == 2 {
                output_2d = true;
                if matches!(d[1], Ok(n) if n != 1) {
                    wrong.push(format!("its second dimension is {}, not 1 (one P(fake) per segment)", show_dim(&d[1])));
                }
            }
        }
    }
    if !wrong.is_empty() {
        bail!("the model's output `{}` does not fit: {}; Vericlip reads {need_out}", show(output), wrong.join("; "));
    }
    if graph.output.len() > 1 {
        tracing::warn!(
            outputs = graph.output.len(),
            "the model has outputs besides `{OUTPUT_NAME}`; they are computed and ignored"
        );
    }
    Ok(OnnxSource {
        onnx_file: String::new(),
        sha256: registry::sha256_hex(onnx),
        bytes: onnx.len(),
        producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
        ir_version: model.ir_version,
        opsets: model
            .opset_import
            .iter()
            .map(|o| format!("{}:{}", if o.domain.is_empty() { "ai.onnx" } else { &o.domain }, o.version))
            .collect(),
        input: show(input),
        output: show(output),
        output_2d,
    })
}

fn show_dim(d: &Result<i64, String>) -> String {
    d.as_ref().map_or_else(Clone::clone, i64::to_string)
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
    let rt = runtime::init(None)?;
    let mut session = ModelSession::from_bytes(rt, &onnx)
        .with_context(|| format!("ONNX Runtime {ORT_VERSION} could not load {}", args.onnx.display()))?;
    let probe_diff = probe(&mut session, &spec).with_context(|| format!("{} is refused", args.onnx.display()))?;
    tracing::info!(input = %source.input, output = %source.output, probe_batch_max_abs_diff = probe_diff, "model contract ok");

    let ex = FeatureExtractor::new(spec.clone())?;
    let cache = FeatureCache::new(args.cache.clone(), &spec)?;
    let needed: &[&str] =
        if normalization.is_some() { &["validation", "testing"] } else { &["training", "validation", "testing"] };
    let mut splits = BTreeMap::new();
    let mut data = BTreeMap::new();
    for (split, (d, c)) in dataset::load_splits(&args.data, needed, &ex, &cache, args.progress)? {
        splits.insert(split.to_string(), c);
        data.insert(split, d);
    }
    let (norm_from, normalizer) = match normalization {
        Some(n) => (args.normalization.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), n),
        None => {
            let mut nf = NormalizerFit::new(spec.n_features());
            nf.add(&data["training"].features);
            ("training split".to_string(), nf.finish()?)
        }
    };
    let (mut val_d, mut test_d) =
        (data.remove("validation").unwrap_or_default(), data.remove("testing").unwrap_or_default());
    normalizer.apply(&mut val_d.features);
    normalizer.apply(&mut test_d.features);

    let val_scores = evaluate::score(&mut session, &val_d)?;
    check_scores(&val_scores, &val_d, "validation")?;
    let test_scores = evaluate::score(&mut session, &test_d)?;
    check_scores(&test_scores, &test_d, "testing")?;
    if let Some(auc) = metrics::auc(&val_scores, &val_d.labels)
        && auc < 0.5
    {
        bail!(
            "validation AUC is {auc:.3}, worse than chance: the output looks like P(real), not P(fake) (Vericlip's labels: real = 0, fake = 1); not publishing"
        );
    }
    let threshold = metrics::eer(&val_scores, &val_d.labels).map_or(0.5, |e| e.1).clamp(0.0, 1.0);
    let validation = evaluate::evaluate(&val_scores, &val_d, threshold);
    let test = evaluate::evaluate(&test_scores, &test_d, threshold);

    let mut manifest_metrics: BTreeMap<String, Metrics> = BTreeMap::new();
    manifest_metrics.insert("validation".into(), validation.overall.clone());
    manifest_metrics.insert("test".into(), test.overall.clone());
    for (src, m) in &test.per_source {
        manifest_metrics.insert(format!("test/{src}"), m.clone());
    }
    let provenance = Provenance {
        dataset_fingerprint: dataset::fingerprint(&args.data, needed)?,
        seed: 0,
        epochs: 0,
        trainer_version: format!("imported by vericlip-train {}", env!("CARGO_PKG_VERSION")),
        training_seconds: 0.0,
    };
    let mut manifest = Manifest::new(&args.name, spec.clone(), normalizer, threshold, provenance);
    if source.output_2d {
        manifest.output.shape = vec![Dim::Named("batch".into()), Dim::Fixed(1)];
    }
    manifest.metrics = manifest_metrics;
    manifest.model = serde_json::json!({
        "kind": "imported",
        "imported": {
            "onnx_file": source.onnx_file,
            "sha256": source.sha256,
            "bytes": source.bytes,
            "producer": source.producer,
            "ir_version": source.ir_version,
            "opsets": source.opsets,
            "declared_input": source.input,
            "declared_output": source.output,
        },
        "normalization": if args.normalization.is_some() { format!("from {}", source_name(args.normalization.as_deref())) } else { "fitted on the training split".into() },
        "dataset_fingerprint_splits": needed,
    });
    let mut summary = ImportSummary {
        name: args.name.clone(),
        version: 0,
        dir: PathBuf::new(),
        threshold,
        source,
        normalization: norm_from,
        probe_batch_max_abs_diff: probe_diff,
        validation,
        test,
        splits,
    };
    let mut report = vec![
        ("metrics.json".to_string(), serde_json::to_vec_pretty(&summary)?),
        ("roc.png".to_string(), crate::report::roc_png(&test_scores, &test_d.labels)?),
    ];
    report.extend(crate::report::family_roc_pngs(&test_scores, &test_d)?);
    let report: Vec<(&str, Vec<u8>)> = report.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let Published { version, dir, .. } = registry::publish(&args.registry, manifest, &onnx, &report)?;
    (summary.version, summary.dir) = (version, dir);
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
    let _ = writeln!(out, "  input  {}\n  output {}", s.source.input, s.source.output);
    let _ = writeln!(out, "  probe batch vs one at a time: {:.1e}", s.probe_batch_max_abs_diff);
    let _ = writeln!(out, "normalization: {}", s.normalization);
    for (split, c) in &s.splits {
        let _ = writeln!(out, "{split:<11} {c}");
    }
    let _ = writeln!(out, "validation:\n{}", evaluate::table(&s.validation));
    let _ = writeln!(out, "test:\n{}", evaluate::table(&s.test));
    let _ = writeln!(out, "published {} version {} at {}", s.name, s.version, s.dir.display());
    out
}
