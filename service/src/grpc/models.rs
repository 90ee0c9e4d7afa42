//! ListModels / GetModel: what is loaded, from the manifests.

use crate::api;
use crate::models::{LoadedModel, ModelStore};

pub fn info(m: &LoadedModel, serving: bool) -> api::ModelInfo {
    let spec = m.extractor.spec();
    let test_metrics = m
        .manifest
        .metrics
        .get("test")
        .map(|t| {
            let mut out = std::collections::HashMap::from([
                ("accuracy".to_string(), t.accuracy),
                ("precision".to_string(), t.precision),
                ("recall".to_string(), t.recall),
                ("f1".to_string(), t.f1),
            ]);
            out.extend(t.eer.map(|v| ("eer".to_string(), v)));
            out.extend(t.auc.map(|v| ("auc".to_string(), v)));
            out
        })
        .unwrap_or_default();
    api::ModelInfo {
        name: m.name().to_string(),
        version: m.version(),
        serving,
        created_at: m.manifest.created_at.clone(),
        sha256: m.manifest.sha256.clone(),
        threshold: m.threshold(),
        execution_provider: m.provider.to_string(),
        sample_rate: spec.sample_rate,
        segment_seconds: spec.segment_seconds(),
        frames: spec.frames_per_segment() as u32,
        features: spec.n_features() as u32,
        test_metrics,
        manifest_json: m.manifest_json.clone(),
    }
}

pub fn list(store: &ModelStore) -> api::ListModelsResponse {
    let catalog = store.snapshot();
    let models = catalog
        .models
        .values()
        .flat_map(|e| e.versions.iter().map(move |(v, m)| info(m, e.serving == Some(*v))))
        .collect();
    api::ListModelsResponse { models }
}
