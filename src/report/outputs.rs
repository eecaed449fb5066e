//! The page (`JOBHERD_HTML_FILE`) and the metrics (`JOBHERD_PUSHGATEWAY`) of a run: refreshed
//! on each heartbeat while it goes, written and pushed at its end. The reporter feeds them the
//! run's transitions; they read the run and never change it. In trigger mode the page is
//! written on the caller's side from what the cluster holds ([`write_read_back`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::{Client, ResourceExt};

use super::metrics::{self, Ended, Pushgateway};
use super::page::{self, About, Page};
use super::timeline::{Mark, Timeline};
use crate::child::Identity;
use crate::cluster::Parent;
use crate::config::Config;
use crate::run::{Change, Phase, Run, Transition};

/// Failed children whose last log lines the page keeps, at most, and how much of each.
const MOST_TAILS: usize = 100;
const TAIL_BYTES: usize = 8 * 1024;

/// What a run shows besides its console and its reports.
pub struct Outputs {
    page: Option<PageFile>,
    metrics: Option<Arc<Pushgateway>>,
    /// `JOBHERD_HEARTBEAT`: how often both are refreshed while the run goes.
    every: Option<Duration>,
    next: Instant,
    start: Instant,
}

/// The page, with what it draws that the run does not keep.
struct PageFile {
    path: PathBuf,
    about: About,
    timeline: Timeline,
    tails: Vec<(usize, String)>,
    /// A write failed once: said once, not on every heartbeat.
    warned: bool,
}

impl Outputs {
    /// The outputs the configuration asks for, if any; the metrics' group is found here.
    pub async fn set_up(
        config: &Config,
        client: &Client,
        parent: Option<&Parent>,
        identity: &Identity,
        now: Instant,
    ) -> Option<Outputs> {
        if config.html_file.is_none() && config.pushgateway.is_none() {
            return None;
        }
        let namespace = parent.map_or_else(
            || identity.namespace.clone().unwrap_or_default(),
            |p| p.namespace.clone(),
        );
        let metrics = match &config.pushgateway {
            Some(url) => {
                let job = metrics::job_name(client, parent, &identity.prefix).await;
                Some(Arc::new(Pushgateway::new(url, &job, &namespace)))
            }
            None => None,
        };
        let about = About {
            run_id: identity.run_id.clone(),
            namespace,
            parent: parent.map(|p| format!("{} {}", p.kind, p.name)),
            started: Timestamp::now(),
        };
        let page = config.html_file.clone().map(|path| (path, about));
        Some(Outputs::new(page, metrics, config.heartbeat, now))
    }

    /// The page (where, and about which run) and the metrics' Pushgateway, refreshed `every`
    /// heartbeat from `now` on.
    pub fn new(
        page: Option<(PathBuf, About)>,
        metrics: Option<Arc<Pushgateway>>,
        every: Option<Duration>,
        now: Instant,
    ) -> Outputs {
        let page = page.map(|(path, about)| PageFile {
            path,
            about,
            timeline: Timeline::new(now),
            tails: Vec::new(),
            warned: false,
        });
        Outputs {
            page,
            metrics,
            every,
            next: now,
            start: now,
        }
    }

    /// Notes what happened (the timeline, the failed children's log lines).
    pub fn seen(&mut self, run: &Run, transitions: &[Transition], now: Instant) {
        let Some(page) = &mut self.page else {
            return;
        };
        page.timeline.record(run, transitions, now);
        for t in transitions {
            if let Transition::Child {
                index,
                change: Change::Logs(text),
            } = t
                && page.tails.len() < MOST_TAILS
            {
                page.tails.push((*index, last_bytes(text, TAIL_BYTES)));
            }
        }
    }

    /// On each heartbeat (and at the first event): the page rewritten, the metrics pushed.
    pub fn refresh_if_due(&mut self, run: &Run, now: Instant) {
        let Some(every) = self.every else {
            return;
        };
        if now < self.next {
            return;
        }
        self.next = now + every;
        let elapsed = now.saturating_duration_since(self.start);
        if let Some(page) = &mut self.page {
            let at = page.timeline.offset(now);
            page.write(run, elapsed, at, true);
        }
        if let Some(gateway) = &self.metrics {
            gateway.push_in_background(metrics::exposition(run, elapsed, None));
        }
    }

    /// At the end: the final page, and the final push (waited for, a warning when it fails).
    pub async fn publish(&mut self, run: &Run, elapsed: Duration) {
        if let Some(page) = &mut self.page {
            let at = page.timeline.offset(Instant::now());
            page.write(run, elapsed, at, false);
        }
        if let Some(gateway) = &self.metrics {
            let ended = Ended {
                exit_code: run.exit_code(),
                at: Timestamp::now(),
            };
            let body = metrics::exposition(run, elapsed, Some(ended));
            if let Err(e) = gateway.push(body).await {
                metrics::warn(gateway.url(), &e);
            }
        }
    }
}

impl PageFile {
    fn write(&mut self, run: &Run, elapsed: Duration, now: u32, live: bool) {
        let html = page::render(&Page {
            run,
            timeline: &self.timeline,
            about: &self.about,
            tails: &self.tails,
            elapsed,
            now,
            live,
        });
        match page::write(&self.path, &html) {
            Ok(()) => self.warned = false,
            Err(e) if !self.warned => {
                self.warned = true;
                tracing::warn!(path = %self.path.display(), "could not write the page: {e}");
            }
            Err(_) => {}
        }
    }
}

/// The end of a log, at most `most` bytes, cut at a line.
fn last_bytes(text: &str, most: usize) -> String {
    if text.len() <= most {
        return text.to_string();
    }
    let mut cut = text.len() - most;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &text[cut..];
    tail.split_once('\n')
        .map_or(tail, |(_, rest)| rest)
        .to_string()
}

/// Trigger mode: the page of a run read back from the cluster (its record and the child Jobs
/// left), on the cluster's clock from the parent Job's creation.
pub fn write_read_back(path: &Path, run: &Run, jobs: &[Job], parent: &Job, elapsed: Duration) {
    let origin = parent
        .creation_timestamp()
        .map_or_else(Timestamp::now, |t| t.0);
    let timeline = read_back(run, jobs, origin);
    let about = About {
        run_id: parent.uid().unwrap_or_default(),
        namespace: parent.namespace().unwrap_or_default(),
        parent: Some(format!("Job {}", parent.name_any())),
        started: origin,
    };
    let html = page::render(&Page {
        run,
        timeline: &timeline,
        about: &about,
        tails: &[],
        elapsed,
        now: timeline.latest(),
        live: false,
    });
    if let Err(e) = page::write(path, &html) {
        tracing::warn!(path = %path.display(), "could not write the page: {e}");
    }
}

/// Each child as its Job and the record tell it: created, queued until admitted, running from
/// its start, done when it finished.
fn read_back(run: &Run, jobs: &[Job], origin: Timestamp) -> Timeline {
    let since = |t: Timestamp| Duration::try_from(t.duration_since(origin)).unwrap_or_default();
    let mut timeline = Timeline::read_back();
    let by_index: std::collections::HashMap<usize, &Job> = jobs
        .iter()
        .filter_map(|j| Some((run.children().index_of(&j.name_any())?, j)))
        .collect();
    for i in 0..run.total() {
        let state = run.state(i);
        if let Some(job) = by_index.get(&i) {
            if let Some(created) = job.creation_timestamp() {
                timeline.mark(i, since(created.0), Mark::Created);
            }
            if let Some((queued, admitted)) = queue_times(job) {
                timeline.mark(i, since(queued), Mark::Queued);
                if let Some(admitted) = admitted {
                    timeline.mark(i, since(admitted), Mark::Admitted);
                }
            }
        }
        if let Some(started) = state.started() {
            timeline.mark(i, since(started), Mark::Running);
        }
        if let (Some(finished), Phase::Done { result, .. }) = (state.finished(), &state.phase) {
            timeline.mark(i, since(finished), Mark::Done(*result));
        }
    }
    timeline
}

/// A Job a queue held: since its creation, and until the `Suspended=False` transition.
fn queue_times(job: &Job) -> Option<(Timestamp, Option<Timestamp>)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let suspended = conditions.iter().find(|c| c.type_ == "Suspended")?;
    let created = job.creation_timestamp()?.0;
    let admitted = (suspended.status == "False")
        .then(|| suspended.last_transition_time.as_ref().map(|t| t.0))
        .flatten();
    Some((created, admitted))
}

#[cfg(test)]
mod tests;
