//! Vault's glob matching for names (`web-*`, `team-*-prod`, `*`): `*`
//! stands for any run of characters, anywhere and any number of times;
//! nothing else is special.

/// Whether `value` matches `pattern`.
pub fn matches(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_as_vaults_do() {
        for (p, v, want) in [
            ("*", "anything", true),
            ("*", "", true),
            ("app-*", "app-web", true),
            ("app-*", "web", false),
            ("*-prod", "pay-prod", true),
            ("team-*-prod", "team-pay-prod", true),
            ("team-*-prod", "team-pay-stage", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("ab*ab", "ab", false),
            ("ab*ab", "abab", true),
        ] {
            assert_eq!(matches(p, v), want, "{p} vs {v}");
        }
    }
}
