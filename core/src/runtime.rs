//! Loading ONNX Runtime (`ort` with `load-dynamic`). ort panics on first use when the library is
//! missing or too old, so we find and load it explicitly and turn every failure into an error
//! that says which path was tried and how to fix it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use thiserror::Error;

/// The ONNX Runtime release the project is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

#[derive(Debug, Error, Clone)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {path} (from {source_of_path}); run scripts/setup.sh or set ORT_DYLIB_PATH to libonnxruntime.so.{ORT_VERSION}"
    )]
    NotFound {
        path: PathBuf,
        source_of_path: &'static str,
    },
    #[error(
        "ONNX Runtime library at {path} could not be loaded: {reason}; ORT_DYLIB_PATH must name libonnxruntime.so.{ORT_VERSION}"
    )]
    LoadFailed { path: PathBuf, reason: String },
}

/// The loaded library's path and the process-wide environment (kept alive: ort holds it weakly).
static LOADED: OnceLock<Result<(PathBuf, ort::environment::Environment), RuntimeError>> =
    OnceLock::new();

/// Where the library is looked for: an explicit path, else `$ORT_DYLIB_PATH`, else next to the
/// executable (`libonnxruntime.so.VERSION` or `lib/…`, as the container image lays it out).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    let (path, source_of_path) = if let Some(p) = explicit {
        (p.to_path_buf(), "the configured path")
    } else if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "ORT_DYLIB_PATH")
    } else {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let beside = [
            exe_dir.join(&file),
            exe_dir.join("lib").join(&file),
            exe_dir.join("../lib").join(&file),
        ];
        let found = beside.iter().find(|p| p.is_file()).cloned();
        (
            found.unwrap_or_else(|| beside[0].clone()),
            "the executable's directory",
        )
    };
    if !path.is_file() {
        return Err(RuntimeError::NotFound {
            path,
            source_of_path,
        });
    }
    Ok(path)
}

/// Loads ONNX Runtime once per process (later calls return the first outcome).
pub fn init(explicit: Option<&Path>) -> Result<&'static Path, RuntimeError> {
    LOADED
        .get_or_init(|| {
            let path = locate(explicit)?;
            let failed = |reason: String| RuntimeError::LoadFailed {
                path: path.clone(),
                reason,
            };
            let env = ort::init_from(&path)
                .map_err(|e| failed(e.to_string()))?
                .with_name("vericlip")
                .build()
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(path = %path.display(), "ONNX Runtime loaded");
            Ok((path, env))
        })
        .as_ref()
        .map(|(path, _)| path.as_path())
        .map_err(Clone::clone)
}
