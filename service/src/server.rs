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

/// After the drain limit, how long cut streams get to send their summary and close.
const CUT_GRACE: Duration = Duration::from_secs(2);

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
    let admin_listener = match settings.admin_addr() {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding admin.addr {addr}"))?),
        None => None,
    };
    let (grpc_tls, http_tls) = tls::acceptors(&settings.tls)?.unzip();
    let keys = ApiKeys::load_watched(&settings.auth.api_key_file)?;
    let (grpc_addr, http_addr) = (grpc_listener.local_addr()?, http_listener.local_addr()?);
    let admin_addr = admin_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    crate::net::body::set_min_rate(crate::net::body::MinRate {
        bytes: settings.limits.body_min_bytes_per_window,
        window: Duration::from_secs_f64(settings.limits.body_rate_window_seconds),
    });

    let metrics = Arc::new(Metrics::new());
    let budget = MemoryBudget::new(settings.memory_budget_bytes(), Arc::clone(&metrics));
    budget.spawn_trimmer().context("starting the allocator trimmer")?;
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
    .keep_warm(settings.registry.keep_warm)
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

    if let Some(grace) = settings.grpc.removed_max_connection_age_grace_seconds {
        tracing::warn!(
            key = "grpc.max_connection_age_grace_seconds",
            value = grace,
            "ignored: removed (connection age no longer cuts open calls); delete it from the config"
        );
    }
    let max = settings.grpc.max_message_bytes;
    let service = api::vericlip_server::VericlipServer::new(VericlipService { classifier: Arc::clone(&classifier) })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        admin = ?admin_addr,
        registry = %settings.registry.path.display(),
        tls = settings.tls.enabled(),
        mutual_tls = !settings.tls.client_ca_file.is_empty(),
        api_keys = keys.is_some(),
        memory_budget_mb = budget.limit() >> 20,
        "listening"
    );
    // A stable line on stdout for scripts and tests that bind port 0.
    match admin_addr {
        Some(admin) => println!("vericlip-server listening grpc={grpc_addr} http={http_addr} admin={admin}"),
        None => println!("vericlip-server listening grpc={grpc_addr} http={http_addr}"),
    }

    let conn_limits = ConnLimits {
        max: settings.limits.max_connections,
        idle: Duration::from_secs_f64(settings.limits.connection_idle_seconds),
        first_request: Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
    };
    // At max_connection_age tonic sends GOAWAY (no new calls on the connection); calls already
    // open run to their own end or limits (stream idle, audio length), never cut by age: the
    // connection has no age limit, and tonic gets no grace (which would cut them).
    let age = settings.grpc.max_connection_age_seconds;
    let (grpc_conns_tx, grpc_conns) = mpsc::channel(64);
    tokio::spawn(accept_loop(grpc_listener, grpc_tls, conn_limits, Arc::clone(&metrics), "grpc", grpc_conns_tx));
    let (http_conns_tx, http_conns) = mpsc::channel(64);
    tokio::spawn(accept_loop(http_listener, http_tls, conn_limits, Arc::clone(&metrics), "http", http_conns_tx));
    // The admin port: plaintext (probes and scrapers stay inside the cluster network), its own
    // cap, and the same first-request deadline.
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
    let admin = admin_listener.map(|listener| {
        let (tx, rx) = mpsc::channel(16);
        let limits = ConnLimits { max: settings.admin.max_connections, ..conn_limits };
        tokio::spawn(accept_loop(listener, None, limits, Arc::clone(&metrics), "admin", tx));
        tokio::spawn(crate::http::serve(
            rx,
            crate::admin::router(Arc::clone(&classifier)),
            Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
            8,
            admin_stop_rx,
        ))
    });

    // One INFO line a second about the requests answered; per-request lines are DEBUG (at
    // 2,000 requests/s, one INFO line each was ~26 MB of logs a minute).
    let summary_task = {
        let metrics = Arc::clone(&metrics);
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
    };
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
            .layer(crate::drain::DrainLayer { count: false })
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(grpc_conns), grpc_drain),
    );
    let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
    let router =
        crate::http::router(Arc::clone(&classifier), max, keys).layer(crate::drain::DrainLayer { count: true });
    let http = tokio::spawn(crate::http::serve(
        http_conns,
        router,
        Duration::from_secs_f64(settings.http.header_read_timeout_seconds),
        settings.grpc.max_concurrent_streams,
        http_stop_rx,
    ));

    shutdown.await;
    tracing::info!("shutdown requested: health NOT_SERVING, readiness 503, draining in-flight requests and streams");
    crate::drain::begin();
    health_task.abort();
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
    classifier.begin_shutdown();
    let _ = drain_tx.send(true);
    let drain = Duration::from_secs_f64(settings.shutdown.drain_seconds);
    let drained = |grpc: &tokio::task::JoinHandle<_>| {
        grpc.is_finished() && crate::drain::http_in_flight() == 0 && metrics.active_streams.get() == 0
    };
    // Both HTTP ports keep accepting through the drain: /readyz answers 503 rather than
    // refusing the connection. Work that arrived before SIGTERM finishes; at the limit, open
    // streams are cut (each ends with its summary so far and a reason) and get a moment to
    // say so before the process exits.
    let limit = tokio::time::Instant::now() + drain;
    while !drained(&grpc) && tokio::time::Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if drained(&grpc) {
        tracing::info!("drained");
    } else {
        tracing::warn!(
            seconds = drain.as_secs_f64(),
            http_requests = crate::drain::http_in_flight(),
            streams = metrics.active_streams.get(),
            "drain limit reached; cutting open streams"
        );
        crate::drain::cut();
        let grace = tokio::time::Instant::now() + CUT_GRACE;
        while !drained(&grpc) && tokio::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if grpc.is_finished() {
        match grpc.await {
            Ok(Ok(())) => tracing::info!("gRPC drained"),
            Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
            Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
        }
    } else {
        tracing::warn!("exiting with gRPC calls in flight");
        grpc.abort();
    }
    let _ = http_stop_tx.send(true);
    let _ = admin_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), http).await;
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(1), admin).await;
    }
    summary_task.abort();
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
