//! Shared by the trainer's end-to-end tests: the real `vericlip-train` binary and its output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
}

pub fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// Downloaded packages are kept between runs (the corpus itself is rebuilt every time).
pub fn corpus_work() -> PathBuf {
    std::env::var_os("VERICLIP_CORPUS_WORK").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/vericlip/corpus-work")
    })
}

/// `vericlip-train eval --json` of the published version `model` on `data`, through `cache`.
pub fn eval_json(model: &Path, data: &Path, cache: &Path, what: &str) -> Value {
    let mut cmd = bin();
    cmd.args(["eval", "--json", "--model"]).arg(model).arg("--data").arg(data).arg("--cache").arg(cache);
    json(&ok(cmd.output().unwrap(), what))
}

/// The librosa goldens and their clips (`tests/golden/make_goldens.py`), or `$VERICLIP_GOLDEN_DIR`;
/// missing goldens fail the test with the command that makes them.
pub fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("VERICLIP_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/out"));
    assert!(
        dir.join("clips").is_dir(),
        "golden clips missing in {}: run `.venv/bin/python tests/golden/make_goldens.py tests/golden/out` \
         (scripts/test.sh does this after scripts/setup.sh)",
        dir.display()
    );
    dir
}
