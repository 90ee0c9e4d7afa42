//! Binary-classification metrics with "fake" as the positive class: confusion counts, accuracy,
//! precision, recall, F1 at a threshold, ROC AUC, and the equal error rate with its threshold.
//! A segment or clip is called fake when its score is `>= threshold`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Everything the trainer and `eval` report. JSON keys are part of the CLI contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// `None` when a class is missing (e.g. a per-source breakdown of fakes only).
    pub eer: Option<f64>,
    pub auc: Option<f64>,
    pub threshold: f64,
    pub confusion: Confusion,
    pub n: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Confusion counts at `threshold`. `labels[i]` is true for fake.
pub fn confusion(scores: &[f32], labels: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion::default();
    for (&s, &fake) in scores.iter().zip(labels) {
        match (f64::from(s) >= threshold, fake) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// ROC AUC as the probability that a random fake scores above a random real (ties count half):
/// the Mann-Whitney statistic, exact for tied scores. `None` when a class is missing.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (n_pos, n_neg) = (labels.iter().filter(|l| **l).count(), labels.iter().filter(|l| !**l).count());
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Sum of (average) ranks of the positives.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0; // ranks i+1 ..= j
        rank_sum += avg_rank * pairs[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// ROC points `(threshold, false-positive rate, false-negative rate)` for every distinct score,
/// from the highest threshold down.
pub fn roc(scores: &[f32], labels: &[bool]) -> Vec<(f64, f64, f64)> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_pos = labels.iter().filter(|l| **l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut out = vec![(f64::INFINITY, 0.0, 1.0)];
    let mut i = 0;
    while i < pairs.len() {
        let t = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == t {
            if pairs[i].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        out.push((f64::from(t), fp / n_neg.max(1.0), 1.0 - tp / n_pos.max(1.0)));
    }
    out
}

/// Equal error rate and the threshold where false-positive and false-negative rates cross
/// (linear interpolation between the two ROC points around the crossing). `None` when a class
/// is missing.
pub fn eer(scores: &[f32], labels: &[bool]) -> Option<(f64, f64)> {
    if !labels.iter().any(|l| *l) || labels.iter().all(|l| *l) {
        return None;
    }
    let points = roc(scores, labels);
    // FPR rises and FNR falls as the threshold drops; find the first point with FPR >= FNR.
    let k = points.iter().position(|p| p.1 >= p.2)?;
    if k == 0 {
        return Some((0.0, points[1].0));
    }
    let (a, b) = (points[k - 1], points[k]);
    let (da, db) = (a.2 - a.1, b.2 - b.1); // FNR - FPR: positive before, <= 0 at k
    let w = if (da - db).abs() > 0.0 { da / (da - db) } else { 0.0 };
    let eer = (a.1 + w * (b.1 - a.1) + a.2 + w * (b.2 - a.2)) / 2.0;
    // The crossing lies between two score levels; the lower one is the threshold that attains it.
    Some((eer, b.0))
}

/// All metrics at a given threshold (EER and AUC are threshold-free).
pub fn metrics(scores: &[f32], labels: &[bool], threshold: f64) -> Metrics {
    let c = confusion(scores, labels, threshold);
    let (precision, recall) = (ratio(c.tp, c.tp + c.fp), ratio(c.tp, c.tp + c.fn_));
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    Metrics {
        accuracy: ratio(c.tp + c.tn, scores.len() as u64),
        precision,
        recall,
        f1,
        eer: eer(scores, labels).map(|e| e.0),
        auc: auc(scores, labels),
        threshold,
        confusion: c,
        n: scores.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_confusion_and_rates() {
        // fake: 0.9 0.8 0.3 | real: 0.6 0.2 0.1 0.05
        let scores = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.05];
        let labels = [true, true, true, false, false, false, false];
        let m = metrics(&scores, &labels, 0.5);
        assert_eq!(m.confusion, Confusion { tp: 2, fp: 1, tn: 3, fn_: 1 });
        assert!((m.accuracy - 5.0 / 7.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        // Pairs fake>real: 0.9,0.8 beat all 4; 0.3 beats 3 -> 11 of 12.
        assert!((m.auc.unwrap() - 11.0 / 12.0).abs() < 1e-12);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["confusion"]["fn"], 1);
    }

    #[test]
    fn eer_of_separable_and_random_scores() {
        let (e, t) = eer(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!(e, 0.0);
        assert!(t > 0.2 && t <= f64::from(0.8f32), "threshold {t}");
        // Identical scores: the classifier knows nothing, EER 50 %, AUC 0.5.
        let (e, _) = eer(&[0.5; 6], &[true, false, true, false, true, false]).unwrap();
        assert!((e - 0.5).abs() < 1e-12, "{e}");
        assert_eq!(auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(eer(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn eer_threshold_balances_the_error_rates() {
        // 100 reals ~ i/100, 100 fakes ~ 0.3 + i/100: overlap in [0.3, 1.0).
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            scores.push(i as f32 / 100.0);
            labels.push(false);
            scores.push(0.3 + i as f32 / 100.0);
            labels.push(true);
        }
        let (e, t) = eer(&scores, &labels).unwrap();
        let c = confusion(&scores, &labels, t);
        let (fpr, fnr) = (c.fp as f64 / 100.0, c.fn_ as f64 / 100.0);
        assert!((e - 0.35).abs() < 0.011, "eer {e}");
        assert!((fpr - fnr).abs() <= 0.02, "fpr {fpr} fnr {fnr} at {t}");
    }
}
