//! Report templates (gitleaks' `--report-template`), rendered by
//! `coffer-template` over the findings as the JSON report holds them.

use serde_json::Value;

use crate::ScanError;

fn report_error(e: coffer_template::Error) -> ScanError {
    ScanError::Report(format!("template: {e}"))
}

/// Checks that a template parses (before a scan, so a mistake costs
/// nothing); unknown functions show when it runs.
pub fn check(template: &str) -> Result<(), ScanError> {
    coffer_template::check(template).map_err(report_error)
}

/// Renders `template` with `data` (the findings) as `.`.
pub fn render(template: &str, data: &Value) -> Result<String, ScanError> {
    coffer_template::render(template, data, "docs/scan.md").map_err(report_error)
}
