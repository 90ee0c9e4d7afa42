//! `vericlip-train eval`: a published version scored through ONNX Runtime on a dataset, at the
//! version's own threshold and normalization.

use std::path::{Path, PathBuf};

use anyhow::bail;
use vericlip_core::FeatureExtractor;
use vericlip_core::registry;

use crate::data::{self, FeatureCache, Skipped};
use crate::eval::{self, Evaluation};
use crate::pipeline;

/// Scores `split` of `data` (a for-2sec root) or `data` itself (a folder with `real/` and
/// `fake/`) with the version at `model_dir`; `with_segments` adds every segment's score.
pub fn eval(
    model_dir: &Path,
    data: &Path,
    split: &str,
    cache: Option<PathBuf>,
    with_segments: bool,
    progress: bool,
) -> anyhow::Result<(Evaluation, Vec<Skipped>)> {
    let loaded = registry::load_version(model_dir)?;
    let m = &loaded.manifest;
    let ex = FeatureExtractor::new(m.feature_spec.clone())?;
    let cache = FeatureCache::new(cache, &m.feature_spec)?;
    let dir = if data.join(split).is_dir() { data.join(split) } else { data.to_path_buf() };
    let (mut d, skipped) = data::load_split(&dir, &ex, &cache, progress)?;
    if d.is_empty() {
        bail!("{}: no readable audio under real/ or fake/", dir.display());
    }
    pipeline::normalize::apply(&m.normalization, [&mut d]);
    let mut session = pipeline::export::session(&loaded.model_onnx)?;
    let scores = eval::score(&mut session, &d)?;
    let mut e = eval::evaluate(&scores, &d, m.threshold);
    if with_segments {
        e.segments = eval::segment_scores(&scores, &d, m.threshold);
    }
    Ok((e, skipped))
}
