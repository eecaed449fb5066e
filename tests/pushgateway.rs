//! The run's metrics (`JOBHERD_PUSHGATEWAY`) against a real Prometheus Pushgateway (Debian's
//! `prometheus-pushgateway`, started on a free loopback port): the shipped CronJob applied to
//! the fake cluster, whose kubelet runs the real binary as the parent, triggered from outside
//! as a Jenkins step would. The series read back from the Pushgateway's `/metrics` are the ones
//! the run produced, grouped by the CronJob; a success followed by a failure keeps the last
//! success's timestamp; a push that fails is a warning, never a failed run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{FakeCluster, debian, secs};

const NS: &str = "default";

/// A Pushgateway of our own, stopped when dropped.
struct Pushgateway {
    process: Child,
    address: String,
}

impl Pushgateway {
    fn start() -> Option<Pushgateway> {
        let binary = debian::program(
            "PUSHGATEWAY",
            "/usr/bin/prometheus-pushgateway",
            "prometheus-pushgateway",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let process = Command::new(binary)
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Pushgateway starts");
        let gateway = Pushgateway { process, address };
        let deadline = Instant::now() + secs(30);
        while gateway.get("/-/ready").is_none() {
            assert!(Instant::now() < deadline, "the Pushgateway never got ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(gateway)
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The body of a 200 answer to `GET path`.
    fn get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(&self.address).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_string())
    }

    /// Every jobherd series of one group, `name{label="value",...}` (grouping labels left out,
    /// the others sorted) to its value.
    fn series(&self, job: &str) -> BTreeMap<String, f64> {
        let text = self.get("/metrics").expect("the Pushgateway's /metrics");
        let mut series = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("jobherd_")) {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = key.split_once('{').unwrap_or((key, "}"));
            let labels: BTreeMap<&str, &str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            if labels.get("job") != Some(&job) || labels.get("namespace") != Some(&NS) {
                continue;
            }
            let rest: Vec<String> = labels
                .iter()
                .filter(|(k, _)| !matches!(**k, "job" | "namespace" | "instance"))
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let key = if rest.is_empty() {
                name.to_string()
            } else {
                format!("{name}{{{}}}", rest.join(","))
            };
            series.insert(key, value.parse().unwrap());
        }
        series
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
}

/// The shipped CronJob `jobherd-pi` (three children) in a fresh fake cluster.
fn cluster_with_cronjob() -> FakeCluster {
    let cluster = FakeCluster::start();
    cluster
        .kubectl_apply("rbac.yaml", &read("rbac.yaml"))
        .unwrap();
    cluster
        .kubectl_apply("cronjob.yaml", &read("cronjob.yaml"))
        .unwrap();
    cluster
}

/// `JOBHERD_TRIGGER=cronjob/jobherd-pi` with the metrics pushed to `gateway`.
fn trigger(cluster: &FakeCluster, name: &str, gateway: &Pushgateway) -> support::Jobherd {
    cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", name)
        .env("JOBHERD_PUSHGATEWAY", gateway.url())
        .timeout(secs(120))
}

/// Every series a run's end pushes: its children by state, durations, retries, queues and the
/// outcome; the success time only with `succeeded`.
fn expected_series(succeeded: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "waiting",
        "pending",
        "queued",
        "running",
        "succeeded",
        "failed",
        "skipped",
        "not_needed",
        "cancelled",
    ]
    .iter()
    .map(|s| format!("jobherd_children{{state=\"{s}\"}}"))
    .collect();
    for le in [
        "1", "5", "15", "30", "60", "120", "300", "600", "1800", "3600", "7200", "14400", "43200",
        "86400", "+Inf",
    ] {
        names.insert(format!(
            "jobherd_child_duration_seconds_bucket{{le=\"{le}\"}}"
        ));
    }
    for name in [
        "jobherd_child_duration_seconds_sum",
        "jobherd_child_duration_seconds_count",
        "jobherd_child_retries",
        "jobherd_child_preemptions",
        "jobherd_child_queued_seconds",
        "jobherd_run_duration_seconds",
        "jobherd_exit_code",
        "jobherd_last_completion_timestamp_seconds",
        "jobherd_last_success_timestamp_seconds",
    ] {
        names.insert(name.to_string());
    }
    if !succeeded {
        names.remove("jobherd_last_success_timestamp_seconds");
    }
    names
}

/// How many children of a JSON report ended with `result`.
fn count(report: &Value, result: &str) -> f64 {
    report["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == result)
        .count() as f64
}

#[test]
fn a_success_then_a_failure_keeps_the_last_successs_timestamp() {
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let cluster = cluster_with_cronjob();
    let report = cluster.temp_dir().join("report.json");
    let out = trigger(&cluster, "build-1", &gateway)
        .env("JOBHERD_REPORT_FILE", &report)
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let first = gateway.series("jobherd-pi");
    let keys: BTreeSet<String> = first.keys().cloned().collect();
    assert_eq!(
        keys,
        expected_series(true),
        "grouped by the CronJob: {first:#?}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        first[r#"jobherd_children{state="succeeded"}"#],
        count(&report, "succeeded")
    );
    assert_eq!(first["jobherd_child_duration_seconds_count"], 3.0);
    assert_eq!(first["jobherd_exit_code"], 0.0);
    let success = first["jobherd_last_success_timestamp_seconds"];
    assert_eq!(first["jobherd_last_completion_timestamp_seconds"], success);

    let out = trigger(&cluster, "build-2", &gateway)
        .env("JOBHERD_ENV", r#"{"FAKE_EXIT":"1"}"#)
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let second = gateway.series("jobherd-pi");
    assert_eq!(second[r#"jobherd_children{state="failed"}"#], 3.0);
    assert_eq!(second[r#"jobherd_children{state="succeeded"}"#], 0.0);
    assert_eq!(second["jobherd_exit_code"], 1.0);
    assert_eq!(
        second["jobherd_last_success_timestamp_seconds"], success,
        "a failed run leaves the last success's time alone"
    );
    assert!(second["jobherd_last_completion_timestamp_seconds"] > success);
}

#[test]
fn outside_a_cronjob_the_metrics_are_grouped_by_the_name_prefix() {
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_NAME_PREFIX", "shards")
        .env("JOBHERD_PUSHGATEWAY", format!("{}/", gateway.url()))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let series = gateway.series("shards");
    assert_eq!(
        series[r#"jobherd_children{state="succeeded"}"#], 2.0,
        "{series:#?}"
    );
    assert!(series.contains_key("jobherd_last_success_timestamp_seconds"));
}

#[test]
fn a_push_that_fails_is_a_warning_and_the_run_goes_on() {
    let cluster = FakeCluster::start();
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_NAME_PREFIX", "shards")
        .env("JOBHERD_PUSHGATEWAY", format!("http://{closed}"))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let warning = format!(
        "could not push the run's metrics to http://{closed}/metrics/job/shards/namespace/{NS}"
    );
    assert!(out.stderr.contains(&warning), "{out}");
}
