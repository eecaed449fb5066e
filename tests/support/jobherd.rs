//! Runs the real `jobherd` binary against a [`FakeCluster`], the way a user would: through a
//! kubeconfig, with a clean environment, capturing stdout and stderr as they come.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fake::{FakeCluster, Parent};

/// Variables that must not leak from the developer's machine into a test run.
const SCRUBBED_PREFIXES: &[&str] = &["JOBHERD_", "KUBERNETES_SERVICE_", "RUST_LOG"];
const SCRUBBED: &[&str] = &[
    "POD_NAME",
    "POD_NAMESPACE",
    "KUBECONFIG",
    "HOME",
    "HOSTNAME",
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl FakeCluster {
    /// A `jobherd` command pointed at this cluster.
    pub fn jobherd(&self) -> Jobherd {
        Jobherd {
            kubeconfig: self.kubeconfig_path().to_path_buf(),
            env: Vec::new(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            home: None,
        }
    }
}

/// A `jobherd` invocation being prepared.
pub struct Jobherd {
    kubeconfig: PathBuf,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    timeout: Duration,
    home: Option<PathBuf>,
}

impl Jobherd {
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Run as if inside the parent's pod: sets `POD_NAME`, `POD_NAMESPACE` and `HOSTNAME`.
    pub fn in_pod(self, parent: &Parent) -> Self {
        self.env("POD_NAME", &parent.pod_name)
            .env("POD_NAMESPACE", &parent.namespace)
            .env("HOSTNAME", &parent.pod_name)
    }

    /// How long `run` and `Running::wait` wait before killing the process (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Use this HOME instead of a fresh empty one.
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    pub fn spawn(self) -> Running {
        let home = match self.home {
            Some(h) => Home::Given(h),
            None => Home::Temp(tempfile::tempdir().expect("temp HOME for jobherd")),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobherd"));
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if SCRUBBED.contains(&name.as_ref())
                || SCRUBBED_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the jobherd binary");
        let stdout = Stream::default();
        let stderr = Stream::default();
        let readers = vec![
            stdout.reader(child.stdout.take().expect("piped stdout")),
            stderr.reader(child.stderr.take().expect("piped stderr")),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
            timeout: self.timeout,
            _home: home,
            started: Instant::now(),
        }
    }

    /// Runs to the end; kills it and panics with the output so far after the timeout.
    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

enum Home {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl Home {
    fn path(&self) -> &std::path::Path {
        match self {
            Home::Temp(t) => t.path(),
            Home::Given(p) => p,
        }
    }
}

/// Output collected by a background thread, with a condvar to wait for text.
#[derive(Clone, Default)]
struct Stream(Arc<(Mutex<(String, bool)>, Condvar)>);

impl Stream {
    fn reader(&self, mut from: impl Read + Send + 'static) -> JoinHandle<()> {
        let s = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = from.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*s.0;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                cv.notify_all();
            }
        })
    }

    fn text(&self) -> String {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Waits until `pred(text)` holds or the stream closes or the timeout passes.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(&g.0) {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= end {
                return false;
            }
            g = cv
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running `jobherd` process.
pub struct Running {
    child: Child,
    stdout: Stream,
    stderr: Stream,
    readers: Vec<JoinHandle<()>>,
    timeout: Duration,
    _home: Home,
    started: Instant,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until stdout contains `text`; panics with the output so far if it does not.
    pub fn wait_for_stdout(&mut self, text: &str, timeout: Duration) {
        if !self.stdout.wait_for(timeout, |s| s.contains(text)) {
            self.fail(&format!("stdout never contained {text:?}"));
        }
    }

    /// Waits until stderr contains `text`; panics with the output so far if it does not.
    pub fn wait_for_stderr(&mut self, text: &str, timeout: Duration) {
        if !self.stderr.wait_for(timeout, |s| s.contains(text)) {
            self.fail(&format!("stderr never contained {text:?}"));
        }
    }

    /// Waits until stdout or stderr contains `text` (log lines may go to either).
    pub fn wait_for_output(&mut self, text: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.stdout().contains(text) || self.stderr().contains(text) {
                return;
            }
            self.stdout
                .wait_for(Duration::from_millis(20), |s| s.contains(text));
        }
        self.fail(&format!("output never contained {text:?}"));
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&mut self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "jobherd: {why} (after {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.started.elapsed(),
            self.stdout(),
            self.stderr()
        );
    }

    /// Waits for exit (up to the timeout, then kills and panics) and returns the output.
    pub fn wait(mut self) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let end = self.started + self.timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => self.fail(&format!("did not exit within {:?}", self.timeout)),
                Err(e) => self.fail(&format!("wait failed: {e}")),
            }
        };
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout(),
            stderr: self.stderr(),
            duration: self.started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panics must not leave a jobherd behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished `jobherd` left.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Output {
    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Prints everything, for `assert!(..., "{out}")`.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {:?} signal {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.signal, self.duration, self.stdout, self.stderr
        )
    }
}
