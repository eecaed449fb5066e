//! Termination messages as the fake kubelet reports them: what a container wrote to its
//! `terminationMessagePath` (`FAKE_MESSAGE`, with `${NAME}` from its own environment), at most
//! its last 4096 bytes, only once it terminated; `FallbackToLogsOnError` takes the log's tail
//! on a failure with an empty file.

mod support;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};
use support::*;

const NS: &str = "default";

/// A container: its name, its fate's env and more fields of its spec.
type Container<'a> = (&'a str, &'a [(&'a str, &'a str)], Value);

/// A Job of one `Never` pod with these containers, `spec` merged into the Job's.
fn job(name: &str, spec: Value, containers: &[Container]) -> Job {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(cname, env, extra)| {
            let env: Vec<Value> = env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let mut c = json!({"name": cname, "image": "busybox", "env": env});
            for (k, v) in extra.as_object().into_iter().flatten() {
                c[k] = v.clone();
            }
            c
        })
        .collect();
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": containers}}},
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        job["spec"][k] = v.clone();
    }
    serde_json::from_value(job).expect("job json")
}

fn finished(cluster: &FakeCluster, job: &str) -> bool {
    cluster
        .job(NS, job)
        .and_then(|j| j.status)
        .is_some_and(|s| {
            s.conditions
                .unwrap_or_default()
                .iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// Container `container`'s last reported state in each version of `pod`.
fn states(cluster: &FakeCluster, pod: &str, container: &str) -> Vec<Value> {
    cluster
        .history_of(Kind::Pod, NS, pod)
        .into_iter()
        .filter_map(|r| {
            r.object["status"]["containerStatuses"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == container)
                .map(|c| c["state"].clone())
        })
        .collect()
}

/// The termination message of each container of the Job's pods, by container name.
fn messages(cluster: &FakeCluster, job: &str) -> Vec<(String, Option<String>)> {
    cluster
        .pods_of(NS, job)
        .into_iter()
        .flat_map(|p| {
            p.status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
        })
        .map(|c| {
            let message = c.state.and_then(|s| s.terminated).and_then(|t| t.message);
            (c.name, message)
        })
        .collect()
}

#[test]
fn a_termination_message_is_reported_only_once_the_container_terminated() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job(
        "once",
        json!({}),
        &[(
            "main",
            &[("FAKE_HOLD", "once"), ("FAKE_MESSAGE", "done")],
            json!({}),
        )],
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of(NS, "once")
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    }));
    cluster.release("once");
    assert!(cluster.wait_until(secs(10), |c| finished(c, "once")));
    let pod = cluster.pods_of(NS, "once")[0]
        .metadata
        .name
        .clone()
        .expect("name");
    let states = states(&cluster, &pod, "main");
    assert!(states.iter().any(|s| s["running"].is_object()));
    for s in &states {
        if s["terminated"].is_object() {
            assert_eq!(s["terminated"]["message"], "done", "{s}");
        } else {
            assert!(!s.to_string().contains("done"), "not before it ended: {s}");
        }
    }
}

#[test]
fn the_message_expands_variables_of_the_containers_own_environment() {
    let cluster = FakeCluster::builder().version(32).start();
    let template = r#"{"pod":"${POD}","b":"${B}","index":${JOB_COMPLETION_INDEX},"host":"${HOSTNAME}","none":"${NOPE}"}"#;
    cluster.create_job(job(
        "expand",
        json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2}),
        &[(
            "main",
            &[],
            json!({"env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "A", "value": "x"},
                {"name": "B", "value": "$(A)y"},
                {"name": "FAKE_MESSAGE", "value": template},
            ]}),
        )],
    ));
    assert!(cluster.wait_until(secs(10), |c| finished(c, "expand")));
    let pods = cluster.pods_of(NS, "expand");
    assert_eq!(pods.len(), 2);
    for p in pods {
        let name = p.metadata.name.clone().expect("name");
        let index = p.metadata.annotations.clone().unwrap_or_default()
            ["batch.kubernetes.io/job-completion-index"]
            .clone();
        let message = p
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .and_then(|t| t.message)
            .expect("a message");
        assert_eq!(
            serde_json::from_str::<Value>(&message).expect("the message is JSON"),
            json!({"pod": name, "b": "xy", "index": index.parse::<u32>().expect("index"),
                "host": format!("expand-{index}"), "none": ""}),
        );
    }
}

#[test]
fn each_child_of_a_fan_out_reports_its_own_message() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "fan");
    let out = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env(
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"{\"child\":${JOBHERD_CHILD_INDEX},\"of\":${JOBHERD_CHILD_COUNT}}"}"#,
        )
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    for i in 0..3 {
        let child = format!("fan-{i}");
        let reported = messages(&cluster, &child);
        assert_eq!(
            reported,
            [(child.clone(), Some(format!(r#"{{"child":{i},"of":3}}"#)))],
            "{child}"
        );
    }
}

#[test]
fn a_message_over_4096_bytes_keeps_its_last_4096() {
    let cluster = FakeCluster::start();
    cluster.create_job(job(
        "long",
        json!({}),
        &[(
            "main",
            &[
                ("FAKE_MESSAGE", "0123456789"),
                ("FAKE_MESSAGE_REPEAT", "500"),
            ],
            json!({}),
        )],
    ));
    assert!(cluster.wait_until(secs(10), |c| finished(c, "long")));
    let (_, message) = messages(&cluster, "long").remove(0);
    let message = message.expect("a message");
    assert_eq!(message.len(), 4096);
    // The kubelet reads the file's end: 5000 bytes lose their first 904.
    assert!(message.starts_with("4567890123"), "{}", &message[..10]);
    assert!(message.ends_with("0123456789"));
}

#[test]
fn fallback_to_logs_applies_only_to_a_failure_with_an_empty_file() {
    let cluster = FakeCluster::start();
    let fallback = json!({"terminationMessagePolicy": "FallbackToLogsOnError"});
    let hundred: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
    let hundred = hundred.join("\n");
    cluster.create_job(job(
        "fallback",
        json!({}),
        &[
            (
                "tail",
                &[("FAKE_EXIT", "1"), ("FAKE_LOG", &hundred)],
                fallback.clone(),
            ),
            (
                "file",
                &[("FAKE_EXIT", "1"), ("FAKE_MESSAGE", "from the file")],
                fallback.clone(),
            ),
            ("ok", &[("FAKE_EXIT", "0")], fallback),
            ("plain", &[("FAKE_EXIT", "1")], json!({})),
        ],
    ));
    assert!(cluster.wait_until(secs(10), |c| finished(c, "fallback")));
    let mut reported = messages(&cluster, "fallback");
    reported.sort();
    // The last 80 lines of the log, each with its newline ("exit code 1" is the fake's last).
    let mut tail: String = (22..=100).map(|i| format!("line {i}\n")).collect();
    tail.push_str("exit code 1\n");
    assert_eq!(
        reported,
        [
            ("file".to_string(), Some("from the file".to_string())),
            ("ok".into(), None),
            ("plain".into(), None),
            ("tail".into(), Some(tail)),
        ]
    );
}
