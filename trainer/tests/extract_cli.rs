//! `vericlip-train extract` through the real binary: reference-shaped JSON equal to librosa's
//! goldens, every container format accepted, and bad files named in a non-zero exit.

// The same golden-file locator as core's integration tests (one definition).
#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::golden_dir;

fn extract(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vericlip-train")).arg("extract").args(args).output().unwrap()
}

#[test]
fn json_matches_the_librosa_goldens() {
    let dir = golden_dir();
    let goldens: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("goldens.json")).unwrap()).unwrap();
    let names = ["speech", "sweep", "short"];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join("clips").join(format!("{n}.wav"))).collect();
    let mut args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    args.push("--json".as_ref());
    let out = extract(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["spec"]["n_mels"], 64);
    assert_eq!(got["spec"]["window"], "hann");
    for (name, path) in names.iter().zip(&paths) {
        let g = got["features"][path.display().to_string()].as_array().unwrap();
        let w = goldens["features"][name].as_array().unwrap();
        assert_eq!(g.len(), w.len(), "{name}: frames");
        assert_eq!(g[0].as_array().unwrap().len(), 96);
        let max = g
            .iter()
            .zip(w)
            .flat_map(|(a, b)| {
                a.as_array()
                    .unwrap()
                    .iter()
                    .zip(b.as_array().unwrap())
                    .map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs())
                    .collect::<Vec<_>>()
            })
            .fold(0f64, f64::max);
        assert!(max <= 1e-3, "{name}: max abs diff {max} vs librosa");
    }
}

#[test]
fn all_formats_and_rates_are_accepted() {
    let dir = golden_dir().join("formats");
    for f in ["flac_s16.flac", "mp3.mp3", "ogg_vorbis.ogg", "wav_stereo_44k.wav", "wav_8k.wav", "wav_s24.wav"] {
        let out = extract(&[dir.join(f).as_os_str()]);
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("126 frames x 96 features"), "{f}: {text}");
    }
}

#[test]
fn bad_files_are_named_and_fail_the_run() {
    let tmp = std::env::temp_dir().join(format!("vericlip-extract-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let junk = tmp.join("notes.wav");
    std::fs::write(&junk, b"hello, I am a text file pretending to be audio").unwrap();
    let missing = tmp.join("missing.flac");
    let good = golden_dir().join("clips/speech.wav");
    let out = extract(&[good.as_os_str(), junk.as_os_str(), missing.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("notes.wav") && stderr.contains("not a recognised audio format"), "{stderr}");
    assert!(stderr.contains("missing.flac") && stderr.contains("cannot read"), "{stderr}");
    assert!(out.stdout.is_empty(), "no partial output on failure");
    std::fs::remove_dir_all(&tmp).ok();
}
