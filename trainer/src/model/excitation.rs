//! Fitting the excitation detector that sits beside the LSTM (`model::ExcitationBranch`) when
//! the feature spec has the excitation block.
//!
//! It is a one-class detector: fitted on real speech only, it flags a segment whose residual
//! peakiness lies outside real speech's range in either direction. That is the point: the
//! LSTM learns the cues of the engines it is trained on and misses a vocoder it has not heard
//! (docs/MODEL_CARD.md), while a pulse-excited vocoder's residual is peakier than a glottis's
//! and a phase-reconstructing one's flatter whichever engine made it.
//!
//! - centre and spread: mean and standard deviation of the segment statistic over the training
//!   split's real segments (augmented copies included: they are real speech too, in noise);
//! - threshold: the deviation (in standard deviations) that [`FALSE_ALARMS`] of the validation
//!   split's real segments exceed; there the branch's logit is 0;
//! - slope: [`SLOPE_PER_SD`] logit per standard deviation beyond it.
//!
//! The LSTM trains on the other columns exactly as without the block, so with the same seed its
//! weights are those of the same recipe without the branch.

use std::ops::Range;

use anyhow::{Context, ensure};
use vericlip_core::{FeatureSpec, Normalizer};

use crate::data::SplitData;
use crate::model::ExcitationBranch;

/// Share of validation real segments the branch alone calls fake (before calibration).
pub const FALSE_ALARMS: f64 = 0.02;
/// Branch logit per standard deviation of real speech's statistic beyond the threshold.
pub const SLOPE_PER_SD: f64 = 4.0;

/// Where the excitation block sits in normalized features, and its loud-flag midpoint.
#[derive(Debug, Clone)]
pub struct Columns {
    cols: Range<usize>,
    loud_mid: f32,
}

impl Columns {
    /// `None` without the block. The block must be the last of the layout (no deltas after it):
    /// the LSTM reads the columns before it.
    pub fn of(spec: &FeatureSpec, normalizer: &Normalizer) -> anyhow::Result<Option<Self>> {
        let Some(cols) = spec.block("excitation") else { return Ok(None) };
        ensure!(
            cols.end == spec.n_features(),
            "the excitation block must be the last of the frame (a spec without deltas)"
        );
        let flag = cols.start + 1;
        let (mean, std) = (normalizer.mean[flag], normalizer.std[flag]);
        Ok(Some(Self { loud_mid: (0.5 - mean) / std, cols }))
    }

    /// Floats per frame the LSTM reads.
    pub fn lstm_input(&self) -> usize {
        self.cols.start
    }

    /// The segment statistic of every segment of `d` (normalized, full width), as the graph
    /// computes it (`ExcitationBranch::segment_stat`).
    pub fn stats(&self, d: &SplitData) -> Vec<f64> {
        let (w, k) = (d.n_features, self.cols.start);
        d.features
            .chunks_exact(d.frames * w)
            .map(|seg| {
                ExcitationBranch::segment_stat(self.loud_mid, seg.chunks_exact(w).map(|frame| (frame[k], frame[k + 1])))
            })
            .collect()
    }

    /// Drops the block's columns from `d` in place: what the LSTM trains on.
    pub fn drop_from(&self, d: &mut SplitData) {
        let (w, keep) = (d.n_features, self.cols.start);
        let rows = d.features.len() / w;
        for r in 0..rows {
            d.features.copy_within(r * w..r * w + keep, r * keep);
        }
        d.features.truncate(rows * keep);
        d.n_features = keep;
    }

    /// The branch from the statistics of the training and validation splits.
    pub fn fit(
        &self,
        train_stats: &[f64],
        train_fake: &[bool],
        val_stats: &[f64],
        val_fake: &[bool],
    ) -> anyhow::Result<ExcitationBranch> {
        let real = |stats: &[f64], fake: &[bool]| -> Vec<f64> {
            stats.iter().zip(fake).filter(|(_, f)| !**f).map(|(s, _)| *s).collect()
        };
        let train_real = real(train_stats, train_fake);
        ensure!(train_real.len() >= 2, "the excitation branch needs real training segments");
        let n = train_real.len() as f64;
        let center = train_real.iter().sum::<f64>() / n;
        let sd = (train_real.iter().map(|s| (s - center).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        ensure!(sd > 0.0, "real training segments all have the same excitation statistic");
        let mut dev: Vec<f64> = real(val_stats, val_fake).iter().map(|s| (s - center).abs() / sd).collect();
        ensure!(!dev.is_empty(), "the excitation branch needs real validation segments");
        dev.sort_by(f64::total_cmp);
        let at = ((1.0 - FALSE_ALARMS) * (dev.len() - 1) as f64).round() as usize;
        let z0 = *dev.get(at).context("validation deviations")?;
        let branch = ExcitationBranch {
            loud_mid: self.loud_mid,
            center: center as f32,
            slope: (SLOPE_PER_SD / sd) as f32,
            bias: (-SLOPE_PER_SD * z0) as f32,
        };
        tracing::info!(center, sd, z0, "excitation branch (one-class, real speech)");
        Ok(branch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of 4 frames x 3 features: one seed column, then (kurtosis, flag); flag 1.0 loud.
    fn split(segments: &[(&[(f32, f32)], bool)]) -> SplitData {
        let mut d = SplitData { frames: 4, n_features: 3, ..SplitData::default() };
        for (i, (frames, fake)) in segments.iter().enumerate() {
            for (t, (k, flag)) in frames.iter().enumerate() {
                d.features.extend([(i * 10 + t) as f32, *k, *flag]);
            }
            d.labels.push(*fake);
        }
        d
    }

    fn columns() -> Columns {
        let spec = FeatureSpec { excitation_order: 16, ..FeatureSpec::default() };
        let mut n = Normalizer { mean: vec![0.0; 98], std: vec![1.0; 98] };
        (n.mean[97], n.std[97]) = (0.25, 0.5);
        let x = Columns::of(&spec, &n).unwrap().unwrap();
        assert_eq!((x.cols.clone(), x.loud_mid, x.lstm_input()), (96..98, 0.5, 96));
        // The test splits are 3 wide: the block at columns 1..3.
        Columns { cols: 1..3, ..x }
    }

    #[test]
    fn statistics_average_loud_frames_and_the_lstm_keeps_the_other_columns() {
        let x = columns();
        let mut d = split(&[(&[(2.0, 1.0), (9.0, 0.0), (4.0, 1.0), (9.0, 0.0)], false), (&[(5.0, 0.0); 4], true)]);
        assert_eq!(x.stats(&d), [3.0, 0.0]);
        x.drop_from(&mut d);
        assert_eq!((d.n_features, d.features.as_slice()), (1, [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0].as_slice()));
        // A spec with deltas after the block is refused (the LSTM reads the columns before it).
        let spec = FeatureSpec { excitation_order: 16, deltas: 1, delta_width: 9, ..FeatureSpec::default() };
        let n = Normalizer { mean: vec![0.0; 118], std: vec![1.0; 118] };
        assert!(Columns::of(&spec, &n).is_err());
        assert!(Columns::of(&FeatureSpec::default(), &n).unwrap().is_none());
    }

    #[test]
    fn the_branch_flags_its_share_of_validation_reals_in_both_directions() {
        let x = columns();
        // Real training statistics 1..=9 (mean 5), fakes ignored.
        let train: Vec<f64> = (1..=9).map(f64::from).chain([100.0]).collect();
        let train_fake = [vec![false; 9], vec![true]].concat();
        // 100 validation reals spread around 5: 2 % of them (the two at +-6) beyond the threshold.
        let val: Vec<f64> = (0..100).map(|i| 5.0 + f64::from(i % 10 - 5) * 0.2).chain([11.0, -1.0]).collect();
        let b = x.fit(&train, &train_fake, &val, &[false; 102]).unwrap();
        assert_eq!(b.center, 5.0);
        let flagged = |stats: &[f64]| stats.iter().filter(|s| b.logit(**s) > 0.0).count();
        assert_eq!(flagged(&val), 2);
        // Far outside real speech either way: flagged, with a logit growing with the distance.
        assert!(b.logit(5.0 + 20.0) > 4.0 && b.logit(5.0 - 20.0) > 4.0 && b.logit(5.0) < 0.0);
        // No real speech: a clear error, not a NaN threshold.
        assert!(x.fit(&train, &[true; 10], &val, &[false; 102]).is_err());
    }
}
