//! Fan-out benchmark: the release binary against the fake cluster, printing figures (no
//! pass/fail): wall time, create throughput, API requests per child, the requests the cluster's
//! Job controller would have sent for them (the fake's model), jobherd's peak memory and CPU
//! time; how long a dependency chain takes to hand over from one step to the next;
//! a fan-out over another step's result (`params_from`); and how fast a stopped run deletes
//! thousands of active children.
//!
//! `cargo bench --bench fanout`. Environment:
//! - `BENCH_CHILDREN`: fan-out sizes, default `1000` (docs/development.md's figures add `10000`);
//! - `BENCH_QPS`: `JOBHERD_QPS` values to run each size at, default `20,200` (`JOBHERD_BURST`
//!   is twice the QPS);
//! - `BENCH_DYNAMIC`: sizes of a fan-out over a result, default `10000` (`0` skips it): a step
//!   of that many children each gives one item, a `params_from` step fans out over them, and a
//!   merge step gets all of their results; at `JOBHERD_QPS` 200;
//! - `BENCH_CANCEL`: active children to cancel with SIGTERM, default `5000` (`0` skips it);
//! - `BENCH_PACK`: fan-out sizes run unpacked and packed (`JOBHERD_PACK=indexed`) side by
//!   side, default `1000,10000`; `BENCH_PACK_ONLY`: sizes run packed only, default `100000`
//!   (`0` skips either): jobherd's requests and the fake's model of the Job controller's;
//! - `BENCH_ADOPT`: sizes of a `params_from` fan-out that a parent killed mid-run leaves
//!   running and a restarted parent adopts, default `10000` (`0` skips it); at `JOBHERD_QPS`
//!   200: the restarted parent's requests per adopted child (it must find them from its lists,
//!   not one by one) and its time until every child is adopted.
//! - `BENCH_OUTPUTS`: sizes of a finished run whose page (`JOBHERD_HTML_FILE`) is written and
//!   whose metrics are pushed (`JOBHERD_PUSHGATEWAY`, to Debian's Pushgateway on loopback when
//!   it is installed), in process, default `10000` (`0` skips it);
//! - `BENCH_WITH_OUTPUTS=1`: each fan-out runs a second time with the page and the metrics on,
//!   refreshed every second (`JOBHERD_HEARTBEAT=1s`).

#[path = "fanout/outputs.rs"]
mod outputs;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use outputs::Outputs;
use support::{FakeCluster, Kind, Running};

/// jobherd's peak resident memory so far (VmHWM never goes down, so sampling misses little).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of every child process waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Waits for jobherd to exit, sampling its peak memory; returns (output, peak MiB, CPU s).
fn finish(mut h: Running) -> (support::Output, f64, f64) {
    let cpu_before = children_cpu();
    let mut peak = 0;
    while !h.exited() {
        peak = peak.max(peak_rss_kib(h.pid()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = h.wait();
    (out, peak as f64 / 1024.0, children_cpu() - cpu_before)
}

/// A whole run as measured: its output, wall time, jobherd's peak memory and CPU time, and
/// the requests the fake cluster saw.
struct Measured {
    out: support::Output,
    wall: Duration,
    peak: f64,
    cpu: f64,
    requests: Vec<support::Request>,
}

/// Runs jobherd with `vars` (children logs off) at `qps`, to its end; it must succeed.
fn measure(cluster: &FakeCluster, qps: u32, vars: &[(&str, String)]) -> Measured {
    let started = Instant::now();
    let mut cmd = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_LOGS", "none")
        .env("JOBHERD_QPS", qps.to_string())
        .env("JOBHERD_BURST", (2 * qps).to_string())
        .timeout(Duration::from_secs(3600));
    for (k, v) in vars {
        cmd = cmd.env(k, v);
    }
    let (out, peak, cpu) = finish(cmd.spawn());
    let wall = started.elapsed();
    assert_eq!(out.code, Some(0), "{out}");
    Measured {
        out,
        wall,
        peak,
        cpu,
        requests: cluster.requests(),
    }
}

fn fan_out(children: usize, qps: u32, outputs: Option<&Outputs>) {
    let cluster = FakeCluster::start();
    let mut vars = vec![
        ("JOBHERD_COUNT", children.to_string()),
        ("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"200"}"#.to_string()),
    ];
    let page = cluster.temp_dir().join("page.html");
    if let Some(o) = outputs {
        vars.push(("JOBHERD_HTML_FILE", page.display().to_string()));
        vars.push(("JOBHERD_HEARTBEAT", "1s".to_string()));
        if let Some(gateway) = &o.gateway {
            vars.push(("JOBHERD_PUSHGATEWAY", gateway.url.clone()));
        }
    }
    let m = measure(&cluster, qps, &vars);
    let creates: Vec<_> = m
        .requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs")
        .collect();
    let create_span = match (creates.first(), creates.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at),
        _ => Duration::ZERO,
    };
    let watches = m.requests.iter().filter(|r| r.verb == "watch").count();
    let with = match outputs {
        Some(o) => format!(
            "  + page ({:.1} MiB) and metrics{}, every 1s",
            std::fs::metadata(&page).map_or(0, |m| m.len()) as f64 / 1024.0 / 1024.0,
            if o.gateway.is_some() {
                ""
            } else {
                " (no Pushgateway)"
            }
        ),
        None => String::new(),
    };
    // What the cluster's Job controller would have sent for the same children (a model).
    let controller = cluster.controller_requests();
    println!(
        "children={children:>5}  qps={qps:>3}  wall={:>7.2}s  creates/s={:>6.1}  requests={:>6} ({:.2}/child, {watches} watches)  job_controller={} ({:.2}/child, {:.0}s at 20/s)  peak_rss={:.1} MiB  cpu={:.2}s{with}",
        m.wall.as_secs_f64(),
        creates.len() as f64 / create_span.as_secs_f64().max(0.001),
        m.requests.len(),
        m.requests.len() as f64 / children as f64,
        controller.total(),
        controller.total() as f64 / children as f64,
        controller.seconds_at(20.0),
        m.peak,
        m.cpu,
    );
}

/// `source` (N children, each giving its index as its result) -> `work` (`params_from: source`:
/// N children, one per item) -> `merge` (gets `work`'s N results as `JOBHERD_RESULT_WORK`).
fn dynamic(items: usize) {
    const QPS: u32 = 200;
    let plan = serde_json::json!({"steps": [
        {"name": "source", "count": items,
         "env": {"FAKE_MESSAGE": "${JOBHERD_CHILD_INDEX}", "FAKE_RUN_MS": "200"}},
        {"name": "work", "depends_on": ["source"], "params_from": "source",
         "env": {"FAKE_MESSAGE": "${JOBHERD_ITEM}", "FAKE_RUN_MS": "200"}},
        {"name": "merge", "depends_on": ["work"]},
    ]});
    let cluster = FakeCluster::start();
    let m = measure(&cluster, QPS, &[("JOBHERD_PLAN", plan.to_string())]);
    let creates = m
        .requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs")
        .count();
    let merge = cluster
        .object(
            Kind::Job,
            "default",
            &format!("{}-merge", prefix_of(&m.out)),
        )
        .and_then(|j| {
            j["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == "JOBHERD_RESULT_WORK")
                .and_then(|e| e["value"].as_str().map(str::len))
        })
        .unwrap_or(0);
    println!(
        "params_from={items:>5}  qps={QPS}  wall={:>7.2}s  creates={creates}  requests={:>6} ({:.2}/child)  merge's JOBHERD_RESULT_WORK={:.1} KiB  peak_rss={:.1} MiB  cpu={:.2}s",
        m.wall.as_secs_f64(),
        m.requests.len(),
        m.requests.len() as f64 / (2 * items + 1) as f64,
        merge as f64 / 1024.0,
        m.peak,
        m.cpu,
    );
}

/// The child name prefix a run without a parent chose (`jobherd-<run id>`), from its first line.
fn prefix_of(out: &support::Output) -> String {
    let id = out
        .stdout
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(':');
    format!("jobherd-{id}")
}

/// A chain a0 -> a1 -> ... : everything beyond the children's own pending and run time is
/// jobherd noticing the end of one step and creating the next (plus the fake's own latency).
fn chain(steps: usize) {
    const PENDING_MS: u64 = 10;
    const RUN_MS: u64 = 50;
    let plan: Vec<serde_json::Value> = (0..steps)
        .map(|i| {
            let mut step = serde_json::json!({"name": format!("a{i}")});
            if i > 0 {
                step["depends_on"] = serde_json::json!([format!("a{}", i - 1)]);
            }
            step
        })
        .collect();
    let cluster = FakeCluster::start();
    let started = Instant::now();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_LOGS", "none")
        .env(
            "JOBHERD_PLAN",
            serde_json::json!({ "steps": plan }).to_string(),
        )
        .env(
            "JOBHERD_ENV",
            format!(r#"{{"FAKE_RUN_MS":"{RUN_MS}","FAKE_PENDING_MS":"{PENDING_MS}"}}"#),
        )
        .timeout(Duration::from_secs(600))
        .run();
    let wall = started.elapsed();
    assert_eq!(out.code, Some(0), "{out}");
    let busy = Duration::from_millis((PENDING_MS + RUN_MS) * steps as u64);
    println!(
        "chain={steps:>3} steps  wall={:>6.2}s  hand-off per step={:>6.1} ms (wall minus {} ms of pod time per step)",
        wall.as_secs_f64(),
        wall.saturating_sub(busy).as_secs_f64() * 1000.0 / steps as f64,
        PENDING_MS + RUN_MS,
    );
}

/// The step labels a delete or deletecollection request covers.
fn deleted_labels(request: &support::Request) -> Vec<String> {
    if request.verb == "delete" {
        let index = request.name.rsplit('-').next().unwrap_or_default();
        return vec![index.to_string()];
    }
    let selector = request.label_selector().unwrap_or_default();
    let Some(set) = selector
        .split_once(" in (")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
    else {
        return Vec::new();
    };
    set.split(',').map(str::to_string).collect()
}

/// SIGTERM to a run with `children` active children: how long until each has a delete request,
/// and until the fake holds none of their Jobs and pods.
fn cancel(children: usize) {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", children.to_string())
        .env("JOBHERD_LOGS", "none")
        .env("JOBHERD_QPS", "1000")
        .env("JOBHERD_BURST", "1000")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"3600000"}"#)
        .timeout(Duration::from_secs(1200))
        .spawn();
    let running =
        |c: &FakeCluster| c.count(Kind::Pod, "default", |p| p["status"]["phase"] == "Running");
    assert!(
        cluster.wait_until(Duration::from_secs(900), |c| running(c) >= children),
        "{} of {children} children running",
        running(&cluster)
    );
    let before_stop = peak_rss_kib(h.pid()).unwrap_or(0) as f64 / 1024.0;
    let stopped = Instant::now();
    h.signal(libc::SIGTERM);
    let (out, peak, _) = finish(h);
    assert_eq!(out.code, Some(143), "{out}");
    let exited = stopped.elapsed();
    cluster.wait_until(Duration::from_secs(600), |c| {
        c.count(Kind::Job, "default", |_| true) == 0 && c.count(Kind::Pod, "default", |_| true) == 0
    });
    let all_gone = stopped.elapsed();
    let mut covered = HashSet::new();
    let mut last_delete = Duration::ZERO;
    let mut delete_requests = 0;
    for r in cluster.requests() {
        if r.resource == "jobs"
            && matches!(r.verb, "delete" | "deletecollection")
            && r.at >= stopped
        {
            delete_requests += 1;
            covered.extend(deleted_labels(&r));
            last_delete = last_delete.max(r.at.duration_since(stopped));
        }
    }
    println!(
        "cancel={children:>5}  every child asked to delete after {:.2}s ({delete_requests} requests, {} children covered)  jobherd exited after {:.2}s  no Job or pod left after {:.2}s  peak_rss={peak:.1} MiB ({before_stop:.1} MiB before the stop)",
        last_delete.as_secs_f64(),
        covered.len(),
        exited.as_secs_f64(),
        all_gone.as_secs_f64(),
    );
}

/// A parent killed while a `params_from` fan-out of `items` children runs (over the results of
/// a `count` step of as many, done); a second parent (the same parent Job: the same run) adopts
/// all of them. Measured: the second parent's requests until it has adopted every child, per
/// child, and how long that took.
fn adopt(items: usize) {
    const QPS: u32 = 200;
    let plan = serde_json::json!({"steps": [
        {"name": "source", "count": items, "env": {"FAKE_MESSAGE": "${JOBHERD_CHILD_INDEX}"}},
        {"name": "work", "depends_on": ["source"], "params_from": "source",
         "env": {"FAKE_HOLD": "work"}},
        {"name": "merge", "depends_on": ["work"]},
    ]})
    .to_string();
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent("default", "adopt");
    let start = |cluster: &FakeCluster| {
        cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_LOGS", "none")
            .env("JOBHERD_PROGRESS", "lines")
            .env("JOBHERD_QPS", QPS.to_string())
            .env("JOBHERD_BURST", (2 * QPS).to_string())
            .env("JOBHERD_PLAN", &plan)
            .timeout(Duration::from_secs(3600))
            .spawn()
    };
    let mut first = start(&cluster);
    let running =
        |c: &FakeCluster| c.count(Kind::Pod, "default", |p| p["status"]["phase"] == "Running");
    assert!(cluster.wait_until(Duration::from_secs(1800), |c| running(c) >= items));
    first.kill();
    first.wait();
    cluster.clear_requests();
    let started = Instant::now();
    let mut second = start(&cluster);
    // Every child of source and work is adopted (each says so on a line of its own).
    let all = 2 * items;
    while second.stdout().matches(" adopted").count() < all && !second.exited() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    let until_adopted = cluster.requests();
    cluster.release("work");
    let (out, peak, cpu) = finish(second);
    assert_eq!(out.code, Some(0), "{out}");
    let whole = cluster.requests();
    let creates = |r: &[support::Request]| {
        r.iter()
            .filter(|r| r.verb == "create" && r.resource == "jobs")
            .count()
    };
    println!(
        "adopt params_from={items:>5}  qps={QPS}  adopted in {:.2}s  requests until then={} ({:.3}/adopted child, {} creates)  whole second run={} requests ({:.3}/child, {} creates)  peak_rss={peak:.1} MiB  cpu={cpu:.2}s",
        took.as_secs_f64(),
        until_adopted.len(),
        until_adopted.len() as f64 / all as f64,
        creates(&until_adopted),
        whole.len(),
        whole.len() as f64 / all as f64,
        creates(&whole),
    );
}

fn list(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The same fan-out unpacked and packed (`JOBHERD_PACK=indexed`), at `JOBHERD_QPS` 200:
/// jobherd's requests and the modelled Job controller's, per child, side by side.
fn packing(children: usize, modes: &[bool]) {
    const QPS: u32 = 200;
    for &packed in modes {
        let cluster = FakeCluster::start();
        // A command, as a real herd has: packs after the first need one for jobherd's
        // entrypoint (their children's indexes do not start at 0).
        let mut vars = vec![
            ("JOBHERD_COUNT", children.to_string()),
            ("JOBHERD_COMMAND", r#"["work"]"#.to_string()),
            ("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"200"}"#.to_string()),
        ];
        if packed {
            vars.push(("JOBHERD_PACK", "indexed".to_string()));
            vars.push(("JOBHERD_PACK_IMAGE", "jobherd:bench".to_string()));
        }
        let m = measure(&cluster, QPS, &vars);
        // The controller removes the last finalizers as the Job ends: count them too.
        let tracked = |c: &FakeCluster| {
            c.count(Kind::Pod, "default", |p| {
                p["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
            })
        };
        cluster.wait_until(Duration::from_secs(120), |c| tracked(c) == 0);
        let controller = cluster.controller_requests();
        println!(
            "{} children={children:>6}  qps={QPS}  wall={:>7.2}s  jobherd requests={:>6} ({:.3}/child)  job_controller={:>6} ({:.2}/child, {:.0}s at 20/s)  peak_rss={:.1} MiB  cpu={:.2}s ({:.3} ms/child)",
            if packed { "packed  " } else { "unpacked" },
            m.wall.as_secs_f64(),
            m.requests.len(),
            m.requests.len() as f64 / children as f64,
            controller.total(),
            controller.total() as f64 / children as f64,
            controller.seconds_at(20.0),
            m.peak,
            m.cpu,
            m.cpu * 1000.0 / children as f64,
        );
    }
}

fn main() {
    chain(20);
    for children in list("BENCH_PACK", "1000,10000") {
        if children > 0 {
            packing(children, &[false, true]);
        }
    }
    for children in list("BENCH_PACK_ONLY", "100000") {
        if children > 0 {
            packing(children, &[true]);
        }
    }
    let outputs = Outputs::start();
    let with_outputs = std::env::var("BENCH_WITH_OUTPUTS").is_ok_and(|v| v == "1");
    for children in list("BENCH_CHILDREN", "1000") {
        for qps in list("BENCH_QPS", "20,200")
            .into_iter()
            .filter(|_| children > 0)
        {
            fan_out(children, qps as u32, None);
            if with_outputs {
                fan_out(children, qps as u32, Some(&outputs));
            }
        }
    }
    for children in list("BENCH_OUTPUTS", "10000") {
        if children > 0 {
            outputs.measure(children);
        }
    }
    for items in list("BENCH_DYNAMIC", "10000") {
        if items > 0 {
            dynamic(items);
        }
    }
    for children in list("BENCH_CANCEL", "5000") {
        if children > 0 {
            cancel(children);
        }
    }
    for items in list("BENCH_ADOPT", "10000") {
        if items > 0 {
            adopt(items);
        }
    }
}
