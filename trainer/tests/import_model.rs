//! `vericlip-train import` through its binary: models built in Python with `onnx`
//! (tests/import/make_model.py, the venv of scripts/setup.sh with tests/import/requirements.txt)
//! are imported on a small synthetic for-2sec dataset. The published versions must load as the
//! server loads them, score clips exactly as core's pipeline and an independent f64 forward pass
//! do, and agree with `eval`; models that break the contract are refused, naming what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Array3;
use serde_json::Value;
use vericlip_core::audio::{AudioLimits, load_file, write_wav_pcm16};
use vericlip_core::registry::{self, Dim};
use vericlip_core::runtime::{self, ModelSession};
use vericlip_core::{FeatureExtractor, FeatureSpec};

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs make_model.py; a missing venv or `onnx` fails the test (never skips it).
fn make_model(out: &Path, extra: &[&str]) {
    let python = root_dir().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh (its venv must include tests/import/requirements.txt)",
        python.display()
    );
    let o =
        Command::new(&python).arg(root_dir().join("tests/import/make_model.py")).arg(out).args(extra).output().unwrap();
    assert!(
        o.status.success(),
        "make_model.py failed (is `onnx` installed? .venv/bin/python -m pip install -r tests/import/requirements.txt):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn import(onnx: &Path, data: &Path, registry: &Path, cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .args(["import", "--json", "--name", "byo"])
        .arg("--onnx")
        .arg(onnx)
        .arg("--data")
        .arg(data)
        .arg("--registry")
        .arg(registry)
        .arg("--cache")
        .arg(cache)
        .args(extra)
        .output()
        .unwrap()
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: bad JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// 2 s tones: real ones quiet, fake ones loud (the model weighs MFCC 0, the log energy), two
/// sources per label. The roots get `splits` only.
fn write_dataset(roots: &[(&Path, &[&str])]) {
    for (root, splits) in roots {
        for (s, split) in ["training", "validation", "testing"].iter().enumerate() {
            if !splits.contains(split) {
                continue;
            }
            for k in 0..8usize {
                let fake = k >= 4;
                let dir = root.join(split).join(if fake { "fake" } else { "real" });
                std::fs::create_dir_all(&dir).unwrap();
                let amp = if fake { 0.2 + 0.07 * (k % 4) as f64 } else { 0.015 + 0.01 * (k % 4) as f64 };
                let f0 = 140.0 + 55.0 * k as f64 + 20.0 * s as f64;
                let y: Vec<f32> = (0..32_000)
                    .map(|i| {
                        let t = i as f64 / 16_000.0;
                        let ph = 2.0 * std::f64::consts::PI * f0 * t;
                        (amp * (ph.sin() + 0.4 * (2.0 * ph).sin() + 0.2 * (3.3 * ph).sin()) / 1.6) as f32
                    })
                    .collect();
                write_wav_pcm16(&dir.join(format!("src{}__clip{s}{k}.wav", k % 2)), &y, 16_000).unwrap();
            }
        }
    }
}

/// The clip's score through core (what the server does): features, manifest normalization,
/// ONNX Runtime.
fn core_score(version_dir: &Path, clip: &Path) -> (f32, Vec<f32>) {
    let loaded = registry::load_version(version_dir).unwrap();
    let m = &loaded.manifest;
    let ex = FeatureExtractor::new(m.feature_spec.clone()).unwrap();
    let audio = load_file(clip, m.feature_spec.sample_rate, &AudioLimits::default()).unwrap();
    let mut f = ex.extract(&audio.samples).unwrap().into_raw_vec_and_offset().0;
    assert_eq!(f.len(), 126 * 96);
    m.normalization.apply(&mut f);
    let mut session = ModelSession::from_bytes(runtime::init(None).unwrap(), &loaded.model_onnx).unwrap();
    let s = session.run(Array3::from_shape_vec((1, 126, 96), f.clone()).unwrap().view()).unwrap();
    assert_eq!(s.len(), 1);
    (s[0], f)
}

/// The Python graph in f64: sigmoid(b + w . mean over frames).
fn reference_score(weights: &Value, normalized: &[f32]) -> f64 {
    let w: Vec<f64> = weights["w"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let mut logit = weights["b"].as_f64().unwrap();
    for (j, wj) in w.iter().enumerate() {
        let mean = normalized.chunks_exact(96).map(|row| f64::from(row[j])).sum::<f64>() / 126.0;
        logit += wj * mean;
    }
    1.0 / (1.0 + (-logit).exp())
}

/// What service/src/models/loaded.rs checks before a version serves.
fn server_loader_checks(version_dir: &Path) {
    let loaded = registry::load_version(version_dir).unwrap();
    let spec = &loaded.manifest.feature_spec;
    let d = &loaded.manifest.input.shape;
    assert_eq!(d.len(), 3);
    assert_eq!(d[1], Dim::Fixed(spec.frames_per_segment() as u64));
    assert_eq!(d[2], Dim::Fixed(spec.n_features() as u64));
    let mut session = ModelSession::from_bytes(runtime::init(None).unwrap(), &loaded.model_onnx).unwrap();
    let out = session.run(Array3::<f32>::zeros((1, 126, 96)).view()).unwrap();
    assert!(out.len() == 1 && (0.0..=1.0).contains(&out[0]), "warm-up gave {out:?}");
}

#[test]
fn imported_models_publish_serve_and_score_like_core() {
    let root = std::env::temp_dir().join(format!("vericlip-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (data, data_eval_only) = (root.join("data"), root.join("data-eval-only"));
    let (reg, cache) = (root.join("registry"), root.join("cache"));
    write_dataset(&[(&data, &["training", "validation", "testing"]), (&data_eval_only, &["validation", "testing"])]);

    // A contract-abiding model; normalization fitted on the training split.
    let (onnx, weights_json) = (root.join("byo.onnx"), root.join("weights.json"));
    make_model(&onnx, &["--weights-json", weights_json.to_str().unwrap()]);
    let weights: Value = serde_json::from_slice(&std::fs::read(&weights_json).unwrap()).unwrap();
    let s = ok_json(&import(&onnx, &data, &reg, &cache, &[]), "import");
    assert_eq!(s["version"], 1);
    assert_eq!(s["normalization"], "training split");
    let v1 = PathBuf::from(s["dir"].as_str().unwrap());
    assert_eq!(v1, reg.join("byo").join("1"));

    let loaded = registry::load_version(&v1).expect("the published version loads");
    let m = &loaded.manifest;
    let onnx_bytes = std::fs::read(&onnx).unwrap();
    assert_eq!(loaded.model_onnx, onnx_bytes, "the ONNX file is published unchanged");
    assert_eq!(m.sha256, registry::sha256_hex(&onnx_bytes));
    assert_eq!(m.model["kind"], "imported");
    assert_eq!(m.model["imported"]["onnx_file"], "byo.onnx");
    assert_eq!(m.model["imported"]["sha256"], m.sha256.as_str());
    assert!(m.provenance.trainer_version.contains("imported"), "{:?}", m.provenance);
    assert_eq!(m.feature_spec, FeatureSpec::default());
    assert_eq!(m.output.shape, vec![Dim::Named("batch".into())]);
    assert!(m.threshold > 0.0 && m.threshold < 1.0, "threshold {}", m.threshold);
    let test = &m.metrics["test"];
    assert_eq!(test.n, 8);
    assert!(test.auc.unwrap() >= 0.9 && test.accuracy >= 0.75, "test metrics {test:?}");
    assert!(m.metrics.contains_key("validation"));
    assert!(m.metrics.contains_key("test/src0") && m.metrics.contains_key("test/src1"));
    assert_eq!(s["test"]["accuracy"].as_f64().unwrap(), test.accuracy);
    for f in ["metrics.json", "roc.png"] {
        assert!(v1.join("report").join(f).is_file(), "report/{f}");
    }
    server_loader_checks(&v1);

    // One clip three ways: core's pipeline through ORT, the graph in f64, and `eval`.
    let clip = data.join("testing/fake/src1__clip25.wav");
    let (score, normalized) = core_score(&v1, &clip);
    let reference = reference_score(&weights, &normalized);
    assert!((f64::from(score) - reference).abs() < 1e-5, "core {score} vs reference {reference}");
    let eval = Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .args(["eval", "--json", "--files", "--no-cache", "--model"])
        .arg(&v1)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let e = ok_json(&eval, "eval");
    let row = e["segments"].as_array().unwrap().iter().find(|r| r["file"] == clip.display().to_string()).unwrap();
    assert_eq!(row["fake_score"].as_f64().unwrap() as f32, score, "eval and core score the clip alike");
    for k in ["accuracy", "precision", "recall", "f1", "eer", "auc", "threshold"] {
        assert_eq!(e[k], s["test"][k], "eval vs import's test {k}");
    }

    // Normalization from a file, an [N, 1] output, and no training split (not needed then).
    let norm = root.join("norm.json");
    std::fs::write(&norm, serde_json::to_vec(&m.normalization).unwrap()).unwrap();
    let onnx_2d = root.join("byo_2d.onnx");
    make_model(&onnx_2d, &["--output-2d"]);
    let args = ["--normalization", norm.to_str().unwrap()];
    let s2 = ok_json(&import(&onnx_2d, &data_eval_only, &reg, &cache, &args), "import --normalization");
    assert_eq!(s2["version"], 2);
    let v2 = registry::load_version(&reg.join("byo/2")).unwrap();
    assert_eq!(v2.manifest.normalization, m.normalization);
    assert_eq!(v2.manifest.output.shape, vec![Dim::Named("batch".into()), Dim::Fixed(1)]);
    assert_eq!(v2.manifest.metrics["test"].auc, test.auc, "same model, same data, same scores");
    assert_eq!(v2.manifest.threshold, m.threshold);
    server_loader_checks(&v2.dir);
    let clip_eval_only = data_eval_only.join("testing/fake/src1__clip25.wav");
    assert_eq!(core_score(&v2.dir, &clip_eval_only).0, score);

    // Contract violations: refused before any audio is read, nothing published.
    let refused = |extra: &[&str], file: &str, expect: &[&str]| {
        let bad = root.join(file);
        make_model(&bad, extra);
        let out = import(&bad, &data, &reg, &cache, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        for e in expect {
            assert!(err.contains(e), "{file}: the error does not say {e:?}:\n{err}");
        }
    };
    refused(&["--frames", "100"], "frames100.onnx", &["features [N, 100, 96] float32", "[batch, 126, 96]"]);
    refused(&["--features", "40"], "features40.onnx", &["[N, 126, 40]", "40 features per frame"]);
    refused(&["--input-name", "input_1"], "named.onnx", &["input_1", "features"]);
    refused(&["--logits"], "logits.onnx", &["not a probability"]);
    assert_eq!(registry::versions(&reg.join("byo")).unwrap(), vec![1, 2]);

    std::fs::remove_dir_all(&root).ok();
}
