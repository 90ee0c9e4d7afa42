//! The serving contract of a model, checked in one place: one input `features`, float32
//! `[batch, frames, n_features]` with the feature spec's frames and features (fixed or
//! symbolic) and a dynamic batch; an output `fake_prob`, float32 `[batch]` or `[batch, 1]`.
//! [`check_onnx`] reads what an ONNX file declares (before ONNX Runtime is asked to load it,
//! so the error can say what to change); [`check_manifest`] checks a manifest's recorded input
//! against its own feature spec. `vericlip-train import` refuses a model on either; the
//! service refuses to load such a version.

use serde::Serialize;
use thiserror::Error;

use super::{Dim, Manifest};
use crate::FeatureSpec;
use crate::onnx::{DimValue, ModelProto, ValueInfoProto, data_type};
use crate::runtime::{INPUT_NAME, OUTPUT_NAME};

/// How to give a model the names Vericlip needs.
pub const RENAME_HINT: &str = "name them when exporting: torch.onnx.export(..., input_names=[\"features\"], \
     output_names=[\"fake_prob\"], dynamic_axes={\"features\": {0: \"batch\"}, \"fake_prob\": {0: \"batch\"}}); \
     tf2onnx: --rename-inputs/--rename-outputs";

/// How a model breaks the contract; each message says what was found and what is needed.
#[derive(Debug, Error)]
pub enum ContractError {
    #[error("not an ONNX model (protobuf: {0})")]
    NotOnnx(String),
    #[error("not an ONNX model: it has no graph")]
    NoGraph,
    #[error("the model takes {count} inputs ({declared}); Vericlip feeds exactly one: {need}")]
    InputCount { count: usize, declared: String, need: String },
    #[error("the model's input is `{declared}`; Vericlip feeds {need}: {RENAME_HINT}")]
    InputName { declared: String, need: String },
    #[error("the model has no output `{OUTPUT_NAME}` (its outputs: {declared}); Vericlip reads {need}: {RENAME_HINT}")]
    NoOutput { declared: String, need: String },
    #[error("the model's input `{declared}` does not fit: {}; Vericlip feeds {need}", problems.join("; "))]
    Input { declared: String, problems: Vec<String>, need: String },
    #[error("the model's output `{declared}` does not fit: {}; Vericlip reads {need}", problems.join("; "))]
    Output { declared: String, problems: Vec<String>, need: String },
    #[error("input shape {shape:?} does not match the feature spec ([batch, {frames}, {n_features}])")]
    ManifestShape { shape: Vec<Dim>, frames: usize, n_features: usize },
}

/// What an ONNX file declares, once it fits the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Declared {
    /// `producer_name producer_version`, trimmed.
    pub producer: String,
    pub ir_version: i64,
    /// `domain:version` of every imported opset (`ai.onnx` for the default domain).
    pub opsets: Vec<String>,
    /// The input as declared, e.g. `features [N, 126, 96] float32`.
    pub input: String,
    /// The output as declared, e.g. `fake_prob [N] float32`.
    pub output: String,
    /// Whether the output is `[batch, 1]` (else `[batch]`, or undeclared).
    #[serde(skip)]
    pub output_2d: bool,
}

fn elem_type_name(t: i32) -> String {
    match t {
        1 => "float32".into(),
        2 => "uint8".into(),
        3 => "int8".into(),
        5 => "int16".into(),
        6 => "int32".into(),
        7 => "int64".into(),
        9 => "bool".into(),
        10 => "float16".into(),
        11 => "float64".into(),
        16 => "bfloat16".into(),
        0 => "of unknown type".into(),
        t => format!("of element type {t}"),
    }
}

/// `None`: no shape declared. A dimension is `Ok(size)` when fixed, `Err(name)` when symbolic
/// (`"?"` when it has neither).
type Dims = Option<Vec<Result<i64, String>>>;

fn dims(v: &ValueInfoProto) -> Dims {
    let shape = v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(DimValue::Value(n)) => Ok(*n),
                Some(DimValue::Param(p)) if !p.is_empty() => Err(p.clone()),
                _ => Err("?".into()),
            })
            .collect(),
    )
}

fn elem_type(v: &ValueInfoProto) -> i32 {
    v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).map_or(0, |t| t.elem_type)
}

fn show_dim(d: &Result<i64, String>) -> String {
    d.as_ref().map_or_else(Clone::clone, i64::to_string)
}

fn show_dims(d: &Dims) -> String {
    match d {
        None => "[no shape declared]".into(),
        Some(d) => format!("[{}]", d.iter().map(show_dim).collect::<Vec<_>>().join(", ")),
    }
}

fn show(v: &ValueInfoProto) -> String {
    format!("{} {} {}", v.name, show_dims(&dims(v)), elem_type_name(elem_type(v)))
}

/// Checks the declared input and output of the ONNX model `onnx` against the contract and
/// `spec`.
pub fn check_onnx(onnx: &[u8], spec: &FeatureSpec) -> Result<Declared, ContractError> {
    use prost::Message;
    let (frames, n_features) = (spec.frames_per_segment() as i64, spec.n_features() as i64);
    let need_in = format!("{INPUT_NAME} [batch, {frames}, {n_features}] float32 (batch dynamic)");
    let need_out = format!("{OUTPUT_NAME} [batch] or [batch, 1] float32, P(fake) in 0..1");
    let model = ModelProto::decode(onnx).map_err(|e| ContractError::NotOnnx(e.to_string()))?;
    let graph = model.graph.as_ref().ok_or(ContractError::NoGraph)?;
    // Before IR 4 initializers were listed as inputs too: they are not fed.
    let inputs: Vec<&ValueInfoProto> =
        graph.input.iter().filter(|i| !graph.initializer.iter().any(|t| t.name == i.name)).collect();
    let [input] = inputs.as_slice() else {
        return Err(ContractError::InputCount {
            count: inputs.len(),
            declared: inputs.iter().map(|i| show(i)).collect::<Vec<_>>().join("; "),
            need: need_in,
        });
    };
    if input.name != INPUT_NAME {
        return Err(ContractError::InputName { declared: show(input), need: need_in });
    }
    let Some(output) = graph.output.iter().find(|o| o.name == OUTPUT_NAME) else {
        return Err(ContractError::NoOutput {
            declared: graph.output.iter().map(show).collect::<Vec<_>>().join("; "),
            need: need_out,
        });
    };
    let problems = input_problems(input, frames, n_features);
    if !problems.is_empty() {
        return Err(ContractError::Input { declared: show(input), problems, need: need_in });
    }
    let (problems, output_2d) = output_problems(output);
    if !problems.is_empty() {
        return Err(ContractError::Output { declared: show(output), problems, need: need_out });
    }
    if graph.output.len() > 1 {
        tracing::warn!(
            outputs = graph.output.len(),
            "the model has outputs besides `{OUTPUT_NAME}`; they are computed and ignored"
        );
    }
    Ok(Declared {
        producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
        ir_version: model.ir_version,
        opsets: model
            .opset_import
            .iter()
            .map(|o| format!("{}:{}", if o.domain.is_empty() { "ai.onnx" } else { &o.domain }, o.version))
            .collect(),
        input: show(input),
        output: show(output),
        output_2d,
    })
}

/// What is wrong with the declared input (nothing when its shape is not declared: running it
/// decides).
fn input_problems(input: &ValueInfoProto, frames: i64, n_features: i64) -> Vec<String> {
    let mut wrong = Vec::new();
    if elem_type(input) != data_type::FLOAT {
        wrong.push(format!("its element type is {}, not float32", elem_type_name(elem_type(input))));
    }
    match &dims(input) {
        None => {}
        Some(d) if d.len() != 3 => wrong.push(format!("it has {} dimensions, not 3", d.len())),
        Some(d) => {
            if let Ok(b) = d[0] {
                wrong.push(format!(
                    "its batch dimension is fixed at {b}; the server batches segments, so it must be dynamic"
                ));
            }
            if matches!(d[1], Ok(f) if f != frames) {
                wrong.push(format!("it has {} frames, the feature spec {frames}", show_dim(&d[1])));
            }
            if matches!(d[2], Ok(f) if f != n_features) {
                wrong.push(format!("it has {} features per frame, the feature spec {n_features}", show_dim(&d[2])));
            }
        }
    }
    wrong
}

/// What is wrong with the declared output, and whether it is `[batch, 1]`.
fn output_problems(output: &ValueInfoProto) -> (Vec<String>, bool) {
    let mut wrong = Vec::new();
    if elem_type(output) != data_type::FLOAT {
        wrong.push(format!("its element type is {}, not float32", elem_type_name(elem_type(output))));
    }
    let mut output_2d = false;
    match &dims(output) {
        None => {}
        Some(d) if d.is_empty() || d.len() > 2 => {
            wrong.push(format!("it has {} dimensions, not 1 ([batch]) or 2 ([batch, 1])", d.len()));
        }
        Some(d) => {
            if let Ok(b) = d[0] {
                wrong.push(format!("its batch dimension is fixed at {b}; it must be dynamic"));
            }
            if d.len() == 2 {
                output_2d = true;
                if matches!(d[1], Ok(n) if n != 1) {
                    wrong.push(format!("its second dimension is {}, not 1 (one P(fake) per segment)", show_dim(&d[1])));
                }
            }
        }
    }
    (wrong, output_2d)
}

/// The manifest's recorded input must be `[batch, frames, n_features]` of its own feature spec.
pub fn check_manifest(manifest: &Manifest) -> Result<(), ContractError> {
    let spec = &manifest.feature_spec;
    let (frames, n_features) = (spec.frames_per_segment(), spec.n_features());
    let dims = &manifest.input.shape;
    let fixed = |d: &Dim, want: usize| matches!(d, Dim::Fixed(n) if *n as usize == want);
    if dims.len() != 3 || !fixed(&dims[1], frames) || !fixed(&dims[2], n_features) {
        return Err(ContractError::ManifestShape { shape: dims.clone(), frames, n_features });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::onnx::{Dimension, GraphProto, TensorShapeProto, TensorTypeProto, TypeProto};
    use crate::registry::Provenance;
    use crate::{FeatureSpec, Normalizer};

    fn tensor(name: &str, elem_type: i32, dims: &[DimValue]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type,
                    shape: Some(TensorShapeProto {
                        dim: dims.iter().map(|d| Dimension { value: Some(d.clone()) }).collect(),
                    }),
                }),
            }),
        }
    }

    fn model(input: ValueInfoProto, output: ValueInfoProto) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            producer_name: "test".into(),
            graph: Some(GraphProto { input: vec![input], output: vec![output], ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn batch() -> DimValue {
        DimValue::Param("batch".into())
    }

    #[test]
    fn the_contract_accepts_the_standard_shapes_and_names_what_does_not_fit() {
        let spec = FeatureSpec::default();
        let good_in = || tensor(INPUT_NAME, 1, &[batch(), DimValue::Value(126), DimValue::Value(96)]);
        let d = check_onnx(&model(good_in(), tensor(OUTPUT_NAME, 1, &[batch()])), &spec).unwrap();
        assert_eq!(d.input, "features [batch, 126, 96] float32");
        assert!(!d.output_2d);
        let d = check_onnx(&model(good_in(), tensor(OUTPUT_NAME, 1, &[batch(), DimValue::Value(1)])), &spec).unwrap();
        assert!(d.output_2d);

        let e = check_onnx(&model(tensor("input_1", 1, &[batch()]), tensor(OUTPUT_NAME, 1, &[batch()])), &spec)
            .unwrap_err();
        assert!(matches!(e, ContractError::InputName { .. }) && e.to_string().contains("input_names"), "{e}");
        let fixed_batch = tensor(INPUT_NAME, 1, &[DimValue::Value(4), DimValue::Value(126), DimValue::Value(40)]);
        let e = check_onnx(&model(fixed_batch, tensor(OUTPUT_NAME, 1, &[batch()])), &spec).unwrap_err().to_string();
        assert!(e.contains("fixed at 4") && e.contains("40 features per frame, the feature spec 96"), "{e}");
        let e = check_onnx(&model(good_in(), tensor("prob", 1, &[batch()])), &spec).unwrap_err();
        assert!(matches!(e, ContractError::NoOutput { .. }), "{e}");
        let e = check_onnx(&model(good_in(), tensor(OUTPUT_NAME, 11, &[batch(), DimValue::Value(2)])), &spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("float64") && e.contains("second dimension is 2"), "{e}");
        assert!(matches!(check_onnx(b"not onnx at all", &spec), Err(ContractError::NotOnnx(_))));
    }

    #[test]
    fn a_manifest_input_must_match_its_own_spec() {
        let spec = FeatureSpec::default();
        let n = spec.n_features();
        let provenance = Provenance {
            dataset_fingerprint: String::new(),
            seed: 0,
            epochs: 0,
            trainer_version: String::new(),
            training_seconds: 0.0,
        };
        let normalizer = Normalizer { mean: vec![0.0; n], std: vec![1.0; n] };
        let mut m = Manifest::new("m", spec, normalizer, 0.5, provenance);
        check_manifest(&m).unwrap();
        m.input.shape[2] = Dim::Fixed(95);
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("[batch, 126, 96]"), "{e}");
    }
}
