//! SOPS files in every format: parsed, split into tree and `sops` metadata,
//! and written back; `.sops.yaml` creation rules too.
#![no_main]

use coffer_sops::{document, dotenv, ini, json, yaml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parsed = match format % 5 {
        0 => yaml::parse(text),
        1 => json::parse(text),
        2 => dotenv::parse(text),
        3 => ini::parse(text),
        _ => {
            let dir = std::path::Path::new(".");
            if let Ok(c) = coffer_sops::config::Config::parse(text, dir) {
                let _ = c.choose(std::path::Path::new("./secrets/app.enc.yaml"));
            }
            return;
        }
    };
    let Ok(root) = parsed else {
        return;
    };
    let _ = yaml::emit(&root);
    let _ = json::emit(&root);
    let _ = dotenv::emit(&root);
    let _ = ini::emit(&root);
    let _ = document::split(root);
});
