//! The HTTP port: `/healthz` (alive), `/readyz` (a model serves and we are not draining),
//! `/metrics` (Prometheus), `POST /v1/classify` (JSON answers; audio as the raw body, a
//! `multipart/form-data` part named `file`, or JSON with base64 audio), `GET /v1/models`,
//! `GET /v1/stream` (WebSocket streaming, `ws`) and the page for people at `/` (`web`). Errors
//! become HTTP answers in `error`.

pub mod error;
mod multipart;
mod openapi;
mod upload;
mod web;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use self::error::method_not_allowed;
use crate::classify::{Classifier, request_span};
use crate::correlation::{CorrelateLayer, Correlation};
use crate::error::ServiceError;
use crate::input::{AudioFormat, Spelling};
use crate::net::conn::Conn;
use crate::pipeline::Audio;

#[derive(Clone)]
struct AppState {
    classifier: Arc<Classifier>,
    max_body_bytes: usize,
}

/// The HTTP routes. `guard` wraps the API routes (`/v1/*`: the server puts the API key check
/// there); the probes, `/metrics`, the page, its assets and `/model-card` stay open.
pub fn router(classifier: Arc<Classifier>, max_body_bytes: usize, guard: impl FnOnce(Router) -> Router) -> Router {
    let state = AppState { classifier, max_body_bytes };
    let api = Router::new()
        .route("/v1/classify", post(classify).fallback(method_not_allowed("POST")))
        .route("/v1/classify:batch", post(classify_batch).fallback(method_not_allowed("POST")))
        .route("/v1/models", get(web::list_models).fallback(method_not_allowed("GET")))
        .route("/v1/stream", get(stream).fallback(method_not_allowed("GET")))
        .with_state(state.clone());
    Router::new()
        .route("/healthz", get(crate::pipeline::watchdog::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/style.css", get(web::style))
        .route("/pcm-worklet.js", get(web::worklet))
        .route("/model-card", get(web::model_card))
        .route("/favicon.ico", get(web::favicon))
        .route("/favicon.svg", get(web::favicon))
        .merge(openapi::routes())
        .with_state(state)
        .merge(guard(api))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::any_method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(CorrelateLayer { port: "http" })
}

/// `GET /v1/stream`: admitted (stream slot, and the memory budget for one message in flight)
/// before the upgrade, so a flood of WebSockets is refused with 429 rather than buffered.
async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: http::Extensions,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            let message = format!("GET /v1/stream is a WebSocket: send the upgrade handshake ({e})");
            let mut response = ServiceError::bad_request("websocket_required", message).into_response();
            *response.status_mut() = e.status();
            return response;
        }
    };
    let route = crate::models::Route::from_headers(&headers);
    let request_id = Correlation::of(extensions.get()).id;
    let c = Arc::clone(&s.classifier);
    let admitted = match c.admit_stream() {
        Ok(a) => a,
        Err(e) => {
            c.count("WebSocketStream", Err(e.class()));
            return e.into_response();
        }
    };
    let mut reservation = c.budget().reservation();
    if let Err(e) = reservation.ensure(ws::MAX_MESSAGE_BYTES as u64) {
        let e = ServiceError::from(e);
        c.count("WebSocketStream", Err(e.class()));
        return e.into_response();
    }
    upgrade
        .max_message_size(ws::MAX_MESSAGE_BYTES)
        .max_frame_size(ws::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| ws::session(c, socket, admitted, reservation, route, request_id))
}

/// Serves the HTTP port's connections (from `net::conn::accept_loop`) with hyper: HTTP/1.1
/// with a header read timeout (slow clients are cut off), or HTTP/2. Stops taking connections
/// when `stop` turns true and gives open ones a moment to finish.
pub async fn serve(
    mut conns: mpsc::Receiver<std::io::Result<Conn>>,
    router: Router,
    header_read_timeout: Duration,
    max_concurrent_streams: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(max_concurrent_streams);
    let graceful = GracefulShutdown::new();
    loop {
        let conn = tokio::select! {
            c = conns.recv() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(conn) = conn else { break };
        let Ok(conn) = conn else { continue };
        let service = TowerToHyperService::new(router.clone());
        let connection =
            graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(conn), service).into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(conns);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    crate::admin::readiness(&s.classifier)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.classifier.metrics().encode(),
    )
}

/// `POST /v1/classify:batch`: JSON `{"clips": [...]}` (each clip as `POST /v1/classify`'s JSON
/// body) -> `{"results": [{"response": ...} | {"error": ...}], "request_id"}`, one result per
/// clip in order: the JSON form of gRPC `ClassifyBatch`.
async fn classify_batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    extensions: http::Extensions,
    body: Body,
) -> Response {
    let c = &s.classifier;
    let id = Correlation::of(extensions.get()).id;
    let route = crate::models::Route::from_headers(&headers);
    let result = match upload::read(c, body, s.max_body_bytes).await {
        Ok(received) => match upload::parse_batch(c, received).await {
            Ok(clips) => c.classify_batch("http", "HttpClassifyBatchClip", clips, route, None, &id).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    c.count("HttpClassifyBatch", ServiceError::outcome(&result));
    match result {
        Ok(results) => {
            let results: Vec<BatchResultJson> = results
                .into_iter()
                .map(|r| match r {
                    Ok(response) => BatchResultJson::Response(response),
                    Err(e) => BatchResultJson::Error(error::ErrorBody::of(&e)),
                })
                .collect();
            axum::Json(serde_json::json!({ "results": results, "request_id": id })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// One clip's answer in a batch, as the proto's JSON mapping writes a `oneof`: the member's
/// field name as the key.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum BatchResultJson {
    Response(crate::pipeline::ClipResult),
    Error(error::ErrorBody),
}

/// Query string of `POST /v1/classify` (and the JSON body's fields).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyParams {
    #[serde(default)]
    model: String,
    #[serde(default)]
    version: u64,
    /// `s16le` or `f32le` for raw PCM; absent = an encoded file.
    format: Option<String>,
    sample_rate: Option<u32>,
    channels: Option<u32>,
    /// JSON bodies only: the audio, base64.
    audio_base64: Option<String>,
}

/// How HTTP and the WebSocket spell the PCM encodings.
const SPELLING: Spelling = Spelling { s16le: "s16le", f32le: "f32le" };

fn audio_of(p: &ClassifyParams, bytes: Vec<u8>) -> Result<Audio, ServiceError> {
    let format = match &p.format {
        None => AudioFormat::Encoded,
        Some(name) => AudioFormat::pcm(Some(name), SPELLING, p.sample_rate, p.channels.unwrap_or(1))?,
    };
    Ok(format.with(bytes))
}

async fn classify(
    State(s): State<AppState>,
    query: Result<Query<ClassifyParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    extensions: http::Extensions,
    body: Body,
) -> Response {
    let c = &s.classifier;
    let id = Correlation::of(extensions.get()).id;
    let body = match upload::read(c, body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let span = request_span("http", &id);
            c.record("HttpClassify", &span, &Err(e.clone()));
            return e.into_response();
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parsed = upload::parse(c, content_type, query, body).await;
    let span = request_span("http", &id);
    let route = crate::models::Route::from_headers(&headers);
    let result = match parsed {
        Ok((audio, p)) => {
            use tracing::Instrument;
            c.classify(audio, &p.model, p.version, route, None, id).instrument(span.clone()).await
        }
        Err(e) => Err(e),
    };
    c.record("HttpClassify", &span, &result);
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}
