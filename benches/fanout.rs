//! Fan-out benchmark: the release binary against the fake cluster, printing figures (no
//! pass/fail): wall time, create throughput, API requests per child and jobherd's peak memory;
//! and, for a chain of dependent steps, how long jobherd takes to start a step once its
//! dependency finished (the hand-off).
//!
//! `cargo bench --bench fanout` (sizes from `BENCH_CHILDREN`, default "100,500").

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::FakeCluster;

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn bench(children: usize) {
    let cluster = FakeCluster::start();
    let started = Instant::now();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", children.to_string())
        .env("JOBHERD_LOGS", "none")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"200"}"#)
        .timeout(Duration::from_secs(1800))
        .spawn();
    let mut peak = 0;
    while !h.exited() {
        peak = peak.max(peak_rss_kib(h.pid()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = h.wait();
    let wall = started.elapsed();
    assert_eq!(out.code, Some(0), "{out}");
    let requests = cluster.requests();
    let creates: Vec<_> = requests
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs")
        .collect();
    let create_span = match (creates.first(), creates.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at),
        _ => Duration::ZERO,
    };
    let watches = requests.iter().filter(|r| r.verb == "watch").count();
    println!(
        "children={children:>5}  wall={:>7.2}s  creates/s={:>6.1}  requests={:>6} ({:.2}/child, {watches} watches)  peak_rss={:.1} MiB",
        wall.as_secs_f64(),
        creates.len() as f64 / create_span.as_secs_f64().max(0.001),
        requests.len(),
        requests.len() as f64 / children as f64,
        peak as f64 / 1024.0,
    );
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

fn main() {
    chain(20);
    let sizes = std::env::var("BENCH_CHILDREN").unwrap_or_else(|_| "100,500".into());
    for size in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        bench(size);
    }
}
