//! Registry contract: atomic publish to the next free version, no clobbering between concurrent
//! publishers, checksum-verified loading, dot-folders ignored.

use std::path::PathBuf;

use vericlip_core::registry::{self, Manifest, Provenance, RegistryError};
use vericlip_core::{FeatureSpec, Normalizer};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vericlip-registry-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn manifest(name: &str) -> Manifest {
    let spec = FeatureSpec::default();
    let n = spec.n_features();
    let provenance = Provenance {
        dataset_fingerprint: "x".into(),
        seed: 1,
        epochs: 1,
        trainer_version: "t".into(),
        training_seconds: 0.0,
    };
    Manifest::new(name, spec, Normalizer { mean: vec![0.0; n], std: vec![1.0; n] }, 0.5, provenance)
}

#[test]
fn publish_numbers_versions_and_load_verifies_them() {
    let reg = tmp("seq");
    let a = registry::publish(&reg, manifest("m"), b"model-one", &[("metrics.json", b"{}".to_vec())]).unwrap();
    let b = registry::publish(&reg, manifest("m"), b"model-two", &[]).unwrap();
    assert_eq!((a.version, b.version), (1, 2));
    let loaded = registry::load_version(&b.dir).unwrap();
    assert_eq!(loaded.model_onnx, b"model-two");
    assert_eq!(loaded.manifest.version, 2);
    assert_eq!(loaded.manifest.sha256, registry::sha256_hex(b"model-two"));
    assert!(a.dir.join("report/metrics.json").is_file());
    // A staging folder left by a crashed publisher is invisible to readers.
    std::fs::create_dir_all(reg.join("m/.staging-dead")).unwrap();
    assert_eq!(registry::versions(&reg.join("m")).unwrap(), vec![1, 2]);
    assert_eq!(registry::model_names(&reg).unwrap(), vec!["m".to_string()]);
    // Tampering is caught.
    std::fs::write(a.dir.join("model.onnx"), b"tampered").unwrap();
    let e = registry::load_version(&a.dir).unwrap_err();
    assert!(matches!(e, RegistryError::ChecksumMismatch { .. }), "{e}");
    assert_eq!(e.name(), "checksum_mismatch");
    std::fs::remove_dir_all(&reg).ok();
}

#[test]
fn concurrent_publishers_never_clobber_each_other() {
    let reg = tmp("race");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                (0..4)
                    .map(|j| {
                        registry::publish(&reg, manifest("race"), format!("model {i}-{j}").as_bytes(), &[]).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let published: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut versions: Vec<u64> = published.iter().map(|p| p.version).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=32).collect::<Vec<_>>());
    // Every version holds exactly the bytes its publisher wrote, with a matching manifest.
    for p in &published {
        let loaded = registry::load_version(&p.dir).unwrap();
        assert_eq!(loaded.manifest.version, p.version);
    }
    let leftovers: Vec<_> = std::fs::read_dir(reg.join("race"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging folders left behind");
    std::fs::remove_dir_all(&reg).ok();
}

#[test]
fn bad_names_and_manifests_are_refused() {
    let reg = tmp("bad");
    for name in ["", ".hidden", "a/b", "../up", "sp ace"] {
        assert!(
            matches!(registry::publish(&reg, manifest(name), b"x", &[]), Err(RegistryError::InvalidName(_))),
            "{name:?}"
        );
    }
    let p = registry::publish(&reg, manifest("m"), b"x", &[]).unwrap();
    let path = p.dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"threshold\": 0.5", "\"threshold\": 7.0");
    std::fs::write(&path, text).unwrap();
    let e = registry::load_version(&p.dir).unwrap_err().to_string();
    assert!(e.contains("threshold 7"), "{e}");
    std::fs::remove_dir_all(&reg).ok();
}

#[test]
fn seed_copies_missing_versions_and_never_rewrites_published_ones() {
    let (from, to) = (tmp("seed-from"), tmp("seed-to"));
    registry::publish(&from, manifest("m"), b"one", &[("metrics.json", b"{}".to_vec())]).unwrap();
    registry::publish(&from, manifest("m"), b"two", &[]).unwrap();
    // A first install copies every bundled version.
    let fresh = tmp("seed-fresh");
    let done = registry::seed(&from, &fresh).unwrap();
    assert_eq!(done.iter().map(|s| (s.version, s.copied)).collect::<Vec<_>>(), vec![(1, true), (2, true)]);
    assert_eq!(registry::load_version(&fresh.join("m/1")).unwrap().model_onnx, b"one");
    assert!(fresh.join("m/1/report/metrics.json").is_file());
    // The target already issued 1 and 2 to models of its own (published there by a trainer; 1
    // deleted since): neither number is reused for the bundle's models, and each refusal says why.
    let own = registry::publish(&to, manifest("m"), b"theirs-1", &[]).unwrap();
    let own2 = registry::publish(&to, manifest("m"), b"theirs-2", &[]).unwrap();
    std::fs::remove_dir_all(&own.dir).unwrap();
    let done = registry::seed(&from, &to).unwrap();
    let copied: Vec<_> = done.iter().map(|s| (s.version, s.copied)).collect();
    assert_eq!(copied, vec![(1, false), (2, false)]);
    let why: Vec<_> = done.iter().map(|s| s.refused.clone().unwrap_or_default()).collect();
    assert!(why[0].contains("already issued version number 1"), "{why:?}");
    assert!(why[1].contains("version 2 is another model"), "{why:?}");
    assert!(!to.join("m/1").exists());
    assert_eq!(registry::load_version(&own2.dir).unwrap().model_onnx, b"theirs-2");
    // Seeding the same bundle again over the first install: present alike, nothing copied, and
    // no staging folders left.
    let again = registry::seed(&from, &fresh).unwrap();
    assert!(again.iter().all(|s| !s.copied && s.refused.is_none()), "{again:?}");
    let leftovers: Vec<_> = std::fs::read_dir(to.join("m")).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    for dir in [from, to, fresh] {
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn publish_never_reuses_a_number() {
    use vericlip_core::registry::serving;
    let reg = tmp("reuse");
    let dir = reg.join("m");
    registry::publish(&reg, manifest("m"), b"one", &[]).unwrap();
    registry::publish(&reg, manifest("m"), b"two", &[]).unwrap();
    let record = serving::Record { what: "test", reason: None };
    serving::update(&dir, record, false, || Ok(serving::ServingState::new(1)), |s| Ok(s.clone())).unwrap();
    let third = registry::publish(&reg, manifest("m"), b"three", &[]).unwrap();
    assert_eq!(third.version, 3);
    // Retired and deleted (as the docs allow), and a candidate deleted: their numbers stay taken.
    serving::update(
        &dir,
        record,
        false,
        || unreachable!(),
        |s| serving::apply(s, serving::Transition::Retire { version: 3 }),
    )
    .unwrap();
    std::fs::remove_dir_all(&third.dir).unwrap();
    let next = registry::publish(&reg, manifest("m"), b"four", &[]).unwrap();
    assert_eq!(next.version, 4, "retired 3 is never reused");
    std::fs::remove_dir_all(&next.dir).unwrap();
    let s = serving::read(&dir).unwrap().unwrap();
    assert_eq!(s.highest_version, 4, "{s:?}");
    assert_eq!(registry::publish(&reg, manifest("m"), b"five", &[]).unwrap().version, 5, "deleted 4 is never reused");
    std::fs::remove_dir_all(&reg).ok();
}

#[test]
fn sizes_over_the_limits_are_refused_before_allocation_naming_the_limit() {
    let reg = tmp("limits");
    // A manifest over MAX_MANIFEST_BYTES: refused from its size, never parsed.
    let p = registry::publish(&reg, manifest("m"), b"x", &[]).unwrap();
    let path = p.dir.join(registry::MANIFEST_FILE);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(registry::MAX_MANIFEST_BYTES + 1).unwrap();
    let e = registry::load_version(&p.dir).unwrap_err();
    assert_eq!(e.name(), "over_limit");
    assert!(e.to_string().contains("MAX_MANIFEST_BYTES"), "{e}");
    // A segment of 2^64 - 1 samples with the input shape that matches it.
    let mut m = manifest("m");
    m.feature_spec.segment_samples = usize::MAX;
    m.input.shape[1] = registry::Dim::Fixed(1 + u64::MAX / 256);
    let p = registry::publish(&reg, m, b"x", &[]).unwrap();
    let e = registry::load_version(&p.dir).unwrap_err().to_string();
    assert!(e.contains("segment_samples") && e.contains("MAX_SEGMENT_SAMPLES"), "{e}");
    // A fixed batch dimension beyond MAX_FIXED_BATCH.
    let mut m = manifest("m");
    m.input.shape[0] = registry::Dim::Fixed(1 << 40);
    let p = registry::publish(&reg, m, b"x", &[]).unwrap();
    let e = registry::load_version(&p.dir).unwrap_err();
    assert_eq!(e.name(), "over_limit");
    assert!(e.to_string().contains("MAX_FIXED_BATCH"), "{e}");
    // An input shape that contradicts the spec.
    let mut m = manifest("m");
    m.input.shape[2] = registry::Dim::Fixed(97);
    let p = registry::publish(&reg, m, b"x", &[]).unwrap();
    let e = registry::load_version(&p.dir).unwrap_err().to_string();
    assert!(e.contains("does not match the feature spec"), "{e}");
    let _ = std::fs::remove_dir_all(&reg);
}
