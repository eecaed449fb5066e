//! The page and the metrics of a big run, measured in process: a finished run of N children
//! (one in a hundred failed after two attempts) with its timeline, as the reporter keeps them;
//! the time to render and write the page and its size; the time to encode a heartbeat's
//! metrics and to push them to Debian's Pushgateway on loopback, when it is installed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jobherd::child::Identity;
use jobherd::config::{FanOut, LogsMode, StepSettings};
use jobherd::outputs::Output;
use jobherd::report::metrics::{self, Pushgateway};
use jobherd::report::page::{self, About, Page};
use jobherd::report::timeline::{Mark, Timeline};
use jobherd::run::{ChildResult, Restored, Rules, Run};

/// Debian's Pushgateway, on a free loopback port; stopped when dropped.
pub struct Gateway {
    process: Child,
    pub url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub struct Outputs {
    pub gateway: Option<Gateway>,
}

impl Outputs {
    pub fn start() -> Outputs {
        let binary = "/usr/bin/prometheus-pushgateway";
        if !std::path::Path::new(binary).is_file() {
            println!(
                "(no {binary}: pushes are not measured; apt-get install prometheus-pushgateway)"
            );
            return Outputs { gateway: None };
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let process = Command::new(binary)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Pushgateway starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the Pushgateway never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Outputs {
            gateway: Some(Gateway {
                process,
                url: format!("http://127.0.0.1:{port}"),
            }),
        }
    }

    /// Prints one line of figures for a finished run of `n` children.
    pub fn measure(&self, n: usize) {
        let (run, timeline) = finished_run(n);
        let about = About {
            run_id: "bench".into(),
            namespace: "default".into(),
            parent: Some("Job bench".into()),
            started: Timestamp::now(),
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("index.html");
        let elapsed = Duration::from_secs(3600);
        let end = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let page_times = times(5, || {
            let html = page::render(&Page {
                run: &run,
                timeline: &timeline,
                about: &about,
                tails: &[],
                elapsed,
                now: end,
                live: true,
            });
            page::write(&path, &html).expect("the page is written");
        });
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let encode = times(5, || {
            metrics::exposition(&run, elapsed, None);
        });
        let body = metrics::exposition(&run, elapsed, None);
        let push = self.gateway.as_ref().map(|g| {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            let gateway = Arc::new(Pushgateway::new(&g.url, "bench", "default"));
            times(5, || {
                let started = Instant::now();
                let body = metrics::exposition(&run, elapsed, None);
                runtime
                    .block_on(gateway.push(body))
                    .expect("the push is taken");
                started.elapsed()
            })
        });
        println!(
            "outputs={n:>5}  page: written in {:>6.1} ms (median of 5), {:.2} MiB  metrics: {} bytes, encoded in {:.1} ms, a heartbeat's push (encode + POST) {}",
            ms(page_times),
            size as f64 / 1024.0 / 1024.0,
            body.len(),
            ms(encode),
            push.map_or("not measured".into(), |p| format!("{:.1} ms", ms(p))),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median time of `runs` runs of `f`.
fn times<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut all: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    all.sort();
    all[runs / 2]
}

/// `n` children over an hour, 500 at a time: each pending for a second and running for about
/// three minutes; every hundredth failed after two attempts.
fn finished_run(n: usize) -> (Run, Timeline) {
    let settings = StepSettings {
        image: Some("busybox".into()),
        fan_out: FanOut::Count(u32::try_from(n).expect("a count")),
        ..Default::default()
    };
    let identity = Identity {
        run_id: "bench".into(),
        prefix: "bench-28434560".into(),
        namespace: Some("default".into()),
        owner: None,
    };
    let children = jobherd::child::children(&settings, None, &identity).expect("children");
    let rules = Rules {
        parallelism: Some(500),
        fail_fast: false,
        stuck_timeout: Duration::from_secs(120),
        logs: LogsMode::Failed,
    };
    let mut run = Run::new(children, &rules, "bench", jobherd::run::At::now());
    let mut timeline = Timeline::read_back();
    let start = Timestamp::now();
    for i in 0..n {
        let wave = (i / 500) as u64;
        let created = Duration::from_secs(wave * 180 + (i % 7) as u64);
        let running = created + Duration::from_secs(1);
        let failed = i % 100 == 7;
        let finished = running + Duration::from_secs(150 + (i % 60) as u64);
        timeline.mark(i, created, Mark::Created);
        timeline.mark(i, running, Mark::Running);
        if failed {
            timeline.mark(i, running + Duration::from_secs(60), Mark::Attempt(2));
        }
        let result = if failed {
            ChildResult::Failed
        } else {
            ChildResult::Succeeded
        };
        timeline.mark(i, finished, Mark::Done(result));
        let at = |d: Duration| start.checked_add(d).ok();
        run.restore(
            i,
            Restored {
                result,
                reason: failed.then(|| "BackoffLimitExceeded".into()),
                message: failed.then(|| "Job has reached the specified backoff limit".into()),
                attempts: if failed { 2 } else { 1 },
                started: at(running),
                finished: at(finished),
                earlier_run: None,
                output: Output::Absent,
            },
        );
    }
    (run, timeline)
}
