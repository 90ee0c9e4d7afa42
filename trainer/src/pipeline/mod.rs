//! The one training procedure, as named stages that the commands compose:
//!
//! ```text
//! data -> normalizer -> train -> calibrate -> threshold -> evaluate -> publish -> report
//! ```
//!
//! | stage | here | `fit` | `loeo` (per fold) | `import` |
//! |---|---|---|---|---|
//! | data | [`data::load`], [`data::augmented`] | yes | yes (then the fold's subsets) | yes (no augmentation) |
//! | normalizer | [`normalize::fit`], [`normalize::apply`] | yes | yes | unless `--normalization` |
//! | train | [`train::train`] (LSTM + excitation branch) | yes | yes | no (the model comes trained) |
//! | calibrate | [`calibrate::calibrate`] (Platt, folded in) | yes | no | no |
//! | export | [`export::export`], [`export::session`], [`export::parity`] | yes (with parity) | yes | loads the file |
//! | threshold | [`evaluate::threshold`] (validation EER) | yes | yes | yes |
//! | evaluate | [`evaluate::evaluate`] (per source, per family) | yes | own fold metrics | yes |
//! | publish | [`publish::publish`] (atomic, next version) | yes | no | yes |
//! | report | [`publish::report`] (after publish, with the real version) | yes | no | yes |
//!
//! Each stage is written once; a command's module says only what differs (its arguments, its
//! summary, what it checks before it spends time).

pub mod calibrate;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod normalize;
pub mod pairs;
pub mod publish;
pub mod train;

use vericlip_core::FeatureSpec;

use crate::augment::AugmentConfig;
use crate::model::train::TrainConfig;

/// How a model is trained: what `fit` and every `loeo` fold share.
#[derive(Debug, Clone)]
pub struct Training {
    /// The model's input features (recorded in the manifest; the server computes the same).
    pub spec: FeatureSpec,
    pub config: TrainConfig,
    /// Augmented copies of each training segment added to the training set (0: none).
    pub augment: usize,
    /// How the copies are made (kinds, probabilities, codecs).
    pub augment_config: AugmentConfig,
}

impl Training {
    /// Checks what can be checked before any audio is read (a missing codec must not surface
    /// mid-run).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.config.validate_objectives()?;
        if self.augment > 0 {
            self.augment_config.validate()?;
        }
        Ok(())
    }
}
