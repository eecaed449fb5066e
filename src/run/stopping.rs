//! How a run ends early: the stops, in order of strength, and the move. Fail fast is a soft
//! stop (the steps that run on failure or always still run); a signal, `JOBHERD_TIMEOUT` or a
//! disruption that ends the run is a hard stop, which overrides a soft one and ends everything.
//! A SIGTERM in a pod is first looked into (is only the pod going?): meanwhile nothing is
//! created; then the run moves (every child is left for the next attempt) or stops hard. A hard
//! stop has `STOP_WITHIN` to delete what is out: a hanging API costs that time, never the
//! record and summary written after it.

use std::time::{Duration, Instant};

use super::events::{Signal, Stop};
use crate::cluster::ClusterError;
use crate::config::human;
use crate::disruption::Verdict;

/// How long a hard stop may take, from the signal (or deadline) that began it, before what
/// has not answered is given up on. Well inside a pod's default 30 s grace period: the
/// disruption check (at most 5 s) comes first, and the summary, reports and record after.
pub(super) const STOP_WITHIN: Duration = Duration::from_secs(18);

#[derive(Debug, Default)]
pub(super) struct Stopping {
    stop: Option<Stop>,
    /// A SIGTERM in a pod is being looked into, since when.
    checking: Option<Instant>,
    /// Only jobherd's pod goes while its Job goes on: the disruption's reason.
    moving: Option<String>,
    fatal: Option<ClusterError>,
    /// A hard stop is over by then, whatever has not answered.
    until: Option<Instant>,
    /// `JOBHERD_TIMEOUT`: the deadline of the whole run, across its attempts.
    deadline: Option<Instant>,
    /// In a pod with a parent Job: a SIGTERM may mean that only the pod goes.
    can_move: bool,
}

/// What a signal asks of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnSignal {
    /// Look into the SIGTERM (`Effect::CheckDisruption`); create nothing meanwhile.
    Check,
    Stop(Stop),
    /// Nothing more to do: the run already moves, stops as hard, or is being looked into.
    Ignore,
}

/// What the run does with a disruption check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnVerdict {
    Move(String),
    /// Stop hard, saying why when there is something to say.
    End(Option<String>),
    /// A hard stop came first.
    Ignore,
}

impl Stopping {
    pub(super) fn new(deadline: Option<Instant>, can_move: bool) -> Stopping {
        Stopping {
            deadline,
            can_move,
            ..Stopping::default()
        }
    }

    pub(super) fn stop(&self) -> Option<Stop> {
        self.stop
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stop.is_some()
    }

    pub(super) fn is_hard(&self) -> bool {
        self.stop.is_some_and(Stop::is_hard)
    }

    pub(super) fn is_moving(&self) -> bool {
        self.moving.is_some()
    }

    pub(super) fn moving(&self) -> Option<&str> {
        self.moving.as_deref()
    }

    pub(super) fn is_checking(&self) -> bool {
        self.checking.is_some()
    }

    /// New children may be created (after fail fast, only those of steps that run on failure
    /// or always: see `Run::stopping_for`).
    pub(super) fn may_create(&self) -> bool {
        !self.is_hard() && self.checking.is_none() && self.moving.is_none() && self.fatal.is_none()
    }

    /// Asks for a stop; true when it changes what the run does: the first stop, or a hard one
    /// after a soft one or during a check. Moving, or stopped as hard, nothing changes.
    pub(super) fn request(&mut self, why: Stop, now: Instant) -> bool {
        if self.moving.is_some() || self.is_hard() || (self.stop.is_some() && !why.is_hard()) {
            return false;
        }
        self.stop = Some(why);
        if why.is_hard() {
            let began = self.checking.take().unwrap_or(now);
            self.until = Some(began + STOP_WITHIN);
        }
        true
    }

    pub(super) fn on_signal(&mut self, signal: Signal, now: Instant) -> OnSignal {
        if self.moving.is_some() || self.is_hard() {
            return OnSignal::Ignore;
        }
        match signal {
            Signal::Interrupt => OnSignal::Stop(Stop::Interrupt),
            Signal::Terminate if self.checking.is_some() => OnSignal::Ignore,
            Signal::Terminate if self.can_move => {
                self.checking = Some(now);
                OnSignal::Check
            }
            Signal::Terminate => OnSignal::Stop(Stop::Terminate),
        }
    }

    /// The check's answer. A move that could not start before `JOBHERD_TIMEOUT` passes is
    /// futile: the run ends instead.
    pub(super) fn on_verdict(&mut self, verdict: Verdict, now: Instant) -> OnVerdict {
        if self.checking.is_none() {
            return OnVerdict::Ignore;
        }
        match verdict {
            Verdict::Moving { reason, restart_in } => match self.deadline {
                Some(deadline) if deadline.saturating_duration_since(now) <= restart_in => {
                    OnVerdict::End(Some(format!(
                        "its pod is being disrupted ({reason}), but JOBHERD_TIMEOUT passes in {}, before the next attempt could start (about {}): stopping the run instead of moving it",
                        human(deadline.saturating_duration_since(now)),
                        human(restart_in)
                    )))
                }
                _ => OnVerdict::Move(reason),
            },
            Verdict::Ending { why } => OnVerdict::End(why),
        }
    }

    /// The run moves: the check is over, and every child stays as it is.
    pub(super) fn leave(&mut self, reason: String) {
        self.checking = None;
        self.moving = Some(reason);
    }

    /// `JOBHERD_TIMEOUT` has passed, and the run does not stop hard for it yet.
    pub(super) fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d) && !self.is_hard() && self.moving.is_none()
    }

    /// A hard stop's time is up.
    pub(super) fn out_of_time(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now >= u)
    }

    pub(super) fn set_fatal(&mut self, e: ClusterError) {
        self.fatal.get_or_insert(e);
    }

    pub(super) fn is_fatal(&self) -> bool {
        self.fatal.is_some()
    }

    pub(super) fn take_fatal(&mut self) -> Option<ClusterError> {
        self.fatal.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn moving(restart_in: u64) -> Verdict {
        Verdict::Moving {
            reason: "EvictionByEvictionAPI".into(),
            restart_in: S(restart_in),
        }
    }

    #[test]
    fn a_hard_stop_overrides_fail_fast_and_nothing_overrides_a_hard_stop() {
        let t0 = Instant::now();
        let mut s = Stopping::new(None, false);
        assert!(s.request(Stop::FailFast, t0));
        assert!(s.may_create(), "steps for failure still run");
        assert!(!s.request(Stop::FailFast, t0));
        assert_eq!(
            s.on_signal(Signal::Terminate, t0),
            OnSignal::Stop(Stop::Terminate)
        );
        assert!(s.request(Stop::Terminate, t0));
        assert!(!s.may_create());
        assert!(!s.request(Stop::Timeout, t0));
        assert!(!s.request(Stop::FailFast, t0));
        assert_eq!(s.stop(), Some(Stop::Terminate));
        assert_eq!(s.on_signal(Signal::Interrupt, t0), OnSignal::Ignore);
        assert!(!s.out_of_time(t0 + S(17)));
        assert!(s.out_of_time(t0 + S(18)));
    }

    #[test]
    fn a_sigterm_in_a_pod_is_looked_into_and_creates_nothing_meanwhile() {
        let t0 = Instant::now();
        let mut s = Stopping::new(None, true);
        assert_eq!(s.on_signal(Signal::Terminate, t0), OnSignal::Check);
        assert!(!s.may_create());
        assert_eq!(s.on_signal(Signal::Terminate, t0), OnSignal::Ignore);
        assert_eq!(
            s.on_verdict(moving(10), t0 + S(1)),
            OnVerdict::Move("EvictionByEvictionAPI".into())
        );
        s.leave("EvictionByEvictionAPI".into());
        assert!(s.is_moving());
        assert!(!s.request(Stop::Interrupt, t0), "a run that moves has left");
        assert_eq!(s.on_signal(Signal::Interrupt, t0), OnSignal::Ignore);
    }

    #[test]
    fn a_hard_stop_during_the_check_wins_and_the_verdict_comes_too_late() {
        let t0 = Instant::now();
        for stop in [Stop::Interrupt, Stop::Timeout] {
            let mut s = Stopping::new(None, true);
            assert_eq!(s.on_signal(Signal::Terminate, t0), OnSignal::Check);
            assert!(s.request(stop, t0 + S(2)));
            assert!(!s.is_checking());
            assert_eq!(s.on_verdict(moving(10), t0 + S(3)), OnVerdict::Ignore);
            // The stop's time counts from the signal that began it.
            assert!(s.out_of_time(t0 + S(18)));
        }
    }

    #[test]
    fn after_fail_fast_a_sigterm_in_a_pod_may_still_move() {
        let t0 = Instant::now();
        let mut s = Stopping::new(None, true);
        s.request(Stop::FailFast, t0);
        assert_eq!(s.on_signal(Signal::Terminate, t0), OnSignal::Check);
        let end = OnVerdict::End(Some("no".into()));
        let verdict = Verdict::Ending {
            why: Some("no".into()),
        };
        assert_eq!(s.on_verdict(verdict, t0), end);
    }

    #[test]
    fn a_move_that_cannot_start_before_the_timeout_ends_the_run() {
        let t0 = Instant::now();
        let mut s = Stopping::new(Some(t0 + S(30)), true);
        s.on_signal(Signal::Terminate, t0);
        match s.on_verdict(moving(40), t0 + S(1)) {
            OnVerdict::End(Some(why)) => {
                assert!(why.contains("JOBHERD_TIMEOUT passes in 29s"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let mut s = Stopping::new(Some(t0 + S(30)), true);
        s.on_signal(Signal::Terminate, t0);
        assert!(matches!(s.on_verdict(moving(10), t0), OnVerdict::Move(_)));
    }

    #[test]
    fn the_deadline_passes_once() {
        let t0 = Instant::now();
        let mut s = Stopping::new(Some(t0 + S(5)), false);
        assert!(!s.past_deadline(t0));
        assert!(s.past_deadline(t0 + S(5)));
        s.request(Stop::Timeout, t0 + S(5));
        assert!(!s.past_deadline(t0 + S(6)));
    }
}
