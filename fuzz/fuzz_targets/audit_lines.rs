//! Audit log lines as `coffer audit verify` and `coffer audit query` read
//! them: the chain fields, the verifier, and the query's entry parsing.
#![no_main]

use coffer::cli::audit_query::{Filters, Outcome, Query};
use coffer_core::audit::chain::{ChainHead, Verifier, chain_fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = Query::new(Filters {
        path: Some("secret/*".into()),
        since: Some("2026-01-01T00:00:00".into()),
        ..Filters::default()
    });
    let mut outcome = Outcome::default();
    let mut verifier = Verifier::with_head(ChainHead::default()).expect_start(Some(1));
    for line in data.split(|b| *b == b'\n') {
        let _ = chain_fields(line);
        verifier.push(line);
        query.line(line, &mut outcome);
    }
    let _ = verifier.finish();
});
