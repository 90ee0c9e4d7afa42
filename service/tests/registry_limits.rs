//! A registry is untrusted input to every replica that scans it: a published version whose
//! manifest asks for absurd sizes must be refused (named limit, listed as rejected with its
//! reason, counted once, never retried in a loop), while the good versions serve and a valid
//! version published later still loads. Through the real binary.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, copy_dir, repo, temp_registry};
use serde_json::Value;
use vericlip_server::api;

/// Copies bundled version 1 to `<reg>/vericlip-lstm/<version>` with `edit` applied to its
/// manifest (the model file, hence the checksum, stays valid). Written in a dot-folder and
/// renamed, as a publisher does.
fn publish_copy(reg: &Path, version: u64, edit: impl FnOnce(&mut Value)) {
    let model_dir = reg.join("vericlip-lstm");
    let staging = model_dir.join(format!(".staging-test-{version}"));
    copy_dir(&repo().join("models/vericlip-lstm/1"), &staging);
    let path = staging.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["version"] = version.into();
    edit(&mut m);
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::rename(&staging, model_dir.join(version.to_string())).unwrap();
}

/// A manifest whose segment is `samples` long, with the input shape that matches it.
fn absurd_segment(samples: u64) -> impl FnOnce(&mut Value) {
    move |m: &mut Value| {
        let hop = m["feature_spec"]["hop_length"].as_u64().unwrap();
        m["feature_spec"]["segment_samples"] = samples.into();
        m["input"]["shape"][1] = (1 + samples / hop).into();
    }
}

async fn list(server: &Server) -> api::ListModelsResponse {
    server.client().await.list_models(api::ListModelsRequest::default()).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_manifests_are_rejected_with_the_limit_and_the_rest_serves() {
    let reg = temp_registry("registry-limits");
    publish_copy(&reg, 2, absurd_segment(1_000_000_000_000));
    publish_copy(&reg, 3, absurd_segment(u64::MAX));
    let server = Server::start(&reg, &[]).await;

    // The good version serves; both bad ones are listed as rejected with the limit named.
    let listed = list(&server).await;
    let serving: Vec<_> = listed.models.iter().map(|m| (m.version, m.serving)).collect();
    assert_eq!(serving, vec![(1, true)], "{listed:?}");
    let rejected: Vec<_> = listed.rejected.iter().map(|r| (r.name.as_str(), r.version)).collect();
    assert_eq!(rejected, vec![("vericlip-lstm", 2), ("vericlip-lstm", 3)], "{listed:?}");
    for r in &listed.rejected {
        assert!(r.reason.contains("segment_samples") && r.reason.contains("MAX_SEGMENT_SAMPLES"), "{r:?}");
        // Relative to the registry: no server paths in the API.
        assert!(!r.reason.contains(reg.to_str().unwrap()), "{r:?}");
    }
    let (status, _, body) = server.http("GET", "/v1/models", "text/plain", b"");
    assert_eq!(status, 200);
    let json: Value = serde_json::from_slice(&body).unwrap();
    let versions: Vec<u64> =
        json["rejected"].as_array().unwrap().iter().map(|r| r["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![2, 3], "{json}");
    assert!(json["rejected"][0]["reason"].as_str().unwrap().contains("MAX_SEGMENT_SAMPLES"), "{json}");

    // Counted once per version, from 0, and not retried while the files stay as they are: many
    // polls (0.5 s) later the count is still 1 and the log has said so once.
    assert_eq!(server.metric("vericlip_model_load_failures_total{model=\"vericlip-lstm\",version=\"1\"}"), 0.0);
    assert!(server.metrics().contains("vericlip_model_load_failures_total{model=\"vericlip-lstm\",version=\"1\"} 0"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for v in [2, 3] {
        let series = format!("vericlip_model_load_failures_total{{model=\"vericlip-lstm\",version=\"{v}\"}}");
        assert_eq!(server.metric(&series), 1.0, "{}", server.metrics());
    }
    let log = server.log_text();
    assert_eq!(log.matches("model version rejected").count(), 2, "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // A valid version published afterwards loads and serves: the watcher is alive.
    publish_copy(&reg, 4, |_| {});
    let started = Instant::now();
    loop {
        let l = list(&server).await;
        if l.models.iter().any(|m| m.version == 4 && m.serving) {
            assert_eq!(l.rejected.len(), 2, "{l:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "version 4 never served: {l:?}\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_of_only_absurd_versions_starts_and_stays_unready_without_crashing() {
    // A restart over a registry that holds nothing but a bad version: the process stays up,
    // reports not ready, and serves as soon as a good version appears.
    let reg = std::env::temp_dir().join(format!("vericlip-registry-only-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reg);
    std::fs::create_dir_all(reg.join("vericlip-lstm")).unwrap();
    publish_copy(&reg, 1, absurd_segment(u64::MAX));
    let mut server = Server::spawn(&reg, &[]);
    let started = Instant::now();
    while server.metric("vericlip_model_load_failures_total{model=\"vericlip-lstm\",version=\"1\"}") < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.child.try_wait().unwrap().is_none(), "server exited: {}", server.log_text());
    let (status, _, _) = server.http("GET", "/readyz", "text/plain", b"");
    assert_eq!(status, 503);
    publish_copy(&reg, 2, |_| {});
    server.wait_ready().await;
    assert_eq!(server.terminate().code(), Some(0));
    let _ = std::fs::remove_dir_all(&reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_40_mb_manifest_does_not_break_list_models_or_the_cli() {
    let reg = temp_registry("registry-big-manifest");
    // 40 MB of free-form `model` notes: the manifest is valid, under MAX_MANIFEST_BYTES.
    publish_copy(&reg, 2, |m| m["model"] = serde_json::json!({ "notes": "x".repeat(40 << 20) }));
    let server = Server::start(&reg, &[]).await;
    // A client with gRPC's default limits (4 MiB receive).
    let mut c = api::vericlip_client::VericlipClient::new(server.channel().await);
    let listed = c.list_models(api::ListModelsRequest::default()).await.unwrap().into_inner();
    let versions: Vec<_> = listed.models.iter().map(|m| (m.version, m.serving, m.manifest_json.len())).collect();
    assert_eq!(versions, vec![(1, false, 0), (2, true, 0)], "no manifests unless asked for");
    assert!(listed.models[1].manifest_bytes > 40 << 20, "{}", listed.models[1].manifest_bytes);
    assert!(listed.rejected.is_empty());
    // Asked for: the small one comes, the big one is left out and counted.
    let asked = c.list_models(api::ListModelsRequest { include_manifest: true }).await.unwrap().into_inner();
    assert!(asked.models[0].manifest_json.contains("\"feature_spec\""));
    assert_eq!((asked.models[1].manifest_json.len(), asked.manifests_omitted), (0, 1));
    // GetModel answers within the limit too.
    let got = c.get_model(api::GetModelRequest { name: "vericlip-lstm".into(), version: 2 }).await.unwrap();
    assert_eq!(got.into_inner().manifest_json, "");
    let small = c.get_model(api::GetModelRequest { name: "vericlip-lstm".into(), version: 1 }).await.unwrap();
    assert!(small.into_inner().manifest_json.contains("\"sha256\""));
    // HTTP and the CLI.
    let (status, _, body) = server.http("GET", "/v1/models", "text/plain", b"");
    assert_eq!(status, 200);
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let out =
        std::process::Command::new(common::cli_binary()).args(["--addr", &server.grpc, "models"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("vericlip-lstm")).count(), 2, "{stdout}");
    let _ = std::fs::remove_dir_all(&reg);
}
