//! `vericlip-server check` through the real binary: succeeds with the project's ONNX Runtime (also
//! from a copy of the binary outside the checkout, with no ORT_DYLIB_PATH set) and fails with a
//! message naming ORT_DYLIB_PATH and the path setup installs to when the library is missing.

use std::process::Command;

#[test]
fn check_reports_the_runtime_and_spec() {
    let out = Command::new(env!("CARGO_BIN_EXE_vericlip-server")).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ONNX Runtime 1.31.1") && stdout.contains("126 frames x 96"), "{stdout}");
}

#[test]
fn check_fails_clearly_without_the_library() {
    let out = Command::new(env!("CARGO_BIN_EXE_vericlip-server"))
        .arg("check")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so.1.31.1") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
    // ... and where setup puts it, so the fix is one copy-paste away.
    assert!(stderr.contains(".vendor/onnxruntime/libonnxruntime.so.1.31.1"), "{stderr}");
}

/// The README's first trap: a binary built with CARGO_TARGET_DIR outside the checkout, run
/// directly (no `cargo run`, so no ORT_DYLIB_PATH from .cargo/config.toml), from anywhere.
/// A copy of the binary in a folder of its own stands for it: nothing beside it, nothing in
/// the environment; it must still find the checkout's ONNX Runtime it was built with.
#[test]
fn a_binary_outside_the_checkout_finds_the_runtime_it_was_built_with() {
    let dir = std::env::temp_dir().join(format!("vericlip-elsewhere-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("vericlip-server");
    let _ = std::fs::remove_file(&bin);
    // A hard link when the file system allows (no 100 MB copy), else a copy.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_vericlip-server"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_vericlip-server"), &bin).unwrap();
    }
    let out = Command::new(&bin).arg("check").env_remove("ORT_DYLIB_PATH").current_dir(&dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ONNX Runtime 1.31.1"), "{stdout}");
}
