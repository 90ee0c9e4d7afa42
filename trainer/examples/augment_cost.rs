//! Cost of each augmentation kind per 2 s segment, single-threaded, next to the feature
//! extraction every copy also pays, and the default and `all` sets in parallel as `fit` runs
//! them (wall time per segment, and for 10k segments):
//! `cargo run -p vericlip-train --example augment_cost [-- SEGMENTS]` (add `--release` for the
//! optimised figures; `fit` itself usually runs as a debug build with optimised dependencies).

use std::time::Instant;

use rayon::prelude::*;

use vericlip_core::{FeatureExtractor, FeatureSpec};
use vericlip_train::augment::{AugmentConfig, CodecFamily, Kind, KindSet, augment};
use vericlip_train::rng::Rng;

fn main() -> anyhow::Result<()> {
    let segments: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20);
    // 2 s of a gliding two-formant vowel-ish signal with noise (the content barely matters here).
    let mut r = Rng::new(1);
    let y: Vec<f32> = (0..32_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let f0 = 130.0 + 20.0 * (6.0 * t).sin();
            let v: f64 = (1..30).map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64).sum();
            (0.2 * v + 0.01 * r.normal()) as f32
        })
        .collect();
    let mut rows: Vec<(String, AugmentConfig)> = Kind::ALL
        .iter()
        .filter(|k| **k != Kind::Codec)
        .map(|k| (k.name().to_string(), AugmentConfig::only(*k)))
        .collect();
    for c in CodecFamily::ALL {
        rows.push((
            format!("codec {}", c.name()),
            AugmentConfig { codecs: vec![c], ..AugmentConfig::only(Kind::Codec) },
        ));
    }
    rows.push(("default set (p as configured)".into(), AugmentConfig::default()));
    rows.push((
        "all (p as configured)".into(),
        AugmentConfig { kinds: "all".parse::<KindSet>().unwrap(), ..AugmentConfig::default() },
    ));
    println!("{:<32} {:>12}", "kind (p = 1 unless said)", "ms/segment");
    for (name, cfg) in &rows {
        cfg.validate()?;
        let t = Instant::now();
        for s in 0..segments {
            std::hint::black_box(augment(&y, cfg, &mut Rng::new(s))?);
        }
        println!("{name:<32} {:>12.2}", t.elapsed().as_secs_f64() * 1e3 / segments as f64);
    }
    // What `augmented_split` does: segments in parallel on rayon's threads (one per core).
    for (name, cfg) in &rows[rows.len() - 2..] {
        let t = Instant::now();
        (0..segments * 4).into_par_iter().try_for_each(|s| augment(&y, cfg, &mut Rng::new(s)).map(|_| ()))?;
        let per = t.elapsed().as_secs_f64() / (segments * 4) as f64;
        println!(
            "{:<32} {:>12.2}   -> 10k segments: {:.0} s on {} threads",
            format!("{name}, parallel"),
            per * 1e3,
            per * 1e4,
            rayon::current_num_threads()
        );
    }
    let ex = FeatureExtractor::new(FeatureSpec::default())?;
    let (mut scratch, mut out) = (ex.scratch(), Vec::new());
    let t = Instant::now();
    for _ in 0..segments {
        ex.extract_into(&y, &mut scratch, &mut out)?;
    }
    println!("{:<32} {:>12.2}", "(features, for comparison)", t.elapsed().as_secs_f64() * 1e3 / segments as f64);
    Ok(())
}
