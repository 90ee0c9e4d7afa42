//! The web page in a real browser: tests/browser/test_page.py drives Debian's headless Chromium
//! (Playwright) against the real server on a registry holding both bundled versions, and a
//! second server with API keys. Needs the
//! venv with tests/browser/requirements.txt and the `chromium` package (scripts/setup.sh);
//! without them the test fails and says so (it never skips). Screenshots are kept in
//! `$CARGO_TARGET_TMPDIR/browser-artifacts`.

mod common;

use std::path::Path;

use common::{Server, copy_dir, repo, temp_registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_in_headless_chromium() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/setup.sh (it installs tests/browser/requirements.txt)",
        python.display()
    );
    let probe = std::process::Command::new(&python).args(["-c", "import playwright.sync_api"]).output().unwrap();
    assert!(
        probe.status.success(),
        "Playwright missing from the venv: .venv/bin/pip install -r tests/browser/requirements.txt\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let chromium = std::env::var("VERICLIP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).is_file(), "{chromium} missing: apt-get install -y chromium");

    // The bundled default (version 4) serves, as in scripts/demo.sh; version 1 stays selectable.
    let reg = temp_registry("browser");
    copy_dir(&repo().join("models/vericlip-lstm/4"), &reg.join("vericlip-lstm/4"));
    let server = Server::start(&reg, &[]).await;
    // A second server with API keys (v1 only), for the key field and the WebSocket's api_key.
    let keyed_reg = temp_registry("browser-keyed");
    let keys = keyed_reg.join("api-keys");
    std::fs::write(&keys, "browser-test-key-42\n").unwrap();
    let keyed = Server::start(&keyed_reg, &[("VERICLIP__AUTH__API_KEY_FILE", keys.to_str().unwrap())]).await;
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);

    let out = tokio::process::Command::new(&python)
        .arg(repo().join("tests/browser/test_page.py"))
        .arg("--base-url")
        .arg(format!("http://{}", server.http))
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--keyed-base-url")
        .arg(format!("http://{}", keyed.http))
        .arg("--api-key")
        .arg("browser-test-key-42")
        .arg("--chromium")
        .arg(&chromium)
        .args(["--serving-version", "4"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(
        out.status.success(),
        "browser tests failed (screenshots in {}):\n{text}\nserver log:\n{}\nkeyed server log:\n{}",
        artifacts.display(),
        server.log_text(),
        keyed.log_text()
    );
    assert!(text.contains("browser tests: all checks passed"), "{text}");
}
