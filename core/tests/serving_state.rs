//! `seed` and the serving state (`serving.json`): a first install gets the bundle's state, a
//! registry in use keeps (or first freezes) its own, and a retired version is never copied back.

use std::path::PathBuf;

use vericlip_core::registry::{self, serving};

#[path = "fixtures/registry_versions.rs"]
mod fixture;
use fixture::{MODEL, fresh, place_version, repo};

/// A bundle like the image's: versions 4 and 5, and the repository's serving.json (stable 4).
fn bundle(tag: &str) -> PathBuf {
    let b = fresh(&format!("bundle-{tag}"));
    place_version(&b, 4, 4);
    place_version(&b, 4, 5);
    std::fs::copy(repo().join(format!("models/{MODEL}/serving.json")), b.join(MODEL).join(serving::SERVING_FILE))
        .unwrap();
    b
}

#[test]
fn the_bundled_state_is_valid_and_names_a_bundled_version() {
    let s = serving::read(&repo().join(format!("models/{MODEL}"))).unwrap().expect("models/vericlip-lstm/serving.json");
    assert_eq!(s.stable, 4);
    assert!(registry::versions(&repo().join(format!("models/{MODEL}"))).unwrap().contains(&s.stable));
    // The bundled versions pass the check the lifecycle commands and replicas run.
    registry::verify_version(&repo().join(format!("models/{MODEL}/4"))).unwrap();
}

#[test]
fn seed_installs_the_bundle_state_once_and_never_changes_it() {
    let (from, to) = (bundle("first"), fresh("first"));
    let done = registry::seed(&from, &to).unwrap();
    assert!(done.iter().all(|s| s.copied && !s.retired), "{done:?}");
    let first = std::fs::read(to.join(MODEL).join(serving::SERVING_FILE)).unwrap();
    assert_eq!(serving::read(&to.join(MODEL)).unwrap().unwrap().stable, 4, "first install: the bundle's state");
    // Promote 5 in the target, then seed again: the target's state stands.
    serving::update(
        &to.join(MODEL),
        serving::Record { what: "test", reason: None },
        false,
        || unreachable!(),
        |s| serving::apply(s, serving::Transition::Promote { version: 5 }),
    )
    .unwrap();
    let promoted = std::fs::read(to.join(MODEL).join(serving::SERVING_FILE)).unwrap();
    assert_ne!(first, promoted);
    let again = registry::seed(&from, &to).unwrap();
    assert!(again.iter().all(|s| !s.copied), "{again:?}");
    assert_eq!(std::fs::read(to.join(MODEL).join(serving::SERVING_FILE)).unwrap(), promoted);
    let _ = std::fs::remove_dir_all(&from);
    let _ = std::fs::remove_dir_all(&to);
}

#[test]
fn seed_freezes_a_registry_in_use_and_skips_retired_versions() {
    let from = bundle("in-use");
    // A registry from before serving states, serving its highest version, 4.
    let to = fresh("in-use");
    place_version(&to, 4, 3);
    place_version(&to, 4, 4);
    let done = registry::seed(&from, &to).unwrap();
    let copied: Vec<_> = done.iter().map(|s| (s.version, s.copied)).collect();
    assert_eq!(copied, vec![(4, false), (5, true)]);
    let s = serving::read(&to.join(MODEL)).unwrap().unwrap();
    assert_eq!((s.stable, s.canary), (4, None), "v5 lands as a candidate, v4 keeps serving");
    assert_eq!((s.highest_version, s.generation), (5, 2), "frozen, then 5 recorded as issued");

    // Retire 5 and delete its files: seeding never brings it back.
    serving::update(
        &to.join(MODEL),
        serving::Record { what: "test", reason: None },
        false,
        || unreachable!(),
        |s| serving::apply(s, serving::Transition::Retire { version: 5 }),
    )
    .unwrap();
    std::fs::remove_dir_all(to.join(MODEL).join("5")).unwrap();
    let done = registry::seed(&from, &to).unwrap();
    let five = done.iter().find(|s| s.version == 5).unwrap();
    assert!(five.retired && !five.copied, "{five:?}");
    assert!(!to.join(MODEL).join("5").exists());
    let leftovers: Vec<_> = std::fs::read_dir(to.join(MODEL))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&from);
    let _ = std::fs::remove_dir_all(&to);
}

#[test]
fn seed_never_picks_a_stable_version_for_a_registry_that_lost_its_state() {
    let from = bundle("lost");
    let to = fresh("lost");
    place_version(&to, 4, 3);
    place_version(&to, 4, 4);
    let dir = to.join(MODEL);
    registry::seed(&from, &to).unwrap();
    serving::update(
        &dir,
        serving::Record { what: "test", reason: None },
        false,
        || unreachable!(),
        |s| serving::apply(s, serving::Transition::Retire { version: 3 }),
    )
    .unwrap();
    // Lost (or hand-edited into bad JSON): seeding writes no state (it would have promoted the
    // highest version, 5, and dropped the tombstone of 3) and copies nothing.
    for damage in [None, Some(&b"{not json"[..])] {
        std::fs::remove_file(dir.join(serving::SERVING_FILE)).unwrap();
        if let Some(bytes) = damage {
            std::fs::write(dir.join(serving::SERVING_FILE), bytes).unwrap();
        }
        let done = registry::seed(&from, &to).unwrap();
        assert!(done.is_empty(), "nothing seeded: {done:?}");
        assert_eq!(std::fs::read(dir.join(serving::SERVING_FILE)).ok().as_deref(), damage);
        // Restored from the history: the last state, tombstone included, one generation on.
        std::fs::write(dir.join(serving::SERVING_FILE), b"").unwrap();
        let restored = serving::restore(&dir, serving::Record { what: "restore", reason: None }, false).unwrap();
        assert_eq!((restored.after.stable, restored.after.retired.iter().copied().collect::<Vec<_>>()), (4, vec![3]));
    }
    let _ = std::fs::remove_dir_all(&from);
    let _ = std::fs::remove_dir_all(&to);
}

/// Issue 32, item 2: what was published under a number is recorded in the serving state (seed
/// and publish alike, and any version from before the record at the next write), and files
/// that differ from it are refused by `verify_published`, even when they are valid.
#[test]
fn published_versions_are_recorded_and_valid_replacements_fail_verification() {
    let (from, to) = (bundle("record"), fresh("record"));
    registry::seed(&from, &to).unwrap();
    let dir = to.join(MODEL);
    let s = serving::read(&dir).unwrap().unwrap();
    for v in [4, 5] {
        let digest = registry::manifest_digest(&dir.join(v.to_string())).unwrap();
        assert_eq!(s.published.get(&v), Some(&digest), "seed records what it copied: {s:?}");
        registry::verify_published(&dir.join(v.to_string()), Some(&digest)).unwrap();
    }
    // A version copied in by hand (no record) is recorded by the next write of the state.
    place_version(&to, 4, 6);
    serving::update(
        &dir,
        serving::Record { what: "test", reason: None },
        false,
        || unreachable!(),
        |s| serving::apply(s, serving::Transition::Canary { version: 5, fraction: 0.1 }),
    )
    .unwrap();
    let s = serving::read(&dir).unwrap().unwrap();
    let six = registry::manifest_digest(&dir.join("6")).unwrap();
    assert_eq!(s.published.get(&6), Some(&six));
    // A valid replacement (another threshold, the same model.onnx, its checksum right) is not
    // the published version.
    let path = dir.join("5").join(registry::MANIFEST_FILE);
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["threshold"] = 0.979.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    registry::verify_version(&dir.join("5")).expect("the replacement is valid in itself");
    let e = registry::verify_published(&dir.join("5"), s.published.get(&5).map(String::as_str)).unwrap_err();
    assert_eq!(e.name(), "changed_after_publish");
    assert!(e.to_string().contains("recorded when this version was published"), "{e}");
    // A publish records the number and its manifest under the writers' lock.
    let published =
        registry::publish(&to, read_manifest(&dir.join("4")), &std::fs::read(dir.join("4/model.onnx")).unwrap(), &[])
            .unwrap();
    assert_eq!(published.version, 7);
    let s = serving::read(&dir).unwrap().unwrap();
    assert_eq!(s.published.get(&7), Some(&registry::manifest_digest(&published.dir).unwrap()));
    let _ = std::fs::remove_dir_all(&from);
    let _ = std::fs::remove_dir_all(&to);
}

fn read_manifest(dir: &std::path::Path) -> registry::Manifest {
    serde_json::from_slice(&std::fs::read(dir.join(registry::MANIFEST_FILE)).unwrap()).unwrap()
}
