//! ONNX export of the LSTM classifier: a standard graph any ONNX runtime can execute.
//!
//! `features [batch, frames, F]` -> [ReduceMean over frames + Sub, when the model normalizes
//! each segment's mean] -> Transpose(1,0,2) -> LSTM (time-major, layout 0: ORT's CPU
//! LSTM rejects layout 1; gates i,o,f,c) -> Squeeze(Y_h) -> Gemm(transB) -> Sigmoid ->
//! Squeeze -> `fake_prob [batch]`. IR 8, opset 17.

pub mod proto;

use prost::Message;
use vericlip_core::runtime::{INPUT_NAME, OUTPUT_NAME};

use crate::model::LstmClassifierWeights;
use proto::*;

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
    AttributeProto { name: name.into(), i, ints: vec![], r#type: attribute_type::INT }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), i: 0, ints: ints.to_vec(), r#type: attribute_type::INTS }
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

/// Serializes the classifier as an ONNX model; `metadata` lands in the model's metadata_props.
pub fn export_lstm_classifier(w: &LstmClassifierWeights, metadata: &[(&str, &str)]) -> Vec<u8> {
    let (h, f) = (w.hidden as i64, w.input as i64);
    let mut nodes = Vec::new();
    let lstm_input = if w.segment_mean_norm {
        nodes.push(node(
            "ReduceMean",
            &[INPUT_NAME],
            &["segment_mean"],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)],
        ));
        nodes.push(node("Sub", &[INPUT_NAME, "segment_mean"], &["x_centered"], vec![]));
        "x_centered"
    } else {
        INPUT_NAME
    };
    nodes.extend([
        node("Transpose", &[lstm_input], &["x_time_major"], vec![attr_ints("perm", &[1, 0, 2])]),
        node(
            "LSTM",
            &["x_time_major", "lstm_W", "lstm_R", "lstm_B"],
            &["lstm_Y", "lstm_Y_h"],
            vec![attr_int("hidden_size", h), attr_int("layout", 0)],
        ),
        node("Squeeze", &["lstm_Y_h", "axes_0"], &["last_hidden"], vec![]),
        node("Gemm", &["last_hidden", "dense_W", "dense_B"], &["logit"], vec![attr_int("transB", 1)]),
        node("Sigmoid", &["logit"], &["prob_column"], vec![]),
        node("Squeeze", &["prob_column", "axes_1"], &[OUTPUT_NAME], vec![]),
    ]);
    let graph = GraphProto {
        name: "vericlip_lstm".into(),
        node: nodes,
        initializer: vec![
            tensor_f32("lstm_W", &[1, 4 * h, f], &w.w),
            tensor_f32("lstm_R", &[1, 4 * h, h], &w.r),
            tensor_f32("lstm_B", &[1, 8 * h], &w.b),
            tensor_f32("dense_W", &[1, h], &w.dense_w),
            tensor_f32("dense_B", &[1], &[w.dense_b]),
            tensor_i64("axes_0", &[0]),
            tensor_i64("axes_1", &[1]),
        ],
        input: vec![value_info(
            INPUT_NAME,
            &[DimValue::Param("batch".into()), DimValue::Param("frames".into()), DimValue::Value(f)],
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
