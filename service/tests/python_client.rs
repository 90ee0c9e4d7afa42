//! Cross-language: the Python client package (clients/python: generated stubs and the
//! `vericlip_client` helpers; the script imports the tree's copy when none is installed) with
//! grpcio against the real server. Needs the venv that scripts/setup.sh creates; without it the
//! test fails and says so (it never skips). tests/api/run.sh runs the same script with the
//! package pip-installed.

mod common;

use common::{Server, repo, samples, temp_registry};
use vericlip_server::api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_classifies_and_sees_health_and_reflection() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/setup.sh (it installs tests/clients/python/requirements.txt)",
        python.display()
    );
    let reg = temp_registry("python");
    let server = Server::start(&reg, &[]).await;
    // Expected scores from the Rust client, for the Python client to match.
    let mut c = server.client().await;
    let mut expect = serde_json::Map::new();
    for p in samples() {
        let audio = Some(api::classify_request::Audio::Encoded(std::fs::read(&p).unwrap()));
        let r = c.classify(api::ClassifyRequest { audio, ..Default::default() }).await.unwrap().into_inner();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        expect.insert(name, serde_json::json!(r.fake_score));
    }
    let expect_file = reg.join("expect.json");
    std::fs::write(&expect_file, serde_json::to_vec(&expect).unwrap()).unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(repo().join("tests/clients/python/test_client.py"))
        .arg("--addr")
        .arg(server.grpc.trim_start_matches("http://"))
        .arg("--samples")
        .arg(repo().join("models/samples"))
        .arg("--expect")
        .arg(&expect_file)
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python client failed:\n{text}");
    assert!(text.contains("python client: all checks passed"), "{text}");
}
