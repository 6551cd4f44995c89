//! The Lua script registry: SHA1s, EVALSHA with the NOSCRIPT fallback,
//! preload, and script calls on a cluster.

mod support;

use redis_atomics::{Idempotency, scripts};
use support::Deployment::{Cluster, Standalone};
use support::service_in;

#[tokio::test]
async fn embedded_sha1_equals_script_load() {
    let server = support::shared_server().await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert!(scripts::all().len() >= 5, "every lua/ file is embedded");
    for script in scripts::all() {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script.source())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(sha, script.sha1(), "{}", script.name());
    }
}

#[tokio::test]
async fn every_lua_file_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lua"))
        .collect();
    files.sort();
    let listed: Vec<String> = scripts::all()
        .iter()
        .map(|s| format!("{}.lua", s.name()))
        .collect();
    assert_eq!(files, listed);
}

#[tokio::test]
async fn script_flush_between_calls_is_invisible() {
    let p = support::unique_prefix("flush");
    let svc = service_in(Standalone, &p).await;
    let server = support::shared_server().await;
    let mut raw = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let n: u64 = svc
        .eval_script(
            "mset_expire",
            &["{a}1", "{a}2"],
            &["60000", "x", "y"],
            Idempotency::Idempotent,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let n: u64 = svc
        .eval_script(
            "mset_expire",
            &["{a}3"],
            &["60000", "z"],
            Idempotency::Idempotent,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let v: String = redis::cmd("GET")
        .arg(format!("{p}:{{a}}3"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(v, "z");
    // The fallback cached the script again: EVALSHA works directly now.
    let sha = scripts::get("mset_expire").unwrap().sha1();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(sha)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, vec![true]);
}

#[tokio::test]
async fn script_errors_are_not_retried_and_name_the_script() {
    let p = support::unique_prefix("scripterr");
    let svc = service_in(Standalone, &p).await;
    // A zero TTL is refused by the script itself.
    let err = svc
        .eval_script::<u64, _>("mset_expire", &["k"], &["0", "v"], Idempotency::Idempotent)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), redis_atomics::ErrorKind::Script, "{err:?}");
    assert_eq!(err.attempts(), 1);
    assert!(err.to_string().contains("mset_expire"), "{err}");
    let err = svc
        .eval_script::<u64, &str>("no_such_script", &[], &[], Idempotency::Idempotent)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_such_script"), "{err}");
}

#[tokio::test]
async fn preload_loads_every_script() {
    let p = support::unique_prefix("preload");
    let svc = service_in(Standalone, &p).await;
    let report = svc.preload().await.unwrap();
    assert_eq!(report.loaded.len(), 1);
    assert!(report.failed.is_empty());
}

#[tokio::test]
async fn cluster_scripts_on_every_node_with_flush_and_preload() {
    let cluster = support::shared_cluster().await;
    let p = support::unique_prefix("clscripts");
    let svc = service_in(Cluster, &p).await;
    let report = svc.preload().await.unwrap();
    assert_eq!(report.loaded.len(), 3, "{report:?}");

    // Keys on all three primaries; flush scripts everywhere half way.
    let keys: Vec<String> = (0..30).map(|i| format!("{{t{i}}}:v")).collect();
    let mut nodes = std::collections::BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        if i == 15 {
            for url in cluster.nodes() {
                let client = redis::Client::open(url).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let _: () = redis::cmd("SCRIPT")
                    .arg("FLUSH")
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        }
        let n: u64 = svc
            .eval_script(
                "mset_expire",
                &[key],
                &["60000", "v"],
                Idempotency::Idempotent,
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        nodes.insert(redis_atomics::keys::slot(svc.key(key).as_bytes()) / 5462);
    }
    assert_eq!(nodes.len(), 3, "keys spread over the primaries");
    for key in &keys {
        assert_eq!(svc.get::<String>(key).await.unwrap().as_deref(), Some("v"));
    }
}

/// A marked block of a script: its name and the lines between the markers.
type Block = (String, Vec<String>);

/// The `-- shared:begin NAME` … `-- shared:end NAME` blocks of one script, in order.
fn shared_blocks(file: &str, source: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in source.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        if let Some(rest) = line.strip_prefix("-- shared:begin") {
            assert!(open.is_none(), "{at}: shared:begin inside a shared block");
            let name = rest.split_whitespace().next().unwrap_or("");
            assert!(!name.is_empty(), "{at}: shared:begin needs a name");
            open = Some((name.to_string(), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("-- shared:end") {
            let (name, body) = open.take().unwrap_or_else(|| panic!("{at}: stray end"));
            assert_eq!(rest.trim(), name, "{at}: shared:end closes another block");
            blocks.push((name, body));
        } else if let Some((_, body)) = open.as_mut() {
            body.push(line.to_string());
        }
    }
    assert!(open.is_none(), "{file}: a shared block is not closed");
    blocks
}

/// The rate-limit scripts share their prologue (argument parsing, the
/// clock), the request-id replay check and the epilogue by copy, so that
/// each file stays self-contained and runs as-is with `redis-cli --eval`.
/// The copies are marked `-- shared:begin NAME` / `-- shared:end NAME`;
/// this fails when one of them drifts from the others.
#[test]
fn shared_rate_limit_blocks_do_not_drift() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rl_") && n.ends_with(".lua"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "the four rate-limit scripts: {files:?}");
    let all: Vec<(String, Vec<Block>)> = files
        .iter()
        .map(|f| {
            let source = std::fs::read_to_string(dir.join(f)).unwrap();
            (f.clone(), shared_blocks(f, &source))
        })
        .collect();
    let (first, reference) = &all[0];
    let names: Vec<&str> = reference.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["prologue", "replay", "epilogue"], "{first}");
    assert!(
        reference[0].1.len() >= 20,
        "{first}: the prologue holds the argument parsing and the clock"
    );
    for (file, blocks) in &all[1..] {
        let theirs: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            theirs, names,
            "{file}: not the same shared blocks as {first}"
        );
        for ((name, want), (_, got)) in reference.iter().zip(blocks) {
            let differs = want
                .iter()
                .zip(got)
                .position(|(a, b)| a != b)
                .or((want.len() != got.len()).then(|| want.len().min(got.len())));
            if let Some(i) = differs {
                panic!(
                    "the shared block {name:?} of {file} drifted from {first} at its line {}:\n  \
                     {first}: {:?}\n  {file}: {:?}\nedit every rl_*.lua the same way",
                    i + 1,
                    want.get(i),
                    got.get(i),
                );
            }
        }
    }
    // Each script still carries what the block needs: a NAME and a PER before it.
    for (file, _) in &all {
        let source = std::fs::read_to_string(dir.join(file)).unwrap();
        let begin = source.find("-- shared:begin prologue").unwrap();
        assert!(
            source[..begin].contains("local NAME, PER = "),
            "{file}: NAME and PER precede the shared prologue"
        );
    }
}
