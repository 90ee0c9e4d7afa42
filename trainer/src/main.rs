//! vericlip-train command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vericlip_core::audio::AudioLimits;
use vericlip_core::{FeatureExtractor, FeatureSpec};
use vericlip_train::extract::{ExtractJson, extract_file};

#[derive(Parser)]
#[command(name = "vericlip-train", version, about = "Train, evaluate and publish Vericlip deepfake-speech models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the features (before normalization) of each file's first 2 s segment.
    Extract {
        /// Audio files (WAV, FLAC, MP3, OGG Vorbis; any common sample rate).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON `{"spec": {...}, "features": {"<path>": [[96 floats] x frames]}}`.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Extract { files, json } => extract(&files, json),
    }
}

fn extract(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let spec = FeatureSpec::default();
    let ex = FeatureExtractor::new(spec.clone()).context("building the feature extractor")?;
    let limits = AudioLimits::default();
    let mut ok = Vec::new();
    let mut failed = 0;
    for path in files {
        match extract_file(&ex, path, &limits) {
            Ok(f) => ok.push(f),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("error: {failed} of {} file(s) could not be read; no features printed", files.len());
        return Ok(ExitCode::FAILURE);
    }
    if json {
        let features = ok.iter().map(|f| (f.path.display().to_string(), &f.frames)).collect();
        serde_json::to_writer(std::io::stdout().lock(), &ExtractJson { spec: &spec, features })?;
        println!();
    } else {
        for f in &ok {
            let n = spec.n_features();
            let mean = |range: std::ops::Range<usize>| {
                let (sum, count) = f
                    .frames
                    .iter()
                    .flat_map(|r| r[range.clone()].iter())
                    .fold((0f64, 0usize), |(s, c), v| (s + f64::from(*v), c + 1));
                sum / count.max(1) as f64
            };
            println!(
                "{}: {:.2} s, first segment {} frames x {n} features; mean MFCC0 {:.2}, mean chroma {:.3}, mean log-mel {:.2} dB",
                f.path.display(),
                f.duration_seconds,
                f.frames.len(),
                mean(0..1),
                mean(spec.n_mfcc..spec.n_mfcc + spec.n_chroma),
                mean(spec.n_mfcc + spec.n_chroma..n)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
