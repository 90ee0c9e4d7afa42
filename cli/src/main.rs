//! `vericlip`: the command-line client. `classify` files, `stream` one in real time (or faster),
//! list `models`, check `health`, and `bench` (a load generator: clips/s and latency percentiles
//! at several concurrencies). Reaches a secured server too: `https://` addresses with the
//! server's CA (`--ca-cert`), a client certificate for mutual TLS, and an API key.
//! Output ends quietly when its reader goes away (`vericlip classify --json | head`).

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use vericlip_core::AudioLimits;
use vericlip_core::audio::decode_container;
use vericlip_proto::result::{ClipResult, SegmentResult};
use vericlip_proto::v1::{self as api, vericlip_client::VericlipClient};

/// Prints a line to stdout. A closed stdout (`| head`) ends the program quietly with status 0:
/// the reader has all it wanted. Any other write error is reported.
macro_rules! outln {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))
    };
}

fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(name = "vericlip", version, about = "Client for the Vericlip real/synthetic speech service")]
struct Cli {
    /// Server address: http://HOST:PORT, or https://HOST:PORT for a TLS server (scripts/demo.sh
    /// runs one on the default).
    #[arg(long, global = true, env = "VERICLIP_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// API key, sent as `authorization: Bearer KEY` (for servers with `[auth] api_key_file`).
    #[arg(long, global = true, env = "VERICLIP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA certificate(s) to verify an https:// server with (default: the system's roots,
    /// $SSL_CERT_FILE or /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// PEM client certificate chain, for servers that require mutual TLS (with --client-key).
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify audio files (any supported format).
    Classify {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long, default_value_t = 0)]
        version: u64,
        /// Per-request deadline in milliseconds (0 = none).
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// Stream one file as PCM chunks and print each window's verdict as it arrives.
    Stream {
        file: PathBuf,
        /// Seconds between window starts.
        #[arg(long, default_value_t = 1.0)]
        step: f64,
        /// Playback speed: 1 = real time, 0 = as fast as possible.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Chunk length in milliseconds.
        #[arg(long, default_value_t = 100)]
        chunk_ms: u64,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// List loaded models and versions.
    Models {
        #[arg(long)]
        json: bool,
    },
    /// Ask the standard gRPC health service (exit 0 only when SERVING).
    Health,
    /// Load test: classify the files round-robin at each concurrency; report clips/s and latency.
    Bench {
        files: Vec<PathBuf>,
        /// Comma-separated concurrency levels.
        #[arg(long, default_value = "1,4,16")]
        concurrency: String,
        /// Seconds per level.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
}

/// Upper-case verdicts for the tables.
fn verdict(v: i32) -> &'static str {
    match api::Verdict::try_from(v) {
        Ok(api::Verdict::Fake) => "FAKE",
        Ok(api::Verdict::Real) => "REAL",
        Ok(api::Verdict::NoSpeech) => "NO_SPEECH",
        _ => "UNSPECIFIED",
    }
}

/// Adds the API key to every call.
#[derive(Clone)]
struct ApiKey(Option<MetadataValue<Ascii>>);

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// A connection to the server, with the API key (if any) on every call.
type Conn = InterceptedService<Channel, ApiKey>;

/// An error and its causes on one line, each cause once (tonic's transport error repeats its
/// source's text, e.g. "tcp connect error" twice).
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

async fn connect(cli: &Cli) -> anyhow::Result<Conn> {
    let addr = cli.addr.as_str();
    let endpoint = Endpoint::from_shared(addr.to_string()).with_context(|| format!("bad --addr {addr}"))?;
    let https = endpoint.uri().scheme_str() == Some("https");
    if !https && (cli.ca_cert.is_some() || cli.client_cert.is_some()) {
        bail!("--ca-cert and --client-cert are for TLS: use an https:// --addr (got {addr})");
    }
    let connected = if https {
        let connector = tls_connector(cli, endpoint.uri())?;
        endpoint.connect_with_connector(connector).await
    } else {
        endpoint.connect().await
    };
    let channel = connected.map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {}", one_line(&e)))?;
    let key = match &cli.api_key {
        Some(k) => Some(
            format!("Bearer {}", k.trim())
                .parse::<MetadataValue<Ascii>>()
                .context("--api-key / VERICLIP_API_KEY must be printable ASCII")?,
        ),
        None => None,
    };
    Ok(InterceptedService::new(channel, ApiKey(key)))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TlsIo = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
type TlsConnecting = Pin<Box<dyn Future<Output = Result<TlsIo, BoxError>> + Send>>;

/// PEM certificates from `path`, or the system's roots when `None`.
fn roots(path: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let (file, what) = match path {
        Some(p) => (p.to_path_buf(), "--ca-cert"),
        None => (system, "the system CA bundle (give --ca-cert for a private CA)"),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(&file).with_context(|| format!("{what} {}: cannot read", file.display()))?
    {
        let cert = cert.with_context(|| format!("{what} {}: not a PEM certificate", file.display()))?;
        roots.add(cert).with_context(|| format!("{what} {}: unusable CA certificate", file.display()))?;
    }
    anyhow::ensure!(!roots.is_empty(), "{what} {}: no certificate in it", file.display());
    Ok(roots)
}

/// A connector that opens TCP to the URI's host and port and speaks TLS (ALPN h2) over it,
/// verifying the server against `--ca-cert` (and presenting `--client-cert` for mutual TLS).
fn tls_connector(
    cli: &Cli,
    uri: &Uri,
) -> anyhow::Result<
    impl tower::Service<Uri, Response = TlsIo, Error = BoxError, Future = TlsConnecting> + Clone + Send + 'static,
> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(cli.ca_cert.as_deref())?);
    let mut config = match (&cli.client_cert, &cli.client_key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect)
                    .with_context(|| format!("--client-cert {}: not a PEM certificate chain", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("--client-key {}: not a PEM private key", key.display()))?;
            builder.with_client_auth_cert(chain, key).context("--client-key does not match --client-cert")?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let host = uri.host().context("the https:// address needs a host")?;
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .with_context(|| format!("{host} is not a valid TLS server name"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Ok(tower::service_fn(move |uri: Uri| {
        let (connector, name) = (connector.clone(), name.clone());
        Box::pin(async move {
            let host = uri.host().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
            let tcp = tokio::net::TcpStream::connect((host.as_str(), uri.port_u16().unwrap_or(443))).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, BoxError>(TokioIo::new(tls))
        }) as TlsConnecting
    }))
}

fn client(conn: Conn) -> VericlipClient<Conn> {
    VericlipClient::new(conn).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
}

fn status_error(file: &str, s: &tonic::Status) -> anyhow::Error {
    let name = s.metadata().get("vericlip-error").and_then(|v| v.to_str().ok()).unwrap_or("-");
    anyhow::anyhow!("{file}: {:?} ({name}): {}", s.code(), s.message())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let channel = connect(&cli).await?;
    match cli.command {
        Command::Classify { files, model, version, timeout_ms, json } => {
            classify(channel, files, model, version, timeout_ms, json).await
        }
        Command::Stream { file, step, speed, chunk_ms, model, json } => {
            stream(channel, file, step, speed, chunk_ms, model, json).await
        }
        Command::Models { json } => models(channel, json).await,
        Command::Health => {
            let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
            let r = h
                .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                .await
                .map_err(|s| status_error("health", &s))?
                .into_inner();
            let status = tonic_health::pb::health_check_response::ServingStatus::try_from(r.status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            outln!("{status}");
            Ok(if status == "SERVING" { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
        }
        Command::Bench { files, concurrency, seconds, json } => {
            bench(channel, files, &concurrency, seconds, json).await
        }
    }
}

async fn classify(
    channel: Conn,
    files: Vec<PathBuf>,
    model: String,
    version: u64,
    timeout_ms: u64,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    if files.is_empty() {
        bail!("no files given");
    }
    let mut c = client(channel);
    let mut rows = Vec::new();
    let mut failed = false;
    for f in &files {
        // An unreadable file fails its own row, as an undecodable one does; the others go on.
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                failed = true;
                eprintln!("{}: cannot read: {e}", f.display());
                continue;
            }
        };
        let mut req = tonic::Request::new(api::ClassifyRequest {
            audio: Some(api::classify_request::Audio::Encoded(bytes)),
            model: model.clone(),
            version,
        });
        if timeout_ms > 0 {
            req.set_timeout(Duration::from_millis(timeout_ms));
        }
        match c.classify(req).await {
            Ok(r) => rows.push((f.display().to_string(), r.into_inner())),
            Err(s) => {
                failed = true;
                eprintln!("{}", status_error(&f.display().to_string(), &s));
            }
        }
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(f, r)| {
                let mut v = json!(ClipResult::from(r));
                v["file"] = json!(f);
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("{:<50}{:>10}{:>12}{:>10}{:>10}  model", "file", "verdict", "fake_score", "segments", "seconds");
        for (f, r) in &rows {
            // Characters, not bytes: a byte slice could split a multi-byte character.
            let n = f.chars().count();
            let name = if n > 49 { format!("...{}", f.chars().skip(n - 46).collect::<String>()) } else { f.clone() };
            outln!(
                "{name:<50}{:>10}{:>12.4}{:>10}{:>10.2}  {}/{}",
                verdict(r.verdict),
                r.fake_score,
                r.segments.len(),
                r.duration_seconds,
                r.model,
                r.model_version
            );
        }
    }
    Ok(if failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}

async fn stream(
    channel: Conn,
    file: PathBuf,
    step: f64,
    speed: f64,
    chunk_ms: u64,
    model: String,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let audio = decode_container(&bytes, &AudioLimits { max_seconds: 24.0 * 3600.0, ..AudioLimits::default() })?;
    let rate = audio.sample_rate;
    let chunk = ((chunk_ms.max(1) as f64 / 1000.0) * f64::from(rate)).ceil() as usize;
    let chunks: Vec<Vec<u8>> =
        audio.samples.chunks(chunk).map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect()).collect();
    let pace = if speed > 0.0 { Some(Duration::from_secs_f64(chunk as f64 / f64::from(rate) / speed)) } else { None };
    // When each chunk went out: a window's latency is from its last audio chunk to its verdict.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(vec![None; chunks.len()]));
    let outbound = async_stream(stream_config(rate, step, model), chunks, pace, std::sync::Arc::clone(&sent));
    let mut c = client(channel);
    let mut inbound = c.classify_stream(outbound).await.map_err(|s| status_error("stream", &s))?.into_inner();
    let started = Instant::now();
    let mut latencies = Vec::new();
    loop {
        let msg = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(s) => return Err(status_error(&file.display().to_string(), &s)),
        };
        match msg.message {
            Some(api::classify_stream_response::Message::Segment(s)) => {
                let last_chunk = ((s.end_seconds * f64::from(rate)).round() as usize).div_ceil(chunk).saturating_sub(1);
                let sent_at = sent.lock().ok().and_then(|v| v.get(last_chunk).copied().flatten());
                let latency_ms = sent_at.map(|t| t.elapsed().as_secs_f64() * 1e3);
                latencies.extend(latency_ms);
                print_window(&s, started.elapsed().as_secs_f64(), latency_ms, json);
            }
            Some(api::classify_stream_response::Message::Summary(r)) => print_stream_summary(&r, json),
            None => {}
        }
    }
    print_window_latencies(latencies, json);
    Ok(std::process::ExitCode::SUCCESS)
}

/// The stream's first message: f32 PCM, mono, at `rate`.
fn stream_config(rate: u32, step: f64, model: String) -> api::ClassifyStreamRequest {
    api::ClassifyStreamRequest {
        message: Some(api::classify_stream_request::Message::Config(api::StreamConfig {
            format: Some(api::stream_config::Format::Pcm(api::PcmFormat {
                encoding: api::PcmEncoding::F32le as i32,
                sample_rate: rate,
                channels: 1,
            })),
            step_seconds: step,
            model,
            version: 0,
        })),
    }
}

/// One window's verdict, `after` seconds into the stream, `latency_ms` after its last audio.
fn print_window(s: &api::SegmentScore, after: f64, latency_ms: Option<f64>, json: bool) {
    if json {
        // The wire verdict is always set by the server; the threshold only matters if not.
        let mut v = json!(SegmentResult::from_wire(s, f64::NAN));
        v["received_after_seconds"] = json!(after);
        v["latency_ms"] = json!(latency_ms);
        outln!("{}", json!({ "segment": v }));
    } else {
        outln!(
            "[{:7.2}s] window {:>3} {:6.2}-{:6.2}s  {:>9}  fake_score {:.4}  {}",
            after,
            s.index,
            s.start_seconds,
            s.end_seconds,
            verdict(s.verdict),
            s.fake_score,
            latency_ms.map_or(String::new(), |l| format!("{l:.1} ms after its audio"))
        );
    }
}

fn print_stream_summary(r: &api::ClassifyResponse, json: bool) {
    if json {
        outln!("{}", json!({"summary": ClipResult::from(r)}));
    } else {
        outln!(
            "summary: {} (fake_score {:.4}, threshold {:.4}) over {} windows, {:.2} s, model {}/{}",
            verdict(r.verdict),
            r.fake_score,
            r.threshold,
            r.segments.len(),
            r.duration_seconds,
            r.model,
            r.model_version
        );
    }
}

/// Percentiles of the windows' latencies after their last audio chunk (nothing without any).
fn print_window_latencies(mut latencies: Vec<f64>, json: bool) {
    if latencies.is_empty() {
        return;
    }
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let (p50, p99, max) = (q(0.5), q(0.99), latencies[latencies.len() - 1]);
    if json {
        outln!("{}", json!({"window_latency_ms": {"windows": latencies.len(), "p50": p50, "p99": p99, "max": max}}));
    } else {
        outln!(
            "window verdicts after their last audio chunk: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} windows)",
            latencies.len()
        );
    }
}

/// The request stream: the config, then the chunks, paced; `sent` records when each chunk went.
fn async_stream(
    config: api::ClassifyStreamRequest,
    chunks: Vec<Vec<u8>>,
    pace: Option<Duration>,
    sent: std::sync::Arc<std::sync::Mutex<Vec<Option<Instant>>>>,
) -> impl tokio_stream::Stream<Item = api::ClassifyStreamRequest> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(config).await.is_err() {
            return;
        }
        let start = tokio::time::Instant::now();
        for (i, c) in chunks.into_iter().enumerate() {
            if let Some(p) = pace {
                tokio::time::sleep_until(start + p * i as u32).await;
            }
            let msg = api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Audio(c)) };
            if tx.send(msg).await.is_err() {
                return;
            }
            if let Ok(mut v) = sent.lock()
                && let Some(slot) = v.get_mut(i)
            {
                *slot = Some(Instant::now());
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn models(channel: Conn, json: bool) -> anyhow::Result<std::process::ExitCode> {
    let r =
        client(channel).list_models(api::ListModelsRequest::default()).await.map_err(|s| status_error("models", &s))?;
    let listed = r.into_inner();
    let models = listed.models;
    if json {
        let out: Vec<_> = models
            .iter()
            .map(|m| {
                json!({"name": m.name, "version": m.version, "serving": m.serving, "created_at": m.created_at,
                       "sha256": m.sha256, "threshold": m.threshold, "execution_provider": m.execution_provider,
                       "canary": m.canary, "traffic_fraction": m.traffic_fraction,
                       "validation_metrics": m.validation_metrics, "test_metrics": m.test_metrics})
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        // Validation (unseen voices of trained engines) beside test (bundled versions 3 and 4:
        // engines never trained on): either alone misreads a model.
        // `serving`: "yes" for stable, "canary" for the canary; `traffic`: the share of the
        // requests without a version it answers (the canary's fraction, stable the rest).
        outln!(
            "{:<24}{:>8}{:>9}{:>9}{:>11}{:>9}{:>9}{:>8}  created",
            "model",
            "version",
            "serving",
            "traffic",
            "threshold",
            "val_eer",
            "test_eer",
            "ep"
        );
        let eer = |m: &std::collections::HashMap<String, f64>| {
            m.get("eer").map_or("-".to_string(), |e| format!("{:.1}%", 100.0 * e))
        };
        for m in &models {
            // A fraction, as `vericlip-train model canary V --fraction F` takes it.
            let traffic = if m.traffic_fraction > 0.0 { format!("{:.2}", m.traffic_fraction) } else { String::new() };
            outln!(
                "{:<24}{:>8}{:>9}{:>9}{:>11.4}{:>9}{:>9}{:>8}  {}",
                m.name,
                m.version,
                if m.serving {
                    "yes"
                } else if m.canary {
                    "canary"
                } else {
                    ""
                },
                traffic,
                m.threshold,
                eer(&m.validation_metrics),
                eer(&m.test_metrics),
                m.execution_provider,
                m.created_at
            );
        }
        for r in &listed.rejected {
            outln!("{:<24}{:>8}  rejected: {}", r.name, r.version, r.reason);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(
    channel: Conn,
    files: Vec<PathBuf>,
    concurrency: &str,
    seconds: f64,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    if files.is_empty() {
        bail!("no files given");
    }
    let clips: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect::<Result<_, _>>()?;
    let clips = std::sync::Arc::new(clips);
    let levels: Vec<usize> = concurrency
        .split(',')
        .map(|s| s.trim().parse::<usize>().with_context(|| format!("bad concurrency `{s}`")))
        .collect::<Result<_, _>>()?;
    let mut report = Vec::new();
    if !json {
        outln!(
            "{:>11}{:>9}{:>10}{:>10}{:>10}{:>10}  errors",
            "concurrency",
            "clips",
            "clips/s",
            "p50_ms",
            "p99_ms",
            "max_ms"
        );
    }
    for &level in &levels {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..level.max(1) {
            let (channel, clips) = (channel.clone(), std::sync::Arc::clone(&clips));
            tasks.push(tokio::spawn(async move {
                let mut c = client(channel);
                let mut lat = Vec::new();
                let mut errors: BTreeMap<String, usize> = BTreeMap::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let req = api::ClassifyRequest {
                        audio: Some(api::classify_request::Audio::Encoded(clips[i % clips.len()].clone())),
                        model: String::new(),
                        version: 0,
                    };
                    i += 1;
                    let t = Instant::now();
                    match c.classify(req).await {
                        Ok(_) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(s) => *errors.entry(format!("{:?}", s.code())).or_default() += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            let (l, e) = t.await?;
            lat.extend(l);
            for (k, v) in e {
                *errors.entry(k).or_default() += v;
            }
        }
        let wall = started.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        let row = json!({
            "concurrency": level, "clips": lat.len(), "clips_per_second": lat.len() as f64 / wall,
            "p50_ms": percentile(&lat, 50.0), "p99_ms": percentile(&lat, 99.0),
            "max_ms": lat.last().copied().unwrap_or(f64::NAN), "errors": errors,
        });
        if !json {
            outln!(
                "{:>11}{:>9}{:>10.1}{:>10.1}{:>10.1}{:>10.1}  {:?}",
                level,
                lat.len(),
                lat.len() as f64 / wall,
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
                lat.last().copied().unwrap_or(f64::NAN),
                errors
            );
        }
        report.push(row);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
