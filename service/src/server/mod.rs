//! Wiring: ONNX Runtime, the registry watcher, the three ports (gRPC with health and
//! reflection, HTTP, admin) behind their layers (`layers`), and graceful shutdown.

pub mod layers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use vericlip_core::AudioLimits;
use vericlip_core::runtime;

use crate::api;
use crate::budget::MemoryBudget;
use crate::classify::{Classifier, Limits};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::models::watch::RegistryWatcher;
use crate::models::{LoadOptions, ModelStore};
use crate::net::auth::ApiKeys;
use crate::net::conn::{Conn, ConnLimits, accept_loop};
use crate::net::tls;
use crate::pipeline::FeaturePool;

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "vericlip.v1.Vericlip";

/// After the drain limit, how long cut streams get to send their summary and close.
const CUT_GRACE: Duration = Duration::from_secs(2);
/// Idle timeout on the admin port: probes and scrapes reconnect at no cost, and a connection kept
/// open for nothing holds one of the port's few places.
const ADMIN_IDLE: Duration = Duration::from_secs(5);
/// The registry watcher gets at least this long to notice the stop and end (it wakes every
/// 200 ms), however long the drain took.
const JOIN_AT_LEAST: Duration = Duration::from_secs(1);

/// Runs until `shutdown` resolves (SIGTERM / ctrl-c in the binary), then drains and returns.
///
/// Everything that can fail at start (ONNX Runtime, ports, TLS files, API keys) is done before
/// the registry watcher starts loading models, so an early error never races a model load.
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    raise_open_file_limit();
    let ort_path =
        (!settings.runtime.ort_library.is_empty()).then(|| std::path::Path::new(&settings.runtime.ort_library));
    let rt = runtime::init(ort_path)?;
    let listeners = Listeners::bind(&settings).await?;
    let (grpc_tls, http_tls) = tls::acceptors(&settings.tls)?.unzip();
    let keys = ApiKeys::load_watched(&settings.auth.api_key_file)?;
    crate::net::body::set_min_rate(crate::net::body::MinRate {
        bytes: settings.limits.body_min_bytes_per_window,
        window: Duration::from_secs_f64(settings.limits.body_rate_window_seconds),
    });
    let metrics = Arc::new(Metrics::new());
    let budget = MemoryBudget::new(settings.memory_budget_bytes(), Arc::clone(&metrics));
    budget.spawn_trimmer().context("starting the allocator trimmer")?;
    let store = Arc::new(ModelStore::new(settings.registry.default_model.clone()));
    let pool = FeaturePool::new(settings.runtime.feature_workers, Arc::clone(&metrics))?;
    let classifier =
        Arc::new(Classifier::new(Arc::clone(&store), pool, Arc::clone(&metrics), limits(&settings), budget));
    let reflection = reflection()?;
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = RegistryWatcher::new(
        settings.registry.path.clone(),
        settings.registry.pin.clone(),
        load_options(&settings),
        rt,
        Arc::clone(&store),
        Arc::clone(&metrics),
    )
    .keep_warm(settings.registry.keep_warm)
    .spawn(Duration::from_secs_f64(settings.registry.poll_seconds), Arc::clone(&stop_watching))
    .context("starting the registry watcher")?;
    let (health, health_service, health_task) = start_health(store.ready()).await;
    listeners.announce(&settings, keys.is_some(), classifier.budget().limit())?;

    let (ports, grpc_conns) =
        Ports::start(&settings, listeners, (grpc_tls, http_tls), keys.clone(), &classifier, &metrics);
    let (drain_tx, drain_rx) = watch::channel(false);
    let services = (health_service, reflection);
    let c = Arc::clone(&classifier);
    let grpc = tokio::spawn(serve_grpc(settings.grpc.clone(), grpc_conns, c, keys, services, drain_rx));
    let summary_task = spawn_request_summary(Arc::clone(&metrics));

    shutdown.await;
    let shutdown_began = tokio::time::Instant::now();
    tracing::info!("shutdown requested: health NOT_SERVING, readiness 503, draining in-flight requests and streams");
    crate::drain::begin();
    health_task.abort();
    set_health(&health, ServingStatus::NotServing).await;
    classifier.begin_shutdown();
    let _ = drain_tx.send(true);
    drain(Duration::from_secs_f64(settings.shutdown.drain_seconds), &grpc, &metrics).await;
    finish_grpc(grpc).await;
    ports.stop().await;
    summary_task.abort();
    // A model may be loading right now: let it finish before the process (and ONNX Runtime)
    // goes away, but only until the deadline: a watcher stuck on a hung volume must not keep
    // the process from exiting.
    stop_watching.store(true, Ordering::Relaxed);
    let drain_seconds = Duration::from_secs_f64(settings.shutdown.drain_seconds);
    let deadline =
        (shutdown_began + drain_seconds + crate::drain::JOIN_GRACE).max(tokio::time::Instant::now() + JOIN_AT_LEAST);
    let stuck = crate::drain::join_by(vec![("registry-watch", watcher)], deadline).await;
    if !stuck.is_empty() {
        tracing::warn!(
            threads = ?stuck,
            seconds = shutdown_began.elapsed().as_secs_f64(),
            "stopped with threads still running (stuck); exiting anyway"
        );
        exit_now();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Exits 0 at once, without running exit handlers or destructors: a stuck thread may be inside
/// ONNX Runtime, whose global state must not be torn down under it (that would turn a clean
/// exit into a crash). Logs go to stderr, unbuffered; stdout is flushed first.
fn exit_now() -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process; nothing runs after it.
    unsafe { libc::_exit(0) }
}

/// The three ports' listeners, bound before anything starts.
struct Listeners {
    grpc: TcpListener,
    http: TcpListener,
    admin: Option<TcpListener>,
}

impl Listeners {
    async fn bind(settings: &Settings) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind(settings.grpc_addr())
            .await
            .with_context(|| format!("binding grpc.addr {}", settings.grpc.addr))?;
        let http = TcpListener::bind(settings.http_addr())
            .await
            .with_context(|| format!("binding http.addr {}", settings.http.addr))?;
        let admin = match settings.admin_addr() {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding admin.addr {addr}"))?),
            None => None,
        };
        Ok(Self { grpc, http, admin })
    }

    /// Logs where the server listens and prints the stable line on stdout that scripts and
    /// tests binding port 0 read.
    fn announce(&self, settings: &Settings, api_keys: bool, memory_budget: u64) -> anyhow::Result<()> {
        if let Some(grace) = settings.grpc.removed_max_connection_age_grace_seconds {
            tracing::warn!(
                key = "grpc.max_connection_age_grace_seconds",
                value = grace,
                "ignored: removed (connection age no longer cuts open calls); delete it from the config"
            );
        }
        let (grpc, http) = (self.grpc.local_addr()?, self.http.local_addr()?);
        let admin = self.admin.as_ref().map(TcpListener::local_addr).transpose()?;
        tracing::info!(
            grpc = %grpc,
            http = %http,
            admin = ?admin,
            registry = %settings.registry.path.display(),
            tls = settings.tls.enabled(),
            mutual_tls = !settings.tls.client_ca_file.is_empty(),
            api_keys,
            memory_budget_mb = memory_budget >> 20,
            "listening"
        );
        match admin {
            Some(admin) => println!("vericlip-server listening grpc={grpc} http={http} admin={admin}"),
            None => println!("vericlip-server listening grpc={grpc} http={http}"),
        }
        Ok(())
    }
}

/// What requests and streams may use, from the config.
fn limits(settings: &Settings) -> Limits {
    Limits {
        audio: AudioLimits {
            max_seconds: settings.limits.max_audio_seconds,
            max_sample_rate: settings.limits.max_sample_rate,
            max_channels: settings.limits.max_channels,
            ..AudioLimits::default()
        },
        max_queue: settings.runtime.max_queue,
        max_streams: settings.limits.max_streams,
        max_encoded_stream_bytes: settings.grpc.max_message_bytes.saturating_mul(4),
        stream_idle: Duration::from_secs_f64(settings.limits.stream_idle_seconds),
    }
}

fn load_options(settings: &Settings) -> LoadOptions {
    LoadOptions {
        sessions: settings.runtime.sessions,
        provider: settings.runtime.execution_provider,
        max_batch: settings.runtime.max_batch,
        max_delay: Duration::from_millis(settings.runtime.max_delay_ms),
    }
}

/// Server reflection, v1 and v1alpha (grpcurl and grpcio use v1alpha), with the same descriptors.
fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((reflection().build_v1()?, reflection().build_v1alpha()?))
}

/// gRPC health: NOT_SERVING until a model serves, then following the store's readiness (the
/// task ends with the store).
async fn start_health(
    mut ready: watch::Receiver<bool>,
) -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    JoinHandle<()>,
) {
    let (health, service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;
    let reporter = health.clone();
    let task = tokio::spawn(async move {
        loop {
            let status = if *ready.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
            set_health(&reporter, status).await;
            if ready.changed().await.is_err() {
                break;
            }
        }
    });
    (health, service, task)
}

/// The overall status and the service's.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

/// The ports' accept loops and HTTP servers, running.
struct Ports {
    http: JoinHandle<()>,
    admin: Option<JoinHandle<()>>,
    stop_http: watch::Sender<bool>,
}

impl Ports {
    /// Accepts on every port, and serves HTTP and admin (the gRPC port's connections are left for
    /// `serve_grpc`). The admin port is plaintext (probes and scrapers stay inside the cluster
    /// network), with its own cap, the same first-request deadline, a short idle timeout
    /// (`ADMIN_IDLE`), and at its cap the quietest connection makes way for a new one.
    fn start(
        settings: &Settings,
        listeners: Listeners,
        (grpc_tls, http_tls): (Option<TlsAcceptor>, Option<TlsAcceptor>),
        keys: Option<Arc<ApiKeys>>,
        classifier: &Arc<Classifier>,
        metrics: &Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<std::io::Result<Conn>>) {
        let conn_limits = ConnLimits {
            max: settings.limits.max_connections,
            idle: Duration::from_secs_f64(settings.limits.connection_idle_seconds),
            first_request: Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
            evict_idle: false,
        };
        let header_read_timeout = Duration::from_secs_f64(settings.http.header_read_timeout_seconds);
        let accept = |listener, tls, limits, port, capacity| {
            let (tx, rx) = mpsc::channel(capacity);
            tokio::spawn(accept_loop(listener, tls, limits, Arc::clone(metrics), port, tx));
            rx
        };
        let grpc = accept(listeners.grpc, grpc_tls, conn_limits, "grpc", 64);
        let http_conns = accept(listeners.http, http_tls, conn_limits, "http", 64);
        let (stop_http, stop) = watch::channel(false);
        let admin = listeners.admin.map(|listener| {
            let limits = ConnLimits {
                max: settings.admin.max_connections,
                idle: conn_limits.idle.min(ADMIN_IDLE),
                evict_idle: true,
                ..conn_limits
            };
            let conns = accept(listener, None, limits, "admin", 16);
            let router = crate::admin::router(Arc::clone(classifier));
            tokio::spawn(crate::http::serve(conns, router, header_read_timeout, 8, stop.clone()))
        });
        let guard = |api: axum::Router| api.layer(axum::middleware::from_fn_with_state(keys, layers::require_api_key));
        let router = crate::http::router(Arc::clone(classifier), settings.grpc.max_message_bytes, guard)
            .layer(layers::DrainLayer { count: true });
        let streams = settings.grpc.max_concurrent_streams;
        let http = tokio::spawn(crate::http::serve(http_conns, router, header_read_timeout, streams, stop));
        (Self { http, admin, stop_http }, grpc)
    }

    /// Stops both HTTP ports (they keep accepting through the drain) and waits a moment for them.
    async fn stop(self) {
        let _ = self.stop_http.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.http).await;
        if let Some(admin) = self.admin {
            let _ = tokio::time::timeout(Duration::from_secs(1), admin).await;
        }
    }
}

/// The gRPC port until the drain: the Vericlip service, health and reflection behind
/// `layers::grpc`. At `max_connection_age` tonic sends GOAWAY (no new calls on the connection);
/// calls already open run to their own end or limits (stream idle, audio length), never cut by
/// age: the connection has no age limit, and tonic gets no grace (which would cut them).
async fn serve_grpc(
    config: crate::config::Grpc,
    conns: mpsc::Receiver<std::io::Result<Conn>>,
    classifier: Arc<Classifier>,
    keys: Option<Arc<ApiKeys>>,
    (health, (reflection_v1, reflection_v1alpha)): (
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        (
            tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
            tonic_reflection::server::v1alpha::ServerReflectionServer<
                impl tonic_reflection::server::v1alpha::ServerReflection,
            >,
        ),
    ),
    mut drain: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let keepalive = config.keepalive_interval_seconds;
    let mut server = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval((keepalive > 0.0).then(|| Duration::from_secs_f64(keepalive)))
        .http2_keepalive_timeout(Some(Duration::from_secs_f64(config.keepalive_timeout_seconds)));
    if config.max_connection_age_seconds > 0.0 {
        server = server.max_connection_age(Duration::from_secs_f64(config.max_connection_age_seconds));
    }
    let stack = layers::grpc(keys, Arc::clone(classifier.budget()), classifier.limits().stream_idle);
    let drained = async move {
        let _ = drain.wait_for(|d| *d).await;
    };
    server
        .layer(crate::correlation::CorrelateLayer { port: "grpc" })
        .layer(stack)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(crate::grpc::service(classifier, config.max_message_bytes))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(conns), drained)
        .await
}

/// Waits for in-flight work to finish, at most `limit`; then cuts open streams (each ends with its
/// summary so far and a reason) and gives them a moment to say so. Both HTTP ports keep accepting
/// through the drain: /readyz answers 503 rather than refusing the connection.
async fn drain<T>(limit: Duration, grpc: &JoinHandle<T>, metrics: &Metrics) {
    let drained = || grpc.is_finished() && crate::drain::http_in_flight() == 0 && metrics.active_streams.get() == 0;
    let until = |deadline: tokio::time::Instant| async move {
        while !drained() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    until(tokio::time::Instant::now() + limit).await;
    if drained() {
        tracing::info!("drained");
        return;
    }
    tracing::warn!(
        seconds = limit.as_secs_f64(),
        http_requests = crate::drain::http_in_flight(),
        streams = metrics.active_streams.get(),
        "drain limit reached; cutting open streams"
    );
    crate::drain::cut();
    until(tokio::time::Instant::now() + CUT_GRACE).await;
}

async fn finish_grpc(grpc: JoinHandle<Result<(), tonic::transport::Error>>) {
    if !grpc.is_finished() {
        tracing::warn!("exiting with gRPC calls in flight");
        grpc.abort();
        return;
    }
    match grpc.await {
        Ok(Ok(())) => tracing::info!("gRPC drained"),
        Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
        Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
    }
}

/// One INFO line a second about the requests answered; per-request lines are DEBUG (at
/// 2,000 requests/s, one INFO line each was ~26 MB of logs a minute).
fn spawn_request_summary(metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let [ok, refused, failed] = metrics.take_tally();
            if ok + refused + failed > 0 {
                tracing::info!(ok, refused, failed, "requests answered in the last second");
            }
        }
    })
}

/// The gRPC server serves our connections (`net::conn`, plain or TLS) as its incoming stream.
impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo { local_addr: self.local_addr(), remote_addr: Some(self.peer_addr()) }
    }
}

/// Many idle or slow clients must meet the connection cap (`limits.max_connections`), not the
/// process's file limit: raise the soft limit to the hard one.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
