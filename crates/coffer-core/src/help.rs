//! `path-help` (`GET /v1/<path>?help=1`): what a mount is and what a path
//! does, in Vault's shape (`help` text, `see_also`, an OpenAPI document),
//! built from the path tables the engines route with.

use serde_json::{Map, Value, json};

use crate::logical::Operation;
use crate::paths::{MountHelp, PathDoc};

/// Help for `rel`, a path relative to the mount `help` describes.
pub(crate) fn answer(rel: &str, help: &MountHelp) -> Map<String, Value> {
    let matched = if rel.is_empty() {
        None
    } else {
        doc_for(help, rel)
    };
    let text = match matched {
        Some(d) => path_text(rel, &d, help.description),
        None => mount_text(rel, help),
    };
    let docs: Vec<PathDoc> = matched.map_or_else(|| help.paths.clone(), |d| vec![d]);
    let mut m = Map::new();
    m.insert("help".into(), json!(text));
    m.insert("see_also".into(), Value::Null);
    m.insert("openapi".into(), openapi(&docs));
    m
}

fn doc_for(help: &MountHelp, rel: &str) -> Option<PathDoc> {
    let mut router = matchit::Router::new();
    for (i, d) in help.paths.iter().enumerate() {
        router.insert(format!("/{}", d.pattern), i).ok()?;
    }
    let i = *router.at(&format!("/{rel}")).ok()?.value;
    help.paths.get(i).copied()
}

fn ops(d: &PathDoc) -> String {
    d.operations
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn path_text(rel: &str, d: &PathDoc, description: &str) -> String {
    format!(
        "Request:        {rel}\nMatching Route: {}\n\n{}\n\n## OPERATIONS\n\n    {}\n\n## MOUNT\n\n{}\n",
        d.pattern,
        d.help,
        ops(d),
        description.trim()
    )
}

fn mount_text(rel: &str, help: &MountHelp) -> String {
    let mut out = String::new();
    if !rel.is_empty() {
        out.push_str(&format!(
            "Request:        {rel}\nMatching Route: (no path of this mount matches)\n\n"
        ));
    }
    out.push_str("## DESCRIPTION\n\n");
    out.push_str(help.description.trim());
    out.push_str("\n\n## PATHS\n\nAsk for help on any path matching one of these patterns.\n");
    for d in &help.paths {
        out.push_str(&format!(
            "\n    {}\n        {} ({})\n",
            d.pattern,
            d.help,
            ops(d)
        ));
    }
    out
}

/// The pattern as OpenAPI writes it: `{*rest}` becomes `{rest}`.
fn openapi_path(pattern: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let path = pattern
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let name = name.trim_start_matches('*');
                    names.push(name.to_owned());
                    format!("{{{name}}}")
                }
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    (format!("/{path}"), names)
}

fn openapi(docs: &[PathDoc]) -> Value {
    let mut paths = Map::new();
    for d in docs {
        let (path, names) = openapi_path(d.pattern);
        let mut item = Map::new();
        item.insert("description".into(), json!(d.help));
        item.insert(
            "parameters".into(),
            Value::Array(
                names
                    .iter()
                    .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
                    .collect(),
            ),
        );
        if d.operations.contains(&Operation::Create) {
            item.insert("x-vault-createSupported".into(), json!(true));
        }
        for op in d.operations {
            let (method, summary) = match op {
                Operation::Read => ("get", "read"),
                Operation::List => ("get", "list"),
                Operation::Scan => ("get", "scan"),
                Operation::Create | Operation::Update => ("post", "write"),
                Operation::Patch => ("patch", "patch"),
                Operation::Delete => ("delete", "delete"),
            };
            let entry = item
                .entry(method)
                .or_insert_with(|| json!({"summary": d.help, "operations": []}));
            if let Some(list) = entry["operations"].as_array_mut()
                && !list.iter().any(|v| v == summary)
            {
                list.push(json!(summary));
            }
        }
        paths.insert(path, Value::Object(item));
    }
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": "coffer API",
            "description": "Vault-compatible HTTP API; every route is under /v1/.",
            "version": crate::VERSION,
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATHS: &[PathDoc] = &[
        PathDoc {
            pattern: "keys/{name}",
            operations: &[Operation::Read, Operation::Update, Operation::Delete],
            help: "Manage a named key.",
        },
        PathDoc {
            pattern: "data/{*path}",
            operations: &[Operation::Read, Operation::Create, Operation::Update],
            help: "Read and write data.",
        },
    ];

    fn mount() -> MountHelp {
        MountHelp {
            description: "An engine for tests.",
            paths: PATHS.to_vec(),
        }
    }

    #[test]
    fn a_path_gets_its_row() {
        let a = answer("data/a/b", &mount());
        let text = a["help"].as_str().unwrap();
        assert!(
            text.starts_with(
                "Request:        data/a/b\nMatching Route: data/{*path}\n\nRead and write data."
            ),
            "{text}"
        );
        assert_eq!(a["see_also"], Value::Null);
        let p = &a["openapi"]["paths"]["/data/{path}"];
        assert_eq!(p["parameters"][0]["name"], "path");
        assert_eq!(p["x-vault-createSupported"], true);
        assert!(p["get"].is_object() && p["post"].is_object() && p.get("delete").is_none());
    }

    #[test]
    fn the_mount_and_unknown_paths_get_the_overview() {
        for rel in ["", "nothing/here"] {
            let a = answer(rel, &mount());
            let text = a["help"].as_str().unwrap();
            assert!(
                text.contains("## DESCRIPTION\n\nAn engine for tests."),
                "{text}"
            );
            assert!(text.contains("keys/{name}") && text.contains("data/{*path}"));
            assert_eq!(a["openapi"]["paths"].as_object().unwrap().len(), 2);
        }
    }
}
