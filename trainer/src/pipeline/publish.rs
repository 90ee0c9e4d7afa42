//! Stages `publish` and `report`: the model, its manifest and the report's plots published
//! atomically as the next free version; then `report/metrics.json` (the command's summary),
//! written once the version is known so it names the real version and folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use vericlip_core::registry::{self, Manifest, Published, REPORT_DIR};

use crate::data::SplitData;
use crate::eval::plots;
use crate::model::train::EpochStats;

/// The report's plots: the test ROC, the training curves (when there was training) and one ROC
/// per fake engine family of the test split.
pub fn plots(
    test_scores: &[f32],
    test: &SplitData,
    history: Option<&[EpochStats]>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![("roc.png".to_string(), plots::roc_png(test_scores, &test.labels)?)];
    if let Some(h) = history {
        out.push(("training.png".to_string(), plots::training_png(h)?));
    }
    out.extend(plots::family_roc_pngs(test_scores, test)?);
    Ok(out)
}

/// What was published: the head of `fit`'s and `import`'s summaries.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub name: String,
    pub version: u64,
    pub dir: PathBuf,
    pub threshold: f64,
}

/// Publishes `onnx` with `manifest` and the `plots` as the next version of the manifest's name.
pub fn publish(
    registry: &Path,
    manifest: Manifest,
    onnx: &[u8],
    plots: &[(String, Vec<u8>)],
) -> anyhow::Result<Release> {
    let threshold = manifest.threshold;
    let report: Vec<(&str, Vec<u8>)> = plots.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let Published { name, version, dir } = registry::publish(registry, manifest, onnx, &report)?;
    Ok(Release { name, version, dir, threshold })
}

/// Writes `summary` as `report/metrics.json` of the published version (write, fsync, rename:
/// never a partial file). Only `model.onnx` is checksummed; the report is not served.
pub fn report(release: &Release, summary: &impl Serialize) -> anyhow::Result<()> {
    let dir = release.dir.join(REPORT_DIR);
    let (tmp, path) = (dir.join(".metrics.json.tmp"), dir.join("metrics.json"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(summary)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().with_context(|| format!("writing {}", path.display()))
}
