//! Vault's loose input typing: numbers as strings, durations as `"1h"`, lists as comma strings.

use serde_json::{Map, Value};

use crate::logical::LogicalError;

fn bad(field: &str, what: &str, v: &Value) -> LogicalError {
    LogicalError::BadRequest(format!("field {field:?}: expected {what}, got {v}"))
}

/// Parses a Go-style duration (`"1h30m"`, `"1.5h"`, `"50d"`, `"300"`) into whole seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if s.starts_with('-') {
        return Err(format!("duration {s:?} is negative"));
    }
    let mut total = 0f64;
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {s:?} is missing a unit (s, m, h, d)"))?;
        if num_end == 0 {
            return Err(format!("duration {s:?} is not a number with a unit"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("duration {s:?} has a bad number"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => return Err(format!("duration {s:?} has an unknown unit {u:?}")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("duration {s:?} is too large"));
    }
    Ok(total as u64)
}

/// Parses a bool the way Go's `strconv.ParseBool` does.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Typed, lenient access to request data.
pub struct Fields<'a> {
    data: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Wraps request data.
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Self { data }
    }

    /// The raw value, treating JSON `null` as absent.
    pub fn raw(&self, k: &str) -> Option<&'a Value> {
        self.data.get(k).filter(|v| !v.is_null())
    }

    /// A string field; numbers and bools are stringified.
    pub fn str(&self, k: &str) -> Result<Option<String>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            Some(v) => return Err(bad(k, "a string", v)),
        })
    }

    /// A bool field: `true`, `"true"`, `1`, `"1"`...
    pub fn bool(&self, k: &str) -> Result<Option<bool>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) => Some(n.as_f64().unwrap_or(0.0) != 0.0),
            Some(v @ Value::String(s)) => Some(parse_bool(s).ok_or_else(|| bad(k, "a bool", v))?),
            Some(v) => return Err(bad(k, "a bool", v)),
        })
    }

    /// An integer field: `10` or `"10"`.
    pub fn int(&self, k: &str) -> Result<Option<i64>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(v @ Value::Number(n)) => Some(n.as_i64().ok_or_else(|| bad(k, "an integer", v))?),
            Some(v @ Value::String(s)) => {
                Some(s.trim().parse().map_err(|_| bad(k, "an integer", v))?)
            }
            Some(v) => return Err(bad(k, "an integer", v)),
        })
    }

    /// A duration in seconds: `3600`, `"3600"`, `"1h"`.
    pub fn duration(&self, k: &str) -> Result<Option<u64>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(v @ Value::Number(n)) => match n.as_u64() {
                Some(secs) => Some(secs),
                None => return Err(bad(k, "a non-negative duration", v)),
            },
            Some(Value::String(s)) => Some(
                parse_duration(s)
                    .map_err(|e| LogicalError::BadRequest(format!("field {k:?}: {e}")))?,
            ),
            Some(v) => return Err(bad(k, "a duration", v)),
        })
    }

    /// A list of strings: a JSON array, or a comma-separated string.
    pub fn str_list(&self, k: &str) -> Result<Option<Vec<String>>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(Value::String(s)) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(_) | Value::Bool(_) => Ok(i.to_string()),
                        v => Err(bad(k, "a list of strings", v)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => return Err(bad(k, "a list of strings", v)),
        })
    }

    /// A map of strings; values are weakly stringified (`{"version": 2}` gives `"2"`).
    pub fn str_map(
        &self,
        k: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(Value::Object(m)) => Some(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(mk, v)| match v {
                        Value::String(s) => Ok((mk.clone(), s.clone())),
                        Value::Number(_) | Value::Bool(_) => Ok((mk.clone(), v.to_string())),
                        v => Err(bad(k, "a map of strings", v)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => return Err(bad(k, "an object", v)),
        })
    }

    /// A nested object.
    pub fn object(&self, k: &str) -> Result<Option<&'a Map<String, Value>>, LogicalError> {
        Ok(match self.raw(k) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(v) => return Err(bad(k, "an object", v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_in_every_accepted_shape() {
        for (input, secs) in [
            ("3600", 3600),
            ("1h", 3600),
            ("30m0s", 1800),
            ("1.5h", 5400),
            ("50d", 4_320_000),
            ("1h30m10s", 5410),
            ("", 0),
            ("768h", 2_764_800),
        ] {
            assert_eq!(parse_duration(input), Ok(secs), "{input}");
        }
        for bad in ["-1", "1x", "h", "1h-", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loose_typing_of_fields() {
        let data =
            json!({"n": "10", "b": "t", "b2": 1, "l": "a, b,c", "d": 60, "m": {"version": 2}})
                .as_object()
                .cloned()
                .unwrap();
        let f = Fields::new(&data);
        assert_eq!(f.int("n").unwrap(), Some(10));
        assert_eq!(f.bool("b").unwrap(), Some(true));
        assert_eq!(f.bool("b2").unwrap(), Some(true));
        assert_eq!(f.str_list("l").unwrap().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(f.duration("d").unwrap(), Some(60));
        assert_eq!(f.str_map("m").unwrap().unwrap()["version"], "2");
        assert!(f.bool("n").is_err());
    }
}
