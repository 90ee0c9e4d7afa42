//! ONNX Runtime smoke test: the exported LSTM classifier runs in the real ORT library and gives
//! what the trainer's reference forward pass gives, for several batch sizes.

use ndarray::Array3;
use vericlip_core::runtime::{self, ModelSession, RuntimeError};
use vericlip_train::model::onnx::export_network;
use vericlip_train::model::{Head, LstmRecipe};

fn input(batch: usize, frames: usize, features: usize, seed: u32) -> Array3<f32> {
    Array3::from_shape_fn((batch, frames, features), |(b, t, f)| {
        let x = (b * 7919 + t * 104_729 + f * 1_299_709) as u32 ^ seed;
        ((x.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
    })
}

fn recipe() -> LstmRecipe {
    LstmRecipe { input: 96, hidden: 16, head: Head::Last, bidirectional: false, conv: None, segment_mean_norm: false }
}

#[test]
fn exported_lstm_runs_in_onnx_runtime_and_matches_the_reference() {
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    for segment_mean_norm in [false, true] {
        let weights = LstmRecipe { segment_mean_norm, ..recipe() }.seeded(7);
        let model = export_network(&weights, &[("vericlip.test", "smoke")]);
        let mut session = ModelSession::from_bytes(rt, &model).unwrap();
        for (batch, seed) in [(1, 1), (4, 2), (9, 3)] {
            // An offset per feature: segment mean normalization must remove it exactly.
            let x = input(batch, 126, 96, seed) + &Array3::from_shape_fn((1, 1, 96), |(_, _, f)| f as f32 * 0.05);
            let got = session.run(x.view()).unwrap();
            let want = weights.forward(x.view());
            assert_eq!(got.len(), batch);
            let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max <= 1e-5, "batch {batch}, mean norm {segment_mean_norm}: ORT vs reference max diff {max}");
            assert!(got.iter().all(|p| (0.0..=1.0).contains(p)));
            if segment_mean_norm {
                let plain = session.run(input(batch, 126, 96, seed).view()).unwrap();
                let diff = got.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff <= 1e-5, "a constant offset changed the output by {diff}");
            }
        }
    }
    let weights = recipe().seeded(7);
    let mut session = ModelSession::from_bytes(rt, &export_network(&weights, &[])).unwrap();
    // Features of the wrong width are an error, not a crash.
    let e = session.run(input(2, 126, 95, 4).view()).unwrap_err();
    assert!(matches!(e, RuntimeError::Inference(_)), "{e}");
}

#[test]
fn garbage_model_bytes_are_a_clear_error() {
    let rt = runtime::init(None).unwrap();
    let e = ModelSession::from_bytes(rt, b"definitely not an onnx model").err().expect("must fail");
    assert!(e.to_string().starts_with("ONNX model could not be loaded"), "{e}");
}

#[test]
fn missing_library_names_the_path_and_the_fix() {
    let e = runtime::locate(Some(std::path::Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/libonnxruntime.so") && msg.contains("ORT_DYLIB_PATH"), "{msg}");
}
