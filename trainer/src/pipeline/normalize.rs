//! Stage `normalizer`: per-feature mean and standard deviation from the training split only
//! (augmented copies included: they are what the model is fitted to), applied to every split.

use vericlip_core::features::NormalizerFit;
use vericlip_core::{FeatureSpec, Normalizer};

use crate::data::SplitData;

/// The normalizer of `training`'s features.
pub fn fit(spec: &FeatureSpec, training: &SplitData) -> anyhow::Result<Normalizer> {
    let mut nf = NormalizerFit::new(spec.n_features());
    nf.add(&training.features);
    Ok(nf.finish()?)
}

/// Normalizes every split in place.
pub fn apply<'a>(normalizer: &Normalizer, splits: impl IntoIterator<Item = &'a mut SplitData>) {
    for d in splits {
        normalizer.apply(&mut d.features);
    }
}
