//! The one description of a classifier network: a list of [`Layer`]s with their parameters in
//! ONNX layout. Training (`model::train`, candle), export (`model::onnx`) and the plain f64
//! reference forward pass here all walk the same list, so a new architecture is a new list
//! (built with [`Builder`] or by hand), not new code in three places; only a new *kind* of
//! layer needs an arm in each of the three.
//!
//! Values between layers have one of three shapes ([`Shape`]): a sequence of frames
//! (`[batch, frames, C]`), a map (`[batch, channels, frames, height]`, for 2-D convolutions over
//! time and a feature axis) or a vector per segment (`[batch, W]`). The network reads
//! `[batch, frames, input]` and ends in a vector of width 1: the logit; the exported graph adds
//! the sigmoid (`fake_prob`).

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};

use crate::model::ExcitationBranch;
use crate::rng::Rng;

/// What flows between layers (batch axis left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `[frames, C]`.
    Seq(usize),
    /// `[channels, frames, height]`.
    Map { channels: usize, height: usize },
    /// `[W]`.
    Vec(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Max,
    Avg,
}

/// Which LSTM output the next layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LstmOutput {
    /// A vector: the final state of each direction (the backward direction's after the first
    /// frame), forward first: ONNX `Y_h`.
    Final,
    /// The sequence of states, each frame's directions side by side: ONNX `Y`.
    Sequence,
}

/// How [`Streams`] joins its parts' outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// Element-wise maximum (parts of equal shape; e.g. an OR of two detectors' logits).
    Max,
    /// Side by side along the channel (last) axis.
    Concat,
}

/// A convolution over time with "same" zero padding (`(kernel - 1) / 2` frames at both ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv1d {
    pub out: usize,
    /// Odd.
    pub kernel: usize,
    /// `[out, in, kernel]` row-major (ONNX `Conv`).
    pub w: Vec<f32>,
    /// `[out]`.
    pub b: Vec<f32>,
}

/// A 2-D convolution over (time, height) of a map, "same" zero padding on both axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    pub out: usize,
    /// `(time, height)`, both odd.
    pub kernel: (usize, usize),
    /// `[out, in, kt, kh]` row-major.
    pub w: Vec<f32>,
    /// `[out]`.
    pub b: Vec<f32>,
}

/// Non-overlapping pooling (stride = window, the remainder dropped). On a sequence only over
/// time (`height` must be 1); on a map over time and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub kind: PoolKind,
    pub time: usize,
    pub height: usize,
}

/// `y = W x + b`, per frame of a sequence or of a vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub out: usize,
    /// `[out, in]` row-major.
    pub w: Vec<f32>,
    /// `[out]`.
    pub b: Vec<f32>,
}

/// One LSTM layer, gate blocks in ONNX order i, o, f, c; `D` directions (forward first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lstm {
    pub hidden: usize,
    pub bidirectional: bool,
    pub output: LstmOutput,
    /// `[D, 4H, in]` row-major.
    pub w: Vec<f32>,
    /// `[D, 4H, H]`.
    pub r: Vec<f32>,
    /// `[D, 8H]`: per direction input biases (i, o, f, c) then recurrent biases.
    pub b: Vec<f32>,
}

impl Lstm {
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// Attention pooling of a sequence: a score `v . tanh(A x_t + a)` per frame, softmax over the
/// frames, the score-weighted sum of the frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    /// `A` `[K, C]` row-major.
    pub w: Vec<f32>,
    /// `a` `[K]`.
    pub b: Vec<f32>,
    /// `v` `[K]`.
    pub v: Vec<f32>,
}

/// One part of [`Streams`]: the input columns `from..to`, through its own layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub from: usize,
    pub to: usize,
    pub layers: Vec<Layer>,
}

/// Parallel parts over column ranges of a sequence, joined by `merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streams {
    pub parts: Vec<Stream>,
    pub merge: Merge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Each segment's mean frame subtracted (cepstral mean normalization: removes stationary
    /// channel coloration).
    CenterOverTime,
    Conv1d(Conv1d),
    Conv2d(Conv2d),
    Pool(Pool),
    /// A sequence `[frames, C]` as a one-channel map `[1, frames, C]`.
    ToMap,
    /// A map `[Ch, frames, H]` as a sequence `[frames, Ch * H]` (channel-major per frame).
    FromMap,
    Activation(Activation),
    Linear(Linear),
    Lstm(Lstm),
    /// The mean over frames of a sequence.
    MeanOverTime,
    Attention(Attention),
    /// `x + body(x)`; the body keeps the shape.
    Residual(Vec<Layer>),
    Streams(Streams),
    /// The excitation detector's logit (a vector of 1) from a sequence of its two columns
    /// (log-kurtosis, loud flag); fitted, not trained (`model::excitation`).
    Excitation(ExcitationBranch),
}

/// A classifier network: `[frames, input]` per segment -> one logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Floats per input frame.
    pub input: usize,
    pub layers: Vec<Layer>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn need(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what} holds {got} values, its shape says {want}")) }
}

/// Shape after `layers` from `shape`, with every parameter length checked.
pub fn infer(layers: &[Layer], mut shape: Shape) -> Result<Shape, String> {
    for (at, layer) in layers.iter().enumerate() {
        shape = layer.output_shape(shape).map_err(|e| format!("layer {at} ({}): {e}", layer.name()))?;
    }
    Ok(shape)
}

impl Layer {
    pub fn name(&self) -> &'static str {
        match self {
            Layer::CenterOverTime => "center_over_time",
            Layer::Conv1d(_) => "conv1d",
            Layer::Conv2d(_) => "conv2d",
            Layer::Pool(_) => "pool",
            Layer::ToMap => "to_map",
            Layer::FromMap => "from_map",
            Layer::Activation(_) => "activation",
            Layer::Linear(_) => "linear",
            Layer::Lstm(_) => "lstm",
            Layer::MeanOverTime => "mean_over_time",
            Layer::Attention(_) => "attention",
            Layer::Residual(_) => "residual",
            Layer::Streams(_) => "streams",
            Layer::Excitation(_) => "excitation",
        }
    }

    /// The shape this layer makes of `shape`, or why it cannot read it.
    pub fn output_shape(&self, shape: Shape) -> Result<Shape, String> {
        let seq = || match shape {
            Shape::Seq(c) => Ok(c),
            other => Err(format!("reads a sequence, got {other:?}")),
        };
        match self {
            Layer::Activation(_) => Ok(shape),
            Layer::CenterOverTime => seq().map(Shape::Seq),
            Layer::Conv1d(c) => {
                let input = seq()?;
                if c.kernel % 2 == 0 || c.out == 0 {
                    return Err(format!("kernel {} must be odd, channels {} > 0", c.kernel, c.out));
                }
                need("w", c.w.len(), c.out * input * c.kernel)?;
                need("b", c.b.len(), c.out)?;
                Ok(Shape::Seq(c.out))
            }
            Layer::Conv2d(c) => {
                let Shape::Map { channels, height } = shape else { return Err(format!("reads a map, got {shape:?}")) };
                if c.kernel.0 % 2 == 0 || c.kernel.1 % 2 == 0 || c.out == 0 {
                    return Err(format!("kernel {:?} must be odd on both axes, channels {} > 0", c.kernel, c.out));
                }
                need("w", c.w.len(), c.out * channels * c.kernel.0 * c.kernel.1)?;
                need("b", c.b.len(), c.out)?;
                Ok(Shape::Map { channels: c.out, height })
            }
            Layer::Pool(p) => {
                if p.time == 0 || p.height == 0 {
                    return Err("pooling windows must be at least 1".into());
                }
                match shape {
                    Shape::Seq(c) if p.height == 1 => Ok(Shape::Seq(c)),
                    Shape::Map { channels, height } if p.height <= height => {
                        Ok(Shape::Map { channels, height: height / p.height })
                    }
                    other => Err(format!("cannot pool {other:?} by {p:?}")),
                }
            }
            Layer::ToMap => Ok(Shape::Map { channels: 1, height: seq()? }),
            Layer::FromMap => match shape {
                Shape::Map { channels, height } => Ok(Shape::Seq(channels * height)),
                other => Err(format!("reads a map, got {other:?}")),
            },
            Layer::Linear(l) => {
                let input = match shape {
                    Shape::Seq(c) | Shape::Vec(c) => c,
                    other => return Err(format!("reads a sequence or a vector, got {other:?}")),
                };
                need("w", l.w.len(), l.out * input)?;
                need("b", l.b.len(), l.out)?;
                Ok(if matches!(shape, Shape::Seq(_)) { Shape::Seq(l.out) } else { Shape::Vec(l.out) })
            }
            Layer::Lstm(l) => {
                let (input, d, h) = (seq()?, l.directions(), l.hidden);
                need("w", l.w.len(), d * 4 * h * input)?;
                need("r", l.r.len(), d * 4 * h * h)?;
                need("b", l.b.len(), d * 8 * h)?;
                Ok(match l.output {
                    LstmOutput::Final => Shape::Vec(d * h),
                    LstmOutput::Sequence => Shape::Seq(d * h),
                })
            }
            Layer::MeanOverTime => seq().map(Shape::Vec),
            Layer::Attention(a) => {
                let c = seq()?;
                let k = a.b.len();
                if k == 0 {
                    return Err("attention without weights".into());
                }
                need("w", a.w.len(), k * c)?;
                need("v", a.v.len(), k)?;
                Ok(Shape::Vec(c))
            }
            Layer::Residual(body) => {
                let out = infer(body, shape)?;
                if out == shape { Ok(shape) } else { Err(format!("the body makes {out:?} of {shape:?}")) }
            }
            Layer::Streams(s) => {
                let c = seq()?;
                let mut outs = Vec::new();
                for part in &s.parts {
                    if part.from >= part.to || part.to > c {
                        return Err(format!("columns {}..{} of {c}", part.from, part.to));
                    }
                    outs.push(infer(&part.layers, Shape::Seq(part.to - part.from))?);
                }
                let first = *outs.first().ok_or("streams without parts")?;
                match s.merge {
                    Merge::Max if outs.iter().all(|o| *o == first) => Ok(first),
                    Merge::Concat if outs.iter().all(|o| matches!(o, Shape::Vec(_))) => {
                        Ok(Shape::Vec(outs.iter().map(|o| if let Shape::Vec(w) = o { *w } else { 0 }).sum()))
                    }
                    Merge::Concat if outs.iter().all(|o| matches!(o, Shape::Seq(_))) => {
                        Ok(Shape::Seq(outs.iter().map(|o| if let Shape::Seq(w) = o { *w } else { 0 }).sum()))
                    }
                    _ => Err(format!("cannot merge {outs:?} by {:?}", s.merge)),
                }
            }
            Layer::Excitation(e) => {
                if seq()? != 2 {
                    return Err(format!("reads the two excitation columns, got {shape:?}"));
                }
                if !(e.slope > 0.0
                    && e.slope.is_finite()
                    && e.center.is_finite()
                    && e.bias.is_finite()
                    && e.loud_mid.is_finite())
                {
                    return Err(format!("slope {} must be > 0 and every value finite", e.slope));
                }
                Ok(Shape::Vec(1))
            }
        }
    }

    /// Calls `f` on this layer and every layer inside it.
    fn visit_mut(&mut self, f: &mut impl FnMut(&mut Layer)) {
        f(self);
        match self {
            Layer::Residual(body) => body.iter_mut().for_each(|l| l.visit_mut(f)),
            Layer::Streams(s) => s.parts.iter_mut().flat_map(|p| p.layers.iter_mut()).for_each(|l| l.visit_mut(f)),
            _ => {}
        }
    }
}

/// Folds `p = sigmoid(a z + c)` into the layers that produce the logit `z`; false when the
/// last layer is not one it can fold into.
fn fold_platt(layers: &mut [Layer], a: f64, c: f64) -> bool {
    match layers.last_mut() {
        Some(Layer::Linear(l)) if l.out == 1 => {
            l.w.iter_mut().for_each(|w| *w = (f64::from(*w) * a) as f32);
            l.b[0] = (f64::from(l.b[0]) * a + c) as f32;
            true
        }
        Some(Layer::Excitation(e)) => {
            e.slope = (f64::from(e.slope) * a) as f32;
            e.bias = (f64::from(e.bias) * a + c) as f32;
            true
        }
        // a max(x, y) + c = max(a x + c, a y + c) for a > 0.
        Some(Layer::Streams(s)) if s.merge == Merge::Max && a > 0.0 => {
            s.parts.iter_mut().all(|p| fold_platt(&mut p.layers, a, c))
        }
        _ => false,
    }
}

impl Network {
    /// Checks every parameter's length and that the network ends in one logit.
    pub fn check(&self) -> Result<(), String> {
        match infer(&self.layers, Shape::Seq(self.input))? {
            Shape::Vec(1) => Ok(()),
            other => Err(format!("the network ends in {other:?}, not one logit (Vec(1))")),
        }
    }

    /// Calls `f` on every layer, nested ones included (tests scale weights with it).
    pub fn visit_mut(&mut self, mut f: impl FnMut(&mut Layer)) {
        self.layers.iter_mut().for_each(|l| l.visit_mut(&mut f));
    }

    /// Folds Platt scaling `sigmoid(a * z + c)` into the layers that make the logit `z`, so
    /// the exported graph outputs calibrated probabilities; where the last layer cannot take
    /// it (or the slope is not positive in front of a max), a 1 -> 1 linear layer is appended.
    pub fn calibrate(&mut self, platt: crate::model::calibrate::Platt) {
        let mut folded = self.clone();
        if fold_platt(&mut folded.layers, platt.a, platt.c) {
            *self = folded;
        } else {
            self.layers.push(Layer::Linear(Linear { out: 1, w: vec![platt.a as f32], b: vec![platt.c as f32] }));
        }
    }

    /// `lstm` beside the excitation detector: the LSTM network reads the first `lstm.input`
    /// columns, the branch the two after them, and the larger logit wins.
    pub fn with_excitation(lstm: Network, branch: ExcitationBranch) -> Network {
        let f = lstm.input;
        Network {
            input: f + 2,
            layers: vec![Layer::Streams(Streams {
                parts: vec![
                    Stream { from: 0, to: f, layers: lstm.layers },
                    Stream { from: f, to: f + 2, layers: vec![Layer::Excitation(branch)] },
                ],
                merge: Merge::Max,
            })],
        }
    }

    /// The excitation branch and the columns the other stream reads, when the network is
    /// [`Network::with_excitation`]'s.
    pub fn excitation(&self) -> Option<(&ExcitationBranch, usize)> {
        let [Layer::Streams(s)] = self.layers.as_slice() else { return None };
        let [lstm, exc] = s.parts.as_slice() else { return None };
        match exc.layers.as_slice() {
            [Layer::Excitation(e)] if s.merge == Merge::Max => Some((e, lstm.to - lstm.from)),
            _ => None,
        }
    }

    /// P(fake) for each sequence of a `[batch, frames, input]` input, in f64 (the reference the
    /// candle network and ONNX Runtime are checked against).
    pub fn forward(&self, x: ArrayView3<'_, f32>) -> Vec<f32> {
        x.outer_iter()
            .map(|seq| {
                let frames: Vec<Vec<f64>> =
                    seq.outer_iter().map(|f| f.iter().map(|&v| f64::from(v)).collect()).collect();
                match run(&self.layers, Value::Seq(frames)) {
                    Value::Vec(z) => sigmoid(z[0]) as f32,
                    _ => f32::NAN,
                }
            })
            .collect()
    }
}

/// One segment's value in the f64 reference.
#[derive(Debug, Clone)]
enum Value {
    /// `[frames][C]`.
    Seq(Vec<Vec<f64>>),
    /// `[channels][frames][height]`.
    Map(Vec<Vec<Vec<f64>>>),
    Vec(Vec<f64>),
}

fn run(layers: &[Layer], mut v: Value) -> Value {
    for layer in layers {
        v = apply(layer, v);
    }
    v
}

fn frames(v: Value) -> Vec<Vec<f64>> {
    match v {
        Value::Seq(s) => s,
        other => panic!("the reference expected a sequence, got {other:?} (Network::check first)"),
    }
}

fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
    }
}

fn apply(layer: &Layer, v: Value) -> Value {
    match layer {
        Layer::CenterOverTime => {
            let xs = frames(v);
            let n = xs.len().max(1) as f64;
            let c = xs.first().map_or(0, Vec::len);
            let mean: Vec<f64> = (0..c).map(|k| xs.iter().map(|f| f[k]).sum::<f64>() / n).collect();
            Value::Seq(xs.iter().map(|f| f.iter().zip(&mean).map(|(a, m)| a - m).collect()).collect())
        }
        Layer::Conv1d(c) => {
            let xs = frames(v);
            let (t, k, p) = (xs.len() as isize, c.kernel, ((c.kernel - 1) / 2) as isize);
            let fi = xs.first().map_or(0, Vec::len);
            Value::Seq(
                (0..t)
                    .map(|at| {
                        (0..c.out)
                            .map(|o| {
                                let mut z = f64::from(c.b[o]);
                                for j in 0..k {
                                    let src = at + j as isize - p;
                                    if (0..t).contains(&src) {
                                        let w = &c.w[o * fi * k..];
                                        let frame = &xs[src as usize];
                                        z += (0..fi).map(|q| f64::from(w[q * k + j]) * frame[q]).sum::<f64>();
                                    }
                                }
                                z
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
        Layer::Conv2d(c) => {
            let Value::Map(m) = v else { panic!("conv2d reads a map") };
            let (ci, t, h) = (m.len(), m[0].len() as isize, m[0].first().map_or(0, Vec::len) as isize);
            let (kt, kh) = c.kernel;
            let (pt, ph) = (((kt - 1) / 2) as isize, ((kh - 1) / 2) as isize);
            let out = (0..c.out)
                .map(|o| {
                    (0..t)
                        .map(|at| {
                            (0..h)
                                .map(|ah| {
                                    let mut z = f64::from(c.b[o]);
                                    for (i, plane) in m.iter().enumerate() {
                                        for jt in 0..kt {
                                            let st = at + jt as isize - pt;
                                            if !(0..t).contains(&st) {
                                                continue;
                                            }
                                            for jh in 0..kh {
                                                let sh = ah + jh as isize - ph;
                                                if (0..h).contains(&sh) {
                                                    let w = c.w[((o * ci + i) * kt + jt) * kh + jh];
                                                    z += f64::from(w) * plane[st as usize][sh as usize];
                                                }
                                            }
                                        }
                                    }
                                    z
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect();
            Value::Map(out)
        }
        Layer::Pool(p) => {
            let reduce = |xs: &mut dyn Iterator<Item = f64>| -> f64 {
                match p.kind {
                    PoolKind::Max => xs.fold(f64::NEG_INFINITY, f64::max),
                    PoolKind::Avg => {
                        let (s, n) = xs.fold((0.0, 0.0), |(s, n), x| (s + x, n + 1.0));
                        s / n
                    }
                }
            };
            match v {
                Value::Seq(xs) => {
                    let c = xs.first().map_or(0, Vec::len);
                    Value::Seq(
                        (0..xs.len() / p.time)
                            .map(|o| (0..c).map(|k| reduce(&mut (0..p.time).map(|j| xs[o * p.time + j][k]))).collect())
                            .collect(),
                    )
                }
                Value::Map(m) => Value::Map(
                    m.iter()
                        .map(|ch| {
                            let h = ch.first().map_or(0, Vec::len);
                            (0..ch.len() / p.time)
                                .map(|ot| {
                                    (0..h / p.height)
                                        .map(|oh| {
                                            reduce(&mut (0..p.time).flat_map(|jt| {
                                                (0..p.height).map(move |jh| ch[ot * p.time + jt][oh * p.height + jh])
                                            }))
                                        })
                                        .collect()
                                })
                                .collect()
                        })
                        .collect(),
                ),
                Value::Vec(_) => panic!("pooling reads a sequence or a map"),
            }
        }
        Layer::ToMap => Value::Map(vec![frames(v)]),
        Layer::FromMap => {
            let Value::Map(m) = v else { panic!("from_map reads a map") };
            let t = m.first().map_or(0, Vec::len);
            Value::Seq((0..t).map(|at| m.iter().flat_map(|ch| ch[at].iter().copied()).collect()).collect())
        }
        Layer::Activation(a) => match v {
            Value::Seq(xs) => Value::Seq(xs.into_iter().map(|f| f.into_iter().map(|x| act(*a, x)).collect()).collect()),
            Value::Map(m) => Value::Map(
                m.into_iter()
                    .map(|ch| ch.into_iter().map(|f| f.into_iter().map(|x| act(*a, x)).collect()).collect())
                    .collect(),
            ),
            Value::Vec(x) => Value::Vec(x.into_iter().map(|x| act(*a, x)).collect()),
        },
        Layer::Linear(l) => {
            let dense = |x: &[f64]| -> Vec<f64> {
                let n = x.len();
                (0..l.out)
                    .map(|o| (0..n).map(|i| f64::from(l.w[o * n + i]) * x[i]).sum::<f64>() + f64::from(l.b[o]))
                    .collect()
            };
            match v {
                Value::Seq(xs) => Value::Seq(xs.iter().map(|f| dense(f)).collect()),
                Value::Vec(x) => Value::Vec(dense(&x)),
                Value::Map(_) => panic!("linear reads a sequence or a vector"),
            }
        }
        Layer::Lstm(l) => {
            let xs = frames(v);
            let states: Vec<Vec<Vec<f64>>> = (0..l.directions()).map(|d| run_direction(l, d, &xs)).collect();
            match l.output {
                LstmOutput::Final => {
                    let mut out = states[0].last().cloned().unwrap_or_else(|| vec![0.0; l.hidden]);
                    if let Some(back) = states.get(1) {
                        out.extend(back.first().cloned().unwrap_or_else(|| vec![0.0; l.hidden]));
                    }
                    Value::Vec(out)
                }
                LstmOutput::Sequence => Value::Seq(
                    (0..xs.len()).map(|t| states.iter().flat_map(|s| s[t].iter().copied()).collect()).collect(),
                ),
            }
        }
        Layer::MeanOverTime => {
            let xs = frames(v);
            let c = xs.first().map_or(0, Vec::len);
            let n = xs.len().max(1) as f64;
            Value::Vec((0..c).map(|k| xs.iter().map(|f| f[k]).sum::<f64>() / n).collect())
        }
        Layer::Attention(a) => {
            let seq = frames(v);
            let (k, width) = (a.b.len(), seq.first().map_or(0, Vec::len));
            let scores: Vec<f64> = seq
                .iter()
                .map(|o| {
                    (0..k)
                        .map(|q| {
                            let z: f64 = (0..width).map(|j| f64::from(a.w[q * width + j]) * o[j]).sum::<f64>()
                                + f64::from(a.b[q]);
                            f64::from(a.v[q]) * z.tanh()
                        })
                        .sum()
                })
                .collect();
            let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
            let total: f64 = e.iter().sum();
            let mut pooled = vec![0f64; width];
            for (o, e) in seq.iter().zip(&e) {
                pooled.iter_mut().zip(o).for_each(|(acc, x)| *acc += e / total * x);
            }
            Value::Vec(pooled)
        }
        Layer::Residual(body) => add(v.clone(), run(body, v)),
        Layer::Streams(s) => {
            let xs = frames(v);
            let outs: Vec<Value> = s
                .parts
                .iter()
                .map(|p| run(&p.layers, Value::Seq(xs.iter().map(|f| f[p.from..p.to].to_vec()).collect())))
                .collect();
            let mut outs = outs.into_iter();
            let first = outs.next().expect("checked: at least one part");
            outs.fold(first, |acc, o| match (s.merge, acc, o) {
                (Merge::Max, Value::Vec(a), Value::Vec(b)) => {
                    Value::Vec(a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect())
                }
                (Merge::Max, Value::Seq(a), Value::Seq(b)) => Value::Seq(
                    a.iter().zip(&b).map(|(fa, fb)| fa.iter().zip(fb).map(|(x, y)| x.max(*y)).collect()).collect(),
                ),
                (Merge::Concat, Value::Vec(mut a), Value::Vec(b)) => {
                    a.extend(b);
                    Value::Vec(a)
                }
                (Merge::Concat, Value::Seq(a), Value::Seq(b)) => {
                    Value::Seq(a.into_iter().zip(b).map(|(fa, fb)| fa.into_iter().chain(fb).collect()).collect())
                }
                (m, a, b) => panic!("cannot merge {a:?} and {b:?} by {m:?}"),
            })
        }
        Layer::Excitation(e) => {
            let xs = frames(v);
            let stat = ExcitationBranch::segment_stat(e.loud_mid, xs.iter().map(|f| (f[0] as f32, f[1] as f32)));
            Value::Vec(vec![e.logit(stat)])
        }
    }
}

/// `a + b` element by element (a residual connection).
fn add(a: Value, b: Value) -> Value {
    let plus = |x: Vec<f64>, y: Vec<f64>| x.into_iter().zip(y).map(|(x, y)| x + y).collect::<Vec<f64>>();
    match (a, b) {
        (Value::Seq(a), Value::Seq(b)) => Value::Seq(a.into_iter().zip(b).map(|(x, y)| plus(x, y)).collect()),
        (Value::Map(a), Value::Map(b)) => Value::Map(
            a.into_iter().zip(b).map(|(x, y)| x.into_iter().zip(y).map(|(x, y)| plus(x, y)).collect()).collect(),
        ),
        (Value::Vec(a), Value::Vec(b)) => Value::Vec(plus(a, b)),
        (a, b) => panic!("residual of {a:?} and {b:?}"),
    }
}

/// Hidden states of direction `dir` for every frame, in frame order.
fn run_direction(l: &Lstm, dir: usize, xs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let hn = l.hidden;
    let f = xs.first().map_or(0, Vec::len);
    let (w, r) = (&l.w[dir * 4 * hn * f..], &l.r[dir * 4 * hn * hn..]);
    let b = &l.b[dir * 8 * hn..];
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

/// Builds a network layer by layer from its input width, drawing each layer's initial weights
/// as it is added (uniform, `±sqrt(6 / fan_in)` in front of a ReLU-style convolution,
/// `±1 / sqrt(fan_in)` elsewhere, zero biases; LSTM forget-gate biases 1).
pub struct Builder<'a> {
    rng: &'a mut Rng,
    shape: Shape,
    layers: Vec<Layer>,
    input: usize,
}

impl<'a> Builder<'a> {
    pub fn new(input: usize, rng: &'a mut Rng) -> Self {
        Self { rng, shape: Shape::Seq(input), layers: Vec::new(), input }
    }

    fn uniform(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| self.rng.range(-scale, scale) as f32).collect()
    }

    fn width(&self) -> usize {
        match self.shape {
            Shape::Seq(c) | Shape::Vec(c) => c,
            Shape::Map { channels, .. } => channels,
        }
    }

    /// Adds `layer` (shape-checked: a mistake in a recipe is a panic, as a typo in code is).
    pub fn push(mut self, layer: Layer) -> Self {
        self.shape = layer.output_shape(self.shape).unwrap_or_else(|e| panic!("{}: {e}", layer.name()));
        self.layers.push(layer);
        self
    }

    pub fn center(self) -> Self {
        self.push(Layer::CenterOverTime)
    }

    pub fn act(self, a: Activation) -> Self {
        self.push(Layer::Activation(a))
    }

    pub fn conv1d(mut self, out: usize, kernel: usize) -> Self {
        let fan_in = self.width() * kernel;
        let w = self.uniform(out * fan_in, (6.0 / fan_in as f64).sqrt());
        self.push(Layer::Conv1d(Conv1d { out, kernel, w, b: vec![0.0; out] }))
    }

    pub fn conv2d(mut self, out: usize, kernel: (usize, usize)) -> Self {
        let fan_in = self.width() * kernel.0 * kernel.1;
        let w = self.uniform(out * fan_in, (6.0 / fan_in as f64).sqrt());
        self.push(Layer::Conv2d(Conv2d { out, kernel, w, b: vec![0.0; out] }))
    }

    pub fn pool(self, kind: PoolKind, time: usize, height: usize) -> Self {
        self.push(Layer::Pool(Pool { kind, time, height }))
    }

    pub fn begin_map(self) -> Self {
        self.push(Layer::ToMap)
    }

    pub fn end_map(self) -> Self {
        self.push(Layer::FromMap)
    }

    pub fn linear(mut self, out: usize) -> Self {
        let fan_in = self.width();
        let w = self.uniform(out * fan_in, 1.0 / (fan_in as f64).sqrt());
        self.push(Layer::Linear(Linear { out, w, b: vec![0.0; out] }))
    }

    pub fn lstm(mut self, hidden: usize, bidirectional: bool, output: LstmOutput) -> Self {
        let (input, d) = (self.width(), if bidirectional { 2 } else { 1 });
        let s = 1.0 / (hidden as f64).sqrt();
        let w = self.uniform(d * 4 * hidden * input, s);
        let r = self.uniform(d * 4 * hidden * hidden, s);
        let mut b = vec![0f32; d * 8 * hidden];
        (0..d).for_each(|k| b[k * 8 * hidden + 2 * hidden..k * 8 * hidden + 3 * hidden].fill(1.0));
        self.push(Layer::Lstm(Lstm { hidden, bidirectional, output, w, r, b }))
    }

    pub fn mean_over_time(self) -> Self {
        self.push(Layer::MeanOverTime)
    }

    pub fn attention(mut self, dim: usize) -> Self {
        let c = self.width();
        let w = self.uniform(dim * c, 1.0 / (c as f64).sqrt());
        let v = self.uniform(dim, 1.0 / (dim as f64).sqrt());
        self.push(Layer::Attention(Attention { w, b: vec![0.0; dim], v }))
    }

    /// `x + body(x)`, the body built from the current shape.
    pub fn residual(self, body: impl FnOnce(Builder<'_>) -> Builder<'_>) -> Self {
        let inner = body(Builder { rng: &mut *self.rng, shape: self.shape, layers: Vec::new(), input: self.input });
        let layers = inner.layers;
        self.push(Layer::Residual(layers))
    }

    pub fn build(self) -> Network {
        let net = Network { input: self.input, layers: self.layers };
        if let Err(e) = net.check() {
            panic!("built network: {e}");
        }
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_and_a_network_ends_in_one_logit() {
        let mut rng = Rng::new(1);
        let net = Builder::new(6, &mut rng)
            .center()
            .begin_map()
            .conv2d(3, (3, 3))
            .act(Activation::Relu)
            .pool(PoolKind::Max, 1, 2)
            .end_map()
            .conv1d(5, 3)
            .residual(|b| b.conv1d(5, 3).act(Activation::Tanh))
            .pool(PoolKind::Avg, 2, 1)
            .lstm(4, true, LstmOutput::Sequence)
            .attention(3)
            .linear(1)
            .build();
        net.check().unwrap();
        let x =
            ndarray::Array3::from_shape_fn((2, 9, 6), |(b, t, f)| ((b * 31 + t * 7 + f * 3) % 11) as f32 * 0.2 - 1.0);
        let p = net.forward(x.view());
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{p:?}");
        // A wrong parameter length names the layer and the parameter.
        let mut bad = net.clone();
        bad.visit_mut(|l| {
            if let Layer::Lstm(l) = l {
                l.r.pop();
            }
        });
        let e = bad.check().unwrap_err();
        assert!(e.contains("lstm") && e.contains("r holds"), "{e}");
        // Not ending in one logit is refused.
        let open = Network { input: 6, layers: vec![Layer::MeanOverTime] };
        assert!(open.check().unwrap_err().contains("not one logit"));
    }

    #[test]
    fn pooling_and_map_layers_compute_what_they_say() {
        // [frames 4][2]: max over pairs of frames, then as a map, avg over the height of 2.
        let seq = Value::Seq(vec![vec![1.0, 2.0], vec![3.0, -1.0], vec![0.5, 0.0], vec![-2.0, 4.0]]);
        let Value::Seq(p) = apply(&Layer::Pool(Pool { kind: PoolKind::Max, time: 2, height: 1 }), seq.clone()) else {
            panic!()
        };
        assert_eq!(p, vec![vec![3.0, 2.0], vec![0.5, 4.0]]);
        let map = apply(&Layer::ToMap, seq);
        let Value::Map(m) = apply(&Layer::Pool(Pool { kind: PoolKind::Avg, time: 1, height: 2 }), map) else {
            panic!()
        };
        assert_eq!(m, vec![vec![vec![1.5], vec![1.0], vec![0.25], vec![1.0]]]);
        let Value::Seq(back) = apply(&Layer::FromMap, Value::Map(vec![vec![vec![1.0, 2.0]], vec![vec![3.0, 4.0]]]))
        else {
            panic!()
        };
        assert_eq!(back, vec![vec![1.0, 2.0, 3.0, 4.0]]);
    }
}
