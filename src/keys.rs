//! Key building: namespaces, hash tags and slots, lock keys, glob escaping.
//!
//! Without a namespace a key is exactly what the caller passed; with one it
//! is `{namespace}:{key}`. Keys that must live in one cluster slot (a value
//! and its lock, the limits of one rate-limit id) share a hash tag.

/// Prefixes `key` with `namespace` as `{namespace}:{key}`, or returns it as is.
///
/// ```
/// use redis_atomics::keys::namespaced;
/// assert_eq!(namespaced(Some("app"), "user:1"), "app:user:1");
/// assert_eq!(namespaced(None, "user:1"), "user:1");
/// ```
pub fn namespaced(namespace: Option<&str>, key: &str) -> String {
    match namespace {
        Some(ns) => {
            let mut full = String::with_capacity(ns.len() + 1 + key.len());
            full.push_str(ns);
            full.push(':');
            full.push_str(key);
            full
        }
        None => key.to_string(),
    }
}

/// The hash tag of `key` as Redis Cluster defines it: the bytes between the
/// first `{` and the next `}`, when that is non-empty.
///
/// ```
/// use redis_atomics::keys::hash_tag;
/// assert_eq!(hash_tag(b"rl:{user:1}:s"), Some(&b"user:1"[..]));
/// assert_eq!(hash_tag(b"a{}b{c}"), None);
/// assert_eq!(hash_tag(b"plain"), None);
/// ```
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

/// The cluster hash slot (0–16383) of `key`: CRC16 of its hash tag or of the
/// whole key, modulo 16384.
///
/// ```
/// use redis_atomics::keys::slot;
/// assert_eq!(slot(b"foo"), 12182);
/// assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
/// ```
pub fn slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key).unwrap_or(key)) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The lock key of a value key, in the same slot: `KEY:lock` when the key has
/// a hash tag, else `{KEY}:lock`.
///
/// ```
/// use redis_atomics::keys::{lock_key, slot};
/// assert_eq!(lock_key("cache:{user:1}"), "cache:{user:1}:lock");
/// assert_eq!(lock_key("cache:user:1"), "{cache:user:1}:lock");
/// assert_eq!(slot(lock_key("cache:user:1").as_bytes()), slot(b"cache:user:1"));
/// ```
pub fn lock_key(key: &str) -> String {
    if hash_tag(key.as_bytes()).is_some() {
        format!("{key}:lock")
    } else {
        format!("{{{key}}}:lock")
    }
}

/// Escapes the glob characters `* ? [ ] \` of a literal, for SCAN MATCH.
///
/// ```
/// use redis_atomics::keys::escape_glob;
/// assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
/// ```
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for ch in literal.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{foo}bar"), 12182);
        assert_eq!(slot(b"a{}b"), slot(b"a{}b"));
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn hash_tag_edge_cases() {
        assert_eq!(hash_tag(b"{}"), None);
        assert_eq!(hash_tag(b"{a"), None);
        assert_eq!(hash_tag(b"}{a}"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"{{a}}"), Some(&b"{a"[..]));
    }
}
