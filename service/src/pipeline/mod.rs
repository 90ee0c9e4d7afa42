//! The request path after the API layer: features on a CPU pool, then dynamic batching into
//! ONNX Runtime.

pub mod batcher;
pub mod features;
pub mod watchdog;

pub use batcher::{BatchConfig, Batcher, Scored};
pub use features::{Audio, Cancel, FeaturePool, Prepared, decode, prepare, segment_features};
/// What a classification answers (defined with the API, in `vericlip-proto`).
pub use vericlip_proto::result::{ClipResult, SegmentResult, StageTimings, Verdict};
