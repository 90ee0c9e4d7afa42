//! Vericlip's shared core: one implementation of audio decoding, resampling, segmentation and
//! feature extraction, used by both the trainer and the service so they can never disagree.
//!
//! Data flows one way: bytes -> [`audio`] (mono f32 at the spec's rate) -> [`features`]
//! (`[frames][spec.n_features()]`, 96 for the seed spec, normalized) -> model; [`clip`] composes
//! those steps for a whole clip (the one `clip -> segment features` function of the trainer and
//! the service). [`registry`] is the contract between trainer and service (versions, manifests,
//! `registry::contract` for a model's inputs and outputs); [`runtime`] runs models in ONNX
//! Runtime; [`onnx`] is the ONNX file format's messages; [`metrics`] scores a detector;
//! [`operator_file`] is the one reader of files an operator manages (certificates, keys, API keys,
//! serving states, manifests).

pub mod audio;
pub mod clip;
pub mod features;
mod kernels;
pub mod metrics;
pub mod onnx;
pub mod operator_file;
pub mod registry;
pub mod runtime;

pub use audio::{AudioError, AudioLimits};
pub use clip::{ClipBudget, ClipError, ClipFeatures, clip_features};
pub use features::{FeatureError, FeatureExtractor, FeatureSpec, Normalizer};
