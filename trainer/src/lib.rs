//! vericlip-train: dataset features, LSTM training, evaluation, ONNX export, registry publish.

pub mod augment;
pub mod calibrate;
pub mod corpus;
pub mod dataset;
pub mod evaluate;
pub mod excitation;
pub mod extract;
pub mod fit;
pub mod import;
pub mod loeo;
pub mod model;
pub mod onnx;
pub mod report;
pub mod rng;
pub mod train;
