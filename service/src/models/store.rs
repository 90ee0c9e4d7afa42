//! What is loaded, swapped atomically: a request takes an `Arc` of the version it runs on, so a
//! swap never disturbs it, and a retired version is freed when its last request ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::LoadedModel;
use super::route::Route;
use crate::error::ServiceError;

#[derive(Default)]
pub struct ModelVersions {
    /// The loaded versions: stable, canary, pinned and `registry.keep_warm` candidates only.
    pub versions: BTreeMap<u64, Arc<LoadedModel>>,
    /// The version requests without a version get (the pin, else the serving state's stable).
    pub serving: Option<u64>,
    /// A loaded canary and its share of the unversioned requests (never with a pin).
    pub canary: Option<(u64, f64)>,
    /// The serving state's generation as this replica read it (0: the model has none).
    pub generation: u64,
}

impl ModelVersions {
    /// The version an unversioned request on `route` gets.
    pub fn routed(&self, route: Route) -> Option<u64> {
        match self.canary {
            Some((v, fraction)) if route.takes_canary(fraction) => Some(v),
            _ => self.serving,
        }
    }
}

/// A published version that does not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub name: String,
    pub version: u64,
    /// What was wrong, relative to the registry (no server paths).
    pub reason: String,
}

#[derive(Default)]
pub struct Catalog {
    pub models: BTreeMap<String, ModelVersions>,
    /// Versions on disk that failed to load, by (model, version).
    pub rejected: BTreeMap<(String, u64), Rejected>,
    /// Why this replica must not take traffic although something may be loaded (a pin or a
    /// stable version that cannot serve: fail closed, never serve another version instead).
    pub problems: Vec<String>,
    /// Models whose serving state on disk is refused, and why: they follow their last good state.
    pub held: BTreeMap<String, String>,
}

impl Catalog {
    pub fn ready(&self) -> bool {
        self.problems.is_empty() && self.models.values().any(|m| m.serving.is_some())
    }

    /// What this replica applies, one line a model, for `/readyz` (what `vericlip-train model
    /// status --wait` reads): `model NAME: serving V[, canary C at F %], generation G`, and the
    /// refused serving state when it keeps its last good one.
    pub fn detail(&self) -> String {
        let mut out = String::new();
        for (name, m) in &self.models {
            out.push_str(&format!("model {name}: serving {}", m.serving.map_or("none".into(), |v| v.to_string())));
            if let Some((v, f)) = m.canary {
                out.push_str(&format!(", canary {v} at {:.1} %", f * 100.0));
            }
            out.push_str(&format!(", generation {}", m.generation));
            if let Some(problem) = self.held.get(name) {
                out.push_str(&format!(" (serving.json refused, keeping this: {problem})"));
            }
            out.push('\n');
        }
        out
    }

    /// Why the replica is not ready, for `/readyz` (None when it is).
    pub fn unready_reason(&self) -> Option<String> {
        if !self.problems.is_empty() {
            Some(self.problems.join("; "))
        } else if !self.ready() {
            Some("no model loaded yet".into())
        } else {
            None
        }
    }
}

pub struct ModelStore {
    catalog: ArcSwap<Catalog>,
    default_model: String,
    ready: watch::Sender<bool>,
}

impl ModelStore {
    pub fn new(default_model: String) -> Self {
        Self { catalog: ArcSwap::from_pointee(Catalog::default()), default_model, ready: watch::channel(false).0 }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    pub fn replace(&self, catalog: Catalog) {
        let ready = catalog.ready();
        self.catalog.store(Arc::new(catalog));
        self.ready.send_replace(ready);
    }

    /// Becomes true once some model can serve (and false if none can any more).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// The version a request gets: `name` empty = the default model, `version` 0 = the served
    /// one (the canary for the `route`s that fall in its fraction).
    pub fn resolve(&self, name: &str, version: u64, route: Route) -> Result<Arc<LoadedModel>, ServiceError> {
        // Request-controlled: never echo an unbounded or control-character name back.
        if !name.is_empty() && vericlip_core::registry::validate_name(name).is_err() {
            return Err(ServiceError::bad_request(
                "invalid_model_name",
                format!(
                    "model name {} is not valid: at most 128 letters, digits, '-', '_' or '.', not starting with '.'",
                    crate::error::quote_bounded(name)
                ),
            ));
        }
        let catalog = self.catalog.load();
        if let Some(reason) = catalog.unready_reason() {
            return Err(ServiceError::Unavailable(format!("this replica is not ready ({reason}); retry shortly")));
        }
        let name = if !name.is_empty() {
            name
        } else if !self.default_model.is_empty() {
            &self.default_model
        } else if catalog.models.len() == 1 {
            catalog.models.keys().next().map_or("", String::as_str)
        } else {
            let names: Vec<_> = catalog.models.keys().map(String::as_str).collect();
            return Err(ServiceError::bad_request(
                "model_required",
                format!("several models are served ({}); name one in the request", names.join(", ")),
            ));
        };
        let Some(entry) = catalog.models.get(name) else {
            let names: Vec<_> = catalog.models.keys().map(String::as_str).collect();
            return Err(ServiceError::ModelNotFound(format!(
                "model `{name}` is not loaded (loaded: {})",
                names.join(", ")
            )));
        };
        let version = if version == 0 { entry.routed(route) } else { Some(version) };
        version.and_then(|v| entry.versions.get(&v)).cloned().ok_or_else(|| {
            let have: Vec<_> = entry.versions.keys().map(u64::to_string).collect();
            ServiceError::ModelNotFound(format!(
                "model `{name}` has no loaded version {} (loaded: {}; a replica loads the stable, canary and pinned versions)",
                version.map_or("to serve".to_string(), |v| v.to_string()),
                have.join(", ")
            ))
        })
    }
}
