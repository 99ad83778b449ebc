//! Names with values in text: `name=value` in forms, query strings, cookies and attributes
//! (percent- and plus-decoded, brackets judged segment by segment, a quoted value included),
//! `Name: value` lines (headers, YAML), and the password in `scheme://user:password@host`.

use super::{REDACTED, is_name_byte, is_sensitive_name, line_end, skip_blanks};

/// A sensitive `name=value` or `Name: value` whose separator (`=` or `:`) is at `sep`: the
/// name is looked back for from `sep` to `plain` (never across a redaction) and is already
/// written; writes the separator and the value redacted, and returns where to go on. `None`
/// when the name before `sep` is not sensitive.
pub(super) fn named_value(text: &str, plain: usize, sep: usize, out: &mut String) -> Option<usize> {
    let b = text.as_bytes();
    let c = b[sep];
    let mut name_start = sep;
    while name_start > plain && is_form_name_byte(b[name_start - 1], c) {
        name_start -= 1;
    }
    if name_start == sep || !is_sensitive_name(&text[name_start..sep]) {
        return None;
    }
    let (value_start, value_end) = if c == b':' {
        let start = skip_blanks(b, sep + 1);
        (start, line_end(b, start))
    } else {
        form_value(b, sep + 1)
    };
    // The name is already written; the separator (and an opening quote) too.
    out.push_str(&text[sep..value_start]);
    if value_end > value_start {
        out.push_str(REDACTED);
    }
    Some(value_end.max(sep + 1))
}

/// Bytes of a name before `=` (forms, query strings, attributes: brackets and percent
/// escapes included) or before `:` (header and YAML names).
fn is_form_name_byte(c: u8, sep: u8) -> bool {
    is_name_byte(c) || (sep == b'=' && matches!(c, b'[' | b']' | b'%' | b'+'))
}

/// The value after a sensitive `name=` at `start`: a quoted one to its closing quote (the
/// quotes kept), else to the next delimiter of forms, query strings, cookies and markup.
pub(super) fn form_value(b: &[u8], start: usize) -> (usize, usize) {
    if start < b.len() && matches!(b[start], b'"' | b'\'') {
        let quote = b[start];
        let close = (start + 1..b.len()).find(|&j| b[j] == quote).unwrap_or(b.len());
        return (start + 1, close);
    }
    let end = (start..b.len())
        .find(|&j| b[j].is_ascii_whitespace() || matches!(b[j], b'&' | b';' | b',' | b'#' | b'"' | b'\'' | b'<' | b'>'))
        .unwrap_or(b.len());
    (start, end)
}

/// `scheme://user:password@host`: writes up to the password redacted, returns where to go on.
pub(super) fn url_password(text: &str, colon: usize, out: &mut String) -> Option<usize> {
    let b = text.as_bytes();
    let start = colon + 3;
    let authority_end = (start..b.len())
        // Not at `/`: a password with an unencoded `/` or `?` is wrong but still a password.
        .find(|&j| b[j].is_ascii_whitespace() || matches!(b[j], b'"' | b'\'' | b'<' | b'>'))
        .unwrap_or(b.len());
    let at = (start..authority_end).rev().find(|&j| b[j] == b'@')?;
    let pass = (start..at).find(|&j| b[j] == b':')? + 1;
    out.push_str(&text[colon..pass]);
    if at > pass {
        out.push_str(REDACTED);
    }
    Some(at)
}
