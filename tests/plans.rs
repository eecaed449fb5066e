//! End-to-end behaviour of plans (SPEC §4): dependencies, phases, skips, and Jobernetes files
//! run unchanged, with the real binary against the fake cluster.

mod support;

use std::time::Duration;

use support::{FakeCluster, Kind, Output};

const NS: &str = "default";

fn fixture(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The line number of the first stdout line starting with `child` and containing `what`.
fn line_of(out: &Output, child: &str, what: &str) -> usize {
    out.stdout
        .lines()
        .position(|l| l.starts_with(&format!("{child} ")) && l.contains(what))
        .unwrap_or_else(|| panic!("no line `{child} ... {what}`: {out}"))
}

/// Asserts that `child` was created only after every one of `deps` succeeded.
fn created_after(out: &Output, child: &str, deps: &[&str]) {
    let created = line_of(out, child, " created");
    for dep in deps {
        assert!(
            line_of(out, dep, " succeeded") < created,
            "{child} created before {dep} succeeded: {out}"
        );
    }
}

#[test]
fn jobernetes_simple_example_runs_unchanged() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/simple/jobermodel.yaml"),
        )
        .env("JOBHERD_NAME_PREFIX", "simple")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let (a, b, c) = ("simple-sleep-one", "simple-dream-a", "simple-dream-b");
    created_after(&out, b, &[a]);
    created_after(&out, c, &[a]);
    let wakeups: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("simple-wakeup-") && l.contains(" created"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        wakeups.len(),
        2,
        "type: directory runs every manifest: {out}"
    );
    for w in &wakeups {
        created_after(&out, w, &[b, c]);
    }
    assert_eq!(cluster.jobs_created(), 5);
    // jobernetes_config.cleanup: true
    assert!(cluster.jobs(NS).is_empty(), "cleanup deleted the children");
    assert!(out.stdout.contains("5 succeeded of 5"), "{out}");
}

#[test]
fn jobernetes_tree_starts_each_job_as_soon_as_its_dependencies_succeed() {
    // The long A (tree-dream-a) holds until B's short follow-up has started: a jobherd that
    // waited for the whole phase would never get there.
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/tree/jobermodel.yaml"),
        )
        .env("JOBHERD_NAME_PREFIX", "tree")
        .spawn();
    h.wait_for_stdout("tree-sleep-hickup-b created", Duration::from_secs(30));
    cluster.release("dream-a");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    created_after(&out, "tree-dream-a", &["tree-sleep-one"]);
    created_after(&out, "tree-dream-b", &["tree-sleep-one"]);
    created_after(&out, "tree-sleep-hickup-a", &["tree-dream-a"]);
    created_after(&out, "tree-sleep-hickup-b", &["tree-dream-b"]);
    // Not phase by phase: B's short follow-up starts while the long A is still running, and
    // both branches of the phase run at once.
    assert!(
        line_of(&out, "tree-sleep-hickup-b", " created")
            < line_of(&out, "tree-dream-a", " succeeded"),
        "{out}"
    );
    assert!(
        line_of(&out, "tree-dream-b", " created") < line_of(&out, "tree-dream-a", " succeeded"),
        "{out}"
    );
    for w in [
        "tree-wakeup-phase-three-sleep-2a",
        "tree-wakeup-phase-three-sleep-3b",
    ] {
        created_after(
            &out,
            w,
            &[
                "tree-sleep-hickup-a",
                "tree-sleep-hickup-b",
                "tree-dream-a",
                "tree-dream-b",
            ],
        );
    }
    assert_eq!(cluster.jobs_created(), 7, "{out}");
    assert!(
        out.stdout.contains("DEPENDS ON"),
        "the table shows dependencies: {out}"
    );
}

/// Children in the order they were created.
fn created(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some("created"))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// The most children between their `created` and their final line at any point of stdout.
fn most_active(out: &Output) -> usize {
    let (mut active, mut most) = (0usize, 0);
    for line in out.stdout.lines() {
        match line.split(' ').nth(1) {
            Some("created") => active += 1,
            Some("succeeded" | "failed" | "cancelled") => active -= 1,
            _ => {}
        }
        most = most.max(active);
    }
    most
}

/// The Jobernetes repository's own model: its `jobernetes_config` holds `jobname`, which
/// Jobernetes ignores, and `parallelization: 0`, which it reads as no limit.
#[test]
fn jobernetes_repository_model_runs_unchanged() {
    // Before 1.31 (Complete/Failed only) and after (SuccessCriteriaMet/FailureTarget first).
    for version in [21, 33] {
        repository_model_runs_unchanged_at(version);
    }
}

fn repository_model_runs_unchanged_at(version: u32) {
    let cluster = FakeCluster::builder().version(version).start();
    let out = cluster
        .jobherd()
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/upstream/jobermodel.yaml"),
        )
        .env("JOBHERD_NAME_PREFIX", "up")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let mut names = created(&out);
    names.sort();
    assert_eq!(
        names,
        [
            "up-create-indices",
            "up-download-brahms",
            "up-download-crs",
            "up-enrichment-jobs-phase-three-sleep-20",
            "up-import-brahms",
            "up-import-crs",
        ],
        "named after the model's jobs, not the manifests' metadata.name: {out}"
    );
    assert_eq!(cluster.jobs_created(), 6);
    let phase_two = [
        "up-download-brahms",
        "up-import-brahms",
        "up-download-crs",
        "up-import-crs",
    ];
    for job in phase_two {
        created_after(&out, job, &["up-create-indices"]);
    }
    created_after(&out, "up-import-brahms", &["up-download-brahms"]);
    created_after(&out, "up-import-crs", &["up-download-crs"]);
    created_after(&out, "up-enrichment-jobs-phase-three-sleep-20", &phase_two);
    // No limit: both downloads run at once.
    assert!(
        line_of(&out, "up-download-crs", " created")
            < line_of(&out, "up-download-brahms", " succeeded"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("plan: jobernetes_config.jobname is ignored, as Jobernetes ignores it"),
        "{out}"
    );
    // cleanup: True, and every child succeeded.
    assert!(cluster.jobs(NS).is_empty(), "{out}");
}

const ETL_NS: &str = "nba-v2-production";

/// The ConfigMaps the model's Jobs mount, as its cluster has them: without them the kubelet
/// keeps their pods waiting to mount (`ContainerCreating`).
fn etl_cluster() -> FakeCluster {
    let cluster = FakeCluster::start();
    for (name, key) in [
        ("etl.nba.properties", "nba.properties"),
        ("mc-config", "config.json"),
    ] {
        cluster.create_raw(
            Kind::ConfigMap,
            serde_json::json!({"metadata": {"name": name, "namespace": ETL_NS}, "data": {key: ""}}),
        );
    }
    cluster
}

/// A real user's model: directories of `.yml` Jobs, dependencies on directory jobs,
/// `parallelization: 5` and its own namespace.
#[test]
fn etl_model_runs_at_most_parallelization_jobs_at_once() {
    let cluster = etl_cluster();
    let out = cluster
        .jobherd()
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/etl/jobermodel.yaml"),
        )
        .env("JOBHERD_NAME_PREFIX", "etl")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(created(&out).len(), 32, "{out}");
    let most = most_active(&out);
    assert!((2..=5).contains(&most), "{most} active at once: {out}");
    let brahms_l: Vec<String> = (1..=6)
        .flat_map(|i| {
            ["multimedia", "specimens"]
                .map(|kind| format!("etl-import-brahms-l-brahms-l{i}-{kind}"))
        })
        .collect();
    let brahms_l: Vec<&str> = brahms_l.iter().map(String::as_str).collect();
    created_after(&out, "etl-import-brahms-u-brahms-u-specimens", &brahms_l);
    created_after(
        &out,
        "etl-import-brahms-wag-brahms-wag-multimedia",
        &[
            "etl-import-brahms-u-brahms-u-multimedia",
            "etl-import-brahms-u-brahms-u-specimens",
        ],
    );
    created_after(
        &out,
        "etl-enrich-speciments-with-multimedia",
        &["etl-enrich-specimen-with-tax", "etl-import-nsr"],
    );
    created_after(&out, "etl-force-merge", &["etl-log-extender-log-extender"]);
    // cleanup: False keeps them, in the model's namespace, with Jobernetes' labels.
    let jobs = cluster.jobs(ETL_NS);
    assert_eq!(jobs.len(), 32);
    let job = cluster
        .job(ETL_NS, "etl-import-brahms-l-brahms-l3-specimens")
        .unwrap();
    let labels = job.metadata.labels.unwrap();
    assert_eq!(labels["jobernetes_job_name"], "import_brahms_l");
    assert_eq!(labels["jobernetes_phase"], "1");
    assert_eq!(labels["jobernetes_exploded"], "True");
}

#[test]
fn jobherd_parallelism_wins_over_the_models_parallelization() {
    let cluster = etl_cluster();
    let out = cluster
        .jobherd()
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/etl/jobermodel.yaml"),
        )
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_PARALLELISM", "2")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let most = most_active(&out);
    assert!((1..=2).contains(&most), "{most} active at once: {out}");
}

#[test]
fn etl_model_dry_run_lists_every_job_of_its_directories() {
    let out = FakeCluster::start()
        .jobherd()
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/etl/jobermodel.yaml"),
        )
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 32);
    assert_eq!(names[0], "etl-create-indices");
    assert_eq!(names[31], "etl-force-merge");
    for dir in ["brahms-amd", "brahms-u", "brahms-wag"] {
        for kind in ["multimedia", "specimens"] {
            // `<prefix>-<job>-<file stem>`: job import_brahms_amd, file brahms-amd-<kind>.yml.
            let name = format!("etl-import-{dir}-{dir}-{kind}");
            assert!(names.contains(&name.as_str()), "{name}: {names:?}");
        }
    }
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(
        pos("etl-import-brahms-l-brahms-l6-specimens")
            < pos("etl-import-brahms-u-brahms-u-multimedia")
    );
    assert!(pos("etl-import-nsr") < pos("etl-enrich-multimedia-with-tax"));
    for job in items {
        assert_eq!(job["metadata"]["namespace"], ETL_NS);
        // The manifests keep their own container, volumes and env.
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], "busybox:1.36");
        assert!(pod["volumes"].as_array().is_some_and(|v| !v.is_empty()));
    }
    assert!(
        !out.stdout.contains("un~"),
        "the editor's undo file is not a Job"
    );
}

#[test]
fn failed_step_skips_its_dependants_and_independent_branches_go_on() {
    let cluster = FakeCluster::start();
    let report = tempfile::NamedTempFile::new().unwrap();
    let plan = r#"{"steps": [
        {"name": "extract", "env": {"FAKE_EXIT": "1"}, "backoff_limit": 0},
        {"name": "transform", "depends_on": ["extract"]},
        {"name": "load", "depends_on": ["transform"]},
        {"name": "audit", "env": {"FAKE_RUN_MS": "300"}}
    ]}"#;
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_PLAN", plan)
        .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .contains("etl-transform skipped: DependencyFailed (dependency etl-extract failed)"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("etl-load skipped: DependencyFailed (dependency etl-transform skipped)"),
        "{out}"
    );
    assert!(out.stdout.contains("etl-audit succeeded"), "{out}");
    assert_eq!(cluster.jobs_created(), 2);
    assert_eq!(
        cluster.job_names(NS),
        ["etl-audit", "etl-extract"],
        "skipped steps are never created"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let load = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "load")
        .unwrap();
    assert_eq!(load["result"], "skipped");
    assert_eq!(load["depends_on"], serde_json::json!(["transform"]));
}

#[test]
fn fail_fast_stops_independent_branches_too() {
    let cluster = FakeCluster::start();
    let plan = r#"{"steps": [
        {"name": "a", "env": {"FAKE_EXIT": "1"}, "backoff_limit": 0},
        {"name": "b", "env": {"FAKE_RUN_MS": "20000"}},
        {"name": "c", "depends_on": ["b"]}
    ]}"#;
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "ff")
        .env("JOBHERD_PLAN", plan)
        .env("JOBHERD_FAIL_FAST", "true")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("ff-b cancelled"), "{out}");
    assert!(out.stdout.contains("ff-c skipped"), "{out}");
    assert!(cluster.job(NS, "ff-b").is_none());
}

#[test]
fn fanned_out_step_must_fully_succeed_before_its_dependants() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "ph")
        .env("JOBHERD_PLAN_FILE", fixture("plans/phases.json"))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let fetchers = [
        "ph-fetch-regions-0",
        "ph-fetch-regions-1",
        "ph-fetch-shards-0",
        "ph-fetch-shards-1",
        "ph-fetch-shards-2",
    ];
    for f in fetchers {
        created_after(&out, f, &["ph-setup"]);
    }
    created_after(&out, "ph-report", &fetchers);
    assert_eq!(cluster.jobs_created(), 7);
}

#[test]
fn invalid_plans_exit_2_and_create_nothing() {
    let cluster = FakeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n").unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, "steps:\n  - name: a\n    job_file: pod.yaml\n").unwrap();
    let cases = [
        (
            r#"{"steps":[{"name":"a"},{"name":"b","depends_on":["c"]}]}"#.to_string(),
            "depends on \"c\", which is not in the plan",
        ),
        (r#"{"steps":[{"name":"a"},{"name":"a"}]}"#.to_string(), "a"),
        (
            r#"{"steps":[{"name":"a","job_file":"/nonexistent/job.yaml"}]}"#.to_string(),
            "/nonexistent/job.yaml",
        ),
    ];
    for (inline, needle) in &cases {
        let out = cluster
            .jobherd()
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_PLAN", inline)
            .run();
        assert_eq!(out.code, Some(2), "{inline}: {out}");
        assert!(out.stderr.contains(needle), "{inline}: {out}");
    }
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PLAN_FILE", plan.to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("pod.yaml") && out.stderr.contains("v1 Pod"),
        "{out}"
    );
    assert!(cluster.requests().iter().all(|r| r.verb != "create"));
}

#[test]
fn dry_run_prints_plan_jobs_in_topological_order() {
    let out = FakeCluster::start()
        .jobherd()
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_NAME_PREFIX", "tree")
        .env(
            "JOBHERD_PLAN_FILE",
            fixture("jobernetes/tree/jobermodel.yaml"),
        )
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("tree-sleep-one") < pos("tree-dream-a"));
    assert!(pos("tree-dream-a") < pos("tree-sleep-hickup-a"));
    assert!(pos("tree-dream-b") < pos("tree-sleep-hickup-b"));
    assert!(pos("tree-sleep-hickup-b") < pos("tree-wakeup-phase-three-sleep-2a"));
    // The Jobernetes manifests keep their own image and command.
    let c = &list["items"][0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "busybox:1.36");
    assert_eq!(c["command"][0], "sleep");
}
