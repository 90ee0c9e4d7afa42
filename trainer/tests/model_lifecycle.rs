//! `vericlip-train model status|canary|promote|rollback|retire` through the binary: the serving
//! state it writes, the transitions it refuses (with the reason, changing nothing), concurrent
//! writers, and the Kubernetes Job (from the trainer CronJob's template) that
//! docs/OPERATIONS.md "Rolling out a model" runs the commands with.

use std::path::Path;
use std::process::{Command, Output};

use vericlip_core::registry::serving;

#[path = "../../core/tests/fixtures/registry_versions.rs"]
mod fixture;
use fixture::{MODEL, corrupt, fresh, repo, text};

fn place_version(reg: &Path, to: u64) {
    fixture::place_version(reg, 4, to);
}

fn model(reg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .arg("model")
        .args(args)
        .arg("--registry")
        .arg(reg)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn ok(reg: &Path, args: &[&str]) -> String {
    let out = model(reg, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Refused, naming `why`, and serving.json unchanged.
fn refused(reg: &Path, args: &[&str], why: &str) {
    let before = std::fs::read(reg.join(MODEL).join(serving::SERVING_FILE)).ok();
    let out = model(reg, args);
    assert!(
        !out.status.success() && text(&out).contains(why),
        "{args:?} should be refused with {why:?}: {}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(reg.join(MODEL).join(serving::SERVING_FILE)).ok(),
        before,
        "{args:?} changed serving.json"
    );
}

fn state(reg: &Path) -> serving::ServingState {
    serving::read(&reg.join(MODEL)).unwrap().expect("serving.json")
}

#[test]
fn commands_walk_the_lifecycle_and_refuse_bad_transitions() {
    let reg = fresh("walk");
    place_version(&reg, 4);
    place_version(&reg, 5);
    // Without serving.json the highest valid version serves; status says so and writes nothing.
    let status = ok(&reg, &["status"]);
    assert!(status.contains("no serving.json") && status.contains("5  stable"), "{status}");
    refused(&reg, &["rollback"], "no earlier stable version");
    assert!(!reg.join(MODEL).join(serving::SERVING_FILE).exists());

    // The first write creates the state with what serves now (5) as stable.
    let out = ok(&reg, &["canary", "4", "--fraction", "0.25"]);
    assert!(out.contains("stable 5, canary 4 at 25.0 %") && out.contains("generation 1"), "{out}");
    let s = state(&reg);
    assert_eq!((s.stable, s.canary.map(|c| (c.version, c.fraction)), s.generation), (5, Some((4, 0.25)), 1));

    ok(&reg, &["promote", "4"]);
    let s = state(&reg);
    assert_eq!((s.stable, s.canary, s.history.clone(), s.generation), (4, None, vec![5], 2));
    let log = text(&model(&reg, &["rollback"]));
    assert!(log.contains("serving state changed") && log.contains("generation=3"), "{log}");
    assert_eq!(state(&reg).stable, 5);

    // Refusals: each names what is wrong and leaves serving.json as it was.
    refused(&reg, &["promote", "9"], "has no published version 9");
    refused(&reg, &["canary", "5"], "already the stable version");
    refused(&reg, &["canary", "4", "--fraction", "1.5"], "outside (0, 1)");
    refused(&reg, &["retire", "5"], "is the stable version");
    place_version(&reg, 6);
    corrupt(&reg, 6);
    refused(&reg, &["promote", "6"], "version 6 fails the load check");
    refused(&reg, &["canary", "6"], "does not match the manifest");

    let out = ok(&reg, &["retire", "4"]);
    assert!(out.contains("retired 4"), "{out}");
    refused(&reg, &["promote", "4"], "version 4 is retired");
    refused(&reg, &["canary", "4"], "version 4 is retired");

    // status: the state and every version's role and check, also as JSON.
    let status = ok(&reg, &["status"]);
    assert!(status.contains("stable 5") && status.contains("generation 4"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&ok(&reg, &["status", "--json"])).unwrap();
    let roles: Vec<(u64, String, bool)> = json["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["role"].as_str().unwrap().to_string(), v["problem"].is_null()))
        .collect();
    assert_eq!(
        roles,
        vec![(6, "candidate".into(), false), (5, "stable".into(), true), (4, "retired".into(), true)],
        "{json}"
    );
    assert_eq!(json["state"]["retired"], serde_json::json!([4]));
    let _ = std::fs::remove_dir_all(&reg);
}

#[test]
fn concurrent_commands_never_lose_an_update() {
    let reg = fresh("race");
    for v in 4..=5 {
        place_version(&reg, v);
    }
    let fractions = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"];
    let children: Vec<_> = fractions
        .iter()
        .map(|f| {
            Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
                .args(["model", "canary", "4", "--fraction", f, "--registry"])
                .arg(&reg)
                .output()
        })
        .collect();
    for c in children {
        let out = c.unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let s = state(&reg);
    assert_eq!(s.generation, fractions.len() as u64, "every write was serialized: {s:?}");
    assert_eq!((s.stable, s.canary.map(|c| c.version)), (5, Some(4)));
    let leftovers: Vec<_> = std::fs::read_dir(reg.join(MODEL))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&reg);
}

/// The cpu overlay rendered by the pinned kubectl, as JSON objects.
fn rendered_overlay() -> Vec<serde_json::Value> {
    let kubectl = repo().join(".vendor/k8s-venv/bin/kubectl");
    let python = repo().join(".vendor/k8s-venv/bin/python");
    assert!(kubectl.is_file() && python.is_file(), "{} missing: run scripts/setup.sh k8s", kubectl.display());
    let out = Command::new(&kubectl).arg("kustomize").arg(repo().join("k8s/overlays/cpu")).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize: {}", text(&out));
    let mut py = Command::new(&python)
        .args(["-c", "import sys, json, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut py.stdin.take().unwrap(), &out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).unwrap()
}

#[test]
fn the_documented_kubernetes_job_runs_the_commands_on_the_registry() {
    let objs = rendered_overlay();
    let find = |kind: &str, name: &str| {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} is not in the rendered cpu overlay"))
            .clone()
    };
    let cron = find("CronJob", "vericlip-train");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["vericlip-train"]));
    let claim_of = |spec: &serde_json::Value, volume: &str| {
        spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == volume).unwrap()["persistentVolumeClaim"]
            ["claimName"]
            .clone()
    };
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/models").unwrap();
    assert_ne!(mount["readOnly"], true, "the Job must write serving.json");
    // The very registry the servers read (read-only there: why the commands run as a Job).
    let deployment = find("Deployment", "vericlip-server");
    let server_pod = &deployment["spec"]["template"]["spec"];
    let server = server_pod["containers"].as_array().unwrap().iter().find(|c| c["name"] == "server").unwrap();
    let server_mount =
        server["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/models").unwrap().clone();
    assert_eq!(server_mount["readOnly"], true);
    let server_claim = claim_of(server_pod, server_mount["name"].as_str().unwrap());
    assert_eq!(claim_of(pod, mount["name"].as_str().unwrap()), server_claim);
}

#[test]
fn the_registry_is_required_never_a_relative_default() {
    let cwd = fresh("no-default");
    let out = Command::new(env!("CARGO_BIN_EXE_vericlip-train"))
        .args(["model", "canary", "4"])
        .current_dir(&cwd)
        .env_remove("VERICLIP_REGISTRY")
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("--registry DIR (or VERICLIP_REGISTRY) is required"),
        "{}",
        text(&out)
    );
    assert!(!cwd.join("models").exists(), "wrote a registry of its own in the working folder");
    let _ = std::fs::remove_dir_all(&cwd);
}

/// The `vericlip_model` function of docs/OPERATIONS.md "Rolling out a model" and every
/// `vericlip_model ...` command of its steps, in order, run verbatim by bash with a stand-in
/// kubectl (tests/k8s/fake-kubectl.sh: it builds the Job from the rendered cpu overlay's
/// CronJob, refuses a Job that mounts any claim but the registry, and runs the Job's command line
/// with the real vericlip-train on a registry folder standing in for the volume); each prints
/// what the page says it prints.
#[test]
fn the_documented_job_commands_run_verbatim() {
    let docs = std::fs::read_to_string(repo().join("docs/OPERATIONS.md")).unwrap();
    let start = docs.find("## Rolling out a model\n").expect("the section");
    let section = &docs[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let function_at = section.find("vericlip_model() {").expect("the vericlip_model function");
    let function_end = function_at + section[function_at..].find("```").expect("its code block ends");
    let function = &section[function_at..function_end];
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    // (command, what it prints) in the page's order.
    let mut steps: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = &section[function_end + 3..];
    while let Some(at) = rest.find("`vericlip_model ") {
        let after = &rest[at + 1..];
        let end = after.find('`').expect("a closed code span");
        let command = squash(&after[..end]);
        rest = &after[end + 1..];
        let prints = rest.strip_prefix(" prints `").map(|p| {
            let end = p.find('`').expect("a closed code span");
            let printed = squash(&p[..end]);
            rest = &p[end + 1..];
            printed
        });
        steps.push((command, prints));
    }
    let commands: Vec<&str> = steps.iter().map(|(c, _)| c.as_str()).collect();
    for want in ["status", "canary 6", "abort", "promote 6", "rollback", "retire 6"] {
        assert!(
            commands.iter().any(|c| c.starts_with(&format!("vericlip_model {want}"))),
            "the walk-through lost `vericlip_model {want}`: {commands:?}"
        );
    }

    // The registry of step 1: stable 5 (4 before it), candidate 6, generation 7.
    let reg = fresh("doc-job");
    for v in 4..=6 {
        place_version(&reg, v);
    }
    let mut start_state = serving::ServingState::new(5);
    start_state.history = vec![4];
    start_state.generation = 7;
    serving::write(&reg.join(MODEL), &start_state).unwrap();
    // The stand-in kubectl, first on PATH; jq is the system's.
    let tmp = reg.with_extension("kubectl");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("bin")).unwrap();
    std::os::unix::fs::symlink(repo().join("tests/k8s/fake-kubectl.sh"), tmp.join("bin/kubectl")).unwrap();
    let objs = rendered_overlay();
    let cron = objs.iter().find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "vericlip-train").unwrap();
    std::fs::write(tmp.join("cronjob.json"), serde_json::to_vec(cron).unwrap()).unwrap();
    let path = format!("{}:{}", tmp.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    for (command, prints) in &steps {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("{function}\n{command}"))
            .env("PATH", &path)
            .env("FAKE_KUBECTL_STATE", tmp.join("state"))
            .env("FAKE_KUBECTL_CRONJOB", tmp.join("cronjob.json"))
            .env("FAKE_KUBECTL_TRAIN", env!("CARGO_BIN_EXE_vericlip-train"))
            .env("FAKE_KUBECTL_REGISTRY", &reg)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "`{command}` (docs/OPERATIONS.md) failed: {}", text(&out));
        if let Some(want) = prints {
            let got = squash(&String::from_utf8_lossy(&out.stdout));
            assert!(got.contains(want.as_str()), "`{command}` prints {got:?}, the page says {want:?}");
        }
    }
    let s = state(&reg);
    assert_eq!((s.stable, s.canary, s.is_retired(6)), (5, None, true), "{s:?}");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&reg);
}
