//! The committed default model and sample clips, through the real binary: the version loads with
//! a verified checksum, and `eval --files` gives every bundled clip a score and a verdict.

use std::path::PathBuf;
use std::process::Command;

use vericlip_core::registry;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_bundled_version_scores_the_bundled_samples() {
    let versions = registry::versions(&repo().join("models/vericlip-lstm")).unwrap();
    assert!(versions.len() >= 2, "versions {versions:?}");
    for v in versions {
        check_version(&repo().join(format!("models/vericlip-lstm/{v}")));
    }
}

fn check_version(model: &std::path::Path) {
    let loaded = registry::load_version(model)
        .unwrap_or_else(|e| panic!("{} must be a valid, checksum-verified version: {e}", model.display()));
    assert_eq!(loaded.manifest.name, "vericlip-lstm");
    assert!(loaded.manifest.metrics.contains_key("test"));
    let out = Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .args(["eval", "--json", "--files", "--no-cache", "--model"])
        .arg(model)
        .arg("--data")
        .arg(repo().join("models/samples"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments = e["segments"].as_array().unwrap();
    let real = std::fs::read_dir(repo().join("models/samples/real")).unwrap().count();
    let fake = std::fs::read_dir(repo().join("models/samples/fake")).unwrap().count();
    // The 4.25 s espeak clip gives two full segments; its 0.25 s tail is under min_tail and dropped.
    assert!(segments.len() >= real + fake, "{} segments for {} files", segments.len(), real + fake);
    for s in segments {
        let score = s["fake_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{s}");
        let want = if score >= loaded.manifest.threshold { "fake" } else { "real" };
        assert_eq!(s["verdict"], want, "{s}");
    }
}
