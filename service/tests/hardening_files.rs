//! Files an operator manages, made wrong under a running server (the real binary): the TLS
//! certificate and key, the API-key file and a model's `serving.json` each replaced by a FIFO
//! and by a symlink to `/dev/zero`, and deleted. The server stays up, keeps the last good file,
//! logs the refusal at WARN with the path and the reason, and still applies a good file that
//! comes after (its reload threads and registry watcher are not wedged), and SIGTERM still
//! stops it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, temp_registry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vericlip_server::api;

const MODEL: &str = "vericlip-lstm";

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// The ways an operator file goes wrong here: named for the reason the server must log.
#[derive(Clone, Copy, Debug)]
enum Wrong {
    Fifo,
    DevZero,
    Deleted,
}

impl Wrong {
    fn make(self, path: &Path) {
        let _ = std::fs::remove_file(path);
        match self {
            Wrong::Fifo => mkfifo(path),
            Wrong::DevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            Wrong::Deleted => {}
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Wrong::Fifo => "not a regular file (a FIFO)",
            Wrong::DevZero => "not a regular file (a character device)",
            Wrong::Deleted => "No such file or directory",
        }
    }
}

/// Replaces `to` with `contents` atomically (write aside, rename), as a Secret update does.
fn replace(to: &Path, contents: &[u8]) {
    let aside = to.with_extension("new");
    std::fs::write(&aside, contents).unwrap();
    let _ = std::fs::remove_file(to);
    std::fs::rename(&aside, to).unwrap();
}

async fn wait_for(what: &str, server: &Server, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: not within 60 s; log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a WARN (or, for a refused serving state, the watcher's ERROR: it is alerted on)
/// line naming `path` (as the log shows it: registry files relative to the registry) and `reason`.
async fn wait_for_refusal(server: &Server, path: &str, reason: &str) {
    wait_for(&format!("a WARN refusing {path} ({reason})"), server, async || {
        server
            .log_text()
            .lines()
            .any(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains(path) && l.contains(reason))
    })
    .await;
}

fn assert_alive(server: &mut Server) {
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited; log:\n{}", server.log_text());
    let (status, _, body) = common::http_request(&server.admin, "GET", "/healthz", "text/plain", b"");
    assert_eq!(status, 200, "liveness: {}", String::from_utf8_lossy(&body));
}

/// The server's RSS stays far from what reading `/dev/zero` whole would cost.
fn assert_small(server: &Server) {
    let rss_mib = server.rss_kib() >> 10;
    assert!(rss_mib < 1024, "RSS {rss_mib} MiB: a device was read");
}

async fn list_models(server: &Server, key: &str) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(api::ListModelsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    server.client().await.list_models(request).await.map(drop)
}

fn write_state(reg: &Path, generation: u64) {
    let state = format!(r#"{{"format": 1, "stable": 1, "generation": {generation}}}"#);
    replace(&reg.join(MODEL).join("serving.json"), state.as_bytes());
}

fn generation(server: &Server) -> f64 {
    server.metric(&format!("vericlip_model_state_generation{{model=\"{MODEL}\"}}"))
}

/// API keys and serving state: the key in use keeps working and the serving state in use keeps
/// serving while each file is a FIFO, `/dev/zero` or gone; a good file after that is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_serving_state_as_fifo_or_device_keep_the_last_good_one() {
    let reg = temp_registry("operator-files");
    write_state(&reg, 1);
    let keys = reg.with_extension("keys");
    std::fs::write(&keys, "key-1\n").unwrap();
    let mut server = Server::start(&reg, &[("VERICLIP__AUTH__API_KEY_FILE", &keys.display().to_string())]).await;
    list_models(&server, "key-1").await.unwrap();
    assert_eq!(generation(&server), 1.0);

    let serving = reg.join(MODEL).join("serving.json");
    for (n, wrong) in [Wrong::Fifo, Wrong::DevZero, Wrong::Deleted].into_iter().enumerate() {
        let n = n as u64 + 2;
        wrong.make(&keys);
        wait_for_refusal(&server, &keys.display().to_string(), wrong.reason()).await;
        assert_alive(&mut server);
        assert_small(&server);
        list_models(&server, &format!("key-{}", n - 1)).await.expect("the key in use still works");
        // A good file after it is applied: the reload thread is not wedged.
        std::fs::write(reg.with_extension("tmp"), format!("key-{n}\n")).unwrap();
        std::fs::rename(reg.with_extension("tmp"), &keys).unwrap();
        wait_for(&format!("key-{n} accepted after {wrong:?}"), &server, async || {
            list_models(&server, &format!("key-{n}")).await.is_ok()
        })
        .await;
        assert_eq!(
            list_models(&server, &format!("key-{}", n - 1)).await.unwrap_err().code(),
            tonic::Code::Unauthenticated
        );

        // The serving state: NotFound is "no serving state" (a model that predates it), a
        // registry-level decision left to the watcher; FIFO and device are refused.
        if !matches!(wrong, Wrong::Deleted) {
            wrong.make(&serving);
            wait_for_refusal(&server, &format!("{MODEL}/serving.json"), wrong.reason()).await;
            assert_alive(&mut server);
            assert_small(&server);
            assert_eq!(generation(&server), (n - 1) as f64, "the serving state in use stays");
            // A good serving state after it is applied: the registry watcher is not wedged.
            write_state(&reg, n);
            wait_for(&format!("generation {n} applied after {wrong:?}"), &server, async || {
                generation(&server) == n as f64
            })
            .await;
        } else {
            write_state(&reg, n);
            wait_for("generation applied", &server, async || generation(&server) == n as f64).await;
        }
    }
    assert_eq!(server.terminate().code(), Some(0), "log:\n{}", server.log_text());
}

fn leaf(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().as_ref().to_vec()
}

/// The leaf certificate a new TLS connection to `addr` is served (verified against the CA).
async fn served_leaf(dir: &Path, addr: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connect = TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp);
    let tls = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.peer_certificates().ok_or("no certificate")?[0].as_ref().to_vec())
}

/// The certificate and the key, each a FIFO, `/dev/zero` and deleted in turn (a dangling
/// `..data` link reads as deleted): new handshakes keep getting the certificate in use, the
/// refusal is a WARN naming the file, and a new certificate after all that is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_and_key_as_fifo_device_or_deleted_keep_the_last_good_one() {
    let dir = std::env::temp_dir().join(format!("vericlip-operator-tls-pki-{}", std::process::id()));
    common::test_ca(&dir, "vericlip operator-files CA");
    for name in ["a", "b"] {
        common::signed_certificate(&dir, name, common::SERVER_EXT);
    }
    let live: PathBuf = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("tls.crt"), live.join("tls.key"));
    std::fs::copy(dir.join("a.pem"), &cert).unwrap();
    std::fs::copy(dir.join("a.key"), &key).unwrap();
    let (a, b) = (leaf(&dir.join("a.pem")), leaf(&dir.join("b.pem")));

    let reg = temp_registry("operator-tls");
    let p = |f: &Path| f.display().to_string();
    let mut server =
        Server::spawn(&reg, &[("VERICLIP__TLS__CERT_FILE", &p(&cert)), ("VERICLIP__TLS__KEY_FILE", &p(&key))]);
    let http = server.http.clone();
    wait_for("TLS up", &server, async || served_leaf(&dir, &http).await.is_ok()).await;

    for file in [&cert, &key] {
        let good = std::fs::read(file).unwrap();
        for wrong in [Wrong::Fifo, Wrong::DevZero, Wrong::Deleted] {
            wrong.make(file);
            wait_for_refusal(&server, &file.display().to_string(), wrong.reason()).await;
            assert_alive(&mut server);
            assert_small(&server);
            assert_eq!(served_leaf(&dir, &http).await.unwrap(), a, "the certificate in use changed");
        }
        replace(file, &good);
    }
    // A new certificate and key after all that: installed (the reload thread is not wedged).
    replace(&key, &std::fs::read(dir.join("b.key")).unwrap());
    replace(&cert, &std::fs::read(dir.join("b.pem")).unwrap());
    wait_for("certificate b served", &server, async || served_leaf(&dir, &http).await.ok() == Some(b.clone())).await;
    assert_eq!(server.terminate().code(), Some(0), "log:\n{}", server.log_text());
}

/// Nothing an operator's file does keeps a replica from stopping: with `serving.json` made a
/// FIFO (which blocked the registry watcher's read forever, and SIGTERM then waited on that
/// thread without a limit), SIGTERM still drains and exits 0 within the drain limit plus the
/// join grace. The join's own deadline (a thread that never ends) is tested in `drain.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_fifo_for_a_serving_state_exits_0_within_the_drain_limit() {
    let reg = temp_registry("shutdown-fifo");
    let serving = reg.join("vericlip-lstm/serving.json");
    std::fs::write(&serving, r#"{"format": 1, "stable": 1, "generation": 1}"#).unwrap();
    let mut server = Server::start(&reg, &[("VERICLIP__SHUTDOWN__DRAIN_SECONDS", "2")]).await;
    std::fs::remove_file(&serving).unwrap();
    mkfifo(&serving);
    // The watcher rescans on the change (and every 0.5 s): give it a few scans at the FIFO.
    let started = Instant::now();
    while !server.log_text().contains("a FIFO") {
        assert!(started.elapsed() < Duration::from_secs(30), "the FIFO was never refused; log:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = common::http_request(&server.admin, "GET", "/readyz", "text/plain", b"");
    assert_eq!(status, 200, "the replica keeps serving its last good state");

    let signalled = Instant::now();
    let kill = std::process::Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(kill.success());
    // Drain 2 s, cut grace 2 s, ports 4 s, join grace 5 s: well within 30 s; a wedged watcher
    // never exits.
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "SIGTERM did not stop the server within 30 s; log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0), "log:\n{}", server.log_text());
}

const CA_EXT: &str = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n";

/// PEM of one DER certificate.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// A renewed certificate whose intermediate is corrupted (a byte of its public key flipped, or
/// the certificate cut short) is refused with the reason, and the chain in use keeps serving;
/// a good chain after it is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_a_corrupted_intermediate_is_refused_and_the_old_one_kept() {
    let dir = std::env::temp_dir().join(format!("vericlip-chain-pki-{}", std::process::id()));
    // root CA -> intermediate CA -> leaves 1 and 2.
    common::test_ca(&dir, "vericlip chain root");
    common::signed_certificate(&dir, "int", CA_EXT);
    let issuing = dir.join("issuing");
    std::fs::create_dir_all(&issuing).unwrap();
    std::fs::copy(dir.join("int.pem"), issuing.join("ca.pem")).unwrap();
    std::fs::copy(dir.join("int.key"), issuing.join("ca.key")).unwrap();
    for name in ["leaf1", "leaf2"] {
        common::signed_certificate(&issuing, name, common::SERVER_EXT);
    }
    let int_der = leaf(&dir.join("int.pem"));
    let chain = |leaf_name: &str, int: &[u8]| {
        format!("{}{}", pem(&leaf(&issuing.join(format!("{leaf_name}.pem")))), pem(int)).into_bytes()
    };
    let live = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("tls.crt"), live.join("tls.key"));
    std::fs::write(&cert, chain("leaf1", &int_der)).unwrap();
    std::fs::copy(issuing.join("leaf1.key"), &key).unwrap();
    let (leaf1, leaf2) = (leaf(&issuing.join("leaf1.pem")), leaf(&issuing.join("leaf2.pem")));

    let reg = temp_registry("chain");
    let p = |f: &Path| f.display().to_string();
    let mut server =
        Server::spawn(&reg, &[("VERICLIP__TLS__CERT_FILE", &p(&cert)), ("VERICLIP__TLS__KEY_FILE", &p(&key))]);
    let http = server.http.clone();
    // The client trusts the root only: the served intermediate must be right.
    wait_for("TLS up", &server, async || served_leaf(&dir, &http).await.ok() == Some(leaf1.clone())).await;

    // The EC public key of the intermediate: BIT STRING of 66 bytes, uncompressed point.
    let key_at = int_der.windows(4).position(|w| w == [0x03, 0x42, 0x00, 0x04]).expect("an EC P-256 key") + 4;
    let mut flipped = int_der.clone();
    flipped[key_at + 10] ^= 0x55;
    let cut = int_der[..int_der.len() - 40].to_vec();
    let leaf2_key = std::fs::read(issuing.join("leaf2.key")).unwrap();
    for (n, (what, bad_int)) in [("a flipped key byte", flipped), ("cut short", cut)].into_iter().enumerate() {
        // The new key first (refused: it does not match the leaf in use), then the new leaf
        // with the bad intermediate.
        replace(&key, &leaf2_key);
        replace(&cert, &chain("leaf2", &bad_int));
        wait_for(&format!("the chain with an intermediate {what} refused"), &server, async || {
            server
                .log_text()
                .lines()
                .filter(|l| l.contains("WARN") && l.contains("reload refused") && l.contains("tls.cert_file"))
                .filter(|l| l.contains("the chain does not verify") || l.contains("certificate 2 of the chain"))
                .count()
                > n
        })
        .await;
        assert!(!server.log_text().contains("reloaded"), "a broken chain was installed; log:\n{}", server.log_text());
        assert_alive(&mut server);
        assert_eq!(served_leaf(&dir, &http).await.unwrap(), leaf1, "the chain in use must keep serving");
    }
    replace(&cert, &chain("leaf2", &int_der));
    wait_for("the good new chain served", &server, async || served_leaf(&dir, &http).await.ok() == Some(leaf2.clone()))
        .await;
    assert_eq!(server.terminate().code(), Some(0), "log:\n{}", server.log_text());
}
