//! A request's query string and body (JSON or form), decoded and read with
//! every field typing, as the HTTP layer and engines do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: form or JSON; up to the first newline: the query string.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let query = String::from_utf8_lossy(query);
    coffer_http::fuzz_decode(&query, mode & 1 == 1, body);
});
