//! One model version, loaded: manifest, feature pipeline and its inference workers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ndarray::Array3;
use vericlip_core::registry::{self, Manifest};
use vericlip_core::runtime::{ExecutionProvider, ModelSession, OrtRuntime};
use vericlip_core::{FeatureExtractor, Normalizer};

use crate::metrics::Metrics;
use crate::pipeline::{BatchConfig, Batcher};

/// How inference workers are set up for every version.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub sessions: usize,
    pub provider: ExecutionProvider,
    pub max_batch: usize,
    pub max_delay: Duration,
}

/// Most floats in one batch tensor (256 MiB of f32): `runtime.max_batch` is lowered for a
/// version whose segments are so large that a full batch would pass it.
pub const MAX_BATCH_FLOATS: usize = 1 << 26;

pub struct LoadedModel {
    pub manifest: Manifest,
    /// sha256 of `manifest.json` as it was loaded (the version's identity, held to the one the
    /// serving state recorded when it was published).
    pub manifest_sha256: String,
    pub manifest_json: String,
    pub extractor: FeatureExtractor,
    pub normalizer: Normalizer,
    /// The execution provider really in use (`cpu` / `cuda`).
    pub provider: &'static str,
    pub batcher: Batcher,
}

impl LoadedModel {
    /// Loads `dir` (checksum verified), builds its sessions and warms each up with one inference;
    /// any failure means the version must not serve.
    pub fn load(
        dir: &Path,
        runtime: &OrtRuntime,
        options: LoadOptions,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, String> {
        let loaded = registry::load_version(dir).map_err(|e| e.to_string())?;
        let manifest = loaded.manifest;
        let manifest_sha256 = loaded.manifest_sha256;
        // `load_version` held the manifest to the model contract `vericlip-train import` checks
        // (`registry::contract::check_manifest`: input `[batch, frames, n_features]` of its own
        // spec) and checked the spec against the size limits, so these products are bounded (one
        // segment's features are at most MAX_SEGMENT_FLOATS).
        let spec = manifest.feature_spec.clone();
        let (frames, n_features) = (spec.frames_per_segment(), spec.n_features());
        let extractor = FeatureExtractor::new(spec).map_err(|e| e.to_string())?;
        let mut sessions = Vec::with_capacity(options.sessions);
        let mut provider = "cpu";
        let warm = Array3::<f32>::zeros((1, frames, n_features));
        for _ in 0..options.sessions.max(1) {
            let (mut session, p) = ModelSession::with_provider(runtime, &loaded.model_onnx, options.provider)
                .map_err(|e| e.to_string())?;
            let out = session.run(warm.view()).map_err(|e| format!("warm-up inference failed: {e}"))?;
            if out.len() != 1 || !(0.0..=1.0).contains(&out[0]) {
                return Err(format!("warm-up inference returned {out:?}, not one probability"));
            }
            provider = p;
            sessions.push(session);
        }
        let manifest_json = serde_json::to_string(&manifest).map_err(|e| e.to_string())?;
        // A batch tensor stays under MAX_BATCH_FLOATS whatever the segment size.
        let max_batch = options.max_batch.min(MAX_BATCH_FLOATS / (frames * n_features).max(1)).max(1);
        let config = BatchConfig { max_batch, max_delay: options.max_delay, frames, n_features };
        let label = format!("{}-{}", manifest.name, manifest.version);
        let batcher = Batcher::start(sessions, config, Arc::clone(metrics), &label);
        Ok(Self {
            normalizer: manifest.normalization.clone(),
            manifest,
            manifest_sha256,
            manifest_json,
            extractor,
            provider,
            batcher,
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    pub fn threshold(&self) -> f64 {
        self.manifest.threshold
    }
}
