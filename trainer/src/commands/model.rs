//! `vericlip-train model status|canary|promote|rollback|retire`: the operator's lifecycle of a
//! model, written to `<registry>/<name>/serving.json` (`vericlip_core::registry::serving`), which
//! every server replica follows within one registry poll. Also what `fit` and `import` do around
//! their publish: a new version is a candidate unless `--promote`, and the first version of a
//! model becomes its stable version.
//!
//! A transition that makes a version serve (canary, promote) first checks it as a replica would
//! load it: on disk, not retired, manifest and checksum and limits (`registry::load_version`),
//! the ONNX contract (`registry::contract::check_onnx`), and ONNX Runtime's warm-up inference
//! (one probability). Rollback returns to a version that was stable before (checked then).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ndarray::Array3;
use serde::Serialize;
use vericlip_core::registry::serving::{self, Change, ServingError, ServingState, Transition};
use vericlip_core::registry::{self, RegistryError};
use vericlip_core::runtime::ModelSession;

/// Checks a published version as a server replica does before it serves it; the error says why
/// it cannot serve.
pub fn check(dir: &Path) -> Result<(), String> {
    let loaded = registry::verify_version(dir).map_err(|e| e.to_string())?;
    let rt = vericlip_core::runtime::init(None).map_err(|e| e.to_string())?;
    let mut session = ModelSession::from_bytes(rt, &loaded.model_onnx).map_err(|e| e.to_string())?;
    let spec = &loaded.manifest.feature_spec;
    let warm = Array3::<f32>::zeros((1, spec.frames_per_segment(), spec.n_features()));
    let out = session.run(warm.view()).map_err(|e| format!("warm-up inference failed: {e}"))?;
    if out.len() != 1 || !(0.0..=1.0).contains(&out[0]) {
        return Err(format!("warm-up inference returned {out:?}, not one probability"));
    }
    Ok(())
}

fn model_dir(registry_dir: &Path, name: &str) -> Result<PathBuf, RegistryError> {
    registry::validate_name(name)?;
    Ok(registry_dir.join(name))
}

/// The state a model without `serving.json` is in: its highest valid version serves.
fn current(dir: &Path, name: &str) -> Result<ServingState, ServingError> {
    registry::highest_valid(dir, &Default::default())?
        .map(ServingState::new)
        .ok_or_else(|| ServingError::NothingToServe { name: name.to_string() })
}

/// Applies `t` to the model's serving state (created first if the model has none), refusing a
/// version that is missing, retired or fails [`check`].
pub fn transition(registry_dir: &Path, name: &str, t: Transition) -> anyhow::Result<Change> {
    let dir = model_dir(registry_dir, name)?;
    let change = serving::update(
        &dir,
        || current(&dir, name),
        |state| {
            if let Some(version) = t.target() {
                if state.is_retired(version) {
                    return Err(ServingError::Retired { version });
                }
                if !registry::versions(&dir)?.contains(&version) {
                    return Err(ServingError::Missing { name: name.to_string(), version });
                }
                check(&dir.join(version.to_string())).map_err(|reason| ServingError::Unloadable { version, reason })?;
            }
            serving::apply(state, t)
        },
    )
    .with_context(|| format!("{} of model `{name}` refused", t.name()))?;
    log_change(name, t.name(), &change);
    Ok(change)
}

fn log_change(name: &str, what: &str, c: &Change) {
    tracing::info!(
        model = name,
        transition = what,
        from = c.before.as_ref().map_or(0, |s| s.stable),
        to = c.after.stable,
        canary = ?c.after.canary.map(|c| (c.version, c.fraction)),
        generation = c.after.generation,
        "serving state changed"
    );
}

/// How a freshly published version serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishedAs {
    /// Served by every replica within one poll (`--promote`, or the model's first version).
    Stable,
    /// On disk and checked, served by no one until a canary or promote.
    Candidate,
}

/// The publish stage inside the serving state (what `fit` and `import` both end with): a model
/// that serves without a state is given one first, then `manifest` is published as the next
/// version, which is stable with `promote` (or as the model's first version), else a candidate.
pub fn publish_placed(
    registry_dir: &Path,
    name: &str,
    manifest: registry::Manifest,
    onnx: &[u8],
    plots: &[(String, Vec<u8>)],
    promote: bool,
) -> anyhow::Result<(crate::pipeline::publish::Release, PublishedAs)> {
    before_publish(registry_dir, name)?;
    let release = crate::pipeline::publish::publish(registry_dir, manifest, onnx, plots)?;
    let published_as = after_publish(registry_dir, name, release.version, promote)?;
    Ok((release, published_as))
}

/// Before `fit`/`import` publish: a model that serves without a serving state gets one, with
/// what serves now as stable, so that the new version lands as a candidate.
fn before_publish(registry_dir: &Path, name: &str) -> anyhow::Result<()> {
    let dir = model_dir(registry_dir, name)?;
    if !dir.is_dir() || serving::read(&dir)?.is_some() {
        return Ok(());
    }
    if let Some(stable) = registry::highest_valid(&dir, &Default::default())? {
        let change = serving::update(&dir, || Ok(ServingState::new(stable)), |s| Ok(s.clone()))?;
        log_change(name, "freeze", &change);
    }
    Ok(())
}

/// After `fit`/`import` published `version`: promotes it when asked (or when the model has no
/// stable version yet); else it stays a candidate.
fn after_publish(registry_dir: &Path, name: &str, version: u64, promote: bool) -> anyhow::Result<PublishedAs> {
    let dir = model_dir(registry_dir, name)?;
    if serving::read(&dir)?.is_none() {
        let change = serving::update(&dir, || Ok(ServingState::new(version)), |s| Ok(s.clone()))?;
        log_change(name, "first", &change);
        return Ok(PublishedAs::Stable);
    }
    if promote {
        transition(registry_dir, name, Transition::Promote { version })?;
        return Ok(PublishedAs::Stable);
    }
    Ok(PublishedAs::Candidate)
}

/// One line for people about a publish.
pub fn published_text(name: &str, version: u64, dir: &Path, how: PublishedAs) -> String {
    match how {
        PublishedAs::Stable => format!("published {name} version {version} at {} (stable: it serves)", dir.display()),
        PublishedAs::Candidate => format!(
            "published {name} version {version} at {} as a candidate (not served): try it with \
             `vericlip-train model canary {version} --fraction 0.1`, then `model promote {version}`",
            dir.display()
        ),
    }
}

/// One version as `status` shows it.
#[derive(Debug, Serialize)]
pub struct VersionStatus {
    pub version: u64,
    /// stable, canary, candidate or retired.
    pub role: &'static str,
    /// The load check here ([`check`]): `null` when it passes, else why it fails (retired
    /// versions are not checked).
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub name: String,
    /// `null` when the model has no serving.json (its highest valid version serves).
    pub state: Option<ServingState>,
    pub versions: Vec<VersionStatus>,
}

pub fn status(registry_dir: &Path, name: &str) -> anyhow::Result<Status> {
    let dir = model_dir(registry_dir, name)?;
    let on_disk = registry::versions(&dir)?;
    if on_disk.is_empty() {
        anyhow::bail!("model `{name}` has no published version in {}", registry_dir.display());
    }
    let state = serving::read(&dir)?;
    let implicit = match &state {
        Some(_) => None,
        None => registry::highest_valid(&dir, &Default::default())?,
    };
    let versions = on_disk
        .into_iter()
        .rev()
        .map(|version| {
            let role = match &state {
                Some(s) if s.is_retired(version) => "retired",
                Some(s) if s.stable == version => "stable",
                Some(s) if s.canary.is_some_and(|c| c.version == version) => "canary",
                None if implicit == Some(version) => "stable",
                _ => "candidate",
            };
            let problem = if role == "retired" { None } else { check(&dir.join(version.to_string())).err() };
            VersionStatus { version, role, problem }
        })
        .collect();
    Ok(Status { name: name.to_string(), state, versions })
}

pub fn status_text(s: &Status) -> String {
    let mut out = String::new();
    match &s.state {
        Some(st) => {
            let _ = write!(out, "{}: stable {}", s.name, st.stable);
            if let Some(c) = st.canary {
                let _ = write!(out, ", canary {} at {:.1} %", c.version, c.fraction * 100.0);
            }
            let history: Vec<_> = st.history.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "; rollback to: {}; generation {} ({})",
                history.last().map_or("none", String::as_str),
                st.generation,
                st.updated_at
            );
        }
        None => {
            let _ = writeln!(out, "{}: no serving.json (the highest valid version serves)", s.name);
        }
    }
    let _ = writeln!(out, "{:>8}  {:<9}  check", "version", "role");
    for v in &s.versions {
        let check = match (&v.problem, v.role) {
            (_, "retired") => "-".to_string(),
            (None, _) => "ok".to_string(),
            (Some(p), _) => format!("FAILS: {p}"),
        };
        let _ = writeln!(out, "{:>8}  {:<9}  {check}", v.version, v.role);
    }
    out
}

/// One line for people about a transition.
pub fn change_text(name: &str, c: &Change) -> String {
    let s = &c.after;
    let canary = s.canary.map_or(String::new(), |c| format!(", canary {} at {:.1} %", c.version, c.fraction * 100.0));
    let retired: Vec<_> = s.retired.iter().map(u64::to_string).collect();
    let retired = if retired.is_empty() { String::new() } else { format!(", retired {}", retired.join(" ")) };
    format!(
        "{name}: stable {}{canary}{retired} (generation {}); every replica follows within one registry poll",
        s.stable, s.generation
    )
}
