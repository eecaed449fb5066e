//! Value parsers shared by the variables and the plan's fields: JSON (arrays of strings, env
//! objects, parameters, Job manifests), booleans, durations, DNS labels, and "did you mean".

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;

use super::EnvMap;

/// Strict JSON, with the parser's own words on where it broke.
pub fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON ({e})"))
}

/// A JSON array of strings, e.g. `["perl","-e","print 1"]`.
pub fn string_array_from_json(value: &serde_json::Value) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or("expected a JSON array of strings, e.g. [\"echo\",\"hello\"]")?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("expected a JSON array of strings, found element {i}"))
        })
        .collect()
}

/// A JSON object of env vars; strings, numbers and booleans are accepted as values.
pub fn env_from_json(value: &serde_json::Value) -> Result<EnvMap, String> {
    let object = value
        .as_object()
        .ok_or("expected a JSON object of env vars, e.g. {\"NAME\":\"value\"}")?;
    object
        .iter()
        .map(|(k, v)| {
            check_env_name(k)?;
            Ok((k.clone(), scalar_to_string(k, v)?))
        })
        .collect()
}

/// A JSON array of env-var objects, one per child.
pub fn params_from_json(value: &serde_json::Value) -> Result<Vec<EnvMap>, String> {
    let items = value
        .as_array()
        .ok_or("expected a JSON array of objects, one per child")?;
    if items.is_empty() {
        return Err("expected at least one parameter object".into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| env_from_json(item).map_err(|e| format!("element {i}: {e}")))
        .collect()
}

fn scalar_to_string(key: &str, v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "value of {key} must be a string, number or boolean, found {v}"
        )),
    }
}

/// Env var names as Kubernetes accepts them (C identifier-like, plus `.` and `-`).
fn check_env_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid environment variable name"))
    }
}

/// A batch/v1 Job manifest given as JSON (or YAML turned into JSON).
pub fn job_from_json(value: serde_json::Value) -> Result<Job, String> {
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value.get("kind").and_then(|v| v.as_str());
    match (api_version, kind) {
        (Some("batch/v1"), Some("Job")) | (None, None) => {}
        (a, k) => {
            return Err(format!(
                "expected a batch/v1 Job, found {} {}",
                a.unwrap_or("(no apiVersion)"),
                k.unwrap_or("(no kind)")
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("not a valid batch/v1 Job: {e}"))
}

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// A duration that must not be zero (timeouts).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).and_then(|d| {
        if d.is_zero() {
            Err("expected a duration greater than 0".into())
        } else {
            Ok(d)
        }
    })
}

/// `90s`, `10m`, `1h30m`, `2h`, or plain seconds (`600`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration like 90s, 10m, 1h30m or plain seconds";
    let s = s.trim();
    if s.is_empty() {
        return Err(EXPECTED.into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = u64::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(EXPECTED.into()),
        };
        // Units must come in decreasing order and each once: `1h30m`, not `30m1h` or `1m1m`.
        if number.is_empty() || unit >= last_unit {
            return Err(EXPECTED.into());
        }
        let n: u64 = number.parse().map_err(|_| EXPECTED.to_string())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or(EXPECTED)?;
        number.clear();
        last_unit = unit;
    }
    if !number.is_empty() {
        return Err(EXPECTED.into());
    }
    Ok(Duration::from_secs(total))
}

/// A Kueue LocalQueue's name, as the label `kueue.x-k8s.io/queue-name` holds it: a DNS-1123
/// label (the name of an object, and a label value).
pub fn parse_queue(s: &str) -> Result<String, String> {
    check_dns_label(s).map(|()| s.to_string()).map_err(|e| {
        format!("expected the name of a Kueue LocalQueue in the children's namespace: {e}")
    })
}

/// A DNS-1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
        ))
    }
}

/// The candidate nearest to a misspelt word, if it is close enough to be a typo
/// (shared by variable names, plan fields and step names so every "did you mean" agrees).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `1h2m3s`, `4m0s`, `12s`, `0.4s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h0m5s"), Ok(Duration::from_secs(3605)));
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        for bad in ["", "10x", "m", "30m1h", "1m1m", "-5", "1.5h", "10 m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
