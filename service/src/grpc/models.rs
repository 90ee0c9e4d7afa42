//! ListModels / GetModel: the service's model listing (`crate::model_info`) as gRPC messages.

use crate::api;
use crate::model_info::{Listing, ModelInfo};

impl From<ModelInfo> for api::ModelInfo {
    fn from(m: ModelInfo) -> Self {
        api::ModelInfo {
            name: m.name,
            version: m.version,
            serving: m.serving,
            created_at: m.created_at,
            sha256: m.sha256,
            threshold: m.threshold,
            execution_provider: m.execution_provider,
            sample_rate: m.sample_rate,
            segment_seconds: m.segment_seconds,
            frames: m.frames,
            features: m.features,
            test_metrics: m.test_metrics.into_iter().collect(),
            validation_metrics: m.validation_metrics.into_iter().collect(),
            manifest_json: m.manifest_json,
            manifest_bytes: m.manifest_bytes,
            canary: m.canary,
            traffic_fraction: m.traffic_fraction,
        }
    }
}

impl From<Listing> for api::ListModelsResponse {
    fn from(l: Listing) -> Self {
        api::ListModelsResponse {
            models: l.models.into_iter().flat_map(|m| m.versions).map(Into::into).collect(),
            rejected: l
                .rejected
                .into_iter()
                .map(|r| api::RejectedVersion { name: r.name, version: r.version, reason: r.reason })
                .collect(),
            manifests_omitted: l.manifests_omitted,
        }
    }
}
