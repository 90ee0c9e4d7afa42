//! The `vericlip` CLI through the real binaries: against a server with mutual TLS and API keys
//! (`--ca-cert`, `--client-cert/--client-key`, `--api-key` and `VERICLIP_API_KEY`); a reader that
//! goes away (`classify --json | head -c 10`) ends it quietly with status 0; a missing file fails
//! its own row only; a connection error names its cause once.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Server, samples, temp_registry};

const KEY: &str = "cli-test-key-51c2";

fn cli() -> Command {
    let mut c = Command::new(common::cli_binary());
    c.env_remove("VERICLIP_API_KEY").env_remove("VERICLIP_ADDR");
    c
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_server_with_mutual_tls_and_api_keys() {
    let reg = temp_registry("cli-tls");
    let dir = reg.with_extension("certs");
    common::tls_certificates(&dir, "vericlip cli test CA");
    std::fs::write(dir.join("keys"), format!("{KEY}\n")).unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let server = Server::spawn(
        &reg,
        &[
            ("VERICLIP__TLS__CERT_FILE", &p("server.pem")),
            ("VERICLIP__TLS__KEY_FILE", &p("server.key")),
            ("VERICLIP__TLS__CLIENT_CA_FILE", &p("ca.pem")),
            ("VERICLIP__AUTH__API_KEY_FILE", &p("keys")),
        ],
    );
    // The certificate names localhost.
    let port = server.grpc.rsplit(':').next().unwrap().to_string();
    let addr = format!("https://localhost:{port}");
    let tls = ["--ca-cert", &p("ca.pem"), "--client-cert", &p("client.pem"), "--client-key", &p("client.key")];
    let clip = samples()[0].display().to_string();

    // Health is open to probes: wait for the model with it.
    let started = std::time::Instant::now();
    loop {
        let out = cli().args(["--addr", &addr]).args(tls).arg("health").output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "never healthy over mTLS: {}\n{}", text(&out), server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The key as a flag, and from the environment.
    let out = cli().args(["--addr", &addr]).args(tls).args(["--api-key", KEY, "classify", &clip]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("vericlip-lstm/1"), "{}", text(&out));
    let out = cli().env("VERICLIP_API_KEY", KEY).args(["--addr", &addr]).args(tls).args(["models"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The listing shows validation beside test, each as a percentage.
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listing.lines().next().is_some_and(|h| h.contains("val_eer") && h.contains("test_eer")), "{listing}");
    let row = listing.lines().find(|l| l.starts_with("vericlip-lstm")).unwrap_or_default();
    assert_eq!(row.matches('%').count(), 2, "{listing}");

    // Without the key: the server's UNAUTHENTICATED, named.
    let out = cli().args(["--addr", &addr]).args(tls).args(["classify", &clip]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"), "{}", text(&out));
    // Without the client certificate, the handshake is refused; without the CA, the server is
    // not trusted; TLS options on a plaintext address are a usage error.
    let out = cli().args(["--addr", &addr, "--ca-cert", &p("ca.pem"), "--api-key", KEY, "models"]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let out = cli()
        .env("SSL_CERT_FILE", p("client.pem"))
        .args(["--addr", &addr, "--api-key", KEY, "models"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let out = cli()
        .args(["--addr", &format!("http://127.0.0.1:{port}"), "--ca-cert", &p("ca.pem"), "models"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https://"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_a_closed_pipe_missing_files_and_connect_errors_are_handled() {
    let reg = temp_registry("cli-plain");
    let server = Server::start(&reg, &[]).await;
    let files: Vec<String> = samples().iter().map(|p| p.display().to_string()).collect();

    // The reader is gone before the answer is written: quiet, status 0.
    let mut child = cli()
        .args(["--addr", &server.grpc, "classify", "--json"])
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    // As a person types it.
    let line = format!(
        "set -o pipefail; '{}' --addr {} classify --json {} | head -c 10",
        common::cli_binary().display(),
        server.grpc,
        files.join(" ")
    );
    let out = Command::new("bash").args(["-c", &line]).env_remove("VERICLIP_API_KEY").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout.len(), 10, "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", text(&out));

    // A missing file fails its row only: the others are classified and printed; status 1.
    let missing = reg.join("no-such-clip.wav").display().to_string();
    let out = cli().args(["--addr", &server.grpc, "classify", &missing, &files[0], &files[1]]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = |f: &str| Path::new(f).file_name().unwrap().to_string_lossy().to_string();
    assert!(stdout.contains(&name(&files[0])) && stdout.contains(&name(&files[1])), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-clip.wav: cannot read"), "{}", text(&out));
    let out = cli().args(["--addr", &server.grpc, "classify", "--json", &missing, &files[0]]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");

    // Nothing listening: the cause once, not "tcp connect error" twice.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = cli().args(["--addr", &format!("http://127.0.0.1:{port}"), "health"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot connect to http://127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.matches("tcp connect error").count() <= 1, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
}
