//! Packed fan-outs (SPEC §10, `JOBHERD_PACK=indexed`): many children in one Indexed Job, one
//! completion index each. What is per child stays out of the Job: a child learns which one it
//! is from its completion index, and its own variables from its pack's ConfigMap, which
//! jobherd's entrypoint reads before it runs the child's command (`jobherd entrypoint`, copied
//! into the pod by an init container: the child's image needs no shell). A pack whose children
//! need only their index (the first children of a `count` step, in order) takes it through the
//! downward API and needs neither.
//!
//! This module holds the pieces both sides share: the index sets the Job controller writes
//! (`completedIndexes`, `failedIndexes`), the members annotation, and the values file and the
//! entrypoint that reads it.

use std::collections::BTreeSet;
use std::ffi::OsString;

use crate::config::EnvMap;

/// A pack Job's label (its value: `true`).
pub const PACK_LABEL: &str = "jobherd.io/pack";
/// The children a pack holds: their positions in their step, as index ranges (`0-9999`,
/// `3,17,40-42`), completion index `i` being the `i`-th of them.
pub const MEMBERS: &str = "jobherd.io/pack-members";
/// The plan step a pack belongs to (empty without a plan).
pub const PACK_STEP: &str = "jobherd.io/pack-step";
/// The label and annotation the Job controller gives each pod of an Indexed Job.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Where the entrypoint is copied, in an `emptyDir` shared by the init container and the child.
pub const ENTRYPOINT: &str = "/jobherd-pack/bin/jobherd";
/// Where the pack's ConfigMap is mounted, and the file in it.
pub const VALUES_DIR: &str = "/jobherd-pack/values";
pub const VALUES_FILE: &str = "values.json";
/// The pod condition jobherd sets on a stuck packed child's pod before deleting it, which the
/// pack's `podFailurePolicy` turns into a failed index (`FailIndex`).
pub const STUCK_CONDITION: &str = "jobherd.io/Stuck";
/// How much of a ConfigMap's 1 MiB the values may take: a pack holds fewer children when
/// theirs would take more.
pub const MAX_VALUES: usize = 900 * 1024;

/// Index ranges as the Job controller writes them: `1,3-5,7`.
pub fn format_ranges(indices: impl IntoIterator<Item = usize>) -> String {
    let sorted: BTreeSet<usize> = indices.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// Reads index ranges (`1,3-5,7`); `None` for text that is none.
pub fn parse_ranges(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// The values file: each member's own variables, in completion-index order (a JSON array
/// of objects), written one member at a time.
pub fn values_file(members: impl Iterator<Item = EnvMap>) -> String {
    let mut out = String::from("[");
    for (i, member) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A map of strings always serializes.
        out.push_str(&serde_json::to_string(&member).unwrap_or_default());
    }
    out.push(']');
    out
}

/// `jobherd entrypoint ...`: `install DEST` copies this binary to DEST (the init container);
/// `-- COMMAND ARGS...` sets the child's own variables and runs its command in its place.
/// Returns only on failure, with the message and the exit code.
pub fn entrypoint(args: &[OsString]) -> (String, i32) {
    match args {
        [verb, dest] if verb == "install" => match install(dest) {
            Ok(()) => (String::new(), 0),
            Err(e) => (
                format!("jobherd entrypoint: cannot install itself at {dest:?}: {e}"),
                1,
            ),
        },
        [dash, command @ ..] if dash == "--" && !command.is_empty() => {
            let file = std::path::Path::new(VALUES_DIR).join(VALUES_FILE);
            let index = std::env::var("JOB_COMPLETION_INDEX").unwrap_or_default();
            let values = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()));
            match values.and_then(|v| own_values(&v, &index)) {
                Ok(own) => exec(command, &own),
                Err(e) => (format!("jobherd entrypoint: {e}"), 127),
            }
        }
        _ => (
            "jobherd entrypoint: expected `install DEST` or `-- COMMAND ARGS...`".into(),
            2,
        ),
    }
}

fn install(dest: &OsString) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dest = std::path::Path::new(dest);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(std::env::current_exe()?, dest)?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
}

/// The variables of the member at completion index `index`.
pub fn own_values(values: &str, index: &str) -> Result<EnvMap, String> {
    let i: usize = index
        .parse()
        .map_err(|_| format!("JOB_COMPLETION_INDEX is {index:?}, not an index"))?;
    let all: Vec<EnvMap> =
        serde_json::from_str(values).map_err(|e| format!("the values file is unreadable: {e}"))?;
    all.into_iter()
        .nth(i)
        .ok_or_else(|| format!("the values file has no member {i}"))
}

/// Expands `$(NAME)` for the child's own variables, as the kubelet would have had they been in
/// the container's env: in the other variables and in the command.
pub fn expand(text: &str, own: &EnvMap) -> String {
    let mut out = text.to_string();
    for (name, value) in own {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

/// Runs the child's command with its own variables, in this process's place.
fn exec(command: &[OsString], own: &EnvMap) -> (String, i32) {
    use std::os::unix::process::CommandExt;
    let expanded: Vec<String> = command
        .iter()
        .map(|a| expand(&a.to_string_lossy(), own))
        .collect();
    let mut cmd = std::process::Command::new(&expanded[0]);
    cmd.args(&expanded[1..]);
    for (name, value) in std::env::vars() {
        if !own.contains_key(&name) && value.contains("$(") {
            cmd.env(&name, expand(&value, own));
        }
    }
    cmd.envs(own);
    let e = cmd.exec();
    (
        format!("jobherd entrypoint: cannot run {:?}: {e}", expanded[0]),
        127,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_and_write_as_the_job_controller_writes_them() {
        assert_eq!(format_ranges([0, 1, 2, 4, 7, 8]), "0-2,4,7-8");
        assert_eq!(format_ranges(Vec::<usize>::new()), "");
        assert_eq!(parse_ranges("0-2,4,7-8"), Some(vec![0, 1, 2, 4, 7, 8]));
        assert_eq!(parse_ranges(""), Some(vec![]));
        assert_eq!(parse_ranges("3-1"), None);
        assert_eq!(parse_ranges("x"), None);
    }

    #[test]
    fn a_member_gets_its_own_values_and_its_references_expanded() {
        let members = vec![
            EnvMap::from([("JOBHERD_ITEM".into(), "a".into())]),
            EnvMap::from([("JOBHERD_ITEM".into(), "b".into())]),
        ];
        let file = values_file(members.into_iter());
        let own = own_values(&file, "1").unwrap();
        assert_eq!(own["JOBHERD_ITEM"], "b");
        assert_eq!(expand("s3://x/$(JOBHERD_ITEM)/", &own), "s3://x/b/");
        assert!(own_values(&file, "2").unwrap_err().contains("no member 2"));
        assert!(own_values(&file, "").unwrap_err().contains("not an index"));
    }
}
