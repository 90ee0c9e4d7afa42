//! The Kubernetes pod contract without a cluster: tests/k8s/pod_contract.py renders each overlay
//! (k8s/overlays/cpu and gpu) and runs this crate's real `vericlip-server` the way the kubelet
//! would run the server pod: the image's ENTRYPOINT/CMD with the container's args, its env and
//! ConfigMap, the seeding init container first, a read-only registry, the probes with their
//! timeouts, then preStop + SIGTERM. The rendered config must bind grpc, http and admin on the
//! containerPorts of those names; the probes (all on the admin port, plain HTTP) and the
//! ServiceMonitor's /metrics scrape go through the admin listener of the real binary, which
//! must serve no API. Needs the tools venv that `scripts/setup.sh` creates
//! (.vendor/k8s-venv: kubectl for kustomize); without it the test fails and says so (it never
//! skips).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn overlays_run_as_pods_probes_pass_and_termination_is_clean() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let python = repo.join(".vendor/k8s-venv/bin/python");
    assert!(python.is_file(), "{} missing: run scripts/setup.sh (or scripts/setup.sh k8s)", python.display());
    let out = Command::new(&python)
        .arg(repo.join("tests/k8s/pod_contract.py"))
        .arg("--server")
        .arg(env!("CARGO_BIN_EXE_vericlip-server"))
        .current_dir(&repo)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "pod contract failed:\n{text}");
    assert!(text.contains("pod contract: all checks passed"), "{text}");
}
