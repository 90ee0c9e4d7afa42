//! Shared helpers for core's integration tests: where the librosa goldens live.
#![allow(dead_code)]

use std::path::PathBuf;

/// `tests/golden/out` (written by `tests/golden/make_goldens.py`, which `scripts/test.sh` runs),
/// or `$VERICLIP_GOLDEN_DIR`. Missing goldens fail the test with instructions; never a skip.
pub fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("VERICLIP_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/out"));
    assert!(
        dir.join("goldens.json").is_file(),
        "librosa goldens missing in {}: run `.venv/bin/python tests/golden/make_goldens.py tests/golden/out` \
         (scripts/test.sh does this after scripts/setup.sh)",
        dir.display()
    );
    dir
}

pub fn read_f32_le(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
