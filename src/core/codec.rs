//! JSON encoding and decoding shared by every typed operation.
//!
//! Values are stored as plain JSON text, so any client reads them. A decode
//! failure names the key and the field path:
//! `user:1: .address.zip: invalid type: integer, expected a string`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::error::{Error, ErrorKind, Result};

/// Serializes `value` as compact JSON text; a failure names `key`.
pub(crate) fn to_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| {
        Error::new(ErrorKind::Serialization, e.to_string())
            .with_key(key)
            .with_source(e)
    })
}

/// Appends `value` as compact JSON text to `buf`; a failure names `key`.
pub(crate) fn write_json<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<()> {
    serde_json::to_writer(buf, value).map_err(|e| {
        Error::new(ErrorKind::Serialization, e.to_string())
            .with_key(key)
            .with_source(e)
    })
}

/// Decodes JSON text into `T`; a failure names `key` and the field path, and
/// is logged at warn.
pub(crate) fn from_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    from_json_at(key, "", bytes)
}

/// [`from_json`] for a value that lives below `prefix` inside `key` (a hash
/// field: `.field`); the error's path starts with it.
pub(crate) fn from_json_at<T: DeserializeOwned>(
    key: &str,
    prefix: &str,
    bytes: &[u8],
) -> Result<T> {
    // Fast path: plain serde_json. Only a failure pays for tracking the
    // path (decoding is deterministic, so the second pass fails the same way).
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let fail = |message: String, path: String, source: serde_json::Error| {
        let err = Error::new(ErrorKind::Deserialization, strip_position(&message))
            .with_key(key)
            .with_path(format!("{prefix}{path}"))
            .with_source(source);
        tracing::warn!(key, error = %err, "stored value does not decode");
        err
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = field_path(e.path());
        let inner = e.into_inner();
        fail(inner.to_string(), path, inner)
    })?;
    de.end()
        .map_err(|e| fail(e.to_string(), String::new(), e))?;
    Ok(value)
}

/// The path segment of a hash field inside its key: `.field`.
pub(crate) fn field_segment(field: &str) -> String {
    format!(".{field}")
}

/// `address.zip` → `.address.zip`, `items[0].id` → `.items[0].id`, root → "".
pub(crate) fn field_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    match text.as_str() {
        "" | "." | "?" => String::new(),
        t if t.starts_with('[') => format!(".{t}"),
        t => format!(".{t}"),
    }
}

/// serde_json appends " at line 1 column 17"; the path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct User {
        name: String,
        address: Address,
        tags: Vec<Tag>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Address {
        zip: String,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Tag {
        id: u32,
    }

    #[test]
    fn nested_errors_name_the_path() {
        let err = from_json::<User>("user:1", br#"{"name":"a","address":{"zip":1},"tags":[]}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user:1: .address.zip: invalid type: integer `1`, expected a string"
        );
        let err = from_json::<User>(
            "user:1",
            br#"{"name":"a","address":{"zip":"1"},"tags":[{"id":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), Some(".tags[0].id"));
    }

    #[test]
    fn invalid_json_and_trailing_bytes_fail() {
        let err = from_json::<serde_json::Value>("k", b"{not json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deserialization);
        assert_eq!(err.path(), None);
        assert!(from_json::<serde_json::Value>("k", b"1 2").is_err());
        assert_eq!(
            from_json::<serde_json::Value>("k", b" null ").unwrap(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn encodes_compact_text() {
        let text = to_json("k", &serde_json::json!({"a": [1, "é"]})).unwrap();
        assert_eq!(text, r#"{"a":[1,"é"]}"#.as_bytes());
    }
}
