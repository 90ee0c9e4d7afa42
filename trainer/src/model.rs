//! The LSTM classifier's weights in ONNX layout, and a plain f64 reference forward pass used to
//! check that ONNX Runtime computes exactly what the trainer means.

use ndarray::ArrayView3;

/// One-layer LSTM over the frame sequence, then dense + sigmoid on the last hidden state.
/// Gate blocks in ONNX order i, o, f, c.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmClassifierWeights {
    pub input: usize,
    pub hidden: usize,
    /// `[4H, F]` row-major.
    pub w: Vec<f32>,
    /// `[4H, H]` row-major.
    pub r: Vec<f32>,
    /// `[8H]`: input biases (i, o, f, c) then recurrent biases (i, o, f, c).
    pub b: Vec<f32>,
    /// `[H]`.
    pub dense_w: Vec<f32>,
    pub dense_b: f32,
    /// Subtract each segment's mean frame (over time, per feature) before the LSTM: cepstral
    /// mean normalization, which removes stationary channel coloration (microphone, codec, line).
    pub segment_mean_norm: bool,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl LstmClassifierWeights {
    /// Deterministic small pseudo-random weights (tests, smoke checks).
    pub fn seeded(input: usize, hidden: usize, seed: u64) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        let mut next = |scale: f32| rng.range(-f64::from(scale), f64::from(scale)) as f32;
        let s = 1.0 / (hidden as f32).sqrt();
        Self {
            input,
            hidden,
            w: (0..4 * hidden * input).map(|_| next(s)).collect(),
            r: (0..4 * hidden * hidden).map(|_| next(s)).collect(),
            b: (0..8 * hidden).map(|_| next(s)).collect(),
            dense_w: (0..hidden).map(|_| next(s)).collect(),
            dense_b: next(0.1),
            segment_mean_norm: false,
        }
    }

    /// P(fake) for each sequence of a `[batch, frames, F]` input.
    pub fn forward(&self, x: ArrayView3<'_, f32>) -> Vec<f32> {
        let (hn, f) = (self.hidden, self.input);
        let mut out = Vec::with_capacity(x.shape()[0]);
        let mut gates = vec![0f64; 4 * hn];
        for seq in x.outer_iter() {
            let (mut h, mut c) = (vec![0f64; hn], vec![0f64; hn]);
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
            for frame in seq.outer_iter() {
                for (g, gate) in gates.iter_mut().enumerate() {
                    let wx: f64 = (0..f).map(|k| f64::from(self.w[g * f + k]) * (f64::from(frame[k]) - mean[k])).sum();
                    let rh: f64 = (0..hn).map(|k| f64::from(self.r[g * hn + k]) * h[k]).sum();
                    *gate = wx + rh + f64::from(self.b[g]) + f64::from(self.b[4 * hn + g]);
                }
                for j in 0..hn {
                    let (i, o, fg, cc) = (
                        sigmoid(gates[j]),
                        sigmoid(gates[hn + j]),
                        sigmoid(gates[2 * hn + j]),
                        gates[3 * hn + j].tanh(),
                    );
                    c[j] = fg * c[j] + i * cc;
                    h[j] = o * c[j].tanh();
                }
            }
            let logit: f64 =
                h.iter().zip(&self.dense_w).map(|(a, b)| a * f64::from(*b)).sum::<f64>() + f64::from(self.dense_b);
            out.push(sigmoid(logit) as f32);
        }
        out
    }
}
