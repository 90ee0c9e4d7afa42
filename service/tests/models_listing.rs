//! The rollout as the API shows it (issue 32 item 3, issue 34 item 4): two `vericlip-server`
//! replicas on one registry, a canary set by the real `vericlip-train model canary N --fraction
//! F`, and the same listing on every surface: gRPC `ListModels` (the canary version, its
//! fraction, stable's share), HTTP `GET /v1/models` (the proto's JSON mapping of
//! `ListModelsResponse`, field for field) and the `vericlip models` CLI.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fixture::{MODEL, fresh, place_version, repo, text};
use common::{Server, replica_link};
use vericlip_server::api;

fn trainer() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_vericlip-server")).with_file_name("vericlip-train");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build --workspace --bins`; `cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

/// The proto's `ModelInfo` fields, by their names in the .proto: what each model object of
/// `GET /v1/models` holds, no more and no less.
const MODEL_INFO_FIELDS: [&str; 17] = [
    "name",
    "version",
    "serving",
    "created_at",
    "sha256",
    "threshold",
    "execution_provider",
    "sample_rate",
    "segment_seconds",
    "frames",
    "features",
    "test_metrics",
    "manifest_json",
    "manifest_bytes",
    "validation_metrics",
    "canary",
    "traffic_fraction",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_and_its_fraction_show_in_grpc_http_and_the_cli_of_every_replica() {
    let reg = fresh("listing");
    place_version(&reg, 4, 4);
    std::fs::copy(repo().join(format!("models/{MODEL}/serving.json")), reg.join(MODEL).join("serving.json")).unwrap();
    place_version(&reg, 4, 5);
    // The second replica reaches the same folder through a link (its own log file).
    let reg_b = replica_link(&reg, "vericlip-listing-b");
    let a = Server::start(&reg, &[]).await;
    let b = Server::start(&reg_b, &[]).await;

    let out = std::process::Command::new(trainer())
        .args(["model", "canary", "5", "--fraction", "0.25", "--registry"])
        .arg(&reg)
        .args(["--name", MODEL])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "model canary: {}", text(&out));

    for server in [&a, &b] {
        let mut c = server.client().await;
        let started = Instant::now();
        let listed = loop {
            let l = c.list_models(api::ListModelsRequest::default()).await.unwrap().into_inner();
            if l.models.iter().any(|m| m.canary) {
                break l;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no replica shows the canary: {l:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // gRPC: stable 4 answers 75 %, canary 5 answers 25 %.
        let role: Vec<(u64, bool, bool, f64)> =
            listed.models.iter().map(|m| (m.version, m.serving, m.canary, m.traffic_fraction)).collect();
        assert_eq!(role, vec![(4, true, false, 0.75), (5, false, true, 0.25)], "{listed:?}");

        // HTTP: the same listing, field for field, under the proto's field names.
        let (status, head, body) = server.http("GET", "/v1/models", "text/plain", b"");
        assert_eq!(status, 200, "{head}");
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["manifests_omitted", "models", "rejected"], "{j}");
        let models = j["models"].as_array().unwrap();
        assert_eq!(models.len(), listed.models.len());
        for (http, grpc) in models.iter().zip(&listed.models) {
            let mut fields: Vec<&str> = http.as_object().unwrap().keys().map(String::as_str).collect();
            let mut want = MODEL_INFO_FIELDS.to_vec();
            fields.sort_unstable();
            want.sort_unstable();
            assert_eq!(fields, want, "{http}");
            assert_eq!(http["version"], grpc.version);
            assert_eq!(http["serving"], grpc.serving);
            assert_eq!(http["canary"], grpc.canary);
            assert_eq!(http["traffic_fraction"], grpc.traffic_fraction);
            assert_eq!(http["sha256"], grpc.sha256.as_str());
            assert_eq!(http["threshold"], grpc.threshold);
            assert_eq!(http["test_metrics"]["eer"], grpc.test_metrics["eer"]);
            assert_eq!(http["manifest_bytes"], grpc.manifest_bytes);
        }

        // The CLI: the canary and its share beside stable's.
        let out = std::process::Command::new(common::cli_binary())
            .args(["--addr", &server.grpc, "models"])
            .env_remove("VERICLIP_API_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let row = |v: &str| {
            stdout
                .lines()
                .find(|l| l.split_whitespace().take(2).eq([MODEL, v]))
                .unwrap_or_else(|| panic!("no row for v{v}: {stdout}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert!(stdout.lines().next().unwrap_or_default().contains("traffic"), "{stdout}");
        assert_eq!(row("4")[2..4], ["yes", "0.75"], "{stdout}");
        assert_eq!(row("5")[2..4], ["canary", "0.25"], "{stdout}");
    }
}
