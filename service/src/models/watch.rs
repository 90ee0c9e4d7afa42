//! Registry watcher: rescans when files change (inotify via `notify`) and every `poll` (the
//! fallback for network volumes, where change events do not arrive). New versions are loaded,
//! verified and warmed up before they are swapped in; a version that fails is logged, counted and
//! skipped until its files change; removed versions retire.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use notify::Watcher as _;
use vericlip_core::registry;
use vericlip_core::runtime::OrtRuntime;

use super::{Catalog, LoadOptions, LoadedModel, ModelStore, ModelVersions};
use crate::metrics::{Metrics, ModelLabels, VersionLabels};

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
    failed: HashMap<(String, u64), Fingerprint>,
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
        Self { root, pins, options, runtime, store, metrics, failed: HashMap::new() }
    }

    /// Scans now, then keeps watching on a thread of its own until `stop` is set.
    pub fn spawn(mut self, poll: Duration, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("registry-watch".into()).spawn(move || {
            let (tx, rx) = mpsc::channel();
            let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
                let _ = tx.send(());
            })
            .and_then(|mut w| w.watch(&self.root, notify::RecursiveMode::Recursive).map(|()| w));
            if let Err(e) = &watcher {
                tracing::warn!(error = %e, "file-change events unavailable; polling the registry only");
            }
            self.rescan();
            // Wake at least every 200 ms to notice `stop`.
            let tick = poll.min(Duration::from_millis(200));
            let mut since_scan = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_timeout(tick) {
                    Ok(()) => {
                        // Let a burst of events (a publish renames a folder full of files) settle.
                        std::thread::sleep(Duration::from_millis(50));
                        while rx.try_recv().is_ok() {}
                        self.rescan();
                        since_scan = Duration::ZERO;
                    }
                    Err(_) => {
                        since_scan += tick;
                        if since_scan >= poll {
                            self.rescan();
                            since_scan = Duration::ZERO;
                        }
                    }
                }
            }
            drop(watcher);
        })
    }

    /// Brings the catalog in line with the registry on disk.
    pub fn rescan(&mut self) {
        let old = self.store.snapshot();
        let names = match registry::model_names(&self.root) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot scan the registry; keeping what is loaded");
                return;
            }
        };
        let mut catalog = Catalog::default();
        let mut changed = false;
        for name in names {
            let model_dir = self.root.join(&name);
            let on_disk = match registry::versions(&model_dir) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "cannot list versions; keeping what is loaded");
                    if let Some(m) = old.models.get(&name) {
                        let versions = m.versions.clone();
                        catalog.models.insert(name, ModelVersions { versions, serving: m.serving });
                    }
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
                if self.failed.get(&key) == Some(&print) {
                    continue;
                }
                let span = tracing::info_span!("load", model = %name, version = v);
                let _enter = span.enter();
                match LoadedModel::load(&dir, self.runtime, self.options, &self.metrics) {
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
                        tracing::error!(error = %e, path = %dir.display(), "model version rejected; it will not serve");
                        self.metrics.load_failures.get_or_create(&ModelLabels { model: name.clone() }).inc();
                        self.failed.insert(key, print);
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
        if changed || old.models.len() != catalog.models.len() {
            self.store.replace(catalog);
        }
    }
}
