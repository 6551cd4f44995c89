//! [`SearchCommand`]: a rendered `FT.SEARCH`, printable like `redis-cli` input.

use std::fmt::{self, Write as _};

use redis::Cmd;

/// A rendered `FT.SEARCH` command. `Display` prints it like `redis-cli`
/// input, with the vector blob as `<N bytes>`.
#[derive(Debug, Clone)]
pub struct SearchCommand {
    pub(super) cmd: Cmd,
}

impl SearchCommand {
    /// The command arguments (the name `FT.SEARCH` first).
    pub fn args(&self) -> Vec<Vec<u8>> {
        self.cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect()
    }

    /// The query string (the third argument).
    pub fn query(&self) -> String {
        self.args()
            .get(2)
            .map(|q| String::from_utf8_lossy(q).into_owned())
            .unwrap_or_default()
    }

    /// The command for redis-rs, e.g. to run it on another connection.
    pub fn cmd(&self) -> &Cmd {
        &self.cmd
    }
}

impl fmt::Display for SearchCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args = self.args();
        let mut blob_next = false;
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            match std::str::from_utf8(arg) {
                Ok(s) if !blob_next => {
                    if s.is_empty()
                        || s.contains(|c: char| {
                            c.is_whitespace() || c == '"' || c == '\'' || c == '\\'
                        })
                    {
                        write!(f, "{s:?}")?;
                    } else {
                        f.write_str(s)?;
                    }
                }
                _ => write!(f, "<{} bytes>", arg.len())?,
            }
            blob_next =
                arg.as_slice() == b"vec" && args.get(i.wrapping_sub(1)).is_some_and(|p| p == b"2");
        }
        Ok(())
    }
}
