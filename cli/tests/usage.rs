//! The `vericlip` binary's own checks, without a server (the service's tests run it against real
//! servers: service/tests/cli.rs, load_shedding.rs, registry_limits.rs). Having an integration
//! test also makes `cargo test --workspace` build the binary those tests run.

use std::process::{Command, Output};

fn vericlip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vericlip"))
        .args(args)
        .env_remove("VERICLIP_ADDR")
        .env_remove("VERICLIP_API_KEY")
        .output()
        .expect("running vericlip")
}

#[test]
fn help_lists_every_subcommand() {
    let out = vericlip(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["classify", "stream", "models", "health", "bench"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(sub)), "{sub} missing from:\n{help}");
    }
}

#[test]
fn bad_addresses_and_tls_options_fail_with_a_reason_before_connecting() {
    let out = vericlip(&["--addr", "not a uri", "models"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad --addr not a uri"), "{out:?}");
    let out = vericlip(&["--addr", "http://127.0.0.1:1", "--ca-cert", "/nonexistent.pem", "models"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca-cert and --client-cert are for TLS"), "{err}");
    // Nothing listens on port 1: the error says where it tried.
    let out = vericlip(&["--addr", "http://127.0.0.1:1", "health"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to http://127.0.0.1:1"), "{out:?}");
}
