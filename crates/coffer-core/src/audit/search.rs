//! Searching what the devices recorded: who did what on a path, in a time
//! window, from the devices whose lines can be read back (files). Values in
//! the lines are HMAC'd already; this only reads who, when, what and how it
//! ended.

use std::collections::VecDeque;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What to look for.
#[derive(Debug, Clone)]
pub struct Query {
    /// A logical path; with a trailing `*`, every path it prefixes.
    pub path: String,
    /// Operations to keep (`read`, `update`, ...); empty keeps all.
    pub operations: Vec<String>,
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries at or before this time.
    pub until: Option<OffsetDateTime>,
    /// Most entries returned (the newest are kept).
    pub limit: usize,
}

impl Query {
    fn path_matches(&self, p: &str) -> bool {
        match self.path.strip_suffix('*') {
            Some(prefix) => p.starts_with(prefix),
            None => p == self.path,
        }
    }

    /// The text every matching line contains, to skip others unparsed.
    fn needle(&self) -> String {
        let p = self.path.strip_suffix('*').unwrap_or(&self.path);
        // As JSON writes it; a path with characters JSON escapes is rare
        // enough to fall back to parsing every line.
        if p.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            String::new()
        } else {
            format!("\"path\":\"{p}")
        }
    }
}

/// One completed request on a matching path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    /// When (RFC 3339, as the device wrote it).
    pub time: String,
    /// The device that recorded it.
    pub device: String,
    /// `read`, `update`, `list`, ...
    pub operation: String,
    /// The logical path.
    pub path: String,
    /// The token's display name.
    pub display_name: String,
    /// The token's accessor (HMAC'd unless the device has `hmac_accessor=false`).
    pub accessor: String,
    /// The token's policies.
    pub policies: Vec<String>,
    /// The client's address.
    pub remote_address: String,
    /// The request id.
    pub request_id: String,
    /// The error, when the request failed (`permission denied`, ...).
    pub error: Option<String>,
}

/// Matches found so far, newest kept.
#[derive(Debug, Default)]
pub struct Found {
    /// Up to `limit` matches, oldest first.
    pub hits: VecDeque<Hit>,
    /// Matches beyond the limit (dropped, oldest first).
    pub dropped: u64,
    /// Lines read.
    pub lines: u64,
    /// Lines that were not audit entries (damaged, or another program's).
    pub unreadable: u64,
}

fn text(v: &Value, keys: &[&str]) -> String {
    let mut cur = v;
    for k in keys {
        cur = &cur[*k];
    }
    cur.as_str().unwrap_or_default().to_owned()
}

/// Reads one device's lines (each may start with the device's prefix).
pub fn scan(
    reader: impl BufRead,
    device: &str,
    prefix: &str,
    q: &Query,
    found: &mut Found,
) -> std::io::Result<()> {
    let needle = q.needle();
    for line in reader.split(b'\n') {
        let line = line?;
        found.lines += 1;
        let Ok(line) = std::str::from_utf8(&line) else {
            found.unreadable += 1;
            continue;
        };
        if !needle.is_empty() && !line.contains(&needle) {
            continue;
        }
        let body = line.strip_prefix(prefix).unwrap_or(line);
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            found.unreadable += 1;
            continue;
        };
        // One response entry per completed request, failures included.
        if v["type"] != "response" || !q.path_matches(v["request"]["path"].as_str().unwrap_or("")) {
            continue;
        }
        let operation = text(&v, &["request", "operation"]);
        if !q.operations.is_empty() && !q.operations.contains(&operation) {
            continue;
        }
        let time = text(&v, &["time"]);
        if q.since.is_some() || q.until.is_some() {
            let Ok(t) = OffsetDateTime::parse(&time, &Rfc3339) else {
                continue;
            };
            if q.since.is_some_and(|s| t < s) || q.until.is_some_and(|u| t > u) {
                continue;
            }
        }
        let policies = v["auth"]["policies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        found.hits.push_back(Hit {
            time,
            device: device.to_owned(),
            operation,
            path: text(&v, &["request", "path"]),
            display_name: text(&v, &["auth", "display_name"]),
            accessor: text(&v, &["request", "client_token_accessor"]),
            policies,
            remote_address: text(&v, &["request", "remote_address"]),
            request_id: text(&v, &["request", "id"]),
            error: v["error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
        });
        if found.hits.len() > q.limit {
            found.hits.pop_front();
            found.dropped += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: &str, path: &str, op: &str, who: &str, error: Option<&str>) -> String {
        let mut v = serde_json::json!({
            "time": time, "type": "response",
            "auth": {"display_name": who, "policies": ["default", "app"]},
            "request": {"id": "r1", "path": path, "operation": op, "remote_address": "10.0.0.9", "client_token_accessor": "hmac-sha256:aa"},
        });
        if let Some(e) = error {
            v["error"] = e.into();
        }
        v.to_string()
    }

    fn q(path: &str) -> Query {
        Query {
            path: path.into(),
            operations: vec!["read".into()],
            since: None,
            until: None,
            limit: 100,
        }
    }

    #[test]
    fn finds_reads_of_a_path_in_a_window_with_failures() {
        let log = [
            line("2026-12-01T10:00:00Z", "secret/data/app", "read", "alice", None),
            line("2026-12-02T10:00:00Z", "secret/data/app", "read", "bob", Some("permission denied")),
            line("2026-12-02T11:00:00Z", "secret/data/app", "update", "carol", None),
            line("2026-12-02T12:00:00Z", "secret/data/app2", "read", "dave", None),
            "not json at all".into(),
            r#"{"type":"response","request":{"path":"secret/data/app"#.into(),
            r#"{"time":"2026-12-03T10:00:00Z","type":"request","request":{"path":"secret/data/app","operation":"read"}}"#.into(),
            format!("PFX{}", line("2026-12-03T10:00:00Z", "secret/data/app", "read", "erin", None)),
        ]
        .join("\n");
        let mut found = Found::default();
        scan(
            log.as_bytes(),
            "file/",
            "PFX",
            &q("secret/data/app"),
            &mut found,
        )
        .unwrap();
        let who: Vec<_> = found.hits.iter().map(|h| h.display_name.as_str()).collect();
        assert_eq!(who, ["alice", "bob", "erin"]);
        assert_eq!(found.hits[1].error.as_deref(), Some("permission denied"));
        assert_eq!(found.hits[0].policies, ["default", "app"]);

        let mut window = q("secret/data/app");
        window.since = Some(OffsetDateTime::parse("2026-12-02T00:00:00Z", &Rfc3339).unwrap());
        window.until = Some(OffsetDateTime::parse("2026-12-02T23:59:59Z", &Rfc3339).unwrap());
        let mut found = Found::default();
        scan(log.as_bytes(), "file/", "PFX", &window, &mut found).unwrap();
        assert_eq!(found.hits.len(), 1);
        assert_eq!(found.hits[0].display_name, "bob");

        let mut found = Found::default();
        scan(
            log.as_bytes(),
            "file/",
            "PFX",
            &q("secret/data/app*"),
            &mut found,
        )
        .unwrap();
        assert_eq!(found.hits.len(), 4);
        assert_eq!(found.unreadable, 1);
    }

    #[test]
    fn keeps_the_newest_within_the_limit() {
        let log: Vec<_> = (0..10)
            .map(|i| {
                line(
                    &format!("2026-12-01T10:00:{i:02}Z"),
                    "kv/x",
                    "read",
                    &format!("u{i}"),
                    None,
                )
            })
            .collect();
        let mut query = q("kv/x");
        query.limit = 3;
        let mut found = Found::default();
        scan(log.join("\n").as_bytes(), "file/", "", &query, &mut found).unwrap();
        let who: Vec<_> = found.hits.iter().map(|h| h.display_name.as_str()).collect();
        assert_eq!(who, ["u7", "u8", "u9"]);
        assert_eq!(found.dropped, 7);
    }
}
