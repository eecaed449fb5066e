use super::job::{build_template, instantiate};
use super::*;
use crate::config::Config;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::time::Duration;

/// One child's Job as `Children::job` builds it.
fn build_job(
    name: &str,
    label: &str,
    defaults: &StepSettings,
    own: &StepSettings,
    extra_env: &EnvMap,
    id: &Identity,
) -> Result<Job, String> {
    build_template(defaults, own, id).map(|t| instantiate(&t, name, label, extra_env))
}

fn id() -> Identity {
    Identity {
        run_id: "uid-1".into(),
        prefix: "nightly".into(),
        namespace: Some("batch".into()),
        owner: Some(OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "nightly".into(),
            uid: "uid-1".into(),
            ..Default::default()
        }),
    }
}

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

fn json(job: &Job) -> serde_json::Value {
    serde_json::to_value(job).unwrap()
}

#[test]
fn single_child_matches_kubectl_create_job() {
    // Reference: kubectl create job nightly-0 --image=busybox --dry-run=client -o json -- echo hi
    // (kubectl sets restartPolicy Never; jobherd's default is OnFailure as `kubectl run`).
    let c = config(&[
        ("JOBHERD_IMAGE", "busybox"),
        ("JOBHERD_COMMAND", r#"["echo","hi"]"#),
    ]);
    let kids = children(&c.defaults, None, &id()).unwrap();
    assert_eq!(kids.len(), 1);
    let j = json(&kids.job(0));
    assert_eq!(j["apiVersion"], "batch/v1");
    assert_eq!(j["kind"], "Job");
    assert_eq!(j["metadata"]["name"], "nightly-0");
    assert_eq!(j["metadata"]["namespace"], "batch");
    let c0 = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c0["name"], "nightly-0");
    assert_eq!(c0["image"], "busybox");
    assert_eq!(c0["command"], serde_json::json!(["echo", "hi"]));
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    assert_eq!(j["spec"]["backoffLimit"], 6);
    for labels in [
        &j["metadata"]["labels"],
        &j["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["app.kubernetes.io/managed-by"], "jobherd");
        assert_eq!(labels["jobherd.io/run"], "uid-1");
        assert_eq!(labels["jobherd.io/step"], "0");
    }
    let owner = &j["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], "uid-1");
    assert!(owner.get("blockOwnerDeletion").is_none());
}

#[test]
fn count_fans_out_with_index_env() {
    let c = config(&[("JOBHERD_IMAGE", "busybox"), ("JOBHERD_COUNT", "3")]);
    let kids = children(&c.defaults, None, &id()).unwrap();
    let names: Vec<_> = kids.iter().map(|k| &*k.name).collect();
    assert_eq!(names, ["nightly-0", "nightly-1", "nightly-2"]);
    let env = json(&kids.job(2))["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    assert_eq!(
        env,
        serde_json::json!([
            {"name": "JOBHERD_CHILD_COUNT", "value": "3"},
            {"name": "JOBHERD_CHILD_INDEX", "value": "2"},
        ])
    );
}

#[test]
fn params_become_env_over_the_common_env() {
    let c = config(&[
        ("JOBHERD_IMAGE", "perl"),
        (
            "JOBHERD_SHELL",
            "perl -Mbignum=bpi -wle 'print bpi($DIGITS)'",
        ),
        ("JOBHERD_ENV", r#"{"DIGITS":"10","MODE":"fast"}"#),
        ("JOBHERD_PARAMS", r#"[{"DIGITS":"100"},{"DIGITS":2000}]"#),
        ("JOBHERD_RESTART_POLICY", "Never"),
        ("JOBHERD_BACKOFF_LIMIT", "2"),
        ("JOBHERD_CHILD_TIMEOUT", "10m"),
        ("JOBHERD_TTL", "1h"),
    ]);
    let kids = children(&c.defaults, None, &id()).unwrap();
    assert_eq!(kids.len(), 2);
    let j = json(&kids.job(1));
    let c0 = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c0["command"],
        serde_json::json!([
            "/bin/sh",
            "-c",
            "perl -Mbignum=bpi -wle 'print bpi($DIGITS)'"
        ])
    );
    let env: BTreeMap<String, String> = c0["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(env["DIGITS"], "2000");
    assert_eq!(env["MODE"], "fast");
    assert_eq!(env["JOBHERD_CHILD_INDEX"], "1");
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(j["spec"]["backoffLimit"], 2);
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 3600);
}

#[test]
fn template_is_the_base_and_variables_win() {
    let template = r#"{"apiVersion":"batch/v1","kind":"Job",
      "metadata":{"name":"old","uid":"x","resourceVersion":"9","labels":{"team":"data"}},
      "spec":{"backoffLimit":1,"selector":{"matchLabels":{"controller-uid":"x"}},
        "template":{"metadata":{"labels":{"controller-uid":"x","team":"data"}},
          "spec":{"serviceAccountName":"worker","restartPolicy":"Never",
            "containers":[{"name":"main","image":"old","resources":{"limits":{"cpu":"1"}}}]}}},
      "status":{"succeeded":1}}"#;
    let c = config(&[("JOBHERD_IMAGE", "new"), ("JOBHERD_JOB_TEMPLATE", template)]);
    let j = json(&children(&c.defaults, None, &id()).unwrap().job(0));
    assert_eq!(j["metadata"]["name"], "nightly-0");
    assert!(j["metadata"].get("uid").is_none());
    assert!(j.get("status").is_none());
    assert!(j["spec"].get("selector").is_none());
    assert_eq!(j["metadata"]["labels"]["team"], "data");
    let t = &j["spec"]["template"];
    assert!(t["metadata"]["labels"].get("controller-uid").is_none());
    assert_eq!(t["spec"]["serviceAccountName"], "worker");
    assert_eq!(
        t["spec"]["restartPolicy"], "Never",
        "unset variables keep the template's"
    );
    assert_eq!(j["spec"]["backoffLimit"], 1);
    assert_eq!(t["spec"]["containers"][0]["name"], "main");
    assert_eq!(t["spec"]["containers"][0]["image"], "new");
    assert_eq!(
        t["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "1"
    );
}

#[test]
fn step_manifest_beats_inherited_variables_but_not_step_fields() {
    let manifest: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sleep"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
          "containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "5"]}]}}}
    }))
    .unwrap();
    let defaults = StepSettings {
        image: Some("perl".into()),
        shell: Some("echo default".into()),
        env: EnvMap::from([("A".into(), "1".into())]),
        ..Default::default()
    };
    let mut own = StepSettings {
        job: Some(manifest),
        ..Default::default()
    };
    let j = json(&build_job("p-s", "s", &defaults, &own, &EnvMap::new(), &id()).unwrap());
    let c0 = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c0["image"], "busybox");
    assert_eq!(c0["command"], serde_json::json!(["sleep", "5"]));
    assert_eq!(c0["env"][0]["name"], "A", "env fills in");
    own.image = Some("alpine".into());
    let j = json(&build_job("p-s", "s", &defaults, &own, &EnvMap::new(), &id()).unwrap());
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        "alpine"
    );
}

#[test]
fn missing_image_and_bad_restart_policy_are_errors() {
    let defaults = StepSettings::default();
    let err = build_job("p-0", "0", &defaults, &defaults, &EnvMap::new(), &id()).unwrap_err();
    assert!(err.contains("no image"), "{err}");
    let template: Job = serde_json::from_value(serde_json::json!({
        "spec": {"template": {"spec": {"restartPolicy": "Always",
          "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let defaults = StepSettings {
        job: Some(template),
        ..Default::default()
    };
    let err = build_job(
        "p-0",
        "0",
        &defaults,
        &StepSettings::default(),
        &EnvMap::new(),
        &id(),
    )
    .unwrap_err();
    assert!(err.contains("Always"), "{err}");
}

#[test]
fn a_queue_labels_the_job_for_kueue_and_the_owner_is_no_controller() {
    let c = config(&[("JOBHERD_IMAGE", "busybox"), ("JOBHERD_QUEUE", "team-a")]);
    let j = json(&children(&c.defaults, None, &id()).unwrap().job(0));
    assert_eq!(j["metadata"]["labels"][QUEUE_LABEL], "team-a");
    assert!(
        j["spec"]["template"]["metadata"]["labels"]
            .get(QUEUE_LABEL)
            .is_none(),
        "Kueue reads the Job's labels; a pod template label would be read by its pod integration"
    );
    // Kueue treats a Job whose controller is a Job it manages as part of that Job's
    // workload: the children's owner reference must not be a controller one.
    assert!(
        j["metadata"]["ownerReferences"][0]
            .get("controller")
            .is_none()
    );
    let plan = crate::plan::parse(
        r#"{"steps": [{"name": "a"}, {"name": "b", "queue": "team-b"}]}"#,
        "test",
        std::path::Path::new(""),
    )
    .unwrap();
    let kids = children(&c.defaults, Some(&plan), &id()).unwrap();
    assert_eq!(
        json(&kids.job(0))["metadata"]["labels"][QUEUE_LABEL],
        "team-a"
    );
    assert_eq!(
        json(&kids.job(1))["metadata"]["labels"][QUEUE_LABEL],
        "team-b"
    );
}

#[test]
fn long_names_are_shortened_stably_to_valid_labels() {
    let prefix = "a-very-long-cronjob-name-that-someone-chose-for-the-nightly-run-28434560";
    let a = child_name(prefix, "7");
    let b = child_name(prefix, "8");
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b);
    assert_eq!(a, child_name(prefix, "7"), "stable across calls");
    crate::config::check_dns_label(&a).unwrap();
    assert_eq!(child_name("short", "3"), "short-3");
    // A cut landing on '-' must not leave "--".
    let s = shorten(&format!("{}-{}", "x".repeat(53), "tail-of-name"), 63);
    assert!(!s.contains("--"), "{s}");
    crate::config::check_dns_label(&s).unwrap();
}

#[test]
fn fnv_is_fixed() {
    // Names of running children depend on this value never changing.
    // The published FNV-1a 64 test vectors.
    assert_eq!(fnv1a(""), 0xcbf29ce484222325);
    assert_eq!(fnv1a("a"), 0xaf63dc4c8601ec8c);
}

#[test]
fn child_timeout_is_whole_seconds() {
    let s = StepSettings {
        image: Some("x".into()),
        child_timeout: Some(Duration::from_secs(90)),
        ..Default::default()
    };
    let j = json(
        &build_job(
            "p-0",
            "0",
            &s,
            &StepSettings::default(),
            &EnvMap::new(),
            &id(),
        )
        .unwrap(),
    );
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 90);
}
