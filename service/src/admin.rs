//! The admin port (`admin.addr`): `/healthz`, `/readyz` and `/metrics` on a listener of their
//! own, with their own small connection cap (`admin.max_connections`), so that nothing on the
//! API ports (floods of stalled connections, a full connection table, load) can starve a
//! Kubernetes probe or the scraper. Both ports answer the probes the same way: `/healthz` is the
//! inference watchdog's liveness, `/readyz` is `readiness` below. It stays open through the
//! drain: `/readyz` answers 503 there.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::classify::Classifier;

/// Readiness: a model serves, every version this replica must serve (a pin, a serving state's
/// stable version) can, and the process is not draining. The body says why not, or, when
/// ready, what each model serves and the serving-state generation applied (one line a model).
pub fn readiness(c: &Classifier) -> (StatusCode, String) {
    if crate::drain::draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
    } else if let Some(reason) = c.store().snapshot().unready_reason() {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"))
    } else {
        (StatusCode::OK, format!("ready\n{}", c.store().snapshot().detail()))
    }
}

async fn readyz(State(c): State<Arc<Classifier>>) -> (StatusCode, String) {
    readiness(&c)
}

async fn metrics(State(c): State<Arc<Classifier>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], c.metrics().encode())
}

/// The admin port's routes; anything else is 404.
pub fn router(classifier: Arc<Classifier>) -> Router<()> {
    Router::new()
        .route("/healthz", get(crate::pipeline::watchdog::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(classifier)
}
