//! `fit` with issue 31's training objectives, through the binary: on the tiny corpus plus three
//! vocoder "copies" named as the corpus names them, paired batches find the copies' reals, the
//! objectives train, and the published model has version 4's contract (the same inputs,
//! outputs and graph initializers) and evaluates through ONNX Runtime like any other.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, corpus_work, eval_json, json, ok};
use vericlip_core::registry;
use vericlip_train::data::naming;
use vericlip_train::pipeline::pairs;

fn fit(data: &Path, registry: &Path, cache: &Path) -> Command {
    let mut c = bin();
    c.args(["fit", "--json", "--name", "tiny", "--epochs", "4", "--seed", "7", "--augment", "0"])
        .arg("--data")
        .arg(data)
        .arg("--registry")
        .arg(registry)
        .arg("--cache")
        .arg(cache);
    c
}

fn initializer_names(path: &Path) -> Vec<String> {
    use prost::Message;
    let m = vericlip_core::onnx::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let mut names: Vec<String> = m.graph.unwrap().initializer.into_iter().map(|t| t.name).collect();
    names.sort();
    names
}

#[test]
fn objectives_train_on_paired_copies_and_publish_version_4s_contract() {
    let root: PathBuf = std::env::temp_dir().join(format!("vericlip-objectives-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (data, cache) = (root.join("corpus"), root.join("cache"));
    ok(
        bin()
            .args(["corpus", "--mode", "tiny", "--json", "--out"])
            .arg(&data)
            .arg("--work")
            .arg(corpus_work())
            .output()
            .unwrap(),
        "corpus",
    );
    // Three copies of training reals, named as the corpus names a neural vocoder's copies; each
    // holds the audio of the real that the corpus's rule says it was made from.
    let seed = pairs::corpus_seed(&data).unwrap();
    let mut reals: Vec<String> = std::fs::read_dir(data.join("training/real"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    reals.sort();
    for i in 0..3 {
        let name = naming::vocoded_clip("nv_istft_train", "gsm", "istft", i);
        let real = pairs::source_of_copy(&name, &reals, seed).unwrap();
        std::fs::copy(data.join("training/real").join(&real), data.join("training/fake").join(&name)).unwrap();
    }

    let base = json(&ok(fit(&data, &root.join("base"), &cache).output().unwrap(), "fit (version 4's recipe)"));
    let out = ok(
        fit(&data, &root.join("objectives"), &cache)
            .args(["--paired-batches", "--family-weight", "0.5", "--oc-softmax", "0.5", "--pair-contrast", "0.5"])
            .output()
            .unwrap(),
        "fit with the objectives",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("copies=3"), "the three copies were not paired:\n{stderr}");
    let s = json(&out);
    assert!(s["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4, "{}", s["parity_max_abs_diff"]);
    assert_eq!(s["config"]["pair_contrast"], 0.5);
    assert_eq!(base["config"]["paired_batches"], false);

    // The same contract as the plain recipe's: inputs, outputs, graph initializers.
    let (a, b) = (root.join("base/tiny/1"), root.join("objectives/tiny/1"));
    let (va, vb) = (registry::load_version(&a).unwrap(), registry::load_version(&b).unwrap());
    assert_eq!((&va.manifest.input, &va.manifest.output), (&vb.manifest.input, &vb.manifest.output));
    assert_eq!(initializer_names(&a.join("model.onnx")), initializer_names(&b.join("model.onnx")));
    assert_ne!(std::fs::read(a.join("model.onnx")).unwrap(), std::fs::read(b.join("model.onnx")).unwrap());
    let objectives = &vb.manifest.model["training_objectives"];
    assert_eq!(objectives["paired_batches"], true, "{objectives}");
    assert!(va.manifest.model.get("training_objectives").is_none());
    let e = eval_json(&b, &data, &cache, "eval (objectives)");
    assert_eq!(e["eer"], s["test"]["eer"]);

    // The paired loss without paired batches is refused before any training, naming the flag.
    let out = fit(&data, &root.join("refused"), &cache).args(["--pair-contrast", "0.5"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--paired-batches"));
    std::fs::remove_dir_all(&root).ok();
}
