//! The Rust extractor against librosa 1.0 (tests/golden/make_goldens.py): MFCC and log-mel within
//! 1e-3, chroma within 1e-4, on speech, silence, a sweep, noise, a DC offset and a short clip.

mod common;

use std::collections::BTreeMap;

use vericlip_core::audio::{AudioLimits, load_file};
use vericlip_core::{FeatureExtractor, FeatureSpec};

#[derive(serde::Deserialize)]
struct Goldens {
    spec: serde_json::Map<String, serde_json::Value>,
    features: BTreeMap<String, Vec<Vec<f32>>>,
}

fn goldens() -> Goldens {
    let path = common::golden_dir().join("goldens.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn default_spec_equals_the_reference_spec() {
    let ours = serde_json::to_value(FeatureSpec::default()).unwrap();
    for (key, want) in &goldens().spec {
        let got = ours.get(key).unwrap_or_else(|| panic!("FeatureSpec lacks reference field `{key}`"));
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => got == want,
        };
        assert!(same, "spec field `{key}`: ours {got}, reference {want}");
    }
}

#[test]
fn features_match_librosa_on_every_golden_clip() {
    let g = goldens();
    let spec = FeatureSpec::default();
    let ex = FeatureExtractor::new(spec.clone()).unwrap();
    let dir = common::golden_dir().join("clips");
    assert!(g.features.len() >= 7, "expected 7 golden clips, found {}", g.features.len());
    let sections = [("mfcc", 0..20, 1e-3f32), ("chroma", 20..32, 1e-4), ("logmel", 32..96, 1e-3)];
    for (name, want) in &g.features {
        let audio = load_file(&dir.join(format!("{name}.wav")), spec.sample_rate, &AudioLimits::default()).unwrap();
        let first = &audio.samples[..audio.samples.len().min(spec.segment_samples)];
        let got = ex.extract(first).unwrap();
        assert_eq!(got.nrows(), want.len(), "{name}: frame count");
        for (section, cols, tol) in sections.clone() {
            let mut worst = (0f32, 0, 0);
            for (t, row) in want.iter().enumerate() {
                for c in cols.clone() {
                    let d = (got[[t, c]] - row[c]).abs();
                    if d > worst.0 {
                        worst = (d, t, c);
                    }
                }
            }
            eprintln!("{name:>13} {section:>6}: max abs err {:.2e} (frame {}, col {})", worst.0, worst.1, worst.2);
            assert!(
                worst.0 <= tol,
                "{name} {section}: max abs err {} > {tol} at frame {} col {}",
                worst.0,
                worst.1,
                worst.2
            );
        }
    }
}
