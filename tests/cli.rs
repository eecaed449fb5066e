//! The command line (SPEC §11): `--help`, `--help-all`, `--version` and anything else, on the
//! real binary, before any variable is read and without a request to the cluster.

mod support;

use support::FakeCluster;

/// Where the committed reference is, and how it is made.
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");
use jobherd::reference::REGENERATE;

#[test]
fn help_prints_a_short_usage_even_with_a_bad_variable() {
    let cluster = FakeCluster::start();
    for arg in ["--help", "-h", "help"] {
        // A typo in a variable would exit 2; arguments come first.
        let out = cluster
            .jobherd()
            .env("JOBHERD_PARALELISM", "2")
            .arg(arg)
            .run();
        assert_eq!(out.code, Some(0), "{arg}: {out}");
        for expected in [
            "JOBHERD_IMAGE",
            "JOBHERD_PARALLELISM",
            "--help-all",
            "--version",
            "docs/reference.md",
            "JOBHERD_DRY_RUN=client",
        ] {
            assert!(out.stdout.contains(expected), "{arg}: no {expected}: {out}");
        }
        assert!(out.stdout.lines().count() < 60, "short: {out}");
        assert!(out.stderr.is_empty(), "{out}");
    }
    assert!(cluster.requests().is_empty(), "{:?}", cluster.requests());
}

#[test]
fn help_all_prints_the_committed_reference() {
    let cluster = FakeCluster::start();
    let committed = std::fs::read_to_string(REFERENCE).unwrap_or_default();
    for args in [&["--help-all"][..], &["help", "variables"][..]] {
        let mut jobherd = cluster.jobherd().env("JOBHERD_IMAGE", "");
        for a in args {
            jobherd = jobherd.arg(*a);
        }
        let out = jobherd.run();
        assert_eq!(out.code, Some(0), "{args:?}: {out}");
        assert!(
            out.stdout == committed,
            "docs/reference.md differs from what `jobherd {}` prints: regenerate it with `{REGENERATE}` and commit it",
            args.join(" ")
        );
    }
    assert!(committed.contains("| `JOBHERD_PARALLELISM` |"));
    assert!(cluster.requests().is_empty(), "{:?}", cluster.requests());
}

#[test]
fn version_names_the_version_the_commit_and_the_kubernetes_api() {
    let cluster = FakeCluster::start();
    for arg in ["--version", "-V"] {
        let out = cluster.jobherd().arg(arg).run();
        assert_eq!(out.code, Some(0), "{out}");
        let line = out.stdout.trim_end();
        assert_eq!(out.stdout.lines().count(), 1, "{out}");
        let expected = format!("jobherd {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(line.starts_with(&expected), "{line}");
        let (commit, rest) = line[expected.len()..].split_once(", ").unwrap_or_default();
        assert!(
            commit == "unknown"
                || commit.chars().all(|c| c.is_ascii_hexdigit()) && commit.len() >= 7,
            "{line}"
        );
        // The minor version of k8s-openapi's v1_NN feature.
        let api = rest
            .strip_prefix("built for the Kubernetes 1.")
            .and_then(|r| r.strip_suffix(" API)"))
            .unwrap_or_default();
        assert!(api.parse::<u32>().is_ok_and(|m| m >= 21), "{line}");
    }
    assert!(cluster.requests().is_empty(), "{:?}", cluster.requests());
}

#[test]
fn any_other_argument_exits_2_naming_it() {
    let cluster = FakeCluster::start();
    for (args, named) in [
        (&["--frobnicate"][..], "\"--frobnicate\""),
        (&["help", "plans"][..], "\"plans\""),
        (&["--version", "--help"][..], "\"--help\""),
    ] {
        let mut jobherd = cluster.jobherd().env("JOBHERD_IMAGE", "busybox");
        for a in args {
            jobherd = jobherd.arg(*a);
        }
        let out = jobherd.run();
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(
            out.stderr
                .starts_with(&format!("jobherd: unknown argument {named}")),
            "{args:?}: {out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert!(cluster.requests().is_empty(), "{:?}", cluster.requests());
}
