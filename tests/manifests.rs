//! The shipped manifests apply where their headers (and docs/deploying.md's "Kubernetes versions")
//! say, as `kubectl apply` would against that version of the fake cluster; and the legacy
//! overlay for clusters before 1.29 really runs a herd there.

mod support;

use support::{FakeCluster, Kind, secs};

const NS: &str = "default";
const NEWEST: u32 = 33;

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
}

/// The minor version a manifest's header claims (`# Oldest Kubernetes: 1.NN`).
fn claimed(text: &str) -> u32 {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# Oldest Kubernetes: 1."))
        .expect("a header line '# Oldest Kubernetes: 1.NN'");
    line.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn every_shipped_manifest_applies_at_its_claimed_version_and_the_newest() {
    let mut files = vec!["cronjob.yaml".to_string(), "rbac.yaml".to_string()];
    for entry in std::fs::read_dir(format!("{}/k8s", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        // prometheus-rules.yaml is a PrometheusRule, which only a cluster with the Prometheus
        // Operator knows; .ci/run checks it with promtool.
        if name.ends_with(".yaml")
            && name != "kustomization.yaml"
            && name != "prometheus-rules.yaml"
        {
            files.push(format!("k8s/{name}"));
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let text = read(&file);
        for minor in [claimed(&text), NEWEST] {
            let cluster = FakeCluster::builder().version(minor).start();
            if let Err(e) = cluster.kubectl_apply(&file, &text) {
                panic!(
                    "{file} claims 1.{} but 1.{minor} refuses it: {e}",
                    claimed(&text)
                );
            }
        }
    }
}

/// `kubectl kustomize k8s-legacy/`: live when kubectl is on PATH (as in CI), which must agree
/// with the recorded copy the rest of the tests use.
fn legacy_overlay() -> String {
    let recorded = read("tests/fixtures/kubectl/k8s-legacy.yaml");
    let live = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(format!("{}/k8s-legacy", env!("CARGO_MANIFEST_DIR")))
        .output();
    if let Ok(out) = live
        && out.status.success()
    {
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            recorded,
            "k8s-legacy/ renders differently: refresh tests/fixtures/kubectl/k8s-legacy.yaml"
        );
    }
    recorded
}

#[test]
fn the_legacy_overlay_applies_at_1_21_where_cronjob_yaml_is_refused() {
    let legacy = legacy_overlay();
    let old = FakeCluster::builder().version(21).start();
    assert!(
        old.kubectl_apply("cronjob.yaml", &read("cronjob.yaml"))
            .is_err()
    );
    let applied = old
        .kubectl_apply("k8s-legacy", &legacy)
        .expect("1.21 takes it");
    let kinds: Vec<&str> = applied.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(kinds.contains(&"CronJob"), "{kinds:?}");
    assert_eq!(
        old.objects(Kind::CronJob, NS).len(),
        2,
        "both CronJobs stored"
    );
    let new = FakeCluster::builder().version(NEWEST).start();
    new.kubectl_apply("k8s-legacy", &legacy)
        .expect("and the newest takes it too");
}

#[test]
fn at_1_21_a_retried_parent_repeats_its_outcome_instead_of_running_the_herd_again() {
    let cluster = FakeCluster::builder().version(21).start();
    cluster
        .kubectl_apply("k8s-legacy", &legacy_overlay())
        .unwrap();
    let out = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "legacy-1")
        .env("JOBHERD_PARAMS", r#"[{},{"FAKE_EXIT":"1"}]"#)
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .timeout(secs(120))
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    // No podFailurePolicy: the Job ran its parent backoffLimit + 1 = 3 times...
    let attempts = out.stdout.matches("following pod legacy-1-").count();
    assert_eq!(attempts, 3, "the parent was retried: {out}");
    assert!(
        out.stdout
            .contains("this parent Job already ran to its end"),
        "the retry repeated the outcome: {out}"
    );
    // ...and the herd ran once.
    let creates = cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300)
        .filter(|r| r.user.starts_with("system:serviceaccount:"))
        .count();
    assert_eq!(creates, 2, "{out}");
}
