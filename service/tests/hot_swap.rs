//! Hot swap under load: while clients classify continuously, a new version is published (served
//! from then on), then a corrupt and an unloadable version (rejected, counted, never served);
//! removing the new version rolls back. No request fails at any point.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, samples, temp_registry};
use vericlip_core::registry::{load_version, publish};
use vericlip_server::api;

/// Writes a version folder the way a careless operator might, but atomically (staging + rename).
fn place_version(reg: &std::path::Path, version: u64, manifest_sha: &str, model: &[u8]) {
    let v1 = load_version(&reg.join("vericlip-lstm/1")).unwrap();
    let mut manifest = v1.manifest;
    manifest.version = version;
    manifest.sha256 = manifest_sha.to_string();
    let staging = reg.join(format!("vericlip-lstm/.staging-test-{version}"));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    std::fs::write(staging.join("model.onnx"), model).unwrap();
    std::fs::rename(&staging, reg.join(format!("vericlip-lstm/{version}"))).unwrap();
}

async fn wait_for_version(
    c: &mut api::vericlip_client::VericlipClient<tonic::transport::Channel>,
    clip: &[u8],
    want: u64,
) {
    let started = Instant::now();
    loop {
        let r = c
            .classify(api::ClassifyRequest {
                audio: Some(api::classify_request::Audio::Encoded(clip.to_vec())),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if r.model_version == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never switched to version {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_swap_under_load_without_a_failed_request() {
    let reg = temp_registry("hot-swap");
    let server = Server::start(&reg, &[]).await;
    let clips: Arc<Vec<Vec<u8>>> = Arc::new(samples().iter().map(|p| std::fs::read(p).unwrap()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (mut c, clips, stop) = (server.client().await, Arc::clone(&clips), Arc::clone(&stop));
        load.push(tokio::spawn(async move {
            let (mut versions, mut failures, mut i) = (Vec::new(), Vec::new(), worker);
            while !stop.load(Ordering::Relaxed) {
                let audio = Some(api::classify_request::Audio::Encoded(clips[i % clips.len()].clone()));
                i += 1;
                match c.classify(api::ClassifyRequest { audio, ..Default::default() }).await {
                    Ok(r) => versions.push(r.into_inner().model_version),
                    Err(e) => failures.push(format!("{e:?}")),
                }
            }
            (versions, failures)
        }));
    }
    let mut probe = server.client().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Version 2: published by the trainer's own atomic publish.
    let v1 = load_version(&reg.join("vericlip-lstm/1")).unwrap();
    let published = publish(&reg, v1.manifest.clone(), &v1.model_onnx, &[]).unwrap();
    assert_eq!(published.version, 2);
    wait_for_version(&mut probe, &clips[0], 2).await;

    // Version 3: model.onnx does not match the manifest's checksum. Version 4: checksum right,
    // but the bytes are not an ONNX model.
    let mut corrupt = v1.model_onnx.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    place_version(&reg, 3, &v1.manifest.sha256, &corrupt);
    let garbage = b"this is not an onnx model".to_vec();
    place_version(&reg, 4, &vericlip_core::registry::sha256_hex(&garbage), &garbage);
    let started = Instant::now();
    let failures = |v: u64| {
        server.metric(&format!("vericlip_model_load_failures_total{{model=\"vericlip-lstm\",version=\"{v}\"}}"))
    };
    while failures(3) + failures(4) < 2.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "corrupt versions never rejected:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the watcher a few more scans: the rejected versions are not retried while unchanged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!((failures(1), failures(2), failures(3), failures(4)), (0.0, 0.0, 1.0, 1.0));
    assert_eq!(server.metric("vericlip_model_serving_version{model=\"vericlip-lstm\"}"), 2.0);
    let response = probe.list_models(api::ListModelsRequest::default()).await.unwrap().into_inner();
    let listed: Vec<(u64, bool)> = response.models.iter().map(|m| (m.version, m.serving)).collect();
    assert_eq!(listed, vec![(1, false), (2, true)]);
    // Both are listed as rejected, with their reasons.
    let rejected: Vec<(u64, bool)> =
        response.rejected.iter().map(|r| (r.version, r.reason.contains("does not match"))).collect();
    assert_eq!(rejected, vec![(3, true), (4, false)], "{:?}", response.rejected);
    let log = server.log_text();
    assert!(log.contains("does not match the manifest") && log.contains("model version rejected"), "{log}");

    // Removing version 2 retires it: back to version 1 (the rollback path).
    std::fs::remove_dir_all(reg.join("vericlip-lstm/2")).unwrap();
    wait_for_version(&mut probe, &clips[0], 1).await;

    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in load {
        let (versions, failures) = t.await.unwrap();
        assert!(failures.is_empty(), "failed requests during hot swap: {failures:?}");
        all.extend(versions);
    }
    assert!(all.len() > 20, "too little load: {} requests", all.len());
    assert!(all.contains(&1) && all.contains(&2));
    assert!(!all.contains(&3) && !all.contains(&4));
    assert!(server.metric("vericlip_model_swaps_total{model=\"vericlip-lstm\"}") >= 3.0);
}
