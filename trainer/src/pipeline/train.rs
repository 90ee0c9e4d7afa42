//! Stage `train`: the LSTM, early-stopped on validation loss, and (when the spec has the
//! excitation block) the one-class excitation branch beside it. The LSTM reads the features
//! without the block; the branch reads the block's per-segment statistic; the model's logit is
//! `max(LSTM, branch)`.

use vericlip_core::{FeatureSpec, Normalizer};

use crate::data::SplitData;
use crate::model::excitation::Columns;
use crate::model::network::Network;
use crate::model::train::{self, EpochStats, TrainConfig};

/// A trained model and how training went.
pub struct Trained {
    /// With the excitation branch when the spec has the block (`Network::with_excitation`).
    pub weights: Network,
    pub history: Vec<EpochStats>,
    pub best_epoch: u32,
    pub seconds: f64,
    /// Where the excitation block sits (`None` without it).
    pub columns: Option<Columns>,
}

impl Trained {
    pub fn epochs(&self) -> u32 {
        self.history.len() as u32
    }

    /// The model's logits on `d` (normalized, full width): the LSTM's, fused with the branch's.
    pub fn logits(&self, d: &SplitData) -> anyhow::Result<Vec<f64>> {
        train::logits(&self.weights, d)
    }
}

/// Trains on `training`, early-stopping on `validation` (both normalized by `normalizer`).
/// `fold` names the `loeo` fold in the log.
pub fn train(
    spec: &FeatureSpec,
    normalizer: &Normalizer,
    mut training: SplitData,
    validation: &SplitData,
    config: &TrainConfig,
    fold: Option<&str>,
) -> anyhow::Result<Trained> {
    let columns = Columns::of(spec, normalizer)?;
    let mut narrow_val = None;
    let mut stats = None;
    if let Some(x) = &columns {
        stats = Some((x.stats(&training), x.stats(validation)));
        x.drop_from(&mut training);
        let mut v = validation.clone();
        x.drop_from(&mut v);
        narrow_val = Some(v);
    }
    // Which real each vocoder copy was made from, read back from the corpus's names and seed
    // (only when paired batches or the paired loss ask for it).
    let copies = if config.needs_pairs() {
        let copies = super::pairs::copy_sources(&training.files)?;
        tracing::info!(fold, copies = copies.len(), "vocoder copies paired with their reals");
        copies
    } else {
        Default::default()
    };
    let outcome = train::train_with(&training, narrow_val.as_ref().unwrap_or(validation), config, &copies, |e| {
        tracing::info!(
            fold,
            epoch = e.epoch,
            train_loss = e.train_loss,
            val_loss = e.val_loss,
            val_eer = e.val_eer,
            seconds = e.seconds,
            "epoch"
        );
    })?;
    let mut weights = outcome.weights.clone();
    if let (Some(x), Some((st, sv))) = (&columns, &stats) {
        weights = Network::with_excitation(weights, x.fit(st, &training.labels, sv, &validation.labels)?);
    }
    Ok(Trained { weights, history: outcome.history, best_epoch: outcome.best_epoch, seconds: outcome.seconds, columns })
}
