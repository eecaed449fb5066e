//! What every plan format reads alike: mappings and lists (YAML's empty value as nothing),
//! a name, `depends_on`, and the guard on fields a format does not know.

use serde_json::{Map, Value};

use super::{Ctx, PlanError, check_step_name};
use crate::config::nearest;

/// A field of a plan format: the typo guard knows its name, the reference says what it does.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    /// What it holds and does, in a sentence or two (Markdown).
    pub meaning: &'static str,
}

/// The names of `fields`, for the typo guard and its "did you mean".
pub(super) fn field_names(fields: &[Field]) -> impl Iterator<Item = &'static str> + '_ {
    fields.iter().map(|f| f.name)
}

/// Whether `key` is one of `fields`.
pub(super) fn knows(fields: &[Field], key: &str) -> bool {
    field_names(fields).any(|n| n == key)
}

/// YAML reads some bare words as booleans or numbers (`y`, `no`, `on`, `1`): names that look
/// like them need quotes.
const QUOTE_HINT: &str = " (quote names that YAML would read as a boolean or number)";

pub(super) fn entry_name(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    position: &str,
    noun: &str,
) -> Result<String, PlanError> {
    match fields.get("name") {
        Some(Value::String(name)) => {
            check_step_name(name).map_err(|e| ctx.name(format!("{noun} {e}")))?;
            Ok(name.clone())
        }
        Some(v) => Err(ctx.format(format!(
            "{position}: `name` must be a string, found {v}{QUOTE_HINT}"
        ))),
        None => Err(ctx.format(format!("{position} has no name"))),
    }
}

pub(super) fn depends_on(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    label: &str,
) -> Result<Vec<String>, PlanError> {
    let Some(value) = fields.get("depends_on") else {
        return Ok(Vec::new());
    };
    let names = list(value).and_then(|items| {
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
    });
    names.ok_or_else(|| {
        let scalar = |v: &Value| v.is_boolean() || v.is_number();
        let hint = if list(value).is_some_and(|items| items.iter().any(scalar)) {
            QUOTE_HINT
        } else {
            ""
        };
        ctx.format(format!(
            "{label}: `depends_on` must be a list of step names, e.g. [\"prepare\"], found {value}{hint}"
        ))
    })
}

/// Rejects fields outside `allowed` (a typo guard), suggesting the nearest one.
pub(super) fn check_fields(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allowed: &[Field],
    label: &str,
    what: &str,
) -> Result<(), PlanError> {
    match fields.keys().find(|k| !knows(allowed, k)) {
        Some(key) => Err(ctx.format(format!(
            "{label} has an unknown field {key:?}{}; {what} takes {}",
            did_you_mean(key, field_names(allowed)),
            field_names(allowed).collect::<Vec<_>>().join(", ")
        ))),
        None => Ok(()),
    }
}

/// Notes every field outside `allowed`, suggesting the nearest one: a Jobernetes model that
/// worked with a typo in an optional key (`depend_on`) ran without it there, and does here.
pub(super) fn note_unknown_fields(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allowed: &[Field],
    label: &str,
) {
    for key in fields.keys().filter(|k| !knows(allowed, k)) {
        ctx.note(format!(
            "{label}: field {key:?} is ignored, as Jobernetes ignores it{}",
            did_you_mean(key, field_names(allowed))
        ));
    }
}

pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    nearest(word, candidates)
        .map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

/// A YAML/JSON mapping with `null` values dropped: in YAML an empty `depends_on:` or `env:` is
/// null, and means the same as leaving the field out.
pub(super) fn mapping(value: &Value) -> Option<Map<String, Value>> {
    value.as_object().map(|m| {
        m.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// A list, with `null` (an empty YAML value) as the empty list.
pub(super) fn list(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        Value::Null => Some(&[]),
        _ => None,
    }
}

pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::test_support::*;

    #[test]
    fn names_yaml_reads_as_booleans_get_a_quoting_hint() {
        assert_eq!(
            error("steps: [{name: a, depends_on: [y]}]"),
            "plan.yaml: step \"a\": `depends_on` must be a list of step names, e.g. [\"prepare\"], found [true] (quote names that YAML would read as a boolean or number)"
        );
        assert_eq!(
            error("steps: [{name: 1}]"),
            "plan.yaml: step 1: `name` must be a string, found 1 (quote names that YAML would read as a boolean or number)"
        );
        assert_eq!(names(&plan("steps: [{name: 'y'}]")), ["y"]);
    }
}
