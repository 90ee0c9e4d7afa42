//! Per-clip timing of read + features for scripts/bench_vs_librosa.sh (single thread).
//!
//! usage: clip_timing [--spec seed|lfcc_deltas] REPEATS CLIP...
//!   -> JSON {clips, decode_features_us, features_us, spec}
//!
//! Each clip's file bytes are decoded (`load_mono`, format sniffed) and the features of its
//! first segment extracted; `features_us` times the extraction alone on the decoded samples.
//! Times are CPU time of this (single-threaded) process, as the Python side's
//! `time.process_time`, over `REPEATS` rounds split into batches: the median batch is
//! reported, so a burst of other load on a shared machine moves it little.

use std::time::Duration;

use vericlip_core::audio::{AudioInput, AudioLimits, load_mono};
use vericlip_core::{FeatureExtractor, FeatureSpec};

const BATCHES: usize = 10;

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median over `BATCHES` batches of the CPU time per call of `f` (called `n` times in all).
fn median_us(
    n: usize,
    mut f: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let per = n.div_ceil(BATCHES).max(1);
    let mut batches = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let t0 = cpu_time();
        for _ in 0..per {
            f()?;
        }
        batches.push((cpu_time() - t0).as_secs_f64() * 1e6 / per as f64);
    }
    batches.sort_by(f64::total_cmp);
    Ok(batches[BATCHES / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec_name = "seed".to_string();
    if args.first().is_some_and(|a| a == "--spec") {
        spec_name = args.get(1).cloned().ok_or("--spec needs seed or lfcc_deltas")?;
        args.drain(..2);
    }
    let spec = match spec_name.as_str() {
        "seed" => FeatureSpec::default(),
        "lfcc_deltas" => FeatureSpec::lfcc_deltas(),
        other => return Err(format!("unknown spec {other} (seed or lfcc_deltas)").into()),
    };
    let mut args = args.into_iter();
    let repeats: usize = args.next().ok_or("usage: clip_timing [--spec S] REPEATS CLIP...")?.parse()?;
    let files: Vec<Vec<u8>> = args.map(std::fs::read).collect::<Result<_, _>>()?;
    if files.is_empty() {
        return Err("no clips".into());
    }
    let ex = FeatureExtractor::new(spec.clone())?;
    let mut scratch = ex.scratch();
    let mut out = Vec::new();
    let limits = AudioLimits::default();
    let segment = spec.segment_samples;
    let mut run = |bytes: &[u8], out: &mut Vec<f32>| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let a = load_mono(AudioInput::Encoded(bytes), spec.sample_rate, &limits)?;
        let first = &a.samples[..a.samples.len().min(segment)];
        ex.extract_into(first, &mut scratch, out)?;
        Ok(first.to_vec())
    };
    // Warm-up, and the decoded clips for the features-only timing.
    let clips: Vec<Vec<f32>> = files.iter().map(|b| run(b, &mut out)).collect::<Result<_, _>>()?;
    let mut i = 0;
    let decode_features = median_us(repeats * files.len(), || {
        i += 1;
        run(&files[i % files.len()], &mut out).map(drop)
    })?;
    let mut scratch = ex.scratch();
    let mut i = 0;
    let features = median_us(repeats * files.len(), || {
        i += 1;
        ex.extract_into(&clips[i % clips.len()], &mut scratch, &mut out).map_err(Into::into)
    })?;
    println!(
        "{{\"clips\": {}, \"spec\": \"{spec_name}\", \"decode_features_us\": {decode_features:.2}, \"features_us\": {features:.2}}}",
        repeats * files.len()
    );
    Ok(())
}
