//! The serving state of one model: `<registry>/<model>/serving.json`, beside its versions.
//!
//! Which version serves (`stable`), which one takes a fraction of the traffic (`canary`), the
//! earlier stable versions `rollback` returns to (`history`), and the versions that must never
//! serve again (`retired`: a tombstone; the version's files stay on disk and `seed` never copies
//! it back). Every replica reads this file through its registry watcher and converges on it
//! within one poll; the commands (`vericlip-train model ...`, `fit`/`import --promote`) and
//! `seed` write it, always under the model's writers' lock ([`lock`]: an exclusive-create lock
//! file that works on NFS, with its owner and an expiry): read, a pure transition, `generation +
//! 1`, the one rule every state must pass ([`check_successor`]), then an atomic replace
//! (temporary file, fsync, rename, directory fsync) and a line in the append-only history
//! ([`HISTORY_FILE`]). A reader never sees a partial file.
//!
//! A model that never had `serving.json` (no history either) behaves as before it existed: its
//! highest valid version serves. The first write creates the file with `stable` = that version.
//! Once a model has had one, a missing or bad file is never "no state": replicas keep their last
//! good state, the commands refuse to build on it, and `restore` writes the last one back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{RegistryError, io, read_bounded, sync_dir, write_synced};

pub const SERVING_FILE: &str = "serving.json";
/// Append-only record of every write of `serving.json` (one JSON [`HistoryEntry`] a line). Its
/// presence also tells that the model had a serving state: a missing `serving.json` is then a
/// loss to report, never "no state yet" (which would serve the highest version).
pub const HISTORY_FILE: &str = "serving-history.jsonl";
/// Largest history read by `model history` (a line is a few hundred bytes: ~100k changes).
pub const MAX_HISTORY_BYTES: u64 = 64 << 20;
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
    /// The highest version number ever issued for this model (published, seeded, named here),
    /// kept when its folder is deleted: `publish` takes the next one, so a number never names
    /// two models (a retired version's included). 0 in states written before it existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub highest_version: u64,
    /// Per version, the sha256 of its `manifest.json` when it was published (publish, seed; a
    /// version published before this record existed is recorded by the next write of the
    /// state). The manifest names `model.onnx`'s sha256, so this covers both files. Every
    /// replica, running or started later, rejects a version whose files no longer match
    /// (`registry::verify_published`), and an entry never changes or goes ([`check_successor`]):
    /// a number names one model for good.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub published: BTreeMap<u64, String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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
            highest_version: stable,
            published: BTreeMap::new(),
        }
    }

    /// The highest version number this state and the versions `on_disk` know of: the next
    /// publish takes the one after it.
    pub fn issued(&self, on_disk: &[u64]) -> u64 {
        let named = [self.highest_version, self.stable, self.canary.map_or(0, |c| c.version)];
        named
            .into_iter()
            .chain(self.retired.iter().copied())
            .chain(self.history.iter().copied())
            .chain(self.published.keys().copied())
            .chain(on_disk.iter().copied())
            .max()
            .unwrap_or(0)
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
    /// Ends the canary; stable stays.
    Abort,
    /// Stable back to the last earlier stable version that is not retired (refused while a
    /// canary runs: ending a canary is `Abort`, which never moves stable).
    Rollback,
    /// `version` never serves again.
    Retire { version: u64 },
}

impl Transition {
    /// The version the transition makes serve, if any (the one the commands verify first).
    pub fn target(&self) -> Option<u64> {
        match *self {
            Transition::Canary { version, .. } | Transition::Promote { version } => Some(version),
            Transition::Abort | Transition::Rollback | Transition::Retire { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transition::Canary { .. } => "canary",
            Transition::Promote { .. } => "promote",
            Transition::Abort => "abort",
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
    #[error("no canary is running (stable is {stable}): nothing to abort")]
    NoCanary { stable: u64 },
    #[error(
        "canary version {canary} is running: end it with `vericlip-train model abort` (stable stays {stable}); \
         rollback only returns stable to the previous stable version"
    )]
    CanaryRunning { canary: u64, stable: u64 },
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
            ServingError::NoCanary { .. } => "no_canary",
            ServingError::CanaryRunning { .. } => "canary_running",
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
        Transition::Abort => {
            if next.canary.take().is_none() {
                return Err(ServingError::NoCanary { stable: state.stable });
            }
        }
        Transition::Rollback => {
            if let Some(c) = state.canary {
                return Err(ServingError::CanaryRunning { canary: c.version, stable: state.stable });
            }
            let previous = next.history.iter().rposition(|v| !state.is_retired(*v) && *v != state.stable);
            let Some(at) = previous else { return Err(ServingError::NoHistory) };
            next.stable = next.history[at];
            // What came after it in the history is what is rolled back from.
            next.history.truncate(at);
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

/// Whether `next` may follow `previous` (the last good state a replica or a writer knows) with
/// the versions `on_disk`: the one rule for every serving state, however it was written. A
/// state that breaks it never serves: a replica keeps its last good state, and the commands
/// refuse to write it.
pub fn check_successor(previous: Option<&ServingState>, next: &ServingState, on_disk: &[u64]) -> Result<(), String> {
    next.validate()?;
    if !on_disk.contains(&next.stable) {
        return Err(format!("stable version {} is not in the registry", next.stable));
    }
    if let Some(c) = next.canary
        && !on_disk.contains(&c.version)
    {
        return Err(format!("canary version {} is not in the registry", c.version));
    }
    if let Some(p) = previous {
        if next.generation < p.generation {
            return Err(format!(
                "generation {} is older than the generation {} already applied",
                next.generation, p.generation
            ));
        }
        if let Some(v) = p.retired.difference(&next.retired).next() {
            return Err(format!("version {v} was retired and is no longer: a retired version never serves again"));
        }
        if let Some((v, digest)) = p.published.iter().find(|(v, d)| next.published.get(v) != Some(d)) {
            return Err(format!(
                "the checksum recorded when version {v} was published ({digest}) is changed or gone: \
                 a published version never changes"
            ));
        }
    }
    Ok(())
}

/// Whether the model ever had a serving state (its history file exists).
pub fn had_state(model_dir: &Path) -> bool {
    fs::symlink_metadata(model_dir.join(HISTORY_FILE)).is_ok()
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

/// The writers' lock file beside `serving.json`.
pub const LOCK_FILE: &str = ".serving.lock";
/// A lock older than this is taken to be left by a writer that died (a transition takes well
/// under a second, its load check a few seconds; a training run never holds it while it trains).
pub const LOCK_EXPIRY: std::time::Duration = std::time::Duration::from_secs(120);
/// How long a writer waits for another before it gives up, naming the holder.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Holds the model's writer lock until dropped.
///
/// The lock is a file created with `O_CREAT | O_EXCL` (`create_new`), which is atomic on local
/// filesystems and on NFS v3 and v4 (EFS, Filestore, Azure Files NFS), where `flock` on a folder
/// is not available (the Linux NFS client emulates `flock` with byte-range locks, which need a
/// file open for writing) and would let writers on two nodes lose each other's updates. It
/// names its owner (host, pid, time); one left by a writer that died is broken after
/// [`LOCK_EXPIRY`] by renaming it away (only one breaker's rename succeeds).
pub struct WriteLock {
    path: PathBuf,
    owner: String,
}

impl WriteLock {
    /// Marks the lock as still held (a long holder, e.g. `seed` copying versions, calls it
    /// between steps so that it never looks expired).
    pub fn refresh(&self) {
        if let Ok(f) = fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Only our own: a lock broken as stale and retaken by another writer is not removed.
        if fs::read_to_string(&self.path).is_ok_and(|o| o == self.owner) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Takes the model's writer lock, waiting (up to [`LOCK_WAIT`]) for another writer to finish.
pub fn lock(model_dir: &Path) -> Result<WriteLock, ServingError> {
    use std::io::Write;
    let path = model_dir.join(LOCK_FILE);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let owner = format!(
            "{} pid {} at {} nonce {}",
            actor(),
            std::process::id(),
            super::rfc3339(std::time::SystemTime::now()),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        );
        match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(owner.as_bytes()).and_then(|()| f.sync_all()).map_err(io(&path))?;
                return Ok(WriteLock { path, owner });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&path)(e).into()),
        }
        let age = fs::symlink_metadata(&path).ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > LOCK_EXPIRY) {
            let stale =
                model_dir.join(format!("{LOCK_FILE}.stale-{}-{}", std::process::id(), started.elapsed().as_nanos()));
            if fs::rename(&path, &stale).is_ok() {
                let holder = fs::read_to_string(&stale).unwrap_or_default();
                tracing::warn!(holder = %holder.trim(), age_s = age.map_or(0, |a| a.as_secs()), "broke a writers' lock left by a writer that died");
                let _ = fs::remove_file(&stale);
            }
            continue;
        }
        if started.elapsed() > LOCK_WAIT {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(ServingError::BadState {
                path,
                reason: format!(
                    "another writer holds the lock ({}); waited {} s. If no writer runs, it expires after {} s",
                    holder.trim(),
                    LOCK_WAIT.as_secs(),
                    LOCK_EXPIRY.as_secs()
                ),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// What a write changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `None` when the model had no `serving.json`.
    pub before: Option<ServingState>,
    pub after: ServingState,
}

/// Why a state is written, for the history.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The transition (`canary`, `promote`, ..., `seed`, `first`).
    pub what: &'a str,
    /// The operator's `--reason`.
    pub reason: Option<&'a str>,
}

/// One line of [`HISTORY_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339.
    pub at: String,
    pub generation: u64,
    pub what: String,
    /// `$VERICLIP_ACTOR`, else `user@host` of the process that wrote it.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub before: Option<ServingState>,
    pub after: ServingState,
}

fn actor() -> String {
    if let Ok(a) = std::env::var("VERICLIP_ACTOR")
        && !a.trim().is_empty()
    {
        return a;
    }
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host}")
}

/// Appends one entry to the model's history (created on first use), synced.
fn append_history(model_dir: &Path, entry: &HistoryEntry) -> Result<(), ServingError> {
    use std::io::Write;
    let path = model_dir.join(HISTORY_FILE);
    let mut line =
        serde_json::to_vec(entry).map_err(|e| ServingError::BadState { path: path.clone(), reason: e.to_string() })?;
    line.push(b'\n');
    let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
    f.write_all(&line).map_err(io(&path))?;
    Ok(f.sync_all().map_err(io(&path))?)
}

/// The model's history, oldest first (empty when it has none). A line that does not parse is
/// an error naming its number: the file is append-only, so it was edited by hand.
pub fn read_history(model_dir: &Path) -> Result<Vec<HistoryEntry>, ServingError> {
    let path = model_dir.join(HISTORY_FILE);
    let bytes = match read_bounded(&path, crate::operator_file::FileKind::SERVING_HISTORY, "MAX_HISTORY_BYTES") {
        Ok(b) => b,
        Err(RegistryError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| ServingError::BadState { path: path.clone(), reason: format!("line {}: {e}", i + 1) })
        })
        .collect()
}

/// Under the model's lock: reads the state (or `initial()` when there is none), applies `f`,
/// bumps the generation, checks the result ([`check_successor`]) and writes it, then appends
/// it to the history. `f` sees the current state, so checks against the disk made inside it
/// cannot race another writer. A model whose `serving.json` is gone although it had one (its
/// history exists) is refused: `initial()` would pick a stable version by itself.
/// With `dry_run` nothing is written; the change is returned as it would be.
pub fn update(
    model_dir: &Path,
    record: Record<'_>,
    dry_run: bool,
    initial: impl FnOnce() -> Result<ServingState, ServingError>,
    f: impl FnOnce(&ServingState) -> Result<ServingState, ServingError>,
) -> Result<Change, ServingError> {
    let _lock = lock(model_dir)?;
    let path = model_dir.join(SERVING_FILE);
    let before = read(model_dir)?;
    let on_disk = super::versions(model_dir)?;
    let current = match &before {
        Some(s) => {
            if let Some(reason) = refused_base(model_dir, s, &on_disk)? {
                return Err(ServingError::BadState {
                    path,
                    reason: format!(
                        "{reason}: fix it, or write the last state the commands wrote back with \
                         `vericlip-train model restore`"
                    ),
                });
            }
            s.clone()
        }
        None if had_state(model_dir) => {
            let last = read_history(model_dir)?.pop();
            return Err(ServingError::BadState {
                path,
                reason: format!(
                    "the file is missing, but the model had a serving state (last written: {}); \
                     restore it with `vericlip-train model restore` rather than letting a version be picked",
                    last.map_or("unknown".into(), |e| format!(
                        "generation {}, stable {}, {} by {}",
                        e.after.generation, e.after.stable, e.at, e.by
                    ))
                ),
            });
        }
        None => initial()?,
    };
    let mut after = f(&current)?;
    after.generation = before.as_ref().map_or(0, |s| s.generation) + 1;
    after.updated_at = super::rfc3339(std::time::SystemTime::now());
    after.highest_version = after.issued(&on_disk);
    record_unrecorded(model_dir, &mut after, &on_disk);
    check_successor(before.as_ref(), &after, &on_disk).map_err(|reason| ServingError::BadState {
        path: path.clone(),
        reason: format!("refusing to write it: {reason}"),
    })?;
    if !dry_run {
        write_recorded(model_dir, before.as_ref(), &after, record)?;
    }
    Ok(Change { before, after })
}

/// Records the manifest checksum of every version on disk the state has none for (versions
/// published before the record existed, or copied in by hand): from then on every replica holds
/// them to these files. A manifest that cannot be read is left unrecorded (it is rejected anyway).
fn record_unrecorded(model_dir: &Path, state: &mut ServingState, on_disk: &[u64]) {
    for &v in on_disk {
        if !state.published.contains_key(&v)
            && let Ok(digest) = super::manifest_digest(&model_dir.join(v.to_string()))
        {
            state.published.insert(v, digest);
        }
    }
}

/// Writes `after` ([`write`]) and appends it to the history; the caller holds the lock.
pub fn write_recorded(
    model_dir: &Path,
    before: Option<&ServingState>,
    after: &ServingState,
    record: Record<'_>,
) -> Result<(), ServingError> {
    write(model_dir, after)?;
    append_history(
        model_dir,
        &HistoryEntry {
            at: if after.updated_at.is_empty() {
                super::rfc3339(std::time::SystemTime::now())
            } else {
                after.updated_at.clone()
            },
            generation: after.generation,
            what: record.what.to_string(),
            by: actor(),
            reason: record.reason.map(str::to_string),
            before: before.cloned(),
            after: after.clone(),
        },
    )
}

/// Why the state on disk may not be built on, if so: it must pass [`check_successor`] after the
/// last state the commands wrote (the history's last), with the versions `on_disk`. A hand edit
/// that keeps to the rule (a newer generation, no retired version back, versions on disk) passes.
pub fn refused_base(model_dir: &Path, current: &ServingState, on_disk: &[u64]) -> Result<Option<String>, ServingError> {
    let last = read_history(model_dir)?.pop();
    Ok(check_successor(last.as_ref().map(|e| &e.after), current, on_disk).err())
}

/// Rewrites a lost, unreadable or refused `serving.json` (one that [`update`] would not build
/// on) from the last state of the history, with the next generation (replicas that kept their
/// last good state accept it). Refused when the current file is fine (nothing to restore) or
/// there is no history.
pub fn restore(model_dir: &Path, record: Record<'_>, dry_run: bool) -> Result<Change, ServingError> {
    let _lock = lock(model_dir)?;
    let path = model_dir.join(SERVING_FILE);
    let current = read(model_dir);
    if let Ok(Some(s)) = &current
        && refused_base(model_dir, s, &super::versions(model_dir)?)?.is_none()
    {
        return Err(ServingError::BadState {
            path,
            reason: format!("it is fine (stable {}, generation {}): nothing to restore", s.stable, s.generation),
        });
    }
    let Some(last) = read_history(model_dir)?.pop() else {
        return Err(ServingError::BadState {
            path: model_dir.join(HISTORY_FILE),
            reason: "no history to restore from".into(),
        });
    };
    let mut after = last.after.clone();
    // Past both the last written state and whatever the file says now (replicas may have
    // followed a hand edit with a higher generation).
    let now = current.ok().flatten().map_or(0, |s| s.generation);
    after.generation = last.after.generation.max(now) + 1;
    after.updated_at = super::rfc3339(std::time::SystemTime::now());
    check_successor(Some(&last.after), &after, &super::versions(model_dir)?).map_err(|reason| {
        ServingError::BadState { path: path.clone(), reason: format!("refusing to restore it: {reason}") }
    })?;
    if !dry_run {
        write_recorded(model_dir, None, &after, record)?;
    }
    Ok(Change { before: None, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Record<'static> = Record { what: "test", reason: None };

    fn state() -> ServingState {
        ServingState::new(4)
    }

    #[test]
    fn abort_ends_a_canary_and_rollback_never_does() {
        let s = apply(&state(), Transition::Promote { version: 3 }).unwrap();
        let s = apply(&s, Transition::Promote { version: 4 }).unwrap();
        assert!(matches!(apply(&s, Transition::Abort), Err(ServingError::NoCanary { stable: 4 })));
        let c = apply(&s, Transition::Canary { version: 2, fraction: 0.1 }).unwrap();
        // The issue's sequence: promote 3; promote 4; canary 2; rollback moved stable to 3.
        let e = apply(&c, Transition::Rollback).unwrap_err();
        assert!(matches!(e, ServingError::CanaryRunning { canary: 2, stable: 4 }), "{e}");
        assert!(e.to_string().contains("model abort"), "{e}");
        let a = apply(&c, Transition::Abort).unwrap();
        assert_eq!((a.stable, a.canary, a.history.clone()), (4, None, s.history.clone()));
        assert_eq!(apply(&a, Transition::Rollback).unwrap().stable, 3);
    }

    #[test]
    fn the_lock_file_excludes_waits_and_breaks_a_dead_writers_lock() {
        let dir = std::env::temp_dir().join(format!("vericlip-lock-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Held by a writer on another node: a second writer waits until it is released.
        fs::write(dir.join(LOCK_FILE), b"someone@other-node pid 1").unwrap();
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (d, r) = (dir.clone(), std::sync::Arc::clone(&released));
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            r.store(true, std::sync::atomic::Ordering::SeqCst);
            fs::remove_file(d.join(LOCK_FILE)).unwrap();
        });
        let l = lock(&dir).unwrap();
        assert!(released.load(std::sync::atomic::Ordering::SeqCst), "took a lock another writer held");
        holder.join().unwrap();
        assert!(fs::read_to_string(dir.join(LOCK_FILE)).unwrap().contains(&format!("pid {}", std::process::id())));
        drop(l);
        assert!(!dir.join(LOCK_FILE).exists(), "released on drop");
        // Left by a writer that died long ago: broken, not waited for.
        fs::write(dir.join(LOCK_FILE), b"dead@node pid 2").unwrap();
        let old = std::time::SystemTime::now() - LOCK_EXPIRY - std::time::Duration::from_secs(5);
        fs::OpenOptions::new().write(true).open(dir.join(LOCK_FILE)).unwrap().set_modified(old).unwrap();
        drop(lock(&dir).unwrap());
        let left: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_rule_for_every_bad_state() {
        let mut s = ServingState::new(4);
        s.generation = 5;
        check_successor(None, &s, &[3, 4]).unwrap();
        let e = check_successor(None, &s, &[3]).unwrap_err();
        assert!(e.contains("stable version 4 is not in the registry"), "{e}");
        let c = apply(&s, Transition::Canary { version: 42, fraction: 0.1 }).unwrap();
        assert!(check_successor(None, &c, &[4]).unwrap_err().contains("canary version 42"));
        let mut older = s.clone();
        older.generation = 4;
        assert!(check_successor(Some(&s), &older, &[4]).unwrap_err().contains("generation 4 is older"));
        let r = apply(&s, Transition::Retire { version: 3 }).unwrap();
        let e = check_successor(Some(&r), &s, &[3, 4]).unwrap_err();
        assert!(e.contains("version 3 was retired"), "{e}");
        // A published version's recorded checksum never changes, nor goes.
        let mut p = s.clone();
        p.published.insert(4, "aa".into());
        let mut changed = p.clone();
        changed.published.insert(4, "bb".into());
        for next in [&changed, &s] {
            let e = check_successor(Some(&p), next, &[4]).unwrap_err();
            assert!(e.contains("when version 4 was published (aa) is changed or gone"), "{e}");
        }
        let mut more = p.clone();
        more.published.insert(3, "cc".into());
        check_successor(Some(&p), &more, &[3, 4]).unwrap();
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
        fs::create_dir_all(dir.join("2")).unwrap();
        fs::create_dir_all(dir.join("3")).unwrap();
        // A dry run writes nothing.
        let c = update(&dir, R, true, || Ok(ServingState::new(2)), |s| apply(s, Transition::Promote { version: 3 }))
            .unwrap();
        assert_eq!(c.after.stable, 3);
        assert_eq!(read(&dir).unwrap(), None);
        assert!(!had_state(&dir));
        let c = update(&dir, R, false, || Ok(ServingState::new(2)), |s| apply(s, Transition::Promote { version: 3 }))
            .unwrap();
        assert_eq!(c.before, None);
        assert_eq!((c.after.stable, c.after.generation), (3, 1));
        let back = read(&dir).unwrap().unwrap();
        assert_eq!(back, c.after);
        let c = update(&dir, R, false, || unreachable!(), |s| apply(s, Transition::Rollback)).unwrap();
        assert_eq!((c.after.stable, c.after.generation), (2, 2));
        // A refused transition writes nothing.
        assert!(update(&dir, R, false, || unreachable!(), |s| apply(s, Transition::Rollback)).is_err());
        assert_eq!(read(&dir).unwrap().unwrap().generation, 2);
        // A state naming a version not on disk is never written.
        let e =
            update(&dir, R, false, || unreachable!(), |s| apply(s, Transition::Promote { version: 42 })).unwrap_err();
        assert!(e.to_string().contains("stable version 42 is not in the registry"), "{e}");
        assert_eq!(read(&dir).unwrap().unwrap().generation, 2);
        let history = read_history(&dir).unwrap();
        assert_eq!(history.iter().map(|h| (h.generation, h.after.stable)).collect::<Vec<_>>(), vec![(1, 3), (2, 2)]);
        // Lost: commands refuse to pick a stable version; restore brings back the last one.
        fs::remove_file(dir.join(SERVING_FILE)).unwrap();
        let e = update(&dir, R, false, || Ok(ServingState::new(3)), |s| Ok(s.clone())).unwrap_err();
        assert!(e.to_string().contains("model restore"), "{e}");
        let c = restore(&dir, R, false).unwrap();
        assert_eq!((c.after.stable, c.after.generation), (2, 3));
        assert!(restore(&dir, R, false).unwrap_err().to_string().contains("nothing to restore"));
        // A hand edit that breaks the rule (retired 2? no: a generation going back) is not built on.
        fs::write(dir.join(SERVING_FILE), br#"{"format": 1, "stable": 3, "generation": 1}"#).unwrap();
        let e =
            update(&dir, R, false, || unreachable!(), |s| apply(s, Transition::Promote { version: 2 })).unwrap_err();
        assert!(e.to_string().contains("generation 1 is older") && e.to_string().contains("model restore"), "{e}");
        let c = restore(&dir, R, false).unwrap();
        assert_eq!((c.after.stable, c.after.generation), (2, 4));
        fs::write(dir.join(SERVING_FILE), b"{\"format\": 1}").unwrap();
        assert!(matches!(read(&dir), Err(ServingError::BadState { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
