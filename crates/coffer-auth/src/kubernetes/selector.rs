//! Kubernetes label selectors (`matchLabels`, `matchExpressions`), as a role's
//! `bound_service_account_namespace_selector` holds them in JSON or YAML.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LabelSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Requirement>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Requirement {
    key: String,
    operator: Operator,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Parses and checks a selector (YAML, which includes JSON).
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let s: LabelSelector =
            serde_norway::from_str(text).map_err(|e| format!("invalid label selector: {e}"))?;
        for r in &s.match_expressions {
            match r.operator {
                Operator::In | Operator::NotIn if r.values.is_empty() => {
                    return Err(format!(
                        "invalid label selector: {:?} with {:?} needs values",
                        r.key, r.operator
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                    return Err(format!(
                        "invalid label selector: {:?} with {:?} takes no values",
                        r.key, r.operator
                    ));
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// Whether `labels` meet every requirement (an empty selector matches all).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let have = labels.get(&r.key);
                match r.operator {
                    Operator::In => have.is_some_and(|h| r.values.contains(h)),
                    Operator::NotIn => !have.is_some_and(|h| r.values.contains(h)),
                    Operator::Exists => have.is_some(),
                    Operator::DoesNotExist => have.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn json_and_yaml_selectors_match_as_kubernetes_does() {
        let json = LabelSelector::parse(
            r#"{"matchLabels":{"team":"pay"},"matchExpressions":[{"key":"env","operator":"In","values":["prod","stage"]},{"key":"frozen","operator":"DoesNotExist"}]}"#,
        )
        .unwrap();
        let yaml = LabelSelector::parse(
            "matchLabels:\n  team: pay\nmatchExpressions:\n  - key: env\n    operator: In\n    values: [prod, stage]\n  - key: frozen\n    operator: DoesNotExist\n",
        )
        .unwrap();
        for s in [json, yaml] {
            assert!(s.matches(&labels(&[("team", "pay"), ("env", "prod")])));
            assert!(!s.matches(&labels(&[("team", "pay"), ("env", "dev")])));
            assert!(!s.matches(&labels(&[("team", "ops"), ("env", "prod")])));
            assert!(!s.matches(&labels(&[
                ("team", "pay"),
                ("env", "prod"),
                ("frozen", "1")
            ])));
        }
        let not_in = LabelSelector::parse(
            r#"{"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]}"#,
        )
        .unwrap();
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("env", "prod")])));
        assert!(LabelSelector::parse("{}").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_reason() {
        for (text, why) in [
            (
                r#"{"matchExpressions":[{"key":"a","operator":"In"}]}"#,
                "needs values",
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}"#,
                "takes no values",
            ),
            (
                r#"{"matchExpressions":[{"key":"a","operator":"Near"}]}"#,
                "unknown variant",
            ),
            (r#"{"matchLabel":{"a":"b"}}"#, "unknown field"),
        ] {
            let e = LabelSelector::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
