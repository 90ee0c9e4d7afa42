//! Registry watcher: rescans when files change (inotify via `notify`) and every `poll` (the
//! fallback for network volumes, where change events do not arrive). New versions are loaded,
//! verified and warmed up before they are swapped in; a version that fails (an error, or a panic
//! anywhere in its load) is logged once, counted, listed as rejected with its reason and skipped
//! until its files change; removed versions retire. A problem that persists (an unreadable
//! folder) is logged at WARN when it starts or changes, not on every scan.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use notify::Watcher as _;
use vericlip_core::registry;
use vericlip_core::runtime::OrtRuntime;

use super::{Catalog, LoadOptions, LoadedModel, ModelStore, ModelVersions, Rejected};
use crate::metrics::{FailureLabels, Metrics, ModelLabels, VersionLabels};

/// Size and modification time of a version's files: a failed version is retried when it changes.
type Fingerprint = Vec<(u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    [registry::MANIFEST_FILE, registry::MODEL_FILE]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or((0, None), |m| (m.len(), m.modified().ok())))
        .collect()
}

pub struct RegistryWatcher {
    pub root: PathBuf,
    pub pins: BTreeMap<String, u64>,
    pub options: LoadOptions,
    pub runtime: &'static OrtRuntime,
    pub store: Arc<ModelStore>,
    pub metrics: Arc<Metrics>,
    /// Versions that failed to load: the files they failed with, and why.
    failed: HashMap<(String, u64), (Fingerprint, String)>,
    /// The last scan problem logged per scope (the registry, or a model folder), so that one
    /// that persists is not logged again on every scan.
    warned: HashMap<String, String>,
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
        Self { root, pins, options, runtime, store, metrics, failed: HashMap::new(), warned: HashMap::new() }
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

    /// Brings the catalog in line with the registry on disk.
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
        let mut changed = false;
        for name in names {
            let model_dir = self.root.join(&name);
            let on_disk = match registry::versions(&model_dir) {
                Ok(v) => {
                    self.warned.remove(&name);
                    v
                }
                Err(e) => {
                    self.warn_once(&name, e.to_string(), "cannot list versions; keeping what is loaded");
                    if let Some(m) = old.models.get(&name) {
                        let versions = m.versions.clone();
                        catalog.models.insert(name.clone(), ModelVersions { versions, serving: m.serving });
                    }
                    catalog.rejected.extend(
                        old.rejected.iter().filter(|((n, _), _)| *n == name).map(|(k, r)| (k.clone(), r.clone())),
                    );
                    continue;
                }
            };
            let mut entry = ModelVersions::default();
            for v in on_disk {
                if let Some(loaded) = old.models.get(&name).and_then(|m| m.versions.get(&v)) {
                    entry.versions.insert(v, Arc::clone(loaded));
                    continue;
                }
                let dir = model_dir.join(v.to_string());
                let key = (name.clone(), v);
                let print = fingerprint(&dir);
                let failures = self
                    .metrics
                    .load_failures
                    .get_or_create(&FailureLabels { model: name.clone(), version: v.to_string() })
                    .clone();
                if let Some((_, reason)) = self.failed.get(&key).filter(|(p, _)| *p == print) {
                    let rejected = Rejected { name: name.clone(), version: v, reason: reason.clone() };
                    catalog.rejected.insert(key, rejected);
                    continue;
                }
                let span = tracing::info_span!("load", model = %name, version = v);
                let _enter = span.enter();
                match self.load(&dir) {
                    Ok(m) => {
                        tracing::info!(provider = m.provider, threshold = m.threshold(), "model version loaded");
                        self.failed.remove(&key);
                        self.metrics
                            .loaded
                            .get_or_create(&VersionLabels {
                                model: name.clone(),
                                version: v.to_string(),
                                execution_provider: m.provider.to_string(),
                            })
                            .set(1);
                        self.metrics
                            .execution_provider
                            .get_or_create(&crate::metrics::ProviderLabels { provider: m.provider })
                            .set(1);
                        entry.versions.insert(v, Arc::new(m));
                        changed = true;
                    }
                    Err(e) => {
                        // Server paths stay in the log; the reason clients see is relative.
                        let reason = e.replace(&format!("{}/", self.root.display()), "");
                        tracing::error!(error = %e, path = %dir.display(), "model version rejected; it will not serve until its files change");
                        failures.inc();
                        let rejected = Rejected { name: name.clone(), version: v, reason: reason.clone() };
                        catalog.rejected.insert(key.clone(), rejected);
                        self.failed.insert(key, (print, reason));
                        changed = true;
                    }
                }
            }
            entry.serving = match self.pins.get(&name) {
                Some(p) if entry.versions.contains_key(p) => Some(*p),
                Some(p) => {
                    let fallback = entry.versions.keys().next_back().copied();
                    tracing::warn!(model = %name, pinned = p, serving = ?fallback, "pinned version is not loaded; serving the highest");
                    fallback
                }
                None => entry.versions.keys().next_back().copied(),
            };
            let before = old.models.get(&name).and_then(|m| m.serving);
            if before != entry.serving {
                tracing::info!(model = %name, from = ?before, to = ?entry.serving, "serving version changed");
                self.metrics.swaps.get_or_create(&ModelLabels { model: name.clone() }).inc();
                changed = true;
            }
            self.metrics
                .serving_version
                .get_or_create(&ModelLabels { model: name.clone() })
                .set(entry.serving.map_or(0, |v| v as i64));
            if !entry.versions.is_empty() {
                catalog.models.insert(name, entry);
            }
        }
        for (name, m) in &old.models {
            if !catalog.models.contains_key(name) {
                self.metrics.serving_version.get_or_create(&ModelLabels { model: name.clone() }).set(0);
            }
            for (v, loaded) in &m.versions {
                if !catalog.models.get(name).is_some_and(|n| n.versions.contains_key(v)) {
                    tracing::info!(model = %name, version = v, "model version removed from the registry; retired");
                    self.metrics.loaded.remove(&VersionLabels {
                        model: name.clone(),
                        version: v.to_string(),
                        execution_provider: loaded.provider.to_string(),
                    });
                    changed = true;
                }
            }
        }
        // Versions no longer on disk are no longer rejected (nor remembered).
        self.failed.retain(|k, _| catalog.rejected.contains_key(k));
        if changed || old.models.len() != catalog.models.len() || old.rejected != catalog.rejected {
            self.store.replace(catalog);
        }
    }
}
