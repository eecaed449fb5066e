use super::*;

fn cronjob() -> CronJob {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "batch", "uid": "cj-uid",
                     "labels": {"team": "data"}, "resourceVersion": "7"},
        "spec": {"schedule": "17 3 * * *", "jobTemplate": {
            "metadata": {"labels": {"app.kubernetes.io/name": "jobherd"},
                         "annotations": {"owner": "data-team"}},
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                "serviceAccountName": "jobherd",
                "containers": [
                    {"name": "sidecar", "image": "proxy:1"},
                    {"name": "jobherd", "image": "jobherd:0.1.0", "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "JOBHERD_IMAGE", "value": "perl:5.40-slim"},
                        {"name": "JOBHERD_PARAMS", "value": "[{\"DIGITS\":\"500\"}]"},
                        {"name": "JOBHERD_NAMESPACE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                    ]},
                ]}}}}}
    }))
    .unwrap()
}

fn env(job: &Job) -> Vec<(String, Option<String>)> {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = pod.containers.iter().find(|c| c.name == "jobherd").unwrap();
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_job_is_what_kubectl_create_job_from_cronjob_makes() {
    let cj = cronjob();
    let job = job_from_cronjob(&cj, "nightly-manual", &[]).unwrap();
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(annotations[INSTANTIATE], "manual");
    assert_eq!(annotations["owner"], "data-team");
    assert_eq!(
        job.metadata.labels.clone().unwrap()["app.kubernetes.io/name"],
        "jobherd"
    );
    assert_eq!(job.metadata.name.as_deref(), Some("nightly-manual"));
    assert_eq!(
        job.metadata.namespace, None,
        "the request's namespace is the CronJob's"
    );
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("batch/v1", "CronJob", "nightly", "cj-uid")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, None);
    assert_eq!(
        job.spec,
        cj.spec.unwrap().job_template.spec,
        "the spec is the template's"
    );
}

#[test]
fn overrides_replace_and_add_variables_of_jobherds_container() {
    let overrides = vars(&[
        ("JOBHERD_PARAMS", r#"[{"DIGITS":"10"}]"#),
        ("JOBHERD_NAMESPACE", "other"),
        ("JOBHERD_FAIL_FAST", "true"),
    ]);
    let job = job_from_cronjob(&cronjob(), "x", &overrides).unwrap();
    let env = env(&job);
    assert!(env.contains(&("JOBHERD_PARAMS".into(), Some(r#"[{"DIGITS":"10"}]"#.into()))));
    assert!(
        env.contains(&("JOBHERD_NAMESPACE".into(), Some("other".into()))),
        "a value from a ConfigMap is replaced too: {env:?}"
    );
    assert_eq!(
        env.last(),
        Some(&("JOBHERD_FAIL_FAST".into(), Some("true".into())))
    );
    assert!(
        env.contains(&("POD_NAME".into(), None)),
        "the downward API stays"
    );
    let sidecar = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(sidecar.env.is_none(), "other containers are left alone");
}

#[test]
fn a_bad_override_is_refused_before_anything_is_created() {
    let err = job_from_cronjob(&cronjob(), "x", &vars(&[("JOBHERD_COUNT", "three")])).unwrap_err();
    assert!(
        err.contains("JOBHERD_COUNT") && err.contains("three"),
        "{err}"
    );
    let both = vars(&[("JOBHERD_COUNT", "3"), ("JOBHERD_PARAMS", "[{}]")]);
    let err = job_from_cronjob(&cronjob(), "x", &both).unwrap_err();
    assert!(
        err.contains("JOBHERD_COUNT") && err.contains("JOBHERD_PARAMS"),
        "{err}"
    );
}

#[test]
fn an_override_replaces_the_values_it_excludes() {
    let job = job_from_cronjob(&cronjob(), "x", &vars(&[("JOBHERD_COUNT", "3")])).unwrap();
    let names: Vec<String> = env(&job).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"JOBHERD_COUNT".to_string()));
    assert!(!names.contains(&"JOBHERD_PARAMS".to_string()), "{names:?}");
}

#[test]
fn a_problem_of_the_cronjobs_own_is_left_to_the_parent() {
    let mut cj = cronjob();
    let pod = cj
        .spec
        .as_mut()
        .unwrap()
        .job_template
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap();
    pod.containers[1].env.as_mut().unwrap().push(EnvVar {
        name: "JOBHERD_TIMEOUT".into(),
        value: Some("soon".into()),
        value_from: None,
    });
    let overrides = vars(&[("JOBHERD_FAIL_FAST", "true")]);
    assert!(
        job_from_cronjob(&cj, "x", &overrides).is_ok(),
        "the parent exits 2 and says why"
    );
}

#[test]
fn several_containers_need_one_named_jobherd() {
    let mut cj = cronjob();
    let pod = cj
        .spec
        .as_mut()
        .unwrap()
        .job_template
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap();
    pod.containers[1].name = "main".into();
    let err = job_from_cronjob(&cj, "x", &vars(&[("JOBHERD_FAIL_FAST", "true")])).unwrap_err();
    assert!(err.contains("none is named jobherd"), "{err}");
    assert!(
        job_from_cronjob(&cj, "x", &[]).is_ok(),
        "without overrides any pod will do"
    );
}

#[test]
fn default_names_are_unique_valid_job_names() {
    let a = default_name("nightly");
    assert!(a.starts_with("nightly-") && a.len() <= 63, "{a}");
    crate::config::check_dns_label(&default_name(&"x".repeat(52))).unwrap();
}
