//! `vericlip-train extract`: the features of files' first segment, for inspection and parity
//! checks against `tests/golden/reference_features.py` (same JSON shape, same samples: the first
//! `segment_samples` of the 16 kHz mono audio, unpadded, before normalization).

use std::path::{Path, PathBuf};

use serde::Serialize;
use vericlip_core::audio::{AudioError, AudioLimits, load_file};
use vericlip_core::{FeatureError, FeatureExtractor, FeatureSpec};

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{path}: {source}")]
    Audio { path: PathBuf, source: AudioError },
    #[error("{path}: {source}")]
    Features { path: PathBuf, source: FeatureError },
}

/// Features of one file: `[frames][n_features]`.
pub struct FileFeatures {
    pub path: PathBuf,
    pub duration_seconds: f64,
    pub frames: Vec<Vec<f32>>,
}

pub fn extract_file(ex: &FeatureExtractor, path: &Path, limits: &AudioLimits) -> Result<FileFeatures, ExtractError> {
    let spec = ex.spec();
    let audio = load_file(path, spec.sample_rate, limits)
        .map_err(|source| ExtractError::Audio { path: path.into(), source })?;
    let first = &audio.samples[..audio.samples.len().min(spec.segment_samples)];
    let m = ex.extract(first).map_err(|source| ExtractError::Features { path: path.into(), source })?;
    Ok(FileFeatures {
        path: path.into(),
        duration_seconds: audio.duration_seconds(),
        frames: m.outer_iter().map(|r| r.to_vec()).collect(),
    })
}

/// The reference script's output shape: `{"spec": {...}, "features": {"<path>": [[...]]}}`.
#[derive(Serialize)]
pub struct ExtractJson<'a> {
    pub spec: &'a FeatureSpec,
    pub features: std::collections::BTreeMap<String, &'a Vec<Vec<f32>>>,
}
