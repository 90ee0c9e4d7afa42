//! Stages `threshold` and `evaluate`: validation and test scored through ONNX Runtime (the
//! service's path), the decision threshold at the validation EER, and the metrics at it.

use std::collections::BTreeMap;

use vericlip_core::metrics::{self, Metrics};
use vericlip_core::runtime::ModelSession;

use crate::data::SplitData;
use crate::eval::{self, Evaluation};

/// P(fake) of every validation and test segment.
pub struct Scores {
    pub validation: Vec<f32>,
    pub test: Vec<f32>,
}

/// Scores both splits (normalized) through `session`.
pub fn score(session: &mut ModelSession, validation: &SplitData, test: &SplitData) -> anyhow::Result<Scores> {
    Ok(Scores { validation: eval::score(session, validation)?, test: eval::score(session, test)? })
}

/// The decision threshold: the validation EER point (0.5 when the EER is undefined).
pub fn threshold(validation_scores: &[f32], validation: &SplitData) -> f64 {
    metrics::eer(validation_scores, &validation.labels).map_or(0.5, |e| e.1).clamp(0.0, 1.0)
}

/// Validation and test at the validation-EER threshold.
pub struct Evaluated {
    pub threshold: f64,
    pub validation: Evaluation,
    pub test: Evaluation,
}

impl Evaluated {
    /// What the manifest records: validation, test, and test per source (`test/<source>`).
    pub fn manifest_metrics(&self) -> BTreeMap<String, Metrics> {
        let mut m = BTreeMap::new();
        m.insert("validation".into(), self.validation.overall.clone());
        m.insert("test".into(), self.test.overall.clone());
        for (src, metrics) in &self.test.per_source {
            m.insert(format!("test/{src}"), metrics.clone());
        }
        m
    }
}

/// Sets the threshold on validation and evaluates both splits at it.
pub fn evaluate(scores: &Scores, validation: &SplitData, test: &SplitData) -> Evaluated {
    let threshold = threshold(&scores.validation, validation);
    Evaluated {
        threshold,
        validation: eval::evaluate(&scores.validation, validation, threshold),
        test: eval::evaluate(&scores.test, test, threshold),
    }
}
