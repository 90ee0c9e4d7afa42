//! Stage `export`: the trained model as an ONNX graph, loaded in ONNX Runtime (the service's
//! session), and the parity check of ONNX Runtime against the trainer's own forward pass.

use anyhow::bail;
use vericlip_core::runtime::{self, ModelSession};

use crate::data::SplitData;
use crate::eval;
use crate::model::network::Network;
use crate::model::onnx::export_network;
use crate::model::train;

/// Largest |ORT - trainer| accepted on validation segments before publishing.
pub const PARITY_TOLERANCE: f32 = 1e-4;
/// Validation segments used for the parity check.
const PARITY_SEGMENTS: usize = 256;

/// The ONNX bytes of `weights`, with `metadata` in the model's properties.
pub fn export(weights: &Network, metadata: &[(&str, &str)]) -> Vec<u8> {
    export_network(weights, metadata)
}

/// An ONNX Runtime session over `onnx`, as the service builds it.
pub fn session(onnx: &[u8]) -> anyhow::Result<ModelSession> {
    let rt = runtime::init(None)?;
    Ok(ModelSession::from_bytes(rt, onnx)?)
}

/// The exported graph must compute what the trainer computed: the largest difference on the
/// first validation segments, or an error above [`PARITY_TOLERANCE`].
pub fn parity(weights: &Network, session: &mut ModelSession, validation: &SplitData) -> anyhow::Result<f32> {
    let idx: Vec<usize> = (0..validation.len().min(PARITY_SEGMENTS)).collect();
    let ours = train::predict(weights, validation, &idx)?;
    let sub = SplitData {
        features: validation.features[..idx.len() * validation.frames * validation.n_features].to_vec(),
        labels: validation.labels[..idx.len()].to_vec(),
        frames: validation.frames,
        n_features: validation.n_features,
        ..SplitData::default()
    };
    let theirs = eval::score(session, &sub)?;
    let parity = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    tracing::info!(max_abs_diff = parity, segments = idx.len(), "ONNX Runtime vs trainer parity");
    if parity > PARITY_TOLERANCE {
        bail!(
            "ONNX Runtime differs from the trainer by {parity} (> {PARITY_TOLERANCE}) on validation segments; not publishing"
        );
    }
    Ok(parity)
}
