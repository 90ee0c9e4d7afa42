//! Per-feature standardization `(x - mean) / std`, fitted on the training split only and stored
//! in the model manifest, so serving applies exactly what training used.

use serde::{Deserialize, Serialize};

use super::FeatureError;

/// Smallest standard deviation used; a constant feature is centred but not blown up.
const MIN_STD: f32 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Streaming mean/variance accumulator (f64, so millions of frames do not lose precision).
#[derive(Debug, Clone)]
pub struct NormalizerFit {
    n: u64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl NormalizerFit {
    pub fn new(n_features: usize) -> Self {
        Self { n: 0, sum: vec![0.0; n_features], sum_sq: vec![0.0; n_features] }
    }

    /// Adds frames from a row-major `[frames][n_features]` slice.
    pub fn add(&mut self, rows: &[f32]) {
        for row in rows.chunks_exact(self.sum.len()) {
            self.n += 1;
            for ((s, q), &x) in self.sum.iter_mut().zip(&mut self.sum_sq).zip(row) {
                let x = f64::from(x);
                *s += x;
                *q += x * x;
            }
        }
    }

    pub fn finish(&self) -> Result<Normalizer, FeatureError> {
        if self.n == 0 {
            return Err(FeatureError::Normalizer("no frames to fit the normalizer on".into()));
        }
        let n = self.n as f64;
        let mean: Vec<f32> = self.sum.iter().map(|s| (s / n) as f32).collect();
        let std = self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, q)| {
                let m = s / n;
                ((q / n - m * m).max(0.0).sqrt() as f32).max(MIN_STD)
            })
            .collect();
        Ok(Normalizer { mean, std })
    }
}

impl Normalizer {
    /// Checks shape and values (e.g. of a normalizer read from a manifest).
    pub fn validate(&self, n_features: usize) -> Result<(), FeatureError> {
        if self.mean.len() != n_features || self.std.len() != n_features {
            return Err(FeatureError::Normalizer(format!(
                "mean/std have {}/{} entries, the spec has {n_features} features",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(FeatureError::Normalizer("mean must be finite and std finite and > 0".into()));
        }
        Ok(())
    }

    /// Standardizes a row-major `[frames][n_features]` slice in place.
    pub fn apply(&self, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.mean.len()) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_normalizer_standardizes_to_zero_mean_unit_std() {
        let rows: Vec<f32> = (0..1000).flat_map(|i| [i as f32, 5.0, -(i as f32) * 3.0]).collect();
        let mut fit = NormalizerFit::new(3);
        fit.add(&rows);
        let norm = fit.finish().unwrap();
        norm.validate(3).unwrap();
        let mut out = rows.clone();
        norm.apply(&mut out);
        for f in 0..3 {
            let col: Vec<f64> = out.iter().skip(f).step_by(3).map(|&x| f64::from(x)).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 1e-4, "feature {f} mean {mean}");
            // The constant feature is centred, not scaled up.
            let want = if f == 1 { 0.0 } else { 1.0 };
            assert!((var - want).abs() < 1e-3, "feature {f} var {var}");
        }
        assert!(norm.validate(4).is_err());
        assert!(NormalizerFit::new(3).finish().is_err());
    }
}
