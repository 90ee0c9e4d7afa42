//! vericlip-server: `serve` (the default) runs the service; `check` verifies that this machine
//! can run it (ONNX Runtime loads, the feature pipeline builds).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vericlip_core::{FeatureExtractor, FeatureSpec, runtime};
use vericlip_server::config::{LogFormat, Settings};

#[derive(Parser)]
#[command(name = "vericlip-server", version, about = "Vericlip real/synthetic speech classification service")]
struct Cli {
    /// TOML config file (defaults < file < VERICLIP__SECTION__KEY environment variables).
    #[arg(long, global = true, env = "VERICLIP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and HTTP (the default).
    Serve,
    /// Check that ONNX Runtime loads and the feature pipeline builds; exit non-zero if not.
    Check,
    /// Print the effective configuration (after file and environment) and exit.
    Config,
    /// Copy the model versions of `--from` that `--registry` lacks (atomically; never rewrites a
    /// published version, never copies one the registry retired) as candidates: fills an empty
    /// registry volume from the image's bundled models (with their serving.json on a first
    /// install) and never changes an existing serving state.
    Seed {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        registry: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Check => check(),
        Command::Config => {
            Settings::load(cli.config.as_deref(), std::env::vars()).map(|s| println!("{s:#?}")).map_err(Into::into)
        }
        Command::Serve => serve(cli.config),
        Command::Seed { from, registry } => seed(&from, &registry),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), std::env::vars())?;
    // Request audio lives in large buffers. A fixed mmap threshold makes each one its own
    // mapping, returned to the system when freed; glibc's default dynamic threshold moves them
    // into the heap after the first few frees, where RSS stays up after a burst. Fixing it also
    // fixes the trim threshold at its 128 KiB default, which would hand the small per-request
    // buffers' heap back and fault it in again on every request: raise that one.
    // SAFETY: mallopt only tunes the allocator, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    // symphonia logs a client's undecodable upload at ERROR ("probe reached EOF"); the request's
    // own line names the error, so the decoder's internals stay quiet unless a filter asks.
    let level = &settings.log.level;
    let level = if level.contains("symphonia") { level.clone() } else { format!("{level},symphonia=off") };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("vericlip-io").build()?;
    rt.block_on(async { vericlip_server::server::run(settings, shutdown_signal()?).await })
}

/// SIGTERM (Kubernetes) or ctrl-c. The handlers are installed here, before the server binds
/// and says it listens: a SIGTERM that arrives while models are still loading must start the
/// drain (exit 0), not kill the process with the default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn seed(from: &std::path::Path, registry: &std::path::Path) -> anyhow::Result<()> {
    for s in vericlip_core::registry::seed(from, registry)? {
        let what = match (s.copied, s.retired, &s.refused) {
            (_, _, Some(why)) => format!("NOT seeded: {why}"),
            (true, _, None) => "seeded (a candidate: the serving state is unchanged)".into(),
            (false, true, None) => "retired in the registry's serving state, not copied".into(),
            (false, false, None) => "present, left as is".into(),
        };
        println!("{}/{}: {what}", s.name, s.version);
    }
    Ok(())
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
