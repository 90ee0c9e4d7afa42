//! Every model head (last-state / mean / attention pooling, uni- or bidirectional LSTM, with or
//! without a conv front-end) exported to ONNX runs in the real ONNX Runtime (core's `ModelSession`, the service's path) and gives
//! what the f64 reference forward pass gives.

use ndarray::Array3;
use prost::Message;
use vericlip_core::onnx::ModelProto;
use vericlip_core::runtime::{self, ModelSession};
use vericlip_train::model::network::{Layer, Network};
use vericlip_train::model::onnx::export_network;
use vericlip_train::model::{Head, LstmRecipe};

const HEADS: [(Head, bool); 6] = [
    (Head::Last, false),
    (Head::Last, true),
    (Head::Mean, false),
    (Head::Mean, true),
    (Head::Attention, false),
    (Head::Attention, true),
];

fn input(batch: usize, frames: usize, features: usize, seed: u32) -> Array3<f32> {
    Array3::from_shape_fn((batch, frames, features), |(b, t, f)| {
        let x = (b * 7919 + t * 104_729 + f * 1_299_709) as u32 ^ seed;
        ((x.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
    })
}

fn recipe(input: usize, hidden: usize, head: Head, bidirectional: bool) -> LstmRecipe {
    LstmRecipe { input, hidden, head, bidirectional, conv: None, segment_mean_norm: false }
}

/// Scales the dense, attention `v` and conv weights: scores spread over 0..1 and attention
/// far from uniform, so a pooling or direction mistake cannot hide near 0.5.
fn scale(net: &mut Network, dense: f32, attention: f32, conv: f32) {
    net.visit_mut(|l| match l {
        Layer::Linear(l) => l.w.iter_mut().for_each(|v| *v *= dense),
        Layer::Attention(a) => a.v.iter_mut().for_each(|v| *v *= attention),
        Layer::Conv1d(c) => c.w.iter_mut().for_each(|v| *v *= conv),
        _ => {}
    });
}

fn ops(model: &[u8]) -> Vec<String> {
    let m = ModelProto::decode(model).unwrap();
    m.graph.unwrap().node.into_iter().map(|n| n.op_type).collect()
}

#[test]
fn every_head_runs_in_onnx_runtime_and_matches_the_reference() {
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    for (head, bidirectional) in HEADS {
        let (mut worst, mut spread) = (0f32, 0f32);
        for segment_mean_norm in [false, true] {
            let mut weights = LstmRecipe { segment_mean_norm, ..recipe(96, 16, head, bidirectional) }.seeded(7);
            scale(&mut weights, 8.0, 4.0, 1.0);
            let model = export_network(&weights, &[("vericlip.test", "heads")]);
            let mut session = ModelSession::from_bytes(rt, &model).unwrap();
            for (batch, frames, seed) in [(1, 126, 1), (4, 126, 2), (9, 126, 3), (3, 40, 4)] {
                let x =
                    input(batch, frames, 96, seed) + &Array3::from_shape_fn((1, 1, 96), |(_, _, f)| f as f32 * 0.05);
                let got = session.run(x.view()).unwrap();
                let want = weights.forward(x.view());
                assert_eq!(got.len(), batch);
                let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(
                    max <= 1e-5,
                    "{head:?} bi {bidirectional} mean norm {segment_mean_norm} batch {batch}: ORT vs reference {max}"
                );
                worst = worst.max(max);
                spread = spread.max(want.iter().fold(0f32, |m, p| m.max((p - 0.5).abs())));
                // Batched scores are the one-at-a-time scores (pooling never mixes segments).
                let one = session.run(x.slice(ndarray::s![batch - 1..batch, .., ..])).unwrap();
                assert!((one[0] - got[batch - 1]).abs() <= 1e-6);
            }
        }
        eprintln!(
            "{head:?} bidirectional {bidirectional}: ORT vs f64 reference max abs diff {worst:.2e} (scores up to {spread:.2} from 0.5)"
        );
        assert!(spread > 0.1, "{head:?} {bidirectional}: scores all near 0.5");
    }
}

#[test]
fn heads_use_standard_ops_and_the_default_graph_is_the_original_one() {
    let graph = |head, bi| ops(&export_network(&recipe(8, 4, head, bi).seeded(1), &[]));
    assert_eq!(graph(Head::Last, false), ["Transpose", "LSTM", "Squeeze", "Gemm", "Sigmoid", "Squeeze"]);
    assert_eq!(graph(Head::Last, true), ["Transpose", "LSTM", "Transpose", "Reshape", "Gemm", "Sigmoid", "Squeeze"]);
    assert_eq!(graph(Head::Mean, false), ["Transpose", "LSTM", "ReduceMean", "Squeeze", "Gemm", "Sigmoid", "Squeeze"]);
    let attention = graph(Head::Attention, true);
    for op in ["MatMul", "Add", "Tanh", "Softmax", "Mul", "ReduceSum"] {
        assert!(attention.iter().any(|o| o == op), "{attention:?}");
    }
    let m = ModelProto::decode(&export_network(&recipe(8, 4, Head::Last, false).seeded(1), &[])[..]).unwrap();
    let g = m.graph.unwrap();
    let names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["lstm_W", "lstm_R", "lstm_B", "dense_W", "dense_B", "axes_0", "axes_1"]);
    let lstm = g.node.iter().find(|n| n.op_type == "LSTM").unwrap();
    assert!(lstm.attribute.iter().all(|a| a.name != "direction"), "unidirectional is the ONNX default");
    for (head, bi) in HEADS {
        let m = ModelProto::decode(&export_network(&recipe(8, 4, head, bi).seeded(1), &[])[..]).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(m.opset_import[0].version, 17);
        assert_eq!((g.input[0].name.as_str(), g.output[0].name.as_str()), ("features", "fake_prob"));
        // Every initializer is used by some node (ORT would warn about and drop unused ones).
        for t in &g.initializer {
            assert!(g.node.iter().any(|n| n.input.contains(&t.name)), "{head:?} {bi}: unused {}", t.name);
        }
    }
}

#[test]
fn conv_front_end_runs_in_onnx_runtime_and_matches_the_reference() {
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    // A wide input (the seed's 96 + a 257-bin log-spectrogram), as `--features log-spec` gives.
    let features = 353;
    for (head, bidirectional, kernel) in [(Head::Last, false, 3), (Head::Mean, true, 5), (Head::Attention, false, 1)] {
        let mut weights = LstmRecipe {
            segment_mean_norm: true,
            conv: Some((24, kernel)),
            ..recipe(features, 16, head, bidirectional)
        }
        .seeded(3);
        // Scores spread over 0..1: mistakes cannot hide near 0.5.
        scale(&mut weights, 16.0, 1.0, 4.0);
        let model = export_network(&weights, &[]);
        let graph = ops(&model);
        assert_eq!(graph[..6], ["ReduceMean", "Sub", "Transpose", "Conv", "Relu", "Transpose"], "{graph:?}");
        let mut session = ModelSession::from_bytes(rt, &model).unwrap();
        let mut spread = 0f32;
        for (batch, frames, seed) in [(1, 126, 1), (5, 126, 2), (2, 9, 3)] {
            let x = input(batch, frames, features, seed);
            let (got, want) = (session.run(x.view()).unwrap(), weights.forward(x.view()));
            let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max <= 1e-5, "{head:?} bi {bidirectional} kernel {kernel} batch {batch}: ORT vs reference {max}");
            spread = spread.max(want.iter().fold(0f32, |m, p| m.max((p - 0.5).abs())));
        }
        assert!(spread > 0.1, "{head:?} {bidirectional} kernel {kernel}: scores all near 0.5");
        let g = ModelProto::decode(&model[..]).unwrap().graph.unwrap();
        for t in &g.initializer {
            assert!(g.node.iter().any(|n| n.input.contains(&t.name)), "unused {}", t.name);
        }
    }
}

#[test]
fn excitation_branch_runs_in_onnx_runtime_and_matches_the_reference() {
    use vericlip_train::model::ExcitationBranch;
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    // Normalized flag values: quiet -1.2, loud 0.8 (midpoint -0.2). The kurtosis column carries a
    // per-segment offset so the statistic moves from segment to segment, and some segments have
    // no loud frame at all (statistic 0).
    let branch = ExcitationBranch { loud_mid: -0.2, center: 0.1, slope: 6.0, bias: -3.0 };
    for segment_mean_norm in [false, true] {
        let mut lstm_only = LstmRecipe { segment_mean_norm, ..recipe(96, 16, Head::Last, false) }.seeded(7);
        scale(&mut lstm_only, 8.0, 1.0, 1.0);
        let weights = Network::with_excitation(lstm_only.clone(), branch);
        let model = export_network(&weights, &[]);
        assert_eq!(ops(&model).iter().filter(|o| *o == "Max").count(), 2, "{:?}", ops(&model));
        let mut session = ModelSession::from_bytes(rt, &model).unwrap();
        let (batch, frames) = (12, 126);
        let mut x = input(batch, frames, 98, 5);
        for b in 0..batch {
            for t in 0..frames {
                x[[b, t, 96]] += (b as f32 - 5.0) * 0.3;
                let loud = b % 4 != 3 && (t * 7 + b) % 3 != 0;
                x[[b, t, 97]] = if loud { 0.8 } else { -1.2 };
            }
        }
        let got = session.run(x.view()).unwrap();
        let want = weights.forward(x.view());
        let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max <= 1e-5, "mean norm {segment_mean_norm}: ORT vs reference {max}");
        // The branch decides where its logit is the larger: the LSTM alone scores otherwise.
        let base = lstm_only.forward(x.slice(ndarray::s![.., .., ..96]));
        let mut raised = 0;
        for b in 0..batch {
            let stat =
                ExcitationBranch::segment_stat(branch.loud_mid, (0..frames).map(|t| (x[[b, t, 96]], x[[b, t, 97]])));
            let p = 1.0 / (1.0 + (-branch.logit(stat)).exp()) as f32;
            assert!((want[b] - base[b].max(p)).abs() <= 1e-6, "segment {b}: {} vs max({}, {p})", want[b], base[b]);
            raised += usize::from(p > base[b] + 0.1);
        }
        assert!((2..batch - 1).contains(&raised), "the branch raised {raised} of {batch} segments");
    }
    // Platt folds into both detectors: the fused calibrated logit is a * max + c.
    let mut w = Network::with_excitation(recipe(96, 8, Head::Last, false).seeded(3), branch);
    w.calibrate(vericlip_train::model::calibrate::Platt { a: 0.5, c: 0.25 });
    let e = w.excitation().unwrap().0;
    assert_eq!((e.slope, e.bias, e.center, e.loud_mid), (3.0, -1.25, 0.1, -0.2));
}
