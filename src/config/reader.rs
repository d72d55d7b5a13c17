//! A YAML walker that reads typed values out of a `serde_yaml::Value` while
//! collecting every problem with its path, so a bad file is reported whole.

use serde_yaml::{Mapping, Value};
use std::time::Duration;

/// One validation problem: where it is (`routes[2].methods`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems while values are read.
#[derive(Default)]
pub struct Problems(pub Vec<Problem>, Vec<String>);

impl Problems {
    pub fn add(&mut self, path: &str, message: impl Into<String>) {
        if self.silenced(path) {
            return;
        }
        self.0.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// No more problems at or below `path`: its value could not be read
    /// (an unset variable), and what follows from that is not news.
    fn silence(&mut self, path: &str) {
        self.1.push(path.to_string());
    }

    /// `path` is at or below a value that could not be read.
    pub fn silenced(&self, path: &str) -> bool {
        self.1.iter().any(|root| {
            path.strip_prefix(root.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// Joins a parent path and a key: `jwt` + `secret` → `jwt.secret`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A mapping being read: every key that is looked at is remembered, and
/// [`Section::finish`] reports the keys nobody asked for.
pub struct Section<'a> {
    path: String,
    map: Option<&'a Mapping>,
    seen: Vec<&'static str>,
}

impl<'a> Section<'a> {
    /// Opens `value` at `path`; a non-mapping is a problem and reads as empty.
    pub fn open(value: Option<&'a Value>, path: &str, problems: &mut Problems) -> Self {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(_) => {
                problems.add(path, "expected a mapping");
                None
            }
        };
        Section {
            path: path.to_string(),
            map,
            seen: Vec::new(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_present(&self) -> bool {
        self.map.is_some()
    }

    pub fn child_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value under `key`, marking the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        match self.map?.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn string(&mut self, key: &'static str, problems: &mut Problems) -> Option<String> {
        let path = self.child_path(key);
        let v = self.get(key)?;
        scalar_string(v, &path, problems)
    }

    pub fn duration(&mut self, key: &'static str, problems: &mut Problems) -> Option<Duration> {
        let path = self.child_path(key);
        let text = self.string(key, problems)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.add(&path, e);
                None
            }
        }
    }

    pub fn string_list(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
    ) -> Option<Vec<String>> {
        let path = self.child_path(key);
        let v = self.get(key)?;
        match v {
            Value::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| scalar_string(item, &format!("{path}[{i}]"), problems))
                    .collect(),
            ),
            // A single scalar is accepted as a one-element list.
            other => scalar_string(other, &path, problems).map(|s| vec![s]),
        }
    }

    pub fn section(&mut self, key: &'static str, problems: &mut Problems) -> Section<'a> {
        let path = self.child_path(key);
        let v = self.get(key);
        Section::open(v, &path, problems)
    }

    /// Reports every key of the mapping that was never read.
    pub fn finish(self, problems: &mut Problems) {
        let Some(map) = self.map else { return };
        for key in map.keys() {
            match key.as_str() {
                Some(k) if self.seen.contains(&k) => {}
                // Reported even when its value could not be expanded: a
                // misspelled key is news of its own.
                Some(k) => problems.0.push(Problem {
                    path: join(&self.path, k),
                    message: "unknown key".into(),
                }),
                None => problems.add(&self.path, "keys must be strings"),
            }
        }
    }
}

/// A scalar as text: strings as they are, numbers and booleans written out.
pub fn scalar_string(v: &Value, path: &str, problems: &mut Problems) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            problems.add(path, "expected a string");
            None
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `24h` (also `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (write e.g. 250ms, 30s, 5m, 24h)");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

/// Replaces `${NAME}` with the environment's value in every string of the
/// document; an unset variable is a problem at the string's path.
pub fn expand_env(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match value {
        Value::String(s) if s.contains("${") => match expand_str(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(e) => {
                problems.add(path, e);
                problems.silence(path);
            }
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), lookup, problems);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?").to_string();
                expand_env(v, &join(path, &key), lookup, problems);
            }
        }
        _ => {}
    }
}

fn expand_str(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ in string".to_string())?;
        let name = &after[..end];
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("invalid variable name ${{{name}}}"));
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn env_expansion_reports_unset_variables() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_str("a${A}b", &lookup), Ok("axb".into()));
        assert!(expand_str("${B}", &lookup)
            .unwrap_err()
            .contains("B is not set"));
        assert!(expand_str("${A", &lookup).is_err());
    }
}
