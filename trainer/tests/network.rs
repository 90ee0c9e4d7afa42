//! The one network description end to end: the bundled versions re-created from their ONNX
//! weights and re-exported through it give the bundled graphs and the bundled outputs on the
//! golden clips; a conv front-end network (Conv2d, pooling, Conv1d, a residual add, a BiLSTM,
//! attention) defined once trains in candle and exports to an ONNX graph that ONNX Runtime runs
//! as candle and the f64 reference compute; every exported graph passes `onnx.checker`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ndarray::Array3;
use prost::Message;
use vericlip_core::audio::{AudioLimits, load_file};
use vericlip_core::onnx::{GraphProto, ModelProto, TensorProto};
use vericlip_core::registry;
use vericlip_core::runtime::{self, ModelSession};
use vericlip_core::{FeatureExtractor, FeatureSpec, Normalizer};
use vericlip_train::data::SplitData;
use vericlip_train::model::calibrate::Platt;
use vericlip_train::model::network::{Activation, Builder, Network, PoolKind};
use vericlip_train::model::onnx::export_network;
use vericlip_train::model::train::{self, TrainConfig};
use vericlip_train::model::{ExcitationBranch, Head, LstmRecipe, LstmWeights};
use vericlip_train::rng::Rng;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn floats(t: &TensorProto) -> Vec<f32> {
    t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// `[rows, cols]` row-major -> `[cols, rows]`.
fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| m[r * cols + c])).collect()
}

/// The trainer's LSTM classifier that `graph` is an export of, its weights read back from the
/// initializers (what the recipe's flags were is read from the graph's nodes).
fn network_of(graph: &GraphProto) -> Network {
    let t: BTreeMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let w = t["lstm_W"];
    let (d, hidden) = (w.dims[0] as usize, w.dims[1] as usize / 4);
    let has = |op: &str, input: &str| graph.node.iter().any(|n| n.op_type == op && n.input.iter().any(|i| i == input));
    let head = if graph.node.iter().any(|n| n.op_type == "Softmax") {
        Head::Attention
    } else if has("ReduceMean", "lstm_Y") {
        Head::Mean
    } else {
        Head::Last
    };
    let input = match &graph.input[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim
        [2]
    .value
    {
        Some(vericlip_core::onnx::DimValue::Value(v)) => *v as usize,
        other => panic!("feature width {other:?}"),
    };
    let recipe = LstmRecipe {
        input,
        hidden,
        head,
        bidirectional: d == 2,
        conv: t.get("conv_W").map(|c| (c.dims[0] as usize, c.dims[2] as usize)),
        segment_mean_norm: graph.node.iter().any(|n| n.output.iter().any(|o| o == "segment_mean")),
    };
    let attn = t.get("attn_At").map(|at| {
        let (width, k) = (at.dims[0] as usize, at.dims[1] as usize);
        (transposed(&floats(at), width, k), floats(t["attn_a"]), floats(t["attn_v"]))
    });
    recipe.network(LstmWeights {
        w: floats(w),
        r: floats(t["lstm_R"]),
        b: floats(t["lstm_B"]),
        dense_w: floats(t["dense_W"]),
        dense_b: floats(t["dense_B"])[0],
        attn,
        conv: t.get("conv_W").map(|c| (floats(c), floats(t["conv_B"]))),
    })
}

/// Every segment of the golden clips and the bundled sample clips, as `spec` computes them and
/// `normalizer` standardizes them.
fn clip_features(spec: &FeatureSpec, normalizer: &Normalizer) -> Array3<f32> {
    let ex = FeatureExtractor::new(spec.clone()).unwrap();
    let mut clips: Vec<PathBuf> = Vec::new();
    for dir in
        [common::golden_dir().join("clips"), repo().join("models/samples/real"), repo().join("models/samples/fake")]
    {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        found.retain(|p| p.extension().is_some_and(|e| e == "wav"));
        found.sort();
        clips.extend(found);
    }
    let (frames, f) = (spec.frames_per_segment(), spec.n_features());
    let mut rows = Vec::new();
    let mut n = 0;
    for clip in &clips {
        let audio = load_file(clip, spec.sample_rate, &AudioLimits::default()).unwrap();
        for s in spec.segments(audio.samples.len(), spec.segment_samples) {
            let mut x =
                ex.extract(&s.samples(&audio.samples, spec.segment_samples)).unwrap().into_raw_vec_and_offset().0;
            normalizer.apply(&mut x);
            rows.extend(x);
            n += 1;
        }
    }
    assert!(n >= 10, "{n} segments from {} clips", clips.len());
    Array3::from_shape_vec((n, frames, f), rows).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// `onnx.checker.check_model(full_check=True)` on each file, in the venv of scripts/setup.sh
/// (the check tests/import/make_model.py runs on its models); a missing venv fails the test.
fn onnx_check(models: &[(&str, Vec<u8>)]) {
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/setup.sh", python.display());
    let dir = tempfile_dir(models[0].0);
    let paths: Vec<PathBuf> = models
        .iter()
        .map(|(name, bytes)| {
            let p = dir.join(format!("{name}.onnx"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    let script = "import sys, onnx\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\n    print('ok', p)";
    let out = Command::new(&python).arg("-c").arg(script).args(&paths).output().unwrap();
    assert!(
        out.status.success(),
        "onnx.checker refused an exported graph (is `onnx` installed in the venv?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), models.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A folder of this process's own for `what` (the tests run in parallel).
fn tempfile_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vericlip-network-test-{}-{what}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bundled_versions_reexported_through_the_description_give_their_graphs_and_outputs() {
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let dir = repo().join("models/vericlip-lstm");
    let versions = registry::versions(&dir).unwrap();
    assert!(versions.contains(&4), "{versions:?}");
    let mut checked = Vec::new();
    for v in versions {
        let loaded = registry::load_version(&dir.join(v.to_string())).unwrap();
        let bundled = ModelProto::decode(&loaded.model_onnx[..]).unwrap();
        let old = bundled.graph.clone().unwrap();
        let net = network_of(&old);
        net.check().unwrap();
        let bytes = export_network(&net, &[("vericlip.name", "vericlip-lstm")]);
        let new = ModelProto::decode(&bytes[..]).unwrap().graph.unwrap();
        // The same nodes (ops, names, attributes), the same weights, the same signature.
        assert_eq!(new.node, old.node, "version {v}: nodes");
        let sorted = |g: &GraphProto| {
            let mut t = g.initializer.clone();
            t.sort_by(|a, b| a.name.cmp(&b.name));
            t
        };
        assert_eq!(sorted(&new), sorted(&old), "version {v}: initializers");
        assert_eq!((&new.input, &new.output), (&old.input, &old.output), "version {v}: signature");
        // And the same scores in ONNX Runtime on the golden clips and the bundled samples.
        let m = &loaded.manifest;
        let x = clip_features(&m.feature_spec, &m.normalization);
        let want = ModelSession::from_bytes(rt, &loaded.model_onnx).unwrap().run(x.view()).unwrap();
        let got = ModelSession::from_bytes(rt, &bytes).unwrap().run(x.view()).unwrap();
        let diff = max_diff(&got, &want);
        assert!(diff <= 1e-6, "version {v}: re-exported vs bundled max abs diff {diff}");
        // The f64 reference agrees with the bundled graph too.
        let reference = net.forward(x.view());
        let ref_diff = max_diff(&reference, &want);
        assert!(ref_diff <= 1e-5, "version {v}: f64 reference vs bundled {ref_diff}");
        eprintln!(
            "version {v}: {} segments, re-exported vs bundled {diff:.2e}, f64 reference vs bundled {ref_diff:.2e}",
            want.len()
        );
        checked.push((format!("bundled_v{v}"), bytes));
    }
    let named: Vec<(&str, Vec<u8>)> = checked.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    onnx_check(&named);
}

/// `n` segments of `[frames][features]`: fakes carry a fast oscillation on the low features
/// (a temporal pattern, not an offset, so the mean normalization keeps it).
fn separable(n: usize, frames: usize, features: usize, seed: u64) -> SplitData {
    let mut rng = Rng::new(seed);
    let mut d = SplitData { frames, n_features: features, ..SplitData::default() };
    for i in 0..n {
        let fake = i % 2 == 1;
        for t in 0..frames {
            for f in 0..features {
                let signal = if fake && f < 3 { if t % 2 == 0 { 1.0 } else { -1.0 } } else { 0.0 };
                d.features.push(signal + rng.range(-0.5, 0.5) as f32 + 0.2 * f as f32);
            }
        }
        d.labels.push(fake);
    }
    d
}

/// Conv2d over (time, features) -> max pooling over the feature axis -> Conv1d -> a residual
/// block -> average pooling over time -> BiLSTM -> attention -> dense.
fn conv_network(features: usize, seed: u64) -> Network {
    Builder::new(features, &mut Rng::new(seed))
        .center()
        .begin_map()
        .conv2d(3, (3, 3))
        .act(Activation::Relu)
        .pool(PoolKind::Max, 1, 2)
        .end_map()
        .conv1d(6, 3)
        .act(Activation::Relu)
        .residual(|b| b.conv1d(6, 3).act(Activation::Tanh))
        .pool(PoolKind::Avg, 2, 1)
        .lstm(5, true, vericlip_train::model::network::LstmOutput::Sequence)
        .attention(4)
        .linear(1)
        .build()
}

#[test]
fn a_conv_front_end_network_defined_once_trains_and_exports_what_it_trained() {
    let rt = runtime::init(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let (features, frames) = (8, 12);
    let (train_d, val_d) = (separable(48, frames, features, 1), separable(16, frames, features, 2));
    let cfg = TrainConfig { batch: 8, learning_rate: 1e-2, max_epochs: 8, patience: 8, ..TrainConfig::default() };
    let initial = conv_network(features, 3);
    let out = train::train_network(&train_d, &val_d, &cfg, &initial, |_| {}).unwrap();
    // Gradients reach every layer: the loss falls on the separable task and every weight moved.
    let (first, last) = (out.history[0].train_loss, out.history.last().unwrap().train_loss);
    let best = out.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    assert!(last < 0.7 * first && best < 0.4, "train loss {first} -> {last}, best validation loss {best}");
    let mut net = out.weights;
    assert_eq!(net.layers.len(), initial.layers.len());
    for (a, b) in net.layers.iter().zip(&initial.layers) {
        let has_weights = !matches!(
            a,
            vericlip_train::model::network::Layer::CenterOverTime
                | vericlip_train::model::network::Layer::ToMap
                | vericlip_train::model::network::Layer::FromMap
                | vericlip_train::model::network::Layer::Activation(_)
                | vericlip_train::model::network::Layer::Pool(_)
        );
        assert_eq!(a != b, has_weights, "{} did not train", a.name());
    }
    // Calibration folds into the dense layer; the exported graph is what candle and the f64
    // reference compute.
    net.calibrate(Platt { a: 1.5, c: -0.2 });
    let bytes = export_network(&net, &[]);
    let mut session = ModelSession::from_bytes(rt, &bytes).unwrap();
    let idx: Vec<usize> = (0..val_d.len()).collect();
    let x = Array3::from_shape_vec((val_d.len(), frames, features), val_d.features.clone()).unwrap();
    let (ort, candle, reference) =
        (session.run(x.view()).unwrap(), train::predict(&net, &val_d, &idx).unwrap(), net.forward(x.view()));
    let (d_candle, d_ref) = (max_diff(&ort, &candle), max_diff(&ort, &reference));
    assert!(d_candle <= 1e-5 && d_ref <= 1e-5, "ORT vs candle {d_candle}, ORT vs f64 reference {d_ref}");
    assert!(ort.iter().any(|p| *p > 0.8) && ort.iter().any(|p| *p < 0.2), "{ort:?}");
    // Other frame counts too (odd: pooling drops the last frame).
    let odd = Array3::from_shape_fn((3, 9, features), |(b, t, f)| ((b * 13 + t * 5 + f * 3) % 7) as f32 * 0.3 - 1.0);
    let d_odd = max_diff(&session.run(odd.view()).unwrap(), &net.forward(odd.view()));
    assert!(d_odd <= 1e-5, "9 frames: ORT vs f64 reference {d_odd}");
    eprintln!("conv network: ORT vs candle {d_candle:.2e}, ORT vs f64 reference {d_ref:.2e}, 9 frames {d_odd:.2e}");

    // Every architecture the flags give passes the checker too, with the excitation branch.
    let mut graphs = vec![("conv_network", bytes)];
    let names = ["last", "last_bi", "mean", "mean_bi", "attention", "attention_bi"];
    for (i, head) in
        [Head::Last, Head::Last, Head::Mean, Head::Mean, Head::Attention, Head::Attention].into_iter().enumerate()
    {
        let conv = (i % 3 == 1).then_some((4, 3));
        let r =
            LstmRecipe { input: 10, hidden: 4, head, bidirectional: i % 2 == 1, conv, segment_mean_norm: i % 2 == 0 };
        graphs.push((names[i], export_network(&r.seeded(1), &[])));
    }
    let branch = ExcitationBranch { loud_mid: -0.2, center: 0.1, slope: 6.0, bias: -3.0 };
    let lstm = LstmRecipe {
        input: 10,
        hidden: 4,
        head: Head::Last,
        bidirectional: false,
        conv: None,
        segment_mean_norm: true,
    };
    graphs.push(("excitation", export_network(&Network::with_excitation(lstm.seeded(2), branch), &[])));
    onnx_check(&graphs);
}
