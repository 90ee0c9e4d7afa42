//! Parts of a split chosen by file: which files are fake, their engine families, the segments
//! of some files, and what a split is made of (segments per real source and fake family).

use std::collections::BTreeMap;

use serde::Serialize;

use super::SplitData;
use super::naming::family_of;

/// Whether each file of a split is fake (every segment carries its file's label).
pub fn file_labels(data: &SplitData) -> Vec<bool> {
    let mut fake = vec![false; data.files.len()];
    for (i, &f) in data.file_of.iter().enumerate() {
        fake[f] |= data.labels[i];
    }
    fake
}

/// Family (fakes) or source (reals) of every file of a split.
pub fn file_families(data: &SplitData) -> Vec<String> {
    data.files.iter().zip(file_labels(data)).map(|(p, f)| family_of(p, f)).collect()
}

/// The segments of the files `keep` accepts (by file index), in order.
pub fn subset(data: &SplitData, keep: impl Fn(usize) -> bool) -> SplitData {
    let mut out = SplitData {
        frames: data.frames,
        n_features: data.n_features,
        balance_real: data.balance_real,
        ..Default::default()
    };
    let mut new_index = vec![usize::MAX; data.files.len()];
    for (f, path) in data.files.iter().enumerate() {
        if keep(f) {
            new_index[f] = out.files.len();
            out.files.push(path.clone());
        }
    }
    for i in 0..data.len() {
        let f = data.file_of[i];
        if new_index[f] != usize::MAX {
            out.features.extend_from_slice(data.segment(i));
            out.labels.push(data.labels[i]);
            out.sources.push(data.sources[i].clone());
            out.file_of.push(new_index[f]);
        }
    }
    out
}

/// Segments per real source and per fake family.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Composition {
    pub segments: usize,
    pub real: usize,
    pub fake: usize,
    pub real_sources: BTreeMap<String, usize>,
    pub fake_families: BTreeMap<String, usize>,
}

pub fn composition(data: &SplitData) -> Composition {
    let families = file_families(data);
    let mut c = Composition { segments: data.len(), ..Default::default() };
    for (i, &fake) in data.labels.iter().enumerate() {
        let fam = families[data.file_of[i]].clone();
        if fake {
            c.fake += 1;
            *c.fake_families.entry(fam).or_default() += 1;
        } else {
            c.real += 1;
            *c.real_sources.entry(fam).or_default() += 1;
        }
    }
    c
}
