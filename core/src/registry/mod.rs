//! The model registry: a directory `<registry>/<model-name>/<version>/{model.onnx, manifest.json,
//! report/}` shared by the trainer (which publishes) and the service (which scans and serves).
//!
//! Publishing is atomic: everything is written into `<registry>/<name>/.staging-<unique>/`,
//! fsynced, and renamed to the next free version number; a rename that loses a race to another
//! publisher retries with the next number. Readers ignore dot-folders and never see a partial
//! version. Published versions are never rewritten.

pub mod contract;
mod manifest;
pub mod serving;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::operator_file::{self, FileKind, Refusal};

pub use manifest::{Dim, MANIFEST_FORMAT, Manifest, Provenance, TensorInfo, rfc3339};

pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const REPORT_DIR: &str = "report";
/// Attempts at claiming a version number before giving up.
const MAX_PUBLISH_ATTEMPTS: u32 = 64;
/// Largest `manifest.json` read (a registry's files are untrusted input to every replica that
/// scans it). Manifests are a few KB; the bound is far above any real one.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Largest `model.onnx` read: protobuf's own 2 GiB limit on one ONNX file.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;
/// Largest fixed batch dimension a manifest's input shape may name.
pub const MAX_FIXED_BATCH: u64 = 4096;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid model name {0:?}: use letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidName(String),
    #[error("{path}: bad manifest: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path}: sha256 {actual} does not match the manifest's {expected}")]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String },
    #[error("{path}: could not claim a version after {MAX_PUBLISH_ATTEMPTS} attempts")]
    Contended { path: PathBuf },
    #[error("{path}: {what} is over the limit {limit}")]
    OverLimit { path: PathBuf, what: String, limit: String },
    #[error("{path}: {source}")]
    Contract { path: PathBuf, source: contract::ContractError },
    #[error("{path}: {reason}")]
    ServingState { path: PathBuf, reason: String },
    #[error(
        "{path}: sha256 {actual} is not the {expected} recorded when this version was published: \
         its files changed after it was published (published versions are immutable: publish a new version instead)"
    )]
    NotAsPublished { path: PathBuf, expected: String, actual: String },
}

impl RegistryError {
    /// Stable, machine-readable name (logs, metrics labels).
    pub fn name(&self) -> &'static str {
        match self {
            RegistryError::Io { .. } => "registry_io",
            RegistryError::InvalidName(_) => "invalid_model_name",
            RegistryError::BadManifest { .. } => "bad_manifest",
            RegistryError::ChecksumMismatch { .. } => "checksum_mismatch",
            RegistryError::Contended { .. } => "publish_contended",
            RegistryError::OverLimit { .. } => "over_limit",
            RegistryError::Contract { .. } => "model_contract",
            RegistryError::ServingState { .. } => "bad_serving_state",
            RegistryError::NotAsPublished { .. } => "changed_after_publish",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.to_path_buf(), source }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(RegistryError::InvalidName(name.to_string())) }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(path: &Path) -> Result<(), RegistryError> {
    fs::File::open(path).and_then(|d| d.sync_all()).map_err(io(path))
}

/// Published version numbers of a model, ascending (dot-folders and non-numbers ignored).
pub fn versions(model_dir: &Path) -> Result<Vec<u64>, RegistryError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(model_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(model_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(model_dir))?;
        let name = entry.file_name();
        if let Some(v) = name.to_str().and_then(|s| s.parse::<u64>().ok()).filter(|v| *v > 0)
            && entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
        {
            out.push(v);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// A published version on disk.
#[derive(Debug, Clone)]
pub struct Published {
    pub name: String,
    pub version: u64,
    pub dir: PathBuf,
}

/// Publishes a model atomically as the next version of `manifest.name`: the number after every
/// one ever issued (the serving state's `highest_version`, its retired and named versions, and
/// the folders on disk), so a retired or deleted version's number is never reused. The number
/// is taken under the model's writers' lock and recorded in the serving state (when the model
/// has one) before the lock is released. `report` holds `(relative path under report/,
/// bytes)`. Returns where it landed.
pub fn publish(
    registry: &Path,
    mut manifest: Manifest,
    model_onnx: &[u8],
    report: &[(&str, Vec<u8>)],
) -> Result<Published, RegistryError> {
    validate_name(&manifest.name)?;
    let model_dir = registry.join(&manifest.name);
    fs::create_dir_all(&model_dir).map_err(io(&model_dir))?;
    let unique = format!(
        ".staging-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    );
    let staging = model_dir.join(unique);
    let result = (|| {
        fs::create_dir(&staging).map_err(io(&staging))?;
        write_synced(&staging.join(MODEL_FILE), model_onnx)?;
        let report_dir = staging.join(REPORT_DIR);
        fs::create_dir(&report_dir).map_err(io(&report_dir))?;
        for (rel, bytes) in report {
            if rel.contains('/') || rel.starts_with('.') {
                return Err(RegistryError::BadManifest {
                    path: report_dir.clone(),
                    reason: format!("bad report file name {rel:?}"),
                });
            }
            write_synced(&report_dir.join(rel), bytes)?;
        }
        sync_dir(&report_dir)?;
        manifest.format = MANIFEST_FORMAT;
        manifest.sha256 = sha256_hex(model_onnx);
        let serving_error = |e: serving::ServingError| match e {
            serving::ServingError::Registry(r) => r,
            other => {
                RegistryError::ServingState { path: model_dir.join(serving::SERVING_FILE), reason: other.to_string() }
            }
        };
        let _lock = serving::lock(&model_dir).map_err(serving_error)?;
        let state = serving::read(&model_dir).map_err(serving_error)?;
        if state.is_none() && serving::had_state(&model_dir) {
            return Err(RegistryError::ServingState {
                path: model_dir.join(serving::SERVING_FILE),
                reason: "missing although the model had one: the next version number is unknown \
                         (`vericlip-train model restore` first)"
                    .into(),
            });
        }
        for _ in 0..MAX_PUBLISH_ATTEMPTS {
            let on_disk = versions(&model_dir)?;
            let version =
                state.as_ref().map_or(0, |s| s.issued(&on_disk)).max(on_disk.last().copied().unwrap_or(0)) + 1;
            manifest.version = version;
            let json = serde_json::to_vec_pretty(&manifest)
                .map_err(|e| RegistryError::BadManifest { path: staging.clone(), reason: e.to_string() })?;
            write_synced(&staging.join(MANIFEST_FILE), &json)?;
            sync_dir(&staging)?;
            let target = model_dir.join(version.to_string());
            // rename(2) refuses to replace a non-empty directory: losing a race is an error here.
            match fs::rename(&staging, &target) {
                Ok(()) => {
                    sync_dir(&model_dir)?;
                    if let Some(before) = &state {
                        let mut after = before.clone();
                        after.highest_version = version;
                        after.published.insert(version, sha256_hex(&json));
                        after.generation += 1;
                        after.updated_at = rfc3339(std::time::SystemTime::now());
                        let record = serving::Record { what: "publish", reason: None };
                        serving::write_recorded(&model_dir, Some(before), &after, record).map_err(serving_error)?;
                    }
                    return Ok(Published { name: manifest.name.clone(), version, dir: target });
                }
                Err(e) if target.exists() => {
                    tracing::debug!(version, error = %e, "version taken by another publisher, retrying");
                }
                Err(e) => return Err(io(&target)(e)),
            }
        }
        Err(RegistryError::Contended { path: model_dir.clone() })
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// A version read back from disk, checksum verified.
#[derive(Debug, Clone)]
pub struct LoadedVersion {
    pub manifest: Manifest,
    /// sha256 of `manifest.json` as read: the version's identity (the manifest names
    /// `model.onnx`'s sha256, checked), compared with the one the serving state recorded when
    /// the version was published (`ServingState::published`).
    pub manifest_sha256: String,
    pub model_onnx: Vec<u8>,
    pub dir: PathBuf,
}

/// sha256 of a version's `manifest.json` (read as an operator file, bounded): what the serving
/// state records when the version is published. The manifest names `model.onnx`'s sha256, which
/// every load checks, so this one digest covers both files.
pub fn manifest_digest(dir: &Path) -> Result<String, RegistryError> {
    let bytes = read_bounded(&dir.join(MANIFEST_FILE), FileKind::MANIFEST, "MAX_MANIFEST_BYTES")?;
    Ok(sha256_hex(&bytes))
}

/// Reads a whole registry file as a `kind` of operator file (`operator_file`: regular files
/// only, never blocking, at most `kind.max_bytes`; `limit_name` says which limit in the error).
fn read_bounded(path: &Path, kind: FileKind, limit_name: &str) -> Result<Vec<u8>, RegistryError> {
    operator_file::read(path, kind).map_err(|e| match e.reason {
        Refusal::Io(source) => RegistryError::Io { path: e.path, source },
        Refusal::TooLarge { size, limit, .. } => RegistryError::OverLimit {
            path: e.path,
            what: format!("{size} bytes"),
            limit: format!("{limit_name} ({limit} bytes)"),
        },
        other => RegistryError::Io { path: e.path, source: std::io::Error::other(other.to_string()) },
    })
}

/// Checks a manifest's sizes against the limits (before anything is allocated from them) and its
/// input shape against its feature spec: `[batch, frames, n_features]`, batch named or fixed.
fn check_sizes(manifest: &Manifest, path: &Path) -> Result<(), RegistryError> {
    let bad = |reason: String| RegistryError::BadManifest { path: path.to_path_buf(), reason };
    manifest.feature_spec.validate().map_err(|e| bad(e.to_string()))?;
    contract::check_manifest(manifest).map_err(|e| bad(e.to_string()))?;
    match manifest.input.shape.first() {
        Some(Dim::Fixed(n)) if *n == 0 || *n > MAX_FIXED_BATCH => Err(RegistryError::OverLimit {
            path: path.to_path_buf(),
            what: format!("input batch dimension {n}"),
            limit: format!("MAX_FIXED_BATCH (1..={MAX_FIXED_BATCH})"),
        }),
        _ => Ok(()),
    }
}

/// Reads `<dir>/manifest.json` and `<dir>/model.onnx`, and checks format, name/version against
/// the folder, sizes against the limits (`MAX_MANIFEST_BYTES`, `MAX_MODEL_BYTES`, the feature
/// spec's `limits`), input shape, sha256, feature spec and normalization shape.
pub fn load_version(dir: &Path) -> Result<LoadedVersion, RegistryError> {
    let bad = |reason: String| RegistryError::BadManifest { path: dir.to_path_buf(), reason };
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = read_bounded(&manifest_path, FileKind::MANIFEST, "MAX_MANIFEST_BYTES")?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let manifest_sha256 = sha256_hex(&bytes);
    drop(bytes);
    if manifest.format != MANIFEST_FORMAT {
        return Err(bad(format!("format {} (this build reads {MANIFEST_FORMAT})", manifest.format)));
    }
    let folder_version = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok());
    if folder_version.is_some_and(|v| v != manifest.version) {
        return Err(bad(format!("manifest says version {}, folder says {:?}", manifest.version, folder_version)));
    }
    check_sizes(&manifest, dir)?;
    manifest.normalization.validate(manifest.feature_spec.n_features()).map_err(|e| bad(e.to_string()))?;
    if !(0.0..=1.0).contains(&manifest.threshold) {
        return Err(bad(format!("threshold {} is outside 0..=1", manifest.threshold)));
    }
    let model_path = dir.join(MODEL_FILE);
    let model_onnx = read_bounded(&model_path, FileKind::MODEL, "MAX_MODEL_BYTES")?;
    let actual = sha256_hex(&model_onnx);
    if actual != manifest.sha256 {
        return Err(RegistryError::ChecksumMismatch { path: model_path, expected: manifest.sha256.clone(), actual });
    }
    Ok(LoadedVersion { manifest, manifest_sha256, model_onnx, dir: dir.to_path_buf() })
}

/// Everything a replica checks before it asks ONNX Runtime to load a version: [`load_version`]
/// (manifest, limits, checksum) and the ONNX graph's declared input and output against the
/// serving contract ([`contract::check_onnx`]). The lifecycle commands refuse a version that
/// fails it; a replica lists such a version as rejected without loading it.
pub fn verify_version(dir: &Path) -> Result<LoadedVersion, RegistryError> {
    let loaded = load_version(dir)?;
    contract::check_onnx(&loaded.model_onnx, &loaded.manifest.feature_spec)
        .map_err(|source| RegistryError::Contract { path: dir.join(MODEL_FILE), source })?;
    Ok(loaded)
}

/// [`verify_version`], and the files are the ones published: `published` is the manifest's
/// sha256 the serving state recorded when the version was published (`None`: not recorded, as
/// for versions published before the record existed). A version whose files were replaced
/// after it was published, even by valid ones, fails with [`RegistryError::NotAsPublished`]: on
/// every replica alike, whenever it starts, and in the commands' checks.
pub fn verify_published(dir: &Path, published: Option<&str>) -> Result<LoadedVersion, RegistryError> {
    let loaded = verify_version(dir)?;
    match published {
        Some(expected) if expected != loaded.manifest_sha256 => Err(RegistryError::NotAsPublished {
            path: dir.join(MANIFEST_FILE),
            expected: expected.to_string(),
            actual: loaded.manifest_sha256,
        }),
        _ => Ok(loaded),
    }
}

/// The highest version of a model that is not `retired` and passes [`verify_version`]: what
/// serves a model without a serving state.
pub fn highest_valid(
    model_dir: &Path,
    retired: &std::collections::BTreeSet<u64>,
) -> Result<Option<u64>, RegistryError> {
    Ok(versions(model_dir)?
        .into_iter()
        .rev()
        .filter(|v| !retired.contains(v))
        .find(|v| verify_version(&model_dir.join(v.to_string())).is_ok()))
}

/// Model names in a registry (dot-folders ignored), sorted.
pub fn model_names(registry: &Path) -> Result<Vec<String>, RegistryError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(registry).map_err(io(registry))? {
        let entry = entry.map_err(io(registry))?;
        if let Some(name) = entry.file_name().to_str()
            && validate_name(name).is_ok()
            && entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// What `seed` did with one version of the source registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub name: String,
    pub version: u64,
    /// False when the target already had this version (it is never touched then) or retired it.
    pub copied: bool,
    /// The target's serving state retires this version: it was not copied (a tombstone).
    pub retired: bool,
    /// Why it was not copied although the target lacks it or holds another model under its
    /// number (numbers are never reused): `None` when copied, present alike, or retired.
    pub refused: Option<String>,
}

/// Copies every published version of `from` that `to` lacks, each one atomically (a staging
/// dot-folder, fsynced, then renamed to its version number): how a first install fills an empty
/// registry volume from the bundled models. A version that exists in `to` is never rewritten,
/// whatever its content, and one that `to`'s serving state retired is never copied back, so
/// seeding is safe to run on every pod start.
///
/// Seeded versions are candidates: the target's serving state is never changed. A target model
/// without one gets one first (under the writers' lock, before any version lands): with the
/// bundle's `serving.json` on a first install (no versions yet), else with `stable` = the
/// version that serves now, so a newer bundled version never starts serving by itself. A target
/// whose state is unreadable, or missing although it had one (its history exists), gets no
/// state and no version: what serves is the operator's to restore (`model restore`), never
/// seeding's to pick; its replicas keep their last good state or stay unready with the reason.
pub fn seed(from: &Path, to: &Path) -> Result<Vec<Seeded>, serving::ServingError> {
    let mut out = Vec::new();
    for name in model_names(from)? {
        let model_dir = to.join(&name);
        fs::create_dir_all(&model_dir).map_err(io(&model_dir))?;
        // The writers' lock only when this run may write: a pod restart over a seeded registry
        // (every bundled version present, a serving state in place) reads and changes nothing,
        // not even the folder's mtime that taking the lock file would touch.
        let bundled_versions = versions(&from.join(&name))?;
        let has_state = model_dir.join(serving::SERVING_FILE).exists();
        let nothing_to_serve = bundled_versions.is_empty() && versions(&model_dir)?.is_empty();
        let may_write = bundled_versions.iter().any(|v| !model_dir.join(v.to_string()).exists())
            || !(has_state || nothing_to_serve);
        let lock = if may_write { Some(serving::lock(&model_dir)?) } else { None };
        let state = match serving::read(&model_dir).and_then(|s| match s {
            Some(s) => match serving::refused_base(&model_dir, &s, &versions(&model_dir)?)? {
                Some(reason) => {
                    Err(serving::ServingError::BadState { path: model_dir.join(serving::SERVING_FILE), reason })
                }
                None => Ok(Some(s)),
            },
            None => Ok(None),
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(model = %name, error = %e, "not seeding this model: its serving state is unreadable (fix or `vericlip-train model restore` it)");
                continue;
            }
        };
        let first_install = state.is_none() && !serving::had_state(&model_dir) && versions(&model_dir)?.is_empty();
        let state = match state {
            Some(s) => Some(s),
            None if serving::had_state(&model_dir) => {
                tracing::error!(model = %name, "not seeding this model: its serving.json is missing although it had one (`vericlip-train model restore` it)");
                continue;
            }
            None => {
                let on_disk = versions(&model_dir)?;
                let first = if on_disk.is_empty() {
                    // A first install: the bundle's state, if it names a bundled version.
                    let bundle = from.join(&name);
                    match serving::read(&bundle)? {
                        Some(s) => {
                            serving::check_successor(None, &s, &versions(&bundle)?).map_err(|reason| {
                                serving::ServingError::BadState { path: bundle.join(serving::SERVING_FILE), reason }
                            })?;
                            Some(s)
                        }
                        None => None,
                    }
                } else {
                    highest_valid(&model_dir, &Default::default())?.map(|stable| serving::ServingState {
                        generation: 1,
                        updated_at: rfc3339(std::time::SystemTime::now()),
                        ..serving::ServingState::new(stable)
                    })
                };
                if let Some(s) = &first {
                    serving::write_recorded(&model_dir, None, s, serving::Record { what: "seed", reason: None })?;
                }
                first
            }
        };
        // Numbers this registry issued before this seed: a bundled version under one of them is
        // another model (or a deleted one), never copied in its place.
        let on_disk = versions(&model_dir)?;
        let issued = if first_install {
            0
        } else {
            state.as_ref().map_or(0, |s| s.issued(&on_disk)).max(on_disk.last().copied().unwrap_or(0))
        };
        let mut highest_copied = 0;
        let mut copied_digests = Vec::new();
        for version in versions(&from.join(&name))? {
            let seeded = |copied, retired, refused| Seeded { name: name.clone(), version, copied, retired, refused };
            if state.as_ref().is_some_and(|s| s.is_retired(version)) {
                out.push(seeded(false, true, None));
                continue;
            }
            if let Some(lock) = &lock {
                lock.refresh();
            }
            let source = from.join(&name).join(version.to_string());
            // Only versions that verify are worth seeding.
            let bundled = load_version(&source)?;
            let target = model_dir.join(version.to_string());
            if target.exists() {
                let theirs = load_version(&target).map(|t| t.manifest.sha256);
                let refused = match theirs {
                    Ok(sha) if sha == bundled.manifest.sha256 => None,
                    Ok(sha) => Some(format!(
                        "this registry's version {version} is another model (model.onnx sha256 {sha}, the bundle's {}): \
                         the bundled one is not seeded, as numbers are never reused",
                        bundled.manifest.sha256
                    )),
                    Err(e) => Some(format!(
                        "this registry's version {version} does not load ({e}): the bundled one is not seeded in its place"
                    )),
                };
                out.push(seeded(false, false, refused));
                continue;
            }
            if version <= issued {
                out.push(seeded(
                    false,
                    false,
                    Some(format!(
                        "this registry already issued version number {version} (up to {issued}; its folder is gone): \
                         the bundled one is not seeded, as numbers are never reused"
                    )),
                ));
                continue;
            }
            let staging = model_dir.join(format!(".staging-seed-{}-{version}", std::process::id()));
            let result = copy_tree_synced(&source, &staging).and_then(|()| match fs::rename(&staging, &target) {
                Ok(()) => sync_dir(&model_dir).map(|()| true),
                // Another pod seeded it first: theirs stands.
                Err(_) if target.exists() => Ok(false),
                Err(e) => Err(io(&target)(e)),
            });
            let _ = fs::remove_dir_all(&staging);
            let copied = result?;
            if copied {
                highest_copied = highest_copied.max(version);
                copied_digests.push((version, bundled.manifest_sha256.clone()));
            }
            out.push(seeded(copied, false, None));
        }
        // The copied numbers are issued now, and the copies' manifests are what was published
        // under them: both recorded, so that a number is never reused and every replica rejects
        // the version if its files ever change.
        let unrecorded = |s: &serving::ServingState| copied_digests.iter().any(|(v, _)| !s.published.contains_key(v));
        if let Some(before) = state.as_ref().filter(|s| highest_copied > s.highest_version || unrecorded(s)) {
            let mut after = before.clone();
            after.highest_version = after.highest_version.max(highest_copied);
            for (v, digest) in &copied_digests {
                after.published.entry(*v).or_insert_with(|| digest.clone());
            }
            after.generation += 1;
            after.updated_at = rfc3339(std::time::SystemTime::now());
            serving::write_recorded(&model_dir, Some(before), &after, serving::Record { what: "seed", reason: None })?;
        }
    }
    Ok(out)
}

fn copy_tree_synced(from: &Path, to: &Path) -> Result<(), RegistryError> {
    fs::create_dir(to).map_err(io(to))?;
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&src))?.is_dir() {
            copy_tree_synced(&src, &dst)?;
        } else {
            let bytes = fs::read(&src).map_err(io(&src))?;
            write_synced(&dst, &bytes)?;
        }
    }
    sync_dir(to)
}
