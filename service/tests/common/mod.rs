//! Runs the real `vericlip-server` binary on ephemeral ports over a temporary registry, and
//! talks to it over real sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vericlip_server::api::vericlip_client::VericlipClient;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn samples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for label in ["real", "fake"] {
        let dir = repo().join("models/samples").join(label);
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "wav"));
        files.sort();
        out.extend(files);
    }
    assert!(out.len() >= 4, "bundled sample clips missing");
    out
}

// One copy of the registry fixtures for every test crate (core, trainer, service).
#[path = "../../../core/tests/fixtures/registry_versions.rs"]
pub mod fixture;
pub use fixture::copy_dir;

/// Another replica's path to the registry `reg`: a symbolic link named `<name>-<pid>` beside it,
/// so a second server reads the same folder but writes its own log file. Remove it when done.
pub fn replica_link(reg: &Path, name: &str) -> PathBuf {
    let link = reg.with_file_name(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(reg, &link).unwrap();
    link
}

/// A fresh registry holding a copy of the bundled model as version 1.
pub fn temp_registry(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vericlip-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repo().join("models/vericlip-lstm/1"), &dir.join("vericlip-lstm/1"));
    dir
}

/// The `vericlip` client binary (package `vericlip-cli`), beside the server binary cargo built
/// for these tests. `cargo test --workspace` builds it; when it is missing or older than its
/// sources (a run of this package's tests alone), it is built here first, once per process.
pub fn cli_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let server = Path::new(env!("CARGO_BIN_EXE_vericlip-server"));
            let dir = server.parent().expect("the server binary has a directory");
            let bin = dir.join("vericlip");
            if !newer_than_sources(&bin) {
                let mut cargo = Command::new(env!("CARGO"));
                cargo.args(["build", "-p", "vericlip-cli", "--bin", "vericlip"]).current_dir(repo());
                if dir.file_name().is_some_and(|n| n == "release") {
                    cargo.arg("--release");
                }
                if let Some(target) = dir.parent() {
                    cargo.arg("--target-dir").arg(target);
                }
                let status = cargo.status().expect("running cargo to build the vericlip CLI");
                assert!(status.success(), "building the vericlip CLI failed: {status}");
            }
            bin
        })
        .clone()
}

/// Whether `bin` exists and is newer than every source file it is built from.
fn newer_than_sources(bin: &Path) -> bool {
    fn newest(path: &Path) -> std::time::SystemTime {
        let Ok(meta) = std::fs::metadata(path) else { return std::time::SystemTime::UNIX_EPOCH };
        if !meta.is_dir() {
            return meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        }
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| newest(&e.path()))
            .max()
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return false };
    ["cli", "proto", "core/src", "Cargo.lock"].iter().all(|p| newest(&repo().join(p)) <= built)
}

pub struct Server {
    pub child: Child,
    pub grpc: String,
    pub http: String,
    /// The admin port (`/healthz`, `/readyz`, `/metrics`), host:port.
    pub admin: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts the server and waits until it listens and a model serves.
    pub async fn start(registry: &Path, env: &[(&str, &str)]) -> Server {
        let server = Self::spawn(registry, env);
        server.wait_ready().await;
        server
    }

    /// Starts the server and waits until it listens (not until a model serves).
    pub fn spawn(registry: &Path, env: &[(&str, &str)]) -> Server {
        let log = registry.with_extension("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vericlip-server"));
        cmd.env("VERICLIP__GRPC__ADDR", "127.0.0.1:0")
            .env("VERICLIP__HTTP__ADDR", "127.0.0.1:0")
            .env("VERICLIP__ADMIN__ADDR", "127.0.0.1:0")
            .env("VERICLIP__REGISTRY__PATH", registry)
            .env("VERICLIP__REGISTRY__POLL_SECONDS", "0.5")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("vericlip-server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if line.starts_with("vericlip-server listening") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("server did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_default().to_string();
        Server { child, grpc: format!("http://{}", field("grpc=")), http: field("http="), admin: field("admin="), log }
    }

    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(ch) = Channel::from_shared(self.grpc.clone()).unwrap().connect().await {
                let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
                if let Ok(r) = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await
                    && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server never became ready; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc.clone()).unwrap().connect().await.unwrap()
    }

    pub async fn client(&self) -> VericlipClient<Channel> {
        VericlipClient::new(self.channel().await)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }

    /// A plain HTTP/1.1 request; returns (status, headers+body text).
    pub fn http(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        http_request(&self.http, method, path, content_type, body)
    }

    pub fn metrics(&self) -> String {
        let (status, _, body) = self.http("GET", "/metrics", "text/plain", b"");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// The value of one metric line (exact name with labels), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0.0)
    }

    pub fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
        self.terminate_wait()
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn terminate_wait(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the server process, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request to `addr`; returns (status, headers+body text).
pub fn http_request(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// A WAV file's bytes (16-bit PCM, mono), written by core's own WAV writer.
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("vericlip-wav-{}-{n}.wav", std::process::id()));
    vericlip_core::audio::write_wav_pcm16(&path, samples, rate).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

/// Mono f32 samples as little-endian bytes (raw PCM `f32le`).
pub fn pcm_f32(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Raw PCM as the tests send it: f32le, 16 kHz, mono.
pub fn f32_16k() -> vericlip_server::api::PcmFormat {
    use vericlip_server::api;
    api::PcmFormat { encoding: api::PcmEncoding::F32le as i32, sample_rate: 16_000, channels: 1 }
}

/// A unary request carrying `samples` as f32le 16 kHz mono PCM.
pub fn pcm_request(samples: &[f32]) -> vericlip_server::api::ClassifyRequest {
    use vericlip_server::api;
    api::ClassifyRequest {
        audio: Some(api::classify_request::Audio::Pcm(api::RawPcm { data: pcm_f32(samples), format: Some(f32_16k()) })),
        ..Default::default()
    }
}

/// ~14 s of speech at 16 kHz: the bundled clips back to back.
pub fn long_clip() -> Vec<f32> {
    let limits = vericlip_core::AudioLimits::default();
    samples().iter().flat_map(|p| vericlip_core::audio::load_file(p, 16_000, &limits).unwrap().samples).collect()
}

/// Runs `openssl ARGS` in `dir` (the test PKI below); panics with openssl's message on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
/// Extensions of a server certificate for localhost / 127.0.0.1.
pub const SERVER_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
/// Extensions of a client certificate (mutual TLS).
pub const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

/// A fresh folder `dir` holding a self-signed test CA (`ca.pem`, `ca.key`, valid two days).
pub fn test_ca(dir: &Path, common_name: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let subject = format!("/CN={common_name}");
    let mut ca = vec!["req", "-x509"];
    ca.extend(EC_KEY);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &subject]);
    openssl(dir, &ca);
}

/// `NAME.pem` and its own key `NAME.key` in `dir`, signed by the CA there, with extensions `ext`.
pub fn signed_certificate(dir: &Path, name: &str, ext: &str) {
    let (key, csr, pem, extfile, subject) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
        format!("/CN={name}"),
    );
    let mut req = vec!["req"];
    req.extend(EC_KEY);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &req);
    std::fs::write(dir.join(&extfile), ext).unwrap();
    let sign = ["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
    let mut x509 = sign.to_vec();
    x509.extend(["-out", &pem, "-days", "2", "-extfile", &extfile]);
    openssl(dir, &x509);
}

/// A CA, a server certificate for localhost / 127.0.0.1 (`server.pem`, `server.key`) and a client
/// certificate (`client.pem`, `client.key`), in a fresh folder `dir`.
pub fn tls_certificates(dir: &Path, ca_name: &str) {
    test_ca(dir, ca_name);
    signed_certificate(dir, "server", SERVER_EXT);
    signed_certificate(dir, "client", CLIENT_EXT);
}

/// One gRPC `ClassifyStream` of 16 kHz f32 PCM at step 1 s, the audio sent in `chunk` samples per
/// message: the window verdicts in order, and the summary.
pub async fn grpc_stream(
    server: &Server,
    audio: &[f32],
    chunk: usize,
) -> (Vec<vericlip_server::api::SegmentScore>, vericlip_server::api::ClassifyResponse) {
    use api::classify_stream_request::Message as M;
    use vericlip_server::api;
    let mut c = server.client().await;
    let config = M::Config(api::StreamConfig {
        format: Some(api::stream_config::Format::Pcm(f32_16k())),
        step_seconds: 1.0,
        ..Default::default()
    });
    let msgs: Vec<_> = std::iter::once(config)
        .chain(audio.chunks(chunk).map(|b| M::Audio(pcm_f32(b))))
        .map(|m| api::ClassifyStreamRequest { message: Some(m) })
        .collect();
    let mut inbound = c.classify_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let (mut windows, mut summary) = (Vec::new(), None);
    while let Some(m) = inbound.message().await.unwrap() {
        match m.message.unwrap() {
            api::classify_stream_response::Message::Segment(s) => windows.push(s),
            api::classify_stream_response::Message::Summary(s) => summary = Some(s),
        }
    }
    (windows, summary.expect("a summary"))
}
