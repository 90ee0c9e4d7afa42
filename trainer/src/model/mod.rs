//! The LSTM classifier's weights in ONNX layout, and a plain f64 reference forward pass used to
//! check that ONNX Runtime computes exactly what the trainer means; training ([`train`]),
//! calibration ([`calibrate`]), the excitation branch ([`excitation`]) and ONNX export
//! ([`onnx`]) beside them. A new model head goes into [`Head`] (weights and reference forward
//! here, the candle net in [`train`], its graph in [`onnx`]).

pub mod calibrate;
pub mod excitation;
pub mod onnx;
pub mod train;

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

/// A convolution over time in front of the LSTM: `C` output channels, each a `K`-frame window
/// over all `F` input features (zero padding of `(K - 1) / 2` frames at both ends, so it keeps
/// the frame count), then ReLU. It turns a wide frame (e.g. the 257-bin linear log-spectrogram)
/// into `C` learned detectors with a few frames of context before the recurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvFrontEnd {
    pub channels: usize,
    /// Odd: frames each output sees, centred on its own.
    pub kernel: usize,
    /// `[C, F, K]` row-major (ONNX `Conv` weight layout).
    pub w: Vec<f32>,
    /// `[C]`.
    pub b: Vec<f32>,
}

impl ConvFrontEnd {
    /// Frames of zero padding at each end.
    pub fn pad(&self) -> usize {
        (self.kernel - 1) / 2
    }

    /// `relu(b + W * x)` of each frame of `xs` (`[T][F]`), `[T][C]`.
    fn apply(&self, xs: &[Vec<f64>], f: usize) -> Vec<Vec<f64>> {
        let (k, p, t) = (self.kernel, self.pad() as isize, xs.len() as isize);
        (0..t)
            .map(|at| {
                (0..self.channels)
                    .map(|c| {
                        let mut z = f64::from(self.b[c]);
                        for j in 0..k {
                            let src = at + j as isize - p;
                            if (0..t).contains(&src) {
                                let frame = &xs[src as usize];
                                let w = &self.w[c * f * k..];
                                z += (0..f).map(|q| f64::from(w[q * k + j]) * frame[q]).sum::<f64>();
                            }
                        }
                        z.max(0.0)
                    })
                    .collect()
            })
            .collect()
    }
}

/// A second detector beside the LSTM that reads only the excitation block of the features
/// (`FeatureSpec::excitation_order`): per segment, the mean of the residual log-kurtosis column
/// over the loud frames (flag column above `loud_mid`) is compared with real speech's, both
/// ways: a residual peakier than a glottis leaves (pulse-excited vocoders and TTS) or flatter
/// (phase-reconstructing vocoders) raises `logit = slope |stat - center| + bias`, and the
/// segment's logit is the larger of this and the LSTM's (an OR of two detectors). It is fitted
/// on real speech only (`trainer::excitation`): it needs no example of the fakes it flags.
/// All values are in normalized feature units (the graph's input is normalized).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExcitationBranch {
    /// The flag column's 0.5 (halfway between quiet and loud) in normalized units.
    pub loud_mid: f32,
    /// Real speech's segment statistic.
    pub center: f32,
    /// Logit per unit of `|stat - center|` (> 0).
    pub slope: f32,
    pub bias: f32,
}

impl ExcitationBranch {
    /// The segment statistic from `(log-kurtosis, flag)` pairs of its frames: the mean
    /// log-kurtosis of the frames whose flag is above `loud_mid` (the loud ones), 0 when none is
    /// loud (then `|0 - center|` is small: 0 is the training frames' mean). It depends on
    /// `loud_mid` only, which is known (from the normalizer) before the branch is fitted.
    pub fn segment_stat(loud_mid: f32, frames: impl Iterator<Item = (f32, f32)>) -> f64 {
        let (mut sum, mut count) = (0f64, 0f64);
        for (kurt, flag) in frames {
            if flag > loud_mid {
                sum += f64::from(kurt);
                count += 1.0;
            }
        }
        sum / count.max(1.0)
    }

    pub fn logit(&self, stat: f64) -> f64 {
        f64::from(self.slope) * (stat - f64::from(self.center)).abs() + f64::from(self.bias)
    }
}

/// One-layer LSTM (optionally bidirectional, optionally behind a [`ConvFrontEnd`]) over the frame
/// sequence, a pooling head over its outputs, then dense + sigmoid. Gate blocks in ONNX order
/// i, o, f, c. `D` below is the number of directions (1, or 2 when `bidirectional`: forward
/// first, then backward); with `D = 1`, `Head::Last` and no front-end this is the original model
/// and its field layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmClassifierWeights {
    /// Floats per input frame (`F`).
    pub input: usize,
    pub hidden: usize,
    /// `[D, 4H, F']` row-major, where `F'` ([`Self::lstm_input`]) is `F`, or the front-end's
    /// channels when there is one.
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
    /// A convolution over time between the (normalized) input and the LSTM.
    pub conv: Option<ConvFrontEnd>,
    /// The excitation detector: with it the model's input is `input + 2` floats per frame, the
    /// LSTM reads the first `input` and the branch the last two.
    pub excitation: Option<ExcitationBranch>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl LstmClassifierWeights {
    /// Folds Platt scaling `sigmoid(a * z + c)` into the dense layer (its output is the logit
    /// `z`), so the exported graph outputs calibrated probabilities.
    pub fn calibrate(&mut self, platt: crate::model::calibrate::Platt) {
        for w in &mut self.dense_w {
            *w = (f64::from(*w) * platt.a) as f32;
        }
        self.dense_b = (f64::from(self.dense_b) * platt.a + platt.c) as f32;
        // a max(x, y) + c = max(a x + c, a y + c) for a > 0 (Platt's slope on a sane model).
        if let Some(e) = &mut self.excitation {
            e.slope = (f64::from(e.slope) * platt.a) as f32;
            e.bias = (f64::from(e.bias) * platt.a + platt.c) as f32;
        }
    }

    /// Floats per frame of the model's input: the LSTM's, plus the excitation block's two.
    pub fn graph_input(&self) -> usize {
        self.input + if self.excitation.is_some() { 2 } else { 0 }
    }

    /// Deterministic small pseudo-random weights (tests, smoke checks): last-state head,
    /// unidirectional.
    pub fn seeded(input: usize, hidden: usize, seed: u64) -> Self {
        Self::seeded_with(input, hidden, Head::Last, false, seed)
    }

    /// Deterministic small pseudo-random weights for any head (attention dimension = hidden).
    /// For `Head::Last` unidirectional it draws exactly what `seeded` always drew.
    pub fn seeded_with(input: usize, hidden: usize, head: Head, bidirectional: bool, seed: u64) -> Self {
        Self::seeded_conv(input, hidden, head, bidirectional, None, seed)
    }

    /// [`Self::seeded_with`] with a conv front-end of `(channels, kernel)` (drawn after all else).
    pub fn seeded_conv(
        input: usize,
        hidden: usize,
        head: Head,
        bidirectional: bool,
        conv: Option<(usize, usize)>,
        seed: u64,
    ) -> Self {
        let mut rng = crate::rng::Rng::new(seed);
        let mut next = |scale: f32| rng.range(-f64::from(scale), f64::from(scale)) as f32;
        let s = 1.0 / (hidden as f32).sqrt();
        let d = if bidirectional { 2 } else { 1 };
        let lstm_input = conv.map_or(input, |(c, _)| c);
        let w = (0..d * 4 * hidden * lstm_input).map(|_| next(s)).collect();
        let r = (0..d * 4 * hidden * hidden).map(|_| next(s)).collect();
        let b = (0..d * 8 * hidden).map(|_| next(s)).collect();
        let dense_w = (0..d * hidden).map(|_| next(s)).collect();
        let dense_b = next(0.1);
        let (k, width) = if head == Head::Attention { (hidden, d * hidden) } else { (0, 0) };
        let attn_w = (0..k * width).map(|_| next(s)).collect();
        let attn_b = (0..k).map(|_| next(s)).collect();
        let attn_v = (0..k).map(|_| next(1.0)).collect();
        let conv = conv.map(|(channels, kernel)| {
            let sc = 1.0 / ((input * kernel) as f32).sqrt();
            ConvFrontEnd {
                channels,
                kernel,
                w: (0..channels * input * kernel).map(|_| next(sc)).collect(),
                b: (0..channels).map(|_| next(sc)).collect(),
            }
        });
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
            conv,
            excitation: None,
        }
    }

    /// Floats per frame the LSTM reads: the front-end's channels, or the input's.
    pub fn lstm_input(&self) -> usize {
        self.conv.as_ref().map_or(self.input, |c| c.channels)
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
    pub fn describe_head(head: Head, bidirectional: bool, conv: Option<(usize, usize)>) -> String {
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
        let front = match conv {
            Some((c, k)) => format!("; in front of the {lstm}: conv over time ({c} channels, {k} frames) + ReLU"),
            None => String::new(),
        };
        format!("dense({width} -> 1) + sigmoid on {pooled}{front}")
    }

    /// Checks that every array has the length its shape says.
    pub fn check(&self) -> Result<(), String> {
        let (d, h, f, k) = (self.directions(), self.hidden, self.lstm_input(), self.attention_dim());
        if let Some(c) = &self.conv {
            if c.kernel % 2 == 0 || c.channels == 0 {
                return Err(format!("conv front-end: kernel {} must be odd, channels {} > 0", c.kernel, c.channels));
            }
            if c.w.len() != c.channels * self.input * c.kernel || c.b.len() != c.channels {
                return Err(format!(
                    "conv front-end holds {} + {} values, the shape says {} + {}",
                    c.w.len(),
                    c.b.len(),
                    c.channels * self.input * c.kernel,
                    c.channels
                ));
            }
        }
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
        if let Some(e) = &self.excitation
            && !(e.slope > 0.0
                && e.slope.is_finite()
                && e.center.is_finite()
                && e.bias.is_finite()
                && e.loud_mid.is_finite())
        {
            return Err(format!("excitation branch: slope {} must be > 0 and every value finite", e.slope));
        }
        match (self.head, k) {
            (Head::Attention, 0) => Err("attention pooling without attention weights".into()),
            (Head::Last | Head::Mean, k) if k > 0 => Err(format!("{:?} head with attention weights", self.head)),
            _ => Ok(()),
        }
    }

    /// Hidden states of direction `dir` for every frame, in frame order.
    fn run_direction(&self, dir: usize, xs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (hn, f) = (self.hidden, self.lstm_input());
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
            let xs = match &self.conv {
                Some(c) => c.apply(&xs, f),
                None => xs,
            };
            let states: Vec<Vec<Vec<f64>>> = (0..self.directions()).map(|d| self.run_direction(d, &xs)).collect();
            let pooled = self.pool(&states);
            let mut logit: f64 =
                pooled.iter().zip(&self.dense_w).map(|(a, b)| a * f64::from(*b)).sum::<f64>() + f64::from(self.dense_b);
            if let Some(e) = &self.excitation {
                let stat =
                    ExcitationBranch::segment_stat(e.loud_mid, seq.outer_iter().map(|frame| (frame[f], frame[f + 1])));
                logit = logit.max(e.logit(stat));
            }
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

    #[test]
    fn conv_front_end_with_an_identity_centre_tap_is_transparent_to_positive_input() {
        // C = F channels, kernel 3, weight 1 on (channel c, feature c, centre frame) only: ReLU
        // of positive input is the input, so the LSTM sees what it sees without the front-end.
        let plain = LstmClassifierWeights::seeded_with(4, 3, Head::Mean, true, 5);
        let mut w = vec![0f32; 4 * 4 * 3];
        (0..4).for_each(|c| w[(c * 4 + c) * 3 + 1] = 1.0);
        let conv = LstmClassifierWeights {
            conv: Some(ConvFrontEnd { channels: 4, kernel: 3, w, b: vec![0.0; 4] }),
            ..plain.clone()
        };
        conv.check().unwrap();
        let x = ndarray::Array3::from_shape_fn((2, 6, 4), |(b, t, f)| 0.1 + ((b + 3 * t + 5 * f) % 7) as f32 * 0.2);
        assert_eq!(conv.forward(x.view()), plain.forward(x.view()));
        // A tap on the previous frame instead shifts the sequence by one (zero first frame).
        let mut shifted = conv.clone();
        let c = shifted.conv.as_mut().unwrap();
        c.w.fill(0.0);
        (0..4).for_each(|k| c.w[(k * 4 + k) * 3] = 1.0);
        let mut x2 = ndarray::Array3::<f32>::zeros((2, 6, 4));
        x2.slice_mut(ndarray::s![.., 1.., ..]).assign(&x.slice(ndarray::s![.., ..5, ..]));
        assert_eq!(shifted.forward(x.view()), plain.forward(x2.view()));
        // Shapes are checked.
        shifted.conv.as_mut().unwrap().kernel = 2;
        assert!(shifted.check().unwrap_err().contains("odd"));
    }
}
