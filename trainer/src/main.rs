//! vericlip-train command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vericlip_core::audio::AudioLimits;
use vericlip_core::{FeatureExtractor, FeatureSpec};
use vericlip_train::augment::{AugmentConfig, CodecFamily, KindSet};
use vericlip_train::commands::extract::{ExtractJson, extract_file};
use vericlip_train::commands::fit::{self, FitArgs};
use vericlip_train::commands::import::{self, ImportArgs};
use vericlip_train::commands::loeo::{self, LoeoArgs};
use vericlip_train::commands::model;
use vericlip_train::data::corpus::{self, Mode};
use vericlip_train::eval;
use vericlip_train::model::Head;
use vericlip_train::model::train::TrainConfig;
use vericlip_train::pipeline::Training;

#[derive(Parser)]
#[command(name = "vericlip-train", version, about = "Train, evaluate and publish Vericlip deepfake-speech models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the stand-in corpus (for-2sec layout) from Debian packages and TTS engines.
    Corpus {
        /// Output directory: {training,validation,testing}/{real,fake}/*.wav.
        #[arg(long)]
        out: PathBuf,
        /// Size of the corpus.
        #[arg(long, value_enum, default_value = "full")]
        mode: Mode,
        /// Where downloaded packages and scratch files go (reused between runs).
        #[arg(long)]
        work: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the build report as JSON.
        #[arg(long)]
        json: bool,
        /// Make the fakes of these splits only (comma-separated; default all): a partial corpus.
        #[arg(long, value_delimiter = ',')]
        fakes_for: Vec<String>,
    },
    /// Train an LSTM on a for-2sec dataset, evaluate it, export ONNX and publish it as a
    /// candidate (served once promoted: `vericlip-train model`), or as the stable version with
    /// --promote or when the model has none.
    Fit {
        /// Dataset root: training|validation|testing / real|fake / audio files.
        #[arg(long)]
        data: PathBuf,
        /// Model registry directory to publish into.
        #[arg(long)]
        registry: PathBuf,
        /// Model name in the registry.
        #[arg(long, default_value = "vericlip-lstm")]
        name: String,
        #[command(flatten)]
        training: TrainingOptions,
        /// Make the new version stable at once (every replica serves it within one poll)
        /// instead of publishing it as a candidate.
        #[arg(long)]
        promote: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish an ONNX model trained elsewhere (bring your own model).
    ///
    /// The model must follow the serving contract: one input `features`, float32
    /// [batch, frames, features] with the feature spec's frames and features (126 x 96 by
    /// default: 20 MFCC, 12 chroma, 64 log-mel per frame, normalized per feature) and a dynamic
    /// batch axis; an output `fake_prob`, float32 [batch] or [batch, 1], the probability that
    /// each 2 s segment is synthetic (0..1: end the graph in a Sigmoid; labels real = 0, fake = 1).
    /// Any opset and IR version ONNX Runtime 1.31 runs; weights inside the file. Names come from
    /// the export, e.g. torch.onnx.export(..., input_names=["features"],
    /// output_names=["fake_prob"], dynamic_axes={"features": {0: "batch"}, "fake_prob": {0: "batch"}}).
    ///
    /// Checks, before anything is published: the declared input/output (the error names the
    /// shape that does not fit), then ONNX Runtime runs the server's warm-up and a probe batch
    /// (one probability per segment; batched scores equal one-at-a-time scores). The dataset
    /// (for-2sec layout) is featurized by Vericlip's own pipeline; normalization comes from
    /// --normalization or is fitted on the training split as `fit` does. Validation and test
    /// are scored through ONNX Runtime as `eval` does; every score must be in 0..1 and the
    /// validation AUC at least 0.5. The threshold is the validation EER point; test metrics
    /// (overall and per source) go into the manifest, and report/metrics.json and roc.png next
    /// to it. The ONNX file is published unchanged as the next version (model.kind "imported",
    /// its file name and sha256 in the manifest), as a candidate (or stable with --promote, or
    /// when the model has no version yet), ready for vericlip-server.
    Import {
        /// The ONNX model file.
        #[arg(long)]
        onnx: PathBuf,
        /// Dataset root: training|validation|testing / real|fake / audio files (training is
        /// only read when --normalization is not given).
        #[arg(long)]
        data: PathBuf,
        /// Model registry directory to publish into.
        #[arg(long)]
        registry: PathBuf,
        /// Model name in the registry.
        #[arg(long)]
        name: String,
        /// JSON {"mean": [...], "std": [...]} (one entry per feature) the model was trained
        /// with; without it, mean/std are fitted on the training split.
        #[arg(long)]
        normalization: Option<PathBuf>,
        /// JSON feature spec (every field, as a manifest's feature_spec); default: the standard spec.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Feature cache directory (default: ~/.cache/vericlip/features).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Do not read or write the feature cache.
        #[arg(long)]
        no_cache: bool,
        /// Make the new version stable at once instead of publishing it as a candidate.
        #[arg(long)]
        promote: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a published model version through ONNX Runtime on a dataset.
    Eval {
        /// A published version: REGISTRY/NAME/VERSION.
        #[arg(long)]
        model: PathBuf,
        /// A for-2sec root (its --split is used) or a folder with real/ and fake/.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "testing")]
        split: String,
        #[arg(long)]
        cache: Option<PathBuf>,
        #[arg(long)]
        no_cache: bool,
        /// Also list every segment's score and verdict.
        #[arg(long)]
        files: bool,
        /// Print JSON: accuracy, precision, recall, f1, eer, auc, threshold, confusion, n, per_source.
        #[arg(long)]
        json: bool,
    },
    /// Leave-one-engine-out cross-validation: how the model meets a TTS engine it never saw.
    ///
    /// For each fake engine family of the training split (`espeak`, `flite`,
    /// `festival-diphone`, ...; read from the corpus file names), trains a model as `fit` does
    /// (same features, augmentation, normalization, training and ONNX Runtime scoring; nothing
    /// is published) with that family's fakes removed from training and validation, then scores
    /// it on that family's test fakes against every real test clip. Reports EER, AUC, detection
    /// rate and false alarms at the validation-EER threshold per left-out family (with --json,
    /// the false alarms per real test source too), and the mean EER. Deterministic for a --seed.
    Loeo {
        /// Dataset root: training|validation|testing / real|fake / audio files.
        #[arg(long)]
        data: PathBuf,
        /// Families to leave out, comma-separated (default: every fake family of the training split).
        #[arg(long, value_delimiter = ',')]
        families: Vec<String>,
        /// Training options, as `fit`'s (each fold trains with them).
        #[command(flatten)]
        training: TrainingOptions,
        /// Also write the JSON summary to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A model's serving lifecycle in the registry (serving.json, followed by every server
    /// replica within one poll): status, canary, abort, promote, rollback, retire, restore,
    /// history.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
        /// Model registry directory (read-write; required: no default, so that a command never
        /// writes a registry of its own in whatever folder it was started from).
        #[arg(long, global = true, env = "VERICLIP_REGISTRY")]
        registry: Option<PathBuf>,
        /// Model name in the registry.
        #[arg(long, global = true, default_value = "vericlip-lstm")]
        name: String,
        /// Print the result as JSON.
        #[arg(long, global = true)]
        json: bool,
        /// Why (kept in the model's history, `model history`).
        #[arg(long, global = true)]
        reason: Option<String>,
        /// Check the transition and print the state it would write; write nothing.
        #[arg(long, global = true)]
        dry_run: bool,
    },
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

#[derive(Subcommand)]
enum ModelCommand {
    /// The serving state and every version's role and load check (as a replica checks it);
    /// with --wait, waits until every ready replica applies the state's generation.
    Status {
        /// Wait up to SECONDS until every ready replica of --replicas applies the current
        /// generation (exit status 1 if they do not).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
        /// Replicas to ask (`/readyz` over plain HTTP): HOST:PORT, comma-separated; a name
        /// resolves to all its addresses (on Kubernetes the headless Service,
        /// vericlip-server-headless:8080).
        #[arg(long, env = "VERICLIP_REPLICAS", value_delimiter = ',')]
        replicas: Vec<String>,
    },
    /// Send --fraction of the requests that name no version to VERSION (stable keeps the rest;
    /// callers that send a routing key always get the same one).
    Canary {
        version: u64,
        /// Share of the traffic, in (0, 1).
        #[arg(long, default_value_t = 0.1)]
        fraction: f64,
    },
    /// End the canary: all traffic to the stable version, which stays what it is.
    Abort,
    /// Make VERSION the stable version (the old one becomes the rollback target).
    Promote { version: u64 },
    /// Stable back to the previous stable version (refused while a canary runs: `abort` ends a
    /// canary).
    Rollback,
    /// VERSION never serves again, and `seed` never copies it back (its files stay on disk).
    Retire { version: u64 },
    /// Rewrite a lost or unreadable serving.json from the last state in the model's history.
    Restore,
    /// Every change of the serving state: when, by whom, from what to what, and why.
    History,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // symphonia reports every OGG stream it opens at info level.
                .unwrap_or_else(|_| {
                    "info,symphonia_core=warn,symphonia_format_ogg=warn,symphonia_format_riff=warn".into()
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a model is trained: shared by `fit` and `loeo` (whose folds train as `fit` does).
#[derive(clap::Args)]
struct TrainingOptions {
    #[arg(long, default_value_t = TrainConfig::default().hidden)]
    hidden: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    lr: f64,
    /// Most epochs; training stops earlier when validation loss stops improving.
    #[arg(long, default_value_t = TrainConfig::default().max_epochs)]
    epochs: u32,
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: u32,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Augmented copies of each training segment (made by the --augment-kinds); 0 turns
    /// augmentation off. On the stand-in corpus validation
    /// EER (unseen speakers, voices and channel) was 14.7 % without, 2.2 % with two copies: see
    /// docs/MODEL_CARD.md.
    #[arg(long, default_value_t = 2)]
    augment: usize,
    /// Augmentation kinds, comma-separated, each `kind` or `kind=P` (its probability per copy,
    /// 0..1), or `all`: shift, channel, noise, gain (version 2's set), codec, rawboost, reverb,
    /// bandlimit, tilt, resample (docs/ARCHITECTURE.md says what each does).
    #[arg(long, default_value = DEFAULT_AUGMENT_KINDS)]
    augment_kinds: KindSet,
    /// The codecs that the `codec` augmentation kind draws from.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mp3,vorbis,opus,amr-nb")]
    augment_codecs: Vec<CodecFamily>,
    /// Do not subtract each segment's mean frame before the LSTM (cepstral mean
    /// normalization, on by default: it removes stationary channel coloration; validation
    /// EER 0.97 % without, 0.48 % with, docs/MODEL_CARD.md).
    #[arg(long)]
    no_segment_mean_norm: bool,
    /// How the LSTM outputs are pooled before dense + sigmoid: the last hidden state, the mean
    /// over frames, or attention pooling (a learned softmax weight per frame).
    #[arg(long, value_enum, default_value_t = TrainConfig::default().head)]
    head: Head,
    /// A bidirectional LSTM (forward and backward states concatenated before the dense layer).
    #[arg(long)]
    bidirectional: bool,
    /// A convolution over time in front of the LSTM with this many output channels (ReLU;
    /// 0: none): it reads wide frames such as `--features log-spec`'s.
    #[arg(long, default_value_t = 0)]
    conv_channels: usize,
    /// Frames each conv front-end channel sees (odd).
    #[arg(long, default_value_t = 3)]
    conv_kernel: usize,
    /// SpecAugment-style masking while training: per segment, up to this many adjacent feature
    /// columns set to the training mean over all frames (0: off).
    #[arg(long, default_value_t = 0)]
    feature_mask: usize,
    /// Likewise up to this many adjacent frames set to the training mean (0: off).
    #[arg(long, default_value_t = 0)]
    time_mask: usize,
    /// Batches hold each real segment together with the segments of its vocoder copies (read
    /// back from the corpus names and `corpus.json`'s seed; docs/MODEL_CARD.md, issue 31).
    #[arg(long)]
    paired_batches: bool,
    /// Weight of a training-only head that classifies each segment as real or as its fake
    /// family (softmax cross-entropy over the pooled LSTM state; not exported). 0: off.
    #[arg(long, default_value_t = 0.0)]
    family_weight: f64,
    /// Weight of the OC-softmax loss on the pooled LSTM state (margins 0.9 / 0.2, scale 20;
    /// training only). 0: off.
    #[arg(long, default_value_t = 0.0)]
    oc_softmax: f64,
    /// Weight of the paired contrastive loss: the cosine between a real's pooled state and its
    /// copy's above 0.5 costs (needs --paired-batches). 0: off.
    #[arg(long, default_value_t = 0.0)]
    pair_contrast: f64,
    /// The model's input features: `seed` (20 MFCC, 12 chroma, 64 log-mel: 96 per frame),
    /// `lfcc-deltas` (those plus 20 LFCC and first-order deltas of MFCC and LFCC: 156) or
    /// `log-spec` (the seed's plus the 257-bin linear log-spectrogram: 353) or `phase-dev` (the
    /// seed's plus 30 coefficients of the phase-advance deviation: 126) or `excitation` (the
    /// seed's plus the LPC residual's log-kurtosis and a loud-frame flag: 98; the LSTM reads the
    /// seed's 96 and a one-class detector beside it the last two, see `trainer::excitation`) or
    /// `fine-structure` (the seed's plus the spectral fine structure of a 1024-point STFT at the
    /// same hop and frames: each frame's log power minus its cepstrally liftered envelope, all
    /// 513 bins: 609) or `fine-log-spec` (the seed's plus that STFT's 513-bin log power: 609) or
    /// `fine-phase` (the seed's, 30 phase-deviation coefficients, the fine structure: 639).
    #[arg(long, value_enum, default_value_t = Features::Seed)]
    features: Features,
    /// Feature cache directory (default: ~/.cache/vericlip/features).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    no_cache: bool,
}

/// The augmentation of versions 2 and 4: time shift, telephone channel, noise and gain. Version
/// 3's set (these plus codec 0.3, RawBoost 0.3, reverb, band limit and resampling 0.2) lost to it
/// on corpus v4's validation split, together with its features and head (docs/MODEL_CARD.md).
const DEFAULT_AUGMENT_KINDS: &str = "shift,channel,noise,gain";

/// Named feature specifications (`vericlip_core::FeatureSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Features {
    Seed,
    LfccDeltas,
    LogSpec,
    PhaseDev,
    Excitation,
    FineStructure,
    FineLogSpec,
    FinePhase,
}

impl Features {
    fn spec(self) -> vericlip_core::FeatureSpec {
        match self {
            Features::Seed => vericlip_core::FeatureSpec::default(),
            Features::LfccDeltas => vericlip_core::FeatureSpec::lfcc_deltas(),
            Features::LogSpec => vericlip_core::FeatureSpec::log_spec(),
            Features::PhaseDev => vericlip_core::FeatureSpec::phase_dev(),
            Features::Excitation => vericlip_core::FeatureSpec::excitation(),
            Features::FineStructure => vericlip_core::FeatureSpec::fine_structure(),
            Features::FineLogSpec => vericlip_core::FeatureSpec::fine_log_spec(),
            Features::FinePhase => vericlip_core::FeatureSpec::fine_phase(),
        }
    }
}

impl TrainingOptions {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            segment_mean_norm: !self.no_segment_mean_norm,
            head: self.head,
            bidirectional: self.bidirectional,
            conv: (self.conv_channels > 0).then_some((self.conv_channels, self.conv_kernel)),
            feature_mask: self.feature_mask,
            time_mask: self.time_mask,
            paired_batches: self.paired_batches,
            family_weight: self.family_weight,
            oc_softmax: self.oc_softmax,
            pair_contrast: self.pair_contrast,
            hidden: self.hidden,
            batch: self.batch,
            learning_rate: self.lr,
            max_epochs: self.epochs,
            patience: self.patience,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }

    fn cache(&self) -> Option<PathBuf> {
        cache_dir(self.cache.clone(), self.no_cache)
    }

    fn augment_config(&self) -> anyhow::Result<AugmentConfig> {
        AugmentConfig::new(self.augment_kinds.clone(), &self.augment_codecs)
    }

    fn training(&self) -> anyhow::Result<Training> {
        Ok(Training {
            spec: self.features.spec(),
            config: self.config(),
            augment: self.augment,
            augment_config: self.augment_config()?,
        })
    }
}

fn cache_dir(cache: Option<PathBuf>, no_cache: bool) -> Option<PathBuf> {
    if no_cache { None } else { cache.or_else(vericlip_train::data::default_cache_dir) }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match cli.command {
        Command::Extract { files, json } => extract(&files, json),
        Command::Corpus { out, mode, work, seed, json, fakes_for } => {
            let work = work.unwrap_or_else(|| out.join(".work"));
            let splits: Vec<&str> = if fakes_for.is_empty() {
                corpus::SPLITS.to_vec()
            } else {
                fakes_for.iter().map(String::as_str).collect()
            };
            let report = corpus::build_splits(&out, &work, mode, seed, &splits)?;
            emit(json, &report, || {
                format!("{}corpus written to {}\n", vericlip_train::commands::corpus::text(&report), out.display())
            })
        }
        Command::Fit { data, registry, name, training, promote, json } => {
            let args = FitArgs {
                data,
                registry,
                name,
                cache: training.cache(),
                training: training.training()?,
                promote,
                progress,
            };
            let s = fit::fit(&args)?;
            emit(json, &s, || fit_text(&s))
        }
        Command::Import { onnx, data, registry, name, normalization, spec, cache, no_cache, promote, json } => {
            let args = ImportArgs {
                onnx,
                data,
                registry,
                name,
                normalization,
                spec,
                cache: cache_dir(cache, no_cache),
                promote,
                progress,
            };
            let s = import::import(&args)?;
            emit(json, &s, || import::text(&s))
        }
        Command::Model { command, registry, name, json, reason, dry_run } => {
            let registry = registry.ok_or_else(|| {
                anyhow::anyhow!(
                    "--registry DIR (or VERICLIP_REGISTRY) is required: the registry folder (on Kubernetes: /models)"
                )
            })?;
            let how = model::WriteOptions { reason: reason.as_deref(), dry_run };
            model_command(command, &registry, &name, json, how)
        }
        Command::Loeo { data, families, training, out, json } => {
            let args = LoeoArgs { data, families, cache: training.cache(), training: training.training()?, progress };
            let s = loeo::run(&args)?;
            if let Some(out) = out {
                let text = serde_json::to_string_pretty(&s)?;
                std::fs::write(&out, format!("{text}\n")).with_context(|| format!("writing {}", out.display()))?;
            }
            emit(json, &s, || loeo::table(&s))
        }
        Command::Eval { model, data, split, cache, no_cache, files, json } => {
            let (e, skipped) = vericlip_train::commands::eval::eval(
                &model,
                &data,
                &split,
                cache_dir(cache, no_cache),
                files,
                progress,
            )?;
            for s in &skipped {
                eprintln!("skipped {}: {}", s.path.display(), s.reason);
            }
            emit(json, &e, || {
                let segments = if files { format!("{}\n", eval::segment_table(&e.segments)) } else { String::new() };
                format!("{segments}{}", eval::table(&e))
            })
        }
    }
}

/// Prints a command's result: pretty JSON with `--json`, else its text (which ends in a newline).
fn emit<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(ExitCode::SUCCESS)
}

fn fit_text(s: &fit::FitSummary) -> String {
    let mut out = String::new();
    for (split, c) in &s.splits {
        out += &format!("{split:<11} {c}\n");
    }
    out += &format!(
        "trained {} epochs (best {}), {:.1} s; ONNX parity {:.1e}\n",
        s.epochs, s.best_epoch, s.training_seconds, s.parity_max_abs_diff
    );
    out += &format!("validation:\n{}\ntest:\n{}\n", eval::table(&s.validation), eval::table(&s.test));
    let r = &s.release;
    out += &format!("{}\n", model::published_text(&r.name, r.version, &r.dir, s.published_as));
    out
}

/// `vericlip-train model ...`: the serving state, or one transition of it.
fn model_command(
    command: ModelCommand,
    registry: &Path,
    name: &str,
    json: bool,
    how: model::WriteOptions<'_>,
) -> anyhow::Result<ExitCode> {
    use vericlip_core::registry::serving::Transition;
    let t = match command {
        ModelCommand::Status { wait: Some(seconds), replicas } => {
            anyhow::ensure!(
                !replicas.is_empty(),
                "--wait needs --replicas HOST:PORT (on Kubernetes: vericlip-server-headless:8080)"
            );
            anyhow::ensure!(seconds.is_finite() && seconds >= 0.0, "--wait {seconds}: give seconds, e.g. 60");
            let r = model::wait_rollout(registry, name, &replicas, std::time::Duration::from_secs_f64(seconds))?;
            emit(json, &r, || model::rollout_text(&r))?;
            return Ok(if r.converged { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        ModelCommand::Status { wait: None, .. } => {
            let s = model::status(registry, name)?;
            return emit(json, &s, || model::status_text(&s));
        }
        ModelCommand::History => {
            let h = model::history(registry, name)?;
            return emit(json, &h, || model::history_text(&h));
        }
        ModelCommand::Restore => {
            let change = model::restore(registry, name, how)?;
            return emit(json, &change.after, || format!("{}\n", model::change_text(name, &change, how.dry_run)));
        }
        ModelCommand::Canary { version, fraction } => Transition::Canary { version, fraction },
        ModelCommand::Abort => Transition::Abort,
        ModelCommand::Promote { version } => Transition::Promote { version },
        ModelCommand::Rollback => Transition::Rollback,
        ModelCommand::Retire { version } => Transition::Retire { version },
    };
    let change = model::transition(registry, name, t, how)?;
    emit(json, &change.after, || format!("{}\n", model::change_text(name, &change, how.dry_run)))
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
                mean(spec.block("log_mel").unwrap_or_default())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
