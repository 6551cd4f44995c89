//! Key building: namespaces, hash tags and slots, lock keys, glob escaping,
//! cache-key encoding.
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
    // The same CRC16 (XMODEM) crate redis-rs routes keys with.
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).unwrap_or(key)) % 16384
}

/// The lock key of a value key, in the same slot and under the same prefix:
/// `KEY:lock` when the key has a hash tag, else `KEY:lock{T}` with `T` a
/// short tag of the key's own slot (see [`companion_key`]).
///
/// ```
/// use redis_atomics::keys::{lock_key, slot};
/// assert_eq!(lock_key("cache:{user:1}"), "cache:{user:1}:lock");
/// let lock = lock_key("app:user:1");
/// assert!(lock.starts_with("app:user:1:lock{"));
/// assert_eq!(slot(lock.as_bytes()), slot(b"app:user:1"));
/// assert_eq!(slot(lock_key("a}b").as_bytes()), slot(b"a}b"));
/// ```
pub fn lock_key(key: &str) -> String {
    companion_key(key, "lock")
}

/// The suffixes of companion keys the library writes next to a value key
/// (`KEY:lock…`, `KEY:xf…`). A key of yours named like one is never changed
/// or deleted by the compute paths, but `invalidate_all` removes every key
/// under a cached function's prefix.
pub const RESERVED_SUFFIXES: &[&str] = &["lock", "xf"];

/// A key that belongs to `key` (its lock, its compute time): it starts with
/// `key` (so an ACL pattern `~ns:*` and a `SCAN MATCH key*` cover it) and
/// lives in the same cluster slot, so one script can touch both:
///
/// * `key` has a hash tag → `KEY:SUFFIX` (the tag stays the first one);
/// * otherwise → `KEY:SUFFIX{T}`, where `T` is a short tag chosen so that
///   the companion hashes to the key's slot (from a per-slot table when the
///   key has no `{`; searched for when stray braces such as `a{}b` or `{b`
///   decide what is hashed).
///
/// ```
/// use redis_atomics::keys::{companion_key, slot};
/// for key in ["plain", "x:{tag}:y", "a}b", "a{}b", "{b", "}{", "{}"] {
///     let companion = companion_key(key, "lock");
///     assert!(companion.starts_with(key), "{companion}");
///     assert_eq!(slot(companion.as_bytes()), slot(key.as_bytes()), "{key}");
/// }
/// ```
pub fn companion_key(key: &str, suffix: &str) -> String {
    let bytes = key.as_bytes();
    if hash_tag(bytes).is_some() {
        return format!("{key}:{suffix}");
    }
    let target = slot(bytes);
    let base = format!("{key}:{suffix}");
    if !bytes.contains(&b'{') {
        // Our `{T}` is the first brace pair: T alone is hashed.
        return format!("{base}{{{}}}", slot_tag(target));
    }
    // Stray braces decide what is hashed; try tags until the slot matches
    // (about 16,384 candidates on average, each a short CRC).
    let mut candidate = String::with_capacity(base.len() + 8);
    for n in 0u32.. {
        candidate.clear();
        candidate.push_str(&base);
        candidate.push('{');
        push_tag(&mut candidate, n);
        candidate.push('}');
        if slot(candidate.as_bytes()) == target {
            return candidate;
        }
    }
    unreachable!("some tag hashes to every slot")
}

const TAG_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Writes the `n`-th tag of the alphabet (bijective base 62).
fn push_tag(out: &mut String, mut n: u32) {
    let base = TAG_ALPHABET.len() as u32;
    loop {
        out.push(char::from(TAG_ALPHABET[(n % base) as usize]));
        n /= base;
        if n == 0 {
            break;
        }
        n -= 1;
    }
}

/// A short ASCII string whose cluster slot is `slot` (for every slot).
fn slot_tag(slot: u16) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); 16384];
        let mut missing = tags.len();
        let mut candidate = String::new();
        for n in 0u32.. {
            candidate.clear();
            push_tag(&mut candidate, n);
            let s = usize::from(self::slot(candidate.as_bytes()));
            if tags[s].is_empty() {
                tags[s] = candidate.clone();
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        tags
    });
    &tags[usize::from(slot)]
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

/// Encoded argument values longer than this many bytes are replaced by
/// `#` and the SHA1 of their encoding, so keys stay short.
pub const MAX_ARG_PART: usize = 100;

/// Percent-encodes one part of a cache key so that the encoding is injective
/// and safe in keys and SCAN patterns: `% : = { } * ? [ ] \ # ~ "`,
/// whitespace and control bytes become `%XX`; everything else (including
/// non-ASCII text) is kept as is.
///
/// ```
/// use redis_atomics::keys::encode_key_part;
/// assert_eq!(encode_key_part("a:b"), "a%3Ab");
/// assert_eq!(encode_key_part("50%"), "50%25");
/// assert_eq!(encode_key_part("héllo wörld"), "héllo%20wörld");
/// ```
pub fn encode_key_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for ch in part.chars() {
        let special = matches!(
            ch,
            '%' | ':' | '=' | '{' | '}' | '*' | '?' | '[' | ']' | '\\' | '#' | '~' | '"'
        ) || ch.is_whitespace()
            || ch.is_control();
        if special {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        } else {
            out.push(ch);
        }
    }
    out
}

// Hand-written rather than the `percent-encoding` crate (in the tree via
// `url`): that crate always escapes non-ASCII bytes, and cache keys keep
// UTF-8 text readable (`héllo%20wörld`), escaping only what could break
// injectivity, glob patterns or hash tags, and Unicode whitespace.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Encodes one argument value for a cache key: strings as-is, numbers and
/// booleans as text, `null` as `~`, lists and maps as JSON (maps with sorted
/// keys), all percent-encoded by [`encode_key_part`]. A string that would
/// read as another JSON type (`"1"`, `"true"`, `"[1]"`, `"{}"`, or one that
/// starts with `"`) is written as its quoted JSON text instead, so values of
/// different types never share a key while `user_id=42` and `name=ada` stay
/// readable. An encoding longer than [`MAX_ARG_PART`] bytes becomes `#` +
/// its SHA1 (hex).
///
/// ```
/// use redis_atomics::keys::encode_arg_value;
/// use serde_json::json;
/// assert_eq!(encode_arg_value(&json!("a:b")), "a%3Ab");
/// assert_eq!(encode_arg_value(&json!(42)), "42");
/// assert_eq!(encode_arg_value(&json!("42")), "%2242%22");
/// assert_eq!(encode_arg_value(&json!(null)), "~");
/// assert_eq!(encode_arg_value(&json!([1, "x"])), "%5B1,%22x%22%5D");
/// assert_ne!(encode_arg_value(&json!(["a"])), encode_arg_value(&json!("[\"a\"]")));
/// assert!(encode_arg_value(&json!("x".repeat(500))).starts_with('#'));
/// ```
pub fn encode_arg_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    let encoded = match value {
        Value::Null => return "~".to_string(),
        Value::String(s) if reads_as_other_json(s) => encode_key_part(&value.to_string()),
        Value::String(s) => encode_key_part(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => encode_key_part(&other.to_string()),
    };
    if encoded.len() > MAX_ARG_PART {
        let digest = sha1_smol::Sha1::from(encoded.as_bytes()).digest();
        format!("#{digest}")
    } else {
        encoded
    }
}

/// Whether a string's plain encoding could equal the encoding of a number,
/// a boolean, a list, a map or a quoted string.
fn reads_as_other_json(s: &str) -> bool {
    s.starts_with(['"', '[', '{'])
        || s == "true"
        || s == "false"
        || serde_json::from_str::<serde_json::Number>(s).is_ok()
}

/// Builds a cache key `{namespace}:{key_prefix}:{function}:{arg}={value}:…`
/// (absent parts omitted). `function` and argument names are percent-encoded
/// by [`encode_key_part`]; `args` values must already be encoded (see
/// [`encode_arg_value`]). The namespace and prefix are used as given.
///
/// ```
/// use redis_atomics::keys::cache_key;
/// let key = cache_key(Some("app"), Some("v1"), "get_user", &[("id", "7".into())]);
/// assert_eq!(key, "app:v1:get_user:id=7");
/// assert_eq!(cache_key(None, None, "now", &[]), "now");
/// ```
pub fn cache_key(
    namespace: Option<&str>,
    key_prefix: Option<&str>,
    function: &str,
    args: &[(&str, String)],
) -> String {
    let mut key = cache_function_prefix(namespace, key_prefix, function);
    for (name, value) in args {
        key.push(':');
        key.push_str(&encode_key_part(name));
        key.push('=');
        key.push_str(value);
    }
    key
}

/// The part of a cache key common to every call of `function`:
/// `{namespace}:{key_prefix}:{function}` (absent parts omitted, `function`
/// percent-encoded).
pub fn cache_function_prefix(
    namespace: Option<&str>,
    key_prefix: Option<&str>,
    function: &str,
) -> String {
    let mut key = String::new();
    for part in [namespace, key_prefix].into_iter().flatten() {
        if !part.is_empty() {
            key.push_str(part);
            key.push(':');
        }
    }
    key.push_str(&encode_key_part(function));
    key
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
        assert_eq!(slot(b"a{}b"), 13_694); // python3 binascii.crc_hqx
        assert_eq!(slot(b"{b"), 6_215);
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn every_slot_has_a_tag() {
        for s in 0..16384u16 {
            let tag = slot_tag(s);
            assert!(!tag.is_empty() && tag.len() <= 4, "slot {s}");
            assert_eq!(slot(tag.as_bytes()), s);
        }
    }

    #[test]
    fn companions_share_the_slot_and_stay_distinct() {
        let keys = ["plain", "x:{tag}:y", "a}b", "a{}b", "{b", "}{", "{}", "é{"];
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let lock = companion_key(key, "lock");
            assert_eq!(
                slot(lock.as_bytes()),
                slot(key.as_bytes()),
                "{key} -> {lock}"
            );
            assert!(lock.starts_with(key), "{lock}");
            assert!(seen.insert(lock));
        }
    }

    #[test]
    fn arg_values_of_different_types_never_collide() {
        use serde_json::json;
        let values = [
            json!(1),
            json!("1"),
            json!(1.5),
            json!("1.5"),
            json!(-0),
            json!("-0"),
            json!(true),
            json!("true"),
            json!(null),
            json!("~"),
            json!("null"),
            json!(["a", "b"]),
            json!("[\"a\",\"b\"]"),
            json!({"a": 1}),
            json!("{\"a\":1}"),
            json!("\"1\""),
            json!("%221%22"),
            json!(""),
            json!("\"\""),
            json!("01"),
            json!("1e5"),
            json!(100000.0),
        ];
        let mut seen = std::collections::HashMap::new();
        for value in values {
            let encoded = encode_arg_value(&value);
            if let Some(other) = seen.insert(encoded.clone(), value.clone()) {
                panic!("{value} and {other} both encode as {encoded}");
            }
        }
        assert_eq!(encode_arg_value(&json!("ada")), "ada");
        assert_eq!(encode_arg_value(&json!(42)), "42");
    }

    #[test]
    fn hash_tag_edge_cases() {
        assert_eq!(hash_tag(b"{}"), None);
        assert_eq!(hash_tag(b"{a"), None);
        assert_eq!(hash_tag(b"}{a}"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"{{a}}"), Some(&b"{a"[..]));
    }
}
