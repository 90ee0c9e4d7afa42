//! `manifest.json`: everything needed to serve a model version exactly as it was trained.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::features::{FeatureSpec, Normalizer};
use crate::metrics::Metrics;

/// Manifest format understood by this build.
pub const MANIFEST_FORMAT: u32 = 1;

/// A tensor dimension: fixed size or a named dynamic axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(u64),
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<Dim>,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// sha256 over the sorted (split, label, file name, content hash) of the training data.
    pub dataset_fingerprint: String,
    pub seed: u64,
    pub epochs: u32,
    pub trainer_version: String,
    pub training_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    /// Filled in by `publish` with the version the model lands in.
    pub version: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// sha256 (hex) of `model.onnx`; filled in by `publish`.
    pub sha256: String,
    pub input: TensorInfo,
    pub output: TensorInfo,
    pub feature_spec: FeatureSpec,
    pub normalization: Normalizer,
    /// Class names by output meaning: `["real", "fake"]`, the score is P(fake).
    pub labels: Vec<String>,
    /// Decision threshold on the fake score, chosen on validation.
    pub threshold: f64,
    /// Evaluation results: `validation`, `test`, and `test/<source>` breakdowns.
    pub metrics: BTreeMap<String, Metrics>,
    /// Architecture and training hyperparameters (free-form, for people).
    pub model: serde_json::Value,
    pub provenance: Provenance,
}

impl Manifest {
    /// A manifest for a model that follows the runtime contract (`features [batch, frames,
    /// n_features]` -> `fake_prob [batch]`), created now. `publish` fills in `version` and
    /// `sha256`; `metrics` starts empty and `model` null.
    pub fn new(
        name: &str,
        feature_spec: FeatureSpec,
        normalization: Normalizer,
        threshold: f64,
        provenance: Provenance,
    ) -> Self {
        use crate::runtime::{INPUT_NAME, OUTPUT_NAME};
        let batch = Dim::Named("batch".into());
        Self {
            format: MANIFEST_FORMAT,
            name: name.into(),
            version: 0,
            created_at: rfc3339(std::time::SystemTime::now()),
            sha256: String::new(),
            input: TensorInfo {
                name: INPUT_NAME.into(),
                shape: vec![
                    batch.clone(),
                    Dim::Fixed(feature_spec.frames_per_segment() as u64),
                    Dim::Fixed(feature_spec.n_features() as u64),
                ],
            },
            output: TensorInfo { name: OUTPUT_NAME.into(), shape: vec![batch] },
            feature_spec,
            normalization,
            labels: vec!["real".into(), "fake".into()],
            threshold,
            metrics: BTreeMap::new(),
            model: serde_json::Value::Null,
            provenance,
        }
    }
}

/// `SystemTime` as RFC 3339 UTC with seconds (`2026-11-25T19:07:26Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_633_646)), "2026-11-25T19:07:26Z");
    }
}
