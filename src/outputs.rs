//! What children write and steps pass on (SPEC §8 calls them results; in the code a child's
//! *result* is how it ended, and what it wrote is its *output*). A child's output is what its
//! container wrote to its termination message; a step's output is what the steps after it get
//! as `JOBHERD_RESULT_<STEP>`; a `params_from` step fans out over the elements of one. Pure: the
//! run keeps the outputs, `herd` reads them from the pods.

use serde_json::Value;

use crate::config::{EnvMap, ITEM_VAR, RESULT_PREFIX, env_from_json};

/// The most one environment variable may hold: Linux refuses to start a process with a
/// `NAME=value` string longer than 128 KiB (`MAX_ARG_STRLEN`), so a child given more would fail
/// to start, after its dependencies ran.
pub const MAX_VARIABLE: usize = 128 * 1024 - 1;
/// How much of a result a message shows.
const SHOWN: usize = 80;

/// The most the kubelet keeps of a termination message: the last 4096 bytes of the file.
pub const KUBELET_MESSAGE: usize = 4096;

/// What a child wrote, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Output {
    /// Not read yet: the child has not succeeded, or its succeeded pod was not seen yet.
    #[default]
    Unread,
    /// It succeeded without writing a termination message.
    Absent,
    Text(Box<str>),
    /// It succeeded, but what it wrote cannot be known: why (its pods are gone, reading pods
    /// is forbidden, the kubelet cut the message).
    Lost(Box<str>),
}

impl Output {
    /// What a succeeded container's termination message says. One of the kubelet's full 4096
    /// bytes was most likely cut (the kubelet keeps the file's end): it is no output to pass on.
    pub fn from_message(message: Option<&str>) -> Output {
        match message {
            Some(text) if text.len() >= KUBELET_MESSAGE => Output::Lost(
                format!(
                    "its termination message was cut by the kubelet, which keeps only the last {KUBELET_MESSAGE} bytes: keep results under 4 KiB, or write them to object storage and pass their key"
                )
                .into(),
            ),
            Some(text) if !text.is_empty() => Output::Text(text.into()),
            _ => Output::Absent,
        }
    }

    /// Why it cannot be known, when it cannot.
    pub fn lost(&self) -> Option<&str> {
        match self {
            Output::Lost(why) => Some(why),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Output::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn is_unread(&self) -> bool {
        *self == Output::Unread
    }
}

/// A result as a JSON value: parsed when it is JSON, else the text as a string.
pub fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A step's output: its child's text, or, for a step that fans out, a JSON array of its
/// children's outputs in index order (`null` for a child that wrote none). `None` when a single
/// child wrote nothing.
pub fn step_output<'a>(
    fans_out: bool,
    mut outputs: impl Iterator<Item = &'a Output>,
) -> Option<String> {
    if !fans_out {
        return outputs.next().and_then(Output::text).map(str::to_string);
    }
    let values: Vec<Value> = outputs
        .map(|o| o.text().map_or(Value::Null, value))
        .collect();
    Some(Value::Array(values).to_string())
}

/// `JOBHERD_RESULT_<STEP>`: the step upper-cased, `-` and `.` as `_`.
pub fn variable(step: &str) -> String {
    let name: String = step
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("{RESULT_PREFIX}{name}")
}

/// Whether a result fits in its variable (see `MAX_VARIABLE`); else why not.
pub fn fits(name: &str, result: &str) -> Result<(), String> {
    let size = name.len() + 1 + result.len();
    if size <= MAX_VARIABLE {
        return Ok(());
    }
    Err(format!(
        "{name} would be {} KiB, more than an environment variable can hold (128 KiB): write large results to object storage and pass their key",
        size.div_ceil(1024)
    ))
}

/// The items a `params_from` step fans out over: one per element of the source step's result,
/// which must be a JSON array. An object's entries become the child's variables, as with
/// `params`; any other element is its `JOBHERD_ITEM` (a string as it is, anything else as JSON).
/// The error is the `BadResult` message.
pub fn items(source: &str, result: Option<&str>) -> Result<Vec<EnvMap>, String> {
    let Some(text) = result else {
        return Err(format!(
            "step {source} gave no result: its child wrote nothing to its termination message"
        ));
    };
    let elements = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(elements)) => elements,
        Ok(other) => {
            return Err(format!(
                "the result of step {source} is {}, not a JSON array: {}",
                kind(&other),
                start_of(text)
            ));
        }
        Err(_) => {
            return Err(format!(
                "the result of step {source} is not JSON: {}",
                start_of(text)
            ));
        }
    };
    elements
        .iter()
        .enumerate()
        .map(|(i, element)| match element {
            Value::Object(_) => env_from_json(element)
                .map_err(|e| format!("element {i} of the result of step {source}: {e}")),
            Value::String(s) => Ok(EnvMap::from([(ITEM_VAR.to_string(), s.clone())])),
            other => Ok(EnvMap::from([(ITEM_VAR.to_string(), other.to_string())])),
        })
        .collect()
}

/// The start of a result, quoted, for a message on one line.
fn start_of(text: &str) -> String {
    let mut cut = text.len().min(SHOWN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < text.len() { "..." } else { "" };
    format!("{:?}{more}", &text[..cut])
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Output {
        Output::Text(s.into())
    }

    #[test]
    fn a_single_childs_text_is_the_steps_result() {
        assert_eq!(
            step_output(false, [text("rows=3")].iter()),
            Some("rows=3".into())
        );
        assert_eq!(step_output(false, [Output::Absent].iter()), None);
    }

    #[test]
    fn a_fan_out_gives_an_array_of_json_or_strings_in_index_order() {
        let outputs = [text(r#"{"rows": 3}"#), Output::Absent, text("plain words")];
        assert_eq!(
            step_output(true, outputs.iter()),
            Some(r#"[{"rows":3},null,"plain words"]"#.into())
        );
        assert_eq!(step_output(true, [].iter()), Some("[]".into()));
    }

    #[test]
    fn variables_are_named_after_the_step() {
        assert_eq!(variable("download-a.eu"), "JOBHERD_RESULT_DOWNLOAD_A_EU");
        assert_eq!(variable("sleep_one"), "JOBHERD_RESULT_SLEEP_ONE");
    }

    #[test]
    fn items_are_objects_as_params_or_anything_else_as_jobherd_item() {
        let got = items("list", Some(r#"[{"P":"a","N":2},"2026-12-01",7,[1]]"#)).unwrap();
        assert_eq!(got[0]["P"], "a");
        assert_eq!(got[0]["N"], "2");
        assert_eq!(got[1][ITEM_VAR], "2026-12-01");
        assert_eq!(got[2][ITEM_VAR], "7");
        assert_eq!(got[3][ITEM_VAR], "[1]");
        assert!(items("list", Some("[]")).unwrap().is_empty());
    }

    #[test]
    fn a_result_that_is_no_array_says_what_it_got() {
        let e = items("list", Some("partition-1 partition-2")).unwrap_err();
        assert_eq!(
            e,
            "the result of step list is not JSON: \"partition-1 partition-2\""
        );
        let e = items("list", Some(r#"{"a":1}"#)).unwrap_err();
        assert!(e.contains("is an object, not a JSON array"), "{e}");
        let e = items("list", None).unwrap_err();
        assert!(e.contains("gave no result"), "{e}");
        let e = items("list", Some(r#"[{"A":{"b":1}}]"#)).unwrap_err();
        assert!(e.starts_with("element 0 of the result of step list"), "{e}");
        let long = format!("\"{}", "x".repeat(200));
        assert!(
            items("list", Some(&long))
                .unwrap_err()
                .ends_with("xxx\"...")
        );
    }

    #[test]
    fn a_result_too_large_for_a_variable_is_refused() {
        assert!(fits("JOBHERD_RESULT_A", &"x".repeat(1000)).is_ok());
        let e = fits("JOBHERD_RESULT_A", &"x".repeat(200 * 1024)).unwrap_err();
        assert!(e.contains("201 KiB"), "{e}");
    }
}
