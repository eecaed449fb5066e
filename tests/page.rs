//! The page of a run (`JOBHERD_HTML_FILE`) in a real browser: the real binary runs a herd on
//! the fake cluster and writes its page; the page is served on loopback with Jenkins' default
//! Content-Security-Policy, and headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven through Selenium by `tests/browser/check_page.py`) opens it. It must log no CSP
//! violation, draw every bar where and as wide as its times say, and show a failed child of a
//! 100-child run without scrolling. Screenshots go to `target/screenshots/`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{FakeCluster, debian, secs};

/// What Jenkins sends with every file the HTML Publisher plugin serves, unless told otherwise.
const JENKINS_CSP: &str = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';";

/// Chromium, its driver, and a Python with Selenium; `None` (said loudly) when one is missing.
struct Browser {
    python: PathBuf,
}

impl Browser {
    fn find() -> Option<Browser> {
        debian::program("CHROMIUM", "/usr/bin/chromium", "chromium")?;
        debian::program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver")?;
        let python = debian::python_with("selenium", "selenium")?;
        Some(Browser { python })
    }

    /// Serves the page at `path`, opens it and checks it (see check_page.py); returns what it measured.
    /// Fails the test with every problem it found. The page and its screenshots are kept in
    /// `target/screenshots/` as `<shots>.html`, `<shots>.png` (the first screen), `<shots>-full.png`
    /// and `<shots>-top.png` (down to the plan: docs/see-a-run-etl.png is `etl-top.png`).
    fn check(&self, path: &Path, failed: Option<&str>, shots: &str) -> Value {
        let dir = screenshots();
        let url = format!(
            "{}/{}",
            serve(path.parent().unwrap()),
            path.file_name().unwrap().to_string_lossy()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_page.py");
        let mut cmd = Command::new(&self.python);
        cmd.arg(script).args(["--url", &url]);
        cmd.arg("--screenshot")
            .arg(dir.join(format!("{shots}.png")));
        cmd.arg("--full-screenshot")
            .arg(dir.join(format!("{shots}-full.png")));
        cmd.arg("--top-screenshot")
            .arg(dir.join(format!("{shots}-top.png")));
        if let Some(name) = failed {
            cmd.args(["--failed", name]);
        }
        // Selenium never looks for drivers on the network: they are Debian's.
        cmd.env("SE_OFFLINE", "true");
        let out = cmd.output().expect("check_page.py runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let found: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "check_page.py said no JSON (exit {:?}):\n{stdout}\n{stderr}",
                out.status
            )
        });
        assert!(
            out.status.success() && found["problems"] == json!([]),
            "the page in Chromium: {:#}\n{stderr}",
            found["problems"]
        );
        found
    }
}

/// The page written at `path`, kept as `target/screenshots/<name>.html` to look at.
fn page(path: &Path, name: &str) -> String {
    let html = std::fs::read_to_string(path).expect("the page");
    std::fs::write(screenshots().join(format!("{name}.html")), &html).unwrap();
    html
}

fn screenshots() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves the files of `dir` on loopback, each with Jenkins' CSP; returns the base URL.
fn serve(dir: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut request = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // The headers, up to the empty line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = dir.join(path.trim_start_matches('/'));
            let response = match std::fs::read(&file) {
                Ok(body) if file.is_file() => [
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Security-Policy: {JENKINS_CSP}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes(),
                    body,
                ]
                .concat(),
                // The browser asks for an icon; Jenkins has one, this server says "none".
                _ if path == "/favicon.ico" => {
                    b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec()
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = (&stream).write_all(&response);
        }
    });
    base
}

/// The env of a child that runs `ms` milliseconds and exits `code` on every attempt.
fn child(ms: u32, code: u32) -> Value {
    json!({"FAKE_RUN_MS": ms.to_string(), "FAKE_EXIT": code.to_string()})
}

#[test]
fn a_failed_child_of_a_hundred_is_in_the_first_screen_under_jenkins_csp() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let cluster = FakeCluster::start();
    let site = cluster.temp_dir().join("site");
    let params: Vec<Value> = (0..100)
        .map(|i| child(50 + (i * 37 % 300), u32::from(i == 57)))
        .collect();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "wide")
        .env("JOBHERD_PARAMS", Value::from(params).to_string())
        .env("JOBHERD_PARALLELISM", "20")
        .env("JOBHERD_BACKOFF_LIMIT", "1")
        .env("JOBHERD_HTML_FILE", site.join("index.html"))
        .timeout(secs(120))
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let html = page(&site.join("index.html"), "hundred");
    assert!(html.contains("jobherd failed (exit 1)"), "{html}");
    assert!(html.contains("99 succeeded, 1 failed of 100 children"));
    let found = browser.check(&site.join("index.html"), Some("wide-57"), "hundred");
    assert!(found["bars"].as_u64().unwrap() >= 2, "{found}");
}

/// The README's ETL on a bad night: `sales-us` fails twice, so `merge` is skipped and
/// `revert` and `notify` run.
fn etl_plan() -> Value {
    let partitions = json!([
        {"P": "sales-eu", "FAKE_RUN_MS": "2600"},
        {"P": "sales-us", "FAKE_RUN_MS": "900", "FAKE_EXIT": "1"},
        {"P": "sales-apac", "FAKE_RUN_MS": "1700"},
    ]);
    json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": partitions.to_string(), "FAKE_RUN_MS": "800"}},
        {"name": "process", "depends_on": ["list"], "params_from": "list",
         "env": {"FAKE_MESSAGE": r#"{"partition":"${P}","rows":1200}"#}},
        {"name": "merge", "depends_on": ["process"], "env": child(1500, 0)},
        {"name": "revert", "depends_on": ["merge"], "when": "failed", "env": child(700, 0)},
        {"name": "notify", "depends_on": ["merge", "revert"], "when": "always",
         "env": child(300, 0)},
    ]})
}

#[test]
fn the_etl_examples_page_draws_its_plan_its_attempts_and_its_critical_path() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let cluster = FakeCluster::start();
    let site = cluster.temp_dir().join("site");
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl-28434560")
        .env("JOBHERD_BACKOFF_LIMIT", "1")
        // A pod per attempt: the failed partition's second attempt runs as long as its first.
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_PLAN", etl_plan().to_string())
        .env("JOBHERD_HTML_FILE", site.join("etl.html"))
        .timeout(secs(120))
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let html = page(&site.join("etl.html"), "etl");
    for part in [
        r#"data-step="process" data-state="failed""#,
        r#"data-step="merge" data-state="skipped""#,
        r#"data-step="revert" data-state="succeeded""#,
        r#"data-step="notify" data-state="succeeded""#,
        "process · 2 succeeded, 1 failed · on the critical path",
        r#"data-paint="failed attempt, retried""#,
    ] {
        assert!(html.contains(part), "{part} not on the page");
    }
    browser.check(
        &site.join("etl.html"),
        Some("etl-28434560-process-1"),
        "etl",
    );
}

#[test]
fn a_triggered_run_writes_its_page_on_the_callers_side() {
    let cluster = FakeCluster::start();
    let read = |f: &str| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f));
    cluster
        .kubectl_apply("rbac.yaml", &read("rbac.yaml").unwrap())
        .unwrap();
    cluster
        .kubectl_apply("cronjob.yaml", &read("cronjob.yaml").unwrap())
        .unwrap();
    let site = cluster.temp_dir().join("workspace/jobherd");
    let out = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "build-7")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"1200"}"#)
        // The children's Jobs stay, and with them their times (the CronJob deletes them).
        .env("JOBHERD_CLEANUP", "never")
        .env("JOBHERD_HTML_FILE", site.join("index.html"))
        .timeout(secs(120))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let html = page(&site.join("index.html"), "trigger");
    for part in [
        "jobherd succeeded (exit 0)",
        "parent Job build-7",
        "3 succeeded of 3 children",
        "the child Jobs' times as the cluster recorded them",
    ] {
        assert!(html.contains(part), "{part} not on the page");
    }
    for child in ["build-7-0", "build-7-1", "build-7-2"] {
        assert!(html.contains(&format!("<g id=\"t-{child}\"")), "{child}");
    }
    // The override was the trigger's own: the parent got no page to write in its pod.
    let parent = cluster
        .object(support::Kind::Job, "default", "build-7")
        .unwrap();
    assert!(!parent.to_string().contains("JOBHERD_HTML_FILE"));
    if let Some(browser) = Browser::find() {
        browser.check(&site.join("index.html"), None, "trigger");
    }
}
