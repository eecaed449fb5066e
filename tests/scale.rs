//! Herds at scale (SPEC §2 `JOBHERD_QPS`/`JOBHERD_BURST`/`JOBHERD_HEARTBEAT`, §3 deletes):
//! the request rate, several creates in flight, a stop that deletes every active child and
//! creates nothing more, throttling waited out, heartbeats and counts lines. Timing claims are
//! checked on the fake's recorded requests (lower bounds only), never by sampling the clock.

mod support;

use std::time::Duration;

use support::{FakeCluster, Kind, Request, secs};

const NS: &str = "default";

fn job_creates(cluster: &FakeCluster) -> Vec<Request> {
    cluster
        .requests()
        .into_iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300)
        .collect()
}

fn count_lines(out: &str, needle: &str) -> usize {
    out.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn bad_rate_heartbeat_and_progress_values_exit_2_and_create_nothing() {
    let cluster = FakeCluster::start();
    for (var, value, expected) in [
        ("JOBHERD_QPS", "0", "greater than 0"),
        ("JOBHERD_QPS", "lots", "requests per second"),
        ("JOBHERD_BURST", "0", "whole number greater than 0"),
        ("JOBHERD_BURST", "-3", "whole number greater than 0"),
        ("JOBHERD_HEARTBEAT", "sometimes", "duration"),
        ("JOBHERD_PROGRESS", "verbose", "auto, lines or counts"),
    ] {
        let out = cluster
            .jobherd()
            .env("JOBHERD_IMAGE", "busybox")
            .env(var, value)
            .run();
        assert_eq!(out.code, Some(2), "{var}={value}: {out}");
        for needle in [var, value, expected] {
            assert!(out.stderr.contains(needle), "{var}={value}: {out}");
        }
    }
    assert!(cluster.requests().iter().all(|r| r.verb != "create"));
}

#[test]
fn creates_keep_to_qps_after_the_burst() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "6")
        .env("JOBHERD_QPS", "10")
        .env("JOBHERD_BURST", "2")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let creates = job_creates(&cluster);
    assert_eq!(creates.len(), 6);
    // Two at once, then one every 100 ms: the sixth is at least 400 ms after the first.
    let span = creates[5].at.duration_since(creates[0].at);
    assert!(span >= Duration::from_millis(390), "6 creates in {span:?}");
}

#[test]
fn several_creates_are_in_flight_when_the_limit_allows() {
    let cluster = FakeCluster::start();
    // Every answer takes 500 ms: one create at a time would arrive 500 ms apart.
    cluster.stall(Duration::from_millis(500), 20);
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "8")
        .env("JOBHERD_BURST", "8")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let creates = job_creates(&cluster);
    assert_eq!(creates.len(), 8);
    let closest = creates
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .min()
        .unwrap();
    assert!(
        closest < Duration::from_millis(500),
        "creates came one after another ({closest:?} apart at the closest)"
    );
}

#[test]
fn throttled_creates_during_a_burst_are_waited_out_not_failed() {
    let cluster = FakeCluster::start();
    cluster.fail_next(10, 429, Some(1), Some(("create", "jobs")));
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "burst")
        .env("JOBHERD_COUNT", "20")
        .env("JOBHERD_BURST", "20")
        .env("JOBHERD_QPS", "100")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let all = cluster.count_requests("create", "jobs");
    assert_eq!(all, 30, "20 creates, 10 of them answered 429 first");
    assert_eq!(job_creates(&cluster).len(), 20, "each child created once");
    assert!(out.stdout.contains("20 succeeded of 20"), "{out}");
    let failed_children = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("burst-") && l.contains(" failed"))
        .count();
    assert_eq!(failed_children, 0, "a 429 never fails a child: {out}");
}

#[test]
fn a_stopped_run_deletes_every_active_child_and_creates_nothing_more() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "300")
        .env("JOBHERD_QPS", "100")
        .env("JOBHERD_BURST", "50")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"600000"}"#)
        .timeout(secs(120))
        .spawn();
    // Stop it halfway through creating.
    assert!(cluster.wait_until(secs(60), |c| c.count(Kind::Job, NS, |_| true) >= 100));
    h.signal(libc::SIGTERM);
    let out = h.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert!(
        cluster.wait_until(secs(60), |c| c.count(Kind::Job, NS, |_| true) == 0),
        "every child Job is deleted: {} left",
        cluster.count(Kind::Job, NS, |_| true)
    );
    assert!(
        cluster.wait_until(secs(60), |c| c.count(Kind::Pod, NS, |_| true) == 0),
        "and their pods with them (Background propagation)"
    );
    let requests = cluster.requests();
    let first_delete = requests
        .iter()
        .find(|r| r.resource == "jobs" && matches!(r.verb, "delete" | "deletecollection"))
        .expect("children were deleted")
        .at;
    let late = requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.at > first_delete)
        .count();
    assert!(
        late <= 50,
        "only creates already in flight may arrive after the stop: {late}"
    );
    let created = job_creates(&cluster).len();
    assert!(created < 300, "the rest is never created ({created})");
    let summary = out.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(&format!("{created} cancelled")),
        "every created child is reported cancelled: {summary}"
    );
    assert!(
        summary.contains(&format!("{} skipped", 300 - created)),
        "{summary}"
    );
    for r in requests
        .iter()
        .filter(|r| r.resource == "jobs" && matches!(r.verb, "delete" | "deletecollection"))
    {
        assert_eq!(
            r.param("propagationPolicy")
                .as_deref()
                .unwrap_or("Background"),
            "Background"
        );
    }
}

#[test]
fn without_deletecollection_children_are_deleted_one_by_one() {
    let cluster = FakeCluster::start();
    cluster.forbid("deletecollection", "jobs");
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "5")
        .env("JOBHERD_TIMEOUT", "2s")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"600000"}"#)
        .run();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr.contains("deletecollection"), "{out}");
    assert!(cluster.wait_until(secs(30), |c| c.count(Kind::Job, NS, |_| true) == 0));
    assert_eq!(cluster.count_requests("delete", "jobs"), 5);
}

#[test]
fn a_quiet_run_prints_heartbeats_with_counts() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "quiet")
        .env("JOBHERD_HEARTBEAT", "1s")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"3500"}"#)
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let beats: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("heartbeat: "))
        .collect();
    assert!(!beats.is_empty(), "{out}");
    assert!(
        beats
            .iter()
            .any(|b| b.starts_with("heartbeat: 0/1 done, 1 running, 0 pending, 0 waiting, 0 failed; longest running: quiet-0 (")),
        "{out}"
    );
}

#[test]
fn heartbeat_0_turns_it_off() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_HEARTBEAT", "0")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"2500"}"#)
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_lines(&out.stdout, "heartbeat"), 0, "{out}");
}

#[test]
fn a_big_herd_prints_counts_and_every_failure() {
    let cluster = FakeCluster::start();
    let mut params: Vec<serde_json::Value> = (0..150).map(|_| serde_json::json!({})).collect();
    params[42] = serde_json::json!({"FAKE_EXIT": "1", "FAKE_LOG": "shard 42 broke"});
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "big")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        // A failed pod of a Never child stays, so its log is there to show.
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_QPS", "200")
        .env("JOBHERD_BURST", "200")
        .env("JOBHERD_PARAMS", serde_json::to_string(&params).unwrap())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(count_lines(&out.stdout, "big-42 failed: "), 1, "{out}");
    assert!(out.stdout.contains("big-42 | shard 42 broke"), "{out}");
    assert_eq!(count_lines(&out.stdout, " created ["), 0, "{out}");
    assert_eq!(count_lines(&out.stdout, " succeeded after"), 0, "{out}");
    assert!(
        out.stdout
            .contains("progress: 150/150 done, 0 running, 0 pending, 0 waiting, 1 failed"),
        "{out}"
    );
    let table: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("CHILD"))
        .collect();
    assert!(table[1].starts_with("big-42"), "{out}");
    assert!(out.stdout.contains("149 more children not listed"), "{out}");
    assert!(
        out.stdout
            .contains("jobherd failed: 149 succeeded, 1 failed of 150 children"),
        "{out}"
    );
}

#[test]
fn progress_lines_keeps_a_line_per_child_in_a_big_herd() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "120")
        .env("JOBHERD_QPS", "200")
        .env("JOBHERD_BURST", "200")
        .env("JOBHERD_PROGRESS", "lines")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_lines(&out.stdout, " succeeded after"), 120, "{out}");
}
