//! Password policies (`sys/policies/password`): whatever parses must
//! generate a password that meets it, in bounded time.
#![no_main]

use coffer_core::password_policy::PasswordPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = PasswordPolicy::parse(text) {
        let pw = p.generate().expect("a parsed policy always generates");
        assert_eq!(pw.expose().chars().count(), p.length);
        for r in &p.rules {
            let n = pw.expose().chars().filter(|c| r.charset.contains(c)).count();
            assert!(n >= r.min_chars);
        }
    }
});
