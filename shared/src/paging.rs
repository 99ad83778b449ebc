//! Keyset paging shared by every list: the page size rule, opaque cursors and the
//! `{"items": [...], "next_cursor": ...}` answer shape.
//!
//! A neutral room below the domains and the HTTP layer: it imports neither, and its
//! [`Error`] carries the offending field and what is wrong, never a status (the HTTP layer
//! maps it once, in `http::map::paging`).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `?limit=` outside 1..=500.
    #[error("limit must be between 1 and 500")]
    InvalidLimit,
    /// A cursor this service did not issue.
    #[error("cursor is not one this service issued")]
    InvalidCursor,
}

impl Error {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Error::InvalidLimit => "limit",
            Error::InvalidCursor => "cursor",
        }
    }
}

/// Page size of a list: `?limit=` between 1 and 500, 50 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, Error> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(Error::InvalidLimit),
    }
}

/// Encodes a keyset position as an opaque cursor.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes a cursor made by [`encode_cursor`]; [`Error::InvalidCursor`] otherwise.
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Error::InvalidCursor)
}

/// A list answer `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// This page.
    pub items: Vec<T>,
    /// Where the next page starts, or null at the end.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&("2026-01-01T00:00:00Z", 42));
        let back: (String, i64) = decode_cursor(&c).unwrap();
        assert_eq!(back.1, 42);
        assert_eq!(decode_cursor::<(String, i64)>("!!").unwrap_err().field(), "cursor");
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some(500)).unwrap(), 500);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(501)).is_err());
    }
}
