//! Registry watcher: rescans when files change (inotify via `notify`) and every `poll` (the
//! fallback for network volumes, where change events do not arrive), and follows each model's
//! serving state (`serving.json`, `vericlip_core::registry::serving`).
//!
//! Load policy: with a serving state, a replica loads only its stable and canary versions, the
//! `registry.pin`ned one, and the `registry.keep_warm` newest other valid versions; every other
//! version on disk is checked once without ONNX Runtime (`registry::verify_version`) and holds
//! no session. A model without a serving state loads every valid version and serves the highest
//! (how registries behaved before serving states). Versions are loaded, verified and warmed up
//! before they are swapped in; a version that fails (an error, or a panic anywhere in its load)
//! is logged once, counted (its counter exists at 0 from the first scan that sees it), listed as
//! rejected with its reason and skipped until its files change; versions no longer wanted are
//! unloaded (a request that holds one finishes on it). A pin, or a serving state's stable
//! version, that cannot serve (missing, retired, rejected) makes the replica unready with the
//! reason: it never serves another version instead. A problem that persists (an unreadable
//! folder) is logged at WARN when it starts or changes, not on every scan.
//!
//! Serving states fail closed, by one rule (`serving::check_successor`, plus: its stable version
//! is not rejected here): a state that is missing although the model had one (this replica read
//! one, or the model's history exists), unreadable, invalid, naming a stable or canary version
//! not on disk (or a stable one that is rejected), going back in generation or bringing a
//! retired version back is refused. The replica keeps following its last good state (counted
//! once per problem in `vericlip_model_state_invalid_total`, `vericlip_model_state_held` = 1,
//! logged at ERROR); a replica with no good state yet stays unready with the reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use notify::Watcher as _;
use vericlip_core::registry::{self, serving};
use vericlip_core::runtime::OrtRuntime;

use super::{Catalog, LoadOptions, LoadedModel, ModelStore, ModelVersions, Rejected};
use crate::metrics::{Metrics, ModelLabels, ModelVersionLabels, VersionLabels};

/// One file as `stat` sees it: size, modification time, status-change time and inode.
type FileStamp = (u64, Option<SystemTime>, (i64, i64), u64);

/// What a version was checked or loaded against: its files' stamps and the manifest checksum
/// the serving state recorded when it was published. When either differs the version is read
/// and verified again (in full: manifest, sha256 of the model, the recorded checksum).
///
/// Why stamps and not a full re-hash on every scan: hashing every loaded model every poll costs
/// its size in reads per replica per poll (a 2 GiB model every 5 s); the status-change time
/// (`ctime`) and the inode, unlike size and mtime, cannot be set back by a writer (`touch -r`,
/// `cp -p`, `rsync -t` restore mtime), so any write to or replacement of a file through the
/// filesystem shows, and triggers the full check.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    files: Vec<FileStamp>,
    published: Option<String>,
}

fn fingerprint(dir: &Path, published: Option<&str>) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let files = [registry::MANIFEST_FILE, registry::MODEL_FILE]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .map_or((0, None, (0, 0), 0), |m| (m.len(), m.modified().ok(), (m.ctime(), m.ctime_nsec()), m.ino()))
        })
        .collect();
    Fingerprint { files, published: published.map(str::to_string) }
}

/// The manifest checksum `state` recorded for version `v` when it was published.
fn published(state: Option<&serving::ServingState>, v: u64) -> Option<&str> {
    state.and_then(|s| s.published.get(&v)).map(String::as_str)
}

pub struct RegistryWatcher {
    pub root: PathBuf,
    pub pins: BTreeMap<String, u64>,
    pub options: LoadOptions,
    pub runtime: &'static OrtRuntime,
    pub store: Arc<ModelStore>,
    pub metrics: Arc<Metrics>,
    /// Candidates kept loaded besides the versions the serving state and pins name (the N
    /// newest valid ones; `registry.keep_warm`).
    pub keep_warm: usize,
    /// Versions checked without being loaded, or that failed to load: the files they were
    /// checked with, and why they cannot serve (`None`: they passed).
    checked: HashMap<(String, u64), (Fingerprint, Option<String>)>,
    /// The last scan problem logged per scope (the registry, or a model folder), so that one
    /// that persists is not logged again on every scan.
    warned: HashMap<String, String>,
    /// Per model, the last serving state that passed the checks: followed while the one on disk
    /// is refused.
    last_good: HashMap<String, serving::ServingState>,
    /// Per model, the serving-state problem being held (counted once per distinct problem).
    held: HashMap<String, String>,
    /// The files each loaded version was loaded from: compared on every scan (size and mtime),
    /// re-verified when they differ.
    loaded_prints: HashMap<(String, u64), Fingerprint>,
}

/// The panic message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Only changes to the tree matter: reading it (which every scan does) raises open/access
/// events, and rescanning on those would rescan forever.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
        Err(_) => true,
    }
}

impl RegistryWatcher {
    pub fn new(
        root: PathBuf,
        pins: BTreeMap<String, u64>,
        options: LoadOptions,
        runtime: &'static OrtRuntime,
        store: Arc<ModelStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            root,
            pins,
            options,
            runtime,
            store,
            metrics,
            keep_warm: 0,
            checked: HashMap::new(),
            warned: HashMap::new(),
            last_good: HashMap::new(),
            held: HashMap::new(),
            loaded_prints: HashMap::new(),
        }
    }

    /// Keeps the `n` newest valid candidates loaded too (`registry.keep_warm`).
    pub fn keep_warm(mut self, n: usize) -> Self {
        self.keep_warm = n;
        self
    }

    /// Scans now, then keeps watching on a thread of its own until `stop` is set.
    pub fn spawn(mut self, poll: Duration, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("registry-watch".into()).spawn(move || {
            let (tx, rx) = mpsc::channel();
            let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if is_change(&event) {
                    let _ = tx.send(());
                }
            })
            .and_then(|mut w| w.watch(&self.root, notify::RecursiveMode::Recursive).map(|()| w));
            if let Err(e) = &watcher {
                tracing::warn!(error = %e, "file-change events unavailable; polling the registry only");
            }
            self.rescan_guarded();
            // Wake at least every 200 ms to notice `stop`.
            let tick = poll.min(Duration::from_millis(200));
            let mut since_scan = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(tick) {
                    Ok(()) => {
                        // Let a burst of events (a publish renames a folder full of files) settle.
                        std::thread::sleep(Duration::from_millis(50));
                        while rx.try_recv().is_ok() {}
                        self.rescan_guarded();
                        since_scan = Duration::ZERO;
                    }
                    Err(_) => {
                        since_scan += tick;
                        if since_scan >= poll {
                            self.rescan_guarded();
                            since_scan = Duration::ZERO;
                        }
                    }
                }
            }
            drop(watcher);
        })
    }

    /// A rescan that cannot take the watcher down: a panic outside any one version's load
    /// (those are caught per version) is logged, and the next scan tries again.
    fn rescan_guarded(&mut self) {
        let scan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rescan()));
        if let Err(payload) = scan {
            tracing::error!(panic = %panic_message(payload.as_ref()), "registry scan panicked; keeping what is loaded");
        }
    }

    /// Logs a scan problem at WARN when it first appears in `scope` or changes, at DEBUG while it
    /// persists.
    fn warn_once(&mut self, scope: &str, error: String, what: &str) {
        if self.warned.get(scope) == Some(&error) {
            tracing::debug!(scope, error, "{what} (still)");
        } else {
            tracing::warn!(scope, error, "{what}");
            self.warned.insert(scope.to_string(), error);
        }
    }

    /// Loads one version, turning a panic anywhere in it into an error.
    fn load(&self, dir: &Path) -> Result<LoadedModel, String> {
        let load = || LoadedModel::load(dir, self.runtime, self.options, &self.metrics);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
            .unwrap_or_else(|payload| Err(format!("loading panicked: {}", panic_message(payload.as_ref()))))
    }

    /// Server paths stay in the log; the reason clients see is relative to the registry.
    fn relative(&self, error: &str) -> String {
        error.replace(&format!("{}/", self.root.display()), "")
    }

    /// Records a version that cannot serve: logged and counted once per set of files.
    fn reject(&mut self, name: &str, v: u64, print: Fingerprint, error: &str, catalog: &mut Catalog) {
        let key = (name.to_string(), v);
        let reason = self.relative(error);
        if self.checked.get(&key).is_none_or(|(p, r)| *p != print || r.is_none()) {
            let path = self.root.join(name).join(v.to_string());
            tracing::error!(model = %name, version = v, error = %error, path = %path.display(), "model version rejected; it will not serve until its files change");
            self.metrics
                .load_failures
                .get_or_create(&ModelVersionLabels { model: name.to_string(), version: v.to_string() })
                .inc();
        }
        catalog.rejected.insert(key.clone(), Rejected { name: name.to_string(), version: v, reason: reason.clone() });
        self.checked.insert(key, (print, Some(reason)));
    }

    /// Whether an unloaded version can serve, checked without ONNX Runtime once per set of
    /// files (a rejected one is listed in `catalog`): `published` is the manifest checksum the
    /// serving state recorded for it (files that differ are rejected, however valid).
    fn valid(&mut self, name: &str, v: u64, published: Option<&str>, catalog: &mut Catalog) -> bool {
        let dir = self.root.join(name).join(v.to_string());
        let print = fingerprint(&dir, published);
        let key = (name.to_string(), v);
        if let Some((_, result)) = self.checked.get(&key).filter(|(p, _)| *p == print) {
            return match result {
                None => true,
                Some(reason) => {
                    let rejected = Rejected { name: name.to_string(), version: v, reason: reason.clone() };
                    catalog.rejected.insert(key, rejected);
                    false
                }
            };
        }
        match registry::verify_published(&dir, published) {
            Ok(_) => {
                self.checked.insert(key, (print, None));
                true
            }
            Err(e) => {
                self.reject(name, v, print, &e.to_string(), catalog);
                false
            }
        }
    }

    /// Makes sure `v` is loaded into `entry` (reusing what `old` has loaded); false if it fails.
    fn ensure_loaded(
        &mut self,
        name: &str,
        v: u64,
        published: Option<&str>,
        old: Option<&ModelVersions>,
        entry: &mut ModelVersions,
        catalog: &mut Catalog,
    ) -> bool {
        if entry.versions.contains_key(&v) {
            return true;
        }
        if let Some(loaded) = old.and_then(|m| m.versions.get(&v)) {
            entry.versions.insert(v, Arc::clone(loaded));
            return true;
        }
        if !self.valid(name, v, published, catalog) {
            return false;
        }
        let dir = self.root.join(name).join(v.to_string());
        let print = fingerprint(&dir, published);
        let span = tracing::info_span!("load", model = %name, version = v);
        let _enter = span.enter();
        // The files read by the load are held to the published checksum too (they may have
        // been replaced since the check above).
        let loaded = self.load(&dir).and_then(|m| match published {
            Some(p) if p != m.manifest_sha256 => Err(format!(
                "{}: sha256 {} is not the {p} recorded when this version was published: its files changed after \
                 it was published (published versions are immutable: publish a new version instead)",
                dir.join(registry::MANIFEST_FILE).display(),
                m.manifest_sha256
            )),
            _ => Ok(m),
        });
        match loaded {
            Ok(m) => {
                tracing::info!(provider = m.provider, threshold = m.threshold(), "model version loaded");
                self.loaded_prints.insert((name.to_string(), v), print);
                self.metrics
                    .loaded
                    .get_or_create(&VersionLabels {
                        model: name.to_string(),
                        version: v.to_string(),
                        execution_provider: m.provider.to_string(),
                    })
                    .set(1);
                self.metrics
                    .execution_provider
                    .get_or_create(&crate::metrics::ProviderLabels { provider: m.provider })
                    .set(1);
                entry.versions.insert(v, Arc::new(m));
                true
            }
            Err(e) => {
                self.reject(name, v, print, &e, catalog);
                false
            }
        }
    }

    /// Why `v`, named by `what` (a pin, the stable version), cannot serve; `None` if it can.
    fn cannot_serve(
        name: &str,
        v: u64,
        what: &str,
        on_disk: &[u64],
        retired: bool,
        catalog: &Catalog,
    ) -> Option<String> {
        if !on_disk.contains(&v) {
            Some(format!("model `{name}`: {what} version {v} is not in the registry"))
        } else if retired {
            Some(format!("model `{name}`: {what} version {v} is retired"))
        } else {
            catalog
                .rejected
                .get(&(name.to_string(), v))
                .map(|r| format!("model `{name}`: {what} version {v} was rejected: {}", r.reason))
        }
    }

    /// Brings the catalog in line with the registry on disk and the models' serving states.
    pub fn rescan(&mut self) {
        let old = self.store.snapshot();
        let names = match registry::model_names(&self.root) {
            Ok(n) => {
                self.warned.remove("registry");
                n
            }
            Err(e) => {
                self.warn_once("registry", e.to_string(), "cannot scan the registry; keeping what is loaded");
                return;
            }
        };
        let mut catalog = Catalog::default();
        for name in names {
            let model_dir = self.root.join(&name);
            let listed = registry::versions(&model_dir).map_err(|e| e.to_string());
            let (on_disk, state) = match listed.map(|v| (v, serving::read(&model_dir))) {
                Ok(v) => {
                    self.warned.remove(&name);
                    v
                }
                Err(e) => {
                    self.warn_once(
                        &name,
                        e,
                        "cannot read the model's versions or serving state; keeping what is loaded",
                    );
                    if let Some(m) = old.models.get(&name) {
                        let versions = m.versions.clone();
                        catalog.models.insert(
                            name.clone(),
                            ModelVersions { versions, serving: m.serving, canary: m.canary, generation: m.generation },
                        );
                    }
                    catalog.rejected.extend(
                        old.rejected.iter().filter(|((n, _), _)| *n == name).map(|(k, r)| (k.clone(), r.clone())),
                    );
                    continue;
                }
            };
            let state = match self.judge(&name, &model_dir, &on_disk, state, &mut catalog) {
                Ok(state) => state,
                Err(reason) => {
                    catalog.problems.push(format!("model `{name}`: no good serving state yet: {reason}"));
                    continue;
                }
            };
            self.follow(&name, &on_disk, state, old.models.get(&name), &mut catalog);
        }
        for (name, m) in &old.models {
            if !catalog.models.contains_key(name) {
                self.metrics.serving_version.get_or_create(&ModelLabels { model: name.clone() }).set(0);
            }
            for (v, loaded) in &m.versions {
                if !catalog.models.get(name).is_some_and(|n| n.versions.contains_key(v)) {
                    tracing::info!(model = %name, version = v, "model version unloaded (removed, retired, or no longer stable, canary, pinned or kept warm)");
                    self.metrics.loaded.remove(&VersionLabels {
                        model: name.clone(),
                        version: v.to_string(),
                        execution_provider: loaded.provider.to_string(),
                    });
                }
            }
        }
        // Versions no longer on disk are no longer checked (nor remembered).
        self.checked
            .retain(|(n, v), _| registry::versions(&self.root.join(n)).is_ok_and(|on_disk| on_disk.contains(v)));
        let same = |a: &ModelVersions, b: &ModelVersions| {
            a.serving == b.serving
                && a.canary == b.canary
                && a.generation == b.generation
                && a.versions.len() == b.versions.len()
                && a.versions.iter().zip(&b.versions).all(|((va, ma), (vb, mb))| va == vb && Arc::ptr_eq(ma, mb))
        };
        let unchanged = old.models.len() == catalog.models.len()
            && old.models.iter().zip(&catalog.models).all(|((na, a), (nb, b))| na == nb && same(a, b))
            && old.rejected == catalog.rejected
            && old.problems == catalog.problems
            && old.held == catalog.held;
        if !unchanged {
            self.store.replace(catalog);
        }
    }

    /// Which serving state the model follows: the one on disk if it passes the checks (it
    /// becomes the last good one), else the last good one (`Err` with the reason when there is
    /// none: the replica stays unready rather than serve something the operator did not name).
    /// `None`: the model never had a serving state (every valid version loads, the highest
    /// serves).
    fn judge(
        &mut self,
        name: &str,
        model_dir: &Path,
        on_disk: &[u64],
        read: Result<Option<serving::ServingState>, serving::ServingError>,
        catalog: &mut Catalog,
    ) -> Result<Option<serving::ServingState>, String> {
        let last = self.last_good.get(name).cloned();
        let problem = match read {
            Ok(Some(s)) => {
                let checked = serving::check_successor(last.as_ref(), &s, on_disk).and_then(|()| {
                    if self.valid(name, s.stable, published(Some(&s), s.stable), catalog) {
                        Ok(())
                    } else {
                        Err(format!("stable version {} is rejected here", s.stable))
                    }
                });
                match checked {
                    Ok(()) => {
                        self.last_good.insert(name.to_string(), s.clone());
                        if self.held.remove(name).is_some() {
                            tracing::info!(model = %name, generation = s.generation, "serving state readable and valid again");
                        }
                        self.metrics.state_held.get_or_create(&ModelLabels { model: name.to_string() }).set(0);
                        return Ok(Some(s));
                    }
                    Err(reason) => format!("{}: {reason}", serving::SERVING_FILE),
                }
            }
            Ok(None) if last.is_none() && !serving::had_state(model_dir) => return Ok(None),
            Ok(None) => format!("{} is missing although the model had one", serving::SERVING_FILE),
            Err(e) => self.relative(&e.to_string()),
        };
        let labels = ModelLabels { model: name.to_string() };
        self.metrics.state_held.get_or_create(&labels).set(1);
        catalog.held.insert(name.to_string(), problem.clone());
        if self.held.get(name) != Some(&problem) {
            self.metrics.state_invalid.get_or_create(&labels).inc();
            match &last {
                Some(l) => {
                    tracing::error!(model = %name, problem = %problem, kept_generation = l.generation, kept_stable = l.stable, "serving state refused; keeping the last good one (fix it, or `vericlip-train model restore`)")
                }
                None => {
                    tracing::error!(model = %name, problem = %problem, "serving state refused and no good one yet: not ready (fix it, or `vericlip-train model restore`)")
                }
            }
            self.held.insert(name.to_string(), problem.clone());
        }
        last.map(Some).ok_or(problem)
    }

    /// One model: what its serving state and the pins want loaded, loaded; what serves.
    fn follow(
        &mut self,
        name: &str,
        on_disk: &[u64],
        state: Option<serving::ServingState>,
        old: Option<&ModelVersions>,
        catalog: &mut Catalog,
    ) {
        let model = ModelLabels { model: name.to_string() };
        let unchanged = old.map(|m| self.unchanged_versions(name, m, state.as_ref(), catalog));
        let old = unchanged.as_ref();
        let retired = state.as_ref().map(|s| s.retired.clone()).unwrap_or_default();
        let mut valid = BTreeSet::new();
        for &v in on_disk {
            // Born at 0, so that an alert on its increase fires on the first failure.
            let labels = ModelVersionLabels { model: name.to_string(), version: v.to_string() };
            let _ = self.metrics.load_failures.get_or_create(&labels);
            if retired.contains(&v) {
                continue;
            }
            if old.is_some_and(|m| m.versions.contains_key(&v))
                || self.valid(name, v, published(state.as_ref(), v), catalog)
            {
                valid.insert(v);
            }
        }
        let pin = self.pins.get(name).copied();
        let mut entry = ModelVersions { generation: state.as_ref().map_or(0, |s| s.generation), ..Default::default() };
        let mut problems = Vec::new();
        let wanted = self.wanted(&valid, state.as_ref(), pin);
        for v in wanted {
            if valid.contains(&v) {
                self.ensure_loaded(name, v, published(state.as_ref(), v), old, &mut entry, catalog);
            }
        }
        let loaded = |v: u64| entry.versions.contains_key(&v);
        entry.serving = match (pin, &state) {
            (Some(p), _) => {
                let why = Self::cannot_serve(name, p, "pinned (registry.pin)", on_disk, retired.contains(&p), catalog);
                problems.extend(
                    why.or_else(|| (!loaded(p)).then(|| format!("model `{name}`: pinned version {p} is not loaded"))),
                );
                Some(p).filter(|p| loaded(*p))
            }
            (None, Some(s)) => {
                let why = Self::cannot_serve(name, s.stable, "stable (serving.json)", on_disk, false, catalog);
                problems.extend(why.or_else(|| {
                    (!loaded(s.stable)).then(|| format!("model `{name}`: stable version {} is not loaded", s.stable))
                }));
                Some(s.stable).filter(|v| loaded(*v))
            }
            (None, None) => entry.versions.keys().next_back().copied(),
        };
        let canary = state.as_ref().and_then(|s| s.canary).filter(|_| pin.is_none());
        let scope = format!("{name}/canary");
        entry.canary = match canary {
            Some(c) if entry.versions.contains_key(&c.version) => {
                self.warned.remove(&scope);
                Some((c.version, c.fraction))
            }
            Some(c) => {
                let why = Self::cannot_serve(name, c.version, "canary", on_disk, retired.contains(&c.version), catalog);
                let why = why.unwrap_or_else(|| format!("model `{name}`: canary version {} is not loaded", c.version));
                self.warn_once(&scope, why, "the canary cannot serve here; its share goes to the stable version");
                None
            }
            None => None,
        };
        let scope = format!("{name}/ready");
        if problems.is_empty() {
            self.warned.remove(&scope);
        } else {
            self.warn_once(&scope, problems.join("; "), "not ready: a version this replica must serve cannot serve");
        }
        self.announce(&model, old, &entry, state.as_ref().map(|s| s.stable), pin);
        catalog.problems.extend(problems);
        if !entry.versions.is_empty() {
            catalog.models.insert(name.to_string(), entry);
        }
    }

    /// `old` without the loaded versions whose files changed since they were loaded, or that
    /// are not what `state` recorded as published: published versions are immutable, so a
    /// changed one is rejected (unloaded, listed with the reason, counted) whether or not its
    /// new files would pass the checks, and is not loaded again until its files change once
    /// more; a replica started after the change rejects it alike (the recorded checksum,
    /// [`registry::verify_published`]). The files' stamps ([`Fingerprint`]) are compared on
    /// every scan; when they differ the version is read and verified again in full (a `touch`
    /// that changes nothing is fine).
    fn unchanged_versions(
        &mut self,
        name: &str,
        old: &ModelVersions,
        state: Option<&serving::ServingState>,
        catalog: &mut Catalog,
    ) -> ModelVersions {
        let mut kept = ModelVersions { versions: BTreeMap::new(), ..*old };
        for (&v, loaded) in &old.versions {
            let key = (name.to_string(), v);
            let dir = self.root.join(name).join(v.to_string());
            let recorded = published(state, v);
            let print = fingerprint(&dir, recorded);
            let as_published = recorded.is_none_or(|p| p == loaded.manifest_sha256);
            if as_published && self.loaded_prints.get(&key).is_none_or(|p| p.files == print.files) {
                self.loaded_prints.insert(key, print);
                kept.versions.insert(v, Arc::clone(loaded));
                continue;
            }
            let problem = match registry::verify_published(&dir, recorded) {
                Ok(now) if now.manifest_sha256 == loaded.manifest_sha256 => None,
                Ok(_) => Some("its manifest or model changed after it was published and loaded".to_string()),
                Err(e) => Some(format!("its files changed after it was published and loaded: {e}")),
            };
            match problem {
                None => {
                    self.loaded_prints.insert(key, print);
                    kept.versions.insert(v, Arc::clone(loaded));
                }
                Some(p) => {
                    self.loaded_prints.remove(&key);
                    let reason = format!("{p} (published versions are immutable: publish a new version instead)");
                    self.reject(name, v, print, &reason, catalog);
                }
            }
        }
        kept
    }

    /// The versions to load, in order: stable, canary (unless pinned), `keep_warm` newest
    /// candidates, the pin; without a serving state every valid version, the highest first.
    fn wanted(&self, valid: &BTreeSet<u64>, state: Option<&serving::ServingState>, pin: Option<u64>) -> Vec<u64> {
        let mut wanted: Vec<u64> = match state {
            // Before serving states: every valid version, the highest serves.
            None => valid.iter().rev().copied().collect(),
            Some(s) => {
                let mut w = vec![s.stable];
                w.extend(s.canary.filter(|_| pin.is_none()).map(|c| c.version));
                let warm: Vec<u64> = valid
                    .iter()
                    .rev()
                    .filter(|v| !w.contains(v) && Some(**v) != pin)
                    .take(self.keep_warm)
                    .copied()
                    .collect();
                w.extend(warm);
                w
            }
        };
        wanted.extend(pin);
        wanted
    }

    /// Logs and counts a change of the serving state or of the version that serves, and
    /// exports what this replica serves (a dashboard compares replicas on these gauges).
    fn announce(
        &self,
        model: &ModelLabels,
        old: Option<&ModelVersions>,
        entry: &ModelVersions,
        stable: Option<u64>,
        pin: Option<u64>,
    ) {
        let name = &model.model;
        let before = old.and_then(|m| m.serving);
        let generation_before = old.map_or(0, |m| m.generation);
        // Exported from the first scan (at 0), so that a dashboard compares replicas at once.
        let _ = self.metrics.state_changes.get_or_create(model);
        if entry.generation != generation_before {
            tracing::info!(
                model = %name,
                from = ?before,
                to = ?entry.serving,
                canary = ?entry.canary,
                generation = entry.generation,
                "serving state changed"
            );
            self.metrics.state_changes.get_or_create(model).inc();
        }
        if before != entry.serving {
            tracing::info!(model = %name, from = ?before, to = ?entry.serving, "serving version changed");
            self.metrics.swaps.get_or_create(model).inc();
        }
        self.metrics.serving_version.get_or_create(model).set(entry.serving.map_or(0, |v| v as i64));
        let stable = stable.or(entry.serving).or(pin);
        self.metrics.stable_version.get_or_create(model).set(stable.map_or(0, |v| v as i64));
        self.metrics.canary_version.get_or_create(model).set(entry.canary.map_or(0, |(v, _)| v as i64));
        self.metrics.state_generation.get_or_create(model).set(entry.generation as i64);
    }
}
