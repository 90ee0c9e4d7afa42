//! The page for people at `/` (upload or record audio, see the verdict per segment), its static
//! assets (embedded in the binary: no CDN, no build step), the model card, and `GET /v1/models`
//! (what the page's version selector and metrics panel show).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::grpc::models;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");
const WORKLET: &str = include_str!("../../web/pcm-worklet.js");
const MODEL_CARD: &str = include_str!("../../../docs/MODEL_CARD.md");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn worklet() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", WORKLET)
}

pub async fn model_card() -> impl IntoResponse {
    asset("text/markdown; charset=utf-8", MODEL_CARD)
}

#[derive(Debug, Serialize)]
pub struct ModelsJson {
    pub models: Vec<ModelJson>,
    /// Published versions that failed to load, and why.
    pub rejected: Vec<RejectedJson>,
}

#[derive(Debug, Serialize)]
pub struct RejectedJson {
    pub name: String,
    pub version: u64,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct ModelJson {
    pub name: String,
    pub serving_version: Option<u64>,
    pub versions: Vec<VersionJson>,
}

#[derive(Debug, Serialize)]
pub struct VersionJson {
    pub version: u64,
    pub serving: bool,
    pub threshold: f64,
    pub execution_provider: String,
    pub created_at: String,
    /// Test-split metrics from the manifest (accuracy, precision, recall, f1, eer, auc).
    pub metrics: BTreeMap<String, f64>,
    pub feature_spec: serde_json::Value,
}

/// The loaded models, their versions and manifests' test metrics: the same facts as gRPC
/// `ListModels`, grouped by model.
pub async fn list_models(State(s): State<AppState>) -> Json<ModelsJson> {
    let catalog = s.classifier.store.snapshot();
    let models = catalog
        .models
        .iter()
        .map(|(name, entry)| ModelJson {
            name: name.clone(),
            serving_version: entry.serving,
            versions: entry
                .versions
                .iter()
                .rev()
                .map(|(v, m)| {
                    let info = models::info(m, entry.serving == Some(*v), false);
                    VersionJson {
                        version: info.version,
                        serving: info.serving,
                        threshold: info.threshold,
                        execution_provider: info.execution_provider,
                        created_at: info.created_at,
                        metrics: info.test_metrics.into_iter().collect(),
                        feature_spec: serde_json::to_value(&m.manifest.feature_spec).unwrap_or_default(),
                    }
                })
                .collect(),
        })
        .collect();
    let rejected = catalog
        .rejected
        .values()
        .map(|r| RejectedJson { name: r.name.clone(), version: r.version, reason: r.reason.clone() })
        .collect();
    Json(ModelsJson { models, rejected })
}
