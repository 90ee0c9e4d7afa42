//! vericlip-train: dataset features, LSTM training, evaluation, ONNX export, registry publish.

pub mod extract;
pub mod model;
pub mod onnx;
