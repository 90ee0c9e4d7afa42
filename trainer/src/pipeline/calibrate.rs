//! Stage `calibrate`: Platt scaling fitted on the validation segments' logits and folded into
//! the model before export, so the published graph outputs calibrated probabilities.

use serde::Serialize;

use super::train::Trained;
use crate::data::SplitData;
use crate::model::calibrate::{self, Platt};

/// Platt scaling fitted on validation and folded into the model, with the expected
/// calibration error of segment scores before and after.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationSummary {
    pub method: &'static str,
    pub fitted_on: &'static str,
    pub a: f64,
    pub c: f64,
    pub validation_ece_before: f64,
    pub validation_ece_after: f64,
    pub test_ece_before: f64,
    pub test_ece_after: f64,
}

/// Fits Platt scaling on `validation` and folds it into `model`; `test` is only measured.
pub fn calibrate(model: &mut Trained, validation: &SplitData, test: &SplitData) -> anyhow::Result<CalibrationSummary> {
    let (val_logits, test_logits) = (model.logits(validation)?, model.logits(test)?);
    let platt = calibrate::fit_platt(&val_logits, &validation.labels);
    // Folding Platt into max(LSTM, branch) needs a positive slope (a model whose scores rank
    // real above fake on validation has nothing to publish anyway).
    anyhow::ensure!(
        model.weights.excitation().is_none() || platt.a > 0.0,
        "Platt slope {} on validation is not positive: the model ranks validation reals above fakes",
        platt.a
    );
    model.weights.calibrate(platt);
    let ece = |z: &[f64], labels: &[bool], p: Platt| {
        calibrate::ece(&z.iter().map(|&v| p.apply(v)).collect::<Vec<_>>(), labels)
    };
    let summary = CalibrationSummary {
        method: "platt",
        fitted_on: "validation segments",
        a: platt.a,
        c: platt.c,
        validation_ece_before: ece(&val_logits, &validation.labels, Platt::IDENTITY),
        validation_ece_after: ece(&val_logits, &validation.labels, platt),
        test_ece_before: ece(&test_logits, &test.labels, Platt::IDENTITY),
        test_ece_after: ece(&test_logits, &test.labels, platt),
    };
    tracing::info!(
        a = platt.a,
        c = platt.c,
        val_ece_before = summary.validation_ece_before,
        val_ece_after = summary.validation_ece_after,
        "calibration (Platt, validation)"
    );
    Ok(summary)
}
