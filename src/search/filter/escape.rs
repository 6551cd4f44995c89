//! Escaping and checking: field names, tag values, text words.

use crate::core::error::{Error, Result};

/// Checks that `field` can follow `@` in a query: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn check_field(field: &str) -> Result<()> {
    let mut chars = field.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "invalid field name {field:?}: use letters, digits and '_' (not starting with a digit)"
        )))
    }
}

/// The longest tag the search module indexes (longer ones are skipped).
pub(crate) const MAX_TAG_BYTES: usize = 4096;

/// Whether the tag escaper backslash-escapes `c`: ASCII punctuation,
/// whitespace and control characters. The query lexer works on bytes, so a
/// backslash before a multi-byte character would split it; non-ASCII
/// characters are never syntax and stay as they are.
fn tag_special(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_ascii_whitespace() || c.is_ascii_control()
}

/// Appends `value` (trimmed like the index trims tags) with every special
/// character backslash-escaped; an empty value is an error.
pub(super) fn escape_tag(field: &str, value: &str, out: &mut String) -> Result<()> {
    let trimmed = value.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(Error::validation(format!(
            "tag filter on @{field}: empty value (use no filter to match everything)"
        )));
    }
    if trimmed.len() > MAX_TAG_BYTES {
        return Err(Error::validation(format!(
            "tag filter on @{field}: a value of {} bytes can never match \
             (the index skips tags longer than {MAX_TAG_BYTES} bytes)",
            trimmed.len()
        )));
    }
    out.reserve(trimmed.len() + 4);
    for c in trimmed.chars() {
        if tag_special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(())
}

/// The tag escaping of `value` (trimmed); `None` when it is empty.
///
/// ```
/// use redis_atomics::search::escape_tag_value;
/// assert_eq!(escape_tag_value("a|b c").as_deref(), Some(r"a\|b\ c"));
/// assert_eq!(escape_tag_value("  "), None);
/// ```
pub fn escape_tag_value(value: &str) -> Option<String> {
    let mut out = String::new();
    escape_tag("", value, &mut out).ok()?;
    Some(out)
}

/// The words of `text` as the tokenizer sees them: runs of letters, digits,
/// `_` and non-ASCII characters (every ASCII punctuation and whitespace
/// character separates words).
pub(super) fn text_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_escaping_leaves_no_bare_specials() {
        let nasty = "x} | @tenant:{victim\\\"'*()-$~%";
        let mut out = String::new();
        escape_tag("t", nasty, &mut out).unwrap();
        let mut chars = out.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                assert!(tag_special(chars.next().unwrap()));
            } else {
                assert!(!tag_special(c), "{c:?} left bare in {out}");
            }
        }
    }
}
