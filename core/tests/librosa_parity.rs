//! The Rust extractor against librosa 1.0 (tests/golden/make_goldens.py): MFCC and log-mel within
//! 1e-3, chroma within 1e-4, on speech, silence, a sweep, noise, a DC offset and a short clip.
//! The richer specs (LFCC, deltas, the linear log-spectrogram, the phase-advance deviation, the
//! excitation, the fine structure and log spectrum of the 1024-point STFT:
//! `reference_features_ext.py`) against their goldens with the
//! same discipline: every block of `FeatureSpec::layout`, cepstra, dB and deltas within 1e-3,
//! chroma, the phase-advance deviation and the fine kinds within 1e-4.

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
    goldens_file("goldens.json")
}

fn goldens_file(file: &str) -> Goldens {
    let path = common::golden_dir().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (rerun `.venv/bin/python tests/golden/make_goldens.py tests/golden/out`)", path.display())
    });
    serde_json::from_slice(&bytes).unwrap()
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

/// Blocks held to 1e-4 rather than 1e-3 (dB and cepstra).
const TIGHT_BLOCKS: [&str; 4] = ["chroma", "phase_dev", "fine_structure", "fine_log_spec"];

/// Every field of the golden's spec equals ours, then every block of our layout matches the
/// golden features within its tolerance on every clip.
fn check_rich_spec(file: &str, spec: FeatureSpec) {
    let g = goldens_file(file);
    let ours = serde_json::to_value(&spec).unwrap();
    let zero = serde_json::Value::from(0);
    for (key, want) in &g.spec {
        // Our JSON leaves out optional kinds that are 0 (absent).
        let got = ours.get(key).unwrap_or(&zero);
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => got == want,
        };
        assert!(same, "{file}: spec field `{key}`: ours {got}, reference {want}");
    }
    for key in [
        "n_lfcc",
        "n_lfcc_filters",
        "deltas",
        "delta_width",
        "n_log_spec",
        "n_phase_dev",
        "excitation_order",
        "fine_n_fft",
        "n_fine_structure",
        "fine_lifter",
        "n_fine_log_spec",
    ] {
        assert!(g.spec.contains_key(key), "{file}: the reference spec lacks `{key}`");
    }
    let ex = FeatureExtractor::new(spec.clone()).unwrap();
    let dir = common::golden_dir().join("clips");
    assert!(g.features.len() >= 7, "{file}: expected 7 golden clips, found {}", g.features.len());
    for (name, want) in &g.features {
        let audio = load_file(&dir.join(format!("{name}.wav")), spec.sample_rate, &AudioLimits::default()).unwrap();
        let first = &audio.samples[..audio.samples.len().min(spec.segment_samples)];
        let got = ex.extract(first).unwrap();
        assert_eq!(got.nrows(), want.len(), "{file} {name}: frame count");
        assert!(want.iter().all(|r| r.len() == spec.n_features()), "{file} {name}: reference width");
        for block in spec.layout() {
            let tol = if TIGHT_BLOCKS.contains(&block.name) { 1e-4f32 } else { 1e-3 };
            let mut worst = (0f32, 0, 0);
            for (t, row) in want.iter().enumerate() {
                for c in block.columns.clone() {
                    let d = (got[[t, c]] - row[c]).abs();
                    if d > worst.0 || d.is_nan() {
                        worst = (d, t, c);
                    }
                }
            }
            eprintln!(
                "{file} {name:>13} {:>11}: max abs err {:.2e} (frame {}, col {})",
                block.name, worst.0, worst.1, worst.2
            );
            assert!(
                worst.0 <= tol,
                "{file} {name} {}: max abs err {} > {tol} at frame {} col {}",
                block.name,
                worst.0,
                worst.1,
                worst.2
            );
        }
    }
}

#[test]
fn lfcc_and_deltas_match_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_lfcc_deltas.json", FeatureSpec::lfcc_deltas());
}

#[test]
fn second_order_deltas_match_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_lfcc_deltas2.json", FeatureSpec { deltas: 2, ..FeatureSpec::lfcc_deltas() });
}

#[test]
fn linear_log_spectrogram_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_log_spec.json", FeatureSpec::log_spec());
}

#[test]
fn phase_advance_deviation_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_phase_dev.json", FeatureSpec::phase_dev());
}

#[test]
fn excitation_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_excitation.json", FeatureSpec::excitation());
}

#[test]
fn fine_structure_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_fine_structure.json", FeatureSpec::fine_structure());
}

#[test]
fn fine_log_spectrum_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_fine_log_spec.json", FeatureSpec::fine_log_spec());
}

#[test]
fn fine_structure_with_the_phase_deviation_matches_the_reference_on_every_golden_clip() {
    check_rich_spec("goldens_fine_phase.json", FeatureSpec::fine_phase());
}
