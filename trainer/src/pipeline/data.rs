//! Stage `data`: the named splits of a for-2sec dataset as features (parallel, cached), and the
//! augmented copies of the training split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use vericlip_core::audio::{AudioInput, AudioLimits, load_mono};
use vericlip_core::{FeatureExtractor, FeatureSpec};

use super::Training;
use crate::augment::{self, AugmentConfig};
use crate::data::corpus::process::SR;
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
    let extra = augmented_split(&root.join("training"), extractor, training.augment, &training.augment_config, &rng)?;
    tracing::info!(copies = training.augment, segments = extra.len(), "augmented training segments");
    Ok(Some(extra))
}

/// `copies` augmented versions of every segment of every readable file of a split, made as
/// `config` says (not cached, so no cache key depends on the config: each copy is new audio).
/// File `i`, copy `c` draws from `rng.fork(i).fork(c)`.
fn augmented_split(
    dir: &Path,
    ex: &FeatureExtractor,
    copies: usize,
    config: &AugmentConfig,
    rng: &Rng,
) -> anyhow::Result<SplitData> {
    let spec = ex.spec();
    if copies > 0 && spec.sample_rate != SR {
        anyhow::bail!("augmentation works on {} Hz audio, the feature spec says {} Hz", SR, spec.sample_rate);
    }
    let files = data::list_split(dir)?;
    let limits = AudioLimits::default();
    let per_file: Vec<anyhow::Result<Vec<f32>>> = files
        .par_iter()
        .enumerate()
        .map(|(i, (path, _))| {
            let bytes = std::fs::read(path)?;
            let audio = load_mono(AudioInput::Encoded(&bytes), spec.sample_rate, &limits)?;
            let (mut scratch, mut seg, mut out) = (ex.scratch(), Vec::new(), Vec::new());
            for c in 0..copies {
                let mut r = rng.fork(i as u64).fork(c as u64);
                for s in spec.segments(audio.samples.len(), spec.segment_samples) {
                    let y = augment::augment(&s.samples(&audio.samples, spec.segment_samples), config, &mut r)?;
                    ex.extract_into(&y, &mut scratch, &mut seg)?;
                    out.extend_from_slice(&seg);
                }
            }
            Ok(out)
        })
        .collect();
    let mut data = SplitData::empty(spec);
    for ((path, fake), f) in files.into_iter().zip(per_file) {
        match f {
            Ok(f) => data.push_file(path, fake, &f),
            // Unreadable files were already reported by `load_split`; say which were not augmented.
            Err(e) => tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "no augmented copies"),
        }
    }
    Ok(data)
}
