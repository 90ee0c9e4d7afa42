//! Scoring through ONNX Runtime (exactly the service's path) and metrics with a per-source
//! breakdown. Clip-level decisions equal segment-level ones for 2 s clips; longer files are
//! scored per segment.

pub mod plots;

use std::collections::BTreeMap;

use ndarray::ArrayView3;
use serde::Serialize;
use vericlip_core::metrics::{self, Metrics};
use vericlip_core::runtime::ModelSession;

use crate::data::SplitData;

/// Segments per ORT run.
const BATCH: usize = 64;

/// P(fake) for every segment of `data` (features must already be normalized).
pub fn score(session: &mut ModelSession, data: &SplitData) -> anyhow::Result<Vec<f32>> {
    let seg = data.frames * data.n_features;
    let mut out = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(BATCH) {
        let n = BATCH.min(data.len() - start);
        let view =
            ArrayView3::from_shape((n, data.frames, data.n_features), &data.features[start * seg..(start + n) * seg])?;
        out.extend(session.run(view)?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub overall: Metrics,
    pub per_source: BTreeMap<String, Metrics>,
    /// Per fake engine family (`loeo::family_of`): that family's fakes against every real
    /// segment of the split, at the same threshold. The detector's number for an engine is this
    /// EER when the engine was left out of training (`vericlip-train loeo`).
    pub per_family: BTreeMap<String, FamilyMetrics>,
    /// Per-segment scores, when asked for (`eval --files`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentScore>,
}

/// One fake engine family against all reals of the split.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyMetrics {
    /// On the family's fake segments plus every real segment (`n = fakes + reals`).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// The family's fake segments.
    pub fakes: u64,
    /// Real segments of the split (the same for every family).
    pub reals: u64,
    /// Share of the family's fakes called fake at the threshold (= recall).
    pub detection_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentScore {
    pub file: String,
    /// Segment index within the file (2 s each).
    pub segment: usize,
    pub label: &'static str,
    pub fake_score: f32,
    pub verdict: &'static str,
}

fn label(fake: bool) -> &'static str {
    if fake { "fake" } else { "real" }
}

/// Every segment's score and verdict, in file order.
pub fn segment_scores(scores: &[f32], data: &SplitData, threshold: f64) -> Vec<SegmentScore> {
    let mut seen = vec![0usize; data.files.len()];
    scores
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let f = data.file_of[i];
            seen[f] += 1;
            SegmentScore {
                file: data.files[f].display().to_string(),
                segment: seen[f] - 1,
                label: label(data.labels[i]),
                fake_score: s,
                verdict: label(f64::from(s) >= threshold),
            }
        })
        .collect()
}

/// Per-segment rows for people.
pub fn segment_table(rows: &[SegmentScore]) -> String {
    let mut s = format!("{:<56}{:>4}{:>7}{:>12}{:>9}\n", "file", "seg", "label", "fake_score", "verdict");
    for r in rows {
        // Characters, not bytes: a byte slice could split a multi-byte character in a file name.
        let n = r.file.chars().count();
        let name =
            if n > 55 { format!("...{}", r.file.chars().skip(n - 52).collect::<String>()) } else { r.file.clone() };
        s.push_str(&format!("{name:<56}{:>4}{:>7}{:>12.4}{:>9}\n", r.segment, r.label, r.fake_score, r.verdict));
    }
    s
}

pub fn evaluate(scores: &[f32], data: &SplitData, threshold: f64) -> Evaluation {
    let overall = metrics::metrics(scores, &data.labels, threshold);
    let mut groups: BTreeMap<&str, (Vec<f32>, Vec<bool>)> = BTreeMap::new();
    for ((s, l), src) in scores.iter().zip(&data.labels).zip(&data.sources) {
        let g = groups.entry(src.as_str()).or_default();
        g.0.push(*s);
        g.1.push(*l);
    }
    let per_source =
        groups.into_iter().map(|(k, (s, l))| (k.to_string(), metrics::metrics(&s, &l, threshold))).collect();
    Evaluation { overall, per_source, per_family: per_family(scores, data, threshold), segments: Vec::new() }
}

/// Metrics per fake engine family, each against all real segments.
pub fn per_family(scores: &[f32], data: &SplitData, threshold: f64) -> BTreeMap<String, FamilyMetrics> {
    let families = crate::data::file_families(data);
    let reals: Vec<f32> = scores.iter().zip(&data.labels).filter(|(_, l)| !**l).map(|(s, _)| *s).collect();
    let mut fakes: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for (i, (s, l)) in scores.iter().zip(&data.labels).enumerate() {
        if *l {
            fakes.entry(families[data.file_of[i]].as_str()).or_default().push(*s);
        }
    }
    fakes
        .into_iter()
        .map(|(family, f)| {
            let labels: Vec<bool> = f.iter().map(|_| true).chain(reals.iter().map(|_| false)).collect();
            let all: Vec<f32> = f.iter().chain(&reals).copied().collect();
            let metrics = metrics::metrics(&all, &labels, threshold);
            let c = metrics.confusion;
            let detection_rate = if f.is_empty() { 0.0 } else { c.tp as f64 / f.len() as f64 };
            (
                family.to_string(),
                FamilyMetrics { metrics, fakes: f.len() as u64, reals: reals.len() as u64, detection_rate },
            )
        })
        .collect()
}

/// A fixed-width table for people.
pub fn table(e: &Evaluation) -> String {
    let row = |name: &str, m: &Metrics| {
        let opt = |v: Option<f64>| v.map_or("    -".to_string(), |v| format!("{:5.1}", 100.0 * v));
        format!(
            "{name:<28}{:>6}{:>8.1}{:>8.1}{:>8.1}{:>8.1}{:>7}{:>7}   {}/{}/{}/{}\n",
            m.n,
            100.0 * m.accuracy,
            100.0 * m.precision,
            100.0 * m.recall,
            100.0 * m.f1,
            opt(m.eer),
            opt(m.auc),
            m.confusion.tp,
            m.confusion.fp,
            m.confusion.tn,
            m.confusion.fn_
        )
    };
    let mut s = format!(
        "{:<28}{:>6}{:>8}{:>8}{:>8}{:>8}{:>7}{:>7}   tp/fp/tn/fn   (threshold {:.4}; %)\n",
        "source", "n", "acc", "prec", "recall", "f1", "eer", "auc", e.overall.threshold
    );
    s.push_str(&row("all", &e.overall));
    for (k, m) in &e.per_source {
        s.push_str(&row(k, m));
    }
    if !e.per_family.is_empty() {
        s.push_str(&format!(
            "\n{:<28}{:>6}{:>6}{:>8}{:>8}{:>7}{:>7}   (each fake family vs all reals; %)\n",
            "fake family", "fakes", "reals", "acc", "detect", "eer", "auc"
        ));
        for (k, f) in &e.per_family {
            let opt = |v: Option<f64>| v.map_or("    -".to_string(), |v| format!("{:5.1}", 100.0 * v));
            s.push_str(&format!(
                "{k:<28}{:>6}{:>6}{:>8.1}{:>8.1}{:>7}{:>7}\n",
                f.fakes,
                f.reals,
                100.0 * f.metrics.accuracy,
                100.0 * f.detection_rate,
                opt(f.metrics.eer),
                opt(f.metrics.auc)
            ));
        }
    }
    s
}
