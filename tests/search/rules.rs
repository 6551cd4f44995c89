//! Search on a cluster is a config error; the skip rule itself.

use super::*;

#[tokio::test]
async fn search_on_a_cluster_is_a_config_error() {
    let svc = support::service(support::Deployment::Cluster).await;
    let index = svc.search_index("idx");
    let schema = IndexSchema::new().vector("v", VectorField::flat(2));
    let errors = [
        index.create(&schema).await.unwrap_err(),
        index.drop(true).await.unwrap_err(),
        index.info().await.unwrap_err(),
        index
            .upsert("1", &Document::new().vector("v", &[1.0, 2.0]))
            .await
            .unwrap_err(),
        svc.vector_query("idx")
            .knn("v", &[1.0, 2.0], 3)
            .execute()
            .await
            .unwrap_err(),
        svc.vector_query("idx").render().await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("standalone-only"), "{err}");
    }
}

/// Runs one live test of this binary in a child process with the search
/// module path broken (and, in a second run, the server binary too, as on a
/// fresh clone without `target/servers/`): it must fail under
/// REDIS_ATOMICS_REQUIRE_SEARCH=1 naming every missing piece, and pass with a
/// `SKIPPED <test>: …` line naming them otherwise.
#[test]
fn missing_search_server_fails_when_required_and_skips_otherwise() {
    let exe = std::env::current_exe().unwrap();
    let test = "knn::range_query_returns_everything_within_the_radius";
    let module = "/nonexistent/redisearch.so";
    let bin = "/nonexistent/redis-server";
    let run = |require: &str, bin: Option<&str>| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("REDIS_SEARCH_MODULE", module)
            .env("REDIS_ATOMICS_REQUIRE_SEARCH", require);
        if let Some(bin) = bin {
            cmd.env("REDIS_SEARCH_SERVER_BIN", bin);
        }
        cmd.output().unwrap()
    };
    for broken_bin in [None, Some(bin)] {
        let missing: Vec<&str> = broken_bin.into_iter().chain([module]).collect();
        let required = run("1", broken_bin);
        let err = String::from_utf8_lossy(&required.stderr);
        assert!(!required.status.success(), "must fail when required: {err}");
        assert!(err.contains("REDIS_ATOMICS_REQUIRE_SEARCH=1"), "{err}");
        for path in &missing {
            assert!(err.contains(path), "{path} not named: {err}");
        }

        let optional = run("0", broken_bin);
        let err = String::from_utf8_lossy(&optional.stderr);
        assert!(
            optional.status.success(),
            "must pass (skip) when optional: {err}"
        );
        assert!(
            err.contains(&format!("SKIPPED {test}: search server not available")),
            "{err}"
        );
        for path in &missing {
            assert!(err.contains(path), "{path} not named: {err}");
        }
    }
}
