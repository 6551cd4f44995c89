//! [`SearchServer`]: Redis 8.2 with the search module, from the wheels that
//! `scripts/test` unpacks; skipped with a reason unless required.

use super::*;

/// True when `REDIS_ATOMICS_REQUIRE_SEARCH=1` (set by `scripts/test`): a missing
/// search server then fails the test instead of skipping it.
pub fn search_required() -> bool {
    env_nonempty("REDIS_ATOMICS_REQUIRE_SEARCH").is_some_and(|v| v.trim() != "0")
}

pub(super) fn check_executable(what: &str, path: &Path, var: &str) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| {
        format!(
            "{what} {} not found ({e}; set {var} to override)",
            path.display()
        )
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{what} {} is not an executable file (Redis refuses modules without +x)",
            path.display()
        ));
    }
    Ok(())
}

/// `name` looked up in `PATH` when it has no `/`, else as given.
pub(super) fn which(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

pub(super) fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&path))
            .unwrap_or(path)
    }
}

/// The search server binary and module: `REDIS_SEARCH_SERVER_BIN` and
/// `REDIS_SEARCH_MODULE`, or else what `scripts/test` unpacks under
/// `target/servers/`. `Err` names every one that is not usable (on a fresh
/// clone, both), so the reason printed or panicked with is complete.
pub fn search_available() -> Result<(String, String), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = env_nonempty("REDIS_SEARCH_SERVER_BIN")
        .map(|b| absolute(which(&b)))
        .unwrap_or_else(|| root.join(SEARCH_SERVER_REL));
    let module = env_nonempty("REDIS_SEARCH_MODULE")
        .map(|m| absolute(PathBuf::from(m)))
        .unwrap_or_else(|| root.join(SEARCH_MODULE_REL));
    let missing: Vec<String> = [
        check_executable("search server binary", &bin, "REDIS_SEARCH_SERVER_BIN"),
        check_executable("search module", &module, "REDIS_SEARCH_MODULE"),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    Ok((bin.display().to_string(), module.display().to_string()))
}

/// What to do when search is unavailable: panic under
/// `REDIS_ATOMICS_REQUIRE_SEARCH=1`, else print the skip line (uncaptured, so
/// a plain `cargo test` shows it).
pub(super) fn skip_search(test: &str, why: &str) {
    if search_required() {
        panic!("{test}: search server not available but REDIS_ATOMICS_REQUIRE_SEARCH=1: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: search server not available: {why}; run scripts/test to fetch it"
    );
}

/// Redis 8.2 with the search module loaded. Derefs to [`RedisServer`].
pub struct SearchServer {
    server: RedisServer,
    module: String,
}

impl SearchServer {
    /// An own search server for `test`, or `None` (after printing why) when the
    /// binaries are missing; panics instead under `REDIS_ATOMICS_REQUIRE_SEARCH=1`.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[])
    }

    /// Like [`start`](Self::start), with extra config args.
    pub fn start_with(test: &str, args: &[&str]) -> Option<Self> {
        match search_available() {
            Ok((bin, module)) => Some(Self::start_from(&bin, &module, args)),
            Err(why) => {
                skip_search(test, &why);
                None
            }
        }
    }

    /// Starts `bin --loadmodule module` (panics if it does not come up).
    pub fn start_from(bin: &str, module: &str, args: &[&str]) -> Self {
        let mut all = vec!["--loadmodule", module];
        all.extend_from_slice(args);
        SearchServer {
            server: RedisServer::start_bin(bin, &all),
            module: module.to_owned(),
        }
    }

    /// The loaded module's path.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The underlying server (also reachable through Deref).
    pub fn server(&self) -> &RedisServer {
        &self.server
    }

    /// The underlying server, e.g. to stop or restart it.
    pub fn server_mut(&mut self) -> &mut RedisServer {
        &mut self.server
    }
}

impl Deref for SearchServer {
    type Target = RedisServer;
    fn deref(&self) -> &RedisServer {
        &self.server
    }
}
