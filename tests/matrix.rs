//! Every feature with every other (issue 18): four shapes of run against nine ways a run is
//! interrupted, moved, stopped or retried, each cell the real binary as the parent Job of the
//! shipped `cronjob.yaml` (its pods run by the fake's kubelet, replaced by its Job controller)
//! and every assertion on what the cluster recorded: the parent's attempts (exit code, log,
//! termination message), its record (`jobherd.io/outcome`), the child Jobs created (each once)
//! and deleted (by name), what each dependant was given, and the JSON report.
//!
//! Each run is brought to a *point* where it holds still (children held by `FAKE_HOLD`), then
//! the column's event happens, then the holds are released. Nothing waits for a clock: the
//! deadline is made to pass by backdating the parent Job (`JOBHERD_TIMEOUT` counts from its
//! creation), and the stop against a hanging API is bounded by jobherd's own limits.
//!
//! | row \ column | SIGKILL, restart | eviction | SIGTERM | timeout | fail fast | API restart | 410 | hanging API | last-failed |
//! |---|---|---|---|---|---|---|---|---|---|
//! | fan-out (`fan`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | plan (`plan`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | = fan-out | ✓ |
//! | `params_from` (`pf`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | = fan-out | ✓ |
//! | `when: always` after fail fast (`always`) | ✓ | ✓ | ✓ | ✓ | ✓ (the row itself) | ✓ | ✓ | ✓ | ✓ |
//!
//! - The rows: `fan` three children (one done, two held); `plan` `a → b → c` passing results,
//!   beside a held `side`; `pf` `list → work (params_from list) → merge`; `always` with
//!   `JOBHERD_FAIL_FAST`: `load` fails, `slow` is cancelled, and `notify` (`when: always`, after
//!   `pre`, `load` and `slow`) is running at the point.
//! - SIGKILL: the parent's process is killed (no SIGTERM): exit 137, and the next pod adopts.
//!   Eviction: `DisruptionTarget`, the run moves (exit 143, record `moved`), the next pod adopts.
//!   SIGTERM: a plain delete of the parent's pod (`backoffLimit: 0`: no next pod). Timeout:
//!   `JOBHERD_TIMEOUT=1h`, the parent Job backdated by 2h and its process killed: the next
//!   attempt starts past the deadline (a deadline passing within an attempt is
//!   `core.rs`'s `timeout_deletes_active_children_and_exits_3`). Fail fast: a child of the row
//!   fails with `JOBHERD_FAIL_FAST` (the `always` row is itself that case). API restart:
//!   `FakeCluster::stop`/`restart` while the children finish. 410: the watch history compacted
//!   and the watches cut while they finish. Hanging API: every request stalls when the SIGTERM
//!   comes. Last-failed: the run fails, then a run of the CronJob with
//!   `JOBHERD_RETRY=last-failed` takes it over.
//! - A hanging API during the stop is the same for every shape: what is active is deleted,
//!   whatever the plan; `fan` (several children) and `always` (after fail fast) cover it, and
//!   each such cell takes the stop's full 26 s.
//!
//! Run a row with `cargo test --test matrix plan::`, a column with `cargo test --test matrix
//! sigkill`.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::herd::{
    Children, PARENT_ACCOUNT, attempts, cluster_with_cronjob, env_of, message_of, parent_pid,
    records, start_parent, wait_for_end, wait_for_log, wait_until_finished,
};
use support::{FakeCluster, Kind, Propagation};

const NS: &str = "default";

/// Something the test does to bring a run to its point, or past it. `{p}` is the parent's
/// name (its children's prefix).
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Wait until the current attempt printed this.
    Wait(&'static str),
    /// `FakeCluster::release`.
    Release(&'static str),
    /// Delete this child's Job from outside: it fails (`Deleted`).
    Delete(&'static str),
}

/// A shape of run. Children are named by their suffix after the parent's name.
struct Row {
    id: &'static str,
    /// The parent's `JOBHERD_*` variables; `failing` makes one child fail when `fail` is done.
    env: fn(failing: bool) -> Vec<(&'static str, String)>,
    /// The row fails by itself before its point (`always`).
    fails_by_itself: bool,
    /// What brings a run from its start to its point.
    arrange: &'static [Act],
    /// Children running at the point.
    active: &'static [&'static str],
    /// Children created by the point.
    by_point: &'static [&'static str],
    /// Children the row's own fail fast deleted before the point.
    cancelled_by_point: &'static [&'static str],
    /// Every child a run to the end creates.
    all: &'static [&'static str],
    /// The holds to release for the run to end.
    finish: &'static [&'static str],
    /// The exit code of a run to the end.
    code: i64,
    /// What dependants got in a run to the end: (child, variable, value).
    results: &'static [(&'static str, &'static str, &'static str)],
    /// What they wrote with it: (child, termination message).
    wrote: &'static [(&'static str, &'static str)],
    /// With `failing`: what makes a child fail, which children that fails, and which active
    /// ones fail fast then cancels.
    fail: &'static [Act],
    failed: &'static [&'static str],
    fail_fast_cancels: &'static [&'static str],
    /// What a `last-failed` retry of the failed run creates again, and what its dependants get.
    retried: &'static [&'static str],
    retry_results: &'static [(&'static str, &'static str, &'static str)],
    /// Every hold the row uses.
    holds: &'static [&'static str],
}

/// The variables every row sets: children fail at once, without retries.
fn base(plan: Option<Value>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("JOBHERD_IMAGE", "busybox".to_string()),
        ("JOBHERD_RESTART_POLICY", "Never".to_string()),
        ("JOBHERD_BACKOFF_LIMIT", "0".to_string()),
    ];
    env.extend(plan.map(|p| ("JOBHERD_PLAN", p.to_string())));
    env
}

const FAN: Row = Row {
    id: "fan",
    env: |failing| {
        let second = if failing {
            json!({"FAKE_HOLD": "fail", "FAKE_EXIT": "1"})
        } else {
            json!({"FAKE_HOLD": "work"})
        };
        let params = json!([{"FAKE_MESSAGE": "zero"}, second, {"FAKE_HOLD": "work"}]);
        let mut env = base(None);
        env.push(("JOBHERD_PARAMS", params.to_string()));
        env
    },
    fails_by_itself: false,
    arrange: &[
        Act::Wait("{p}-0 succeeded"),
        Act::Wait("{p}-1 running"),
        Act::Wait("{p}-2 running"),
    ],
    active: &["1", "2"],
    by_point: &["0", "1", "2"],
    cancelled_by_point: &[],
    all: &["0", "1", "2"],
    finish: &["work"],
    code: 0,
    results: &[],
    wrote: &[("0", "zero")],
    fail: &[Act::Release("fail")],
    failed: &["1"],
    fail_fast_cancels: &["2"],
    retried: &["1"],
    retry_results: &[],
    holds: &["work", "fail"],
};

const PLAN: Row = Row {
    id: "plan",
    env: |failing| {
        let b = if failing {
            json!({"FAKE_HOLD": "fail", "FAKE_EXIT": "1", "FAKE_MESSAGE": "b saw ${JOBHERD_RESULT_A}"})
        } else {
            json!({"FAKE_HOLD": "work", "FAKE_MESSAGE": "b saw ${JOBHERD_RESULT_A}"})
        };
        base(Some(json!({"steps": [
            {"name": "a", "env": {"FAKE_MESSAGE": "A"}},
            {"name": "b", "depends_on": ["a"], "env": b},
            {"name": "c", "depends_on": ["b"], "env": {"FAKE_MESSAGE": "c saw ${JOBHERD_RESULT_B}"}},
            {"name": "side", "env": {"FAKE_HOLD": "work"}},
        ]})))
    },
    fails_by_itself: false,
    arrange: &[Act::Wait("{p}-b running"), Act::Wait("{p}-side running")],
    active: &["b", "side"],
    by_point: &["a", "b", "side"],
    cancelled_by_point: &[],
    all: &["a", "b", "c", "side"],
    finish: &["work"],
    code: 0,
    results: &[
        ("b", "JOBHERD_RESULT_A", "A"),
        ("c", "JOBHERD_RESULT_B", "b saw A"),
    ],
    wrote: &[("c", "c saw b saw A")],
    fail: &[Act::Release("fail")],
    failed: &["b"],
    fail_fast_cancels: &["side"],
    retried: &["b", "c"],
    retry_results: &[
        ("b", "JOBHERD_RESULT_A", "A"),
        ("c", "JOBHERD_RESULT_B", "b saw A"),
    ],
    holds: &["work", "fail"],
};

const PARAMS_FROM: Row = Row {
    id: "pf",
    env: |_| {
        let items = json!([{"I": "x"}, {"I": "y"}, {"I": "z"}]);
        base(Some(json!({"steps": [
            {"name": "list", "env": {"FAKE_MESSAGE": items.to_string()}},
            {"name": "work", "depends_on": ["list"], "params_from": "list",
             "env": {"FAKE_HOLD": "work", "FAKE_MESSAGE": "did ${I}"}},
            {"name": "merge", "depends_on": ["work"],
             "env": {"FAKE_MESSAGE": "merged ${JOBHERD_RESULT_WORK}"}},
        ]})))
    },
    fails_by_itself: false,
    arrange: &[
        Act::Wait("{p}-work-0 running"),
        Act::Wait("{p}-work-1 running"),
        Act::Wait("{p}-work-2 running"),
    ],
    active: &["work-0", "work-1", "work-2"],
    by_point: &["list", "work-0", "work-1", "work-2"],
    cancelled_by_point: &[],
    all: &["list", "merge", "work-0", "work-1", "work-2"],
    finish: &["work"],
    code: 0,
    results: &[
        ("work-1", "I", "y"),
        (
            "merge",
            "JOBHERD_RESULT_WORK",
            r#"["did x","did y","did z"]"#,
        ),
    ],
    wrote: &[("merge", r#"merged ["did x","did y","did z"]"#)],
    fail: &[Act::Delete("work-1")],
    failed: &["work-1"],
    fail_fast_cancels: &["work-0", "work-2"],
    retried: &["merge", "work-1"],
    retry_results: &[
        ("work-1", "I", "y"),
        (
            "merge",
            "JOBHERD_RESULT_WORK",
            r#"["did x","did y","did z"]"#,
        ),
    ],
    holds: &["work"],
};

const ALWAYS: Row = Row {
    id: "always",
    env: |failing| {
        let exit = if failing { "1" } else { "0" };
        let mut env = base(Some(json!({"steps": [
            {"name": "pre", "env": {"FAKE_MESSAGE": "P"}},
            {"name": "load", "env": {"FAKE_HOLD": "load", "FAKE_EXIT": exit}},
            {"name": "slow", "env": {"FAKE_HOLD": "slow"}},
            {"name": "notify", "depends_on": ["pre", "load", "slow"], "when": "always",
             "env": {"FAKE_HOLD": "notify", "FAKE_MESSAGE": "notified with ${JOBHERD_RESULT_PRE}"}},
        ]})));
        env.push(("JOBHERD_FAIL_FAST", "true".to_string()));
        env
    },
    fails_by_itself: true,
    arrange: &[
        Act::Wait("{p}-pre succeeded"),
        Act::Wait("{p}-slow running"),
        Act::Wait("{p}-load running"),
        Act::Release("load"),
        Act::Wait("{p}-slow cancelled"),
        Act::Wait("{p}-notify running"),
    ],
    active: &["notify"],
    by_point: &["load", "notify", "pre", "slow"],
    cancelled_by_point: &["slow"],
    all: &["load", "notify", "pre", "slow"],
    finish: &["notify"],
    code: 1,
    results: &[("notify", "JOBHERD_RESULT_PRE", "P")],
    wrote: &[("notify", "notified with P")],
    fail: &[],
    failed: &["load"],
    fail_fast_cancels: &[],
    retried: &["load", "notify", "slow"],
    retry_results: &[("notify", "JOBHERD_RESULT_PRE", "P")],
    holds: &["load", "slow", "notify"],
};

/// What happens to a run at its point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Sigkill,
    Eviction,
    Sigterm,
    Timeout,
    FailFast,
    ApiRestart,
    ExpiredWatch,
    HangingApi,
    LastFailed,
}

impl Column {
    fn id(self) -> &'static str {
        match self {
            Column::Sigkill => "kill",
            Column::Eviction => "evict",
            Column::Sigterm => "term",
            Column::Timeout => "late",
            Column::FailFast => "ff",
            Column::ApiRestart => "down",
            Column::ExpiredWatch => "gone",
            Column::HangingApi => "hang",
            Column::LastFailed => "retry",
        }
    }

    /// The CronJob as this column needs it: a stopped run that is not tried again.
    fn cronjob(self) -> fn(String) -> String {
        match self {
            Column::Sigterm | Column::HangingApi => {
                |y| y.replace("backoffLimit: 2", "backoffLimit: 0")
            }
            _ => |y| y,
        }
    }
}

/// What a cell must find recorded. Children by their suffix.
#[derive(Debug, Default)]
struct Expect {
    /// Each attempt's exit code, in order.
    exits: Vec<i64>,
    created: Vec<&'static str>,
    deleted: Vec<&'static str>,
    results: Vec<(&'static str, &'static str, &'static str)>,
    wrote: Vec<(&'static str, &'static str)>,
    /// The record's exit code, as the last attempt left it.
    record: i64,
}

/// One run of a cell: its cluster, its parent, where the report goes.
struct Cell {
    cluster: FakeCluster,
    parent: String,
    report: std::path::PathBuf,
}

impl Cell {
    fn start(row: &Row, column: Column, failing: bool, extra: &[(&'static str, &str)]) -> Cell {
        let cluster = cluster_with_cronjob(FakeCluster::builder(), column.cronjob());
        let parent = format!("{}-{}", row.id, column.id());
        let report = cluster.temp_dir().join("report.json");
        let mut env: Vec<(String, String)> = (row.env)(failing)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.push((
            "JOBHERD_REPORT_FILE".into(),
            report.to_string_lossy().into(),
        ));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        start_parent(&cluster, &parent, &env);
        Cell {
            cluster,
            parent,
            report,
        }
    }

    fn name(&self, child: &str) -> String {
        format!("{}-{child}", self.parent)
    }

    /// Does `acts` against the parent's attempt `n`.
    fn act(&self, n: usize, acts: &[Act]) {
        for act in acts {
            match *act {
                Act::Wait(text) => {
                    wait_for_log(
                        &self.cluster,
                        &self.parent,
                        n,
                        &text.replace("{p}", &self.parent),
                    );
                }
                Act::Release(hold) => self.cluster.release(hold),
                Act::Delete(child) => assert!(self.cluster.delete(
                    Kind::Job,
                    NS,
                    &self.name(child),
                    Propagation::Background
                )),
            }
        }
    }

    fn release(&self, holds: &[&str]) {
        for hold in holds {
            self.cluster.release(hold);
        }
    }

    /// Waits until attempt `n` adopted each of `children`.
    fn adopted(&self, n: usize, children: &[&str]) {
        for child in children {
            let line = format!("{} adopted", self.name(child));
            wait_for_log(&self.cluster, &self.parent, n, &line);
        }
    }

    /// Asserts what the cluster recorded of the parent and its children.
    fn check(&self, expect: &Expect) {
        let attempts = attempts(&self.cluster, &self.parent);
        let exits: Vec<i64> = attempts.iter().map(|a| a.exit.unwrap_or(-1)).collect();
        let logs = || {
            attempts
                .iter()
                .map(|a| format!("--- {} (exit {:?})\n{}", a.pod, a.exit, a.log))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(exits, expect.exits, "each attempt's exit code:\n{}", logs());
        let names = |suffixes: &[&str]| -> Vec<String> {
            let set: BTreeSet<String> = suffixes.iter().map(|c| self.name(c)).collect();
            set.into_iter().collect()
        };
        let children = Children::of(&self.cluster);
        assert_eq!(
            children.created,
            names(&expect.created),
            "each child created once:\n{}",
            logs()
        );
        assert_eq!(
            children.deleted,
            names(&expect.deleted),
            "the children deleted:\n{}",
            logs()
        );
        // Adopted children are neither created again (AlreadyExists) nor looked up one by one.
        let per_child = self.cluster.requests().into_iter().filter(|r| {
            r.user == PARENT_ACCOUNT
                && r.resource == "jobs"
                && r.subresource.is_empty()
                && ((r.verb == "create" && r.status == 409)
                    || (r.verb == "get" && r.name != self.parent))
        });
        let per_child: Vec<String> = per_child
            .map(|r| format!("{} {}", r.verb, r.path))
            .collect();
        assert!(per_child.is_empty(), "{per_child:?}");
        for (child, var, value) in &expect.results {
            let env = env_of(&self.cluster, &self.name(child));
            assert_eq!(env[var], *value, "{child}'s {var}: {env}");
        }
        for (child, message) in &expect.wrote {
            assert_eq!(message_of(&self.cluster, &self.name(child)), *message);
        }
        let records = records(&self.cluster, &self.parent);
        let last = records
            .last()
            .unwrap_or_else(|| panic!("no record:\n{}", logs()));
        assert_eq!(last["exit_code"], expect.record, "the record: {last}");
        assert!(last["moved"].is_null(), "the last record: {last}");
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(&self.report).expect("the JSON report was written"),
        )
        .expect("the report is JSON");
        assert_eq!(report["exit_code"], expect.record, "the report: {report}");
    }
}

fn suffixes(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let set: BTreeSet<&'static str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    set.into_iter().collect()
}

/// A run to the end, after its point: what a run that nothing disturbed records.
fn to_the_end(row: &Row, exits: Vec<i64>) -> Expect {
    Expect {
        exits,
        created: row.all.to_vec(),
        deleted: row.cancelled_by_point.to_vec(),
        results: row.results.to_vec(),
        wrote: row.wrote.to_vec(),
        record: row.code,
    }
}

/// A run stopped at its point with `code`: what is active is deleted, nothing more is created.
fn stopped(row: &Row, exits: Vec<i64>, code: i64) -> Expect {
    let before: Vec<_> = row
        .results
        .iter()
        .filter(|(c, _, _)| row.by_point.contains(c))
        .copied()
        .collect();
    Expect {
        exits,
        created: row.by_point.to_vec(),
        deleted: suffixes(&[row.cancelled_by_point, row.active]),
        results: before,
        wrote: Vec::new(),
        record: code,
    }
}

/// The cell `row` × `column`.
fn cell(row: &Row, column: Column) {
    match column {
        Column::LastFailed => return last_failed(row),
        Column::FailFast if !row.fails_by_itself => return fail_fast(row),
        _ => {}
    }
    let extra: &[(&str, &str)] = match column {
        Column::Timeout => &[("JOBHERD_TIMEOUT", "1h")],
        _ => &[],
    };
    let cell = Cell::start(row, column, row.fails_by_itself, extra);
    cell.act(0, row.arrange);
    let (cluster, parent) = (&cell.cluster, cell.parent.as_str());
    let expect = match column {
        Column::Sigkill => {
            kill_parent(cluster);
            cell.adopted(1, row.active);
            cell.release(row.finish);
            wait_until_finished(cluster, parent);
            to_the_end(row, vec![137, row.code])
        }
        Column::Eviction => {
            assert!(cluster.evict(NS, &attempts(cluster, parent)[0].pod));
            let moved = wait_for_end(cluster, parent, 0);
            assert!(moved.log.contains("jobherd moving"), "{}", moved.log);
            let first = records(cluster, parent);
            assert_eq!(
                first.first().map(|r| r["moved"].clone()),
                Some(json!("EvictionByEvictionAPI")),
                "{first:?}"
            );
            cell.adopted(1, row.active);
            cell.release(row.finish);
            wait_until_finished(cluster, parent);
            to_the_end(row, vec![143, row.code])
        }
        Column::Sigterm => {
            delete_parent_pod(&cell);
            let ended = wait_for_end(cluster, parent, 0);
            cancelled(&cell, &ended.log, row.active, "terminated (SIGTERM)");
            stopped(row, vec![143], 143)
        }
        Column::Timeout => {
            let two_hours = Duration::from_secs(2 * 3600);
            assert!(cluster.backdate(Kind::Job, NS, parent, two_hours));
            kill_parent(cluster);
            let ended = wait_for_end(cluster, parent, 1);
            cancelled(&cell, &ended.log, row.active, "JOBHERD_TIMEOUT passed");
            wait_until_finished(cluster, parent);
            stopped(row, vec![137, 3], 3)
        }
        Column::FailFast => {
            cell.release(row.finish);
            wait_until_finished(cluster, parent);
            to_the_end(row, vec![row.code])
        }
        Column::ApiRestart => {
            cluster.stop();
            cell.release(row.finish);
            cluster.restart();
            wait_until_finished(cluster, parent);
            to_the_end(row, vec![row.code])
        }
        Column::ExpiredWatch => {
            cluster.compact();
            let compacted = Instant::now();
            cluster.drop_watches();
            cell.release(row.finish);
            wait_until_finished(cluster, parent);
            let relisted = cluster.requests().iter().any(|r| {
                r.user == PARENT_ACCOUNT
                    && r.verb == "list"
                    && r.resource == "jobs"
                    && r.at > compacted
                    && r.label_selector().is_some()
            });
            assert!(relisted, "the parent re-listed its children after the 410");
            to_the_end(row, vec![row.code])
        }
        Column::HangingApi => return hanging_api(row, cell),
        Column::LastFailed => unreachable!("handled above"),
    };
    cell.check(&expect);
}

/// SIGKILL, as the OOM killer or a lost node: no SIGTERM, no last word.
fn kill_parent(cluster: &FakeCluster) {
    // SAFETY: kill(2) on a process the fake cluster started; no memory is touched.
    let rc = unsafe { libc::kill(parent_pid(cluster) as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
}

/// `kubectl delete pod`: a SIGTERM that is no disruption.
fn delete_parent_pod(cell: &Cell) {
    let pod = attempts(&cell.cluster, &cell.parent)[0].pod.clone();
    assert!(
        cell.cluster
            .delete(Kind::Pod, NS, &pod, Propagation::Background)
    );
}

/// Each of `children` was reported cancelled, saying why.
fn cancelled(cell: &Cell, log: &str, children: &[&str], why: &str) {
    for child in children {
        let name = cell.name(child);
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("{name} cancelled")))
            .unwrap_or_else(|| panic!("no `{name} cancelled` line:\n{log}"));
        assert!(line.contains(why), "{line}");
    }
}

/// The row's child fails with `JOBHERD_FAIL_FAST`: the others active are cancelled, the rest
/// is not created.
fn fail_fast(row: &Row) {
    let cell = Cell::start(
        row,
        Column::FailFast,
        true,
        &[("JOBHERD_FAIL_FAST", "true")],
    );
    cell.act(0, row.arrange);
    cell.act(0, row.fail);
    let finished = wait_until_finished(&cell.cluster, &cell.parent);
    assert_eq!(finished, "Failed");
    let ended = wait_for_end(&cell.cluster, &cell.parent, 0);
    for child in row.failed {
        let line = format!("{} failed", cell.name(child));
        assert!(ended.log.contains(&line), "{line}:\n{}", ended.log);
    }
    cancelled(
        &cell,
        &ended.log,
        row.fail_fast_cancels,
        "JOBHERD_FAIL_FAST",
    );
    let before: Vec<_> = row
        .results
        .iter()
        .filter(|(c, _, _)| row.by_point.contains(c))
        .copied()
        .collect();
    let mut deleted = suffixes(&[row.fail_fast_cancels, row.cancelled_by_point]);
    // A child failed by deleting its Job was deleted too.
    if matches!(row.fail.first(), Some(Act::Delete(_))) {
        deleted = suffixes(&[&deleted, row.failed]);
    }
    cell.check(&Expect {
        exits: vec![1],
        created: row.by_point.to_vec(),
        deleted,
        results: before,
        wrote: Vec::new(),
        record: 1,
    });
}

/// Every request stalls when the SIGTERM comes: the stop gives up on its deletes in time, and
/// jobherd exits 143 itself (no SIGKILL at the end of the 30 s grace period) with its summary
/// printed and in its termination message.
fn hanging_api(row: &Row, cell: Cell) {
    let (cluster, parent) = (&cell.cluster, cell.parent.as_str());
    cluster.stall(Duration::from_secs(120), 1_000_000);
    delete_parent_pod(&cell);
    let ended = wait_for_end(cluster, parent, 0);
    cluster.clear_faults();
    assert_eq!(ended.exit, Some(143), "{}", ended.log);
    cancelled(
        &cell,
        &ended.log,
        row.active,
        "its delete was not confirmed within the 18s the stop may take",
    );
    assert!(
        ended.message.starts_with("jobherd interrupted: "),
        "the termination message: {:?}",
        ended.message
    );
    let summary = ended.message.trim();
    assert!(
        ended.log.lines().any(|l| l.trim() == summary),
        "the summary {summary:?} printed:\n{}",
        ended.log
    );
    assert_eq!(attempts(cluster, parent).len(), 1);
}

/// The run fails; a run of the CronJob with `JOBHERD_RETRY=last-failed` creates only what did
/// not succeed, and its dependants get what the first run's children gave.
fn last_failed(row: &Row) {
    let cell = Cell::start(row, Column::LastFailed, true, &[]);
    cell.act(0, row.arrange);
    cell.act(0, row.fail);
    cell.release(row.finish);
    cell.release(row.holds);
    assert_eq!(wait_until_finished(&cell.cluster, &cell.parent), "Failed");
    let first = Children::of(&cell.cluster).created;

    let again = format!("{}-again", cell.parent);
    let mut env: Vec<(String, String)> = (row.env)(false)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("JOBHERD_RETRY".into(), "last-failed".into()));
    start_parent(&cell.cluster, &again, &env);
    assert_eq!(wait_until_finished(&cell.cluster, &again), "Complete");
    let retry = wait_for_end(&cell.cluster, &again, 0);
    assert_eq!(retry.exit, Some(0), "{}", retry.log);
    assert!(
        retry
            .log
            .contains(&format!("retrying run {}: ", cell.parent)),
        "{}",
        retry.log
    );
    let created: Vec<String> = Children::of(&cell.cluster)
        .created
        .into_iter()
        .filter(|c| !first.contains(c))
        .collect();
    let expected: BTreeSet<String> = row.retried.iter().map(|c| format!("{again}-{c}")).collect();
    assert_eq!(
        created,
        expected.into_iter().collect::<Vec<_>>(),
        "{}",
        retry.log
    );
    for (child, var, value) in row.retry_results {
        let env = env_of(&cell.cluster, &format!("{again}-{child}"));
        assert_eq!(env[var], *value, "{child}'s {var}: {env}");
    }
    let record = records(&cell.cluster, &again);
    assert_eq!(
        record.last().map(|r| r["exit_code"].clone()),
        Some(json!(0))
    );
}

/// One module per row, one test per column: `fan::sigkill`, `always::hanging_api`, ...
macro_rules! row {
    ($module:ident, $row:expr, [$($column:ident => $variant:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $column() {
                    super::cell(&$row, super::Column::$variant);
                }
            )*
        }
    };
}

row!(fan, super::FAN, [
    sigkill => Sigkill, eviction => Eviction, sigterm => Sigterm, timeout => Timeout,
    fail_fast => FailFast, api_restart => ApiRestart, expired_watch => ExpiredWatch,
    hanging_api => HangingApi, last_failed => LastFailed,
]);
row!(plan, super::PLAN, [
    sigkill => Sigkill, eviction => Eviction, sigterm => Sigterm, timeout => Timeout,
    fail_fast => FailFast, api_restart => ApiRestart, expired_watch => ExpiredWatch,
    last_failed => LastFailed,
]);
row!(params_from, super::PARAMS_FROM, [
    sigkill => Sigkill, eviction => Eviction, sigterm => Sigterm, timeout => Timeout,
    fail_fast => FailFast, api_restart => ApiRestart, expired_watch => ExpiredWatch,
    last_failed => LastFailed,
]);
row!(always, super::ALWAYS, [
    sigkill => Sigkill, eviction => Eviction, sigterm => Sigterm, timeout => Timeout,
    fail_fast => FailFast, api_restart => ApiRestart, expired_watch => ExpiredWatch,
    hanging_api => HangingApi, last_failed => LastFailed,
]);
