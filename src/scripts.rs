//! The Lua script registry: every file of `lua/`, embedded, hashed once.
//!
//! Scripts run with `EVALSHA`; on `NOSCRIPT` (a restarted server, a
//! `SCRIPT FLUSH`, a new cluster primary) the service falls back to `EVAL` on
//! the same node, which also caches the script there, and carries on with
//! `EVALSHA`. [`RedisService::preload`](crate::RedisService::preload) loads
//! them ahead of time on every primary.
//!
//! ```
//! let names: Vec<_> = redis_atomics::scripts::all().iter().map(|s| s.name()).collect();
//! assert!(names.contains(&"mset_expire"));
//! let s = redis_atomics::scripts::get("mset_expire").unwrap();
//! assert_eq!(s.sha1().len(), 40);
//! assert!(s.source().starts_with("-- mset_expire.lua:"));
//! ```

use std::sync::OnceLock;

use include_dir::{Dir, include_dir};

static LUA_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/lua");

/// One embedded Lua script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuaScript {
    name: &'static str,
    source: &'static str,
    sha1: String,
}

impl LuaScript {
    /// The file name without `.lua`, e.g. `sliding_window`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The script's text.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The SHA1 (lowercase hex) that `SCRIPT LOAD` returns for it.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    /// The header lines (the leading `--` comment block).
    pub fn header(&self) -> impl Iterator<Item = &'static str> {
        self.source
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| l.trim_start_matches('-').trim())
    }

    /// The `redis-cli --eval` example of its header.
    pub fn example(&self) -> Option<&'static str> {
        self.header()
            .find_map(|l| l.strip_prefix("Example"))
            .map(str::trim)
    }
}

/// Every embedded script, sorted by name.
pub fn all() -> &'static [LuaScript] {
    static ALL: OnceLock<Vec<LuaScript>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut scripts: Vec<LuaScript> = LUA_DIR
            .files()
            .filter_map(|file| {
                let path = file.path().to_str()?;
                let name = path.strip_suffix(".lua")?;
                let source = file.contents_utf8()?;
                let sha1 = sha1_smol::Sha1::from(source.as_bytes())
                    .digest()
                    .to_string();
                Some(LuaScript { name, source, sha1 })
            })
            .collect();
        scripts.sort_by_key(|s| s.name);
        scripts
    })
}

/// The script called `name`, if embedded.
pub fn get(name: &str) -> Option<&'static LuaScript> {
    all().iter().find(|s| s.name == name)
}

/// The script called `name`; a missing one is a bug of the crate itself.
pub(crate) fn script(name: &str) -> crate::Result<&'static LuaScript> {
    get(name).ok_or_else(|| crate::Error::config(format!("no embedded Lua script named {name}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_has_the_header_convention() {
        assert!(!super::all().is_empty());
        for s in super::all() {
            let header: Vec<_> = s.header().collect();
            let first = header.first().copied().unwrap_or_default();
            assert!(
                first.starts_with(&format!("{}.lua:", s.name())),
                "{}: first line must be `-- {}.lua: …`",
                s.name(),
                s.name()
            );
            for tag in ["KEYS[", "ARGV[", "Returns", "Example"] {
                assert!(
                    header.iter().any(|l| l.starts_with(tag)),
                    "{} lacks a {tag} header line",
                    s.name()
                );
            }
            let example = s.example().unwrap_or_default();
            assert!(
                example.starts_with(&format!("redis-cli --eval lua/{}.lua ", s.name())),
                "{}: bad example {example:?}",
                s.name()
            );
            assert!(!s.source().contains('\r'), "{} has CR line ends", s.name());
        }
    }
}
