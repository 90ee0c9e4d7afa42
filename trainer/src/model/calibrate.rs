//! Score calibration (Platt scaling), fitted on the validation split.
//!
//! A network's sigmoid output is a ranking, not a probability: after early stopping it is often
//! over-confident on data like its training set and under-confident elsewhere. Platt scaling fits
//! `p = sigmoid(a * z + c)` on the validation segments' logits `z` (two parameters, so it cannot
//! over-fit a few thousand segments) and is folded into the model's last dense layer (`w *= a`,
//! `b = a * b + c`), so the exported ONNX graph itself outputs the calibrated probability: every
//! consumer (server, `eval`, `import`) reads the same number, with no runtime change.
//!
//! Meaning: `fake_score` estimates P(fake | segment) for audio like the validation split, with
//! real and fake equally likely a priori (the corpus is balanced per split). With another base
//! rate the odds scale by it; the decision threshold is chosen separately (equal-error point).

use serde::Serialize;

/// `p = sigmoid(a * z + c)` applied to a logit `z`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Platt {
    pub a: f64,
    pub c: f64,
}

impl Platt {
    pub const IDENTITY: Platt = Platt { a: 1.0, c: 0.0 };

    pub fn apply(&self, z: f64) -> f64 {
        sigmoid(self.a * z + self.c)
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The logit of a probability, clamped away from 0 and 1 (float32 outputs saturate).
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

/// Fits Platt scaling by Newton's method on the log loss, with Platt's smoothed targets
/// (`(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`), which keep the fit finite when the classes are
/// separable. Identity when one class is missing.
pub fn fit_platt(logits: &[f64], fake: &[bool]) -> Platt {
    let pos = fake.iter().filter(|&&f| f).count() as f64;
    let neg = fake.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Platt::IDENTITY;
    }
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let (mut a, mut c) = (1.0f64, 0.0f64);
    let loss = |a: f64, c: f64| -> f64 {
        logits
            .iter()
            .zip(fake)
            .map(|(&z, &f)| {
                let t = if f { hi } else { lo };
                let s = a * z + c;
                // t * -log(sigmoid(s)) + (1 - t) * -log(1 - sigmoid(s)), stable.
                s.max(0.0) - t * s + (-s.abs()).exp().ln_1p()
            })
            .sum()
    };
    let mut current = loss(a, c);
    for _ in 0..100 {
        let (mut ga, mut gc, mut haa, mut hac, mut hcc) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&z, &f) in logits.iter().zip(fake) {
            let t = if f { hi } else { lo };
            let p = sigmoid(a * z + c);
            let (d, w) = (p - t, p * (1.0 - p));
            ga += d * z;
            gc += d;
            haa += w * z * z;
            hac += w * z;
            hcc += w;
        }
        let det = haa * hcc - hac * hac;
        if det.abs() < 1e-18 {
            break;
        }
        let (da, dc) = ((hcc * ga - hac * gc) / det, (haa * gc - hac * ga) / det);
        // Backtracking: Newton steps can overshoot on nearly separable data.
        let mut step = 1.0;
        let mut next = loss(a - da, c - dc);
        while next > current && step > 1e-6 {
            step /= 2.0;
            next = loss(a - step * da, c - step * dc);
        }
        if next > current {
            break;
        }
        a -= step * da;
        c -= step * dc;
        let done = (current - next).abs() < 1e-10 * current.max(1.0);
        current = next;
        if done {
            break;
        }
    }
    Platt { a, c }
}

/// Expected calibration error over 10 equal-width bins: the mean gap between predicted
/// probability and observed fake rate, weighted by bin size.
pub fn ece(probs: &[f64], fake: &[bool]) -> f64 {
    const BINS: usize = 10;
    let mut sum_p = [0.0; BINS];
    let mut sum_y = [0.0; BINS];
    let mut n = [0usize; BINS];
    for (&p, &f) in probs.iter().zip(fake) {
        let b = ((p * BINS as f64) as usize).min(BINS - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(f));
        n[b] += 1;
    }
    let total = probs.len().max(1) as f64;
    (0..BINS).filter(|&b| n[b] > 0).map(|b| (sum_p[b] - sum_y[b]).abs() / total).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Logits of an over-confident model: the true log-odds times 4, shifted by 1.
    fn overconfident(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| {
                let true_logodds = r.range(-3.0, 3.0);
                let fake = r.uniform() < sigmoid(true_logodds);
                (4.0 * true_logodds + 1.0, fake)
            })
            .unzip()
    }

    #[test]
    fn recovers_the_scaling_of_an_overconfident_model() {
        let (z, y) = overconfident(20_000, 3);
        let p = fit_platt(&z, &y);
        assert!((p.a - 0.25).abs() < 0.02, "{p:?}");
        assert!((p.c + 0.25).abs() < 0.05, "{p:?}");
        let raw: Vec<f64> = z.iter().map(|&v| sigmoid(v)).collect();
        let cal: Vec<f64> = z.iter().map(|&v| p.apply(v)).collect();
        assert!(ece(&cal, &y) < 0.02 && ece(&raw, &y) > 0.05, "{} {}", ece(&cal, &y), ece(&raw, &y));
    }

    #[test]
    fn separable_data_gives_a_finite_monotone_fit() {
        let z = [-5.0, -4.0, -3.0, 3.0, 4.0, 5.0];
        let y = [false, false, false, true, true, true];
        let p = fit_platt(&z, &y);
        assert!(p.a.is_finite() && p.a > 0.0 && p.c.is_finite(), "{p:?}");
        assert!(p.apply(5.0) < 1.0 && p.apply(-5.0) > 0.0);
    }

    #[test]
    fn one_class_is_identity() {
        assert_eq!(fit_platt(&[1.0, 2.0], &[true, true]), Platt::IDENTITY);
    }
}
