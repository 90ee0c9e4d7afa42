//! The serving state of one model: `<registry>/<model>/serving.json`, beside its versions.
//!
//! Which version serves (`stable`), which one takes a fraction of the traffic (`canary`), the
//! earlier stable versions `rollback` returns to (`history`), and the versions that must never
//! serve again (`retired`: a tombstone; the version's files stay on disk and `seed` never copies
//! it back). Every replica reads this file through its registry watcher and converges on it
//! within one poll; the commands (`vericlip-train model ...`, `fit`/`import --promote`) and
//! `seed` write it, always through [`update`]: an exclusive lock (`flock`) on the model's folder
//! (released by the kernel if a writer dies; no lock file is left behind), read, a pure transition, `generation + 1`, then an atomic
//! replace (temporary file, fsync, rename, directory fsync). A reader never sees a partial file.
//!
//! A model without `serving.json` behaves as before it existed: its highest valid version
//! serves. The first write creates the file with `stable` = that version.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{RegistryError, io, read_bounded, sync_dir, write_synced};

pub const SERVING_FILE: &str = "serving.json";
/// Format of `serving.json` understood by this build.
pub const SERVING_FORMAT: u32 = 1;
/// Largest `serving.json` read: a few hundred bytes in practice.
pub const MAX_SERVING_BYTES: u64 = 1 << 20;
/// Stable versions remembered for `rollback`.
pub const MAX_HISTORY: usize = 32;

/// A version that takes `fraction` of the requests that name no version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub version: u64,
    /// In (0, 1).
    pub fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingState {
    pub format: u32,
    /// The version requests without a version get (outside the canary's fraction).
    pub stable: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Earlier stable versions, oldest first: `rollback` returns to the last one.
    #[serde(default)]
    pub history: Vec<u64>,
    /// Versions that never serve again (their files stay; `seed` never copies them back).
    #[serde(default)]
    pub retired: BTreeSet<u64>,
    /// Incremented by every write: replicas report it, so an operator sees that all converged.
    pub generation: u64,
    /// RFC 3339 time of the last write.
    #[serde(default)]
    pub updated_at: String,
}

impl ServingState {
    /// The state a model starts with: `stable` serves, nothing else is known.
    pub fn new(stable: u64) -> Self {
        Self {
            format: SERVING_FORMAT,
            stable,
            canary: None,
            history: Vec::new(),
            retired: BTreeSet::new(),
            generation: 0,
            updated_at: String::new(),
        }
    }

    /// Whether the state is consistent (checked on every read and before every write).
    pub fn validate(&self) -> Result<(), String> {
        if self.format != SERVING_FORMAT {
            return Err(format!("format {} (this build reads {SERVING_FORMAT})", self.format));
        }
        if self.stable == 0 {
            return Err("stable version 0: versions start at 1".into());
        }
        if self.retired.contains(&self.stable) {
            return Err(format!("stable version {} is retired", self.stable));
        }
        if let Some(c) = self.canary {
            if !(c.fraction > 0.0 && c.fraction < 1.0) {
                return Err(format!("canary fraction {} is outside (0, 1)", c.fraction));
            }
            if c.version == self.stable || self.retired.contains(&c.version) || c.version == 0 {
                return Err(format!("canary version {} is the stable, retired or 0", c.version));
            }
        }
        Ok(())
    }

    pub fn is_retired(&self, version: u64) -> bool {
        self.retired.contains(&version)
    }
}

/// A requested change of the serving state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// `version` takes `fraction` of the unversioned requests; stable keeps the rest.
    Canary { version: u64, fraction: f64 },
    /// `version` becomes stable (the old stable goes to the history; a canary of it ends).
    Promote { version: u64 },
    /// Back to the last earlier stable version that is not retired; a canary ends.
    Rollback,
    /// `version` never serves again.
    Retire { version: u64 },
}

impl Transition {
    /// The version the transition makes serve, if any (the one the commands verify first).
    pub fn target(&self) -> Option<u64> {
        match *self {
            Transition::Canary { version, .. } | Transition::Promote { version } => Some(version),
            Transition::Rollback | Transition::Retire { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transition::Canary { .. } => "canary",
            Transition::Promote { .. } => "promote",
            Transition::Rollback => "rollback",
            Transition::Retire { .. } => "retire",
        }
    }
}

#[derive(Debug, Error)]
pub enum ServingError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{path}: bad serving state: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error("model `{name}` has no published version {version}")]
    Missing { name: String, version: u64 },
    #[error("model `{name}` has no published version that passes the load check")]
    NothingToServe { name: String },
    #[error("version {version} is retired: it never serves again (publish a new version instead)")]
    Retired { version: u64 },
    #[error("version {version} fails the load check, so it cannot serve: {reason}")]
    Unloadable { version: u64, reason: String },
    #[error("version {version} is already the stable version")]
    AlreadyStable { version: u64 },
    #[error("canary fraction {fraction} is outside (0, 1): use e.g. 0.1 for 10 % of the traffic")]
    Fraction { fraction: f64 },
    #[error("no earlier stable version to roll back to (history is empty or all retired)")]
    NoHistory,
    #[error("version {version} is the stable version; promote another version or roll back before retiring it")]
    RetireStable { version: u64 },
}

impl ServingError {
    /// Stable, machine-readable name (logs, the commands' JSON).
    pub fn name(&self) -> &'static str {
        match self {
            ServingError::Registry(e) => e.name(),
            ServingError::BadState { .. } => "bad_serving_state",
            ServingError::Missing { .. } => "version_missing",
            ServingError::NothingToServe { .. } => "nothing_to_serve",
            ServingError::Retired { .. } => "version_retired",
            ServingError::Unloadable { .. } => "version_unloadable",
            ServingError::AlreadyStable { .. } => "already_stable",
            ServingError::Fraction { .. } => "bad_fraction",
            ServingError::NoHistory => "no_history",
            ServingError::RetireStable { .. } => "retire_stable",
        }
    }
}

/// Applies `t` to `state` (pure: no disk). `generation` is left to the writer.
pub fn apply(state: &ServingState, t: Transition) -> Result<ServingState, ServingError> {
    let mut next = state.clone();
    match t {
        Transition::Canary { version, fraction } => {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(ServingError::Fraction { fraction });
            }
            if state.is_retired(version) {
                return Err(ServingError::Retired { version });
            }
            if version == state.stable {
                return Err(ServingError::AlreadyStable { version });
            }
            next.canary = Some(Canary { version, fraction });
        }
        Transition::Promote { version } => {
            if state.is_retired(version) {
                return Err(ServingError::Retired { version });
            }
            if version == state.stable {
                return Err(ServingError::AlreadyStable { version });
            }
            next.history.retain(|v| *v != state.stable);
            next.history.push(state.stable);
            if next.history.len() > MAX_HISTORY {
                next.history.remove(0);
            }
            next.stable = version;
            if next.canary.is_some_and(|c| c.version == version) {
                next.canary = None;
            }
        }
        Transition::Rollback => {
            let previous = next.history.iter().rposition(|v| !state.is_retired(*v) && *v != state.stable);
            let Some(at) = previous else { return Err(ServingError::NoHistory) };
            next.stable = next.history[at];
            // What came after it in the history is what is rolled back from.
            next.history.truncate(at);
            next.canary = None;
        }
        Transition::Retire { version } => {
            if version == state.stable {
                return Err(ServingError::RetireStable { version });
            }
            if next.canary.is_some_and(|c| c.version == version) {
                next.canary = None;
            }
            next.history.retain(|v| *v != version);
            next.retired.insert(version);
        }
    }
    Ok(next)
}

/// Reads `<model_dir>/serving.json`; `None` when there is none (the model predates it).
pub fn read(model_dir: &Path) -> Result<Option<ServingState>, ServingError> {
    let path = model_dir.join(SERVING_FILE);
    let bytes = match read_bounded(&path, crate::operator_file::FileKind::SERVING_STATE, "MAX_SERVING_BYTES") {
        Ok(b) => b,
        Err(RegistryError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |reason: String| ServingError::BadState { path: path.clone(), reason };
    let state: ServingState = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    state.validate().map_err(bad)?;
    Ok(Some(state))
}

/// Replaces `<model_dir>/serving.json` atomically with `state`.
pub fn write(model_dir: &Path, state: &ServingState) -> Result<(), ServingError> {
    let path = model_dir.join(SERVING_FILE);
    state.validate().map_err(|reason| ServingError::BadState { path: path.clone(), reason })?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| ServingError::BadState { path: path.clone(), reason: e.to_string() })?;
    let tmp = model_dir.join(format!(".{SERVING_FILE}.tmp-{}", std::process::id()));
    let result = write_synced(&tmp, &json)
        .and_then(|()| fs::rename(&tmp, &path).map_err(io(&path)))
        .and_then(|()| sync_dir(model_dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// Holds the model's writer lock until dropped (the kernel releases it if the process dies).
pub struct WriteLock {
    _file: fs::File,
}

/// Takes the model's writer lock (on the folder itself), waiting for another writer to finish.
pub fn lock(model_dir: &Path) -> Result<WriteLock, ServingError> {
    let file = fs::File::open(model_dir).map_err(io(model_dir))?;
    file.lock().map_err(io(model_dir))?;
    Ok(WriteLock { _file: file })
}

/// What a write changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `None` when the model had no `serving.json`.
    pub before: Option<ServingState>,
    pub after: ServingState,
}

/// Under the model's lock: reads the state (or `initial()` when there is none), applies `f`,
/// bumps the generation and writes the result. `f` sees the current state, so checks against
/// the disk made inside it cannot race another writer.
pub fn update(
    model_dir: &Path,
    initial: impl FnOnce() -> Result<ServingState, ServingError>,
    f: impl FnOnce(&ServingState) -> Result<ServingState, ServingError>,
) -> Result<Change, ServingError> {
    let _lock = lock(model_dir)?;
    let before = read(model_dir)?;
    let current = match &before {
        Some(s) => s.clone(),
        None => initial()?,
    };
    let mut after = f(&current)?;
    after.generation = before.as_ref().map_or(0, |s| s.generation) + 1;
    after.updated_at = super::rfc3339(std::time::SystemTime::now());
    write(model_dir, &after)?;
    Ok(Change { before, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServingState {
        ServingState::new(4)
    }

    #[test]
    fn canary_promote_rollback_retire() {
        let s = apply(&state(), Transition::Canary { version: 5, fraction: 0.1 }).unwrap();
        assert_eq!(s.canary, Some(Canary { version: 5, fraction: 0.1 }));
        assert_eq!(s.stable, 4);
        let s = apply(&s, Transition::Promote { version: 5 }).unwrap();
        assert_eq!((s.stable, s.canary, s.history.clone()), (5, None, vec![4]));
        let s = apply(&s, Transition::Rollback).unwrap();
        assert_eq!((s.stable, s.history.clone()), (4, vec![]));
        assert!(matches!(apply(&s, Transition::Rollback), Err(ServingError::NoHistory)));
        let s = apply(&s, Transition::Retire { version: 5 }).unwrap();
        assert!(s.is_retired(5));
        assert!(matches!(apply(&s, Transition::Promote { version: 5 }), Err(ServingError::Retired { version: 5 })));
        assert!(matches!(
            apply(&s, Transition::Canary { version: 5, fraction: 0.5 }),
            Err(ServingError::Retired { version: 5 })
        ));
        s.validate().unwrap();
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let s = state();
        for f in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(matches!(
                apply(&s, Transition::Canary { version: 5, fraction: f }),
                Err(ServingError::Fraction { .. })
            ));
        }
        assert!(matches!(apply(&s, Transition::Promote { version: 4 }), Err(ServingError::AlreadyStable { .. })));
        assert!(matches!(apply(&s, Transition::Retire { version: 4 }), Err(ServingError::RetireStable { .. })));
        // Retiring the canary ends it; rolling back skips retired versions.
        let s = apply(&s, Transition::Canary { version: 6, fraction: 0.2 }).unwrap();
        let s = apply(&s, Transition::Retire { version: 6 }).unwrap();
        assert_eq!(s.canary, None);
        let s = apply(&s, Transition::Promote { version: 7 }).unwrap();
        let s = apply(&s, Transition::Promote { version: 8 }).unwrap();
        let s = apply(&s, Transition::Retire { version: 7 }).unwrap();
        let s = apply(&s, Transition::Rollback).unwrap();
        assert_eq!(s.stable, 4);
    }

    #[test]
    fn write_read_update_round_trip() {
        let dir = std::env::temp_dir().join(format!("vericlip-serving-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), None);
        let c = update(&dir, || Ok(ServingState::new(2)), |s| apply(s, Transition::Promote { version: 3 })).unwrap();
        assert_eq!(c.before, None);
        assert_eq!((c.after.stable, c.after.generation), (3, 1));
        let back = read(&dir).unwrap().unwrap();
        assert_eq!(back, c.after);
        let c = update(&dir, || unreachable!(), |s| apply(s, Transition::Rollback)).unwrap();
        assert_eq!((c.after.stable, c.after.generation), (2, 2));
        // A refused transition writes nothing.
        assert!(update(&dir, || unreachable!(), |s| apply(s, Transition::Rollback)).is_err());
        assert_eq!(read(&dir).unwrap().unwrap().generation, 2);
        fs::write(dir.join(SERVING_FILE), b"{\"format\": 1}").unwrap();
        assert!(matches!(read(&dir), Err(ServingError::BadState { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
