//! The HTTP port: `/healthz` (alive), `/readyz` (a model serves and we are not draining),
//! `/metrics` (Prometheus) and `POST /v1/classify` (JSON answers; audio as the raw body, or JSON
//! with base64 audio).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api;
use crate::classify::{Classifier, request_span};
use crate::error::{ERROR_NAME_KEY, ServiceError};
use crate::pipeline::Audio;

#[derive(Clone)]
struct AppState {
    classifier: Arc<Classifier>,
}

pub fn router(classifier: Arc<Classifier>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/classify", post(classify))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(AppState { classifier })
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.classifier.check_open().is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !s.classifier.store.snapshot().ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.classifier.metrics.encode(),
    )
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

fn error_response(e: &ServiceError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        json!({"error": {"name": e.name(), "code": crate::metrics::code_name(e.code()), "message": e.to_string()}});
    (status, [(ERROR_NAME_KEY, e.name())], axum::Json(body)).into_response()
}

fn audio_of(p: &ClassifyParams, bytes: Vec<u8>) -> Result<Audio, ServiceError> {
    let Some(format) = &p.format else { return Ok(Audio::Encoded(bytes)) };
    let format = match format.as_str() {
        "s16le" => vericlip_core::audio::PcmFormat::S16Le,
        "f32le" => vericlip_core::audio::PcmFormat::F32Le,
        other => {
            return Err(ServiceError::bad_request(
                "invalid_pcm_encoding",
                format!("format `{other}` is not supported; use s16le or f32le"),
            ));
        }
    };
    let sample_rate =
        p.sample_rate.ok_or_else(|| ServiceError::bad_request("missing_pcm_format", "raw PCM needs `sample_rate`"))?;
    Ok(Audio::Pcm { data: bytes, format, sample_rate, channels: p.channels.unwrap_or(1) })
}

async fn classify(
    State(s): State<AppState>,
    query: Result<Query<ClassifyParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = &s.classifier;
    let id = c.request_id();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed = (|| {
        if is_json {
            let p: ClassifyParams = serde_json::from_slice(&body).map_err(|e| {
                ServiceError::bad_request("invalid_json", format!("request body is not valid JSON: {e}"))
            })?;
            let b64 = p.audio_base64.as_deref().ok_or_else(|| {
                ServiceError::bad_request("missing_audio", "JSON requests carry the audio in `audio_base64`")
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ServiceError::bad_request("invalid_base64", format!("audio_base64 is not base64: {e}")))?;
            Ok((audio_of(&p, bytes)?, p))
        } else {
            let Query(p) =
                query.map_err(|e| ServiceError::bad_request("invalid_query", format!("bad query string: {e}")))?;
            Ok((audio_of(&p, body.to_vec())?, p))
        }
    })();
    let span = request_span("http", &id);
    let result = match parsed {
        Ok((audio, p)) => {
            use tracing::Instrument;
            c.classify(audio, &p.model, p.version, None, id).instrument(span.clone()).await
        }
        Err(e) => Err(e),
    };
    c.record("HttpClassify", &span, &result);
    match result {
        Ok(r) => axum::Json(response_json(&r)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `real` / `fake` (`unspecified` for an unknown value): the JSON and CLI spelling of a verdict.
pub fn verdict_name(v: i32) -> &'static str {
    match api::Verdict::try_from(v) {
        Ok(api::Verdict::Fake) => "fake",
        Ok(api::Verdict::Real) => "real",
        _ => "unspecified",
    }
}

/// The JSON shape of a ClassifyResponse (field names as in the proto, verdicts lower-case).
pub fn response_json(r: &api::ClassifyResponse) -> Value {
    let t = r.timings.unwrap_or_default();
    json!({
        "verdict": verdict_name(r.verdict),
        "fake_score": r.fake_score,
        "threshold": r.threshold,
        "model": r.model,
        "model_version": r.model_version,
        "duration_seconds": r.duration_seconds,
        "request_id": r.request_id,
        "segments": r.segments.iter().map(|s| json!({
            "index": s.index,
            "start_seconds": s.start_seconds,
            "end_seconds": s.end_seconds,
            "fake_score": s.fake_score,
            "verdict": verdict_name(s.verdict),
        })).collect::<Vec<_>>(),
        "timings": {
            "decode_ms": t.decode_ms, "features_ms": t.features_ms, "queue_ms": t.queue_ms,
            "inference_ms": t.inference_ms, "total_ms": t.total_ms,
        },
    })
}
