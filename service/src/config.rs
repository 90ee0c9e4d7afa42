//! Layered configuration: built-in defaults < a TOML file (`--config`) < environment variables
//! `VERICLIP__SECTION__KEY` (e.g. `VERICLIP__GRPC__ADDR=127.0.0.1:9000`). Unknown keys are errors,
//! and every error names the key that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vericlip_core::AudioLimits;
use vericlip_core::runtime::ExecutionProvider;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub grpc: Grpc,
    pub http: Http,
    pub admin: Admin,
    pub registry: Registry,
    pub runtime: Runtime,
    pub limits: Limits,
    pub tls: Tls,
    pub auth: Auth,
    pub log: Log,
    pub shutdown: Shutdown,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grpc {
    pub addr: String,
    /// Largest request message accepted (bytes); larger ones get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Close each connection (GOAWAY, in-flight calls finish) after this long, so that
    /// long-lived HTTP/2 clients re-resolve and spread over new replicas; 0 = never.
    pub max_connection_age_seconds: f64,
    /// No longer used (the age never cuts an open call). Still accepted, and ignored with a
    /// warning at start, so that a config file written for an earlier release does not stop a
    /// rolled-out pod from starting (unknown keys are errors).
    #[serde(rename = "max_connection_age_grace_seconds")]
    pub removed_max_connection_age_grace_seconds: Option<f64>,
    /// Concurrent HTTP/2 streams (calls) per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive: a PING this often, and the connection is closed when its ACK does
    /// not arrive within the timeout (dead peers, half-open connections): a client that
    /// vanished mid-stream frees its stream slot within interval + timeout.
    pub keepalive_interval_seconds: f64,
    pub keepalive_timeout_seconds: f64,
}

impl Default for Grpc {
    fn default() -> Self {
        Self {
            addr: "0.0.0.0:50051".into(),
            max_message_bytes: 32 << 20,
            max_connection_age_seconds: 0.0,
            removed_max_connection_age_grace_seconds: None,
            max_concurrent_streams: 128,
            keepalive_interval_seconds: 5.0,
            keepalive_timeout_seconds: 10.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub addr: String,
    /// An HTTP/1 request's headers (and a TLS handshake) must arrive within this long.
    pub header_read_timeout_seconds: f64,
}

impl Default for Http {
    fn default() -> Self {
        Self { addr: "0.0.0.0:8080".into(), header_read_timeout_seconds: 10.0 }
    }
}

/// The admin port: `/healthz`, `/readyz` and `/metrics` only, on a listener of their own with
/// its own small connection cap, so that no load or flood on the API ports can starve the
/// probes (docs/ARCHITECTURE.md, "Probes"). The API port keeps `/healthz` and `/readyz` too.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// host:port; empty = no admin listener.
    pub addr: String,
    /// Open connections on the admin port (probes and a scraper need a handful).
    pub max_connections: usize,
}

impl Default for Admin {
    fn default() -> Self {
        Self { addr: "0.0.0.0:9090".into(), max_connections: 32 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registry {
    pub path: PathBuf,
    /// Model used when a request names none; empty = the only model in the registry.
    pub default_model: String,
    /// Versions to serve instead of the highest, per model name.
    pub pin: BTreeMap<String, u64>,
    /// Rescan interval: the fallback for volumes where file-change events do not arrive.
    pub poll_seconds: f64,
    /// Candidates (the N newest valid versions besides stable, canary and pinned) kept loaded;
    /// every other version stays on disk without a session.
    pub keep_warm: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            path: "models".into(),
            default_model: String::new(),
            pin: BTreeMap::new(),
            poll_seconds: 5.0,
            keep_warm: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtime {
    pub execution_provider: ExecutionProvider,
    /// libonnxruntime.so path; empty = ORT_DYLIB_PATH or next to the executable.
    pub ort_library: String,
    /// ONNX Runtime sessions (inference workers) per loaded model version.
    pub sessions: usize,
    /// Threads for decoding and features; 0 = one per CPU core.
    pub feature_workers: usize,
    /// Most segments in one ORT run.
    pub max_batch: usize,
    /// How long a batch waits for more segments after its first one arrives. 0 = none: a free
    /// worker takes everything already queued (up to `max_batch`), which batches under load
    /// anyway and measured best on CPU (docs/BENCHMARKS.md); a GPU, where a batch costs about
    /// what one segment does, gains from a few ms.
    pub max_delay_ms: u64,
    /// Requests admitted at once (decoding, queued or running); more get RESOURCE_EXHAUSTED.
    pub max_queue: usize,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            execution_provider: ExecutionProvider::Auto,
            ort_library: String::new(),
            sessions: 2,
            feature_workers: 0,
            max_batch: 32,
            max_delay_ms: 0,
            max_queue: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest audio per request (and per stream), seconds.
    pub max_audio_seconds: f64,
    pub max_streams: usize,
    /// A stream that sends no audio (non-empty audio: pings, empty messages and other traffic
    /// do not count) or takes no verdicts for this long is closed (DEADLINE_EXCEEDED,
    /// `stream_idle`); so is a request body that stalls for this long.
    pub stream_idle_seconds: f64,
    /// The minimum-rate rule for request bodies (HTTP bodies, gRPC messages being received):
    /// fewer than this many bytes within `body_rate_window_seconds` closes the request
    /// (DEADLINE_EXCEEDED / HTTP 504, `body_too_slow`), however steadily they trickle.
    pub body_min_bytes_per_window: u64,
    pub body_rate_window_seconds: f64,
    /// Memory that request audio may occupy at once (bodies as they arrive, decoded and
    /// resampled samples, features), in MiB; work beyond it gets RESOURCE_EXHAUSTED before it
    /// is buffered or decoded. 0 = derived: half the memory this process may use (its cgroup
    /// limit, else physical memory).
    pub memory_budget_mb: u64,
    /// Open connections per API port. At the limit, the oldest connection that has not sent a
    /// complete request head is closed to make room (so floods of stalled connections cannot
    /// lock out probes and clients); when all are busy, new connections are closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub connection_idle_seconds: f64,
    /// Highest input sample rate (Hz) and channel count accepted.
    pub max_sample_rate: u32,
    pub max_channels: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_audio_seconds: 600.0,
            max_streams: 64,
            stream_idle_seconds: 30.0,
            body_min_bytes_per_window: 1024,
            body_rate_window_seconds: 10.0,
            memory_budget_mb: 0,
            max_connections: 1024,
            connection_idle_seconds: 300.0,
            max_sample_rate: 192_000,
            max_channels: 8,
        }
    }
}

/// TLS for both ports from PEM files; all empty = plaintext.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert_file: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// CA bundle (PEM): when set, clients must present a certificate it signed (mutual TLS).
    pub client_ca_file: String,
}

impl Tls {
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }
}

/// API keys: when `api_key_file` is set, every API call needs `authorization: Bearer KEY`
/// (gRPC metadata or HTTP header). gRPC health, `/healthz`, `/readyz` and `/metrics` stay open.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// A file of keys, one per line (blank lines and `#` comments ignored).
    pub api_key_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `vericlip_server=debug,info`; RUST_LOG wins when set.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shutdown {
    /// How long SIGTERM waits for in-flight requests and streams before exiting anyway.
    pub drain_seconds: f64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { drain_seconds: 20.0 }
    }
}

impl Settings {
    /// Defaults, then `file` (if any), then `VERICLIP__...` variables from `env`; validated.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(f) = file {
            if !f.is_file() {
                return Err(ConfigError::Load(format!("config file {} does not exist", f.display())));
            }
            builder = builder.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        let vars: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("VERICLIP__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("VERICLIP")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let settings: Settings =
            builder.build().and_then(|c| c.try_deserialize()).map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The memory budget in bytes: `limits.memory_budget_mb`, or half of what this process may
    /// use (its cgroup's memory limit, else physical memory) when that is 0.
    pub fn memory_budget_bytes(&self) -> u64 {
        if self.limits.memory_budget_mb > 0 {
            return self.limits.memory_budget_mb << 20;
        }
        available_memory_bytes().map_or(1 << 30, |m| m / 2)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.addr.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 50051)))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8080)))
    }

    /// The admin listener's address; `None` when `admin.addr` is empty (disabled).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.addr.parse().ok()
    }

    /// The first rule of [`RULES`] the settings break, as an error naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        RULES.iter().try_for_each(|(key, check)| check(self).map_err(|message| ConfigError::Invalid { key, message }))
    }
}

/// A check of one key: `Err` says what is wrong with its value.
type Check = fn(&Settings) -> Result<(), String>;

/// Every key's rule, in the order they are checked (the first broken one is reported).
const RULES: &[(&str, Check)] =
    &[
        ("grpc.addr", |s| socket_addr(&s.grpc.addr, "")),
        ("http.addr", |s| socket_addr(&s.http.addr, "")),
        ("admin.addr", |s| {
            if s.admin.addr.is_empty() { Ok(()) } else { socket_addr(&s.admin.addr, ", nor empty (no admin port)") }
        }),
        ("admin.max_connections", |s| within(s.admin.max_connections, 1, 4096)),
        ("grpc.max_message_bytes", |s| at_least(s.grpc.max_message_bytes, 1024)),
        ("limits.body_rate_window_seconds", |s| seconds(s.limits.body_rate_window_seconds, 0.1)),
        ("grpc.max_connection_age_seconds", |s| seconds(s.grpc.max_connection_age_seconds, 0.0)),
        ("grpc.keepalive_interval_seconds", |s| seconds(s.grpc.keepalive_interval_seconds, 0.0)),
        ("grpc.keepalive_timeout_seconds", |s| seconds(s.grpc.keepalive_timeout_seconds, 0.1)),
        ("http.header_read_timeout_seconds", |s| seconds(s.http.header_read_timeout_seconds, 0.1)),
        ("limits.connection_idle_seconds", |s| seconds(s.limits.connection_idle_seconds, 1.0)),
        ("shutdown.drain_seconds", |s| seconds(s.shutdown.drain_seconds, 0.0)),
        ("grpc.max_concurrent_streams", |s| at_least(s.grpc.max_concurrent_streams, 1)),
        ("registry.path", |s| {
            let path = &s.registry.path;
            if path.is_dir() { Ok(()) } else { Err(format!("{} is not a directory", path.display())) }
        }),
        ("registry.poll_seconds", |s| finite_at_least(s.registry.poll_seconds, 0.1)),
        ("registry.pin", |s| match s.registry.pin.iter().find(|(_, v)| **v == 0) {
            Some((name, _)) => Err(format!("model `{name}`: versions start at 1")),
            None => Ok(()),
        }),
        // Each kept version holds its ONNX Runtime sessions.
        ("registry.keep_warm", |s| within(s.registry.keep_warm, 0, 64)),
        ("runtime.execution_provider", |s| {
            if s.runtime.execution_provider == ExecutionProvider::Cuda && !cfg!(feature = "cuda") {
                Err("`cuda` needs a build with the `cuda` cargo feature; this one has CPU only (use `auto` or `cpu`)"
                    .into())
            } else {
                Ok(())
            }
        }),
        ("runtime.sessions", |s| within(s.runtime.sessions, 1, 64)),
        ("runtime.feature_workers", |s| within(s.runtime.feature_workers, 0, 1024)),
        ("runtime.max_batch", |s| within(s.runtime.max_batch, 1, 4096)),
        ("runtime.max_delay_ms", |s| {
            if s.runtime.max_delay_ms <= 1000 { Ok(()) } else { Err("must be at most 1000".into()) }
        }),
        ("runtime.max_queue", |s| at_least(s.runtime.max_queue, 1)),
        ("limits.max_audio_seconds", |s| finite_at_least(s.limits.max_audio_seconds, 2.0)),
        ("limits.stream_idle_seconds", |s| finite_at_least(s.limits.stream_idle_seconds, 0.1)),
        ("limits.max_streams", |s| at_least(s.limits.max_streams, 1)),
        ("limits.memory_budget_mb", |s| match s.limits.memory_budget_mb {
            0 | 64..=0x100_0000 => Ok(()),
            _ => Err("must be 0 (derived) or within 64..=16777216 MiB".into()),
        }),
        ("limits.max_connections", |s| at_least(s.limits.max_connections, 4)),
        ("limits.max_sample_rate", |s| within(s.limits.max_sample_rate, 8_000, AudioLimits::default().max_sample_rate)),
        ("limits.max_channels", |s| within(s.limits.max_channels, 1, AudioLimits::default().max_channels)),
        ("tls.key_file", |s| {
            if s.tls.cert_file.is_empty() != s.tls.key_file.is_empty() {
                return Err("tls.cert_file and tls.key_file are set together".into());
            }
            readable_file(&s.tls.key_file)
        }),
        ("tls.client_ca_file", |s| {
            if !s.tls.client_ca_file.is_empty() && s.tls.cert_file.is_empty() {
                return Err("mutual TLS needs tls.cert_file and tls.key_file too".into());
            }
            readable_file(&s.tls.client_ca_file)
        }),
        ("tls.cert_file", |s| readable_file(&s.tls.cert_file)),
        ("auth.api_key_file", |s| readable_file(&s.auth.api_key_file)),
        ("log.level", |s| match tracing_subscriber::EnvFilter::try_new(&s.log.level) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("`{}` is not a tracing filter: {e}", s.log.level)),
        }),
    ];

fn socket_addr(addr: &str, or: &str) -> Result<(), String> {
    match addr.parse::<SocketAddr>() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("`{addr}` is not a socket address (host:port){or}: {e}")),
    }
}

fn within<T: PartialOrd + std::fmt::Display>(value: T, min: T, max: T) -> Result<(), String> {
    if min <= value && value <= max { Ok(()) } else { Err(format!("must be within {min}..={max}")) }
}

fn at_least<T: PartialOrd + std::fmt::Display>(value: T, min: T) -> Result<(), String> {
    if value >= min { Ok(()) } else { Err(format!("must be at least {min}")) }
}

fn finite_at_least(value: f64, min: f64) -> Result<(), String> {
    if value.is_finite() { at_least(value, min) } else { Err(format!("must be at least {min}")) }
}

/// A duration key: finite, at least `min`, at most a year.
fn seconds(value: f64, min: f64) -> Result<(), String> {
    if value.is_finite() && value >= min && value <= 86_400.0 * 365.0 {
        Ok(())
    } else {
        Err(format!("must be a number of seconds within {min}..=31536000 (0 = off where documented)"))
    }
}

/// A file key: empty (unset), or a file that exists.
fn readable_file(path: &str) -> Result<(), String> {
    if path.is_empty() || Path::new(path).is_file() { Ok(()) } else { Err(format!("{path} is not a readable file")) }
}

/// The memory this process may use: the cgroup v2 (or v1) limit when there is one, else the
/// machine's physical memory.
pub fn available_memory_bytes() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let physical = {
        // SAFETY: sysconf has no preconditions; a negative answer means unknown.
        let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGE_SIZE)) };
        (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
    };
    // "max" (no limit) does not parse; v1 reports "no limit" as a huge number.
    let cgroup = read("/sys/fs/cgroup/memory.max").or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    match (cgroup, physical) {
        (Some(c), Some(p)) => Some(c.min(p)),
        (c, p) => c.or(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn registry() -> String {
        env!("CARGO_MANIFEST_DIR").to_string() + "/../models"
    }

    #[test]
    fn env_overrides_defaults_and_file() {
        let dir = std::env::temp_dir().join(format!("vericlip-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[runtime]\nmax_batch = 8\nsessions = 3\n[http]\naddr = \"127.0.0.1:1\"\n").unwrap();
        let s = Settings::load(
            Some(&file),
            env(&[
                ("VERICLIP__GRPC__ADDR", "127.0.0.1:9000"),
                ("VERICLIP__RUNTIME__MAX_BATCH", "4"),
                ("VERICLIP__REGISTRY__PATH", &registry()),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.grpc_addr(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.runtime.max_batch, 4);
        assert_eq!(s.runtime.sessions, 3);
        assert_eq!(s.http.addr, "127.0.0.1:1");
        assert_eq!(s.runtime.max_queue, 64);
    }

    #[test]
    fn shipped_config_files_load_and_deploy_lists_the_defaults() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let vars = env(&[("VERICLIP__REGISTRY__PATH", &registry())]);
        let full = Settings::load(Some(&root.join("deploy/config.toml")), vars.clone()).unwrap();
        let defaults = Settings::load(None, vars.clone()).unwrap();
        // deploy/config.toml documents every key at its default value.
        assert_eq!(format!("{full:?}"), format!("{defaults:?}"));
        let k8s = Settings::load(Some(&root.join("k8s/base/config.toml")), vars).unwrap();
        assert_eq!(k8s.log.format, LogFormat::Json);
    }

    /// Each key has one rule, and it is a key the shipped config documents (a typo in a rule's
    /// key would name a key no operator can find).
    #[test]
    fn every_rule_names_one_documented_key() {
        let deploy = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.toml"));
        // `section.key` for every `key =` line, and every `[section.table]` header.
        let mut documented = std::collections::BTreeSet::new();
        let mut section = String::new();
        for line in deploy.unwrap().lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                section = header.to_string();
                documented.insert(section.clone());
            } else if let Some((key, _)) = line.split_once('=') {
                documented.insert(format!("{section}.{}", key.trim()));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in RULES {
            assert!(seen.insert(*key), "{key} has two rules");
            assert!(documented.contains(*key), "{key} is not in deploy/config.toml");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let reg = registry();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("VERICLIP__GRPC__ADDR", "nowhere")], "grpc.addr"),
            (&[("VERICLIP__RUNTIME__MAX_BATCH", "0")], "runtime.max_batch"),
            (&[("VERICLIP__RUNTIME__MAX_BATCH", "many")], "max_batch"),
            (&[("VERICLIP__RUNTIME__EXECUTION_PROVIDER", "tpu")], "tpu"),
            (&[("VERICLIP__GRPC__PORT", "1")], "port"),
            (&[("VERICLIP__REGISTRY__PATH", "/no/such/dir")], "registry.path"),
            (&[("VERICLIP__ADMIN__ADDR", "localhost")], "admin.addr"),
            (&[("VERICLIP__ADMIN__MAX_CONNECTIONS", "0")], "admin.max_connections"),
            (&[("VERICLIP__LIMITS__BODY_RATE_WINDOW_SECONDS", "0")], "limits.body_rate_window_seconds"),
            #[cfg(not(feature = "cuda"))]
            (&[("VERICLIP__RUNTIME__EXECUTION_PROVIDER", "cuda")], "runtime.execution_provider"),
        ];
        for (vars, key) in cases {
            let mut vars = env(vars);
            if !vars.iter().any(|(k, _)| k == "VERICLIP__REGISTRY__PATH") {
                vars.push(("VERICLIP__REGISTRY__PATH".into(), reg.clone()));
            }
            let e = Settings::load(None, vars.clone()).unwrap_err().to_string();
            assert!(e.contains(key), "{vars:?}: `{e}` does not name `{key}`");
        }
    }
}
