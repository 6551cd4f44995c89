//! Operators' surfaces: the script catalogue `lua/README.md` is generated
//! from the script headers (`UPDATE_LUA_README=1 cargo test --test cli`
//! rewrites it), every `redis-cli --eval` line in it runs as-is through the
//! real `redis-cli` against a spawned server and its reply is checked, and the
//! `redis-atomics` scripts CLI lists, shows and loads the scripts on a server
//! and on every primary of a cluster.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use redis_atomics::scripts;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn lua_readme_path() -> PathBuf {
    Path::new(MANIFEST_DIR).join("lua").join("README.md")
}

fn lua_readme() -> String {
    std::fs::read_to_string(lua_readme_path()).expect("read lua/README.md")
}

/// The `redis-cli --eval …` lines of lua/README.md, as written.
fn lua_readme_eval_lines() -> Vec<String> {
    lua_readme()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("redis-cli --eval "))
        .map(str::to_owned)
        .collect()
}

fn script_of(line: &str) -> &'static scripts::LuaScript {
    let path = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no script path in {line:?}"));
    let name = path
        .strip_prefix("lua/")
        .and_then(|p| p.strip_suffix(".lua"))
        .unwrap_or_else(|| panic!("{line:?}: script path is not lua/NAME.lua"));
    scripts::get(name).unwrap_or_else(|| panic!("{line:?}: no embedded script {name}"))
}

const CATALOGUE_BEGIN: &str = "<!-- scripts:begin";
const CATALOGUE_END: &str = "<!-- scripts:end -->";

/// Collapses runs of whitespace, so the header's column alignment does not
/// leak into the Markdown.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One catalogue entry, from the header block of a script (the leading
/// `--` lines up to the first empty one): the summary line, then every
/// `KEYS…`, `ARGV…`, `Returns` and `Example` line.
fn catalogue_entry(script: &scripts::LuaScript) -> String {
    let name = script.name();
    let header: Vec<&str> = script
        .source()
        .lines()
        .take_while(|l| l.starts_with("--"))
        .map(|l| l.trim_start_matches('-').trim())
        .take_while(|l| !l.is_empty())
        .collect();
    let summary = header
        .first()
        .and_then(|l| l.strip_prefix(&format!("{name}.lua:")))
        .unwrap_or_else(|| panic!("{name}: the first header line is not `-- {name}.lua: …`"))
        .trim();
    let joined = |tag: &str| {
        let parts: Vec<&str> = header
            .iter()
            .copied()
            .filter(|l| l.starts_with(tag))
            .collect();
        assert!(!parts.is_empty(), "{name}: no `{tag}` header line");
        squeeze(&parts.join(" "))
    };
    let field = |tag: &str| squeeze(joined(tag).strip_prefix(tag).unwrap_or_default());
    format!(
        "#### `{name}`: {summary}\n\n- KEYS: `{}`\n- ARGV: `{}`\n- Returns: `{}`\n\n```sh\n{}\n```\n",
        joined("KEYS"),
        joined("ARGV"),
        field("Returns"),
        script
            .example()
            .unwrap_or_else(|| panic!("{name}: no `Example` header line")),
    )
}

/// The generated part of lua/README.md, between the markers.
fn catalogue() -> String {
    let entries: Vec<String> = scripts::all()
        .iter()
        .copied()
        .map(catalogue_entry)
        .collect();
    entries.join("\n")
}

#[test]
fn lua_readme_catalogue_is_generated_from_the_script_headers() {
    let text = lua_readme();
    let begin = text
        .find(CATALOGUE_BEGIN)
        .expect("lua/README.md lacks the `<!-- scripts:begin … -->` marker");
    let body_start = begin
        + text[begin..]
            .find("-->\n")
            .expect("the begin marker ends with `-->`")
        + "-->\n".len();
    let end = text
        .find(CATALOGUE_END)
        .expect("lua/README.md lacks the `<!-- scripts:end -->` marker");
    let want = catalogue();
    if text[body_start..end] == want {
        return;
    }
    let updated = format!("{}{want}{}", &text[..body_start], &text[end..]);
    if std::env::var_os("UPDATE_LUA_README").is_some() {
        std::fs::write(lua_readme_path(), updated).expect("write lua/README.md");
        return;
    }
    panic!(
        "lua/README.md differs from the script headers; rewrite it with\n  \
         UPDATE_LUA_README=1 cargo test --test cli lua_readme\n\
         The expected catalogue:\n{want}"
    );
}

#[test]
fn lua_readme_shows_every_scripts_example_line() {
    let lines = lua_readme_eval_lines();
    for script in scripts::all() {
        let example = script
            .example()
            .unwrap_or_else(|| panic!("{} has no Example header line", script.name()));
        assert!(
            lines.iter().any(|l| l == example),
            "lua/README.md lacks the Example line of {}: {example}",
            script.name()
        );
    }
    for line in &lines {
        let script = script_of(line);
        assert_eq!(
            Some(line.as_str()),
            script.example(),
            "lua/README.md line differs from the header Example of {}",
            script.name()
        );
    }
}

/// One expected reply line: exact text, or an integer in a range (for
/// durations that depend on the server clock).
enum Reply {
    Is(&'static str),
    Between(i64, i64),
}
use Reply::{Between, Is};

/// What each script's Example prints on an empty database. Rate-limit
/// replies: allowed, never, denied_by, then per limit remaining,
/// retry_after_ms, reset_after_ms.
fn expected(name: &str) -> Vec<Reply> {
    match name {
        "extend_lock" | "unlock" | "invalidate" => vec![Is("0")],
        "get_or_lock" => vec![Is("compute"), Is(""), Is("5000")],
        // No lease on an empty database: nothing is stored.
        "set_and_unlock" => vec![Is("0")],
        "try_lock" => vec![Is("1")],
        "set_value" => vec![Is("OK")],
        "mset_expire" => vec![Is("2")],
        "rl_fixed_window" | "rl_sliding_log" => {
            let mut v = vec![Is("1"), Is("0"), Is("0")];
            v.extend([Is("9"), Is("0"), Is("1000")]);
            v.extend([Is("999"), Is("0"), Is("3600000")]);
            v
        }
        "rl_sliding_window" => {
            // reset_after spans the current and the previous window.
            let mut v = vec![Is("1"), Is("0"), Is("0")];
            v.extend([Is("9"), Is("0"), Between(1000, 2000)]);
            v.extend([Is("999"), Is("0"), Between(3_600_000, 7_200_000)]);
            v
        }
        "rl_gcra" => {
            // limit 10 per 1000 ms with burst 5, and 1000 per hour with burst 100.
            let mut v = vec![Is("1"), Is("0"), Is("0")];
            v.extend([Is("4"), Is("0"), Is("100")]);
            v.extend([Is("99"), Is("0"), Is("3600")]);
            v
        }
        other => panic!("tests/cli.rs has no expected reply for script {other}; add one"),
    }
}

fn run_line(server: &support::RedisServer, line: &str) -> Output {
    let rest = line
        .strip_prefix("redis-cli ")
        .expect("line starts with redis-cli");
    // The catalogue line is shell syntax (quotes, braces): let sh parse it.
    let shell = format!("\"$REDIS_CLI\" -p {} --no-raw {rest}", server.port());
    Command::new("sh")
        .arg("-c")
        .arg(&shell)
        .env("REDIS_CLI", support::cli_bin())
        .current_dir(MANIFEST_DIR)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"))
}

fn plain_reply(stdout: &str) -> Vec<String> {
    // --no-raw prints `1) (integer) 5` / `2) "compute"` / `(integer) 0`.
    stdout
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = match l.split_once(") ") {
                Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
                _ => l,
            };
            let l = l.strip_prefix("(integer) ").unwrap_or(l);
            l.trim_matches('"').to_owned()
        })
        .collect()
}

#[test]
fn lua_readme_eval_lines_run_through_redis_cli() {
    // A private server: each line starts from an empty database.
    let server = support::RedisServer::start();
    let mut conn = server.connection();
    let lines = lua_readme_eval_lines();
    assert!(
        !lines.is_empty(),
        "lua/README.md has no redis-cli --eval lines"
    );
    for line in &lines {
        let script = script_of(line);
        redis::cmd("FLUSHALL").exec(&mut conn).expect("FLUSHALL");
        let out = run_line(&server, line);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{line}\nexit {}: {stderr}",
            out.status
        );
        assert!(
            !stdout.contains("(error)"),
            "{line}\nreplied with an error: {stdout}"
        );
        let got = plain_reply(&stdout);
        let want = expected(script.name());
        assert_eq!(got.len(), want.len(), "{line}\nreply: {stdout}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            match w {
                Is(text) => assert_eq!(g, text, "{line}\nline {i} of reply: {stdout}"),
                Between(lo, hi) => {
                    let n: i64 = g
                        .parse()
                        .unwrap_or_else(|_| panic!("{line}\nline {i} not an integer: {stdout}"));
                    assert!(
                        (*lo..=*hi).contains(&n),
                        "{line}\nline {i} = {n}, want {lo}..={hi}"
                    );
                }
            }
        }
    }
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redis-atomics"))
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_NODES")
        .output()
        .expect("run redis-atomics")
}

#[test]
fn cli_lists_every_script_with_its_sha1() {
    let out = cli(&["scripts", "list"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<(String, String)> = stdout
        .lines()
        .map(|l| {
            let (sha, name) = l.split_once("  ").expect("SHA  NAME");
            (sha.to_owned(), name.to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = scripts::all()
        .iter()
        .map(|s| (s.sha1().to_owned(), s.name().to_owned()))
        .collect();
    assert_eq!(listed, want);
}

#[test]
fn cli_shows_a_scripts_source_and_rejects_unknown_names() {
    let script = scripts::get("unlock").expect("unlock script");
    let out = cli(&["scripts", "show", "unlock"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), script.source());

    let out = cli(&["scripts", "show", "no_such_script"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("no script named \"no_such_script\""),
        "{stderr}"
    );
    assert!(stderr.contains("unlock"), "lists the known names: {stderr}");

    let out = cli(&["scripts", "frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("usage:"));
}

fn script_exists_everywhere(conn: &mut redis::Connection) -> Vec<bool> {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("EXISTS");
    for s in scripts::all() {
        cmd.arg(s.sha1());
    }
    let flags: Vec<i64> = cmd.query(conn).expect("SCRIPT EXISTS");
    flags.into_iter().map(|f| f == 1).collect()
}

#[test]
fn cli_loads_every_script_on_a_server() {
    let server = support::RedisServer::start();
    let mut conn = server.connection();
    assert!(script_exists_everywhere(&mut conn).iter().all(|e| !e));
    let out = cli(&["--url", &server.url(), "scripts", "load"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("loaded {} scripts", scripts::all().len())),
        "{stdout}"
    );
    assert!(script_exists_everywhere(&mut conn).iter().all(|e| *e));
}

#[test]
fn cli_loads_every_script_on_every_cluster_primary() {
    let cluster = support::shared_cluster_blocking();
    let nodes = cluster.nodes().join(",");
    let out = cli(&["--cluster", &nodes, "scripts", "load"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let primaries = cluster.primaries();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("loaded ")).count(),
        primaries.len(),
        "{stdout}"
    );
    for i in primaries {
        let mut conn = cluster.node(i).connection();
        assert!(
            script_exists_everywhere(&mut conn).iter().all(|e| *e),
            "node {i} lacks a script"
        );
    }
}

#[test]
fn cli_load_against_a_dead_server_fails_clearly() {
    let port = support::reserve_free_port();
    let out = cli(&[
        "--url",
        &format!("redis://127.0.0.1:{port}"),
        "scripts",
        "load",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("redis-atomics: "), "{stderr}");
}
