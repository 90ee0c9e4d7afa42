//! Vericlip's shared core: one implementation of audio decoding, resampling, segmentation and
//! feature extraction, used by both the trainer and the service so they can never disagree.
//!
//! Data flows one way: bytes -> [`audio`] (mono f32 at the spec's rate) -> [`features`]
//! (`[frames][spec.n_features()]`, 96 for the seed spec, normalized) -> model.

pub mod audio;
pub mod dsp;
pub mod features;
mod kernels;
pub mod metrics;
pub mod registry;
pub mod runtime;

pub use audio::{AudioError, AudioLimits};
pub use features::{FeatureError, FeatureExtractor, FeatureSpec, Normalizer};
