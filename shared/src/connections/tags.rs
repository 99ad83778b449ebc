//! Connection tags (DESIGN §6.14): the caller's `name: value` labels of a connection
//! (`{"end_user_id": "u-7", "organization_id": "acme"}`), set when it is authorized or
//! created, replaced by `PATCH /v1/connections/{id}`, and filtered by
//! `GET /v1/connections?tag.<name>=<value>`.
//!
//! Owns what a tag may be: at most [`MAX_TAGS`], names of 1–64 characters of
//! `A-Z a-z 0-9 _ . : -` (they travel in query parameter names), values of 1–256 characters
//! without control characters. An error names the field, never the refused name or value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;

/// Most tags on one connection (and tag filters in one query).
pub const MAX_TAGS: usize = 10;
const MAX_NAME: usize = 64;
const MAX_VALUE: usize = 256;

/// A connection's tags, valid by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// Checks the tags of a request body (`field` names it in an error).
    pub fn parse(field: &'static str, raw: BTreeMap<String, String>) -> Result<Self, Error> {
        if raw.len() > MAX_TAGS {
            return Err(Error::invalid(field, format!("{field} holds at most {MAX_TAGS} tags")));
        }
        for (name, value) in &raw {
            if !valid_name(name) {
                return Err(Error::invalid(
                    field,
                    format!("a tag name is 1 to {MAX_NAME} characters of A-Z a-z 0-9 _ . : -"),
                ));
            }
            if !valid_value(value) {
                return Err(Error::invalid(
                    field,
                    format!("a tag value is 1 to {MAX_VALUE} characters without control characters"),
                ));
            }
        }
        Ok(Self(raw))
    }

    /// Tags as stored (a jsonb object of strings); anything else is refused, not guessed.
    pub(super) fn stored(value: Value) -> Result<Self, Error> {
        serde_json::from_value::<BTreeMap<String, String>>(value)
            .map(Self)
            .map_err(|_| Error::UnknownStored { what: "tags", value: "not an object of strings".into() })
    }

    /// The tags as a jsonb value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    /// No tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn valid_value(value: &str) -> bool {
    !value.is_empty() && value.chars().count() <= MAX_VALUE && !value.chars().any(char::is_control)
}

/// Splits a raw query string into its `tag.<name>=<value>` filters and the rest (re-encoded,
/// for the ordinary parameters). Filters are checked like tags, under the field
/// `tag.<name>` when the name is valid, else `tag`.
pub fn split_tag_filters(query: &str) -> Result<(Tags, String), Error> {
    let mut filters = BTreeMap::new();
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.strip_prefix("tag.") {
            Some(name) => {
                if !valid_name(name) {
                    return Err(Error::invalid("tag", "a tag filter is tag.<name>=<value> with a valid tag name"));
                }
                if filters.insert(name.to_owned(), value.into_owned()).is_some() {
                    return Err(Error::invalid("tag", "each tag may be filtered on once"));
                }
            }
            None => {
                rest.append_pair(&key, &value);
            }
        }
    }
    Ok((Tags::parse("tag", filters)?, rest.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tags_follow_the_rules() {
        assert!(Tags::parse("tags", tags(&[("organization_id", "acme"), ("end_user_id", "u-7")])).is_ok());
        let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("t{i}"), "v".into())).collect();
        assert!(Tags::parse("tags", eleven.into_iter().collect()).is_err());
        for bad_name in ["", "a b", "a/b", "ä", &"x".repeat(65)] {
            let err = Tags::parse("tags", tags(&[(bad_name, "v")])).unwrap_err();
            assert!(matches!(err, Error::InvalidField { field: "tags", .. }), "{bad_name}");
            assert!(bad_name.is_empty() || !err.to_string().contains(bad_name), "the name is not echoed");
        }
        for bad_value in ["", "a\nb", &"x".repeat(257)] {
            assert!(Tags::parse("tags", tags(&[("n", bad_value)])).is_err(), "{bad_value:?}");
        }
        assert!(Tags::parse("tags", tags(&[("n", &"é".repeat(256))])).is_ok(), "characters, not bytes");
    }

    #[test]
    fn tag_filters_are_split_from_the_other_parameters() {
        let (filters, rest) = split_tag_filters("limit=2&tag.org=acme%20co&status=active&tag.user=u-7").unwrap();
        assert_eq!(filters.as_map(), &tags(&[("org", "acme co"), ("user", "u-7")]));
        assert_eq!(rest, "limit=2&status=active");
        assert!(split_tag_filters("tag.a%20b=x").is_err());
        assert!(split_tag_filters("tag.a=x&tag.a=y").is_err());
        assert!(split_tag_filters("tag.a=").is_err());
        assert_eq!(split_tag_filters("").unwrap().0, Tags::default());
    }

    #[test]
    fn stored_tags_that_are_not_strings_are_refused() {
        assert!(Tags::stored(serde_json::json!({"a": "b"})).is_ok());
        assert!(Tags::stored(serde_json::json!({"a": 1})).is_err());
        assert!(Tags::stored(serde_json::json!([])).is_err());
    }
}
