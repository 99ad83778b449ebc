//! XML and HTML: the content of an element with a sensitive (local) name, attributes with
//! a sensitive name, and `<input name="password" value="…">` pairs. Attributes are scanned
//! by the same rules as any text.

use super::form::form_value;
use super::{REDACTED, is_name_byte, is_sensitive_key, is_sensitive_name, scan};

/// An opening tag at `lt`: its attributes redacted (and an `<input name="password"
/// value="…">` pair), and the content of an element with a sensitive name replaced up to its
/// closing tag (to the end when it never closes). `None` when `<` opens no tag.
pub(super) fn element(text: &str, lt: usize, depth: usize, out: &mut String) -> Option<usize> {
    let b = text.as_bytes();
    let name_start = lt + 1;
    if name_start >= b.len() || !(b[name_start].is_ascii_alphabetic() || b[name_start] == b'_') {
        return None;
    }
    let name_end = (name_start..b.len()).find(|&j| !(is_name_byte(b[j]) || b[j] == b':')).unwrap_or(b.len());
    let gt = (name_end..b.len()).find(|&j| matches!(b[j], b'>' | b'<'));
    let name = &text[name_start..name_end];
    let local = name.rsplit(':').next().unwrap_or(name);
    let sensitive = is_sensitive_key(local);
    let Some(gt) = gt.filter(|&j| b[j] == b'>') else {
        if !sensitive {
            return None;
        }
        // A sensitive element cut short inside its tag: nothing after its name is kept.
        out.push_str(&text[lt..name_end]);
        if name_end < b.len() {
            out.push_str(REDACTED);
        }
        return Some(b.len());
    };
    out.push_str(&text[lt..name_end]);
    let attrs = scan(&text[name_end..gt], depth + 1);
    out.push_str(&redact_paired_attribute(attrs));
    out.push('>');
    let self_closing = b[gt - 1] == b'/';
    if !sensitive || self_closing {
        return Some(gt + 1);
    }
    let close = format!("</{name}");
    let content_end =
        text[gt + 1..].to_ascii_lowercase().find(&close.to_ascii_lowercase()).map_or(b.len(), |p| gt + 1 + p);
    if content_end > gt + 1 {
        out.push_str(REDACTED);
    }
    Some(content_end)
}

/// `name="password" value="hunter2"` (HTML inputs, XML settings): the value attribute goes.
fn redact_paired_attribute(attrs: String) -> String {
    let lower = attrs.to_ascii_lowercase();
    let named = ["name=", "id=", "key="].iter().any(|attr| {
        lower.match_indices(attr).any(|(p, _)| {
            (p == 0 || !is_name_byte(lower.as_bytes()[p - 1])) && {
                let (start, end) = form_value(attrs.as_bytes(), p + attr.len());
                is_sensitive_name(&attrs[start..end])
            }
        })
    });
    if !named {
        return attrs;
    }
    let Some(p) =
        lower.match_indices("value=").map(|(p, _)| p).find(|&p| p == 0 || !is_name_byte(lower.as_bytes()[p - 1]))
    else {
        return attrs;
    };
    let (start, end) = form_value(attrs.as_bytes(), p + "value=".len());
    if end <= start {
        return attrs;
    }
    format!("{}{REDACTED}{}", &attrs[..start], &attrs[end..])
}
