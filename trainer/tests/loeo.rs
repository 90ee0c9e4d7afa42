//! Engine families and leave-one-engine-out evaluation: the family mapping on corpus file names,
//! `eval --json` per-family rows, and `loeo` end to end through the binary on the tiny corpus
//! (with part of its flite test clips moved into training so two families are trained on).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{bin, corpus_work, eval_json, json, ok};
use serde_json::Value;
use vericlip_train::data::naming::family_of;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn families_of_corpus_file_names() {
    // Names exactly as corpus/mod.rs writes them: `<group>__<channel>__<group>_<voice>_<lang>_<i>_<w>.wav`
    // for fakes, `<source>__<j>_<w>.wav` for reals.
    let fake = |group: &str, voice: &str| format!("{group}__wb__{group}_{voice}_en_00003_1.wav");
    for (group, voice, family) in [
        ("espeak_train", "m1", "espeak"),
        ("espeak_val", "f3", "espeak"),
        ("espeak_test", "m7", "espeak"),
        ("flite_train", "kal16", "flite"),
        ("flite_test", "rms", "flite"),
        ("fest_kal_train", "kal_diphone", "festival-diphone"),
        ("fest_ona_test", "upc_ca_ona_hts", "festival-hts"),
        ("fest_awb_val", "cmu_us_awb_cg", "festival-clunits"),
        ("kokoro_test", "af_heart", "kokoro"),
        ("vocoder_world_train", "m1", "vocoder-world"),
        ("griffin_lim_test", "x", "griffin-lim"),
        // The full corpus's groups (corpus/mod.rs).
        ("fest_cs_train", "czech_dita", "festival-diphone"),
        ("fest_cs_val", "czech_krb", "festival-diphone"),
        ("fest_it_val", "pc_diphone", "festival-diphone"),
        ("fest_hts_train", "upc_ca_ona_hts", "festival-hts"),
        ("kokoro_train", "jf_alpha+jm_kumo", "kokoro"),
        ("kokoro_val", "jf_gongitsune", "kokoro"),
        ("world_train", "world", "vocoder-world"),
        ("griffinlim_test", "griffinlim", "griffin-lim"),
        ("lpc_test", "lpc", "vocoder-lpc"),
        ("wobble_train", "v1", "other:wobble"),
        ("newtts", "v1", "other:newtts"),
    ] {
        let name = fake(group, voice);
        assert_eq!(family_of(Path::new(&name), true), family, "{name}");
        assert_eq!(family_of(&Path::new("/x/testing/fake").join(&name), true), family, "{name} with a directory");
    }
    assert_eq!(family_of(Path::new("espeak_train__gsm__espeak_train_m1_fr_00001_0.wav"), true), "espeak");
    assert_eq!(family_of(Path::new("ast_es_co__00007_0.wav"), false), "ast_es_co");
    assert_eq!(family_of(Path::new("fillets_cs_other__00012_1.wav"), false), "fillets_cs_other");
    assert_eq!(family_of(Path::new("noprefix.wav"), true), "other:unknown");
    assert_eq!(family_of(Path::new("noprefix.wav"), false), "unknown");
}

#[test]
fn eval_per_family_and_loeo_end_to_end() {
    let root = std::env::temp_dir().join(format!("vericlip-loeo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (data, reg, cache) = (root.join("corpus"), root.join("registry"), root.join("cache"));
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
    // Every clip of the real corpus maps to a known family or source.
    for split in ["training", "validation", "testing"] {
        for (label, fake) in [("real", false), ("fake", true)] {
            for f in files(&data.join(split).join(label)) {
                let fam = family_of(&f, fake);
                let expected: &[&str] = if fake { &["espeak", "flite"] } else { &["ast_fr_armelle", "ast_es_co"] };
                assert!(expected.contains(&fam.as_str()), "{} -> {fam}", f.display());
            }
        }
    }
    // The tiny corpus trains on espeak only: move 14 of its 20 flite test clips into training,
    // so two families are trained on (validation keeps espeak only: leaving espeak out then
    // needs the held-back validation fakes).
    let flite: Vec<PathBuf> = files(&data.join("testing/fake"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("flite_test__"))
        .collect();
    assert_eq!(flite.len(), 20);
    for f in &flite[..14] {
        std::fs::rename(f, data.join("training/fake").join(f.file_name().unwrap())).unwrap();
    }

    // A quick model to evaluate (one epoch: per-family counts, not quality, are checked here).
    let s = json(&ok(
        bin()
            .args(["fit", "--json", "--name", "tiny", "--epochs", "1", "--augment", "0", "--data"])
            .arg(&data)
            .arg("--registry")
            .arg(&reg)
            .arg("--cache")
            .arg(&cache)
            .output()
            .unwrap(),
        "fit",
    ));
    assert!(s["test"]["per_family"]["flite"].is_object(), "fit's test metrics have per-family rows");
    let e = eval_json(&reg.join("tiny/1"), &data, &cache, "eval");
    // The existing fields are still there, unchanged in meaning.
    for key in ["accuracy", "precision", "recall", "f1", "eer", "auc", "threshold", "n", "confusion", "per_source"] {
        assert!(!e[key].is_null(), "eval lost {key}");
    }
    let per_family = e["per_family"].as_object().expect("per_family");
    assert_eq!(per_family.keys().collect::<Vec<_>>(), ["espeak", "flite"]);
    let c = &e["confusion"];
    let n = |v: &Value| v.as_u64().unwrap();
    let (fakes, reals) = (n(&c["tp"]) + n(&c["fn"]), n(&c["tn"]) + n(&c["fp"]));
    assert_eq!((n(&per_family["espeak"]["fakes"]), n(&per_family["flite"]["fakes"])), (20, 6));
    assert_eq!(per_family.values().map(|f| n(&f["fakes"])).sum::<u64>(), fakes, "family fakes add up");
    assert_eq!(per_family.values().map(|f| n(&f["confusion"]["tp"])).sum::<u64>(), n(&c["tp"]));
    for (fam, f) in per_family {
        assert_eq!(n(&f["reals"]), reals, "{fam}: all reals");
        assert_eq!(n(&f["n"]), n(&f["fakes"]) + reals, "{fam}: n");
        assert_eq!(n(&f["confusion"]["fp"]), n(&c["fp"]), "{fam}: the same reals at the same threshold");
        assert_eq!(f["threshold"], e["threshold"]);
        let eer = f["eer"].as_f64().expect("finite EER");
        assert!((0.0..=1.0).contains(&eer), "{fam}: EER {eer}");
        let rate = n(&f["confusion"]["tp"]) as f64 / n(&f["fakes"]) as f64;
        assert!((f["detection_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    }
    let table = ok(
        bin()
            .args(["eval", "--model"])
            .arg(reg.join("tiny/1"))
            .arg("--data")
            .arg(&data)
            .arg("--cache")
            .arg(&cache)
            .output()
            .unwrap(),
        "eval (table)",
    );
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("fake family") && table.contains("\nflite "), "{table}");

    // Leave one engine out, with augmentation (its copies must be left out too).
    let loeo = |families: &str, out: &Path| {
        json(&ok(
            bin()
                .args([
                    "loeo",
                    "--json",
                    "--epochs",
                    "2",
                    "--augment",
                    "1",
                    "--seed",
                    "3",
                    "--families",
                    families,
                    "--data",
                ])
                .arg(&data)
                .arg("--cache")
                .arg(&cache)
                .arg("--out")
                .arg(out)
                .output()
                .unwrap(),
            "loeo",
        ))
    };
    let out = root.join("loeo.json");
    let l = loeo("espeak,flite", &out);
    assert_eq!(l, serde_json::from_slice::<Value>(&std::fs::read(&out).unwrap()).unwrap(), "--out holds the JSON");
    assert_eq!(l["training_families"], serde_json::json!({"espeak": 40, "flite": 14}));
    let folds = l["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 2);
    let by: BTreeMap<&str, &Value> = folds.iter().map(|f| (f["left_out"].as_str().unwrap(), f)).collect();
    for (fam, other, test_fakes) in [("espeak", "flite", 20), ("flite", "espeak", 6)] {
        let f = by[fam];
        let eer = f["eer"].as_f64().unwrap_or_else(|| panic!("{fam}: no EER in {f}"));
        assert!(eer.is_finite() && (0.0..=1.0).contains(&eer), "{fam}: EER {eer}");
        let trained = f["training"]["fake_families"].as_object().unwrap();
        assert!(!trained.contains_key(fam), "{fam} was trained on: {trained:?}");
        assert!(n(&trained[other]) > 0, "{other} missing from training");
        assert!(!f["validation"]["fake_families"].as_object().unwrap().contains_key(fam), "{fam} in validation");
        assert_eq!(f["test_fakes_from"], "testing");
        let tc = &f["test"]["confusion"];
        assert_eq!(n(&tc["tp"]) + n(&tc["fn"]), test_fakes, "{fam}: only its own test fakes");
        assert_eq!(n(&tc["tn"]) + n(&tc["fp"]), reals, "{fam}: every real test clip");
        // False alarms per real test source add up to the fold's.
        let by_source = f["false_alarms_by_source"].as_object().expect("false_alarms_by_source");
        assert!(!by_source.is_empty(), "{fam}: no real sources");
        let (r, fp): (u64, u64) =
            by_source.values().fold((0, 0), |(r, fp), s| (r + n(&s["reals"]), fp + n(&s["called_fake"])));
        assert_eq!((r, fp), (reals, n(&tc["fp"])), "{fam}: per-source reals and false alarms");
        for (src, s) in by_source {
            let want = n(&s["called_fake"]) as f64 / n(&s["reals"]) as f64;
            assert!((s["rate"].as_f64().unwrap() - want).abs() < 1e-12, "{fam} {src}");
        }
        // Reals are trained on in full, originals and augmented copies.
        assert_eq!(n(&f["training"]["real"]), 2 * 40);
    }
    // Validation had espeak fakes only: leaving espeak out holds back every 5th flite training
    // file (3 of 14) for validation, and neither it nor its augmented copy is trained on.
    let e_fold = by["espeak"];
    assert_eq!(e_fold["validation_fakes_from"], "training (every 5th fake file held back)");
    assert_eq!(n(&e_fold["validation"]["fake_families"]["flite"]), 3);
    assert_eq!(n(&e_fold["training"]["fake_families"]["flite"]), 2 * (14 - 3));
    assert_eq!(by["flite"]["validation_fakes_from"], "validation");
    assert_eq!(n(&by["flite"]["training"]["fake_families"]["espeak"]), 2 * 40);
    let mean = l["mean_eer"].as_f64().unwrap();
    let expect = (by["espeak"]["eer"].as_f64().unwrap() + by["flite"]["eer"].as_f64().unwrap()) / 2.0;
    assert!((mean - expect).abs() < 1e-12);

    // Deterministic for a seed: the flite fold again, alone.
    let again = loeo("flite", &root.join("again.json"));
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("training_seconds");
        v
    };
    assert_eq!(strip(&again["folds"][0]), strip(by["flite"]), "loeo is not deterministic");

    // With the excitation block a fold trains the same LSTM on the same clips and fits the
    // one-class branch beside it on the fold's real speech (`--features excitation`).
    let mut cmd = bin();
    cmd.args(["loeo", "--json", "--epochs", "2", "--augment", "1", "--seed", "3", "--families", "flite"])
        .args(["--features", "excitation", "--data"])
        .arg(&data)
        .arg("--cache")
        .arg(&cache);
    let xl = json(&ok(cmd.output().unwrap(), "loeo --features excitation"));
    let xf = &xl["folds"][0];
    assert_eq!((&xf["training"], &xf["validation"]), (&by["flite"]["training"], &by["flite"]["validation"]));
    let eer = xf["eer"].as_f64().expect("a finite EER");
    assert!((0.0..=1.0).contains(&eer), "excitation fold EER {eer}");
    assert_eq!(n(&xf["test"]["confusion"]["tn"]) + n(&xf["test"]["confusion"]["fp"]), reals);

    // An unknown family is refused with the families there are.
    let bad =
        bin().args(["loeo", "--families", "kokoro", "--data"]).arg(&data).arg("--cache").arg(&cache).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("espeak, flite"), "{}", String::from_utf8_lossy(&bad.stderr));
    std::fs::remove_dir_all(&root).ok();
}
