//! The policy table: (policy, path, operation, expected), evaluated through
//! parsing and ACL compilation exactly as requests are.

use serde_json::{Map, Value, json};

use super::{Acl, AclRequest};
use crate::logical::Operation::{self, *};
use crate::policy::parse_policy;

const MAIN: &str = r#"
path "secret/*"              { capabilities = ["read", "list"] }
path "secret/team/*"         { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/team/locked"    { capabilities = ["deny"] }
path "secret/exact"          { capabilities = ["update"] }
path "secret/+/teamb"        { capabilities = ["read", "update"] }
path "secret/+/+/deep"       { capabilities = ["delete"] }
path "secret/zip-*"          { capabilities = ["patch"] }
path "kv/data/+/config*"     { capabilities = ["read"] }
path "sys/mounts/*"          { capabilities = ["read", "update", "sudo"] }
path "sys/rotate"            { capabilities = ["update"] }
path "sys/key-status"        { capabilities = ["read", "sudo"] }
path "list/me"               { capabilities = ["list"] }
path "scan/*"                { capabilities = ["scan"] }
path "params/allowed"        {
  capabilities = ["create", "update"]
  allowed_parameters = { "color" = ["red", "blue-*"], "size" = [] }
}
path "params/denied"         {
  capabilities = ["update"]
  denied_parameters = { "admin" = [], "role" = ["root", "*-owner"] }
}
path "params/required"       {
  capabilities = ["update"]
  required_parameters = ["id"]
}
path "params/star"           {
  capabilities = ["update"]
  allowed_parameters = { "*" = [] }
}
path "params/deny-all"       {
  capabilities = ["update"]
  denied_parameters = { "*" = [] }
}
path "wrap/only"             {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "1h"
}
path "legacy/write"          { policy = "write" }
path "legacy/read/*"         { policy = "read" }
"#;

const SECOND: &str = r#"
path "secret/team/locked"    { capabilities = ["read", "sudo"] }
path "secret/exact"          { capabilities = ["read"] }
path "other/*"               { capabilities = ["read"] }
"#;

struct Case {
    path: &'static str,
    op: Operation,
    data: Value,
    root_protected: bool,
    wrap_ttl: Option<u64>,
    allowed: bool,
    why: &'static str,
}

fn c(path: &'static str, op: Operation, allowed: bool, why: &'static str) -> Case {
    Case {
        path,
        op,
        data: json!({}),
        root_protected: false,
        wrap_ttl: None,
        allowed,
        why,
    }
}

fn with(mut case: Case, data: Value) -> Case {
    case.data = data;
    case
}

fn sudo(mut case: Case) -> Case {
    case.root_protected = true;
    case
}

fn wrapped(mut case: Case, ttl: u64) -> Case {
    case.wrap_ttl = Some(ttl);
    case
}

fn table() -> Vec<Case> {
    vec![
        c("secret/foo", Read, true, "prefix glob grants read"),
        c("secret/foo", Update, false, "prefix glob has no update"),
        c("secret/", List, true, "list on the glob's own folder"),
        c(
            "secret/",
            Scan,
            false,
            "list does not grant a recursive scan",
        ),
        c(
            "scan/dir/",
            Scan,
            true,
            "scan is its own capability (OpenBao)",
        ),
        c("scan/dir/", List, false, "scan does not grant list"),
        c("secret/a/b/c", Read, true, "glob reaches any depth"),
        c("secret", Read, false, "glob needs the trailing slash"),
        c(
            "secret/team/x",
            Update,
            true,
            "longer prefix wins over shorter",
        ),
        c("secret/team/x", Create, true, "create from longer prefix"),
        c("secret/team/x/y", Delete, true, "longer prefix at depth"),
        c(
            "secret/team/locked",
            Read,
            false,
            "deny in one policy beats read+sudo in another",
        ),
        c(
            "secret/team/locked",
            Update,
            false,
            "deny beats the enclosing glob",
        ),
        c("secret/exact", Update, true, "exact rule"),
        c(
            "secret/exact",
            Read,
            true,
            "exact rules merge across policies",
        ),
        c(
            "secret/exact",
            Delete,
            false,
            "exact rule replaces the glob; no inheritance",
        ),
        c(
            "secret/exact/more",
            Read,
            true,
            "exact rule does not cover children",
        ),
        c("secret/x/teamb", Update, true, "+ matches one segment"),
        c(
            "secret/x/teamb",
            Read,
            true,
            "+ rule beats the shorter glob",
        ),
        c(
            "secret/x/y/teamb",
            Update,
            false,
            "+ matches exactly one segment",
        ),
        c("secret/a/b/deep", Delete, true, "two + segments"),
        c(
            "secret/a/b/deep",
            Read,
            false,
            "+ rule wins over secret/* by priority",
        ),
        c(
            "secret/zip-zap/zong",
            Patch,
            true,
            "glob suffix inside a segment",
        ),
        c(
            "secret/zip-zap/zong",
            Read,
            false,
            "more specific glob replaces secret/*",
        ),
        c("kv/data/app/config", Read, true, "+ then trailing glob"),
        c(
            "kv/data/app/config-prod",
            Read,
            true,
            "+ then glob on the last segment",
        ),
        c(
            "kv/data/app/other",
            Read,
            false,
            "+ rule needs the glob prefix",
        ),
        c(
            "kv/data/a/b/config",
            Read,
            false,
            "+ is one segment even with a glob",
        ),
        sudo(c(
            "sys/mounts/x",
            Update,
            true,
            "sudo present on a root-protected path",
        )),
        sudo(c(
            "sys/rotate",
            Update,
            false,
            "root-protected path without sudo",
        )),
        c(
            "sys/rotate",
            Update,
            true,
            "the same rule on an unprotected request",
        ),
        sudo(c("sys/key-status", Read, true, "read with sudo")),
        c(
            "list/me/",
            List,
            true,
            "list op matches exact rule without trailing slash",
        ),
        c(
            "list/me",
            Read,
            false,
            "list capability does not grant read",
        ),
        c("nothing/here", Read, false, "no rule, no access"),
        c("other/x", Read, true, "a second policy's own rule"),
        with(
            c("params/allowed", Update, true, "allowed value"),
            json!({"color": "red"}),
        ),
        with(
            c("params/allowed", Update, true, "allowed glob value"),
            json!({"color": "blue-ish"}),
        ),
        with(
            c("params/allowed", Update, false, "value outside the list"),
            json!({"color": "green"}),
        ),
        with(
            c("params/allowed", Update, true, "empty list means any value"),
            json!({"size": 42}),
        ),
        with(
            c("params/allowed", Update, false, "unlisted parameter"),
            json!({"shape": "round"}),
        ),
        with(
            c(
                "params/allowed",
                Update,
                true,
                "names compare case-insensitively",
            ),
            json!({"COLOR": "red"}),
        ),
        with(
            c("params/allowed", Create, false, "list values all checked"),
            json!({"color": ["red", "green"]}),
        ),
        c("params/allowed", Update, true, "no parameters at all"),
        with(
            c("params/denied", Update, false, "denied name with any value"),
            json!({"admin": false}),
        ),
        with(
            c("params/denied", Update, false, "denied value"),
            json!({"role": "root"}),
        ),
        with(
            c("params/denied", Update, false, "denied glob value"),
            json!({"role": "team-owner"}),
        ),
        with(
            c(
                "params/denied",
                Update,
                true,
                "other value of a restricted name",
            ),
            json!({"role": "reader"}),
        ),
        with(
            c("params/required", Update, true, "required present"),
            json!({"id": 1, "x": 2}),
        ),
        with(
            c("params/required", Update, false, "required missing"),
            json!({"x": 2}),
        ),
        with(
            c("params/star", Update, true, "* allows any parameter"),
            json!({"anything": "goes"}),
        ),
        with(
            c("params/deny-all", Update, false, "* denies every parameter"),
            json!({"a": 1}),
        ),
        c("params/deny-all", Update, true, "* deny with no parameters"),
        c("wrap/only", Read, false, "wrapping required but absent"),
        wrapped(
            c("wrap/only", Read, true, "wrap TTL inside the bounds"),
            300,
        ),
        wrapped(
            c("wrap/only", Read, false, "wrap TTL below the minimum"),
            30,
        ),
        wrapped(
            c("wrap/only", Read, false, "wrap TTL above the maximum"),
            7200,
        ),
        c("legacy/write", Delete, true, "policy = write grants delete"),
        c("legacy/write", Patch, false, "legacy write has no patch"),
        c("legacy/read/x", List, true, "policy = read grants list"),
        c(
            "legacy/read/x",
            Update,
            false,
            "policy = read grants no update",
        ),
    ]
}

#[test]
fn policy_table() {
    let main = parse_policy("main", MAIN).unwrap();
    let second = parse_policy("second", SECOND).unwrap();
    let acl = Acl::new(&[&main, &second]);
    let mut failures = Vec::new();
    let cases = table();
    assert!(cases.len() >= 40);
    for case in &cases {
        let data: Map<String, Value> = case.data.as_object().cloned().unwrap_or_default();
        let got = acl
            .allow(&AclRequest {
                operation: case.op,
                path: case.path,
                data: &data,
                root_protected: case.root_protected,
                wrap_ttl: case.wrap_ttl,
            })
            .allowed;
        if got != case.allowed {
            failures.push(format!(
                "{:?} {} {}: expected {}, got {got} ({})",
                case.op, case.path, case.data, case.allowed, case.why
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn capabilities_report_like_vault() {
    let main = parse_policy("main", MAIN).unwrap();
    let acl = Acl::new(&[&main]);
    assert_eq!(acl.capabilities("secret/foo"), vec!["list", "read"]);
    assert_eq!(acl.capabilities("secret/team/locked"), vec!["deny"]);
    assert_eq!(acl.capabilities("nowhere"), vec!["deny"]);
    let root = parse_policy("root", "").unwrap();
    assert_eq!(Acl::new(&[&root]).capabilities("anything"), vec!["root"]);
}

#[test]
fn large_policy_sets_are_evaluated_through_the_tries() {
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!("path \"app{i}/*\" {{ capabilities = [\"read\"] }}\npath \"svc{i}/+/cfg\" {{ capabilities = [\"update\"] }}\n"));
    }
    let p = parse_policy("big", &text).unwrap();
    let acl = Acl::new(&[&p]);
    let data = Map::new();
    let ask = |path: &str, op| {
        acl.allow(&AclRequest {
            operation: op,
            path,
            data: &data,
            root_protected: false,
            wrap_ttl: None,
        })
        .allowed
    };
    assert!(ask("app4999/x", Read));
    assert!(ask("svc17/any/cfg", Update));
    assert!(!ask("svc17/any/cfg/x", Update));
    assert!(!ask("app5000/x", Read));
}

#[test]
fn mount_visibility_follows_any_grant_below_it() {
    let p = parse_policy(
        "p",
        r#"
path "secret/data/apps/*" { capabilities = ["read"] }
path "kv/+/x"             { capabilities = ["read"] }
path "other/"             { capabilities = ["list"] }
path "hidden/*"           { capabilities = ["deny"] }
path "every*"             { capabilities = ["read"] }
"#,
    )
    .unwrap();
    let acl = Acl::new(&[&p]);
    assert!(
        acl.any_access_below("secret/"),
        "prefix rule below the mount"
    );
    assert!(acl.any_access_below("kv/"), "segment rule below the mount");
    assert!(acl.any_access_below("other/"), "exact rule on the mount");
    assert!(
        acl.any_access_below("everything/"),
        "glob covering the mount"
    );
    assert!(!acl.any_access_below("hidden/"), "deny grants nothing");
    assert!(!acl.any_access_below("transit/"), "no rule at all");
}
