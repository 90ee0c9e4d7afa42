//! TLS, mutual TLS and API keys through the real binary: a plaintext client is refused on a TLS
//! port, a missing or wrong key is refused (UNAUTHENTICATED / 401), the right key is accepted,
//! health stays open for probes, and the real Python grpcio client works over TLS and mTLS.
//! Certificates are made per test run with the `openssl` command; HTTPS is driven with `curl`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, repo, samples, temp_registry};
use vericlip_server::api;

const KEY: &str = "test-key-8f3a9c";

/// curl against the HTTPS port; returns (http status or 0 when the request failed, body).
fn curl(dir: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .current_dir(dir)
        .args(["-sS", "--max-time", "20", "--cacert", "ca.pem", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), format!("{body}{}", String::from_utf8_lossy(&out.stderr)))
}

fn https(server: &Server) -> String {
    // The certificate names localhost; curl resolves it to the server's loopback port.
    let port = server.http.rsplit(':').next().unwrap();
    format!("https://localhost:{port}")
}

async fn wait_ready_https(server: &Server, dir: &Path, extra: &[&str]) {
    let started = Instant::now();
    loop {
        if curl(dir, &format!("{}/readyz", https(server)), extra).0 == 200 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never ready over HTTPS; log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tls_env(dir: &Path, mutual: bool) -> Vec<(&'static str, String)> {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut env = vec![
        ("VERICLIP__TLS__CERT_FILE", p("server.pem")),
        ("VERICLIP__TLS__KEY_FILE", p("server.key")),
        ("VERICLIP__AUTH__API_KEY_FILE", p("keys")),
    ];
    if mutual {
        env.push(("VERICLIP__TLS__CLIENT_CA_FILE", p("ca.pem")));
    }
    env
}

fn python_tls(server: &Server, dir: &Path, mutual: bool) {
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} missing: run scripts/setup.sh", python.display());
    let mut cmd = Command::new(&python);
    cmd.arg(repo().join("tests/clients/python/test_tls.py"))
        .args(["--addr", server.grpc.trim_start_matches("http://")])
        .arg("--proto-dir")
        .arg(repo().join("proto"))
        .arg("--ca")
        .arg(dir.join("ca.pem"))
        .args(["--api-key", KEY])
        .arg("--clip")
        .arg(&samples()[0]);
    if mutual {
        cmd.arg("--client-cert").arg(dir.join("client.pem")).arg("--client-key").arg(dir.join("client.key"));
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all checks passed"), "python TLS client failed:\n{text}");
}

fn certs_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vericlip-certs-{tag}-{}", std::process::id()));
    common::tls_certificates(&dir, "vericlip test CA");
    std::fs::write(dir.join("keys"), format!("# test keys\n{KEY}\n")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_api_keys_refuses_plaintext_and_wrong_keys() {
    let dir = certs_dir("tls");
    let reg = temp_registry("tls");
    let env = tls_env(&dir, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::spawn(&reg, &env);
    wait_ready_https(&server, &dir, &[]).await;
    let base = https(&server);

    // Probes and metrics are open; the API needs the key.
    assert_eq!(curl(&dir, &format!("{base}/healthz"), &[]).0, 200);
    assert_eq!(curl(&dir, &format!("{base}/metrics"), &[]).0, 200);
    let clip = samples()[0].display().to_string();
    // Both HTTP versions: a refused upload is read (up to 1 MiB) before the 401, so the client
    // sees the answer rather than a reset stream or a broken pipe.
    let post = ["-X", "POST", "--http1.1", "--data-binary"];
    let data = format!("@{clip}");
    let (status, body) = curl(&dir, &format!("{base}/v1/classify"), &[post[0], post[1], post[2], post[3], &data]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthenticated"), "{body}");
    let wrong = "authorization: Bearer nope";
    let (status, _) = curl(&dir, &format!("{base}/v1/classify"), &[post[0], post[1], post[3], &data, "-H", wrong]);
    assert_eq!(status, 401);
    let right = format!("authorization: Bearer {KEY}");
    let (status, body) = curl(&dir, &format!("{base}/v1/classify"), &[post[0], post[1], post[3], &data, "-H", &right]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"verdict\""), "{body}");

    // A plaintext HTTP client on the TLS port gets no answer; so does a plaintext gRPC client.
    let (status, _) = curl(&dir, &format!("http://{}/healthz", server.http), &[]);
    assert_ne!(status, 200);
    let plain = tonic::transport::Channel::from_shared(server.grpc.clone()).unwrap().connect().await;
    if let Ok(ch) = plain {
        let r = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await;
        assert!(r.is_err(), "a plaintext gRPC call succeeded on the TLS port");
    }
    let mut plain_client = api::vericlip_client::VericlipClient::connect(server.grpc.clone()).await;
    if let Ok(c) = plain_client.as_mut() {
        assert!(c.list_models(api::ListModelsRequest::default()).await.is_err());
    }

    // The real Python grpcio client over TLS, with and without the key.
    python_tls(&server, &dir, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate() {
    let dir = certs_dir("mtls");
    let reg = temp_registry("mtls");
    let env = tls_env(&dir, true);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::spawn(&reg, &env);
    let client = ["--cert", "client.pem", "--key", "client.key"];
    wait_ready_https(&server, &dir, &client).await;
    let base = https(&server);
    // Without a client certificate the handshake fails: no HTTP status at all.
    let (status, _) = curl(&dir, &format!("{base}/healthz"), &[]);
    assert_eq!(status, 0);
    // A certificate from another CA is refused too.
    let other = certs_dir("mtls-other");
    let (cert, key) = (other.join("client.pem").display().to_string(), other.join("client.key").display().to_string());
    let foreign = ["--cert", cert.as_str(), "--key", key.as_str()];
    assert_eq!(curl(&dir, &format!("{base}/healthz"), &foreign).0, 0);
    assert_eq!(curl(&dir, &format!("{base}/healthz"), &client).0, 200);
    python_tls(&server, &dir, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_age_recycles_connections_without_failed_requests() {
    let reg = temp_registry("conn-age");
    let server = Server::start(&reg, &[("VERICLIP__GRPC__MAX_CONNECTION_AGE_SECONDS", "1")]).await;
    let before = server.metric("vericlip_accepted_connections_total{port=\"grpc\"}");
    // The real Python grpcio client, as platforms call the service (its transparent retry of
    // calls that never reached the server is what makes recycling lossless).
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} missing: run scripts/setup.sh", python.display());
    let out = Command::new(&python)
        .arg(repo().join("tests/clients/python/test_conn_age.py"))
        .args(["--addr", server.grpc.trim_start_matches("http://"), "--seconds", "5"])
        .arg("--proto-dir")
        .arg(repo().join("proto"))
        .arg("--clip")
        .arg(&samples()[0])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    let field = |k: &str| -> u64 {
        text.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let (ok, failed) = (field("ok="), field("failed="));
    let accepted = server.metric("vericlip_accepted_connections_total{port=\"grpc\"}") - before;
    assert_eq!(failed, 0, "{text}");
    assert!(ok > 20, "only {ok} requests: {text}");
    assert!(accepted >= 3.0, "the client's connection was recycled only {accepted} times in 5 s");
}
