//! vericlip-train: dataset features, LSTM training, evaluation, ONNX export, registry publish.
//!
//! - [`data`]: datasets in the for-2sec layout as segment features (cached), the stand-in
//!   corpus builder, and the corpus file-name convention.
//! - [`augment`]: augmented copies of training audio.
//! - [`model`]: the LSTM classifier's weights, training (candle), calibration, the excitation
//!   branch and ONNX export.
//! - [`eval`]: scoring through ONNX Runtime, metrics per source and per engine family, plots.
//! - [`pipeline`]: the one training procedure as stages.
//! - [`commands`]: the subcommands, composed of those stages.

pub mod augment;
pub mod commands;
pub mod data;
pub mod eval;
pub mod model;
pub mod pipeline;
pub mod rng;
