//! JSON, complete or cut short: sensitive keys, JSON inside strings (decoded, redacted,
//! re-encoded), name/value pair objects in either member order, and header-name lists
//! (`["X-Api-Key", "k1"]`). The scanner calls [`string`] at every `"` and keeps a [`Frame`]
//! per open `{` or `[`.

use std::borrow::Cow;

use super::{REDACTED, is_name_byte, is_sensitive_name, scan};

/// Object members that name the member holding the value (`{"name": "Authorization", "value": …}`).
const PAIR_NAMES: [&str; 8] = ["name", "key", "header", "field", "param", "parameter", "attribute", "variable"];
/// Object members that hold the named value.
const PAIR_VALUES: [&str; 2] = ["value", "values"];

/// An open `{` or `[` and what the name/value pair rule has learnt about it.
pub(super) struct Frame {
    object: bool,
    /// A pair-name member holding a sensitive name was seen.
    named_sensitive: bool,
    /// Where pair-value members were written to the output, to redact if the name comes later.
    values: Vec<(usize, usize)>,
}

impl Frame {
    /// The frame of the bracket `c` (`{` or `[`) just opened.
    pub(super) fn open(c: u8) -> Self {
        Self { object: c == b'{', named_sensitive: false, values: Vec::new() }
    }

    /// True when `c` (`}` or `]`) closes this frame.
    pub(super) fn closed_by(&self, c: u8) -> bool {
        self.object == (c == b'}')
    }
}

/// The string literal at `i` (a `"`): a key with its value, or a string value; writes it,
/// redacted where the rules say, to `out` and returns the index after what it consumed.
pub(super) fn string(text: &str, mut i: usize, depth: usize, frames: &mut [Frame], out: &mut String) -> usize {
    let b = text.as_bytes();
    let (end, closed) = string_end(b, i);
    let colon = closed.then(|| skip_ws(b, end)).filter(|&j| j < b.len() && b[j] == b':');
    if let Some(colon) = colon {
        let key = decode(&text[i..end]);
        let value_start = skip_ws(b, colon + 1);
        let value_end = value_end(b, value_start);
        let lower = key.to_ascii_lowercase();
        let in_object = frames.last().is_some_and(|f| f.object);
        if in_object
            && PAIR_NAMES.contains(&lower.as_str())
            && b.get(value_start) == Some(&b'"')
            && is_sensitive_name(&decode(&text[value_start..value_end]))
            && let Some(frame) = frames.last_mut()
        {
            frame.named_sensitive = true;
            for (start, stop) in std::mem::take(&mut frame.values).into_iter().rev() {
                out.replace_range(start..stop, &format!("\"{REDACTED}\""));
            }
        }
        let pair_value = in_object && PAIR_VALUES.contains(&lower.as_str());
        let named = frames.last().is_some_and(|f| f.named_sensitive);
        if is_sensitive_name(&key) || (pair_value && named) {
            out.push_str(&text[i..value_start]);
            if value_end > value_start {
                out.push('"');
                out.push_str(REDACTED);
                out.push('"');
            }
            i = value_end;
        } else if pair_value {
            out.push_str(&text[i..value_start]);
            let start = out.len();
            out.push_str(&scan(&text[value_start..value_end], depth + 1));
            if let Some(frame) = frames.last_mut() {
                frame.values.push((start, out.len()));
            }
            i = value_end;
        } else {
            out.push_str(&text[i..end]);
            i = end;
        }
    } else {
        let content = decode(&text[i..end]);
        let scanned = scan(&content, depth + 1);
        if scanned == content {
            out.push_str(&text[i..end]);
        } else {
            out.push_str(&serde_json::to_string(&scanned).unwrap_or_else(|_| format!("\"{REDACTED}\"")));
        }
        i = end;
        // `["X-Api-Key", "k1"]`: a header name in a list redacts the string after it.
        let in_array = frames.last().is_some_and(|f| !f.object);
        let comma = skip_ws(b, i);
        let next = skip_ws(b, comma + 1);
        if in_array
            && comma < b.len()
            && b[comma] == b','
            && next < b.len()
            && b[next] == b'"'
            && !content.is_empty()
            && content.bytes().all(is_name_byte)
            && is_sensitive_name(&content)
        {
            out.push_str(&text[i..next]);
            out.push('"');
            out.push_str(REDACTED);
            out.push('"');
            i = string_end(b, next).0;
        }
    }
    i
}

/// The index after the string literal starting at `start` (a `"`), and whether it closed.
fn string_end(b: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (b.len(), false)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A JSON string literal's content with escapes resolved, tolerant of one cut short
/// (`"pass\u0077ord"` is a password too). Anything that is not a string is returned as is.
fn decode(quoted: &str) -> Cow<'_, str> {
    let Some(inner) = quoted.strip_prefix('"') else { return Cow::Borrowed(quoted) };
    let inner = inner.strip_suffix('"').filter(|i| !i.ends_with('\\') || i.ends_with("\\\\")).unwrap_or(inner);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = u32::from_str_radix(&hex, 16).ok();
                let decoded = match unit {
                    Some(high @ 0xd800..=0xdbff) => {
                        let mut rest = chars.clone();
                        if rest.next() == Some('\\') && rest.next() == Some('u') {
                            let low: String = rest.by_ref().take(4).collect();
                            match u32::from_str_radix(&low, 16) {
                                Ok(low @ 0xdc00..=0xdfff) => {
                                    chars = rest;
                                    char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))
                                }
                                _ => None,
                            }
                        } else {
                            None
                        }
                    }
                    Some(unit) => char::from_u32(unit),
                    None => None,
                };
                out.push(decoded.unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// The end of the JSON value starting at `start`; tolerant of values cut short.
fn value_end(b: &[u8], start: usize) -> usize {
    if start >= b.len() {
        return start;
    }
    match b[start] {
        b'"' => string_end(b, start).0,
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i).0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        }
    }
}
