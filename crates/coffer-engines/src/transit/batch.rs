//! `batch_input`: one operation per item, each with its own answer or error.

use coffer_core::fields::Fields;
use coffer_core::{LogicalError, Response};
use serde_json::{Map, Value};

use super::bad;

/// Runs `one` on the request itself, or on each item of `batch_input`.
///
/// In a batch a bad item gets `{"error": ...}` in its slot and the others
/// still run; the response is then 400 (or `partial_failure_response_code`
/// when some items succeeded) with the normal body, as Vault answers. A
/// server-side failure fails the whole request.
pub(crate) fn run<F>(data: &Map<String, Value>, mut one: F) -> Result<Response, LogicalError>
where
    F: FnMut(&Map<String, Value>) -> Result<Map<String, Value>, LogicalError>,
{
    let f = Fields::new(data);
    let Some(raw) = f.raw("batch_input") else {
        return one(data).map(Response::data);
    };
    let Value::Array(items) = raw else {
        return Err(bad("batch_input must be a list of objects"));
    };
    if items.is_empty() {
        return Err(bad("missing batch input to process"));
    }
    let partial_code = f.int("partial_failure_response_code")?;
    let mut results = Vec::with_capacity(items.len());
    let (mut ok, mut failed) = (0usize, 0usize);
    for item in items {
        let (reference, outcome) = match item {
            Value::Object(m) => (
                m.get("reference")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                one(m),
            ),
            _ => ("", Err(bad("batch_input items must be objects"))),
        };
        let mut slot = match outcome {
            Ok(m) => {
                ok += 1;
                m
            }
            Err(LogicalError::BadRequest(msg)) => {
                failed += 1;
                let mut m = Map::new();
                m.insert("error".into(), Value::String(msg));
                m
            }
            Err(e) => return Err(e),
        };
        slot.insert("reference".into(), Value::String(reference.to_owned()));
        results.push(Value::Object(slot));
    }
    let mut body = Map::new();
    body.insert("batch_results".into(), Value::Array(results));
    let mut resp = Response::data(body);
    if failed > 0 {
        resp.status = Some(match partial_code {
            Some(c) if ok > 0 && (200..600).contains(&c) => c as u16,
            _ => 400,
        });
    }
    Ok(resp)
}
