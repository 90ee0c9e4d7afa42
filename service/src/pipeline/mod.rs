//! The request path after the API layer: features on a CPU pool, then dynamic batching into
//! ONNX Runtime.

pub mod batcher;
pub mod features;

pub use batcher::{BatchConfig, Batcher, Scored};
pub use features::{Audio, FeaturePool, Prepared, prepare, segment_features};
