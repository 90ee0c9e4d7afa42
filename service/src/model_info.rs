//! What is loaded, as the API describes it (from the manifests), and what was rejected: one
//! listing that gRPC `ListModels` / `GetModel` and HTTP `GET /v1/models` each render.
//!
//! A manifest is untrusted and may be large (up to `MAX_MANIFEST_BYTES`): a listing carries
//! whole manifests only when asked, and never more than `MAX_LISTED_MANIFEST_BYTES` of them, so
//! a gRPC response stays under gRPC's default 4 MiB receive limit whatever is published.

use std::collections::BTreeMap;

use crate::models::{LoadedModel, ModelStore, Rejected};

/// Most manifest JSON one listing carries (with `include_manifest`), and the most one model's
/// description carries: under the 4 MiB default receive limit of gRPC clients, with room for
/// the rest of the response.
pub const MAX_LISTED_MANIFEST_BYTES: usize = 3 << 20;

/// One loaded version; its serde form is the proto's JSON mapping of `ModelInfo` (HTTP
/// `GET /v1/models`), with the proto's field names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: u64,
    pub serving: bool,
    pub created_at: String,
    pub sha256: String,
    pub threshold: f64,
    pub execution_provider: String,
    pub sample_rate: u32,
    pub segment_seconds: f64,
    pub frames: u32,
    pub features: u32,
    /// Test-split metrics from the manifest (accuracy, precision, recall, f1, eer, auc).
    pub test_metrics: BTreeMap<String, f64>,
    /// Validation-split metrics, the same keys: shown beside the test split's so that neither is
    /// read alone (bundled versions 3 and 4's test splits hold only engine families never
    /// trained on).
    pub validation_metrics: BTreeMap<String, f64>,
    /// Not in the API's `ModelInfo` (the whole manifest is, on request).
    #[serde(skip)]
    pub feature_spec: serde_json::Value,
    /// The whole manifest when asked for and under the cap, else empty.
    pub manifest_json: String,
    pub manifest_bytes: u64,
    /// The version in canary.
    pub canary: bool,
    /// The share of the requests without a version this version answers.
    pub traffic_fraction: f64,
}

/// One model's loaded versions, oldest first.
#[derive(Debug, Clone)]
pub struct ModelVersionsInfo {
    pub name: String,
    pub serving: Option<u64>,
    /// The canary and its fraction, during a canary.
    pub canary: Option<(u64, f64)>,
    pub versions: Vec<ModelInfo>,
}

#[derive(Debug, Clone)]
pub struct Listing {
    /// By name.
    pub models: Vec<ModelVersionsInfo>,
    pub rejected: Vec<Rejected>,
    /// Manifests asked for but left out to keep the listing under its cap.
    pub manifests_omitted: u32,
}

/// Who answers the requests without a version: the stable version and, during a canary, the
/// canary version with its fraction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    pub stable: Option<u64>,
    pub canary: Option<(u64, f64)>,
}

impl Traffic {
    /// The share of the requests without a version that `version` answers.
    pub fn fraction(&self, version: u64) -> f64 {
        let canary = self.canary.filter(|&(v, _)| v != self.stable.unwrap_or(0));
        match canary {
            Some((v, f)) if v == version => f,
            Some((_, f)) if self.stable == Some(version) => 1.0 - f,
            None if self.stable == Some(version) => 1.0,
            _ => 0.0,
        }
    }
}

/// `include_manifest`: carry the whole manifest JSON (when under the cap).
pub fn info(m: &LoadedModel, traffic: Traffic, include_manifest: bool) -> ModelInfo {
    let serving = traffic.stable == Some(m.version());
    let spec = m.extractor.spec();
    let split_metrics = |split: &str| {
        m.manifest
            .metrics
            .get(split)
            .map(|t| {
                let mut out = BTreeMap::from([
                    ("accuracy".to_string(), t.accuracy),
                    ("precision".to_string(), t.precision),
                    ("recall".to_string(), t.recall),
                    ("f1".to_string(), t.f1),
                ]);
                out.extend(t.eer.map(|v| ("eer".to_string(), v)));
                out.extend(t.auc.map(|v| ("auc".to_string(), v)));
                out
            })
            .unwrap_or_default()
    };
    ModelInfo {
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
        test_metrics: split_metrics("test"),
        validation_metrics: split_metrics("validation"),
        feature_spec: serde_json::to_value(&m.manifest.feature_spec).unwrap_or_default(),
        manifest_json: if include_manifest && m.manifest_json.len() <= MAX_LISTED_MANIFEST_BYTES {
            m.manifest_json.clone()
        } else {
            String::new()
        },
        manifest_bytes: m.manifest_json.len() as u64,
        canary: traffic.canary.is_some_and(|(v, _)| v == m.version()) && traffic.stable != Some(m.version()),
        traffic_fraction: traffic.fraction(m.version()),
    }
}

/// Every loaded version and every rejected one; manifests (when asked for) fill the cap in
/// order, by name then version.
pub fn list(store: &ModelStore, include_manifest: bool) -> Listing {
    let catalog = store.snapshot();
    let mut budget = MAX_LISTED_MANIFEST_BYTES;
    let mut manifests_omitted = 0;
    let models = catalog
        .models
        .iter()
        .map(|(name, entry)| ModelVersionsInfo {
            name: name.clone(),
            serving: entry.serving,
            canary: entry.canary,
            versions: entry
                .versions
                .values()
                .map(|m| {
                    let fits = m.manifest_json.len() <= budget;
                    if include_manifest && fits {
                        budget -= m.manifest_json.len();
                    } else if include_manifest {
                        manifests_omitted += 1;
                    }
                    let traffic = Traffic { stable: entry.serving, canary: entry.canary };
                    info(m, traffic, include_manifest && fits)
                })
                .collect(),
        })
        .collect();
    Listing { models, rejected: catalog.rejected.values().cloned().collect(), manifests_omitted }
}
