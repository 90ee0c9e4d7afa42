//! Per-clip timing of decode + features for scripts/bench_vs_librosa.sh.
//! usage: clip_timing REPEATS CLIP... -> JSON {clips, decode_features_us, features_us} (single thread)

use std::time::Instant;

use vericlip_core::audio::{AudioInput, AudioLimits, load_mono};
use vericlip_core::{FeatureExtractor, FeatureSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let repeats: usize = args.next().ok_or("usage: clip_timing REPEATS CLIP...")?.parse()?;
    let files: Vec<Vec<u8>> = args.map(std::fs::read).collect::<Result<_, _>>()?;
    let spec = FeatureSpec::default();
    let ex = FeatureExtractor::new(spec.clone())?;
    let mut scratch = ex.scratch();
    let mut out = Vec::new();
    let limits = AudioLimits::default();
    let mut run = |bytes: &[u8], out: &mut Vec<f32>| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let a = load_mono(AudioInput::Encoded(bytes), spec.sample_rate, &limits)?;
        let first = a.samples[..a.samples.len().min(spec.segment_samples)].to_vec();
        ex.extract_into(&first, &mut scratch, out)?;
        Ok(first)
    };
    let clips: Vec<Vec<f32>> = files.iter().map(|b| run(b, &mut out)).collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    for _ in 0..repeats {
        for b in &files {
            run(b, &mut out)?;
        }
    }
    let decode_features = t0.elapsed().as_secs_f64();
    let mut scratch = ex.scratch();
    let t1 = Instant::now();
    for _ in 0..repeats {
        for c in &clips {
            ex.extract_into(c, &mut scratch, &mut out)?;
        }
    }
    let features = t1.elapsed().as_secs_f64();
    let n = (repeats * files.len()) as f64;
    println!(
        "{{\"clips\": {n}, \"decode_features_us\": {:.2}, \"features_us\": {:.2}}}",
        1e6 * decode_features / n,
        1e6 * features / n
    );
    Ok(())
}
