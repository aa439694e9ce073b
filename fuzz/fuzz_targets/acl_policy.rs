//! ACL policies in HCL or JSON: parsed, compiled, asked about paths, and
//! formatted back.
#![no_main]

use coffer_core::policy::{Acl, AclRequest, format_policy, parse_policy};
use coffer_core::Operation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = parse_policy("fuzz", text) else {
        return;
    };
    let acl = Acl::new(&[&policy]);
    let empty = serde_json::Map::new();
    for path in ["secret/data/a", "sys/mounts", "auth/token/create", "a/b/c/", ""] {
        for operation in [Operation::Read, Operation::Update, Operation::List] {
            let _ = acl.allow(&AclRequest {
                operation,
                path,
                data: &empty,
                root_protected: false,
                wrap_ttl: None,
            });
        }
        let _ = acl.capabilities(path);
        let _ = acl.any_access_below(path);
    }
    let _ = format_policy(text);
});
