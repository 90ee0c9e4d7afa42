//! Loading ONNX Runtime (`ort` with `load-dynamic`). ort panics on first use when the library is
//! missing or too old, so we find and load it explicitly and turn every failure into an error
//! that says which path was tried and how to fix it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::ArrayView3;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use thiserror::Error;

/// The ONNX Runtime release the project is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

#[derive(Debug, Error, Clone)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {path} (from {source_of_path}); run scripts/setup.sh, or set ORT_DYLIB_PATH to the path of libonnxruntime.so.{ORT_VERSION}{hint}"
    )]
    NotFound { path: PathBuf, source_of_path: &'static str, hint: String },
    #[error(
        "ONNX Runtime library at {path} could not be loaded: {reason}; ORT_DYLIB_PATH must name libonnxruntime.so.{ORT_VERSION}"
    )]
    LoadFailed { path: PathBuf, reason: String },
    #[error("ONNX model could not be loaded: {0}")]
    Model(String),
    #[error("execution provider unavailable: {0}")]
    Provider(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Name of the model's input tensor, `[batch, frames, n_features]` f32 (the ONNX contract).
pub const INPUT_NAME: &str = "features";
/// Name of the model's output tensor, `[batch]` f32 probability that each segment is synthetic.
pub const OUTPUT_NAME: &str = "fake_prob";

/// A loaded ONNX Runtime: the library's path and the process-wide environment, kept alive here
/// because ort holds it only weakly.
pub struct OrtRuntime {
    pub path: PathBuf,
    env: Environment,
}

impl OrtRuntime {
    /// The process-wide ONNX Runtime environment (for building sessions beyond `ModelSession`,
    /// e.g. the `ort_timing` example's variants).
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

static LOADED: OnceLock<Result<OrtRuntime, RuntimeError>> = OnceLock::new();

/// The library `scripts/setup.sh` unpacks into the checkout this binary was built from: cargo
/// sets `ORT_DYLIB_PATH` from `.cargo/config.toml` (an absolute path) for every compilation, so
/// a binary finds it wherever its target directory is (`CARGO_TARGET_DIR` outside the checkout,
/// a copied binary). `None` when the build environment had no such variable.
pub const BUILT_WITH: Option<&str> = option_env!("ORT_DYLIB_PATH");

/// Where the library is looked for: an explicit path, else `$ORT_DYLIB_PATH`, else next to the
/// executable (`libonnxruntime.so.VERSION`, `lib/`, `../lib/` as a container image lays it out,
/// or `../../.vendor/onnxruntime/` for a binary in a checkout's `target/<profile>/`), else the
/// checkout's library this binary was built with (`BUILT_WITH`).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    let built_with = BUILT_WITH.filter(|p| !p.is_empty()).map(PathBuf::from);
    let hint = match &built_with {
        Some(p) => format!(" (scripts/setup.sh puts it at {})", p.display()),
        None => String::new(),
    };
    let (path, source_of_path) = if let Some(p) = explicit {
        (p.to_path_buf(), "the configured path")
    } else if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "ORT_DYLIB_PATH")
    } else {
        let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).unwrap_or_default();
        let mut candidates = vec![
            exe_dir.join(&file),
            exe_dir.join("lib").join(&file),
            exe_dir.join("../lib").join(&file),
            // A binary run straight from a checkout's target/<profile>/ (scripts/setup.sh's layout).
            exe_dir.join("../../.vendor/onnxruntime").join(&file),
        ];
        candidates.extend(built_with.clone());
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => (p.clone(), "the executable's directory or its build checkout"),
            // The build checkout's path is the one a person can act on (run setup there).
            None => (
                built_with.unwrap_or_else(|| candidates[0].clone()),
                "the executable's directory or its build checkout; ORT_DYLIB_PATH is not set",
            ),
        }
    };
    if !path.is_file() {
        return Err(RuntimeError::NotFound { path, source_of_path, hint });
    }
    Ok(path)
}

/// Loads ONNX Runtime once per process (later calls return the first outcome).
pub fn init(explicit: Option<&Path>) -> Result<&'static OrtRuntime, RuntimeError> {
    LOADED
        .get_or_init(|| {
            let path = locate(explicit)?;
            let failed = |reason: String| RuntimeError::LoadFailed { path: path.clone(), reason };
            let env = ort::init_from(&path)
                .map_err(|e| failed(e.to_string()))?
                .with_name("vericlip")
                .build()
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(path = %path.display(), "ONNX Runtime loaded");
            Ok(OrtRuntime { path, env })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One ONNX Runtime session over a Vericlip model (`features` -> `fake_prob`).
/// `Session::run` needs `&mut self`: keep one per inference worker.
pub struct ModelSession {
    session: Session,
}

/// Which ONNX Runtime execution provider sessions use (config `runtime.execution_provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// CUDA when this build has it and the device and libraries work, else CPU (logged).
    #[default]
    Auto,
    Cpu,
    /// CUDA or an error: never a silent fall back to CPU.
    Cuda,
}

impl ModelSession {
    /// Builds a CPU session with one intra-op thread and no spinning: on small boxes more
    /// threads slow an LSTM down, and parallelism comes from running several sessions.
    pub fn from_bytes(runtime: &OrtRuntime, model: &[u8]) -> Result<Self, RuntimeError> {
        Self::build(runtime, model, &[])
    }

    /// Builds a session on the requested provider and says which one is really in use (`"cpu"`
    /// or `"cuda"`). ONNX Runtime falls back to CPU silently when CUDA registration fails, so
    /// CUDA is registered with `error_on_failure` and the fallback (for `Auto`) is ours, logged.
    pub fn with_provider(
        runtime: &OrtRuntime,
        model: &[u8],
        provider: ExecutionProvider,
    ) -> Result<(Self, &'static str), RuntimeError> {
        match provider {
            ExecutionProvider::Cpu => Ok((Self::from_bytes(runtime, model)?, "cpu")),
            ExecutionProvider::Cuda => Ok((Self::cuda(runtime, model)?, "cuda")),
            ExecutionProvider::Auto => match Self::cuda(runtime, model) {
                Ok(s) => Ok((s, "cuda")),
                Err(e) => {
                    tracing::info!(reason = %e, "CUDA execution provider not in use; running on CPU");
                    Ok((Self::from_bytes(runtime, model)?, "cpu"))
                }
            },
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda(runtime: &OrtRuntime, model: &[u8]) -> Result<Self, RuntimeError> {
        Self::build(runtime, model, &[ort::ep::CUDA::default().build().error_on_failure()])
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda(_: &OrtRuntime, _: &[u8]) -> Result<Self, RuntimeError> {
        Err(RuntimeError::Provider("this build has no CUDA support (build with `--features cuda`)".into()))
    }

    fn build(
        runtime: &OrtRuntime,
        model: &[u8],
        providers: &[ort::ep::ExecutionProviderDispatch],
    ) -> Result<Self, RuntimeError> {
        let err = |e: ort::Error| RuntimeError::Model(e.to_string());
        let session = Session::builder(&runtime.env)
            .map_err(err)?
            .with_execution_providers(providers)
            .map_err(|e| RuntimeError::Provider(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| RuntimeError::Model(e.to_string()))?
            .with_intra_op_spinning(false)
            .map_err(|e| RuntimeError::Model(e.to_string()))?
            .commit_from_memory(model)
            .map_err(err)?;
        let has = |names: Vec<&str>, want: &str| names.contains(&want);
        if !has(session.inputs().iter().map(|i| i.name()).collect(), INPUT_NAME)
            || !has(session.outputs().iter().map(|o| o.name()).collect(), OUTPUT_NAME)
        {
            return Err(RuntimeError::Model(format!("the model must take `{INPUT_NAME}` and produce `{OUTPUT_NAME}`")));
        }
        Ok(Self { session })
    }

    /// Fake probabilities for a `[batch, frames, n_features]` batch of normalized features.
    pub fn run(&mut self, batch: ArrayView3<'_, f32>) -> Result<Vec<f32>, RuntimeError> {
        let err = |e: ort::Error| RuntimeError::Inference(e.to_string());
        let n = batch.shape()[0];
        let input = TensorRef::from_array_view(batch).map_err(err)?;
        let outputs = self.session.run(ort::inputs![INPUT_NAME => input]).map_err(err)?;
        let (_, probs) = outputs[OUTPUT_NAME].try_extract_tensor::<f32>().map_err(err)?;
        if probs.len() != n {
            return Err(RuntimeError::Inference(format!("model returned {} scores for a batch of {n}", probs.len())));
        }
        Ok(probs.to_vec())
    }
}
