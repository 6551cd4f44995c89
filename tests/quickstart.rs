//! The README's demo command: the tour runs to the end against a spawned
//! server (and against Redis 8 with search, when that is available) and
//! shows every capability.

mod support;

use std::process::Command;

fn run_tour(url: &str) -> String {
    let out = Command::new(support::example_bin("quickstart"))
        .env("REDIS_URL", url)
        .env_remove("REDIS_CLUSTER_NODES")
        .output()
        .expect("run the quickstart example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the tour failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_tour_shows_every_capability() {
    let server = support::RedisServer::start();
    let out = run_tour(&server.url());
    for line in [
        "get greeting -> Some(\"hello\")",
        "mset_json wrote 3 keys with a TTL; mget_json found 2 of 3",
        "set_model with age -1 -> redis-atomics-demo:user:2: .age: invalid input: must be >= 0",
        "inside the scope the key held Some(\"worker-3\"); after it, deleted: true",
        "50 concurrent callers of a cold key -> 1 computation(s)",
        "exchange_rate_invalidate -> 1 key deleted",
        "invalidate_all(square) -> 2 keys deleted",
        "check_rate_limit #4 (3 per minute) -> allowed false, remaining 0",
        "a cost of 500 -> allowed false, never true",
        "== 7. Vector search",
    ] {
        assert!(out.contains(line), "the tour lacks {line:?}:\n{out}");
    }
    // It cleans up after itself: what is left expires.
    let mut conn = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    for key in keys {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
        assert!(pttl > 0, "{key} left without a TTL");
    }
}

#[test]
fn the_tour_runs_vector_search_on_redis_8() {
    let Some(search) = support::shared_search_blocking() else {
        return; // shared_search printed why (and fails when search is required)
    };
    let out = run_tour(&search.server().url());
    assert!(
        out.contains("query: FT.SEARCH redis-atomics-demo:movies"),
        "{out}"
    );
    assert!(out.contains("alien distance"), "{out}");
    assert!(out.contains("matches 0 documents"), "{out}");
}
