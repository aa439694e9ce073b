//! gitleaks / betterleaks rule files (TOML, RE2 regexes, Expr filters),
//! and, when one loads, a scan of a few lines with it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = coffer_scan::Config::parse(text, "fuzz.toml");
});
