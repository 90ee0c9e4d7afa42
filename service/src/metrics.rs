//! Prometheus metrics, served at `/metrics` on the HTTP port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ErrorClass;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub rpc: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub model: String,
    pub version: String,
    pub execution_provider: String,
}

/// One version of one model (no provider: a version that failed to load has none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelVersionLabels {
    pub model: String,
    pub version: String,
}

/// Answers of one version by gRPC code (canary against stable on a dashboard).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnsweredLabels {
    pub model: String,
    pub version: String,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub model: String,
    pub version: String,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    pub port: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RpcLabels, Counter>,
    pub stage_seconds: Family<StageLabels, Histogram>,
    pub batch_size: Histogram,
    pub queue_depth: Gauge,
    pub active_streams: Gauge,
    pub expired_in_queue: Counter,
    pub serving_version: Family<ModelLabels, Gauge>,
    pub loaded: Family<VersionLabels, Gauge>,
    pub swaps: Family<ModelLabels, Counter>,
    pub load_failures: Family<ModelVersionLabels, Counter>,
    pub stable_version: Family<ModelLabels, Gauge>,
    pub canary_version: Family<ModelLabels, Gauge>,
    pub state_generation: Family<ModelLabels, Gauge>,
    pub state_changes: Family<ModelLabels, Counter>,
    pub state_invalid: Family<ModelLabels, Counter>,
    pub state_held: Family<ModelLabels, Gauge>,
    pub version_routed: Family<ModelVersionLabels, Counter>,
    pub version_answered: Family<AnsweredLabels, Counter>,
    pub version_seconds: Family<ModelVersionLabels, Histogram>,
    pub version_verdicts: Family<VerdictLabels, Counter>,
    pub execution_provider: Family<ProviderLabels, Gauge>,
    pub memory_budget_bytes: Gauge,
    pub memory_budget_used: Gauge,
    pub budget_refusals: Counter,
    pub cancelled_jobs: Counter,
    pub connections: Family<PortLabels, Gauge>,
    pub refused_connections: Family<PortLabels, Counter>,
    pub accepted_connections: Family<PortLabels, Counter>,
    tally: [std::sync::atomic::AtomicU64; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // The standard process metrics (unprefixed, as every Prometheus client names them) and
        // the service's own under `vericlip_`.
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("vericlip");
        let requests = Family::<RpcLabels, Counter>::default();
        registry.register("requests", "Requests by RPC and status code", requests.clone());
        let stage_seconds = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "stage_seconds",
            "Time per request stage (decode, features, queue, inference, total)",
            stage_seconds.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register("batch_size", "Segments per ONNX Runtime run", batch_size.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Requests admitted and not yet answered", queue_depth.clone());
        let active_streams = Gauge::default();
        registry.register("active_streams", "Open streams (gRPC ClassifyStream and WebSocket)", active_streams.clone());
        let expired_in_queue = Counter::default();
        registry.register(
            "expired_in_queue",
            "Requests whose deadline passed while queued (answered without inference)",
            expired_in_queue.clone(),
        );
        let serving_version = Family::<ModelLabels, Gauge>::default();
        registry.register("model_serving_version", "Version served by default, per model", serving_version.clone());
        let loaded = Family::<VersionLabels, Gauge>::default();
        registry.register("model_loaded", "Loaded model versions (1 = loaded)", loaded.clone());
        let swaps = Family::<ModelLabels, Counter>::default();
        registry.register("model_swaps", "Changes of the served version", swaps.clone());
        let load_failures = Family::<ModelVersionLabels, Counter>::default();
        registry.register(
            "model_load_failures",
            "Failed loads per model version (0 from the first scan that sees the version)",
            load_failures.clone(),
        );
        let stable_version = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_stable_version",
            "The stable version in the model's serving state as this replica reads it",
            stable_version.clone(),
        );
        let canary_version = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_canary_version",
            "The canary this replica routes to (0 = none)",
            canary_version.clone(),
        );
        let state_generation = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_state_generation",
            "Generation of the model's serving state this replica follows (0 = no serving.json)",
            state_generation.clone(),
        );
        let state_changes = Family::<ModelLabels, Counter>::default();
        registry.register(
            "model_state_changes",
            "Serving-state changes (canary, promote, rollback, retire) this replica followed",
            state_changes.clone(),
        );
        let state_invalid = Family::<ModelLabels, Counter>::default();
        registry.register(
            "model_state_invalid",
            "Serving states this replica refused (missing although the model had one, unreadable, invalid JSON, a stable or canary not on disk or rejected, a generation going backwards, a retired version back), once per distinct problem",
            state_invalid.clone(),
        );
        let state_held = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_state_held",
            "1 while the model's serving state on disk is refused and this replica keeps its last good one (or, with none, stays unready)",
            state_held.clone(),
        );
        let version_routed = Family::<ModelVersionLabels, Counter>::default();
        registry.register(
            "model_version_requests_routed",
            "Unary classifications routed to each model version (answered or not)",
            version_routed.clone(),
        );
        let version_answered = Family::<AnsweredLabels, Counter>::default();
        registry.register(
            "model_version_requests",
            "Unary classifications answered by each model version, by code",
            version_answered.clone(),
        );
        let version_seconds = Family::<ModelVersionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "model_version_request_seconds",
            "Whole-request time of the classifications each model version answered",
            version_seconds.clone(),
        );
        let version_verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "model_version_verdicts",
            "Verdicts (real, fake, no_speech) of each model version",
            version_verdicts.clone(),
        );
        let execution_provider = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "execution_provider",
            "Sessions on each ONNX Runtime execution provider",
            execution_provider.clone(),
        );
        let memory_budget_bytes = Gauge::default();
        registry.register(
            "memory_budget_bytes",
            "Bytes of request audio the server may hold at once (limits.memory_budget_mb)",
            memory_budget_bytes.clone(),
        );
        let memory_budget_used = Gauge::default();
        registry.register(
            "memory_budget_used_bytes",
            "Bytes of the memory budget held by requests and streams now",
            memory_budget_used.clone(),
        );
        let budget_refusals = Counter::default();
        registry.register(
            "memory_budget_refusals",
            "Work refused because the memory budget could not hold it",
            budget_refusals.clone(),
        );
        let cancelled_jobs = Counter::default();
        registry.register(
            "cancelled_jobs",
            "Decode/feature jobs dropped or stopped because their caller went away",
            cancelled_jobs.clone(),
        );
        let connections = Family::<PortLabels, Gauge>::default();
        registry.register("open_connections", "Open TCP connections per port", connections.clone());
        let refused_connections = Family::<PortLabels, Counter>::default();
        registry.register(
            "refused_connections",
            "Connections closed at once because the port was at twice limits.max_connections",
            refused_connections.clone(),
        );
        let accepted_connections = Family::<PortLabels, Counter>::default();
        registry.register("accepted_connections", "TCP connections accepted per port", accepted_connections.clone());
        Self {
            registry: root,
            requests,
            stage_seconds,
            batch_size,
            queue_depth,
            active_streams,
            expired_in_queue,
            serving_version,
            loaded,
            swaps,
            load_failures,
            stable_version,
            canary_version,
            state_generation,
            state_changes,
            state_invalid,
            state_held,
            version_routed,
            version_answered,
            version_seconds,
            version_verdicts,
            execution_provider,
            memory_budget_bytes,
            memory_budget_used,
            budget_refusals,
            cancelled_jobs,
            connections,
            refused_connections,
            accepted_connections,
            tally: Default::default(),
        }
    }

    pub fn open_connections(&self, port: &'static str) -> Gauge {
        self.connections.get_or_create(&PortLabels { port }).clone()
    }

    pub fn accepted_connection(&self, port: &'static str) {
        self.accepted_connections.get_or_create(&PortLabels { port }).inc();
    }

    pub fn refused_connection(&self, port: &'static str) {
        self.refused_connections.get_or_create(&PortLabels { port }).inc();
    }

    pub fn stage(&self, stage: &'static str, seconds: f64) {
        self.stage_seconds.get_or_create(&StageLabels { stage }).observe(seconds);
    }

    /// Counts an answered request: `Ok`, or its error's class.
    pub fn request(&self, rpc: &'static str, outcome: Result<(), ErrorClass>) {
        let code = outcome.map_or_else(ErrorClass::name, |()| "OK");
        self.requests.get_or_create(&RpcLabels { rpc, code }).inc();
        let slot = match outcome {
            Ok(()) => 0,
            Err(ErrorClass::Internal) => 2,
            Err(_) => 1,
        };
        self.tally[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A unary classification routed to `version` of `model` (counted before it runs, so that
    /// 1 - answered/routed is the version's failure ratio).
    pub fn routed(&self, model: &str, version: u64) {
        let labels = ModelVersionLabels { model: model.to_string(), version: version.to_string() };
        self.version_routed.get_or_create(&labels).inc();
    }

    /// A classification answered: its version's answers, latency and verdict.
    pub fn answered(&self, r: &crate::pipeline::ClipResult) {
        let (model, version) = (r.model.clone(), r.model_version.to_string());
        let code = "OK";
        self.version_answered
            .get_or_create(&AnsweredLabels { model: model.clone(), version: version.clone(), code })
            .inc();
        let verdict = r.verdict.as_str();
        self.version_verdicts
            .get_or_create(&VerdictLabels { model: model.clone(), version: version.clone(), verdict })
            .inc();
        self.version_seconds.get_or_create(&ModelVersionLabels { model, version }).observe(r.timings.total_ms / 1000.0);
    }

    /// Requests answered since the last call: (ok, refused or client errors, server errors).
    /// Per-request lines are DEBUG; this feeds the once-a-second INFO summary.
    pub fn take_tally(&self) -> [u64; 3] {
        self.tally.each_ref().map(|t| t.swap(0, std::sync::atomic::Ordering::Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `process_*` metrics from /proc/self on each scrape: CPU seconds, resident memory, open file
/// descriptors, page faults and threads (what a benchmark needs to compute CPU per request).
#[derive(Debug)]
struct ProcessCollector;

impl ProcessCollector {
    /// (cpu seconds, resident bytes, minor faults, major faults, threads) from /proc/self/stat.
    fn stat() -> Option<(f64, i64, u64, u64, i64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, which may itself hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let cpu = (field(14)? + field(15)?) as f64 / ticks.max(1) as f64;
        let rss = i64::try_from(field(24)?).ok()?.saturating_mul(page);
        Some((cpu, rss, field(10)?, field(12)?, i64::try_from(field(20)?).ok()?))
    }
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some((cpu, rss, minflt, majflt, threads)) = Self::stat() else { return Ok(()) };
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
        let counters: [(&str, &str, ConstCounter<f64>); 3] = [
            ("process_cpu_seconds", "Total user and system CPU time spent in seconds", ConstCounter::new(cpu)),
            ("process_minor_page_faults", "Minor page faults", ConstCounter::new(minflt as f64)),
            ("process_major_page_faults", "Major page faults", ConstCounter::new(majflt as f64)),
        ];
        for (name, help, c) in counters {
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let gauges: [(&str, &str, ConstGauge<i64>); 3] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", ConstGauge::new(rss)),
            ("process_open_fds", "Number of open file descriptors", ConstGauge::new(fds)),
            ("process_threads", "Number of OS threads", ConstGauge::new(threads)),
        ];
        for (name, help, g) in gauges {
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_metrics_are_exported_unprefixed() {
        let text = super::Metrics::new().encode();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_minor_page_faults_total ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing:\n{text}");
        }
        assert!(text.contains("vericlip_queue_depth"));
    }
}
