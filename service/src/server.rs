//! Wiring: ONNX Runtime, the registry watcher, the gRPC server (service, health, reflection),
//! the HTTP server, and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use vericlip_core::AudioLimits;
use vericlip_core::runtime;

use tokio::sync::mpsc;

use crate::api;
use crate::budget::MemoryBudget;
use crate::classify::{Classifier, Limits};
use crate::config::Settings;
use crate::grpc::VericlipService;
use crate::metrics::Metrics;
use crate::models::watch::RegistryWatcher;
use crate::models::{LoadOptions, ModelStore};
use crate::net::auth::{ApiKeys, GrpcAuthLayer};
use crate::net::body::Budgeted;
use crate::net::conn::{ConnLimits, accept_loop};
use crate::net::tls;
use crate::pipeline::FeaturePool;

/// The gRPC service name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "vericlip.v1.Vericlip";

/// Runs until `shutdown` resolves (SIGTERM / ctrl-c in the binary), then drains and returns.
///
/// Everything that can fail at start (ONNX Runtime, ports, TLS files, API keys) is done before
/// the registry watcher starts loading models, so an early error never races a model load.
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    raise_open_file_limit();
    let ort_path =
        (!settings.runtime.ort_library.is_empty()).then(|| std::path::Path::new(&settings.runtime.ort_library));
    let rt = runtime::init(ort_path)?;
    let grpc_listener = TcpListener::bind(settings.grpc_addr())
        .await
        .with_context(|| format!("binding grpc.addr {}", settings.grpc.addr))?;
    let http_listener = TcpListener::bind(settings.http_addr())
        .await
        .with_context(|| format!("binding http.addr {}", settings.http.addr))?;
    let (grpc_tls, http_tls) = tls::acceptors(&settings.tls)?.unzip();
    let keys = ApiKeys::load_watched(&settings.auth.api_key_file)?;
    let (grpc_addr, http_addr) = (grpc_listener.local_addr()?, http_listener.local_addr()?);

    let metrics = Arc::new(Metrics::new());
    let budget = MemoryBudget::new(settings.memory_budget_bytes(), Arc::clone(&metrics));
    let store = Arc::new(ModelStore::new(settings.registry.default_model.clone()));
    let options = LoadOptions {
        sessions: settings.runtime.sessions,
        provider: settings.runtime.execution_provider,
        max_batch: settings.runtime.max_batch,
        max_delay: Duration::from_millis(settings.runtime.max_delay_ms),
    };
    let limits = Limits {
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
    };
    let classifier = Arc::new(Classifier::new(
        Arc::clone(&store),
        FeaturePool::new(settings.runtime.feature_workers, Arc::clone(&metrics))?,
        Arc::clone(&metrics),
        limits,
        Arc::clone(&budget),
    ));
    let (reflection_v1, reflection_v1alpha) = {
        // The same descriptors for both reflection versions (grpcurl and grpcio use v1alpha).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(api::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        (reflection().build_v1()?, reflection().build_v1alpha()?)
    };

    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = RegistryWatcher::new(
        settings.registry.path.clone(),
        settings.registry.pin.clone(),
        options,
        rt,
        Arc::clone(&store),
        Arc::clone(&metrics),
    )
    .spawn(Duration::from_secs_f64(settings.registry.poll_seconds), Arc::clone(&stop_watching))
    .context("starting the registry watcher")?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
    let mut ready = store.ready();
    let health_task = {
        let health = health.clone();
        tokio::spawn(async move {
            loop {
                let status =
                    if *ready.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
                health.set_service_status("", status).await;
                health.set_service_status(SERVICE_NAME, status).await;
                if ready.changed().await.is_err() {
                    break;
                }
            }
        })
    };

    let max = settings.grpc.max_message_bytes;
    let service = api::vericlip_server::VericlipServer::new(VericlipService { classifier: Arc::clone(&classifier) })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        registry = %settings.registry.path.display(),
        tls = settings.tls.enabled(),
        mutual_tls = !settings.tls.client_ca_file.is_empty(),
        api_keys = keys.is_some(),
        memory_budget_mb = budget.limit() >> 20,
        "listening"
    );
    // A stable line on stdout for scripts and tests that bind port 0.
    println!("vericlip-server listening grpc={grpc_addr} http={http_addr}");

    let conn_limits = ConnLimits {
        max: settings.limits.max_connections,
        idle: Duration::from_secs_f64(settings.limits.connection_idle_seconds),
        first_request: Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
        lifetime: None,
    };
    // At max_connection_age tonic sends GOAWAY (no new calls on the connection); calls already
    // open run to their own end or limits (stream idle, audio length), never cut by age: no
    // lifetime on the connection, and no tonic grace (which would cut them).
    let age = settings.grpc.max_connection_age_seconds;
    let grpc_limits = conn_limits;
    let (grpc_conns_tx, grpc_conns) = mpsc::channel(64);
    tokio::spawn(accept_loop(grpc_listener, grpc_tls, grpc_limits, Arc::clone(&metrics), "grpc", grpc_conns_tx));
    let (http_conns_tx, http_conns) = mpsc::channel(64);
    tokio::spawn(accept_loop(http_listener, http_tls, conn_limits, Arc::clone(&metrics), "http", http_conns_tx));

    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let grpc_drain = {
        let mut rx = drain_rx.clone();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    };
    let body_idle = limits.stream_idle;
    let body_budget = Arc::clone(&budget);
    let keepalive = settings.grpc.keepalive_interval_seconds;
    let mut grpc_server = tonic::transport::Server::builder()
        .max_concurrent_streams(settings.grpc.max_concurrent_streams)
        .http2_keepalive_interval((keepalive > 0.0).then(|| Duration::from_secs_f64(keepalive)))
        .http2_keepalive_timeout(Some(Duration::from_secs_f64(settings.grpc.keepalive_timeout_seconds)));
    if age > 0.0 {
        grpc_server = grpc_server.max_connection_age(Duration::from_secs_f64(age));
    }
    let grpc = tokio::spawn(
        grpc_server
            .layer(tower::util::MapResponseLayer::new(crate::error::oversized_message_status::<tonic::body::Body>))
            .layer(tower::util::MapRequestLayer::new(crate::grpc::stamp_arrival::<tonic::body::Body>))
            .layer(tower::util::MapRequestLayer::new(move |r: http::Request<tonic::body::Body>| {
                r.map(|b| tonic::body::Body::new(Budgeted::grpc(b, &body_budget, body_idle)))
            }))
            .layer(GrpcAuthLayer { keys: keys.clone() })
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(grpc_conns), grpc_drain),
    );
    let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
    let router = crate::http::router(Arc::clone(&classifier), max, keys);
    let http = tokio::spawn(crate::http::serve(
        http_conns,
        router,
        Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
        settings.grpc.max_concurrent_streams,
        http_stop_rx,
    ));

    shutdown.await;
    tracing::info!("shutdown requested: health NOT_SERVING, draining in-flight requests");
    health_task.abort();
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
    classifier.begin_shutdown();
    let _ = drain_tx.send(true);
    let drain = Duration::from_secs_f64(settings.shutdown.drain_seconds);
    // /readyz answers 503 while gRPC drains; the HTTP port closes last.
    match tokio::time::timeout(drain, grpc).await {
        Ok(Ok(Ok(()))) => tracing::info!("gRPC drained"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "gRPC server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "gRPC server task failed"),
        Err(_) => tracing::warn!(seconds = drain.as_secs_f64(), "drain timed out; exiting with requests in flight"),
    }
    let _ = http_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), http).await;
    // A model may be loading right now: let it finish before the process (and ONNX Runtime)
    // goes away.
    stop_watching.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || watcher.join()).await;
    tracing::info!("stopped");
    Ok(())
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
