//! `--augment-kinds` / `--augment-codecs` through the real binary: mistakes in the lists are
//! refused by the argument parser, and a codec this machine cannot run is refused, naming what to
//! install, before any audio is read.

mod common;

use common::bin;

fn stderr_of(args: &[&str], path: Option<&std::path::Path>) -> String {
    let mut cmd = bin();
    cmd.args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_kind_lists_are_refused_by_the_parser() {
    let base = ["fit", "--data", "/nonexistent", "--registry", "/nonexistent"];
    for (flag, value, says) in [
        ("--augment-kinds", "shift,echo", "unknown augmentation kind \"echo\""),
        ("--augment-kinds", "gain=1.5", "not a number in 0..1"),
        ("--augment-codecs", "mp3,flac", "invalid value 'flac'"),
    ] {
        let e = stderr_of(&[&base[..], &[flag, value]].concat(), None);
        assert!(e.contains(says), "{flag} {value}: {e}");
    }
}

#[test]
fn a_missing_codec_is_refused_before_any_audio() {
    // No opusenc on this PATH (and no sox): validation must stop the run, naming the package,
    // before the (nonexistent) dataset is even looked at.
    let empty = std::env::temp_dir().join(format!("vericlip-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let args = [
        "fit",
        "--data",
        "/nonexistent-dataset",
        "--registry",
        "/nonexistent-registry",
        "--augment-kinds",
        "shift,codec",
        "--augment-codecs",
        "opus",
    ];
    let e = stderr_of(&args, Some(&empty));
    assert!(e.contains("augmentation codec opus does not work on this machine"), "{e}");
    assert!(e.contains("opus-tools") && e.contains("scripts/setup.sh"), "{e}");
    assert!(!e.contains("nonexistent-dataset"), "the dataset was read before validation: {e}");
    // The default kinds need sox (GSM): the same check, before the data.
    let e = stderr_of(&args[..5], Some(&empty));
    assert!(e.contains("augmentation kind channel needs sox"), "{e}");
    // With augmentation off nothing is probed: the missing dataset is what fails.
    let e = stderr_of(&[&args[..], &["--augment", "0"]].concat(), Some(&empty));
    assert!(!e.contains("augmentation"), "{e}");
    std::fs::remove_dir_all(&empty).ok();
}
