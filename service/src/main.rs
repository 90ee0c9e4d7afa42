//! vericlip-server. The gRPC service itself is built on top of this in the service issue; for now
//! the binary checks that this machine can run it: ONNX Runtime loads and the feature extractor
//! builds for the default spec.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vericlip_core::{FeatureExtractor, FeatureSpec, runtime};

#[derive(Parser)]
#[command(name = "vericlip-server", version, about = "Vericlip real/synthetic speech classification service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that ONNX Runtime loads and the feature pipeline builds; exit non-zero if not.
    Check,
}

fn main() -> ExitCode {
    let Cli { command: Command::Check } = Cli::parse();
    match check() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check() -> anyhow::Result<()> {
    let rt = runtime::init(None)?;
    println!("ONNX Runtime {}: {}", runtime::ORT_VERSION, rt.path.display());
    let spec = FeatureSpec::default();
    FeatureExtractor::new(spec.clone())?;
    println!(
        "features: {} Hz, {} frames x {} per {:.1} s segment",
        spec.sample_rate,
        spec.frames_per_segment(),
        spec.n_features(),
        spec.segment_seconds()
    );
    Ok(())
}
