//! The child Job is what `kubectl create job` builds: compared with kubectl's own output
//! (live when `kubectl` is on PATH, as in CI, else the recorded copy in tests/fixtures/kubectl).

mod support;

use serde_json::Value;
use support::FakeCluster;

const COMMAND: [&str; 4] = ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"];

fn kubectl_job() -> Value {
    let live = std::process::Command::new("kubectl")
        .args([
            "create",
            "job",
            "pi-0",
            "--image=perl:5.40",
            "--dry-run=client",
            "-o",
            "json",
            "--",
        ])
        .args(COMMAND)
        .output();
    let text = match live {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kubectl/create-job-pi-0.json"
        ))
        .unwrap(),
    };
    serde_json::from_str(&text).unwrap()
}

/// Drops what is empty or null, as the API server treats absent and empty alike.
fn normalize(v: &mut Value) {
    if let Value::Object(map) = v {
        map.values_mut().for_each(normalize);
        map.retain(|_, v| match v {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            _ => true,
        });
    } else if let Value::Array(items) = v {
        items.iter_mut().for_each(normalize);
    }
}

#[test]
fn child_job_is_what_kubectl_create_job_builds() {
    let out = FakeCluster::start()
        .jobherd()
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_NAME_PREFIX", "pi")
        .env("JOBHERD_IMAGE", "perl:5.40")
        .env("JOBHERD_COMMAND", serde_json::to_string(&COMMAND).unwrap())
        // kubectl create job uses Never; jobherd's default is OnFailure, as `kubectl run`.
        .env("JOBHERD_RESTART_POLICY", "Never")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut ours = list["items"][0].clone();

    // What jobherd adds on purpose (SPEC §3): its labels, and the default backoffLimit spelled out.
    for pointer in ["/metadata", "/spec/template/metadata"] {
        let meta = ours.pointer_mut(pointer).unwrap().as_object_mut().unwrap();
        let labels = meta.remove("labels").unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "jobherd");
    }
    assert_eq!(
        ours["spec"].as_object_mut().unwrap().remove("backoffLimit"),
        Some(6.into())
    );

    let mut theirs = kubectl_job();
    normalize(&mut ours);
    normalize(&mut theirs);
    assert_eq!(ours, theirs);
}

/// `kubectl create job build-42 --from=cronjob/jobherd-pi --dry-run=client -o json`, asked of
/// the fake cluster holding the shipped CronJob (live when `kubectl` is on PATH, else the
/// recorded copy).
fn kubectl_job_from_cronjob(cluster: &FakeCluster) -> Value {
    let live = std::process::Command::new("kubectl")
        .args(["create", "job", "build-42", "--from=cronjob/jobherd-pi"])
        .args(["--dry-run=client", "-o", "json", "--kubeconfig"])
        .arg(cluster.kubeconfig_path())
        .output();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/kubectl/create-job-from-cronjob.json"
    );
    let text = match live {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8(out.stdout).unwrap();
            if std::env::var_os("RECORD_KUBECTL_FIXTURES").is_some() {
                std::fs::write(fixture, &text).unwrap();
            }
            text
        }
        _ => std::fs::read_to_string(fixture).unwrap(),
    };
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_triggered_job_is_what_kubectl_create_job_from_cronjob_builds() {
    let cluster = FakeCluster::start();
    let cronjob =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/cronjob.yaml")).unwrap();
    let stored = cluster.kubectl_apply("cronjob.yaml", &cronjob).unwrap();
    let uid = stored[0]["metadata"]["uid"].as_str().unwrap().to_string();
    let out = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "build-42")
        .env("JOBHERD_DRY_RUN", "client")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let mut ours: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut theirs = kubectl_job_from_cronjob(&cluster);
    // The recorded copy was made against another fake cluster: its CronJob had another uid.
    theirs["metadata"]["ownerReferences"][0]["uid"] = uid.clone().into();
    assert_eq!(ours["metadata"]["ownerReferences"][0]["uid"], uid);
    normalize(&mut ours);
    normalize(&mut theirs);
    assert_eq!(ours, theirs);
}
