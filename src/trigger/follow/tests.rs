use super::*;
use serde_json::json;

fn pod(name: &str, created: &str, state: serde_json::Value, reason: Option<&str>) -> Pod {
    let mut status = json!({"containerStatuses": [{"name": "jobherd", "image": "jobherd:0.1.0",
        "imageID": "", "ready": false, "restartCount": 0, "state": state}]});
    if let Some(r) = reason {
        status["reason"] = json!(r);
        status["message"] = json!("The node was low on resource: memory.");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": created},
        "status": status,
    }))
    .unwrap()
}

fn running() -> serde_json::Value {
    json!({"running": {}})
}

fn exited(code: i32, reason: &str) -> serde_json::Value {
    json!({"terminated": {"exitCode": code, "reason": reason}})
}

fn job(condition: Option<(&str, &str)>) -> Job {
    let conditions: Vec<serde_json::Value> = condition
        .map(|(t, r)| json!({"type": t, "status": "True", "reason": r, "message": "m"}))
        .into_iter()
        .collect();
    serde_json::from_value(
        json!({"metadata": {"name": "build-42"}, "status": {"conditions": conditions}}),
    )
    .unwrap()
}

struct Harness {
    follow: Follow,
    t0: Instant,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Harness {
            follow: Follow::new("build-42", "jobherd", t0),
            t0,
        }
    }

    fn pod(&mut self, p: Pod) -> (Vec<Act>, Option<Ending>) {
        self.follow
            .apply(Seen::Pod(Box::new(watcher::Event::Apply(p))), self.t0)
    }

    fn job(&mut self, j: Job) -> (Vec<Act>, Option<Ending>) {
        self.follow
            .apply(Seen::Job(Box::new(watcher::Event::Apply(j))), self.t0)
    }

    fn log_ended(&mut self) -> (Vec<Act>, Option<Ending>) {
        self.follow.apply(Seen::LogEnded, self.t0)
    }
}

fn streams(acts: &[Act]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Act::Stream { pod } => Some(pod.clone()),
            Act::Say(_) => None,
        })
        .collect()
}

const T1: &str = "2026-11-24T03:17:00Z";
const T2: &str = "2026-11-24T03:18:00Z";

#[test]
fn the_log_is_streamed_once_the_pod_runs_and_the_end_waits_for_it() {
    let mut h = Harness::new();
    let (acts, _) = h.pod(pod(
        "build-42-a",
        T1,
        json!({"waiting": {"reason": "ContainerCreating"}}),
        None,
    ));
    assert!(acts.is_empty(), "{acts:?}");
    let (acts, _) = h.pod(pod("build-42-a", T1, running(), None));
    assert_eq!(streams(&acts), ["build-42-a"]);
    h.pod(pod("build-42-a", T1, exited(1, "Error"), None));
    let (_, end) = h.job(job(Some(("Failed", "PodFailurePolicy"))));
    assert_eq!(end, None, "the log is still being read");
    let (_, end) = h.log_ended();
    assert_eq!(end, Some(Ending { code: 1, why: None }));
}

#[test]
fn interim_conditions_are_not_the_end() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, exited(0, "Completed"), None));
    h.log_ended();
    let (_, end) = h.job(job(Some(("SuccessCriteriaMet", "CompletionsReached"))));
    assert_eq!(end, None);
    let (_, end) = h.job(job(Some(("Complete", "CompletionsReached"))));
    assert_eq!(end, Some(Ending { code: 0, why: None }));
}

#[test]
fn a_retried_parent_is_followed_to_its_last_pod() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, exited(4, "Error"), None));
    h.log_ended();
    let (acts, _) = h.pod(pod("build-42-b", T2, running(), None));
    assert_eq!(streams(&acts), ["build-42-b"]);
    assert!(acts.contains(&Act::Say(
        "jobherd trigger: the parent was retried: following pod build-42-b (attempt 2)".into()
    )));
    h.pod(pod("build-42-b", T2, exited(0, "Completed"), None));
    h.job(job(Some(("Complete", ""))));
    let (_, end) = h.log_ended();
    assert_eq!(
        end,
        Some(Ending { code: 0, why: None }),
        "the last pod's code counts"
    );
}

#[test]
fn signals_and_codes_of_jobherds_own_pass_through() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, exited(143, "Error"), None));
    h.log_ended();
    let (_, end) = h.job(job(Some(("Failed", "DeadlineExceeded"))));
    assert_eq!(
        end,
        Some(Ending {
            code: 143,
            why: None
        })
    );
}

#[test]
fn a_killed_or_evicted_parent_ends_with_5_and_says_why() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, exited(137, "OOMKilled"), None));
    h.log_ended();
    let (_, end) = h.job(job(Some(("Failed", "BackoffLimitExceeded"))));
    let end = end.unwrap();
    assert_eq!(end.code, NO_CODE);
    assert!(end.why.unwrap().contains("OOMKilled"));

    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, running(), Some("Evicted")));
    h.follow.apply(
        Seen::Pod(Box::new(watcher::Event::Delete(pod(
            "build-42-a",
            T1,
            running(),
            Some("Evicted"),
        )))),
        h.t0,
    );
    h.log_ended();
    let (_, end) = h.job(job(Some(("Failed", "BackoffLimitExceeded"))));
    let end = end.unwrap();
    assert_eq!(end.code, NO_CODE);
    assert!(end.why.unwrap().contains("Evicted"), "the pod's own reason");
}

#[test]
fn a_parent_deleted_before_it_ran_a_pod_ends_with_5() {
    let mut h = Harness::new();
    let (_, end) = h
        .follow
        .apply(Seen::Job(Box::new(watcher::Event::Delete(job(None)))), h.t0);
    let end = end.unwrap();
    assert_eq!(end.code, NO_CODE);
    assert!(end.why.unwrap().contains("without running a pod"));
}

#[test]
fn logs_that_never_end_are_waited_for_only_a_while() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, running(), None));
    h.pod(pod("build-42-a", T1, exited(0, "Completed"), None));
    h.job(job(Some(("Complete", ""))));
    let (_, end) = h.follow.apply(Seen::Tick, h.t0 + Duration::from_secs(4));
    assert_eq!(end, None);
    let (_, end) = h.follow.apply(Seen::Tick, h.t0 + Duration::from_secs(5));
    assert_eq!(end, Some(Ending { code: 0, why: None }));
}

#[test]
fn a_waiting_pod_is_told_once_per_reason() {
    let mut h = Harness::new();
    let waiting = json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}});
    let (acts, _) = h.pod(pod("build-42-a", T1, waiting.clone(), None));
    assert_eq!(
        acts,
        [Act::Say(
            "jobherd trigger: pod build-42-a is waiting: ErrImagePull: not found".into()
        )]
    );
    let (acts, _) = h.pod(pod("build-42-a", T1, waiting, None));
    assert!(acts.is_empty());
}

#[test]
fn a_retry_in_the_same_second_is_still_the_last_pod() {
    let mut h = Harness::new();
    h.pod(pod("build-42-zz", T1, exited(143, "Error"), None));
    h.log_ended();
    let (acts, _) = h.pod(pod("build-42-aa", T1, running(), None));
    assert_eq!(streams(&acts), ["build-42-aa"]);
    h.pod(pod("build-42-aa", T1, exited(0, "Completed"), None));
    h.job(job(Some(("Complete", ""))));
    let (_, end) = h.log_ended();
    assert_eq!(end, Some(Ending { code: 0, why: None }));
}

#[test]
fn the_end_waits_for_the_last_pods_exit_code() {
    let mut h = Harness::new();
    h.pod(pod("build-42-a", T1, running(), None));
    h.log_ended();
    let (_, end) = h.job(job(Some(("Complete", ""))));
    assert_eq!(end, None, "the pod watch has not shown the exit yet");
    let (_, end) = h.pod(pod("build-42-a", T1, exited(0, "Completed"), None));
    assert_eq!(end, Some(Ending { code: 0, why: None }));
}
