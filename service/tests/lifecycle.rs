//! Model lifecycle through the real binaries (issue 20): two `vericlip-server` replicas on one
//! registry follow its serving state (`serving.json`) as `vericlip-train model ...` and
//! `vericlip-server seed` change it, under load, without a failed request; a pin that cannot
//! serve fails closed; a corrupt candidate is listed as rejected and counted from 0; a replica
//! loads only the versions the state names, whatever lies on disk.
//!
//! `vericlip-train` is the trainer crate's binary, found next to `vericlip-server` in the same
//! target folder (`cargo test --workspace` builds both; alone: `cargo build -p vericlip-train`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, replica_link};
use tonic::transport::Channel;
use vericlip_server::api::vericlip_client::VericlipClient;
use vericlip_server::models::Route;

use common::fixture::{MODEL, corrupt, fresh, place_version, repo, text};

fn trainer() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_vericlip-server")).with_file_name("vericlip-train");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p vericlip-train`; `cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

/// `vericlip-train model ARGS --registry REG --name vericlip-lstm`.
fn model(reg: &Path, args: &[&str]) -> Output {
    std::process::Command::new(trainer())
        .arg("model")
        .args(args)
        .arg("--registry")
        .arg(reg)
        .args(["--name", MODEL])
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn model_ok(reg: &Path, args: &[&str]) -> String {
    let out = model(reg, args);
    assert!(out.status.success(), "model {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn seed(from: &Path, to: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vericlip-server"))
        .args(["seed", "--from"])
        .arg(from)
        .arg("--registry")
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "seed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_state(reg: &Path, json: &str) {
    std::fs::write(reg.join(MODEL).join("serving.json"), json).unwrap();
}

/// 2 s of speech at 16 kHz.
fn clip() -> Vec<f32> {
    common::long_clip()[..32_000].to_vec()
}

async fn connect(url: &str) -> VericlipClient<Channel> {
    VericlipClient::new(Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap())
}

/// One unary classification, with the routing key as metadata when given: the version that
/// answered.
async fn classify(c: &mut VericlipClient<Channel>, audio: &[f32], key: Option<&str>) -> Result<u64, tonic::Status> {
    let mut request = tonic::Request::new(common::pcm_request(audio));
    if let Some(k) = key {
        request.metadata_mut().insert("x-vericlip-routing-key", k.parse().unwrap());
    }
    c.classify(request).await.map(|r| r.into_inner().model_version)
}

fn serving_version(s: &Server) -> f64 {
    s.metric(&format!("vericlip_model_serving_version{{model=\"{MODEL}\"}}"))
}

fn canary_version(s: &Server) -> f64 {
    s.metric(&format!("vericlip_model_canary_version{{model=\"{MODEL}\"}}"))
}

/// Versions with the loaded gauge at 1.
fn loaded(s: &Server) -> Vec<u64> {
    let prefix = format!("vericlip_model_loaded{{model=\"{MODEL}\",version=\"");
    let mut out: Vec<u64> = s
        .metrics()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| l.ends_with(" 1"))
        .filter_map(|l| l.split('"').next().and_then(|v| v.parse().ok()))
        .collect();
    out.sort_unstable();
    out
}

/// Polls `cond` every 20 ms; the time it took.
async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Clients classifying without a routing key on every server until stopped: the versions that
/// answered, and the failures.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, Vec<String>)>>,
}

impl Load {
    fn start(urls: &[String], audio: &[f32]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = urls
            .iter()
            .map(|url| {
                let (stop, url, audio) = (Arc::clone(&stop), url.clone(), audio.to_vec());
                tokio::spawn(async move {
                    let mut c = connect(&url).await;
                    let (mut versions, mut failures) = (Vec::new(), Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match classify(&mut c, &audio, None).await {
                            Ok(v) => versions.push(v),
                            Err(s) => failures.push(format!("{url}: {:?} {}", s.code(), s.message())),
                        }
                    }
                    (versions, failures)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> (Vec<u64>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut versions, mut failures) = (Vec::new(), Vec::new());
        for t in self.tasks {
            let (v, f) = t.await.unwrap();
            versions.extend(v);
            failures.extend(f);
        }
        (versions, failures)
    }
}

/// `count` keyed requests, `key-0..`, spread over `concurrency` clients of `url`: (key, version).
async fn keyed_requests(url: &str, audio: &[f32], count: usize, concurrency: usize) -> Vec<(String, u64)> {
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (url, audio) = (url.to_string(), audio.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&url).await;
            let mut out = Vec::new();
            for i in (worker..count).step_by(concurrency) {
                let key = format!("caller-{i}");
                let v = classify(&mut c, &audio, Some(&key)).await.unwrap_or_else(|s| panic!("{key}: {s:?}"));
                out.push((key, v));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_follow_candidate_canary_promote_rollback_retire_under_load() {
    let reg = fresh("fleet");
    place_version(&reg, 4, 4);
    // The second replica reaches the same folder through a link (its own log file).
    let reg_b = replica_link(&reg, "vericlip-lifecycle-fleet-b");
    let a = Server::start(&reg, &[]).await;
    let b = Server::start(&reg_b, &[]).await;
    let servers = [&a, &b];
    let audio = clip();
    let load = Load::start(&[a.grpc.clone(), b.grpc.clone()], &audio);

    // Publish v5 as a candidate: `seed` from a bundle holding v4 and v5 (as a new image would)
    // first freezes what serves now (v4) in serving.json, then copies v5, which nobody serves.
    let bundle = fresh("bundle");
    place_version(&bundle, 4, 4);
    place_version(&bundle, 4, 5);
    std::fs::copy(repo().join(format!("models/{MODEL}/serving.json")), bundle.join(MODEL).join("serving.json"))
        .unwrap();
    let out = seed(&bundle, &reg);
    assert!(out.contains(&format!("{MODEL}/5: seeded (a candidate")), "{out}");
    let status = model_ok(&reg, &["status"]);
    assert!(status.contains("stable 4") && status.lines().any(|l| l.contains(" 5  candidate  ok")), "{status}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // three polls
    for s in servers {
        assert_eq!(serving_version(s), 4.0);
        assert_eq!(loaded(s), vec![4], "a candidate holds no session");
    }

    // Canary 10 %: the same key lands on the same version on both replicas, about a tenth on v5.
    let out = model_ok(&reg, &["canary", "5", "--fraction", "0.1"]);
    assert!(out.contains("canary 5 at 10.0 %"), "{out}");
    for s in servers {
        wait_until("the canary on both replicas", Duration::from_secs(30), || canary_version(s) == 5.0).await;
        assert_eq!(loaded(s), vec![4, 5]);
    }
    let on_a = keyed_requests(&a.grpc, &audio, 1000, 8).await;
    let on_b = keyed_requests(&b.grpc, &audio, 1000, 8).await;
    assert_eq!(on_a, on_b, "a routing key gets the same version on every replica");
    let canaried = on_a.iter().filter(|(_, v)| *v == 5).count() + on_b.iter().filter(|(_, v)| *v == 5).count();
    println!("canary 10 %: {canaried} of 2000 keyed requests answered by v5 (1000 keys on each replica)");
    assert!((120..=280).contains(&canaried), "{canaried} of 2000 on the canary");
    for (key, v) in &on_a {
        let want = if Route::keyed(key.as_bytes()).takes_canary(0.1) { 5 } else { 4 };
        assert_eq!(*v, want, "{key}: the key's fixed hash decides the side");
    }
    let routed = |s: &Server, v: u64| {
        s.metric(&format!("vericlip_model_version_requests_total{{model=\"{MODEL}\",version=\"{v}\",code=\"OK\"}}"))
    };
    assert!(routed(&a, 5) > 0.0 && routed(&a, 4) > routed(&a, 5), "per-version answers:\n{}", a.metrics());

    // Promote: both replicas serve v5 within a poll or so of the command, and say so.
    let promoted = Instant::now();
    model_ok(&reg, &["promote", "5"]);
    let replicas = format!("{},{}", a.http, b.http);
    let rollout = model_ok(&reg, &["status", "--wait", "30", "--replicas", &replicas]);
    assert!(rollout.contains("2 of 2 ready replicas apply it"), "{rollout}");
    println!("promote: {}", rollout.lines().next().unwrap_or_default());
    let swap = wait_until("v5 stable on both replicas", Duration::from_secs(30), || {
        servers.iter().all(|s| serving_version(s) == 5.0 && canary_version(s) == 0.0)
    })
    .await;
    println!("promote: both replicas serve v5 {:.0} ms after the command began", promoted.elapsed().as_millis());
    println!("promote: {} ms from the command's exit to both replicas' swap", swap.as_millis());
    for s in servers {
        let mut c = s.client().await;
        for i in 0..20 {
            assert_eq!(classify(&mut c, &audio, Some(&format!("caller-{i}"))).await.unwrap(), 5);
        }
    }

    // Roll back: v4 again everywhere, the canary gone.
    model_ok(&reg, &["rollback"]);
    wait_until("v4 back on both replicas", Duration::from_secs(30), || {
        servers.iter().all(|s| serving_version(s) == 4.0)
    })
    .await;
    for s in servers {
        let mut c = s.client().await;
        for i in 0..20 {
            assert_eq!(classify(&mut c, &audio, Some(&format!("caller-{i}"))).await.unwrap(), 4);
        }
    }

    // Retire v5, delete its files, seed again from the bundle: the tombstone keeps it out, and
    // the serving state is untouched.
    let out = model_ok(&reg, &["retire", "5"]);
    assert!(out.contains("retired 5"), "{out}");
    let refused = model(&reg, &["promote", "5"]);
    assert!(!refused.status.success() && text(&refused).contains("version 5 is retired"), "{}", text(&refused));
    std::fs::remove_dir_all(reg.join(MODEL).join("5")).unwrap();
    let state = std::fs::read(reg.join(MODEL).join("serving.json")).unwrap();
    let out = seed(&bundle, &reg);
    assert!(out.contains(&format!("{MODEL}/5: retired")), "{out}");
    assert!(!reg.join(MODEL).join("5").exists(), "seed resurrected a retired version");
    assert_eq!(std::fs::read(reg.join(MODEL).join("serving.json")).unwrap(), state, "seed changed serving.json");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (versions, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests during the lifecycle: {failures:?}");
    assert!(versions.len() > 40, "too little load: {} requests", versions.len());
    assert!(versions.contains(&4) && versions.contains(&5), "the load saw both versions");
    println!(
        "background load: {} requests, {} on v4, {} on v5, 0 failed",
        versions.len(),
        versions.iter().filter(|v| **v == 4).count(),
        versions.iter().filter(|v| **v == 5).count()
    );
    for s in servers {
        assert_eq!(serving_version(s), 4.0);
        assert_eq!(loaded(s), vec![4]);
        assert!(s.metric(&format!("vericlip_model_state_changes_total{{model=\"{MODEL}\"}}")) >= 4.0);
    }
    let log = a.log_text();
    assert!(log.contains("serving state changed") && log.contains("generation"), "{log}");
    let _ = std::fs::remove_file(&reg_b);
    let _ = std::fs::remove_dir_all(&reg);
    let _ = std::fs::remove_dir_all(&bundle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_that_cannot_serve_fails_closed_with_the_reason() {
    let reg = fresh("pin");
    place_version(&reg, 4, 4);
    let config = reg.with_extension("toml");
    std::fs::write(&config, format!("[registry.pin]\n\"{MODEL}\" = 9\n")).unwrap();
    let server = Server::spawn(&reg, &[("VERICLIP_CONFIG", config.to_str().unwrap())]);
    let reason = "pinned (registry.pin) version 9 is not in the registry";
    for addr in [&server.admin, &server.http] {
        let started = Instant::now();
        loop {
            let (status, _, body) = common::http_request(addr, "GET", "/readyz", "text/plain", b"");
            let body = String::from_utf8_lossy(&body).into_owned();
            if body.contains(reason) {
                assert_eq!(status, 503, "{body}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "readyz never gave the reason: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Never served instead: no fallback to the highest version.
    let mut c = server.client().await;
    let e = classify(&mut c, &clip(), None).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(e.message().contains(reason), "{}", e.message());
    assert!(server.log_text().contains(reason), "{}", server.log_text());
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_dir_all(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_candidate_is_listed_as_rejected_and_counted_from_zero() {
    let reg = fresh("corrupt");
    place_version(&reg, 4, 4);
    write_state(&reg, r#"{"format": 1, "stable": 4, "generation": 1}"#);
    let server = Server::start(&reg, &[]).await;
    // A valid candidate: checked, not loaded, its failure counter at 0.
    place_version(&reg, 4, 6);
    let failures = format!("vericlip_model_load_failures_total{{model=\"{MODEL}\",version=\"6\"}}");
    wait_until("the candidate's counter", Duration::from_secs(30), || {
        server.metrics().lines().any(|l| l == format!("{failures} 0"))
    })
    .await;
    assert_eq!(loaded(&server), vec![4]);
    // Its model.onnx corrupted in place: rejected, with the reason, counted once.
    corrupt(&reg, 6);
    wait_until("the corrupt candidate counted", Duration::from_secs(30), || server.metric(&failures) == 1.0).await;
    let (status, _, body) = server.http("GET", "/v1/models", "application/json", b"");
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let rejected = listed["rejected"].as_array().unwrap();
    assert!(
        rejected.iter().any(|r| r["version"] == 6 && r["reason"].as_str().unwrap().contains("does not match")),
        "{listed}"
    );
    let out = std::process::Command::new(common::cli_binary())
        .env_remove("VERICLIP_API_KEY")
        .env_remove("VERICLIP_ADDR")
        .args(["--addr", &server.grpc, "models"])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success() && shown.contains("rejected") && shown.contains("does not match"), "{shown}");
    // The lifecycle commands refuse it, with the reason.
    let refused = model(&reg, &["canary", "6", "--fraction", "0.1"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("version 6 fails the load check"), "{}", text(&refused));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.metric(&failures), 1.0, "counted once, not on every scan");
    assert_eq!(serving_version(&server), 4.0);
    let _ = std::fs::remove_dir_all(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_loads_only_the_versions_the_state_names() {
    // Two versions on disk, ten, ten with one kept warm, and ten without a serving state.
    let make = |tag: &str, versions: u64, state: bool| {
        let reg = fresh(tag);
        for v in 4..4 + versions {
            place_version(&reg, 4, v);
        }
        if state {
            write_state(
                &reg,
                r#"{"format": 1, "stable": 4, "canary": {"version": 5, "fraction": 0.1}, "generation": 3}"#,
            );
        }
        reg
    };
    let (two, ten, warm, legacy) =
        (make("two", 2, true), make("ten", 10, true), make("warm", 10, true), make("legacy", 10, false));
    let mut rss = Vec::new();
    for (reg, env, want) in [
        (&two, vec![], vec![4, 5]),
        (&ten, vec![], vec![4, 5]),
        (&warm, vec![("VERICLIP__REGISTRY__KEEP_WARM", "1")], vec![4, 5, 13]),
        (&legacy, vec![], (4..14).collect::<Vec<u64>>()),
    ] {
        let server = Server::start(reg, &env).await;
        wait_until("every wanted version loaded", Duration::from_secs(60), || loaded(&server).len() >= want.len())
            .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(loaded(&server), want, "{}", reg.display());
        // Serve a little so that each replica's steady state is measured.
        let mut c = server.client().await;
        for i in 0..10 {
            classify(&mut c, &clip(), Some(&format!("k{i}"))).await.unwrap();
        }
        rss.push(server.rss_kib());
    }
    println!(
        "RSS: 2 versions on disk {} KiB, 10 on disk {} KiB (both load 2), 10 with keep_warm 1 {} KiB (3 loaded), 10 without serving.json {} KiB (10 loaded)",
        rss[0], rss[1], rss[2], rss[3]
    );
    // Generous: the same two versions loaded, whatever else lies on disk.
    assert!(rss[1] < rss[0] + rss[0] / 4 + 20_000, "10 versions on disk: {} KiB vs {} KiB with 2", rss[1], rss[0]);
    for reg in [two, ten, warm, legacy] {
        let _ = std::fs::remove_dir_all(reg);
    }
}

fn state_generation(reg: &Path) -> u64 {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.join(MODEL).join("serving.json")).unwrap()).unwrap();
    s["generation"].as_u64().unwrap()
}

fn state_held(s: &Server) -> f64 {
    s.metric(&format!("vericlip_model_state_held{{model=\"{MODEL}\"}}"))
}

fn state_invalid(s: &Server) -> f64 {
    s.metric(&format!("vericlip_model_state_invalid_total{{model=\"{MODEL}\"}}"))
}

/// `/readyz` on the admin port: (status, body).
fn readyz(s: &Server) -> (u16, String) {
    let (status, _, body) = common::http_request(&s.admin, "GET", "/readyz", "text/plain", b"");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Issue 32, items 1, 2 and 5, through the real binaries on two replicas sharing a registry,
/// under load: every bad edit of serving.json (deleted, invalid JSON, a stable version not on
/// disk, 2^63, a generation going backwards) is refused by one rule: both replicas keep the
/// last good state (stable 4, canary 5; never the newest version, never a retired or candidate
/// one), count it and keep answering; a fresh replica stays unready with the reason; the
/// commands refuse to build on it; `model restore` brings the last state back; `rollback`
/// refuses to end a canary and `abort` ends it without touching stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_serving_states_never_widen_what_serves_nor_take_the_fleet_down() {
    let reg = fresh("failclosed");
    for v in [3, 4, 5, 6] {
        place_version(&reg, 4, v);
    }
    write_state(&reg, r#"{"format": 1, "stable": 4, "retired": [3], "generation": 1}"#);
    model_ok(&reg, &["canary", "5", "--fraction", "0.1", "--reason", "try 5"]);
    let (reg_b, reg_c) =
        (replica_link(&reg, "vericlip-lifecycle-failclosed-b"), replica_link(&reg, "vericlip-lifecycle-failclosed-c"));
    let a = Server::start(&reg, &[]).await;
    let b = Server::start(&reg_b, &[]).await;
    let servers = [&a, &b];
    for s in servers {
        wait_until("the canary on both replicas", Duration::from_secs(30), || canary_version(s) == 5.0).await;
        assert_eq!(state_held(s), 0.0);
    }
    let audio = clip();
    let load = Load::start(&[a.grpc.clone(), b.grpc.clone()], &audio);
    let good = std::fs::read(reg.join(MODEL).join("serving.json")).unwrap();

    let edits: [(&str, Option<&str>); 5] = [
        ("deleted", None),
        ("invalid JSON", Some("{\"format\": 1, \"stable\": ")),
        ("a stable version not on disk", Some(r#"{"format": 1, "stable": 42, "generation": 9}"#)),
        ("stable 2^63", Some(r#"{"format": 1, "stable": 9223372036854775808, "generation": 9}"#)),
        ("a generation going backwards", Some(r#"{"format": 1, "stable": 6, "generation": 1}"#)),
    ];
    for (n, (what, content)) in edits.iter().enumerate() {
        // Replaced in one rename (a replica never sees the file missing between two edits).
        let path = reg.join(MODEL).join("serving.json");
        match content {
            Some(c) => {
                let tmp = reg.join(MODEL).join(".edit.tmp");
                std::fs::write(&tmp, c).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
            None => std::fs::remove_file(&path).unwrap(),
        }
        for s in servers {
            wait_until(what, Duration::from_secs(30), || state_invalid(s) == (n + 1) as f64).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await; // two more polls
        for s in servers {
            assert_eq!(state_held(s), 1.0, "{what}");
            assert_eq!((serving_version(s), canary_version(s)), (4.0, 5.0), "{what}: the last good state serves");
            assert_eq!(loaded(s), vec![4, 5], "{what}: nothing else loads (not 6, not retired 3)");
            let (status, body) = readyz(s);
            assert_eq!(status, 200, "{what}: a running replica stays ready: {body}");
            assert!(
                body.contains(&format!(
                    "model {MODEL}: serving 4, canary 5 at 10.0 %, generation 2 (serving.json refused"
                )),
                "{what}: {body}"
            );
            let mut c = s.client().await;
            let pinned = vericlip_server::api::ClassifyRequest { version: 3, ..common::pcm_request(&audio) };
            let e = c.classify(pinned).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::NotFound, "{what}: retired 3 never answers again");
        }
        // The commands refuse to build on it.
        let refused = model(&reg, &["promote", "6"]);
        assert!(!refused.status.success(), "{what}: {}", text(&refused));
        if n == 1 {
            // A fresh replica with no good state stays unready, with the reason.
            let c = Server::spawn(&reg_c, &[]);
            let started = Instant::now();
            loop {
                let (status, body) = readyz(&c);
                if body.contains("no good serving state yet") {
                    assert_eq!(status, 503, "{body}");
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "readyz: {status} {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut client = c.client().await;
            assert_eq!(classify(&mut client, &audio, None).await.unwrap_err().code(), tonic::Code::Unavailable);
        }
    }
    // Restore: the last state written by a command, one generation on; both replicas follow it.
    std::fs::remove_file(reg.join(MODEL).join("serving.json")).unwrap();
    let out = model_ok(&reg, &["restore", "--reason", "lost by hand"]);
    assert!(out.contains("stable 4, canary 5 at 10.0 %") && out.contains("generation 3"), "{out}");
    assert_ne!(std::fs::read(reg.join(MODEL).join("serving.json")).unwrap(), good);
    for s in servers {
        wait_until("the restored state", Duration::from_secs(30), || state_held(s) == 0.0).await;
        assert_eq!(s.metric(&format!("vericlip_model_state_generation{{model=\"{MODEL}\"}}")), 3.0);
    }

    // Ending a canary: rollback refuses (it would move stable), abort ends it, stable stays 4.
    let refused = model(&reg, &["rollback"]);
    assert!(!refused.status.success() && text(&refused).contains("model abort"), "{}", text(&refused));
    let dry = model_ok(&reg, &["abort", "--dry-run"]);
    assert!(dry.contains("dry run, nothing written") && dry.contains("stable 4, retired 3 (generation 4)"), "{dry}");
    assert_eq!(state_generation(&reg), 3, "a dry run writes nothing");
    let aborted = Instant::now();
    let out = model_ok(&reg, &["abort", "--reason", "5 looks wrong"]);
    assert!(out.contains("stable 4, retired 3 (generation 4)"), "{out}");
    let ended = wait_until("the canary ended on both replicas", Duration::from_secs(30), || {
        servers.iter().all(|s| canary_version(s) == 0.0)
    })
    .await;
    println!(
        "abort: both replicas ended the canary {} ms after the command began ({} ms after it exited)",
        aborted.elapsed().as_millis(),
        ended.as_millis()
    );
    // Rollout status: both replicas (by their HTTP port) report generation 4.
    let replicas = format!("{},{}", a.http, b.http);
    let out = model_ok(&reg, &["status", "--wait", "30", "--replicas", &replicas]);
    assert!(out.contains("generation 4: 2 of 2 ready replicas apply it"), "{out}");
    for s in servers {
        assert_eq!((canary_version(s), serving_version(s)), (0.0, 4.0));
        assert!(readyz(s).1.contains(&format!("model {MODEL}: serving 4, generation 4\n")), "{}", readyz(s).1);
    }
    // Nothing ready to ask: the wait times out and says so.
    let out = model(&reg, &["status", "--wait", "0.3", "--replicas", "127.0.0.1:1"]);
    assert!(
        !out.status.success() && text(&out).contains("NOT DONE") && text(&out).contains("no ready replica"),
        "{}",
        text(&out)
    );
    let history = model_ok(&reg, &["history"]);
    for want in ["canary", "try 5", "restore", "lost by hand", "abort", "5 looks wrong"] {
        assert!(history.contains(want), "history lacks {want:?}:\n{history}");
    }

    let (versions, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests while serving.json was bad: {failures:?}");
    assert!(versions.iter().all(|v| [4, 5].contains(v)), "only the last good state's versions answered");
    println!("fail closed: {} requests under 5 bad edits, restore and abort, 0 failed", versions.len());
    for l in [reg_b, reg_c] {
        let _ = std::fs::remove_file(l);
    }
    let _ = std::fs::remove_dir_all(&reg);
}

/// Issue 32, item 2, through the real binaries on two replicas sharing a registry, under load: a
/// canary's files are replaced after it was published by *valid* files (another threshold, the
/// same model.onnx and its checksum right), of the same size and with the old mtime put back.
/// The replica that had loaded it (the file's ctime moved) and a replica started after the
/// replacement (the manifest's checksum is not the one recorded when it was published) both
/// reject it alike: unloaded, counted, listed with the reason; its share goes to stable, so a
/// routing key gets the same version on both; `model status` says it fails and the commands
/// refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_whose_files_change_is_rejected_on_every_replica_alike() {
    let reg = fresh("immutable");
    place_version(&reg, 4, 4);
    place_version(&reg, 4, 5);
    write_state(&reg, r#"{"format": 1, "stable": 4, "generation": 1}"#);
    model_ok(&reg, &["canary", "5", "--fraction", "0.1"]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.join(MODEL).join("serving.json")).unwrap()).unwrap();
    assert!(state["published"]["5"].is_string(), "the canary's manifest checksum is recorded: {state}");
    let a = Server::start(&reg, &[]).await;
    wait_until("the canary on the first replica", Duration::from_secs(30), || canary_version(&a) == 5.0).await;
    let audio = clip();
    let load = Load::start(std::slice::from_ref(&a.grpc), &audio);

    // Replaced in place: one digit of the threshold, the same size, the old mtime back.
    let path = reg.join(MODEL).join("5").join("manifest.json");
    let before = std::fs::metadata(&path).unwrap();
    let text_before = std::fs::read_to_string(&path).unwrap();
    let changed = text_before.replacen("\"threshold\": 0.4", "\"threshold\": 0.9", 1);
    assert_ne!(changed, text_before);
    std::fs::write(&path, &changed).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(before.modified().unwrap()).unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!((after.len(), after.modified().unwrap()), (before.len(), before.modified().unwrap()));

    let reg_b = replica_link(&reg, "vericlip-lifecycle-immutable-b");
    let b = Server::start(&reg_b, &[]).await;
    let servers = [&a, &b];
    let failures =
        |s: &Server| s.metric(&format!("vericlip_model_load_failures_total{{model=\"{MODEL}\",version=\"5\"}}"));
    for s in servers {
        wait_until("v5 rejected", Duration::from_secs(30), || failures(s) == 1.0 && canary_version(s) == 0.0).await;
        assert_eq!(loaded(s), vec![4], "the changed version holds no session");
        let (status, _, body) = s.http("GET", "/v1/models", "application/json", b"");
        let body = String::from_utf8_lossy(&body);
        assert!(status == 200 && body.contains("rejected") && body.contains("published"), "{body}");
        let log = s.log_text();
        assert!(log.contains("model version rejected"), "{log}");
    }
    // The canary's keys fall back to stable on both replicas alike.
    let on_a = keyed_requests(&a.grpc, &audio, 300, 4).await;
    let on_b = keyed_requests(&b.grpc, &audio, 300, 4).await;
    assert_eq!(on_a, on_b, "a routing key gets the same version on every replica");
    assert!(on_a.iter().all(|(_, v)| *v == 4), "only stable answers: {on_a:?}");

    let status = model_ok(&reg, &["status"]);
    let line = status.lines().find(|l| l.trim_start().starts_with("5  canary")).unwrap_or_default();
    assert!(line.contains("FAILS") && line.contains("recorded when this version was published"), "{status}");
    let refused = model(&reg, &["promote", "5"]);
    assert!(
        !refused.status.success() && text(&refused).contains("recorded when this version was published"),
        "{}",
        text(&refused)
    );
    // The files put back as published: every replica takes the version again (its files
    // changed once more), and the canary serves on both.
    std::fs::write(&path, &text_before).unwrap();
    for s in servers {
        wait_until("v5 back as published", Duration::from_secs(30), || canary_version(s) == 5.0).await;
    }
    let (versions, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests while v5 changed: {failures:?}");
    assert!(!versions.is_empty());
    let _ = std::fs::remove_file(&reg_b);
    let _ = std::fs::remove_dir_all(&reg);
}

/// One phase of the measured run: `args` run under load on both replicas; the requests and
/// failures from the command's start until every replica reports the new generation (`model
/// status --wait`) and one second more, and how long that took.
async fn measured_phase(reg: &Path, servers: &[&Server], audio: &[f32], args: &[&str]) -> String {
    let urls: Vec<String> = servers.iter().map(|s| s.grpc.clone()).collect();
    let replicas = servers.iter().map(|s| s.http.clone()).collect::<Vec<_>>().join(",");
    let load = Load::start(&urls, audio);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    model_ok(reg, args);
    let command_s = started.elapsed().as_secs_f64();
    let rollout = model_ok(reg, &["status", "--wait", "30", "--replicas", &replicas]);
    let converged_s = started.elapsed().as_secs_f64();
    assert!(rollout.contains(" 2 of 2 ready replicas apply it"), "{rollout}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (versions, failures) = load.finish().await;
    let mut by_version = std::collections::BTreeMap::new();
    for v in &versions {
        *by_version.entry(*v).or_insert(0) += 1;
    }
    format!(
        "| `model {}` | {} | {} | {by_version:?} | {command_s:.2} s | {converged_s:.2} s | {} |",
        args.join(" "),
        versions.len() + failures.len(),
        failures.len(),
        rollout.lines().next().unwrap_or_default().trim(),
    )
}

/// The measured rollout run of docs/BENCHMARKS.md ("Rollout on two replicas"), not a check:
/// two replicas on one registry under continuous load; the share of 1,000 routing keys a 10 %
/// canary takes (the same on both replicas), then abort, canary again, promote and rollback,
/// each with the requests it overlapped, the failed ones, and the time until both replicas
/// report the new generation. Run it with `scripts/rollout-run.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check: scripts/rollout-run.sh runs it and prints the numbers"]
async fn measured_rollout_run() {
    let reg = fresh("measured");
    place_version(&reg, 4, 4);
    place_version(&reg, 4, 5);
    write_state(&reg, r#"{"format": 1, "stable": 4, "generation": 1}"#);
    let reg_b = replica_link(&reg, "vericlip-lifecycle-measured-b");
    let a = Server::start(&reg, &[]).await;
    let b = Server::start(&reg_b, &[]).await;
    let servers = [&a, &b];
    let audio = clip();
    let mut rows = vec![
        "| step | requests | failed | answered by version | command | every replica applies it | `model status --wait` |".to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    rows.push(measured_phase(&reg, &servers, &audio, &["canary", "5", "--fraction", "0.1"]).await);
    let keys = 1000;
    let on_a = keyed_requests(&a.grpc, &audio, keys, 8).await;
    let on_b = keyed_requests(&b.grpc, &audio, keys, 8).await;
    let same = on_a.iter().zip(&on_b).filter(|(x, y)| x == y).count();
    let canaried = on_a.iter().filter(|(_, v)| *v == 5).count();
    rows.push(measured_phase(&reg, &servers, &audio, &["abort"]).await);
    rows.push(measured_phase(&reg, &servers, &audio, &["canary", "5", "--fraction", "0.1"]).await);
    rows.push(measured_phase(&reg, &servers, &audio, &["promote", "5"]).await);
    rows.push(measured_phase(&reg, &servers, &audio, &["rollback"]).await);
    println!(
        "canary at fraction 0.1: {canaried} of {keys} routing keys on v5; {same} of {keys} keys got the same version on both replicas"
    );
    println!("{}", rows.join("\n"));
    let _ = std::fs::remove_file(&reg_b);
    let _ = std::fs::remove_dir_all(&reg);
}
