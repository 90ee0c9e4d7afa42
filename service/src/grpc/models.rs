//! ListModels / GetModel: what is loaded, from the manifests, and what was rejected.
//!
//! A manifest is untrusted and may be large (up to `MAX_MANIFEST_BYTES`): ListModels carries
//! whole manifests only when asked, and never more than `MAX_LISTED_MANIFEST_BYTES` of them, so
//! the response stays under gRPC's default 4 MiB receive limit whatever is published.

use crate::api;
use crate::models::{LoadedModel, ModelStore};

/// Most manifest JSON one ListModels response carries (with `include_manifest`), and the most
/// one GetModel carries: under the 4 MiB default receive limit of gRPC clients, with room for
/// the rest of the response.
pub const MAX_LISTED_MANIFEST_BYTES: usize = 3 << 20;

/// `include_manifest`: carry the whole manifest JSON (when under the cap).
pub fn info(m: &LoadedModel, serving: bool, include_manifest: bool) -> api::ModelInfo {
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
        manifest_json: if include_manifest && m.manifest_json.len() <= MAX_LISTED_MANIFEST_BYTES {
            m.manifest_json.clone()
        } else {
            String::new()
        },
        manifest_bytes: m.manifest_json.len() as u64,
    }
}

pub fn list(store: &ModelStore, include_manifest: bool) -> api::ListModelsResponse {
    let catalog = store.snapshot();
    let mut budget = MAX_LISTED_MANIFEST_BYTES;
    let mut manifests_omitted = 0;
    let models = catalog
        .models
        .values()
        .flat_map(|e| e.versions.iter().map(move |(v, m)| (m, e.serving == Some(*v))))
        .map(|(m, serving)| {
            let fits = m.manifest_json.len() <= budget;
            if include_manifest && fits {
                budget -= m.manifest_json.len();
            } else if include_manifest {
                manifests_omitted += 1;
            }
            info(m, serving, include_manifest && fits)
        })
        .collect();
    let rejected = catalog
        .rejected
        .values()
        .map(|r| api::RejectedVersion { name: r.name.clone(), version: r.version, reason: r.reason.clone() })
        .collect();
    api::ListModelsResponse { models, rejected, manifests_omitted }
}
