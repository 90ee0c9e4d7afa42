//! Datasets in the for-2sec layout: `<root>/{training,validation,testing}/{real,fake}/<files>`
//! (any supported format and rate). Every file is decoded, cut into segments by the spec's rule
//! and turned into features in parallel; features are cached on disk under a key of the file's
//! content and the FeatureSpec, so a second run skips the work. Unreadable files are reported
//! and skipped, never fatal and never silently dropped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use vericlip_core::audio::{AudioInput, AudioLimits};
use vericlip_core::clip::{Unbudgeted, clip_features};
use vericlip_core::registry::sha256_hex;
use vericlip_core::{FeatureExtractor, FeatureSpec};

pub mod cache;
pub mod corpus;
pub mod naming;
pub mod subset;

pub use cache::{FeatureCache, default_cache_dir};
pub use naming::source_of;
pub use subset::{Composition, composition, file_families, file_labels, subset};

pub const LABELS: [(&str, bool); 2] = [("real", false), ("fake", true)];

/// Segments of one split: features row-major `[n][frames][n_features]`.
#[derive(Debug, Default, Clone)]
pub struct SplitData {
    pub features: Vec<f32>,
    /// true = fake.
    pub labels: Vec<bool>,
    /// Source of each segment (file-name prefix before `__`, or `unknown`).
    pub sources: Vec<String>,
    /// Index into `files` for each segment.
    pub file_of: Vec<usize>,
    pub files: Vec<PathBuf>,
    pub frames: usize,
    pub n_features: usize,
    /// Draw training epochs by weight ([`epoch_order`]): every real source the same total
    /// weight, all reals together the fakes' total. Set by [`load_splits`] for a training split
    /// whose dataset asks for it (`corpus.json`: `"balance_real_sources": true`).
    pub balance_real: bool,
}

impl SplitData {
    pub fn empty(spec: &FeatureSpec) -> Self {
        Self { frames: spec.frames_per_segment(), n_features: spec.n_features(), ..Default::default() }
    }

    /// Adds one file's segments (`features` holds whole segments).
    pub fn push_file(&mut self, path: PathBuf, fake: bool, features: &[f32]) {
        let idx = self.files.len();
        let source = source_of(&path);
        for _ in 0..features.len() / (self.frames * self.n_features) {
            self.labels.push(fake);
            self.sources.push(source.clone());
            self.file_of.push(idx);
        }
        self.features.extend_from_slice(features);
        self.files.push(path);
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn segment(&self, i: usize) -> &[f32] {
        let w = self.frames * self.n_features;
        &self.features[i * w..(i + 1) * w]
    }
}

#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The files of one split directory (`<dir>/{real,fake}/*`), sorted, with labels.
pub fn list_split(dir: &Path) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for (label, fake) in LABELS {
        let d = dir.join(label);
        if !d.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (f, fake)));
    }
    Ok(out)
}

/// Features of every segment of one file (non-overlapping segments, tail rule; not normalized:
/// the cache holds them as extracted). A file too short for a verdict is too short to learn
/// from: it is skipped, with the reason.
pub fn file_features(ex: &FeatureExtractor, bytes: &[u8], limits: &AudioLimits) -> anyhow::Result<Vec<f32>> {
    Ok(clip_features(ex, None, AudioInput::Encoded(bytes), limits, &mut Unbudgeted)?.features)
}

/// Loads one split: features for every segment of every readable file.
pub fn load_split(
    dir: &Path,
    ex: &FeatureExtractor,
    cache: &FeatureCache,
    progress: bool,
) -> anyhow::Result<(SplitData, Vec<Skipped>)> {
    let files = list_split(dir)?;
    let spec = ex.spec();
    let seg_len = spec.frames_per_segment() * spec.n_features();
    let limits = AudioLimits::default();
    let bar = if progress { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} files ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(dir.file_name().and_then(|n| n.to_str()).unwrap_or("split").to_string());
    let results: Vec<Result<Vec<f32>, String>> = files
        .par_iter()
        .map(|(path, _)| {
            let r = std::fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| match cache.get(&bytes, seg_len) {
                Some(f) => Ok(f),
                None => {
                    let f = file_features(ex, &bytes, &limits).map_err(|e| format!("{e:#}"))?;
                    cache.put(&bytes, &f);
                    Ok(f)
                }
            });
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut data = SplitData::empty(spec);
    let mut skipped = Vec::new();
    for ((path, fake), r) in files.into_iter().zip(results) {
        match r {
            Ok(f) => data.push_file(path, fake, &f),
            Err(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    Ok((data, skipped))
}

impl SplitData {
    /// Appends another split's segments (same spec).
    pub fn extend(&mut self, other: SplitData) {
        let offset = self.files.len();
        self.features.extend(other.features);
        self.labels.extend(other.labels);
        self.sources.extend(other.sources);
        self.file_of.extend(other.file_of.into_iter().map(|i| i + offset));
        self.files.extend(other.files);
    }
}

/// sha256 over (split, label, file name, content hash) of every file: identifies the training data.
pub fn fingerprint(root: &Path, splits: &[&str]) -> anyhow::Result<String> {
    let mut text = String::new();
    for split in splits {
        for (path, fake) in list_split(&root.join(split))? {
            let content = std::fs::read(&path).map(|b| sha256_hex(&b)).unwrap_or_else(|_| "unreadable".into());
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            text.push_str(&format!("{split}/{}/{name}/{content}\n", if fake { "fake" } else { "real" }));
        }
    }
    Ok(sha256_hex(text.as_bytes()))
}

/// How many files and segments a loaded split has, and which files were skipped (and why).
#[derive(Debug, serde::Serialize)]
pub struct SplitCounts {
    pub files: usize,
    pub segments: usize,
    pub real: usize,
    pub fake: usize,
    pub skipped: Vec<String>,
}

impl SplitCounts {
    pub fn of(data: &SplitData, skipped: &[Skipped]) -> Self {
        let fake = data.labels.iter().filter(|l| **l).count();
        SplitCounts {
            files: data.files.len(),
            segments: data.len(),
            real: data.len() - fake,
            fake,
            skipped: skipped.iter().map(|s| format!("{}: {}", s.path.display(), s.reason)).collect(),
        }
    }
}

/// `N files, N segments (N real, N fake), N skipped`, then one `  skipped <file>: <why>` line
/// per skipped file: how `fit` and `import` print a split.
impl std::fmt::Display for SplitCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {} segments ({} real, {} fake), {} skipped",
            self.files,
            self.segments,
            self.real,
            self.fake,
            self.skipped.len()
        )?;
        self.skipped.iter().try_for_each(|k| write!(f, "\n  skipped {k}"))
    }
}

/// Whether the dataset at `data` asks for real sources balanced by weight in training: its
/// `corpus.json` (written by `vericlip-train corpus`) says `"balance_real_sources": true`. A
/// dataset without the file, or with an older one, trains as before.
pub fn balances_real_sources(data: &Path) -> anyhow::Result<bool> {
    let path = data.join("corpus.json");
    let Ok(bytes) = std::fs::read(&path) else { return Ok(false) };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(json.get("balance_real_sources").and_then(serde_json::Value::as_bool).unwrap_or(false))
}

/// Most times one real segment may be drawn per epoch: a source of a handful of clips is not
/// repeated into memorization (its share stays below the others' then).
pub const MAX_REPEATS: f64 = 8.0;

/// The order of one training epoch, drawn from `rng`. Without [`SplitData::balance_real`] a
/// shuffle of `order` in place (every segment once, as always). With it, each segment is drawn
/// `floor(w)` times plus once more with probability `frac(w)`, its weight `w` being such that
/// every real source has the same expected total (capped at [`MAX_REPEATS`] per segment) and
/// the reals together as much as the fakes (each fake weight 1): a language folder of 12 clips
/// counts as much as an IVR speaker of 400, and a split with more fakes than reals is balanced.
pub fn epoch_order(data: &SplitData, order: &mut Vec<usize>, rng: &mut crate::rng::Rng) {
    if !data.balance_real {
        rng.shuffle(order);
        return;
    }
    let mut per_source: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (l, s) in data.labels.iter().zip(&data.sources) {
        if !*l {
            *per_source.entry(s.as_str()).or_default() += 1;
        }
    }
    let fakes = data.labels.iter().filter(|l| **l).count();
    let reals = data.len() - fakes;
    // Each source's share of the real total, then scaled so the reals weigh as much as the fakes
    // (as much as they are when there are no fakes).
    let per_group = reals as f64 / per_source.len().max(1) as f64;
    let raw = |s: &str| (per_group / per_source[s] as f64).min(MAX_REPEATS);
    let raw_total: f64 = per_source.iter().map(|(s, n)| raw(s) * *n as f64).sum();
    let target = if fakes > 0 { fakes as f64 } else { reals as f64 };
    let scale = if raw_total > 0.0 { target / raw_total } else { 1.0 };
    order.clear();
    for i in 0..data.len() {
        let w = if data.labels[i] { 1.0 } else { (raw(&data.sources[i]) * scale).min(MAX_REPEATS) };
        let times = w.floor() as usize + usize::from(rng.uniform() < w.fract());
        order.extend(std::iter::repeat_n(i, times));
    }
    rng.shuffle(order);
}

/// Loads the named splits of a for-2sec dataset (`<data>/<split>/{real,fake}/...`), logging what
/// each holds and each skipped file: the one loader of `fit`, `import` and `loeo`. A missing
/// split folder, or a split without both real and fake audio, is an error that says so.
pub fn load_splits(
    data: &Path,
    names: &[&'static str],
    ex: &FeatureExtractor,
    cache: &FeatureCache,
    progress: bool,
) -> anyhow::Result<std::collections::BTreeMap<&'static str, (SplitData, SplitCounts)>> {
    let mut out = std::collections::BTreeMap::new();
    let balance = balances_real_sources(data)?;
    for &split in names {
        let dir = data.join(split);
        if !dir.is_dir() {
            anyhow::bail!(
                "{} has no {split}/ folder (expected the for-2sec layout: training|validation|testing / real|fake / files)",
                data.display()
            );
        }
        let (d, skipped) = load_split(&dir, ex, cache, progress)?;
        for s in &skipped {
            tracing::warn!(file = %s.path.display(), reason = %s.reason, "skipped unreadable file");
        }
        let c = SplitCounts::of(&d, &skipped);
        tracing::info!(
            split,
            files = c.files,
            segments = c.segments,
            real = c.real,
            fake = c.fake,
            skipped = c.skipped.len(),
            "loaded"
        );
        if c.real == 0 || c.fake == 0 {
            anyhow::bail!("{split}: needs both real and fake audio (found {} real, {} fake segments)", c.real, c.fake);
        }
        let mut d = d;
        d.balance_real = split == "training" && balance;
        if d.balance_real {
            tracing::info!(split, "real sources balanced by weight (corpus.json)");
        }
        out.insert(split, (d, c));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rng::Rng;

    /// A split of `reals` (source, segments) and `fakes` fake segments, one feature each.
    fn split(reals: &[(&str, usize)], fakes: usize, balance_real: bool) -> SplitData {
        let mut d = SplitData { frames: 1, n_features: 1, balance_real, ..SplitData::default() };
        for (source, n) in reals {
            for i in 0..*n {
                d.push_file(PathBuf::from(format!("{source}__{i:05}_0.wav")), false, &[0.0]);
            }
        }
        for i in 0..fakes {
            d.push_file(PathBuf::from(format!("espeak_train__wb__x_{i:05}_0.wav")), true, &[0.0]);
        }
        d
    }

    #[test]
    fn unbalanced_epochs_are_the_plain_shuffle() {
        let d = split(&[("a", 30), ("b", 3)], 50, false);
        let (mut order, mut rng) = ((0..d.len()).collect::<Vec<_>>(), Rng::new(4));
        epoch_order(&d, &mut order, &mut rng);
        let mut plain: Vec<usize> = (0..d.len()).collect();
        Rng::new(4).shuffle(&mut plain);
        assert_eq!(order, plain, "an unbalanced split must train exactly as before");
    }

    #[test]
    fn balanced_epochs_weigh_every_real_source_alike_and_reals_as_fakes() {
        let d = split(&[("big", 400), ("mid", 100), ("small", 60)], 900, true);
        let mut rng = Rng::new(5);
        let (mut counts, epochs) = (BTreeMap::<String, f64>::new(), 40);
        let mut order = Vec::new();
        for _ in 0..epochs {
            epoch_order(&d, &mut order, &mut rng);
            for &i in &order {
                let key = if d.labels[i] { "fake".to_string() } else { d.sources[i].clone() };
                *counts.entry(key).or_default() += 1.0 / f64::from(epochs);
            }
        }
        // Each real source ~300 draws per epoch (900 fakes / 3 sources), the fakes 900.
        for s in ["big", "mid", "small"] {
            assert!((counts[s] - 300.0).abs() < 15.0, "{s}: {counts:?}");
        }
        assert!((counts["fake"] - 900.0).abs() < 1e-9, "{counts:?}");
        // A source of 2 clips is capped at MAX_REPEATS draws per clip, not blown up to 300.
        let d = split(&[("big", 400), ("tiny", 2)], 400, true);
        epoch_order(&d, &mut order, &mut rng);
        let tiny = order.iter().filter(|&&i| d.sources[i] == "tiny").count();
        assert!(tiny as f64 <= 2.0 * MAX_REPEATS, "{tiny}");
    }

    #[test]
    fn the_loader_balances_only_when_the_corpus_asks() {
        let dir = std::env::temp_dir().join(format!("vericlip-balance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!balances_real_sources(&dir).unwrap(), "no corpus.json: trains as before");
        std::fs::write(dir.join("corpus.json"), r#"{"mode": "full"}"#).unwrap();
        assert!(!balances_real_sources(&dir).unwrap());
        std::fs::write(dir.join("corpus.json"), r#"{"balance_real_sources": true}"#).unwrap();
        assert!(balances_real_sources(&dir).unwrap());
        std::fs::write(dir.join("corpus.json"), "not json").unwrap();
        assert!(balances_real_sources(&dir).unwrap_err().to_string().contains("corpus.json"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
