//! `vericlip-train model status|canary|abort|promote|rollback|retire|restore|history`: the operator's lifecycle of a
//! model, written to `<registry>/<name>/serving.json` (`vericlip_core::registry::serving`), which
//! every server replica follows within one registry poll. Also what `fit` and `import` do around
//! their publish: a new version is a candidate unless `--promote`, and the first version of a
//! model becomes its stable version.
//!
//! A transition that makes a version serve (canary, promote) first checks it as a replica would
//! load it: on disk, not retired, manifest and checksum and limits (`registry::load_version`),
//! the files the serving state recorded when the version was published (`registry::verify_published`),
//! the ONNX contract (`registry::contract::check_onnx`), and ONNX Runtime's warm-up inference
//! (one probability). Rollback returns to a version that was stable before (checked then).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ndarray::Array3;
use serde::Serialize;
use vericlip_core::registry::serving::{self, Change, Record, ServingError, ServingState, Transition};
use vericlip_core::registry::{self, RegistryError};
use vericlip_core::runtime::ModelSession;

/// Checks a published version as a server replica does before it serves it; the error says why
/// it cannot serve. `published` is the manifest checksum the serving state recorded when the
/// version was published: files that differ from it are refused, however valid.
pub fn check(dir: &Path, published: Option<&str>) -> Result<(), String> {
    let loaded = registry::verify_published(dir, published).map_err(|e| e.to_string())?;
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

/// How a command writes: its `--reason` (kept in the history) and `--dry-run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions<'a> {
    pub reason: Option<&'a str>,
    pub dry_run: bool,
}

/// Applies `t` to the model's serving state (created first if the model has none), refusing a
/// version that is missing, retired or fails [`check`]: the target, and every version the new state makes serve
/// that the old one did not (a rollback's target included) is checked as a replica would.
pub fn transition(registry_dir: &Path, name: &str, t: Transition, how: WriteOptions<'_>) -> anyhow::Result<Change> {
    let dir = model_dir(registry_dir, name)?;
    let change = serving::update(
        &dir,
        Record { what: t.name(), reason: how.reason },
        how.dry_run,
        || current(&dir, name),
        |state| {
            if let Some(version) = t.target()
                && state.is_retired(version)
            {
                return Err(ServingError::Retired { version });
            }
            let next = serving::apply(state, t)?;
            let serving_now = |s: &ServingState| [Some(s.stable), s.canary.map(|c| c.version)];
            let on_disk = registry::versions(&dir)?;
            for version in serving_now(&next).into_iter().flatten() {
                // The target is checked even when it serves already (a canary being promoted:
                // its files may have changed since it was canaried).
                if serving_now(state).contains(&Some(version)) && t.target() != Some(version) {
                    continue;
                }
                if !on_disk.contains(&version) {
                    return Err(ServingError::Missing { name: name.to_string(), version });
                }
                let recorded = state.published.get(&version).map(String::as_str);
                check(&dir.join(version.to_string()), recorded)
                    .map_err(|reason| ServingError::Unloadable { version, reason })?;
            }
            Ok(next)
        },
    )
    .with_context(|| format!("{} of model `{name}` refused", t.name()))?;
    if !how.dry_run {
        log_change(name, t.name(), &change);
    }
    Ok(change)
}

/// `model restore`: rewrites a lost or unreadable `serving.json` from the last state in the
/// model's history.
pub fn restore(registry_dir: &Path, name: &str, how: WriteOptions<'_>) -> anyhow::Result<Change> {
    let dir = model_dir(registry_dir, name)?;
    let change = serving::restore(&dir, Record { what: "restore", reason: how.reason }, how.dry_run)
        .with_context(|| format!("restore of model `{name}` refused"))?;
    if !how.dry_run {
        log_change(name, "restore", &change);
    }
    Ok(change)
}

/// `model history`: every change of the serving state, oldest first.
pub fn history(registry_dir: &Path, name: &str) -> anyhow::Result<Vec<serving::HistoryEntry>> {
    let dir = model_dir(registry_dir, name)?;
    Ok(serving::read_history(&dir)?)
}

fn serving_summary(s: &ServingState) -> String {
    let canary = s.canary.map_or(String::new(), |c| format!(", canary {} at {:.1} %", c.version, c.fraction * 100.0));
    format!("stable {}{canary}", s.stable)
}

pub fn history_text(entries: &[serving::HistoryEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let from = e.before.as_ref().map_or("none".to_string(), serving_summary);
        let _ = write!(
            out,
            "{}  generation {:>4}  {:<8} by {}: {} -> {}",
            e.at,
            e.generation,
            e.what,
            e.by,
            from,
            serving_summary(&e.after)
        );
        if let Some(r) = &e.reason {
            let _ = write!(out, " ({r})");
        }
        out.push('\n');
    }
    if entries.is_empty() {
        out.push_str("no history (the serving state was never written by this version of the commands)\n");
    }
    out
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
        let record = Record { what: "freeze", reason: None };
        let change = serving::update(&dir, record, false, || Ok(ServingState::new(stable)), |s| Ok(s.clone()))?;
        log_change(name, "freeze", &change);
    }
    Ok(())
}

/// After `fit`/`import` published `version`: promotes it when asked (or when the model has no
/// stable version yet); else it stays a candidate.
fn after_publish(registry_dir: &Path, name: &str, version: u64, promote: bool) -> anyhow::Result<PublishedAs> {
    let dir = model_dir(registry_dir, name)?;
    if serving::read(&dir)?.is_none() {
        let record = Record { what: "first", reason: None };
        let change = serving::update(&dir, record, false, || Ok(ServingState::new(version)), |s| Ok(s.clone()))?;
        log_change(name, "first", &change);
        return Ok(PublishedAs::Stable);
    }
    if promote {
        transition(registry_dir, name, Transition::Promote { version }, WriteOptions::default())?;
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
    /// serving.json is missing although the model had one (its history exists).
    pub lost: bool,
    pub versions: Vec<VersionStatus>,
}

pub fn status(registry_dir: &Path, name: &str) -> anyhow::Result<Status> {
    let dir = model_dir(registry_dir, name)?;
    let on_disk = registry::versions(&dir)?;
    if on_disk.is_empty() {
        anyhow::bail!("model `{name}` has no published version in {}", registry_dir.display());
    }
    let state = serving::read(&dir)?;
    let lost = state.is_none() && serving::had_state(&dir);
    let implicit = match &state {
        None if !lost => registry::highest_valid(&dir, &Default::default())?,
        _ => None,
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
            let recorded = state.as_ref().and_then(|s| s.published.get(&version)).map(String::as_str);
            let problem = if role == "retired" { None } else { check(&dir.join(version.to_string()), recorded).err() };
            VersionStatus { version, role, problem }
        })
        .collect();
    Ok(Status { name: name.to_string(), state, lost, versions })
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
        None if s.lost => {
            let _ = writeln!(
                out,
                "{}: serving.json is MISSING although the model had one: replicas keep their last good state \
                 (a new replica stays unready); `vericlip-train model restore` rewrites the last one",
                s.name
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

/// One line for people about a transition (`dry_run`: what it would write).
pub fn change_text(name: &str, c: &Change, dry_run: bool) -> String {
    let s = &c.after;
    let canary = s.canary.map_or(String::new(), |c| format!(", canary {} at {:.1} %", c.version, c.fraction * 100.0));
    let retired: Vec<_> = s.retired.iter().map(u64::to_string).collect();
    let retired = if retired.is_empty() { String::new() } else { format!(", retired {}", retired.join(" ")) };
    if dry_run {
        return format!(
            "dry run, nothing written: {name} would be: stable {}{canary}{retired} (generation {})",
            s.stable, s.generation
        );
    }
    format!(
        "{name}: stable {}{canary}{retired} (generation {}); every replica follows within one registry poll",
        s.stable, s.generation
    )
}

/// One server replica as `model status --wait` saw it last.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub addr: String,
    /// `/readyz` answered 200.
    pub ready: bool,
    /// The serving-state generation it applies for the model (`None`: not said, or unreachable).
    pub generation: Option<u64>,
    /// Its `/readyz` line for the model, or why it could not be asked.
    pub detail: String,
}

/// What `model status --wait` found.
#[derive(Debug, Serialize)]
pub struct Rollout {
    pub name: String,
    pub generation: u64,
    pub converged: bool,
    pub seconds: f64,
    pub replicas: Vec<ReplicaStatus>,
}

/// `GET /readyz` over plain HTTP/1.0 (the servers' HTTP port, or the admin port), bounded in
/// time and size: (status, body).
fn get_readyz(addr: std::net::SocketAddr) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).and_then(|()| s.set_write_timeout(Some(timeout))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    s.take(64 << 10).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("not an HTTP response")?;
    Ok((status, body.to_string()))
}

/// Every replica behind `specs` (`HOST:PORT`; a name resolves to all its addresses, e.g. the
/// headless Service's pods) and the generation each applies for `name`.
pub fn replica_generations(specs: &[String], name: &str) -> Vec<ReplicaStatus> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for spec in specs {
        let addrs = match spec.to_socket_addrs() {
            Ok(a) => a.collect::<Vec<_>>(),
            Err(e) => {
                out.push(ReplicaStatus { addr: spec.clone(), ready: false, generation: None, detail: e.to_string() });
                continue;
            }
        };
        for addr in addrs {
            let prefix = format!("model {name}: ");
            let status = match get_readyz(addr) {
                Ok((code, body)) => {
                    let line = body.lines().find(|l| l.starts_with(&prefix)).map(str::to_string);
                    let generation = line.as_deref().and_then(|l| {
                        l.split(", generation ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
                    });
                    let detail = line.unwrap_or_else(|| body.lines().next().unwrap_or_default().to_string());
                    ReplicaStatus { addr: addr.to_string(), ready: code == 200, generation, detail }
                }
                Err(e) => ReplicaStatus { addr: addr.to_string(), ready: false, generation: None, detail: e },
            };
            out.push(status);
        }
    }
    out
}

/// Waits (up to `timeout`) until every ready replica behind `specs` applies the model's current
/// serving-state generation, like `kubectl rollout status`; unready replicas are listed, not
/// waited for (they apply it when they become ready).
pub fn wait_rollout(
    registry_dir: &Path,
    name: &str,
    specs: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<Rollout> {
    let dir = model_dir(registry_dir, name)?;
    let state = serving::read(&dir)?
        .ok_or_else(|| anyhow::anyhow!("model `{name}` has no serving.json: nothing to wait for"))?;
    let started = std::time::Instant::now();
    loop {
        let replicas = replica_generations(specs, name);
        let ready: Vec<_> = replicas.iter().filter(|r| r.ready).collect();
        let converged = !ready.is_empty() && ready.iter().all(|r| r.generation.is_some_and(|g| g >= state.generation));
        if converged || started.elapsed() >= timeout {
            return Ok(Rollout {
                name: name.to_string(),
                generation: state.generation,
                converged,
                seconds: started.elapsed().as_secs_f64(),
                replicas,
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub fn rollout_text(r: &Rollout) -> String {
    let ready = r.replicas.iter().filter(|x| x.ready).count();
    let applied = r.replicas.iter().filter(|x| x.ready && x.generation.is_some_and(|g| g >= r.generation)).count();
    let mut out = if r.converged {
        format!(
            "rollout of {} generation {}: {applied} of {ready} ready replicas apply it ({:.1} s)\n",
            r.name, r.generation, r.seconds
        )
    } else if ready == 0 {
        format!(
            "rollout of {} generation {}: NOT DONE after {:.1} s: no ready replica\n",
            r.name, r.generation, r.seconds
        )
    } else {
        format!(
            "rollout of {} generation {}: NOT DONE after {:.1} s: {applied} of {ready} ready replicas apply it\n",
            r.name, r.generation, r.seconds
        )
    };
    for x in &r.replicas {
        let g = x.generation.map_or("-".into(), |g| g.to_string());
        let _ = writeln!(
            out,
            "  {:<24} {:<7} generation {g:<5} {}",
            x.addr,
            if x.ready { "ready" } else { "UNREADY" },
            x.detail
        );
    }
    out
}
