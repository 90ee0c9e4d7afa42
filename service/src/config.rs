//! Layered configuration: built-in defaults < a TOML file (`--config`) < environment variables
//! `VERICLIP__SECTION__KEY` (e.g. `VERICLIP__GRPC__ADDR=127.0.0.1:9000`). Unknown keys are errors,
//! and every error names the key that is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
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
    pub registry: Registry,
    pub runtime: Runtime,
    pub limits: Limits,
    pub log: Log,
    pub shutdown: Shutdown,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grpc {
    pub addr: String,
    /// Largest request message accepted (bytes); larger ones get RESOURCE_EXHAUSTED from tonic.
    pub max_message_bytes: usize,
}

impl Default for Grpc {
    fn default() -> Self {
        Self { addr: "0.0.0.0:50051".into(), max_message_bytes: 32 << 20 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub addr: String,
}

impl Default for Http {
    fn default() -> Self {
        Self { addr: "0.0.0.0:8080".into() }
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
}

impl Default for Registry {
    fn default() -> Self {
        Self { path: "models".into(), default_model: String::new(), pin: BTreeMap::new(), poll_seconds: 5.0 }
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
    /// A stream that sends no audio (or takes no verdicts) for this long is closed.
    pub stream_idle_seconds: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_audio_seconds: 600.0, max_streams: 64, stream_idle_seconds: 30.0 }
    }
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

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.addr.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 50051)))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8080)))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Err(e) = self.grpc.addr.parse::<SocketAddr>() {
            return invalid("grpc.addr", format!("`{}` is not a socket address (host:port): {e}", self.grpc.addr));
        }
        if let Err(e) = self.http.addr.parse::<SocketAddr>() {
            return invalid("http.addr", format!("`{}` is not a socket address (host:port): {e}", self.http.addr));
        }
        if self.grpc.max_message_bytes < 1024 {
            return invalid("grpc.max_message_bytes", "must be at least 1024".into());
        }
        if !self.registry.path.is_dir() {
            return invalid("registry.path", format!("{} is not a directory", self.registry.path.display()));
        }
        if !(self.registry.poll_seconds.is_finite() && self.registry.poll_seconds >= 0.1) {
            return invalid("registry.poll_seconds", "must be at least 0.1".into());
        }
        for (name, &v) in &self.registry.pin {
            if v == 0 {
                return invalid("registry.pin", format!("model `{name}`: versions start at 1"));
            }
        }
        let r = &self.runtime;
        if r.execution_provider == ExecutionProvider::Cuda && !cfg!(feature = "cuda") {
            return invalid(
                "runtime.execution_provider",
                "`cuda` needs a build with the `cuda` cargo feature; this one has CPU only (use `auto` or `cpu`)"
                    .into(),
            );
        }
        if !(1..=64).contains(&r.sessions) {
            return invalid("runtime.sessions", "must be within 1..=64".into());
        }
        if r.feature_workers > 1024 {
            return invalid("runtime.feature_workers", "must be within 0..=1024".into());
        }
        if !(1..=4096).contains(&r.max_batch) {
            return invalid("runtime.max_batch", "must be within 1..=4096".into());
        }
        if r.max_delay_ms > 1000 {
            return invalid("runtime.max_delay_ms", "must be at most 1000".into());
        }
        if r.max_queue == 0 {
            return invalid("runtime.max_queue", "must be at least 1".into());
        }
        if !(self.limits.max_audio_seconds.is_finite() && self.limits.max_audio_seconds >= 2.0) {
            return invalid("limits.max_audio_seconds", "must be at least 2".into());
        }
        if !(self.limits.stream_idle_seconds.is_finite() && self.limits.stream_idle_seconds >= 0.1) {
            return invalid("limits.stream_idle_seconds", "must be at least 0.1".into());
        }
        if self.limits.max_streams == 0 {
            return invalid("limits.max_streams", "must be at least 1".into());
        }
        if !(self.shutdown.drain_seconds.is_finite() && self.shutdown.drain_seconds >= 0.0) {
            return invalid("shutdown.drain_seconds", "must be a non-negative number".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", format!("`{}` is not a tracing filter: {e}", self.log.level));
        }
        Ok(())
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
