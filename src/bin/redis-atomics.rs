//! `redis-atomics`: the operators' command line for the crate's Lua scripts.
//!
//! ```text
//! redis-atomics scripts list            names and SHA1s of every embedded script
//! redis-atomics scripts show NAME       a script's source
//! redis-atomics scripts load            SCRIPT LOAD every script on every primary
//! ```
//!
//! `load` connects to `--url URL`, `--cluster URL,URL,…`, or else
//! `REDIS_CLUSTER_NODES` / `REDIS_URL` / 127.0.0.1:6379.

use std::process::ExitCode;

use redis_atomics::{RedisConfig, RedisService, scripts};

const USAGE: &str = "\
usage: redis-atomics scripts list
       redis-atomics scripts show NAME
       redis-atomics [--url URL | --cluster URL,URL,...] scripts load

  list   print the name and SHA1 of every embedded Lua script
  show   print one script's source (as embedded; runs with redis-cli --eval)
  load   SCRIPT LOAD every script on every primary, so EVALSHA works

Connection for `load`: --url, --cluster, else REDIS_CLUSTER_NODES, REDIS_URL,
else redis://127.0.0.1:6379.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("redis-atomics: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut builder = RedisConfig::builder().from_env();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--url" => builder = builder.url(it.next().ok_or("--url needs a value")?),
            "--cluster" => {
                let nodes = it.next().ok_or("--cluster needs a value")?;
                builder = builder.cluster_nodes(nodes.split(',').map(str::trim));
            }
            _ => rest.push(arg.as_str()),
        }
    }
    match rest.as_slice() {
        ["scripts", "list"] => {
            for script in scripts::all() {
                println!("{}  {}", script.sha1(), script.name());
            }
            Ok(())
        }
        ["scripts", "show", name] => {
            let script = scripts::get(name).ok_or_else(|| {
                let names: Vec<_> = scripts::all().iter().map(|s| s.name()).collect();
                format!("no script named {name:?}; known: {}", names.join(", "))
            })?;
            print!("{}", script.source());
            Ok(())
        }
        ["scripts", "load"] => {
            let config = builder.build().map_err(|e| e.to_string())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            runtime.block_on(load(config))
        }
        _ => Err(format!("unknown command {:?}\n{USAGE}", rest.join(" "))),
    }
}

async fn load(config: RedisConfig) -> Result<(), String> {
    let service = RedisService::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let report = service.preload().await.map_err(|e| e.to_string())?;
    let count = scripts::all().len();
    for node in &report.loaded {
        let name = if node.port == 0 {
            "server".to_string()
        } else {
            node.to_string()
        };
        println!("loaded {count} scripts on {name}");
    }
    for (node, err) in &report.failed {
        println!("FAILED on {node}: {err}");
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} node(s) failed", report.failed.len()))
    }
}
