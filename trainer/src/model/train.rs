//! Training a [`Network`] with candle: each layer of the description becomes candle tensor
//! ops over trainable `Var`s, and training writes the `Var`s back into the description. Adam,
//! stable BCE-with-logits, gradient clipping, early stopping on validation loss, best weights
//! kept. Deterministic for a given seed on CPU. [`train`] trains the `LstmRecipe` the flags
//! describe (drawn as the trainer always drew it); [`train_network`] any network.
//!
//! The LSTM is written from candle tensor ops with gates in ONNX order (i, o, f, c), so export is
//! a transpose, not a reshuffle. The input projection of all frames is one matmul; only the
//! recurrent part runs per step. The conv over time is one matmul of the `K` shifted frames
//! side by side.

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use crate::data::SplitData;
use crate::model::network::{Activation, Layer, LstmOutput, Merge, Network, PoolKind, Stream, Streams};
use crate::model::objectives::{self, CopySources, SegmentTargets};
use crate::model::{ExcitationBranch, Head, LstmRecipe, transpose};
use crate::rng::Rng;

#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub hidden: usize,
    /// Largest global L2 norm of the gradient; larger ones are scaled down to it.
    pub clip_norm: f64,
    pub batch: usize,
    pub learning_rate: f64,
    pub max_epochs: u32,
    /// Epochs without a better validation loss before stopping.
    pub patience: u32,
    pub seed: u64,
    /// Per-segment mean normalization of the input (`Layer::CenterOverTime`).
    pub segment_mean_norm: bool,
    /// How the LSTM outputs are pooled before the dense layer.
    pub head: Head,
    /// A bidirectional LSTM (forward and backward states concatenated).
    pub bidirectional: bool,
    /// A conv front-end `(channels, kernel)` before the LSTM (conv over time + ReLU), or none.
    pub conv: Option<(usize, usize)>,
    /// SpecAugment-style masking of training batches (Park et al. 2019): per training segment,
    /// one run of up to this many adjacent feature columns set to 0 (the training mean, as the
    /// features are normalized) over all frames; 0: off.
    pub feature_mask: usize,
    /// Likewise one run of up to this many frames set to 0 over all features; 0: off.
    pub time_mask: usize,
    /// Batches hold a real segment with its vocoder copies (`model::objectives`); off: plain
    /// shuffled batches.
    pub paired_batches: bool,
    /// Weight of the training-only family head's cross-entropy (real, or which fake family);
    /// 0: off.
    pub family_weight: f64,
    /// Weight of the OC-softmax loss on the pooled state; 0: off.
    pub oc_softmax: f64,
    /// Weight of the paired contrastive loss (a real against its copies; needs
    /// `paired_batches`); 0: off.
    pub pair_contrast: f64,
}

impl TrainConfig {
    /// Whether any training-only objective or paired batching is on (version 4's recipe: no).
    pub fn objectives(&self) -> bool {
        // `!= 0`: a NaN or negative weight counts as on, so that validation refuses it.
        self.paired_batches || self.family_weight != 0.0 || self.oc_softmax != 0.0 || self.pair_contrast != 0.0
    }

    /// Whether training needs to know which real each vocoder copy was made from.
    pub fn needs_pairs(&self) -> bool {
        self.paired_batches || self.pair_contrast > 0.0
    }

    /// Checks the objective settings (finite, non-negative weights; the paired loss has pairs).
    pub fn validate_objectives(&self) -> anyhow::Result<()> {
        for (name, w) in [
            ("--family-weight", self.family_weight),
            ("--oc-softmax", self.oc_softmax),
            ("--pair-contrast", self.pair_contrast),
        ] {
            anyhow::ensure!(w.is_finite() && w >= 0.0, "{name} must be a finite weight >= 0, got {w}");
        }
        anyhow::ensure!(
            self.pair_contrast == 0.0 || self.paired_batches,
            "--pair-contrast compares a real with its copies in one batch: it needs --paired-batches"
        );
        Ok(())
    }

    /// The network these flags describe for `input` floats per frame.
    pub fn recipe(&self, input: usize) -> LstmRecipe {
        LstmRecipe {
            input,
            hidden: self.hidden,
            head: self.head,
            bidirectional: self.bidirectional,
            conv: self.conv,
            segment_mean_norm: self.segment_mean_norm,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        // Chosen on the stand-in corpus's validation split (docs/MODEL_CARD.md): lr 1e-3 made
        // validation loss jump between epochs; 5e-4 found a clearly better minimum. Segment mean
        // normalization halved validation EER (0.97 % -> 0.48 %). 15 epochs at most with
        // patience 4 (version 2's best epoch was 3 of 11, and an epoch over the corpus costs
        // minutes on the 2-core machine). The last hidden state: on corpus v4's validation it
        // beat version 3's attention pooling with LFCC and codec augmentation (EER 3.0 % vs 5.0 %).
        Self {
            hidden: 64,
            clip_norm: 1.0,
            batch: 32,
            learning_rate: 5e-4,
            max_epochs: 15,
            patience: 4,
            seed: 1,
            segment_mean_norm: true,
            head: Head::Last,
            bidirectional: false,
            conv: None,
            feature_mask: 0,
            time_mask: 0,
            paired_batches: false,
            family_weight: 0.0,
            oc_softmax: 0.0,
            pair_contrast: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: u32,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_eer: Option<f64>,
    pub seconds: f64,
}

pub struct TrainOutcome {
    pub weights: Network,
    pub history: Vec<EpochStats>,
    pub best_epoch: u32,
    pub seconds: f64,
}

/// One LSTM direction's parameters.
struct Direction {
    /// `[F, 4H]`: input -> gates (i, o, f, c).
    w: Var,
    /// `[H, 4H]`: hidden -> gates.
    r: Var,
    /// `[4H]`: input and recurrent biases summed.
    b: Var,
}

/// A layer of the description as candle tensors; parameters as `Var`s in the layout candle
/// multiplies with (noted per field), converted from and to the description's ONNX layout.
enum CandleLayer {
    Center,
    Conv1d {
        /// `[K*F, C]`: the `K` frames around each frame side by side (frame offset major).
        w: Var,
        b: Var,
        kernel: usize,
    },
    Conv2d {
        /// `[out, in, kt, kh]` (as ONNX).
        w: Var,
        b: Var,
        kernel: (usize, usize),
    },
    Pool(crate::model::network::Pool),
    ToMap,
    FromMap,
    Act(Activation),
    Linear {
        /// `[in, out]`.
        w: Var,
        b: Var,
    },
    Lstm {
        hidden: usize,
        output: LstmOutput,
        /// Forward, then (BiLSTM) backward.
        dirs: Vec<Direction>,
    },
    Mean,
    Attention {
        /// `[C, K]` (A transposed).
        a: Var,
        /// `[K]`.
        ab: Var,
        /// `[K, 1]`.
        v: Var,
    },
    Residual(Vec<CandleLayer>),
    Streams {
        parts: Vec<(usize, usize, Vec<CandleLayer>)>,
        merge: Merge,
    },
    Excitation(ExcitationBranch),
}

fn var(data: Vec<f32>, shape: impl Into<candle_core::Shape>, dev: &Device) -> candle_core::Result<Var> {
    Var::from_vec(data, shape, dev)
}

fn values(v: &Var) -> candle_core::Result<Vec<f32>> {
    v.as_tensor().flatten_all()?.to_vec1()
}

/// Input channels of a layer reading `shape`.
fn width(shape: crate::model::network::Shape) -> usize {
    use crate::model::network::Shape;
    match shape {
        Shape::Seq(c) | Shape::Vec(c) => c,
        Shape::Map { channels, .. } => channels,
    }
}

fn build(layers: &[Layer], mut shape: crate::model::network::Shape, dev: &Device) -> anyhow::Result<Vec<CandleLayer>> {
    let mut out = Vec::with_capacity(layers.len());
    for layer in layers {
        out.push(CandleLayer::new(layer, shape, dev)?);
        shape = layer.output_shape(shape).map_err(anyhow::Error::msg)?;
    }
    Ok(out)
}

impl CandleLayer {
    fn new(layer: &Layer, shape: crate::model::network::Shape, dev: &Device) -> anyhow::Result<Self> {
        use crate::model::network::Shape;
        let fi = width(shape);
        Ok(match layer {
            Layer::CenterOverTime => CandleLayer::Center,
            Layer::Conv1d(c) => {
                // ONNX `[C, F, K]` -> `[K*F, C]`.
                let k = c.kernel;
                let w: Vec<f32> = (0..k * fi)
                    .flat_map(|row| (0..c.out).map(move |ch| (row / fi, row % fi, ch)))
                    .map(|(j, q, ch)| c.w[(ch * fi + q) * k + j])
                    .collect();
                CandleLayer::Conv1d { w: var(w, (k * fi, c.out), dev)?, b: var(c.b.clone(), c.out, dev)?, kernel: k }
            }
            Layer::Conv2d(c) => CandleLayer::Conv2d {
                w: var(c.w.clone(), (c.out, fi, c.kernel.0, c.kernel.1), dev)?,
                b: var(c.b.clone(), c.out, dev)?,
                kernel: c.kernel,
            },
            Layer::Pool(p) => CandleLayer::Pool(*p),
            Layer::ToMap => CandleLayer::ToMap,
            Layer::FromMap => CandleLayer::FromMap,
            Layer::Activation(a) => CandleLayer::Act(*a),
            Layer::Linear(l) => CandleLayer::Linear {
                w: var(transpose(&l.w, l.out, fi), (fi, l.out), dev)?,
                b: var(l.b.clone(), l.out, dev)?,
            },
            Layer::Lstm(l) => {
                let (h, f) = (l.hidden, fi);
                let dirs = (0..l.directions())
                    .map(|k| -> anyhow::Result<Direction> {
                        let b = &l.b[k * 8 * h..(k + 1) * 8 * h];
                        Ok(Direction {
                            w: var(transpose(&l.w[k * 4 * h * f..(k + 1) * 4 * h * f], 4 * h, f), (f, 4 * h), dev)?,
                            r: var(transpose(&l.r[k * 4 * h * h..(k + 1) * 4 * h * h], 4 * h, h), (h, 4 * h), dev)?,
                            b: var(b[..4 * h].iter().zip(&b[4 * h..]).map(|(a, b)| a + b).collect(), 4 * h, dev)?,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                CandleLayer::Lstm { hidden: h, output: l.output, dirs }
            }
            Layer::MeanOverTime => CandleLayer::Mean,
            Layer::Attention(a) => {
                let k = a.b.len();
                CandleLayer::Attention {
                    a: var(transpose(&a.w, k, fi), (fi, k), dev)?,
                    ab: var(a.b.clone(), k, dev)?,
                    v: var(a.v.clone(), (k, 1), dev)?,
                }
            }
            Layer::Residual(body) => CandleLayer::Residual(build(body, shape, dev)?),
            Layer::Streams(s) => CandleLayer::Streams {
                parts: s
                    .parts
                    .iter()
                    .map(|p| Ok((p.from, p.to, build(&p.layers, Shape::Seq(p.to - p.from), dev)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                merge: s.merge,
            },
            Layer::Excitation(e) => CandleLayer::Excitation(*e),
        })
    }

    /// The description of this layer with the current parameter values.
    fn layer(&self, shape: crate::model::network::Shape) -> anyhow::Result<Layer> {
        use crate::model::network::{self as n, Shape};
        let fi = width(shape);
        Ok(match self {
            CandleLayer::Center => Layer::CenterOverTime,
            CandleLayer::Conv1d { w, b, kernel } => {
                // `[K*F, C]` -> ONNX `[C, F, K]`.
                let (m, k) = (values(w)?, *kernel);
                let out = b.as_tensor().dim(0)?;
                let w = (0..out * fi * k)
                    .map(|at| {
                        let (ch, q, j) = (at / (fi * k), at / k % fi, at % k);
                        m[(j * fi + q) * out + ch]
                    })
                    .collect();
                Layer::Conv1d(n::Conv1d { out, kernel: k, w, b: values(b)? })
            }
            CandleLayer::Conv2d { w, b, kernel } => {
                Layer::Conv2d(n::Conv2d { out: b.as_tensor().dim(0)?, kernel: *kernel, w: values(w)?, b: values(b)? })
            }
            CandleLayer::Pool(p) => Layer::Pool(*p),
            CandleLayer::ToMap => Layer::ToMap,
            CandleLayer::FromMap => Layer::FromMap,
            CandleLayer::Act(a) => Layer::Activation(*a),
            CandleLayer::Linear { w, b } => {
                let out = b.as_tensor().dim(0)?;
                Layer::Linear(n::Linear { out, w: transpose(&values(w)?, fi, out), b: values(b)? })
            }
            CandleLayer::Lstm { hidden, output, dirs } => {
                let h = *hidden;
                let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
                for d in dirs {
                    w.extend(transpose(&values(&d.w)?, fi, 4 * h));
                    r.extend(transpose(&values(&d.r)?, h, 4 * h));
                    b.extend(values(&d.b)?);
                    b.extend(std::iter::repeat_n(0.0, 4 * h)); // ONNX splits input and recurrent biases
                }
                Layer::Lstm(n::Lstm { hidden: h, bidirectional: dirs.len() == 2, output: *output, w, r, b })
            }
            CandleLayer::Mean => Layer::MeanOverTime,
            CandleLayer::Attention { a, ab, v } => {
                let k = ab.as_tensor().dim(0)?;
                Layer::Attention(n::Attention { w: transpose(&values(a)?, fi, k), b: values(ab)?, v: values(v)? })
            }
            CandleLayer::Residual(body) => Layer::Residual(describe(body, shape)?),
            CandleLayer::Streams { parts, merge } => Layer::Streams(Streams {
                parts: parts
                    .iter()
                    .map(|(from, to, layers)| {
                        Ok(Stream { from: *from, to: *to, layers: describe(layers, Shape::Seq(to - from))? })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
                merge: *merge,
            }),
            CandleLayer::Excitation(e) => Layer::Excitation(*e),
        })
    }

    /// Trainable parameters, in layer order (nested layers included).
    fn vars(&self, out: &mut Vec<Var>) {
        match self {
            CandleLayer::Conv1d { w, b, .. } | CandleLayer::Conv2d { w, b, .. } | CandleLayer::Linear { w, b } => {
                out.extend([w.clone(), b.clone()])
            }
            CandleLayer::Lstm { dirs, .. } => {
                dirs.iter().for_each(|d| out.extend([d.w.clone(), d.r.clone(), d.b.clone()]))
            }
            CandleLayer::Attention { a, ab, v } => out.extend([a.clone(), ab.clone(), v.clone()]),
            CandleLayer::Residual(body) => body.iter().for_each(|l| l.vars(out)),
            CandleLayer::Streams { parts, .. } => parts.iter().flat_map(|p| &p.2).for_each(|l| l.vars(out)),
            _ => {}
        }
    }

    /// Sequences are `[B, T, C]`, maps `[B, Ch, T, H]`, vectors `[B, W]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            CandleLayer::Center => x.broadcast_sub(&x.mean_keepdim(1)?),
            CandleLayer::Conv1d { w, b, kernel } => {
                // Zero frames at both ends, then the K shifted views side by side.
                let (bn, t, f) = x.dims3()?;
                let pad = (kernel - 1) / 2;
                let padded = x.pad_with_zeros(1, pad, pad)?;
                let views = (0..*kernel).map(|j| padded.narrow(1, j, t)).collect::<candle_core::Result<Vec<_>>>()?;
                let windows = Tensor::cat(&views, 2)?.reshape((bn * t, kernel * f))?;
                let y = windows.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
                y.reshape((bn, t, b.as_tensor().dim(0)?))
            }
            CandleLayer::Conv2d { w, b, kernel } => {
                let (pt, ph) = ((kernel.0 - 1) / 2, (kernel.1 - 1) / 2);
                let padded = x.pad_with_zeros(2, pt, pt)?.pad_with_zeros(3, ph, ph)?;
                let y = padded.conv2d(w.as_tensor(), 0, 1, 1, 1)?;
                y.broadcast_add(&b.as_tensor().reshape((1, b.as_tensor().dim(0)?, 1, 1))?)
            }
            CandleLayer::Pool(p) => {
                let reduce = |t: Tensor, dim: usize| match p.kind {
                    PoolKind::Max => t.max(dim),
                    PoolKind::Avg => t.mean(dim),
                };
                if x.rank() == 3 {
                    let (bn, t, c) = x.dims3()?;
                    let n = t / p.time;
                    reduce(x.narrow(1, 0, n * p.time)?.reshape((bn, n, p.time, c))?, 2)
                } else {
                    let (bn, ch, t, h) = x.dims4()?;
                    let (nt, nh) = (t / p.time, h / p.height);
                    let x = x.narrow(2, 0, nt * p.time)?.narrow(3, 0, nh * p.height)?;
                    let x = x.reshape(vec![bn, ch, nt, p.time, nh, p.height])?;
                    reduce(reduce(x, 5)?, 3)
                }
            }
            CandleLayer::ToMap => x.unsqueeze(1),
            CandleLayer::FromMap => {
                let (bn, ch, t, h) = x.dims4()?;
                x.transpose(1, 2)?.contiguous()?.reshape((bn, t, ch * h))
            }
            CandleLayer::Act(a) => match a {
                Activation::Relu => x.relu(),
                Activation::Sigmoid => candle_nn::ops::sigmoid(x),
                Activation::Tanh => x.tanh(),
            },
            CandleLayer::Linear { w, b } => {
                if x.rank() == 2 {
                    x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())
                } else {
                    let (bn, t, c) = x.dims3()?;
                    let y = x.reshape((bn * t, c))?.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
                    y.reshape((bn, t, b.as_tensor().dim(0)?))
                }
            }
            CandleLayer::Lstm { hidden, output, dirs } => {
                let (bn, t, f) = x.dims3()?;
                let x2 = x.reshape((bn * t, f))?;
                let keep = *output == LstmOutput::Sequence;
                let mut finals = Vec::with_capacity(dirs.len());
                let mut seqs = Vec::new();
                for (k, d) in dirs.iter().enumerate() {
                    let (last, states) = run_direction(d, *hidden, k != 0, &x2, (bn, t), keep)?;
                    finals.push(last);
                    if keep {
                        seqs.push(Tensor::stack(&states, 1)?); // [B, T, H]
                    }
                }
                let parts = if keep { seqs } else { finals };
                if parts.len() == 1 {
                    Ok(parts.into_iter().next().expect("one direction"))
                } else {
                    Tensor::cat(&parts, parts[0].rank() - 1)
                }
            }
            CandleLayer::Mean => {
                let t = x.dim(1)?;
                x.sum(1)?.affine(1.0 / t as f64, 0.0)
            }
            CandleLayer::Attention { a, ab, v } => {
                let (bn, t, width) = x.dims3()?;
                let score = x
                    .reshape((bn * t, width))?
                    .matmul(a.as_tensor())?
                    .broadcast_add(ab.as_tensor())?
                    .tanh()?
                    .matmul(v.as_tensor())?
                    .reshape((bn, 1, t))?;
                let weight = candle_nn::ops::softmax(&score, 2)?;
                weight.matmul(x)?.squeeze(1) // [B, C]
            }
            CandleLayer::Residual(body) => x.add(&forward_all(body, x)?),
            CandleLayer::Streams { parts, merge } => {
                let outs = parts
                    .iter()
                    .map(|(from, to, layers)| forward_all(layers, &x.narrow(2, *from, to - from)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                match merge {
                    Merge::Max => {
                        let mut acc = outs[0].clone();
                        for o in &outs[1..] {
                            acc = acc.maximum(o)?;
                        }
                        Ok(acc)
                    }
                    Merge::Concat => Tensor::cat(&outs, outs[0].rank() - 1),
                }
            }
            CandleLayer::Excitation(e) => {
                // `[B, T, 2]` (log-kurtosis, flag) -> `[B, 1]`: the mean kurtosis of loud frames.
                let kurt = x.narrow(2, 0, 1)?;
                let loud = x.narrow(2, 1, 1)?.gt(f64::from(e.loud_mid))?.to_dtype(DType::F32)?;
                let sum = kurt.mul(&loud)?.sum(1)?;
                let count = loud.sum(1)?.maximum(1f32)?;
                let stat = sum.div(&count)?;
                stat.affine(1.0, -f64::from(e.center))?.abs()?.affine(f64::from(e.slope), f64::from(e.bias))
            }
        }
    }
}

fn forward_all(layers: &[CandleLayer], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for l in layers {
        x = l.forward(&x)?;
    }
    Ok(x)
}

fn describe(layers: &[CandleLayer], mut shape: crate::model::network::Shape) -> anyhow::Result<Vec<Layer>> {
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        let layer = l.layer(shape)?;
        shape = layer.output_shape(shape).map_err(anyhow::Error::msg)?;
        out.push(layer);
    }
    Ok(out)
}

/// Runs one LSTM direction over `x2` (`[B*T, F]`). Returns its last state (after the last
/// frame it read) and, when `keep`, all its states in frame order.
fn run_direction(
    d: &Direction,
    hs: usize,
    backward: bool,
    x2: &Tensor,
    (b, t): (usize, usize),
    keep: bool,
) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
    let xw = x2.matmul(d.w.as_tensor())?.broadcast_add(d.b.as_tensor())?;
    let xw = xw.reshape((b, t, 4 * hs))?.transpose(0, 1)?.contiguous()?; // [T, B, 4H]
    let mut h = Tensor::zeros((b, hs), DType::F32, x2.device())?;
    let mut c = h.clone();
    let mut states = Vec::new();
    for k in 0..t {
        let step = if backward { t - 1 - k } else { k };
        let g = xw.get(step)?.add(&h.matmul(d.r.as_tensor())?)?;
        let i = candle_nn::ops::sigmoid(&g.narrow(1, 0, hs)?)?;
        let o = candle_nn::ops::sigmoid(&g.narrow(1, hs, hs)?)?;
        let fg = candle_nn::ops::sigmoid(&g.narrow(1, 2 * hs, hs)?)?;
        let cc = g.narrow(1, 3 * hs, hs)?.tanh()?;
        c = fg.mul(&c)?.add(&i.mul(&cc)?)?;
        h = o.mul(&c.tanh()?)?;
        if keep {
            states.push(h.clone());
        }
    }
    if backward {
        states.reverse();
    }
    Ok((h, states))
}

/// A [`Network`] as candle tensors.
struct Net {
    input: usize,
    layers: Vec<CandleLayer>,
}

impl Net {
    fn new(net: &Network, dev: &Device) -> anyhow::Result<Self> {
        net.check().map_err(anyhow::Error::msg)?;
        Ok(Self { input: net.input, layers: build(&net.layers, crate::model::network::Shape::Seq(net.input), dev)? })
    }

    fn vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        self.layers.iter().for_each(|l| l.vars(&mut out));
        out
    }

    /// Logits `[B]` for `x` `[B, T, F]`.
    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        forward_all(&self.layers, x)?.squeeze(1)
    }

    /// The input of the last (dense) layer `[B, D]` and the logits `[B]` (the same ops as
    /// [`Net::logits`], split before the last layer).
    fn embed_logits(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (body, last) = self.layers.split_at(self.layers.len().saturating_sub(1));
        let emb = forward_all(body, x)?;
        let z = forward_all(last, &emb)?.squeeze(1)?;
        Ok((emb, z))
    }

    fn export(&self) -> anyhow::Result<Network> {
        Ok(Network {
            input: self.input,
            layers: describe(&self.layers, crate::model::network::Shape::Seq(self.input))?,
        })
    }

    fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.vars().iter().map(|v| v.as_tensor().copy()).collect()
    }

    fn restore(&self, saved: &[Tensor]) -> candle_core::Result<()> {
        for (v, t) in self.vars().iter().zip(saved) {
            v.set(t)?;
        }
        Ok(())
    }
}

/// The training-only parameters and targets of the objectives (`model::objectives`); none of
/// them is exported.
struct Auxiliary {
    targets: SegmentTargets,
    /// Family head: `[D, K]` weights and `[K]` biases.
    family: Option<(Var, Var)>,
    /// OC-softmax direction `[D]`.
    oc: Option<Var>,
}

impl Auxiliary {
    /// `None` when `cfg` turns no objective on (nothing is drawn from `rng` then). The
    /// parameters draw from `rng.fork(4)`, a stream the network's training never uses.
    fn new(
        train: &SplitData,
        net: &Network,
        cfg: &TrainConfig,
        copies: &CopySources,
        rng: &Rng,
        dev: &Device,
    ) -> anyhow::Result<Option<Self>> {
        if !cfg.objectives() {
            return Ok(None);
        }
        cfg.validate_objectives()?;
        let width = embedding_width(net)?;
        let targets = SegmentTargets::new(train, copies)?;
        let mut r = rng.fork(4);
        let s = 1.0 / (width as f64).sqrt();
        let family = if cfg.family_weight > 0.0 {
            let k = targets.classes();
            let w: Vec<f32> = (0..width * k).map(|_| r.range(-s, s) as f32).collect();
            Some((var(w, (width, k), dev)?, var(vec![0.0; k], k, dev)?))
        } else {
            None
        };
        let oc = if cfg.oc_softmax > 0.0 {
            Some(var((0..width).map(|_| r.normal() as f32).collect(), width, dev)?)
        } else {
            None
        };
        tracing::info!(
            families = ?targets.families,
            paired_segments = targets.pair_key.iter().filter(|k| k.is_some()).count(),
            "training objectives"
        );
        Ok(Some(Self { targets, family, oc }))
    }

    fn vars(&self) -> Vec<Var> {
        let mut out: Vec<Var> = self.family.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
        out.extend(self.oc.iter().cloned());
        out
    }

    /// The weighted sum of the objectives' losses on one batch (`emb` `[B, D]`, labels `y`,
    /// segments `idx`).
    fn loss(
        &self,
        cfg: &TrainConfig,
        emb: &Tensor,
        y: &Tensor,
        idx: &[usize],
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut total = Tensor::zeros((), DType::F32, dev)?;
        if let Some((w, b)) = &self.family {
            let logits = emb.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            let l = objectives::family_loss(&logits, &self.targets.classes_of(idx, dev)?)?;
            total = total.add(&l.affine(cfg.family_weight, 0.0)?)?;
        }
        if let Some(w) = &self.oc {
            total = total.add(&objectives::oc_softmax(emb, w.as_tensor(), y)?.affine(cfg.oc_softmax, 0.0)?)?;
        }
        if cfg.pair_contrast > 0.0
            && let Some(l) = objectives::pair_contrast(emb, &self.targets.pairs_in(idx))?
        {
            total = total.add(&l.affine(cfg.pair_contrast, 0.0)?)?;
        }
        Ok(total)
    }
}

/// Floats per segment that `net`'s last layer reads: the objectives' embedding. The network
/// must end in a dense layer to one logit over a vector.
fn embedding_width(net: &Network) -> anyhow::Result<usize> {
    use crate::model::network::Shape;
    let Some((Layer::Linear(last), body)) = net.layers.split_last() else {
        anyhow::bail!("the training objectives need a network that ends in a dense layer");
    };
    anyhow::ensure!(last.out == 1, "the training objectives need a dense layer to one logit last");
    let mut shape = Shape::Seq(net.input);
    for l in body {
        shape = l.output_shape(shape).map_err(anyhow::Error::msg)?;
    }
    match shape {
        Shape::Vec(d) => Ok(d),
        other => anyhow::bail!("the training objectives need a pooled vector before the dense layer, not {other:?}"),
    }
}

/// Backpropagates `loss` and scales the gradients down to a global L2 norm of at most `max_norm`
/// (LSTM gradients spike now and then; unclipped, one spike undid epochs of training).
fn clipped_grads(loss: &Tensor, vars: &[Var], max_norm: f64) -> candle_core::Result<candle_core::backprop::GradStore> {
    let mut grads = loss.backward()?;
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(grads)
}

/// Mean of `max(z, 0) - z y + log(1 + exp(-|z|))`: binary cross-entropy on logits, stable for
/// any |z|.
fn bce_with_logits(z: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    z.relu()?.sub(&z.mul(y)?)?.add(&softplus)?.mean_all()
}

fn batch_tensor(data: &SplitData, idx: &[usize], dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    batch_with(data, idx, |_| {}, dev)
}

/// The segments `idx` as `[B, frames, features]` (each passed to `edit` once copied) and their
/// labels as `[B]`.
fn batch_with(
    data: &SplitData,
    idx: &[usize],
    mut edit: impl FnMut(&mut [f32]),
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut x = Vec::with_capacity(idx.len() * data.frames * data.n_features);
    for &i in idx {
        let start = x.len();
        x.extend_from_slice(data.segment(i));
        edit(&mut x[start..]);
    }
    let y: Vec<f32> = idx.iter().map(|&i| if data.labels[i] { 1.0 } else { 0.0 }).collect();
    Ok((Tensor::from_vec(x, (idx.len(), data.frames, data.n_features), dev)?, Tensor::from_vec(y, idx.len(), dev)?))
}

/// [`batch_tensor`] with each segment's masks: a run of `width` in `0..=max` adjacent columns
/// (resp. frames) at a uniform start, set to 0. With both maxima 0 it draws nothing and is
/// [`batch_tensor`].
fn masked_batch(
    data: &SplitData,
    idx: &[usize],
    (max_cols, max_frames): (usize, usize),
    rng: &mut Rng,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (t, f) = (data.frames, data.n_features);
    let run = |rng: &mut Rng, max: usize, n: usize| {
        let width = rng.below(max.min(n) + 1);
        let from = rng.below(n - width + 1);
        from..from + width
    };
    batch_with(
        data,
        idx,
        |seg| {
            if max_cols > 0 {
                let cols = run(rng, max_cols, f);
                seg.chunks_exact_mut(f).for_each(|frame| frame[cols.clone()].fill(0.0));
            }
            if max_frames > 0 {
                let frames = run(rng, max_frames, t);
                seg[frames.start * f..frames.end * f].fill(0.0);
            }
        },
        dev,
    )
}

/// Mean loss and P(fake) over a whole split (no parameter updates).
fn evaluate(net: &Net, data: &SplitData, batch: usize, dev: &Device) -> anyhow::Result<(f64, Vec<f32>)> {
    let mut total = 0f64;
    let mut probs = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1) * 4) {
        let (x, y) = batch_tensor(data, chunk, dev)?;
        let z = net.logits(&x)?.detach();
        total += f64::from(bce_with_logits(&z, &y)?.to_scalar::<f32>()?) * chunk.len() as f64;
        probs.extend(candle_nn::ops::sigmoid(&z)?.to_vec1::<f32>()?);
    }
    Ok((total / data.len().max(1) as f64, probs))
}

/// P(fake) per segment from the trainer's own forward pass (export parity checks).
pub fn predict(weights: &Network, data: &SplitData, idx: &[usize]) -> anyhow::Result<Vec<f32>> {
    let dev = Device::Cpu;
    let net = Net::new(weights, &dev)?;
    let (x, _) = batch_tensor(data, idx, &dev)?;
    Ok(candle_nn::ops::sigmoid(&net.logits(&x)?)?.to_vec1()?)
}

/// The logits (before the sigmoid) of every segment of `data`, in batches.
pub fn logits(weights: &Network, data: &SplitData) -> anyhow::Result<Vec<f64>> {
    let dev = Device::Cpu;
    let net = Net::new(weights, &dev)?;
    let all: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(all.len());
    for idx in all.chunks(256) {
        let (x, _) = batch_tensor(data, idx, &dev)?;
        out.extend(net.logits(&x)?.to_vec1::<f32>()?.into_iter().map(f64::from));
    }
    Ok(out)
}

/// Trains on `train`, early-stopping on `val` loss; both already normalized.
pub fn train(
    train: &SplitData,
    val: &SplitData,
    cfg: &TrainConfig,
    on_epoch: impl FnMut(&EpochStats),
) -> anyhow::Result<TrainOutcome> {
    train_with(train, val, cfg, &CopySources::new(), on_epoch)
}

/// [`train`] with the vocoder copies of `train`'s reals (`copies`: copy file -> real file) for
/// paired batches and the paired loss.
pub fn train_with(
    train: &SplitData,
    val: &SplitData,
    cfg: &TrainConfig,
    copies: &CopySources,
    on_epoch: impl FnMut(&EpochStats),
) -> anyhow::Result<TrainOutcome> {
    anyhow::ensure!(!train.is_empty() && !val.is_empty(), "training and validation splits must not be empty");
    if let Some((channels, kernel)) = cfg.conv {
        anyhow::ensure!(channels > 0, "the conv front-end needs at least one channel");
        anyhow::ensure!(
            kernel % 2 == 1 && kernel <= train.frames,
            "conv kernel {kernel} must be odd and at most the frames of a segment ({})",
            train.frames
        );
    }
    let initial = cfg.recipe(train.n_features).init(&mut Rng::new(cfg.seed).fork(1));
    train_network_with(train, val, cfg, &initial, copies, on_epoch)
}

/// Trains `initial` (any network; its weights are the starting point) on `train`,
/// early-stopping on `val` loss; both already normalized. Of `cfg` it uses the optimizer,
/// batch, epoch, masking and seed settings (the architecture is `initial`'s).
pub fn train_network(
    train: &SplitData,
    val: &SplitData,
    cfg: &TrainConfig,
    initial: &Network,
    on_epoch: impl FnMut(&EpochStats),
) -> anyhow::Result<TrainOutcome> {
    train_network_with(train, val, cfg, initial, &CopySources::new(), on_epoch)
}

/// [`train_network`] with the vocoder copies of `train`'s reals (see [`train_with`]).
pub fn train_network_with(
    train: &SplitData,
    val: &SplitData,
    cfg: &TrainConfig,
    initial: &Network,
    copies: &CopySources,
    mut on_epoch: impl FnMut(&EpochStats),
) -> anyhow::Result<TrainOutcome> {
    anyhow::ensure!(!train.is_empty() && !val.is_empty(), "training and validation splits must not be empty");
    anyhow::ensure!(
        train.n_features == initial.input,
        "the network reads {} floats per frame, the data has {}",
        initial.input,
        train.n_features
    );
    let started = Instant::now();
    let dev = Device::Cpu;
    let rng = Rng::new(cfg.seed);
    let net = Net::new(initial, &dev)?;
    let aux = Auxiliary::new(train, initial, cfg, copies, &rng, &dev)?;
    let mut vars = net.vars();
    if let Some(a) = &aux {
        vars.extend(a.vars());
    }
    let mut opt =
        AdamW::new(vars.clone(), ParamsAdamW { lr: cfg.learning_rate, weight_decay: 0.0, ..Default::default() })?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut shuffle = rng.fork(2);
    let mut masking = rng.fork(3);
    let (mut best, mut best_epoch, mut since_best) = (f64::INFINITY, 0, 0);
    let mut best_weights = net.snapshot()?;
    let mut history = Vec::new();
    for epoch in 1..=cfg.max_epochs {
        let t0 = Instant::now();
        crate::data::epoch_order(train, &mut order, &mut shuffle);
        let mut total = 0f64;
        let batches: Vec<Vec<usize>> = match &aux {
            Some(a) if cfg.paired_batches => a.targets.paired_batches(&order, cfg.batch),
            _ => order.chunks(cfg.batch).map(<[usize]>::to_vec).collect(),
        };
        for idx in &batches {
            let (x, y) = masked_batch(train, idx, (cfg.feature_mask, cfg.time_mask), &mut masking, &dev)?;
            let (bce, loss) = match &aux {
                None => {
                    let bce = bce_with_logits(&net.logits(&x)?, &y)?;
                    (bce.clone(), bce)
                }
                Some(a) => {
                    let (emb, z) = net.embed_logits(&x)?;
                    let bce = bce_with_logits(&z, &y)?;
                    let loss = bce.add(&a.loss(cfg, &emb, &y, idx, &dev)?)?;
                    (bce, loss)
                }
            };
            opt.step(&clipped_grads(&loss, &vars, cfg.clip_norm)?)?;
            // The reported training loss is the cross-entropy alone, comparable with and without
            // the objectives.
            total += f64::from(bce.to_scalar::<f32>()?) * idx.len() as f64;
        }
        let (val_loss, probs) = evaluate(&net, val, cfg.batch, &dev).context("validation pass")?;
        let stats = EpochStats {
            epoch,
            train_loss: total / order.len().max(1) as f64,
            val_loss,
            val_eer: vericlip_core::metrics::eer(&probs, &val.labels).map(|e| e.0),
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_epoch(&stats);
        history.push(stats);
        if val_loss < best {
            (best, best_epoch, since_best) = (val_loss, epoch, 0);
            best_weights = net.snapshot()?;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    net.restore(&best_weights)?;
    Ok(TrainOutcome { weights: net.export()?, history, best_epoch, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(
        input: usize,
        hidden: usize,
        head: Head,
        bidirectional: bool,
        segment_mean_norm: bool,
        conv: Option<(usize, usize)>,
    ) -> LstmRecipe {
        LstmRecipe { input, hidden, head, bidirectional, conv, segment_mean_norm }
    }

    /// Scales the dense, attention `v` and conv weights (scores spread over 0..1 and attention
    /// far from uniform, so a mistake cannot hide near 0.5).
    fn scale(net: &mut Network, dense: f32, attention: f32, conv: f32) {
        net.visit_mut(|l| match l {
            Layer::Linear(l) => l.w.iter_mut().for_each(|v| *v *= dense),
            Layer::Attention(a) => a.v.iter_mut().for_each(|v| *v *= attention),
            Layer::Conv1d(c) => c.w.iter_mut().for_each(|v| *v *= conv),
            _ => {}
        });
    }

    const HEADS: [(Head, bool); 6] = [
        (Head::Last, false),
        (Head::Last, true),
        (Head::Mean, false),
        (Head::Mean, true),
        (Head::Attention, false),
        (Head::Attention, true),
    ];

    /// `n` segments of `[frames][features]`: fakes carry a fast oscillation on feature 0 (a
    /// temporal pattern, not an offset, so per-segment mean normalization keeps it).
    fn synthetic(n: usize, frames: usize, features: usize, seed: u64) -> SplitData {
        let mut rng = Rng::new(seed);
        let mut d = SplitData { frames, n_features: features, ..SplitData::default() };
        for i in 0..n {
            let fake = i % 2 == 1;
            for t in 0..frames {
                for f in 0..features {
                    let signal = if fake && f == 0 { if t % 2 == 0 { 1.0 } else { -1.0 } } else { 0.0 };
                    d.features.push(signal + rng.range(-0.5, 0.5) as f32 + 0.3 * f as f32);
                }
            }
            d.labels.push(fake);
        }
        d
    }

    #[test]
    fn candle_forward_equals_the_reference_forward_for_every_head() {
        let data = synthetic(5, 17, 7, 3);
        let x = ndarray::Array3::from_shape_vec((5, 17, 7), data.features.clone()).unwrap();
        for (head, bi) in HEADS {
            for segment_mean_norm in [false, true] {
                let mut w = recipe(7, 6, head, bi, segment_mean_norm, None).seeded(11);
                // Scores spread over 0..1 and attention far from uniform: mistakes cannot hide.
                scale(&mut w, 8.0, 4.0, 1.0);
                let ours = predict(&w, &data, &[0, 1, 2, 3, 4]).unwrap();
                let reference = w.forward(x.view());
                let max = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(max <= 1e-5, "{head:?} bi {bi} mean norm {segment_mean_norm}: candle vs reference {max}");
                assert!(reference.iter().any(|p| (p - 0.5).abs() > 0.1), "{head:?} {bi}: {reference:?}");
                eprintln!("{head:?} bi {bi} mean norm {segment_mean_norm}: candle vs f64 reference {max:.2e}");
            }
        }
    }

    #[test]
    fn conv_front_end_trains_and_candle_onnx_layout_and_reference_agree() {
        let data = synthetic(5, 17, 7, 3);
        let x = ndarray::Array3::from_shape_vec((5, 17, 7), data.features.clone()).unwrap();
        for (head, bi) in [(Head::Last, false), (Head::Attention, true)] {
            for kernel in [1, 3, 5] {
                let mut w = recipe(7, 6, head, bi, true, Some((4, kernel))).seeded(11);
                w.check().unwrap();
                // Scores spread over 0..1: mistakes cannot hide near 0.5.
                scale(&mut w, 16.0, 1.0, 4.0);
                // Through candle (weights re-laid out to its matmul form) and back.
                let net = Net::new(&w, &Device::Cpu).unwrap();
                // (candle keeps one bias per gate: the recurrent biases come back folded in)
                let mut folded = w.clone();
                folded.visit_mut(|l| {
                    if let Layer::Lstm(l) = l {
                        for d in l.b.chunks_exact_mut(8 * l.hidden) {
                            let (input, recurrent) = d.split_at_mut(4 * l.hidden);
                            input.iter_mut().zip(recurrent.iter_mut()).for_each(|(a, b)| (*a, *b) = (*a + *b, 0.0));
                        }
                    }
                });
                assert_eq!(net.export().unwrap(), folded, "{head:?} {bi} kernel {kernel}: layout round trip");
                let ours = predict(&w, &data, &[0, 1, 2, 3, 4]).unwrap();
                let reference = w.forward(x.view());
                let max = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(max <= 1e-5, "{head:?} bi {bi} kernel {kernel}: candle vs reference {max}");
                assert!(reference.iter().any(|p| (p - 0.5).abs() > 0.1), "{reference:?}");
            }
        }
        // It trains, and exports what it trained.
        let (train_d, val_d) = (synthetic(48, 10, 4, 1), synthetic(16, 10, 4, 2));
        let cfg = TrainConfig {
            hidden: 6,
            batch: 8,
            learning_rate: 1e-2,
            max_epochs: 6,
            conv: Some((5, 3)),
            ..TrainConfig::default()
        };
        let out = train(&train_d, &val_d, &cfg, |_| {}).unwrap();
        let w = &out.weights;
        assert!(matches!(&w.layers[1], Layer::Conv1d(c) if (c.out, c.kernel, w.input) == (5, 3, 4)), "{w:?}");
        let best = out.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
        assert!(best < 0.5, "best validation loss {best}");
        let x = ndarray::Array3::from_shape_vec((16, 10, 4), val_d.features.clone()).unwrap();
        let idx: Vec<usize> = (0..val_d.len()).collect();
        let (ours, reference) = (predict(w, &val_d, &idx).unwrap(), w.forward(x.view()));
        assert!(ours.iter().zip(&reference).all(|(a, b)| (a - b).abs() <= 1e-5));
        // An even kernel is refused with a message that says why.
        match train(&train_d, &val_d, &TrainConfig { conv: Some((5, 4)), ..cfg }, |_| {}) {
            Err(e) => assert!(e.to_string().contains("must be odd"), "{e}"),
            Ok(_) => panic!("an even conv kernel was accepted"),
        }
    }

    #[test]
    fn masking_zeroes_one_run_of_columns_and_one_of_frames_per_segment() {
        let data = SplitData {
            frames: 12,
            n_features: 10,
            features: vec![1.0; 3 * 120],
            labels: vec![false, true, true],
            ..SplitData::default()
        };
        let mut rng = Rng::new(9);
        let (mut saw_cols, mut saw_frames) = (false, false);
        for _ in 0..20 {
            let (x, y) = masked_batch(&data, &[0, 1, 2], (4, 5), &mut rng, &Device::Cpu).unwrap();
            assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 1.0, 1.0]);
            for seg in x.to_vec3::<f32>().unwrap() {
                // Zeroed columns: the same in every unmasked frame, a run of at most 4.
                let kept: Vec<&Vec<f32>> = seg.iter().filter(|r| r.iter().any(|v| *v != 0.0)).collect();
                let masked_frames = seg.len() - kept.len();
                assert!(masked_frames <= 5 && !kept.is_empty());
                let cols: Vec<usize> = (0..10).filter(|&c| kept[0][c] == 0.0).collect();
                assert!(kept.iter().all(|r| (0..10).all(|c| (r[c] == 0.0) == cols.contains(&c))));
                assert!(cols.len() <= 4 && cols.windows(2).all(|w| w[1] == w[0] + 1), "{cols:?}");
                saw_cols |= !cols.is_empty();
                saw_frames |= masked_frames > 0;
            }
        }
        assert!(saw_cols && saw_frames);
        // Off (0, 0) is the plain batch.
        let (x, _) = masked_batch(&data, &[1], (0, 0), &mut rng, &Device::Cpu).unwrap();
        assert!(x.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| *v == 1.0));
    }

    #[test]
    fn every_head_trains_and_exports_what_it_trained() {
        let (train_d, val_d) = (synthetic(48, 10, 4, 1), synthetic(16, 10, 4, 2));
        for (head, bidirectional) in HEADS {
            let cfg = TrainConfig {
                hidden: 6,
                batch: 8,
                learning_rate: 1e-2,
                max_epochs: 6,
                head,
                bidirectional,
                ..TrainConfig::default()
            };
            let out = train(&train_d, &val_d, &cfg, |_| {}).unwrap();
            let w = &out.weights;
            w.check().unwrap();
            let reference = recipe(4, 6, head, bidirectional, true, None).seeded(1);
            let kinds = |n: &Network| n.layers.iter().map(Layer::name).collect::<Vec<_>>();
            assert_eq!(kinds(w), kinds(&reference), "{head:?} bi {bidirectional}");
            let best = out.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
            assert!(best < 0.5, "{head:?} bi {bidirectional}: best validation loss {best}");
            // The exported weights reproduce the trained network's validation predictions.
            let idx: Vec<usize> = (0..val_d.len()).collect();
            let x = ndarray::Array3::from_shape_vec((16, 10, 4), val_d.features.clone()).unwrap();
            let (ours, reference) = (predict(w, &val_d, &idx).unwrap(), w.forward(x.view()));
            let max = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max <= 1e-5, "{head:?} bi {bidirectional}: {max}");
        }
    }

    /// [`synthetic`] with a file per segment: reals `spk__<i>`, fakes vocoder copies of the
    /// real before them (`copies` maps each to it).
    fn synthetic_pairs(n: usize, frames: usize, features: usize, seed: u64) -> (SplitData, CopySources) {
        let mut d = synthetic(n, frames, features, seed);
        let mut copies = CopySources::new();
        for i in 0..n {
            let dir = std::path::PathBuf::from(if d.labels[i] { "/d/training/fake" } else { "/d/training/real" });
            let name = if d.labels[i] {
                crate::data::naming::vocoded_clip("nv_istft_train", "wb", "istft", i / 2)
            } else {
                crate::data::naming::real_clip("spk", i, 0)
            };
            d.files.push(dir.join(name));
            d.file_of.push(i);
            d.sources.push("x".into());
            if d.labels[i] {
                copies.insert(d.files[i].clone(), d.files[i - 1].clone());
            }
        }
        (d, copies)
    }

    #[test]
    fn the_objectives_train_and_export_only_the_network() {
        let (train_d, copies) = synthetic_pairs(48, 10, 4, 1);
        let val_d = synthetic(16, 10, 4, 2);
        let plain = TrainConfig { hidden: 6, batch: 8, learning_rate: 1e-2, max_epochs: 10, ..TrainConfig::default() };
        let cfg = TrainConfig {
            paired_batches: true,
            family_weight: 0.5,
            oc_softmax: 0.5,
            pair_contrast: 0.5,
            ..plain.clone()
        };
        for head in [Head::Last, Head::Mean, Head::Attention] {
            let cfg = TrainConfig { head, ..cfg.clone() };
            let out = train_with(&train_d, &val_d, &cfg, &copies, |_| {}).unwrap();
            let w = &out.weights;
            // The same layers as the plain recipe: the family head and the OC direction stay behind.
            let reference = cfg.recipe(4).seeded(1);
            let kinds = |n: &Network| n.layers.iter().map(Layer::name).collect::<Vec<_>>();
            assert_eq!(kinds(w), kinds(&reference), "{head:?}");
            let best = out.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
            eprintln!("{head:?}: best validation loss {best}");
            assert!(best < 0.5, "{head:?}: best validation loss {best}");
            let idx: Vec<usize> = (0..val_d.len()).collect();
            let x = ndarray::Array3::from_shape_vec((16, 10, 4), val_d.features.clone()).unwrap();
            let (ours, reference) = (predict(w, &val_d, &idx).unwrap(), w.forward(x.view()));
            assert!(ours.iter().zip(&reference).all(|(a, b)| (a - b).abs() <= 1e-5), "{head:?}");
            // The objectives change what is learnt.
            let base = train_with(&train_d, &val_d, &TrainConfig { head, ..plain.clone() }, &copies, |_| {}).unwrap();
            assert_ne!(base.weights, out.weights, "{head:?}");
        }
        // Off, copies or not, training is what it was: the same weights.
        let a = train(&train_d, &val_d, &plain, |_| {}).unwrap();
        let b = train_with(&train_d, &val_d, &plain, &copies, |_| {}).unwrap();
        assert_eq!(a.weights, b.weights);
        // Settings that cannot work are refused with the flag's name.
        let bad = TrainConfig { pair_contrast: 0.5, ..plain.clone() };
        let e = train_with(&train_d, &val_d, &bad, &copies, |_| {}).err().unwrap();
        assert!(e.to_string().contains("--paired-batches"), "{e}");
        let bad = TrainConfig { oc_softmax: f64::NAN, ..plain };
        let e = train_with(&train_d, &val_d, &bad, &copies, |_| {}).err().unwrap();
        assert!(e.to_string().contains("--oc-softmax"), "{e}");
    }

    #[test]
    fn the_default_model_draws_its_initial_weights_as_before() {
        // The unidirectional last-state network is the original one: same parameters, same order.
        let cfg = TrainConfig { hidden: 3, head: Head::Last, bidirectional: false, ..TrainConfig::default() };
        let net = Net::new(&cfg.recipe(5).init(&mut Rng::new(4)), &Device::Cpu).unwrap();
        let vars: Vec<Vec<f32>> = net.vars().iter().map(|v| values(v).unwrap()).collect();
        let shapes: Vec<Vec<usize>> = net.vars().iter().map(|v| v.as_tensor().dims().to_vec()).collect();
        assert_eq!(shapes, vec![vec![5, 12], vec![3, 12], vec![12], vec![3, 1], vec![1]]);
        let mut rng = Rng::new(4);
        let s = 1.0 / 3f64.sqrt();
        let first: Vec<f32> = (0..60).map(|_| rng.range(-s, s) as f32).collect();
        let r: Vec<f32> = (0..36).map(|_| rng.range(-s, s) as f32).collect();
        let dw: Vec<f32> = (0..3).map(|_| rng.range(-s, s) as f32).collect();
        assert_eq!((&vars[0], &vars[1], &vars[3]), (&first, &r, &dw));
        assert_eq!(vars[2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(vars[4], [0.0]);
    }
}
