//! Stage `data`: the named splits of a for-2sec dataset as features (parallel, cached), and the
//! augmented copies of the training split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vericlip_core::{FeatureExtractor, FeatureSpec};

use super::Training;
use crate::data::{self, FeatureCache, SplitCounts, SplitData};
use crate::rng::Rng;

/// The random stream augmentation draws from (a fork of the training seed): a `loeo` fold's
/// augmented copies are the ones `fit` would make.
pub const AUGMENT_STREAM: u64 = 0xa06;

/// The splits of a dataset, loaded.
pub struct Loaded {
    pub extractor: FeatureExtractor,
    pub splits: BTreeMap<&'static str, SplitData>,
    /// Per split: files, segments and skipped files, for the summary.
    pub counts: BTreeMap<String, SplitCounts>,
}

impl Loaded {
    /// Takes a split out (empty when it was not loaded).
    pub fn take(&mut self, split: &str) -> SplitData {
        self.splits.remove(split).unwrap_or_default()
    }
}

/// Loads `names` of the dataset at `root` with `spec`'s features (see [`data::load_splits`]).
pub fn load(
    root: &Path,
    names: &[&'static str],
    spec: &FeatureSpec,
    cache: Option<PathBuf>,
    progress: bool,
) -> anyhow::Result<Loaded> {
    let extractor = FeatureExtractor::new(spec.clone())?;
    let cache = FeatureCache::new(cache, spec)?;
    let mut splits = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for (split, (d, c)) in data::load_splits(root, names, &extractor, &cache, progress)? {
        counts.insert(split.to_string(), c);
        splits.insert(split, d);
    }
    Ok(Loaded { extractor, splits, counts })
}

/// The augmented copies of the training split that `training` asks for (`None` for none),
/// drawn from the training seed's [`AUGMENT_STREAM`].
pub fn augmented(root: &Path, extractor: &FeatureExtractor, training: &Training) -> anyhow::Result<Option<SplitData>> {
    if training.augment == 0 {
        return Ok(None);
    }
    let rng = Rng::new(training.config.seed).fork(AUGMENT_STREAM);
    let extra =
        data::augmented_split(&root.join("training"), extractor, training.augment, &training.augment_config, &rng)?;
    tracing::info!(copies = training.augment, segments = extra.len(), "augmented training segments");
    Ok(Some(extra))
}
