//! The reference (`jobherd --help-all`, `docs/reference.md`): every variable, plan field, exit
//! code, label, annotation and Event, rendered as Markdown from the definitions the program
//! itself uses, so that it cannot drift from them.

use std::fmt::Write as _;

use crate::child::{MANAGED_BY, MANAGER, QUEUE_LABEL, RUN_LABEL, STEP_LABEL};
use crate::cli::ARGUMENTS;
use crate::config::{CHILD_PREFIX, ITEM_VAR, RESULT_PREFIX, VARIABLES, Variable};
use crate::exit::Exit;
use crate::plan::{
    Field, JOBERNETES_CONFIG_FIELDS, JOBERNETES_EXPLODED, JOBERNETES_JOB_FIELDS,
    JOBERNETES_JOB_NAME, JOBERNETES_PHASE, JOBERNETES_PHASE_FIELDS, PHASE_FIELDS, STEP_FIELDS,
    TOP_LEVEL_KEYS,
};
use crate::record::{RECORD, SUMMARY};
use crate::report::{RUN_FAILED, RUN_MOVING, RUN_SUCCEEDED};
use crate::trigger::INSTANTIATE;

/// The command that writes the reference into the repository.
pub const REGENERATE: &str = "cargo run -- --help-all > docs/reference.md";

/// The whole reference, as `docs/reference.md` holds it.
pub fn markdown() -> String {
    let mut out = format!(
        "# jobherd reference

<!-- Generated from the code by `jobherd --help-all`; do not edit. After changing a variable,
plan field, exit code, label or annotation, regenerate it: `{REGENERATE}` -->

Everything jobherd reads and writes, generated from the definitions the program itself uses.
The [guides](README.md) show how to use it.

- [Variables](#variables)
- [Variables jobherd sets on children](#variables-jobherd-sets-on-children)
- [Plan fields](#plan-fields)
- [Exit codes](#exit-codes)
- [Labels, annotations and Events](#labels-annotations-and-events)
- [Command line](#command-line)
"
    );
    variables(&mut out);
    child_variables(&mut out);
    plan_fields(&mut out);
    exit_codes(&mut out);
    labels(&mut out);
    command_line(&mut out);
    out
}

fn variables(out: &mut String) {
    out.push_str(
        "
## Variables

Every variable starts with `JOBHERD_`. An unknown `JOBHERD_*` variable is an error with a \"did
you mean\" (a typo guard), except the `JOBHERD_CHILD_*`, `JOBHERD_RESULT_*` and `JOBHERD_ITEM`
a parent sets on its children, so herds nest. An empty value counts as unset. Durations take
`90s`, `10m`, `1h30m` or whole seconds (`600`); JSON is strict JSON. A bad value names the
variable, shows the value and says what is expected; jobherd exits 2 and creates nothing.

In trigger mode (`JOBHERD_TRIGGER`) the trigger keeps the variables marked *the trigger's own*;
every other one is set on the parent it creates, over the CronJob's value.

| variable | meaning | type | default |
|---|---|---|---|
",
    );
    for v in VARIABLES {
        variable(out, v);
    }
}

fn variable(out: &mut String, v: &Variable) {
    let kind = match v.values {
        [] => v.kind.to_string(),
        values => {
            let values: Vec<String> = values.iter().map(|x| format!("`{x}`")).collect();
            format!("{}: {}", v.kind, values.join(", "))
        }
    };
    let own = if v.trigger_own {
        " *In trigger mode: the trigger's own.*"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "| `{}` | {}{own} | {} | {} |",
        v.name(),
        cell(v.meaning),
        cell(&kind),
        cell(&v.default_text())
    );
}

fn child_variables(out: &mut String) {
    out.push_str(
        "
## Variables jobherd sets on children

These come first in a child's env list, so `JOBHERD_ENV`, a step's `env`, `command` and `args`
may refer to them as `$(NAME)`; a `shell` reads them as `$NAME`. A child that is itself a jobherd
accepts them.

| variable | holds |
|---|---|
",
    );
    for (name, holds) in [
        (
            format!("{CHILD_PREFIX}INDEX"),
            "The child's position in a fan-out (`count`, `params`, `params_from`): 0 to N-1.",
        ),
        (
            format!("{CHILD_PREFIX}COUNT"),
            "The number of children of that fan-out: N.",
        ),
        (
            format!("{RESULT_PREFIX}<STEP>"),
            "The result of each step the child's step depends on directly that has one, as text. `<STEP>` is the step's name upper-cased, `-` and `.` as `_`. A `params_from` child gets its own element instead of its source's whole result.",
        ),
        (
            ITEM_VAR.to_string(),
            "A `params_from` child's element of its source's result when it is not an object: a string as it is, anything else as JSON.",
        ),
    ] {
        let _ = writeln!(out, "| `{name}` | {} |", cell(holds));
    }
}

fn plan_fields(out: &mut String) {
    out.push_str(
        "
## Plan fields

A plan is JSON or YAML, in `JOBHERD_PLAN` or the file `JOBHERD_PLAN_FILE` names. Its format is
told by its top-level key; an unknown field is an error naming it (except in a Jobernetes model,
where it is noted and ignored, as Jobernetes ignores it).
",
    );
    for (title, fields) in [
        ("The top level", TOP_LEVEL_KEYS),
        (
            "A step (of `steps`, or of a phase's `steps`); what it leaves unset comes from the variables",
            STEP_FIELDS,
        ),
        ("A phase (of `phases`)", PHASE_FIELDS),
        (
            "A Jobernetes phase (of `jobernetes`)",
            JOBERNETES_PHASE_FIELDS,
        ),
        (
            "A Jobernetes job (of a phase's `jobs`)",
            JOBERNETES_JOB_FIELDS,
        ),
        ("`jobernetes_config`", JOBERNETES_CONFIG_FIELDS),
    ] {
        field_table(out, title, fields);
    }
}

fn field_table(out: &mut String, title: &str, fields: &[Field]) {
    let _ = write!(out, "\n{title}:\n\n| field | meaning |\n|---|---|\n");
    for f in fields {
        let _ = writeln!(out, "| `{}` | {} |", f.name, cell(f.meaning));
    }
}

fn exit_codes(out: &mut String) {
    out.push_str(
        "
## Exit codes

| code | meaning | in trigger mode |
|---|---|---|
",
    );
    for e in Exit::ALL {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            e.code(),
            cell(e.meaning()),
            cell(e.in_trigger_mode())
        );
    }
}

fn labels(out: &mut String) {
    out.push_str(
        "
## Labels, annotations and Events

Labels jobherd sets:

| label | on | value |
|---|---|---|
",
    );
    let children = "every child Job and its pod template";
    let model = "the child Jobs of a Jobernetes model";
    for (name, on, value) in [
        (MANAGED_BY, children, format!("`{MANAGER}`")),
        (RUN_LABEL, children, "the run: the parent's uid (outside a pod, a generated run id); `kubectl get jobs -l jobherd.io/run=<uid>` lists a run".into()),
        (STEP_LABEL, children, "the child's index without a plan, else its step, and `<step>-<index>` for a step that fans out".into()),
        (QUEUE_LABEL, "child Jobs, not their pod templates, with `JOBHERD_QUEUE` or a step's `queue`", "the Kueue LocalQueue".into()),
        (JOBERNETES_JOB_NAME, model, "the job's `name` in the model".into()),
        (JOBERNETES_PHASE, model, "the phase's position: `0`, `1`, ...".into()),
        (JOBERNETES_EXPLODED, model, "`True` for a file of a `type: directory` job, else `False`".into()),
    ] {
        let _ = writeln!(out, "| `{name}` | {} | {} |", cell(on), cell(&value));
    }
    out.push_str("\nAnnotations jobherd sets:\n\n| annotation | on | value |\n|---|---|---|\n");
    for (name, on, value) in [
        (
            RECORD,
            "the parent Job, at the end of a run",
            "the run's record (JSON, under 200 KiB): its exit code, child name prefix, step shapes, which children succeeded by which run, and the results of the steps others depend on; read by `JOBHERD_RETRY`, the trigger and a retried parent",
        ),
        (
            SUMMARY,
            "the parent Job, at the end of a run",
            "the summary line",
        ),
        (
            INSTANTIATE,
            "the Job the trigger creates",
            "`manual`, as `kubectl create job --from=cronjob/NAME` sets it",
        ),
    ] {
        let _ = writeln!(out, "| `{name}` | {} | {} |", cell(on), cell(value));
    }
    out.push_str("\nEvents on the parent (`kubectl events --for job/NAME`), with the summary line as their message:\n\n| reason | type | when |\n|---|---|---|\n");
    for (reason, kind, when) in [
        (RUN_SUCCEEDED, "Normal", "the run ended with exit 0"),
        (RUN_FAILED, "Warning", "the run ended with any other code"),
        (
            RUN_MOVING,
            "Normal",
            "jobherd's pod was disrupted while its Job goes on: the next attempt adopts the children; the message says how many are left",
        ),
    ] {
        let _ = writeln!(out, "| `{reason}` | {kind} | {} |", cell(when));
    }
}

fn command_line(out: &mut String) {
    out.push_str(
        "
## Command line

Arguments are read before any variable. Any other argument exits 2, naming it.

| argument | prints |
|---|---|
",
    );
    for a in ARGUMENTS {
        let forms: Vec<String> = a.forms.iter().map(|f| format!("`jobherd {f}`")).collect();
        let _ = writeln!(out, "| {} | {} |", forms.join(", "), cell(a.prints));
    }
}

/// Text for a Markdown table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_names_every_variable_field_and_code() {
        let text = markdown();
        for v in VARIABLES {
            assert!(
                text.contains(&format!("| `{}` |", v.name())),
                "{}",
                v.name()
            );
        }
        for f in STEP_FIELDS {
            assert!(text.contains(&format!("| `{}` |", f.name)), "{}", f.name);
        }
        for e in Exit::ALL {
            assert!(text.contains(&format!("\n| {} |", e.code())), "{e:?}");
        }
    }
}
