//! ONNX export of a [`Network`]: a standard graph any ONNX runtime can execute, built layer by
//! layer from the one description training also consumes.
//!
//! `features [batch, frames, F]` -> the layers -> logit `[batch, 1]` -> Sigmoid -> Squeeze ->
//! `fake_prob [batch]`. IR 8, opset 17, dynamic `batch` and `frames` axes. Each value keeps the
//! layout its producer made (a sequence as `[B, T, C]`, `[B, C, T]` after a `Conv`, `[T, B, C]`
//! for an LSTM, the LSTM's `Y` `[T, D, B, H]`); a layer that needs another inserts the
//! Transpose (and Reshape, for the directions of a BiLSTM) where it reads it, so the graph
//! has the moves the layers need and no more. Per layer:
//! - center over time: ReduceMean over frames (keepdims) + Sub;
//! - conv1d / conv2d: Conv (`pads` (K-1)/2 per axis), weights `[out, in, K...]`;
//! - pool: MaxPool / AveragePool, strides = window;
//! - to/from map: Unsqueeze(axis 1); Transpose(0,2,1,3) + Reshape([0,0,-1]);
//! - linear: Gemm(transB) on a vector, MatMul(W^T) + Add on a sequence;
//! - LSTM: time-major, layout 0 (ORT's CPU LSTM rejects layout 1), gates i,o,f,c,
//!   `direction="bidirectional"` for a BiLSTM; its final states from `Y_h` `[D, B, H]` (Squeeze,
//!   or Transpose(1,0,2) + Reshape([0,-1]) for two directions), its sequence from `Y`;
//! - mean over time: ReduceMean over the time axis;
//! - attention: MatMul(A^T) + Add(a) -> Tanh -> MatMul(v) -> Softmax(axis 1) -> Mul -> ReduceSum;
//! - residual: Add; streams: Slice per part, Max or Concat;
//! - excitation: Slice -> Greater(flag, loud_mid) -> Cast -> Mul(kurtosis) -> ReduceSum over
//!   frames / Max(ReduceSum(loud), 1) -> Sub(center) -> Abs -> Mul(slope) -> Add(bias).
//!
//! The trainer's default network ([`crate::model::LstmRecipe`], last state, unidirectional)
//! comes out node for node and initializer for initializer as the original hand-built graph of
//! the bundled versions (tested on them).

use std::collections::HashSet;

use prost::Message;
use vericlip_core::onnx::*;
use vericlip_core::runtime::{INPUT_NAME, OUTPUT_NAME};

use crate::model::network::{Activation, Layer, LstmOutput, Merge, Network, PoolKind, Shape};
use crate::model::transpose;

const IR_VERSION: i64 = 8;
const OPSET: i64 = 17;

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn tensor_i64(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![data.len() as i64],
        data_type: data_type::INT64,
        name: name.into(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs[0]),
        op_type: op.into(),
        attribute,
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: attribute_type::INT, ..Default::default() }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: attribute_type::STRING, ..Default::default() }
}

fn value_info(name: &str, dims: &[DimValue]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|d| Dimension { value: Some(d.clone()) }).collect(),
                }),
            }),
        }),
    }
}

/// Where a value's axes are (`B` batch, `T` frames, `C` channels or features).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[B, T, C]`.
    Btc,
    /// `[B, C, T]`.
    Bct,
    /// `[T, B, C]`.
    Tbc,
    /// An LSTM's `Y` `[T, D, B, H]`.
    Tdbh { directions: usize },
    /// `[B, Ch, T, H]`.
    Map,
    /// `[B, W]`.
    Bw,
}

#[derive(Debug, Clone)]
struct Value {
    name: String,
    layout: Layout,
}

/// The graph under construction: nodes, parameters (in layer order), shared constants (after
/// the parameters, in order of first use), and the value names taken.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    params: Vec<TensorProto>,
    consts: Vec<TensorProto>,
    names: HashSet<String>,
}

impl Graph {
    /// `base`, or `base_2`, `base_3`, ... when taken.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.names.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.names.insert(name.clone());
        name
    }

    fn push(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(node(op, inputs, &[output], attribute));
    }

    /// `op(inputs)` into a fresh value named after `base`.
    fn op(&mut self, op: &str, inputs: &[&str], base: &str, attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(base);
        self.push(op, inputs, &out, attribute);
        out
    }

    fn param(&mut self, base: &str, dims: &[i64], data: &[f32]) -> String {
        let name = self.fresh(base);
        self.params.push(tensor_f32(&name, dims, data));
        name
    }

    fn param_i64(&mut self, base: &str, data: &[i64]) -> String {
        let name = self.fresh(base);
        self.params.push(tensor_i64(&name, data));
        name
    }

    /// A shared int64 constant (`axes_0`, `shape_keep1`, ...), added on first use.
    fn constant(&mut self, name: &str, data: &[i64]) -> String {
        if !self.consts.iter().any(|t| t.name == name) {
            self.names.insert(name.to_string());
            self.consts.push(tensor_i64(name, data));
        }
        name.to_string()
    }

    fn transpose(&mut self, x: &str, perm: &[i64], base: &str) -> String {
        self.op("Transpose", &[x], base, vec![attr_ints("perm", perm)])
    }

    /// `x` as `[B, T, C]`.
    fn batch_major(&mut self, x: &Value) -> Value {
        let name = match x.layout {
            Layout::Btc => return x.clone(),
            Layout::Bct => self.transpose(&x.name, &[0, 2, 1], "x_frames"),
            Layout::Tbc => self.transpose(&x.name, &[1, 0, 2], "x_batch_major"),
            Layout::Tdbh { .. } => {
                let t = self.transpose(&x.name, &[2, 0, 1, 3], "y_batch_major");
                let shape = self.constant("shape_keep2", &[0, 0, -1]);
                self.op("Reshape", &[&t, &shape], "states", vec![])
            }
            Layout::Map | Layout::Bw => unreachable!("checked: not a sequence"),
        };
        Value { name, layout: Layout::Btc }
    }

    /// `x` as `[T, B, C]` (what the LSTM reads).
    fn time_major(&mut self, x: &Value) -> Value {
        let name = match x.layout {
            Layout::Tbc => return x.clone(),
            Layout::Btc => self.transpose(&x.name, &[1, 0, 2], "x_time_major"),
            Layout::Bct => self.transpose(&x.name, &[2, 0, 1], "x_time_major"),
            Layout::Tdbh { directions: 1 } => {
                let axes = self.constant("axes_1", &[1]);
                self.op("Squeeze", &[&x.name, &axes], "x_time_major", vec![])
            }
            Layout::Tdbh { .. } => {
                let t = self.transpose(&x.name, &[0, 2, 1, 3], "y_time_major");
                let shape = self.constant("shape_keep2", &[0, 0, -1]);
                self.op("Reshape", &[&t, &shape], "x_time_major", vec![])
            }
            Layout::Map | Layout::Bw => unreachable!("checked: not a sequence"),
        };
        Value { name, layout: Layout::Tbc }
    }

    /// `x` as `[B, C, T]` (what Conv and pooling read).
    fn channels_first(&mut self, x: &Value) -> Value {
        let name = match x.layout {
            Layout::Bct => return x.clone(),
            Layout::Btc => self.transpose(&x.name, &[0, 2, 1], "x_channels"),
            Layout::Tbc => self.transpose(&x.name, &[1, 2, 0], "x_channels"),
            Layout::Tdbh { .. } => {
                let btc = self.batch_major(x);
                self.transpose(&btc.name, &[0, 2, 1], "x_channels")
            }
            Layout::Map | Layout::Bw => unreachable!("checked: not a sequence"),
        };
        Value { name, layout: Layout::Bct }
    }

    /// `x` in `layout` (a residual's sum, a merge).
    fn in_layout(&mut self, x: &Value, layout: Layout) -> Value {
        match layout {
            Layout::Btc => self.batch_major(x),
            Layout::Bct => self.channels_first(x),
            Layout::Tbc => self.time_major(x),
            // Maps and vectors have one layout each.
            _ => x.clone(),
        }
    }

    /// `[D, B, H]` -> `[B, D * H]`.
    fn flatten_directions(&mut self, x: &str, directions: usize, base: &str) -> Value {
        let name = if directions == 1 {
            let axes = self.constant("axes_0", &[0]);
            self.op("Squeeze", &[x, &axes], base, vec![])
        } else {
            let t = self.transpose(x, &[1, 0, 2], &format!("{x}_batch_major"));
            let shape = self.constant("shape_keep1", &[0, -1]);
            self.op("Reshape", &[&t, &shape], base, vec![])
        };
        Value { name, layout: Layout::Bw }
    }

    fn layers(&mut self, layers: &[Layer], mut x: Value, mut shape: Shape) -> (Value, Shape) {
        for layer in layers {
            x = self.layer(layer, x, shape);
            shape = layer.output_shape(shape).expect("checked by Network::check");
        }
        (x, shape)
    }

    /// One layer's nodes reading `x` of `shape`; returns its output.
    fn layer(&mut self, layer: &Layer, x: Value, shape: Shape) -> Value {
        let width = match shape {
            Shape::Seq(c) | Shape::Vec(c) => c,
            Shape::Map { channels, .. } => channels,
        };
        match layer {
            Layer::CenterOverTime => {
                let x = self.batch_major(&x);
                let mean = self.op(
                    "ReduceMean",
                    &[&x.name],
                    "segment_mean",
                    vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)],
                );
                Value { name: self.op("Sub", &[&x.name, &mean], "x_centered", vec![]), layout: Layout::Btc }
            }
            Layer::Conv1d(c) => {
                let x = self.channels_first(&x);
                let (k, pad) = (c.kernel as i64, ((c.kernel - 1) / 2) as i64);
                let w = self.param("conv_W", &[c.out as i64, width as i64, k], &c.w);
                let b = self.param("conv_B", &[c.out as i64], &c.b);
                let attrs = vec![attr_ints("kernel_shape", &[k]), attr_ints("pads", &[pad, pad])];
                Value { name: self.op("Conv", &[&x.name, &w, &b], "conv_out", attrs), layout: Layout::Bct }
            }
            Layer::Conv2d(c) => {
                let (kt, kh) = (c.kernel.0 as i64, c.kernel.1 as i64);
                let (pt, ph) = ((kt - 1) / 2, (kh - 1) / 2);
                let w = self.param("conv2d_W", &[c.out as i64, width as i64, kt, kh], &c.w);
                let b = self.param("conv2d_B", &[c.out as i64], &c.b);
                let attrs = vec![attr_ints("kernel_shape", &[kt, kh]), attr_ints("pads", &[pt, ph, pt, ph])];
                Value { name: self.op("Conv", &[&x.name, &w, &b], "conv2d_out", attrs), layout: Layout::Map }
            }
            Layer::Pool(p) => {
                let op = match p.kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Avg => "AveragePool",
                };
                let (x, window) = if x.layout == Layout::Map {
                    (x, vec![p.time as i64, p.height as i64])
                } else {
                    (self.channels_first(&x), vec![p.time as i64])
                };
                let attrs = vec![attr_ints("kernel_shape", &window), attr_ints("strides", &window)];
                Value { name: self.op(op, &[&x.name], "pooled", attrs), layout: x.layout }
            }
            Layer::ToMap => {
                let x = self.batch_major(&x);
                let axes = self.constant("axes_1", &[1]);
                Value { name: self.op("Unsqueeze", &[&x.name, &axes], "map", vec![]), layout: Layout::Map }
            }
            Layer::FromMap => {
                let t = self.transpose(&x.name, &[0, 2, 1, 3], "map_frames");
                let keep = self.constant("shape_keep2", &[0, 0, -1]);
                Value { name: self.op("Reshape", &[&t, &keep], "map_flat", vec![]), layout: Layout::Btc }
            }
            Layer::Activation(a) => {
                let op = match a {
                    Activation::Relu => "Relu",
                    Activation::Sigmoid => "Sigmoid",
                    Activation::Tanh => "Tanh",
                };
                let base = format!("{}_{}", x.name, op.to_lowercase());
                Value { name: self.op(op, &[&x.name], &base, vec![]), layout: x.layout }
            }
            Layer::Linear(l) => {
                let (out, input) = (l.out as i64, width as i64);
                if x.layout == Layout::Bw {
                    let w = self.param("dense_W", &[out, input], &l.w);
                    let b = self.param("dense_B", &[out], &l.b);
                    let y = self.op("Gemm", &[&x.name, &w, &b], "dense_out", vec![attr_int("transB", 1)]);
                    Value { name: y, layout: Layout::Bw }
                } else {
                    // Per frame: channels last.
                    let x = if x.layout == Layout::Tbc { x } else { self.batch_major(&x) };
                    let wt = transpose(&l.w, l.out, width);
                    let w = self.param("frame_dense_Wt", &[input, out], &wt);
                    let b = self.param("frame_dense_B", &[out], &l.b);
                    let p = self.op("MatMul", &[&x.name, &w], "frame_dense_proj", vec![]);
                    Value { name: self.op("Add", &[&p, &b], "frame_dense_out", vec![]), layout: x.layout }
                }
            }
            Layer::Lstm(l) => {
                let x = self.time_major(&x);
                let (h, d) = (l.hidden as i64, l.directions() as i64);
                let mut attrs = vec![attr_int("hidden_size", h), attr_int("layout", 0)];
                if l.bidirectional {
                    attrs.push(attr_string("direction", "bidirectional"));
                }
                let (y, y_h) = (self.fresh("lstm_Y"), self.fresh("lstm_Y_h"));
                let w = self.param("lstm_W", &[d, 4 * h, width as i64], &l.w);
                let r = self.param("lstm_R", &[d, 4 * h, h], &l.r);
                let b = self.param("lstm_B", &[d, 8 * h], &l.b);
                self.nodes.push(node("LSTM", &[&x.name, &w, &r, &b], &[&y, &y_h], attrs));
                match l.output {
                    LstmOutput::Final => self.flatten_directions(&y_h, l.directions(), "last_hidden"),
                    LstmOutput::Sequence => Value { name: y, layout: Layout::Tdbh { directions: l.directions() } },
                }
            }
            Layer::MeanOverTime => {
                let reduce = |g: &mut Self, x: &str, axis: i64, base: &str| {
                    g.op("ReduceMean", &[x], base, vec![attr_ints("axes", &[axis]), attr_int("keepdims", 0)])
                };
                match x.layout {
                    Layout::Tdbh { directions } => {
                        let dirs = reduce(self, &x.name, 0, "mean_hidden_dirs");
                        self.flatten_directions(&dirs, directions, "mean_hidden")
                    }
                    Layout::Btc => Value { name: reduce(self, &x.name, 1, "mean_hidden"), layout: Layout::Bw },
                    Layout::Bct => Value { name: reduce(self, &x.name, 2, "mean_hidden"), layout: Layout::Bw },
                    Layout::Tbc => Value { name: reduce(self, &x.name, 0, "mean_hidden"), layout: Layout::Bw },
                    Layout::Map | Layout::Bw => unreachable!("checked: a sequence"),
                }
            }
            Layer::Attention(a) => {
                let states = self.batch_major(&x);
                let k = a.b.len();
                let at = self.param("attn_At", &[width as i64, k as i64], &transpose(&a.w, k, width));
                let ab = self.param("attn_a", &[k as i64], &a.b);
                let v = self.param("attn_v", &[k as i64, 1], &a.v);
                // score_t = v . tanh(A h_t + a): `[batch, frames, 1]`, softmax over frames.
                let proj = self.op("MatMul", &[&states.name, &at], "attn_proj", vec![]);
                let pre = self.op("Add", &[&proj, &ab], "attn_pre", vec![]);
                let hidden = self.op("Tanh", &[&pre], "attn_hidden", vec![]);
                let score = self.op("MatMul", &[&hidden, &v], "attn_score", vec![]);
                let weight = self.op("Softmax", &[&score], "attn_weight", vec![attr_int("axis", 1)]);
                let weighted = self.op("Mul", &[&states.name, &weight], "attn_weighted", vec![]);
                let axes = self.constant("axes_1", &[1]);
                let pooled = self.op("ReduceSum", &[&weighted, &axes], "attn_pooled", vec![attr_int("keepdims", 0)]);
                Value { name: pooled, layout: Layout::Bw }
            }
            Layer::Residual(body) => {
                // An LSTM's `Y` is added in the batch-major layout.
                let x = if matches!(x.layout, Layout::Tdbh { .. }) { self.batch_major(&x) } else { x };
                let (y, _) = self.layers(body, x.clone(), shape);
                let y = self.in_layout(&y, x.layout);
                Value { name: self.op("Add", &[&x.name, &y.name], "residual", vec![]), layout: x.layout }
            }
            Layer::Streams(s) => {
                let x = self.batch_major(&x);
                let axes = self.constant("axes_2", &[2]);
                let mut outs = Vec::new();
                for part in &s.parts {
                    let from = self.param_i64("stream_from", &[part.from as i64]);
                    let to = self.param_i64("stream_to", &[part.to as i64]);
                    let cols = self.op("Slice", &[&x.name, &from, &to, &axes], "stream", vec![]);
                    let cols = Value { name: cols, layout: Layout::Btc };
                    outs.push(self.layers(&part.layers, cols, Shape::Seq(part.to - part.from)).0);
                }
                let layout = match outs[0].layout {
                    Layout::Bw => Layout::Bw,
                    Layout::Map => Layout::Map,
                    _ => Layout::Btc,
                };
                let ins: Vec<Value> = outs.iter().map(|v| self.in_layout(v, layout)).collect();
                let names: Vec<&str> = ins.iter().map(|v| v.name.as_str()).collect();
                let name = match s.merge {
                    Merge::Max => self.op("Max", &names, "merged", vec![]),
                    Merge::Concat => {
                        let axis = if layout == Layout::Bw { 1 } else { 2 };
                        self.op("Concat", &names, "merged", vec![attr_int("axis", axis)])
                    }
                };
                Value { name, layout }
            }
            Layer::Excitation(e) => {
                let x = self.batch_major(&x);
                let axes2 = self.constant("axes_2", &[2]);
                let (zero, one, two) = (
                    self.param_i64("exc_col0", &[0]),
                    self.param_i64("exc_col1", &[1]),
                    self.param_i64("exc_col2", &[2]),
                );
                let kurt = self.op("Slice", &[&x.name, &zero, &one, &axes2], "exc_kurt", vec![]);
                let flag = self.op("Slice", &[&x.name, &one, &two, &axes2], "exc_flag", vec![]);
                let mid = self.param("exc_loud_mid", &[1], &[e.loud_mid]);
                let unit = self.param("exc_one", &[1], &[1.0]);
                let center = self.param("exc_center", &[1], &[e.center]);
                let slope = self.param("exc_slope", &[1], &[e.slope]);
                let bias = self.param("exc_bias", &[1], &[e.bias]);
                let axes1 = self.constant("axes_1", &[1]);
                // `[batch, frames, 1]` -> `[batch, 1]` statistic -> logit.
                let loud_bool = self.op("Greater", &[&flag, &mid], "exc_loud_bool", vec![]);
                let loud = self.op("Cast", &[&loud_bool], "exc_loud", vec![attr_int("to", data_type::FLOAT as i64)]);
                let kl = self.op("Mul", &[&kurt, &loud], "exc_kurt_loud", vec![]);
                let sum = self.op("ReduceSum", &[&kl, &axes1], "exc_sum", vec![attr_int("keepdims", 0)]);
                let count = self.op("ReduceSum", &[&loud, &axes1], "exc_count", vec![attr_int("keepdims", 0)]);
                let count1 = self.op("Max", &[&count, &unit], "exc_count1", vec![]);
                let stat = self.op("Div", &[&sum, &count1], "exc_stat", vec![]);
                let dev = self.op("Sub", &[&stat, &center], "exc_dev", vec![]);
                let abs = self.op("Abs", &[&dev], "exc_abs", vec![]);
                let scaled = self.op("Mul", &[&abs, &slope], "exc_scaled", vec![]);
                Value { name: self.op("Add", &[&scaled, &bias], "exc_logit", vec![]), layout: Layout::Bw }
            }
        }
    }
}

/// Serializes `net` as an ONNX model; `metadata` lands in the model's metadata_props.
///
/// Panics when the network is inconsistent with its own shapes (`Network::check`): the trainer
/// only exports networks it built and checked.
pub fn export_network(net: &Network, metadata: &[(&str, &str)]) -> Vec<u8> {
    if let Err(e) = net.check() {
        panic!("exporting an inconsistent network: {e}");
    }
    let mut g = Graph::default();
    for reserved in [INPUT_NAME, OUTPUT_NAME, "logit", "prob_column"] {
        g.names.insert(reserved.to_string());
    }
    let input = Value { name: INPUT_NAME.to_string(), layout: Layout::Btc };
    let (logit, _) = g.layers(&net.layers, input, Shape::Seq(net.input));
    // The logit is named `logit` whatever layer made it (as the graph always named it).
    for n in &mut g.nodes {
        n.output.iter_mut().chain(n.input.iter_mut()).filter(|v| **v == logit.name).for_each(|v| *v = "logit".into());
    }
    let axes = g.constant("axes_1", &[1]);
    g.push("Sigmoid", &["logit"], "prob_column", vec![]);
    g.push("Squeeze", &["prob_column", &axes], OUTPUT_NAME, vec![]);
    for n in &mut g.nodes {
        n.name = format!("{}_{}", n.op_type, n.output[0]);
    }
    let mut initializer = g.params;
    initializer.extend(g.consts);
    let graph = GraphProto {
        name: "vericlip_lstm".into(),
        node: g.nodes,
        initializer,
        input: vec![value_info(
            INPUT_NAME,
            &[DimValue::Param("batch".into()), DimValue::Param("frames".into()), DimValue::Value(net.input as i64)],
        )],
        output: vec![value_info(OUTPUT_NAME, &[DimValue::Param("batch".into())])],
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "vericlip-train".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        model_version: 1,
        doc_string: "Vericlip real/synthetic speech classifier: P(fake) per 2 s segment".into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
            .collect(),
    };
    model.encode_to_vec()
}
