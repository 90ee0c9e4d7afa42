//! The LSTM classifier's weights in ONNX layout, and a plain f64 reference forward pass used to
//! check that ONNX Runtime computes exactly what the trainer means.

use ndarray::ArrayView3;
use serde::Serialize;

/// How the LSTM's outputs over the frames become the one vector the dense layer scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// The final hidden state (with a BiLSTM: the forward direction's last state and the
    /// backward direction's state after the whole sequence, i.e. at the first frame).
    #[default]
    Last,
    /// The mean of the hidden states over all frames.
    Mean,
    /// Attention pooling: a score `v . tanh(A h_t + a)` per frame, softmax over the frames,
    /// the score-weighted sum of the hidden states.
    Attention,
}

impl Head {
    pub fn name(self) -> &'static str {
        match self {
            Head::Last => "last",
            Head::Mean => "mean",
            Head::Attention => "attention",
        }
    }
}

/// One-layer LSTM (optionally bidirectional) over the frame sequence, a pooling head over its
/// outputs, then dense + sigmoid. Gate blocks in ONNX order i, o, f, c. `D` below is the number
/// of directions (1, or 2 when `bidirectional`: forward first, then backward); with `D = 1` and
/// `Head::Last` this is the original model and its field layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmClassifierWeights {
    pub input: usize,
    pub hidden: usize,
    /// `[D, 4H, F]` row-major.
    pub w: Vec<f32>,
    /// `[D, 4H, H]` row-major.
    pub r: Vec<f32>,
    /// `[D, 8H]`: per direction, input biases (i, o, f, c) then recurrent biases (i, o, f, c).
    pub b: Vec<f32>,
    /// `[D * H]`: weights of the pooled vector (forward direction's `H` values first).
    pub dense_w: Vec<f32>,
    pub dense_b: f32,
    /// Subtract each segment's mean frame (over time, per feature) before the LSTM: cepstral
    /// mean normalization, which removes stationary channel coloration (microphone, codec, line).
    pub segment_mean_norm: bool,
    pub head: Head,
    pub bidirectional: bool,
    /// Attention pooling only (empty otherwise): `A` `[K, D * H]` row-major.
    pub attn_w: Vec<f32>,
    /// Attention pooling only: `a` `[K]`.
    pub attn_b: Vec<f32>,
    /// Attention pooling only: `v` `[K]`.
    pub attn_v: Vec<f32>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl LstmClassifierWeights {
    /// Folds Platt scaling `sigmoid(a * z + c)` into the dense layer (its output is the logit
    /// `z`), so the exported graph outputs calibrated probabilities.
    pub fn calibrate(&mut self, platt: crate::calibrate::Platt) {
        for w in &mut self.dense_w {
            *w = (f64::from(*w) * platt.a) as f32;
        }
        self.dense_b = (f64::from(self.dense_b) * platt.a + platt.c) as f32;
    }

    /// Deterministic small pseudo-random weights (tests, smoke checks): last-state head,
    /// unidirectional.
    pub fn seeded(input: usize, hidden: usize, seed: u64) -> Self {
        Self::seeded_with(input, hidden, Head::Last, false, seed)
    }

    /// Deterministic small pseudo-random weights for any head (attention dimension = hidden).
    /// For `Head::Last` unidirectional it draws exactly what `seeded` always drew.
    pub fn seeded_with(input: usize, hidden: usize, head: Head, bidirectional: bool, seed: u64) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        let mut next = |scale: f32| rng.range(-f64::from(scale), f64::from(scale)) as f32;
        let s = 1.0 / (hidden as f32).sqrt();
        let d = if bidirectional { 2 } else { 1 };
        let w = (0..d * 4 * hidden * input).map(|_| next(s)).collect();
        let r = (0..d * 4 * hidden * hidden).map(|_| next(s)).collect();
        let b = (0..d * 8 * hidden).map(|_| next(s)).collect();
        let dense_w = (0..d * hidden).map(|_| next(s)).collect();
        let dense_b = next(0.1);
        let (k, width) = if head == Head::Attention { (hidden, d * hidden) } else { (0, 0) };
        let attn_w = (0..k * width).map(|_| next(s)).collect();
        let attn_b = (0..k).map(|_| next(s)).collect();
        let attn_v = (0..k).map(|_| next(1.0)).collect();
        Self {
            input,
            hidden,
            w,
            r,
            b,
            dense_w,
            dense_b,
            segment_mean_norm: false,
            head,
            bidirectional,
            attn_w,
            attn_b,
            attn_v,
        }
    }

    /// Number of LSTM directions (`D`).
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Attention dimension `K` (0 without attention pooling).
    pub fn attention_dim(&self) -> usize {
        self.attn_b.len()
    }

    /// One line for manifests and reports: what the model computes after the LSTM.
    pub fn describe_head(head: Head, bidirectional: bool) -> String {
        let lstm = if bidirectional { "bidirectional LSTM" } else { "LSTM" };
        let pooled = match (head, bidirectional) {
            (Head::Last, false) => "the last hidden state".to_string(),
            (Head::Last, true) => "[forward last state, backward last state]".to_string(),
            (Head::Mean, _) => format!("the mean over frames of the {lstm} outputs"),
            (Head::Attention, _) => {
                format!("attention pooling of the {lstm} outputs (score v.tanh(A h_t + a), softmax over frames)")
            }
        };
        let width = if bidirectional { "2 x hidden" } else { "hidden" };
        format!("dense({width} -> 1) + sigmoid on {pooled}")
    }

    /// Checks that every array has the length its shape says.
    pub fn check(&self) -> Result<(), String> {
        let (d, h, f, k) = (self.directions(), self.hidden, self.input, self.attention_dim());
        let want = [
            ("w", self.w.len(), d * 4 * h * f),
            ("r", self.r.len(), d * 4 * h * h),
            ("b", self.b.len(), d * 8 * h),
            ("dense_w", self.dense_w.len(), d * h),
            ("attn_w", self.attn_w.len(), k * d * h),
            ("attn_v", self.attn_v.len(), k),
        ];
        for (name, got, want) in want {
            if got != want {
                return Err(format!("{name} holds {got} values, the shape says {want}"));
            }
        }
        match (self.head, k) {
            (Head::Attention, 0) => Err("attention pooling without attention weights".into()),
            (Head::Last | Head::Mean, k) if k > 0 => Err(format!("{:?} head with attention weights", self.head)),
            _ => Ok(()),
        }
    }

    /// Hidden states of direction `dir` for every frame, in frame order.
    fn run_direction(&self, dir: usize, xs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (hn, f) = (self.hidden, self.input);
        let (w, r) = (&self.w[dir * 4 * hn * f..], &self.r[dir * 4 * hn * hn..]);
        let b = &self.b[dir * 8 * hn..];
        let mut gates = vec![0f64; 4 * hn];
        let (mut h, mut c) = (vec![0f64; hn], vec![0f64; hn]);
        let mut out = vec![Vec::new(); xs.len()];
        let order: Box<dyn Iterator<Item = usize>> =
            if dir == 0 { Box::new(0..xs.len()) } else { Box::new((0..xs.len()).rev()) };
        for t in order {
            let frame = &xs[t];
            for (g, gate) in gates.iter_mut().enumerate() {
                let wx: f64 = (0..f).map(|k| f64::from(w[g * f + k]) * frame[k]).sum();
                let rh: f64 = (0..hn).map(|k| f64::from(r[g * hn + k]) * h[k]).sum();
                *gate = wx + rh + f64::from(b[g]) + f64::from(b[4 * hn + g]);
            }
            for j in 0..hn {
                let (i, o, fg, cc) =
                    (sigmoid(gates[j]), sigmoid(gates[hn + j]), sigmoid(gates[2 * hn + j]), gates[3 * hn + j].tanh());
                c[j] = fg * c[j] + i * cc;
                h[j] = o * c[j].tanh();
            }
            out[t] = h.clone();
        }
        out
    }

    /// The pooled `[D * H]` vector the dense layer scores, from per-direction hidden states.
    fn pool(&self, states: &[Vec<Vec<f64>>]) -> Vec<f64> {
        let frames = states[0].len();
        // Per frame, the concatenation of the directions' hidden states.
        let joined = |t: usize| states.iter().flat_map(|s| s[t].iter().copied()).collect::<Vec<f64>>();
        match self.head {
            Head::Last => {
                let mut v = states[0].last().cloned().unwrap_or_else(|| vec![0.0; self.hidden]);
                if let Some(back) = states.get(1) {
                    v.extend(back.first().cloned().unwrap_or_else(|| vec![0.0; self.hidden]));
                }
                v
            }
            Head::Mean => {
                let mut v = vec![0f64; states.len() * self.hidden];
                for t in 0..frames {
                    v.iter_mut().zip(joined(t)).for_each(|(a, x)| *a += x);
                }
                v.iter().map(|a| a / frames.max(1) as f64).collect()
            }
            Head::Attention => {
                let (k, width) = (self.attention_dim(), states.len() * self.hidden);
                let seq: Vec<Vec<f64>> = (0..frames).map(joined).collect();
                let scores: Vec<f64> = seq
                    .iter()
                    .map(|o| {
                        (0..k)
                            .map(|q| {
                                let z: f64 =
                                    (0..width).map(|j| f64::from(self.attn_w[q * width + j]) * o[j]).sum::<f64>()
                                        + f64::from(self.attn_b[q]);
                                f64::from(self.attn_v[q]) * z.tanh()
                            })
                            .sum()
                    })
                    .collect();
                let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = e.iter().sum();
                let mut v = vec![0f64; width];
                for (o, e) in seq.iter().zip(&e) {
                    v.iter_mut().zip(o).for_each(|(a, x)| *a += e / total * x);
                }
                v
            }
        }
    }

    /// P(fake) for each sequence of a `[batch, frames, F]` input.
    pub fn forward(&self, x: ArrayView3<'_, f32>) -> Vec<f32> {
        let f = self.input;
        let mut out = Vec::with_capacity(x.shape()[0]);
        for seq in x.outer_iter() {
            let frames = seq.shape()[0].max(1) as f64;
            let mean: Vec<f64> = (0..f)
                .map(|k| {
                    if self.segment_mean_norm {
                        seq.column(k).iter().map(|&v| f64::from(v)).sum::<f64>() / frames
                    } else {
                        0.0
                    }
                })
                .collect();
            let xs: Vec<Vec<f64>> =
                seq.outer_iter().map(|frame| (0..f).map(|k| f64::from(frame[k]) - mean[k]).collect()).collect();
            let states: Vec<Vec<Vec<f64>>> = (0..self.directions()).map(|d| self.run_direction(d, &xs)).collect();
            let pooled = self.pool(&states);
            let logit: f64 =
                pooled.iter().zip(&self.dense_w).map(|(a, b)| a * f64::from(*b)).sum::<f64>() + f64::from(self.dense_b);
            out.push(sigmoid(logit) as f32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_weights_have_consistent_shapes_for_every_head() {
        for head in [Head::Last, Head::Mean, Head::Attention] {
            for bi in [false, true] {
                let w = LstmClassifierWeights::seeded_with(5, 3, head, bi, 1);
                w.check().unwrap();
                assert_eq!(w.dense_w.len(), if bi { 6 } else { 3 });
            }
        }
        assert_eq!(
            LstmClassifierWeights::seeded(5, 3, 1),
            LstmClassifierWeights::seeded_with(5, 3, Head::Last, false, 1)
        );
    }

    #[test]
    fn mean_head_of_a_constant_sequence_equals_the_last_state_of_a_memoryless_lstm() {
        // With zero recurrent weights and a closed forget gate every step gives the same h, so
        // last, mean and attention pooling must agree.
        let mut base = LstmClassifierWeights::seeded_with(4, 3, Head::Attention, true, 2);
        base.r.fill(0.0);
        for g in 0..2 {
            // forget-gate input bias very negative in both directions
            base.b[g * 24 + 6..g * 24 + 9].fill(-40.0);
        }
        let x = ndarray::Array3::from_shape_fn((1, 7, 4), |(_, _, f)| f as f32 * 0.3 - 0.4);
        let att = base.forward(x.view());
        let mean =
            LstmClassifierWeights { head: Head::Mean, attn_w: vec![], attn_b: vec![], attn_v: vec![], ..base.clone() }
                .forward(x.view());
        let last = LstmClassifierWeights { head: Head::Last, attn_w: vec![], attn_b: vec![], attn_v: vec![], ..base }
            .forward(x.view());
        assert!((att[0] - mean[0]).abs() < 1e-6 && (mean[0] - last[0]).abs() < 1e-6, "{att:?} {mean:?} {last:?}");
    }
}
