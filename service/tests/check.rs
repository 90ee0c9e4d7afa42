//! `vericlip-server check` through the real binary: succeeds with the project's ONNX Runtime and
//! fails with a message naming ORT_DYLIB_PATH when the library is missing.

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
}
