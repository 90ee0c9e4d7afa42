//! ONNX export of the LSTM classifier: a standard graph any ONNX runtime can execute.
//!
//! `features [batch, frames, F]` -> [ReduceMean over frames + Sub, when the model normalizes
//! each segment's mean] -> Transpose(1,0,2) (with a conv front-end: Transpose(0,2,1) -> Conv
//! (1-D, `pads` (K-1)/2) -> Relu -> Transpose(2,0,1)) -> LSTM (time-major, layout 0: ORT's CPU
//! LSTM rejects layout 1; gates i,o,f,c; `direction="bidirectional"` for a BiLSTM) -> pooling
//! head -> `[batch, D*H]` -> Gemm(transB) -> Sigmoid -> Squeeze -> `fake_prob [batch]`.
//! IR 8, opset 17. Pooling heads (`D` = directions):
//! - last: Squeeze(Y_h) (D = 1), Transpose(1,0,2) + Reshape([0,-1]) of Y_h (D = 2);
//! - mean: ReduceMean(Y, axes 0) then as last;
//! - attention: Transpose(Y, 2,0,1,3) + Reshape([0,0,-1]) -> states `[batch, frames, D*H]`;
//!   MatMul(A^T) + Add(a) -> Tanh -> MatMul(v) -> Softmax(axis 1) -> Mul(states) -> ReduceSum(axis 1).
//!
//! With an excitation branch (`LstmClassifierWeights::excitation`) the input has two more
//! columns: Slice keeps the first `input` for the LSTM path above; the last two give the
//! segment statistic (Greater(flag, loud_mid) -> Cast -> Mul(kurtosis) -> ReduceSum over frames
//! / Max(ReduceSum(loud), 1)), its logit (Sub(center) -> Abs -> Mul(slope) -> Add(bias)), and
//! Max(LSTM logit, branch logit) goes to the Sigmoid.
//!
//! The last-state unidirectional graph is node for node the original export.

use prost::Message;
use vericlip_core::runtime::{INPUT_NAME, OUTPUT_NAME};

use crate::model::{Head, LstmClassifierWeights};
use vericlip_core::onnx::*;

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

/// `[D, B, H]` (LSTM `Y_h`, or `Y` reduced over time) -> `[B, D * H]` named `out`.
fn flatten_directions(nodes: &mut Vec<NodeProto>, input: &str, out: &str, directions: usize) {
    if directions == 1 {
        nodes.push(node("Squeeze", &[input, "axes_0"], &[out], vec![]));
    } else {
        let batch_major = format!("{input}_batch_major");
        nodes.push(node("Transpose", &[input], &[&batch_major], vec![attr_ints("perm", &[1, 0, 2])]));
        nodes.push(node("Reshape", &[&batch_major, "shape_keep1"], &[out], vec![]));
    }
}

/// Nodes and initializers, in the order the graph lists them.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
}

impl Graph {
    /// With the excitation branch the LSTM path reads the first `input` columns only; the
    /// branch's two columns are sliced off here. Returns the LSTM path's input.
    fn split_excitation(&mut self, w: &LstmClassifierWeights) -> &'static str {
        if w.excitation.is_none() {
            return INPUT_NAME;
        }
        let input = w.input as i64;
        self.nodes.push(node("Slice", &[INPUT_NAME, "exc_zero", "exc_start", "axes_2"], &["x_base"], vec![]));
        self.nodes.push(node("Slice", &[INPUT_NAME, "exc_start", "exc_flag_col", "axes_2"], &["exc_kurt"], vec![]));
        self.nodes.push(node("Slice", &[INPUT_NAME, "exc_flag_col", "exc_end", "axes_2"], &["exc_flag"], vec![]));
        self.initializer.extend([
            tensor_i64("exc_zero", &[0]),
            tensor_i64("exc_start", &[input]),
            tensor_i64("exc_flag_col", &[input + 1]),
            tensor_i64("exc_end", &[input + 2]),
            tensor_i64("axes_2", &[2]),
        ]);
        "x_base"
    }

    /// Cepstral mean normalization (each segment's mean frame subtracted) when the model has it.
    fn center(&mut self, w: &LstmClassifierWeights, base: &'static str) -> &'static str {
        if !w.segment_mean_norm {
            return base;
        }
        self.nodes.push(node(
            "ReduceMean",
            &[base],
            &["segment_mean"],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)],
        ));
        self.nodes.push(node("Sub", &[base, "segment_mean"], &["x_centered"], vec![]));
        "x_centered"
    }

    /// The LSTM over `x` (through the conv front-end when there is one), then the dense layer's
    /// weights.
    fn lstm(&mut self, w: &LstmClassifierWeights, x: &str) {
        let (h, f) = (w.hidden as i64, w.lstm_input() as i64);
        let (di, width) = (w.directions() as i64, w.directions() as i64 * h);
        let mut lstm_attrs = vec![attr_int("hidden_size", h), attr_int("layout", 0)];
        if w.bidirectional {
            lstm_attrs.push(attr_string("direction", "bidirectional"));
        }
        match &w.conv {
            // `[batch, F, frames]` for Conv, back to time-major `[frames, batch, C]` for the LSTM.
            Some(c) => {
                let (ch, k, pad) = (c.channels as i64, c.kernel as i64, c.pad() as i64);
                self.nodes.extend([
                    node("Transpose", &[x], &["x_channels"], vec![attr_ints("perm", &[0, 2, 1])]),
                    node(
                        "Conv",
                        &["x_channels", "conv_W", "conv_B"],
                        &["conv_out"],
                        vec![attr_ints("kernel_shape", &[k]), attr_ints("pads", &[pad, pad])],
                    ),
                    node("Relu", &["conv_out"], &["conv_relu"], vec![]),
                    node("Transpose", &["conv_relu"], &["x_time_major"], vec![attr_ints("perm", &[2, 0, 1])]),
                ]);
                self.initializer
                    .extend([tensor_f32("conv_W", &[ch, w.input as i64, k], &c.w), tensor_f32("conv_B", &[ch], &c.b)]);
            }
            None => self.nodes.push(node("Transpose", &[x], &["x_time_major"], vec![attr_ints("perm", &[1, 0, 2])])),
        }
        self.nodes.push(node(
            "LSTM",
            &["x_time_major", "lstm_W", "lstm_R", "lstm_B"],
            &["lstm_Y", "lstm_Y_h"],
            lstm_attrs,
        ));
        self.initializer.extend([
            tensor_f32("lstm_W", &[di, 4 * h, f], &w.w),
            tensor_f32("lstm_R", &[di, 4 * h, h], &w.r),
            tensor_f32("lstm_B", &[di, 8 * h], &w.b),
            tensor_f32("dense_W", &[1, width], &w.dense_w),
            tensor_f32("dense_B", &[1], &[w.dense_b]),
        ]);
    }

    /// The LSTM's outputs pooled by the head to `[batch, D * H]`, with the shape and axis
    /// constants the graph uses. Returns the pooled value's name.
    fn pool(&mut self, w: &LstmClassifierWeights) -> &'static str {
        let d = w.directions();
        let mut uses_axes_0 = d == 1;
        let pooled = match w.head {
            Head::Last => {
                // Y_h `[D, batch, H]`: the forward state after the last frame and the backward
                // state after the first.
                flatten_directions(&mut self.nodes, "lstm_Y_h", "last_hidden", d);
                "last_hidden"
            }
            Head::Mean => {
                // Y `[frames, D, batch, H]` -> mean over frames `[D, batch, H]`.
                self.nodes.push(node(
                    "ReduceMean",
                    &["lstm_Y"],
                    &["mean_hidden_dirs"],
                    vec![attr_ints("axes", &[0]), attr_int("keepdims", 0)],
                ));
                flatten_directions(&mut self.nodes, "mean_hidden_dirs", "mean_hidden", d);
                "mean_hidden"
            }
            Head::Attention => {
                self.attention(w);
                uses_axes_0 = false;
                "attn_pooled"
            }
        };
        if d == 2 && w.head != Head::Attention {
            self.initializer.push(tensor_i64("shape_keep1", &[0, -1]));
        }
        if uses_axes_0 {
            self.initializer.push(tensor_i64("axes_0", &[0]));
        }
        self.initializer.push(tensor_i64("axes_1", &[1]));
        pooled
    }

    /// Attention pooling: `attn_pooled` `[batch, D * H]`.
    fn attention(&mut self, w: &LstmClassifierWeights) {
        let (k, width) = (w.attention_dim() as i64, (w.directions() * w.hidden) as i64);
        // Y `[frames, D, batch, H]` -> `[batch, frames, D * H]`.
        self.nodes.push(node("Transpose", &["lstm_Y"], &["y_batch_major"], vec![attr_ints("perm", &[2, 0, 1, 3])]));
        self.nodes.push(node("Reshape", &["y_batch_major", "shape_keep2"], &["states"], vec![]));
        // score_t = v . tanh(A h_t + a): `[batch, frames, 1]`, softmax over frames.
        self.nodes.push(node("MatMul", &["states", "attn_At"], &["attn_proj"], vec![]));
        self.nodes.push(node("Add", &["attn_proj", "attn_a"], &["attn_pre"], vec![]));
        self.nodes.push(node("Tanh", &["attn_pre"], &["attn_hidden"], vec![]));
        self.nodes.push(node("MatMul", &["attn_hidden", "attn_v"], &["attn_score"], vec![]));
        self.nodes.push(node("Softmax", &["attn_score"], &["attn_weight"], vec![attr_int("axis", 1)]));
        // Weighted sum over frames: `[batch, D * H]`.
        self.nodes.push(node("Mul", &["states", "attn_weight"], &["attn_weighted"], vec![]));
        self.nodes.push(node(
            "ReduceSum",
            &["attn_weighted", "axes_1"],
            &["attn_pooled"],
            vec![attr_int("keepdims", 0)],
        ));
        let at = transpose(&w.attn_w, k as usize, width as usize);
        self.initializer.extend([
            tensor_f32("attn_At", &[width, k], &at),
            tensor_f32("attn_a", &[k], &w.attn_b),
            tensor_f32("attn_v", &[k, 1], &w.attn_v),
            tensor_i64("shape_keep2", &[0, 0, -1]),
        ]);
    }

    /// The excitation branch's logit beside the LSTM's `logit`; the larger wins. Returns the
    /// model's logit (`logit` itself without the branch).
    fn excitation_branch(&mut self, w: &LstmClassifierWeights) -> &'static str {
        let Some(e) = &w.excitation else { return "logit" };
        // `[batch, frames, 1]` -> `[batch, 1]` statistic -> logit; the larger logit wins.
        self.nodes.extend([
            node("Greater", &["exc_flag", "exc_loud_mid"], &["exc_loud_bool"], vec![]),
            node("Cast", &["exc_loud_bool"], &["exc_loud"], vec![attr_int("to", data_type::FLOAT as i64)]),
            node("Mul", &["exc_kurt", "exc_loud"], &["exc_kurt_loud"], vec![]),
            node("ReduceSum", &["exc_kurt_loud", "axes_1"], &["exc_sum"], vec![attr_int("keepdims", 0)]),
            node("ReduceSum", &["exc_loud", "axes_1"], &["exc_count"], vec![attr_int("keepdims", 0)]),
            node("Max", &["exc_count", "exc_one"], &["exc_count1"], vec![]),
            node("Div", &["exc_sum", "exc_count1"], &["exc_stat"], vec![]),
            node("Sub", &["exc_stat", "exc_center"], &["exc_dev"], vec![]),
            node("Abs", &["exc_dev"], &["exc_abs"], vec![]),
            node("Mul", &["exc_abs", "exc_slope"], &["exc_scaled"], vec![]),
            node("Add", &["exc_scaled", "exc_bias"], &["exc_logit"], vec![]),
            node("Max", &["logit", "exc_logit"], &["fused_logit"], vec![]),
        ]);
        self.initializer.extend([
            tensor_f32("exc_loud_mid", &[1], &[e.loud_mid]),
            tensor_f32("exc_one", &[1], &[1.0]),
            tensor_f32("exc_center", &[1], &[e.center]),
            tensor_f32("exc_slope", &[1], &[e.slope]),
            tensor_f32("exc_bias", &[1], &[e.bias]),
        ]);
        "fused_logit"
    }
}

/// Serializes the classifier as an ONNX model; `metadata` lands in the model's metadata_props.
///
/// Panics when the weights are inconsistent with their own shapes (`LstmClassifierWeights::check`).
pub fn export_lstm_classifier(w: &LstmClassifierWeights, metadata: &[(&str, &str)]) -> Vec<u8> {
    if let Err(e) = w.check() {
        panic!("exporting inconsistent classifier weights: {e}");
    }
    let mut g = Graph::default();
    let base = g.split_excitation(w);
    let x = g.center(w, base);
    g.lstm(w, x);
    let pooled = g.pool(w);
    g.nodes.push(node("Gemm", &[pooled, "dense_W", "dense_B"], &["logit"], vec![attr_int("transB", 1)]));
    let logit = g.excitation_branch(w);
    g.nodes.extend([
        node("Sigmoid", &[logit], &["prob_column"], vec![]),
        node("Squeeze", &["prob_column", "axes_1"], &[OUTPUT_NAME], vec![]),
    ]);
    let graph = GraphProto {
        name: "vericlip_lstm".into(),
        node: g.nodes,
        initializer: g.initializer,
        input: vec![value_info(
            INPUT_NAME,
            &[
                DimValue::Param("batch".into()),
                DimValue::Param("frames".into()),
                DimValue::Value(w.graph_input() as i64),
            ],
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

/// `[rows, cols]` row-major -> `[cols, rows]` row-major.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| m[r * cols + c])).collect()
}
