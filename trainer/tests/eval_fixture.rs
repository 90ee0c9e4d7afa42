//! `vericlip-train eval --json` against a confusion matrix computed independently: a fixed model
//! (seeded weights), fixed audio, the reference forward pass in f64, and the threshold set so the
//! fixture has both right and wrong decisions.

use std::process::Command;

use ndarray::Array3;
use vericlip_core::audio::{AudioLimits, load_file, write_wav_pcm16};
use vericlip_core::registry::{self, Manifest, Provenance};
use vericlip_core::{FeatureExtractor, FeatureSpec, Normalizer};
use vericlip_train::model::onnx::export_network;
use vericlip_train::model::{Head, LstmRecipe};

#[test]
fn eval_json_matches_a_hand_computed_confusion_matrix() {
    let root = std::env::temp_dir().join(format!("vericlip-evalfix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let spec = FeatureSpec::default();
    // 4 real and 4 fake clips: tones and chirps at different levels, 2 s at 16 kHz.
    let mut files = Vec::new();
    for (k, label) in ["real", "real", "real", "real", "fake", "fake", "fake", "fake"].iter().enumerate() {
        let dir = root.join("data").join(label);
        std::fs::create_dir_all(&dir).unwrap();
        let (f0, amp) = (150.0 + 170.0 * k as f64, 0.05 + 0.1 * (k % 4) as f64);
        let y: Vec<f32> = (0..32_000)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (amp * (2.0 * std::f64::consts::PI * (f0 * t + 60.0 * k as f64 * t * t)).sin()) as f32
            })
            .collect();
        let path = dir.join(format!("src{}__clip{k}.wav", k % 2));
        write_wav_pcm16(&path, &y, 16_000).unwrap();
        files.push((path, *label == "fake"));
    }
    // Reference scores: core features (what eval decodes) -> identity normalization -> f64 LSTM.
    let weights = LstmRecipe {
        input: 96,
        hidden: 8,
        head: Head::Last,
        bidirectional: false,
        conv: None,
        segment_mean_norm: false,
    }
    .seeded(3);
    let ex = FeatureExtractor::new(spec.clone()).unwrap();
    let scores: Vec<f32> = files
        .iter()
        .map(|(p, _)| {
            let a = load_file(p, 16_000, &AudioLimits::default()).unwrap();
            let f = ex.extract(&a.samples).unwrap();
            weights.forward(Array3::from_shape_vec((1, 126, 96), f.into_raw_vec_and_offset().0).unwrap().view())[0]
        })
        .collect();
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let threshold = f64::from(sorted[3] + sorted[4]) / 2.0; // half the clips called fake
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for ((_, fake), s) in files.iter().zip(&scores) {
        match (f64::from(*s) >= threshold, *fake) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let n = spec.n_features();
    let provenance = Provenance {
        dataset_fingerprint: "fixture".into(),
        seed: 3,
        epochs: 0,
        trainer_version: "test".into(),
        training_seconds: 0.0,
    };
    let manifest =
        Manifest::new("fixture", spec, Normalizer { mean: vec![0.0; n], std: vec![1.0; n] }, threshold, provenance);
    let published = registry::publish(&root.join("registry"), manifest, &export_network(&weights, &[]), &[]).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .args(["eval", "--json", "--no-cache", "--model"])
        .arg(&published.dir)
        .arg("--data")
        .arg(root.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        e["confusion"],
        serde_json::json!({"tp": tp, "fp": fp, "tn": tn, "fn": fn_}),
        "scores {scores:?} at {threshold}"
    );
    assert_eq!(e["n"], 8);
    assert_eq!(e["accuracy"].as_f64().unwrap(), f64::from(tp + tn) / 8.0);
    assert_eq!(e["threshold"].as_f64().unwrap(), threshold);
    assert_eq!(e["per_source"].as_object().unwrap().len(), 2, "sources src0 and src1");
    std::fs::remove_dir_all(&root).ok();
}
