//! Tools from Debian packages that some tests drive (Chromium and its driver, the Prometheus
//! Pushgateway, Python with Selenium from PyPI). `.ci/run` installs them; elsewhere a test that
//! cannot find one says so loudly on the console and does not run, and in CI (`CI=true`) it
//! fails instead.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The program at `path` (or `$env` when set), if it is there.
pub fn program(env: &str, path: &str, package: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var(env).unwrap_or_else(|_| path.to_string()));
    if path.is_file() {
        return Some(path);
    }
    missing(&format!(
        "{} (Debian package {package}; `apt-get install -y {package}`, or set {env})",
        path.display()
    ));
    None
}

/// A Python that can `import module` (the first `python3` on PATH, or `$JOBHERD_TEST_PYTHON`).
pub fn python_with(module: &str, pip: &str) -> Option<PathBuf> {
    let python = PathBuf::from(
        std::env::var("JOBHERD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string()),
    );
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    missing(&format!(
        "{} with the Python module {module} (`pip install {pip}`, as .ci/requirements.txt; or set JOBHERD_TEST_PYTHON)",
        python.display()
    ));
    None
}

/// Says what is missing: a failure in CI, a loud line elsewhere (written past the test
/// harness's capture, so it shows even when the test passes).
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and this test needs {what}");
    }
    let line = format!(
        "\n!!!! NOT RUN: {} needs {what}; .ci/run installs it !!!!\n",
        std::thread::current().name().unwrap_or("a test")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}
