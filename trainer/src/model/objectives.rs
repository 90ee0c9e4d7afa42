//! Training-only objectives beside the binary cross-entropy, and the paired batches they read
//! (issue 31, item 3). None of them is part of the exported network: they read the pooled
//! state that the network's last dense layer scores (its "embedding"), through parameters of
//! their own that training drops. Each is off by default (`TrainConfig`), and off they draw no
//! random number and add no term, so version 4's recipe trains bit for bit as before.
//!
//! - **Paired batches** (`--paired-batches`): a real segment and the segments of its vocoder
//!   copies (`pipeline::pairs`) sit in one batch.
//! - **Family head** (`--family-weight W`): a linear head over the embedding classifies the
//!   segment as real or as which fake family (`naming::family_of`), softmax cross-entropy.
//! - **OC-softmax** (`--oc-softmax W`; Zhang, Jiang, Duan 2021): the cosine `s` between the
//!   embedding and a learned direction must reach `OC_MARGIN_REAL` for reals and stay under
//!   `OC_MARGIN_FAKE` for fakes: `softplus(OC_SCALE (m_real - s))` resp.
//!   `softplus(OC_SCALE (s - m_fake))`, a compact real class and no model of the fakes.
//! - **Paired contrastive** (`--pair-contrast W`, needs paired batches): the cosine between a
//!   real's embedding and its copy's must fall under `PAIR_MARGIN`: `max(0, cos - PAIR_MARGIN)`,
//!   so what tells them apart is what the copy changed, not the speaker they share.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::data::SplitData;
use crate::data::naming;

/// Copy file -> the real file it was made from (`pipeline::pairs::copy_sources`).
pub type CopySources = HashMap<PathBuf, PathBuf>;

/// OC-softmax margins and scale (the paper's: 0.9, 0.2, 20).
pub const OC_MARGIN_REAL: f64 = 0.9;
pub const OC_MARGIN_FAKE: f64 = 0.2;
pub const OC_SCALE: f64 = 20.0;
/// Largest cosine between a real's embedding and its copy's that costs nothing.
pub const PAIR_MARGIN: f64 = 0.5;

/// What the objectives need to know per training segment.
#[derive(Debug, Clone)]
pub struct SegmentTargets {
    /// Class of each segment: 0 real, `1 + k` for fake family `families[k]`.
    pub class: Vec<u32>,
    /// The fake families of the split, sorted.
    pub families: Vec<String>,
    /// The real file a segment belongs to or was copied from, for reals that have a copy in
    /// the split and for copies (an index of the split's real files); `None` otherwise.
    pub pair_key: Vec<Option<usize>>,
    /// Whether a segment is a vocoder copy of a real (`pair_key` names that real).
    pub is_copy: Vec<bool>,
}

impl SegmentTargets {
    /// The targets of `data`'s segments; `copies` maps copy files to their reals.
    pub fn new(data: &SplitData, copies: &CopySources) -> anyhow::Result<Self> {
        anyhow::ensure!(
            data.file_of.len() == data.len() && !data.files.is_empty(),
            "the family head and paired training need each segment's file name"
        );
        let family = |i: usize| naming::family_of(&data.files[data.file_of[i]], data.labels[i]);
        let families: Vec<String> =
            (0..data.len()).filter(|&i| data.labels[i]).map(family).collect::<BTreeSet<_>>().into_iter().collect();
        let class = (0..data.len())
            .map(|i| {
                if !data.labels[i] {
                    return 0;
                }
                let f = family(i);
                1 + families.iter().position(|x| *x == f).unwrap_or(0) as u32
            })
            .collect();
        // Reals that have a copy among the files, numbered.
        let present: BTreeSet<&PathBuf> = data.files.iter().collect();
        let mut key_of: HashMap<&PathBuf, usize> = HashMap::new();
        for (copy, real) in copies {
            if present.contains(copy) && present.contains(real) {
                let n = key_of.len();
                key_of.entry(real).or_insert(n);
            }
        }
        let (mut pair_key, mut is_copy) = (Vec::with_capacity(data.len()), Vec::with_capacity(data.len()));
        for i in 0..data.len() {
            let file = &data.files[data.file_of[i]];
            match copies.get(file).and_then(|r| key_of.get(r)) {
                Some(k) if data.labels[i] => {
                    pair_key.push(Some(*k));
                    is_copy.push(true);
                }
                _ => {
                    pair_key.push(if data.labels[i] { None } else { key_of.get(file).copied() });
                    is_copy.push(false);
                }
            }
        }
        Ok(Self { class, families, pair_key, is_copy })
    }

    /// How many classes the family head tells apart (real and each fake family).
    pub fn classes(&self) -> usize {
        1 + self.families.len()
    }

    /// `order` (an epoch's segment order) as batches of at most `batch` segments in which
    /// every real with copies is followed by all of its copies: the copies move to their real's
    /// first place in the order (copies whose real is not in the order keep their own place),
    /// and a real with its copies is never split across batches unless they outnumber `batch`.
    /// Every entry of `order` appears exactly once.
    pub fn paired_batches(&self, order: &[usize], batch: usize) -> Vec<Vec<usize>> {
        let batch = batch.max(1);
        let mut copies_of: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in order {
            if let (true, Some(k)) = (self.is_copy[i], self.pair_key[i]) {
                copies_of.entry(k).or_default().push(i);
            }
        }
        let reals_in: BTreeSet<usize> =
            order.iter().filter(|&&i| !self.is_copy[i]).filter_map(|&i| self.pair_key[i]).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in order {
            match (self.is_copy[i], self.pair_key[i]) {
                (true, Some(k)) if reals_in.contains(&k) => {} // placed with its real
                (false, Some(k)) => {
                    let mut g = vec![i];
                    g.extend(copies_of.remove(&k).unwrap_or_default());
                    groups.push(g);
                }
                _ => groups.push(vec![i]),
            }
        }
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::with_capacity(batch);
        for g in groups {
            if !current.is_empty() && current.len() + g.len() > batch {
                out.push(std::mem::take(&mut current));
            }
            for chunk in g.chunks(batch) {
                if current.len() + chunk.len() > batch {
                    out.push(std::mem::take(&mut current));
                }
                current.extend_from_slice(chunk);
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    /// Positions `(real, copy)` in `idx` of every real and copy of the same real file.
    pub fn pairs_in(&self, idx: &[usize]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (p, &i) in idx.iter().enumerate() {
            if !self.is_copy[i] {
                continue;
            }
            for (q, &j) in idx.iter().enumerate() {
                if !self.is_copy[j] && self.pair_key[j].is_some() && self.pair_key[j] == self.pair_key[i] {
                    out.push((q, p));
                }
            }
        }
        out
    }

    /// The classes of `idx` as a `[B]` u32 tensor.
    pub fn classes_of(&self, idx: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(idx.iter().map(|&i| self.class[i]).collect::<Vec<u32>>(), idx.len(), dev)
    }
}

/// Rows of `x` (`[B, D]`) scaled to unit length.
fn unit_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(1)?.affine(1.0, 1e-12)?.sqrt()?)
}

/// `log(1 + exp(z))`, stable for any `z`.
fn softplus(z: &Tensor) -> candle_core::Result<Tensor> {
    z.relu()?.add(&z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)
}

/// OC-softmax loss (mean over the batch) of embeddings `emb` `[B, D]` against the direction
/// `w` `[D]`, labels `y` `[B]` (1 fake, 0 real).
pub fn oc_softmax(emb: &Tensor, w: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let d = w.dim(0)?;
    let s = unit_rows(emb)?.matmul(&unit_rows(&w.reshape((1, d))?)?.t()?)?.squeeze(1)?; // [B]
    // real: m_real - s; fake: s - m_fake.
    let real = s.affine(-1.0, OC_MARGIN_REAL)?;
    let fake = s.affine(1.0, -OC_MARGIN_FAKE)?;
    let margin = fake.mul(y)?.add(&real.mul(&y.affine(-1.0, 1.0)?)?)?;
    softplus(&margin.affine(OC_SCALE, 0.0)?)?.mean_all()
}

/// Paired contrastive loss: the mean of `max(0, cos(real, copy) - PAIR_MARGIN)` over `pairs`
/// (positions in `emb`'s batch); `None` without pairs.
pub fn pair_contrast(emb: &Tensor, pairs: &[(usize, usize)]) -> candle_core::Result<Option<Tensor>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let dev = emb.device();
    let pick = |k: fn(&(usize, usize)) -> usize| -> candle_core::Result<Tensor> {
        let at = Tensor::from_vec(pairs.iter().map(|p| k(p) as u32).collect::<Vec<_>>(), pairs.len(), dev)?;
        unit_rows(&emb.index_select(&at, 0)?)
    };
    let (a, b) = (pick(|p| p.0)?, pick(|p| p.1)?);
    let cos = a.mul(&b)?.sum(1)?;
    Ok(Some(cos.affine(1.0, -PAIR_MARGIN)?.relu()?.mean_all()?))
}

/// Softmax cross-entropy of the family head's logits `[B, K]` against classes `[B]`.
pub fn family_loss(logits: &Tensor, classes: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, &classes.to_dtype(DType::U32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[[f32; 2]]) -> Tensor {
        Tensor::from_vec(v.iter().flatten().copied().collect::<Vec<f32>>(), (v.len(), 2), &Device::Cpu).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        f64::from(t.to_scalar::<f32>().unwrap())
    }

    fn softplus64(z: f64) -> f64 {
        z.max(0.0) + (-z.abs()).exp().ln_1p()
    }

    #[test]
    fn oc_softmax_matches_a_hand_computation() {
        // w along (3, 4) -> (0.6, 0.8). A real at angle 0 to it (s = 1), a real at 90 degrees
        // (s = 0), a fake along it (s = 1), a fake opposite (s = -1).
        let emb = t2(&[[6.0, 8.0], [-4.0, 3.0], [0.3, 0.4], [-3.0, -4.0]]);
        let w = Tensor::from_vec(vec![3f32, 4.0], 2, &Device::Cpu).unwrap();
        let y = Tensor::from_vec(vec![0f32, 0.0, 1.0, 1.0], 4, &Device::Cpu).unwrap();
        let got = scalar(&oc_softmax(&emb, &w, &y).unwrap());
        let want = (softplus64(20.0 * (0.9 - 1.0))
            + softplus64(20.0 * (0.9 - 0.0))
            + softplus64(20.0 * (1.0 - 0.2))
            + softplus64(20.0 * (-1.0 - 0.2)))
            / 4.0;
        assert!((got - want).abs() < 1e-4, "OC-softmax {got}, by hand {want}");
        // A well-placed batch costs little; the same embeddings with the labels swapped, a lot.
        let good = t2(&[[3.0, 4.0], [-3.0, -4.0]]);
        let y2 = Tensor::from_vec(vec![0f32, 1.0], 2, &Device::Cpu).unwrap();
        let swapped = Tensor::from_vec(vec![1f32, 0.0], 2, &Device::Cpu).unwrap();
        let (low, high) =
            (scalar(&oc_softmax(&good, &w, &y2).unwrap()), scalar(&oc_softmax(&good, &w, &swapped).unwrap()));
        assert!(low < 0.2 && high > 20.0, "{low} {high}");
    }

    #[test]
    fn pair_contrast_matches_a_hand_computation() {
        // Pair (0, 1): identical directions, cos 1 -> 0.5; pair (2, 3): orthogonal -> 0;
        // pair (0, 2): cos 0.6 -> 0.1 (rows 0 = (1, 0), 2 = (0.6, 0.8)).
        let emb = t2(&[[2.0, 0.0], [5.0, 0.0], [0.6, 0.8], [-0.8, 0.6]]);
        let got = scalar(&pair_contrast(&emb, &[(0, 1), (2, 3), (0, 2)]).unwrap().unwrap());
        let want = (0.5 + 0.0 + 0.1) / 3.0;
        assert!((got - want).abs() < 1e-5, "pair loss {got}, by hand {want}");
        assert!(pair_contrast(&emb, &[]).unwrap().is_none());
    }

    #[test]
    fn family_loss_is_the_softmax_cross_entropy() {
        let logits = t2(&[[2.0, 0.0], [0.0, 1.0]]);
        let classes = Tensor::from_vec(vec![0u32, 0], 2, &Device::Cpu).unwrap();
        let got = scalar(&family_loss(&logits, &classes).unwrap());
        let want = ((1.0 + (-2f64).exp()).ln() + (1.0 + 1f64.exp()).ln()) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} {want}");
    }

    /// A split of 2 reals with 2 copies each, a real without copies and a TTS fake; one
    /// segment per file.
    fn split() -> (SplitData, CopySources) {
        let dir = PathBuf::from("/d/training");
        let real = |n: usize| dir.join("real").join(naming::real_clip("spk", n, 0));
        let copy = |g: &str, n: usize| dir.join("fake").join(naming::vocoded_clip(g, "wb", "x", n));
        let files = [
            real(0),
            real(1),
            real(2),
            copy("nv_istft_train", 0),
            copy("nv_istft_train", 1),
            copy("nv_nsf_train", 0),
            copy("nv_nsf_train", 1),
            dir.join("fake").join(naming::fake_clip("kokoro_train", "wb", "af", "en", 0, 0)),
        ];
        let mut d = SplitData { frames: 1, n_features: 1, ..SplitData::default() };
        for (k, f) in files.iter().enumerate() {
            d.push_file(f.clone(), k >= 3, &[k as f32]);
        }
        let copies: CopySources =
            [(3, 1), (4, 0), (5, 0), (6, 1)].map(|(c, r)| (files[c].clone(), files[r].clone())).into();
        (d, copies)
    }

    #[test]
    fn targets_number_the_families_and_pair_each_copy_with_its_real() {
        let (d, copies) = split();
        let t = SegmentTargets::new(&d, &copies).unwrap();
        assert_eq!(t.families, ["kokoro", "neural-vocoder-istft", "neural-vocoder-nsf"]);
        assert_eq!(t.class, [0, 0, 0, 2, 2, 3, 3, 1]);
        assert_eq!(t.is_copy, [false, false, false, true, true, true, true, false]);
        let (k0, k1) = (t.pair_key[0].unwrap(), t.pair_key[1].unwrap());
        assert_ne!(k0, k1);
        assert_eq!(t.pair_key, [Some(k0), Some(k1), None, Some(k1), Some(k0), Some(k0), Some(k1), None]);
        // Without a file name per segment, a clear error.
        let bare =
            SplitData { frames: 1, n_features: 1, features: vec![0.0], labels: vec![false], ..SplitData::default() };
        assert!(SegmentTargets::new(&bare, &copies).unwrap_err().to_string().contains("file name"));
    }

    #[test]
    fn paired_batches_hold_each_real_with_its_copies_and_every_segment_once() {
        let (d, copies) = split();
        let t = SegmentTargets::new(&d, &copies).unwrap();
        let mut rng = crate::rng::Rng::new(5);
        for _ in 0..20 {
            let mut order: Vec<usize> = (0..d.len()).collect();
            rng.shuffle(&mut order);
            let batches = t.paired_batches(&order, 3);
            let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
            all.sort();
            assert_eq!(all, (0..d.len()).collect::<Vec<_>>(), "{batches:?}");
            assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 3), "{batches:?}");
            for (real, cs) in [(0, [4, 5]), (1, [3, 6])] {
                let b = batches.iter().find(|b| b.contains(&real)).unwrap();
                assert!(cs.iter().all(|c| b.contains(c)), "real {real} without its copies: {batches:?}");
                let at = b.iter().position(|&i| i == real).unwrap();
                let pairs = t.pairs_in(b);
                assert!(cs.iter().all(|c| pairs.contains(&(at, b.iter().position(|i| i == c).unwrap()))));
            }
        }
        // A batch smaller than a real with its copies splits it, still losing nothing.
        let batches = t.paired_batches(&[0, 4, 5, 2], 2);
        assert_eq!(batches, [vec![0, 4], vec![5, 2]]);
        // Copies of a real missing from the order keep their place.
        assert_eq!(t.paired_batches(&[4, 2, 5], 8), [vec![4, 2, 5]]);
    }
}
