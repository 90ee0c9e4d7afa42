//! The classifier: one description of the network ([`network::Network`], its layers and their
//! weights in ONNX layout, with the plain f64 reference forward pass), which training
//! ([`train`], candle) and ONNX export ([`onnx`]) both consume; calibration ([`calibrate`]) and
//! the excitation branch ([`excitation`]) beside them. [`LstmRecipe`] is the trainer's LSTM
//! classifier (`--head`, `--bidirectional`, the conv front-end) as a network.

pub mod calibrate;
pub mod excitation;
pub mod network;
pub mod objectives;
pub mod onnx;
pub mod train;

use serde::{Deserialize, Serialize};

use crate::model::network::{Activation, Attention, Conv1d, Layer, Linear, Lstm, LstmOutput, Network};
use crate::rng::Rng;

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

/// A second detector beside the LSTM that reads only the excitation block of the features
/// (`FeatureSpec::excitation_order`): per segment, the mean of the residual log-kurtosis column
/// over the loud frames (flag column above `loud_mid`) is compared with real speech's, both
/// ways: a residual peakier than a glottis leaves (pulse-excited vocoders and TTS) or flatter
/// (phase-reconstructing vocoders) raises `logit = slope |stat - center| + bias`, and the
/// segment's logit is the larger of this and the LSTM's (an OR of two detectors:
/// [`Network::with_excitation`]). It is fitted
/// on real speech only (`trainer::excitation`): it needs no example of the fakes it flags.
/// All values are in normalized feature units (the graph's input is normalized).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// The trainer's LSTM classifier as a [`Network`]: [segment mean normalization] -> [conv over
/// time (`C` channels, `K` frames, zero padding `(K - 1) / 2`) + ReLU] -> one LSTM layer
/// (optionally bidirectional) -> the head's pooling -> dense (-> 1 logit). `D` below is the
/// number of directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LstmRecipe {
    /// Floats per input frame (`F`).
    pub input: usize,
    pub hidden: usize,
    pub head: Head,
    pub bidirectional: bool,
    /// `(channels, kernel)` of the conv front-end.
    pub conv: Option<(usize, usize)>,
    pub segment_mean_norm: bool,
}

/// An [`LstmRecipe`]'s weights, in ONNX layout (as the exported graph names them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LstmWeights {
    /// `lstm_W` `[D, 4H, F']` (`F'`: the conv's channels, or `F`).
    pub w: Vec<f32>,
    /// `lstm_R` `[D, 4H, H]`.
    pub r: Vec<f32>,
    /// `lstm_B` `[D, 8H]`.
    pub b: Vec<f32>,
    /// `dense_W` `[1, D * H]`.
    pub dense_w: Vec<f32>,
    pub dense_b: f32,
    /// Attention only: `A` `[K, D * H]`, `a` `[K]`, `v` `[K]`.
    pub attn: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    /// Conv front-end only: `[C, F, K]`, `[C]`.
    pub conv: Option<(Vec<f32>, Vec<f32>)>,
}

/// `[rows, cols]` row-major -> `[cols, rows]` row-major.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| m[r * cols + c])).collect()
}

impl LstmRecipe {
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// The network holding `p` (lengths are checked by [`Network::check`]).
    pub fn network(&self, p: LstmWeights) -> Network {
        let mut layers = Vec::new();
        if self.segment_mean_norm {
            layers.push(Layer::CenterOverTime);
        }
        if let (Some((out, kernel)), Some((w, b))) = (self.conv, p.conv) {
            layers.push(Layer::Conv1d(Conv1d { out, kernel, w, b }));
            layers.push(Layer::Activation(Activation::Relu));
        }
        let output = if self.head == Head::Last { LstmOutput::Final } else { LstmOutput::Sequence };
        layers.push(Layer::Lstm(Lstm {
            hidden: self.hidden,
            bidirectional: self.bidirectional,
            output,
            w: p.w,
            r: p.r,
            b: p.b,
        }));
        match (self.head, p.attn) {
            (Head::Last, _) => {}
            (Head::Mean, _) => layers.push(Layer::MeanOverTime),
            (Head::Attention, attn) => {
                let (w, b, v) = attn.unwrap_or_default();
                layers.push(Layer::Attention(Attention { w, b, v }));
            }
        }
        layers.push(Layer::Linear(Linear { out: 1, w: p.dense_w, b: vec![p.dense_b] }));
        Network { input: self.input, layers }
    }

    /// The trainer's initial weights, drawn from `rng` in the order the trainer always drew
    /// them (so a seed gives the network it gave before the network had one description):
    /// per direction `W` `[F', 4H]` and `R` `[H, 4H]` (forward `W`, `R`, then the dense
    /// weights, then the backward direction's), attention `A` `[D*H, K]` and `v`, the conv
    /// front-end `[K*F, C]` last; uniform `±1/sqrt(H)`, the conv He-uniform; biases 0 except
    /// the forget gate's 1 (Jozefowicz et al. 2015).
    pub fn init(&self, rng: &mut Rng) -> Network {
        let (h, d) = (self.hidden, self.directions());
        let lstm_input = self.conv.map_or(self.input, |(c, _)| c);
        let s = 1.0 / (h as f64).sqrt();
        let mut uniform = |n: usize| (0..n).map(|_| rng.range(-s, s) as f32).collect::<Vec<f32>>();
        let (w0, r0) = (uniform(lstm_input * 4 * h), uniform(h * 4 * h));
        let dense_w = uniform(d * h);
        let mut dirs = vec![(w0, r0)];
        if self.bidirectional {
            dirs.push((uniform(lstm_input * 4 * h), uniform(h * 4 * h)));
        }
        let attn = (self.head == Head::Attention).then(|| {
            let k = h;
            let a = uniform(d * h * k);
            (transpose(&a, d * h, k), vec![0f32; k], uniform(k))
        });
        let conv = self.conv.map(|(channels, kernel)| {
            let fan_in = self.input * kernel;
            let sc = (6.0 / fan_in as f64).sqrt();
            let m: Vec<f32> = (0..fan_in * channels).map(|_| rng.range(-sc, sc) as f32).collect();
            // `[K*F, C]` -> ONNX `[C, F, K]`.
            let (f, k) = (self.input, kernel);
            let w = (0..channels * f * k).map(|at| m[((at % k) * f + at / k % f) * channels + at / (f * k)]).collect();
            (w, vec![0f32; channels])
        });
        let mut p = LstmWeights { dense_w, attn, conv, ..LstmWeights::default() };
        for (w, r) in dirs {
            p.w.extend(transpose(&w, lstm_input, 4 * h));
            p.r.extend(transpose(&r, h, 4 * h));
            let mut b = vec![0f32; 8 * h];
            b[2 * h..3 * h].fill(1.0);
            p.b.extend(b);
        }
        self.network(p)
    }

    /// Deterministic small pseudo-random weights, biases included (tests, smoke checks;
    /// attention dimension = hidden, the conv front-end drawn after all else).
    pub fn seeded(&self, seed: u64) -> Network {
        let mut rng = Rng::new(seed);
        let mut next = |scale: f32| rng.range(-f64::from(scale), f64::from(scale)) as f32;
        let (h, d) = (self.hidden, self.directions());
        let s = 1.0 / (h as f32).sqrt();
        let lstm_input = self.conv.map_or(self.input, |(c, _)| c);
        let w = (0..d * 4 * h * lstm_input).map(|_| next(s)).collect();
        let r = (0..d * 4 * h * h).map(|_| next(s)).collect();
        let b = (0..d * 8 * h).map(|_| next(s)).collect();
        let dense_w = (0..d * h).map(|_| next(s)).collect();
        let dense_b = next(0.1);
        let attn = (self.head == Head::Attention).then(|| {
            let (k, width) = (h, d * h);
            let aw = (0..k * width).map(|_| next(s)).collect();
            let ab = (0..k).map(|_| next(s)).collect();
            (aw, ab, (0..k).map(|_| next(1.0)).collect())
        });
        let conv = self.conv.map(|(channels, kernel)| {
            let sc = 1.0 / ((self.input * kernel) as f32).sqrt();
            ((0..channels * self.input * kernel).map(|_| next(sc)).collect(), (0..channels).map(|_| next(sc)).collect())
        });
        self.network(LstmWeights { w, r, b, dense_w, dense_b, attn, conv })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::Layer;

    fn recipe(input: usize, hidden: usize, head: Head, bidirectional: bool) -> LstmRecipe {
        LstmRecipe { input, hidden, head, bidirectional, conv: None, segment_mean_norm: false }
    }

    fn lstm_mut(net: &mut Network, mut f: impl FnMut(&mut Lstm)) {
        net.visit_mut(|l| {
            if let Layer::Lstm(l) = l {
                f(l)
            }
        });
    }

    #[test]
    fn seeded_and_initial_networks_are_consistent_for_every_head() {
        for head in [Head::Last, Head::Mean, Head::Attention] {
            for bi in [false, true] {
                for conv in [None, Some((4, 3))] {
                    let r = LstmRecipe { conv, ..recipe(5, 3, head, bi) };
                    r.seeded(1).check().unwrap();
                    r.init(&mut Rng::new(1)).check().unwrap();
                }
            }
        }
    }

    #[test]
    fn mean_head_of_a_constant_sequence_equals_the_last_state_of_a_memoryless_lstm() {
        // With zero recurrent weights and a closed forget gate every step gives the same h, so
        // last, mean and attention pooling must agree.
        let x = ndarray::Array3::from_shape_fn((1, 7, 4), |(_, _, f)| f as f32 * 0.3 - 0.4);
        let probs: Vec<f32> = [Head::Attention, Head::Mean, Head::Last]
            .into_iter()
            .map(|head| {
                let mut net = recipe(4, 3, head, true).seeded(2);
                lstm_mut(&mut net, |l| {
                    l.r.fill(0.0);
                    // forget-gate input bias very negative in both directions
                    (0..2).for_each(|g| l.b[g * 24 + 6..g * 24 + 9].fill(-40.0));
                });
                net.forward(x.view())[0]
            })
            .collect();
        assert!((probs[0] - probs[1]).abs() < 1e-6 && (probs[1] - probs[2]).abs() < 1e-6, "{probs:?}");
    }

    #[test]
    fn conv_front_end_with_an_identity_centre_tap_is_transparent_to_positive_input() {
        // C = F channels, kernel 3, weight 1 on (channel c, feature c, centre frame) only: ReLU
        // of positive input is the input, so the LSTM sees what it sees without the front-end.
        let plain = recipe(4, 3, Head::Mean, true).seeded(5);
        let mut w = vec![0f32; 4 * 4 * 3];
        (0..4).for_each(|c| w[(c * 4 + c) * 3 + 1] = 1.0);
        let mut layers =
            vec![Layer::Conv1d(Conv1d { out: 4, kernel: 3, w, b: vec![0.0; 4] }), Layer::Activation(Activation::Relu)];
        layers.extend(plain.layers.iter().cloned());
        let conv = Network { input: 4, layers };
        conv.check().unwrap();
        let x = ndarray::Array3::from_shape_fn((2, 6, 4), |(b, t, f)| 0.1 + ((b + 3 * t + 5 * f) % 7) as f32 * 0.2);
        assert_eq!(conv.forward(x.view()), plain.forward(x.view()));
        // A tap on the previous frame instead shifts the sequence by one (zero first frame).
        let mut shifted = conv.clone();
        let Layer::Conv1d(c) = &mut shifted.layers[0] else { panic!() };
        c.w.fill(0.0);
        (0..4).for_each(|k| c.w[(k * 4 + k) * 3] = 1.0);
        let mut x2 = ndarray::Array3::<f32>::zeros((2, 6, 4));
        x2.slice_mut(ndarray::s![.., 1.., ..]).assign(&x.slice(ndarray::s![.., ..5, ..]));
        assert_eq!(shifted.forward(x.view()), plain.forward(x2.view()));
        // Shapes are checked.
        let Layer::Conv1d(c) = &mut shifted.layers[0] else { panic!() };
        c.kernel = 2;
        assert!(shifted.check().unwrap_err().contains("odd"));
    }
}
