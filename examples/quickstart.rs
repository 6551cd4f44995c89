//! The tour: `cargo run --example quickstart`.
//!
//! Connects to `REDIS_URL` (or `REDIS_CLUSTER_NODES`), else 127.0.0.1:6379,
//! and walks through the crate's capabilities under the namespace
//! `redis-atomics-demo`, deleting what it wrote at the end.

use std::time::Duration;

use redis_atomics::{RedisConfig, RedisService, SetOptions, Ttl, scripts};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = RedisConfig::builder()
        .from_env()
        .namespace("redis-atomics-demo")
        .connect_timeout(Duration::from_secs(1))
        .build()?;
    let service = match RedisService::connect(config).await {
        Ok(service) => service,
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!(
                "Start a Redis with `redis-server --daemonize yes --save \"\"` or set REDIS_URL=redis://host:port"
            );
            std::process::exit(1);
        }
    };
    println!(
        "connected ({})",
        if service.is_cluster() {
            "cluster"
        } else {
            "standalone"
        }
    );

    // 1. Namespaced key operations.
    service
        .set(
            "greeting",
            "hello",
            SetOptions::new().ex(Duration::from_secs(60)),
        )
        .await?;
    let greeting: Option<String> = service.get("greeting").await?;
    println!(
        "get greeting -> {greeting:?} (stored as {:?})",
        service.key("greeting")
    );
    if let Ttl::Expires(ttl) = service.ttl("greeting").await? {
        println!("ttl greeting -> {:.1}s", ttl.as_secs_f64());
    }
    let written = service
        .set("greeting", "again", SetOptions::new().nx())
        .await?;
    println!("set greeting nx -> {written} (already there)");

    // 2. The Lua scripts behind the atomic operations, loaded on every primary.
    let report = service.preload().await?;
    println!(
        "{} Lua scripts loaded on {} node(s):",
        scripts::all().len(),
        report.loaded.len()
    );
    for script in scripts::all() {
        println!("  {:<20} {}", script.name(), script.sha1());
    }

    service.delete(&["greeting"]).await?;
    println!("done");
    Ok(())
}
