//! [`ScriptCall`]: one invocation of an embedded script, built once as the
//! `EVALSHA` command it sends; `EVAL` is derived from it after `NOSCRIPT`.

use redis::{Cmd, ToRedisArgs};

use crate::core::scripts::LuaScript;

/// A script invocation, built once as the `EVALSHA` command it sends.
///
/// Keys come first (`.key()`), then arguments (`.arg()`): the first argument
/// fixes the key count and starts the command, and every later argument is
/// written straight into it — one copy of each value, however large, and no
/// rebuilding on retries. `EVAL` (after `NOSCRIPT`, rare) is derived from it.
pub(crate) struct ScriptCall {
    pub(crate) script: &'static LuaScript,
    /// The keys, until the first argument moves them into `cmd`.
    keys: Vec<String>,
    /// The first key, which names the call in errors and logs.
    first_key: Option<String>,
    /// `EVALSHA sha numkeys keys… args…`, once an argument was added.
    cmd: Option<Cmd>,
}

impl ScriptCall {
    pub(crate) fn new(script: &'static LuaScript) -> Self {
        ScriptCall {
            script,
            keys: Vec::new(),
            first_key: None,
            cmd: None,
        }
    }

    /// Adds a (full) key. Every key must come before the first argument.
    pub(crate) fn key(mut self, key: impl Into<String>) -> Self {
        debug_assert!(self.cmd.is_none(), "ScriptCall: a key after an argument");
        let key = key.into();
        if self.first_key.is_none() {
            self.first_key = Some(key.clone());
        }
        self.keys.push(key);
        self
    }

    /// Adds an argument, written straight into the command.
    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.started().arg(arg);
        self
    }

    /// The first key, if any.
    pub(crate) fn first_key(&self) -> Option<&str> {
        self.first_key.as_deref()
    }

    fn started(&mut self) -> &mut Cmd {
        let (script, keys) = (self.script, &mut self.keys);
        self.cmd
            .get_or_insert_with(|| header(script, std::mem::take(keys)))
    }

    /// `EVALSHA …`, as built.
    pub(crate) fn evalsha(&self) -> std::borrow::Cow<'_, Cmd> {
        match &self.cmd {
            Some(cmd) => std::borrow::Cow::Borrowed(cmd),
            None => std::borrow::Cow::Owned(header(self.script, self.keys.clone())),
        }
    }

    /// The same call as `EVAL source …`.
    pub(crate) fn eval(&self) -> Cmd {
        let evalsha = self.evalsha();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(self.script.source());
        for arg in evalsha.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }
}

/// `EVALSHA sha numkeys keys…`.
fn header(script: &LuaScript, keys: Vec<String>) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.sha1()).arg(keys.len()).arg(keys);
    cmd
}
