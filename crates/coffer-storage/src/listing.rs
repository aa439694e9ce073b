//! Helpers shared by the backends to turn ordered keys into one listing level.

/// The first string greater than every string starting with `prefix`, if any.
///
/// Used as the exclusive upper bound of a range scan over a prefix.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate gap, which holds no chars.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The listing entry for `key` under `prefix`: the key's name, or its folder with a trailing `/`.
pub(crate) fn child_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    if rest.is_empty() {
        return None;
    }
    Some(match rest.find('/') {
        Some(i) => &rest[..=i],
        None => rest,
    })
}

/// Lists one level below `prefix` with a skip-scan over a sorted store.
///
/// `first_at(start)` returns the smallest key `>= start`. A folder costs one
/// seek however many keys it holds.
pub(crate) fn list_level<E>(
    prefix: &str,
    mut first_at: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Vec<String>, E> {
    let mut out = Vec::new();
    let mut start = prefix.to_owned();
    while let Some(key) = first_at(&start)? {
        let Some(child) = child_of(prefix, &key) else {
            if key.starts_with(prefix) {
                // The prefix itself is a key; step past it.
                start = format!("{key}\u{0}");
                continue;
            }
            break;
        };
        out.push(child.to_owned());
        if child.ends_with('/') {
            match prefix_successor(&format!("{prefix}{child}")) {
                Some(next) => start = next,
                None => break,
            }
        } else {
            start = format!("{key}\u{0}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_of_folder_prefix_is_next_char() {
        assert_eq!(prefix_successor("a/b/").as_deref(), Some("a/b0"));
        assert_eq!(prefix_successor("").as_deref(), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    }

    #[test]
    fn child_is_name_or_folder() {
        assert_eq!(child_of("a/", "a/b"), Some("b"));
        assert_eq!(child_of("a/", "a/b/c/d"), Some("b/"));
        assert_eq!(child_of("a/", "a/"), None);
        assert_eq!(child_of("a/", "b/c"), None);
    }
}
