//! Which real clip each vocoder copy of a corpus was made from, read back from the file names
//! and the corpus seed (`corpus.json`), so that training can hold a real and its copies in one
//! batch (`--paired-batches`) and compare them (`--pair-contrast`).
//!
//! A copy is named `<group>__<channel>__<group>_<op>_src_<index:05>_0.wav`
//! ([`naming::vocoded_clip`]); `<index>` is the group's utterance number, NOT an index into the
//! real clips. The corpus builder chose the source of utterance `i` from the split's real clips
//! (`<split>/real/`, sorted: the vocoder inputs carry the same names) as follows, with
//! `salt = fnv1a(group)` and the corpus's `Rng::new(seed)`:
//! - neural-vocoder groups (`nv_*`): the `i`-th clip of an order that takes every real source in
//!   turn, each source's clips shuffled, drawn from `rng.fork(salt)` ([`round_robin_by_source`]);
//! - DSP vocoders (`world`, `lpc`, `griffinlim`): `rng.fork(salt).fork(i).below(len)`.
//!
//! Both rules are the corpus builder's (`data::corpus`, `fake_utterance`), and the two shared
//! pieces ([`group_salt`], [`round_robin_by_source`]) are its own functions; the tests here pin
//! the rules to orders that builder produced.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::data::corpus::{group_salt, round_robin_by_source};
use crate::data::naming;
use crate::rng::Rng;

/// The group and utterance index of a copy's file name; `None` for any other name.
pub fn copy_index(name: &str) -> Option<(String, usize)> {
    let group = naming::source_of(Path::new(name));
    let stem = name.strip_suffix(".wav")?;
    let (_, tail) = stem.rsplit_once("_src_")?;
    let (index, window) = tail.split_once('_')?;
    (window == "0" && index.len() >= 5).then_some(())?;
    Some((group, index.parse().ok()?))
}

/// How a fake group picked its sources.
enum Rule {
    RoundRobin,
    Uniform,
}

fn rule_of(name: &str) -> Option<Rule> {
    let family = naming::family_of(Path::new(name), true);
    if naming::is_neural_vocoder(&family) {
        Some(Rule::RoundRobin)
    } else if matches!(family.as_str(), "vocoder-world" | "vocoder-lpc" | "griffin-lim") {
        Some(Rule::Uniform)
    } else {
        None
    }
}

/// The source real clip (a name of `reals`, the split's sorted real clip names) of the copy
/// named `name`, for a corpus built with `seed`; `None` when `name` is not a vocoder copy or
/// its index lies past the clips.
pub fn source_of_copy(name: &str, reals: &[String], seed: u64) -> Option<String> {
    let (group, index) = copy_index(name)?;
    if reals.is_empty() {
        return None;
    }
    let stream = Rng::new(seed).fork(group_salt(&group));
    let k = match rule_of(name)? {
        Rule::RoundRobin => *round_robin_by_source(reals, &stream).get(index)?,
        Rule::Uniform => stream.fork(index as u64).below(reals.len()),
    };
    Some(reals[k].clone())
}

/// Copy file -> its source real file, for every vocoder copy among `files` (paths laid out as
/// `<root>/<split>/fake/<name>`, the corpus's): the real clips are listed from
/// `<root>/<split>/real/` and the seed read from `<root>/corpus.json`. Files of other shapes
/// are left out.
pub fn copy_sources(files: &[PathBuf]) -> anyhow::Result<HashMap<PathBuf, PathBuf>> {
    let mut reals_of: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut seeds: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut out = HashMap::new();
    for f in files {
        let Some(name) = f.file_name().and_then(|n| n.to_str()) else { continue };
        if copy_index(name).is_none() || rule_of(name).is_none() {
            continue;
        }
        let split = f.parent().and_then(Path::parent).context("a copy outside <split>/fake/")?;
        let root = split.parent().context("a split folder without a dataset root")?;
        if !seeds.contains_key(root) {
            seeds.insert(root.to_path_buf(), corpus_seed(root)?);
        }
        if !reals_of.contains_key(split) {
            let names = crate::data::list_split(split)?
                .into_iter()
                .filter(|(_, fake)| !fake)
                .filter_map(|(p, _)| p.file_name().and_then(|n| n.to_str()).map(String::from))
                .collect();
            reals_of.insert(split.to_path_buf(), names);
        }
        if let Some(real) = source_of_copy(name, &reals_of[split], seeds[root]) {
            out.insert(f.clone(), split.join("real").join(real));
        }
    }
    Ok(out)
}

/// The seed a corpus was built with (`<root>/corpus.json`, `seed`).
pub fn corpus_seed(root: &Path) -> anyhow::Result<u64> {
    let path = root.join("corpus.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("pairing copies with their reals needs {} (the corpus seed)", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    v.get("seed")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("{} has no integer `seed`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clips of the corpus builder's own round-robin test: 50 of `big`, 3 of `small`, 1 of
    /// `single`, sorted.
    fn clips() -> Vec<String> {
        let mut c: Vec<String> = (0..50).map(|i| naming::real_clip("big", i, 0)).collect();
        c.extend((0..3).map(|i| naming::real_clip("small", i, 0)));
        c.push(naming::real_clip("single", 0, 0));
        c.sort();
        c
    }

    #[test]
    fn copy_names_read_back_as_group_and_index() {
        let name = naming::vocoded_clip("nv_istft_train", "gsm", "istft", 123);
        assert_eq!(copy_index(&name), Some(("nv_istft_train".into(), 123)));
        assert_eq!(copy_index(&naming::real_clip("big", 3, 0)), None);
        assert_eq!(copy_index(&naming::fake_clip("flite_test", "wb", "slt", "en", 1, 0)), None);
        assert_eq!(copy_index("world_train__wb__world_train_world_src_00007_1.wav"), None, "window 1");
    }

    /// Orders the corpus builder (`data::corpus`, `round_robin_by_source` and the `Vocoded`
    /// branch of `fake_utterance`, seed 3) produced for `clips()`; recorded from that code.
    const CORPUS_NV_ISTFT_TRAIN: [&str; 12] = [
        "small__00000_0.wav",
        "single__00000_0.wav",
        "big__00045_0.wav",
        "small__00001_0.wav",
        "big__00005_0.wav",
        "small__00002_0.wav",
        "big__00039_0.wav",
        "big__00004_0.wav",
        "big__00026_0.wav",
        "big__00033_0.wav",
        "big__00038_0.wav",
        "big__00031_0.wav",
    ];
    const CORPUS_WORLD_TRAIN: [&str; 6] = [
        "big__00011_0.wav",
        "big__00025_0.wav",
        "big__00012_0.wav",
        "big__00003_0.wav",
        "big__00001_0.wav",
        "big__00048_0.wav",
    ];

    #[test]
    fn a_copy_maps_to_the_real_clip_the_corpus_builder_vocoded() {
        let reals = clips();
        for (i, want) in CORPUS_NV_ISTFT_TRAIN.iter().enumerate() {
            let name = naming::vocoded_clip("nv_istft_train", "wb", "istft", i);
            assert_eq!(source_of_copy(&name, &reals, 3).as_deref(), Some(*want), "nv copy {i}");
        }
        for (i, want) in CORPUS_WORLD_TRAIN.iter().enumerate() {
            let name = naming::vocoded_clip("world_train", "wb", "world", i);
            assert_eq!(source_of_copy(&name, &reals, 3).as_deref(), Some(*want), "world copy {i}");
        }
        // The first copies of a neural group cover every source; another seed, another order.
        let first: std::collections::BTreeSet<String> = (0..3)
            .filter_map(|i| source_of_copy(&naming::vocoded_clip("nv_istft_train", "wb", "x", i), &reals, 3))
            .map(|r| naming::source_of(Path::new(&r)))
            .collect();
        assert_eq!(first.len(), 3);
        let other: Vec<_> =
            (0..12).map(|i| source_of_copy(&naming::vocoded_clip("nv_istft_train", "wb", "x", i), &reals, 4)).collect();
        assert_ne!(other.iter().map(|o| o.as_deref()).collect::<Vec<_>>(), CORPUS_NV_ISTFT_TRAIN.map(Some).to_vec());
        // Past the clips, TTS fakes and reals: no source.
        assert_eq!(source_of_copy(&naming::vocoded_clip("nv_istft_train", "wb", "x", 54), &reals, 3), None);
        assert_eq!(source_of_copy(&naming::fake_clip("kokoro_train", "wb", "af", "en", 0, 0), &reals, 3), None);
    }

    #[test]
    fn copy_sources_reads_the_split_and_the_seed_from_disk() {
        let root = std::env::temp_dir().join(format!("vericlip-pairs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let split = root.join("training");
        std::fs::create_dir_all(split.join("real")).unwrap();
        std::fs::create_dir_all(split.join("fake")).unwrap();
        for r in clips() {
            std::fs::write(split.join("real").join(r), b"").unwrap();
        }
        let copy = split.join("fake").join(naming::vocoded_clip("nv_istft_train", "wb", "istft", 1));
        let tts = split.join("fake").join(naming::fake_clip("kokoro_train", "wb", "af", "en", 0, 0));
        let files = vec![copy.clone(), tts];
        match copy_sources(&files) {
            Err(e) => assert!(format!("{e:#}").contains("corpus.json"), "{e:#}"),
            Ok(m) => panic!("paired without a corpus seed: {m:?}"),
        }
        std::fs::write(root.join("corpus.json"), br#"{"seed": 3}"#).unwrap();
        let map = copy_sources(&files).unwrap();
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(map[&copy], split.join("real").join(CORPUS_NV_ISTFT_TRAIN[1]));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
