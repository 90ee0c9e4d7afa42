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
        out.insert(split, (d, c));
    }
    Ok(out)
}
