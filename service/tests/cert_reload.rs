//! Certificate and API-key rotation under a running server (the real binary, TLS on both ports):
//! the files are replaced the way a Secret update replaces them; within seconds a new
//! connection (HTTP and gRPC port) is served the new certificate and the new key is accepted,
//! while a connection opened before keeps working on its old certificate; a broken certificate
//! file is refused (logged) and the certificate in use kept. Certificates are made with the
//! `openssl` command; the client is rustls.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, temp_registry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Replaces `to` with `contents` atomically (write aside, rename), as the kubelet's symlink swap
/// is atomic for a reader.
fn replace(to: &Path, contents: &[u8]) {
    let aside = to.with_extension("new");
    std::fs::write(&aside, contents).unwrap();
    std::fs::rename(&aside, to).unwrap();
}

fn leaf(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().as_ref().to_vec()
}

fn connector(dir: &Path, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` (verified against the CA, for "localhost") and the leaf
/// certificate the server presented.
async fn connect(dir: &Path, addr: &str, alpn: &[u8]) -> (TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(dir, alpn).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec();
    (tls, served)
}

/// One HTTP/1.1 keep-alive request on an open connection: (status, body).
async fn get(conn: &mut TlsStream<TcpStream>, path: &str, key: Option<&str>) -> (u16, String) {
    let auth = key.map(|k| format!("authorization: Bearer {k}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{auth}\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before a response");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    return (status, body[..length].to_string());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("a response within 20 s")
}

async fn wait_for(what: &str, server: &Server, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: not within 60 s; log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_and_keys_reach_new_connections_and_old_ones_continue() {
    let dir = std::env::temp_dir().join(format!("vericlip-rotation-{}", std::process::id()));
    // A CA, and two server certificates (`a`, `b`, each with its own key) it signed.
    common::test_ca(&dir, "vericlip rotation CA");
    for name in ["a", "b"] {
        common::signed_certificate(&dir, name, common::SERVER_EXT);
    }
    let live: PathBuf = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key, keys) = (live.join("tls.crt"), live.join("tls.key"), live.join("api-keys"));
    std::fs::copy(dir.join("a.pem"), &cert).unwrap();
    std::fs::copy(dir.join("a.key"), &key).unwrap();
    std::fs::write(&keys, "old-key\n").unwrap();
    let (a, b) = (leaf(&dir.join("a.pem")), leaf(&dir.join("b.pem")));

    let reg = temp_registry("cert-reload");
    let p = |f: &Path| f.display().to_string();
    let server = Server::spawn(
        &reg,
        &[
            ("VERICLIP__TLS__CERT_FILE", &p(&cert)),
            ("VERICLIP__TLS__KEY_FILE", &p(&key)),
            ("VERICLIP__AUTH__API_KEY_FILE", &p(&keys)),
        ],
    );
    let http = server.http.clone();
    let grpc = server.grpc.trim_start_matches("http://").to_string();
    wait_for("ready over HTTPS", &server, async || {
        let (mut c, _) = connect(&dir, &http, b"http/1.1").await;
        get(&mut c, "/readyz", None).await.0 == 200
    })
    .await;

    // A connection opened before the rotation, in use.
    let (mut old, served) = connect(&dir, &http, b"http/1.1").await;
    assert!(served == a, "the server presents certificate a at first");
    assert_eq!(get(&mut old, "/v1/models", Some("old-key")).await.0, 200);
    assert_eq!(get(&mut old, "/v1/models", Some("new-key")).await.0, 401);

    // Rotate: certificate b with its key, and a new API key.
    replace(&key, &std::fs::read(dir.join("b.key")).unwrap());
    replace(&cert, &std::fs::read(dir.join("b.pem")).unwrap());
    replace(&keys, b"new-key\n");
    wait_for("new HTTP connections get certificate b", &server, async || {
        connect(&dir, &http, b"http/1.1").await.1 == b
    })
    .await;
    let (_, on_grpc) = connect(&dir, &grpc, b"h2").await;
    assert!(on_grpc == b, "the gRPC port presents the new certificate too");
    let (mut fresh, _) = connect(&dir, &http, b"http/1.1").await;
    wait_for("the new API key is accepted", &server, async || {
        get(&mut fresh, "/v1/models", Some("new-key")).await.0 == 200
    })
    .await;
    assert_eq!(get(&mut fresh, "/v1/models", Some("old-key")).await.0, 401, "the removed key still works");

    // The connection from before the rotation still works (same TLS session, certificate a);
    // the keys it presents are checked against the new list.
    assert!(old.get_ref().1.peer_certificates().unwrap()[0].as_ref() == a.as_slice());
    assert_eq!(get(&mut old, "/healthz", None).await.0, 200);
    assert_eq!(get(&mut old, "/v1/models", Some("new-key")).await.0, 200);
    assert_eq!(get(&mut old, "/v1/models", Some("old-key")).await.0, 401);

    // The key as a query parameter is taken only on the WebSocket upgrade (/v1/stream): on other
    // routes it is refused, with or without a valid header, and the message says what to do.
    let (status, body) = get(&mut old, "/v1/models?api_key=new-key", None).await;
    assert!(status == 401 && body.contains("only on /v1/stream"), "{status} {body}");
    assert_eq!(get(&mut old, "/v1/models?api_key=new-key", Some("new-key")).await.0, 401);

    // A broken certificate file: refused with a log line, certificate b stays in use.
    // (Counted from here: the rotation itself may have been seen half done, key before
    // certificate, and refused once as a mismatch.)
    let refusals = || server.log_text().matches("reload refused").count();
    let before = refusals();
    replace(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    wait_for("the bad certificate is reported", &server, async || refusals() > before).await;
    let (mut after, served) = connect(&dir, &http, b"http/1.1").await;
    assert!(served == b, "a bad certificate file replaced the good one");
    assert_eq!(get(&mut after, "/v1/models", Some("new-key")).await.0, 200);
    // And a key file without keys does not lock everyone out.
    let before = refusals();
    replace(&keys, b"# emptied by mistake\n");
    wait_for("the empty key file is reported", &server, async || refusals() > before).await;
    assert_eq!(get(&mut after, "/v1/models", Some("new-key")).await.0, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
