//! TLS (feature `tls`) against a real TLS-only `redis-server`, with a
//! throw-away CA made in the test (rcgen): `rediss://` with a custom CA, a
//! wrong CA refused, mutual TLS with and without a client certificate, and
//! secrets kept out of `Debug` output and errors. Skips, saying why, when
//! `REDIS_SERVER_BIN` is built without TLS.
#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use redis_atomics::{ErrorKind, RedisConfig, RedisService, SetOptions, TlsOptions};
use support::tls::{TestPki, TlsCluster, TlsServer};

fn config(url: &str, tls: TlsOptions) -> RedisConfig {
    RedisConfig::builder()
        .url(url)
        .tls(tls)
        .connect_timeout(Duration::from_secs(2))
        .retry_count(0)
        .build()
        .expect("a valid TLS config")
}

/// Connects and runs a command; the error of whichever step fails.
async fn connect_and_ping(config: RedisConfig) -> redis_atomics::Result<()> {
    let service = RedisService::connect(config).await?;
    service.get::<String>("tls:probe").await.map(drop)
}

#[tokio::test]
async fn rediss_with_a_custom_ca_runs_commands_and_scripts() {
    let pki = TestPki::new();
    let Some(server) = TlsServer::start(&pki, false) else {
        return;
    };
    let service = RedisService::connect(config(
        &server.url(),
        TlsOptions::new().ca_pem(pki.ca_pem.as_str()),
    ))
    .await
    .expect("TLS connect with the custom CA");
    assert!(
        service
            .set("tls:k", "v", SetOptions::default())
            .await
            .unwrap()
    );
    assert_eq!(
        service.get::<String>("tls:k").await.unwrap().as_deref(),
        Some("v")
    );
    // A script call (EVALSHA, EVAL on NOSCRIPT) over TLS.
    let (allowed, remaining) = service
        .check_rate_limit("tls:rl", 2, 60, true)
        .await
        .unwrap();
    assert!(allowed);
    assert_eq!(remaining, 1);
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let Some(server) = TlsServer::start(&pki, false) else {
        return;
    };
    let err = connect_and_ping(config(
        &server.url(),
        TlsOptions::new().ca_pem(other.ca_pem.as_str()),
    ))
    .await
    .expect_err("a certificate from an untrusted CA must be refused");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("cannot connect to rediss://127.0.0.1"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn the_server_name_is_checked() {
    // The certificate names 127.0.0.1 only: `localhost` reaches the same
    // server but is not a name the certificate holds.
    let pki = TestPki::new();
    let Some(server) = TlsServer::start(&pki, false) else {
        return;
    };
    let url = format!("rediss://localhost:{}/", server.port());
    let err = connect_and_ping(config(&url, TlsOptions::new().ca_pem(pki.ca_pem.as_str())))
        .await
        .expect_err("a name outside the certificate must be refused");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_tls_works_with_the_client_certificate_and_is_refused_without() {
    let pki = TestPki::new();
    let Some(server) = TlsServer::start(&pki, true) else {
        return;
    };
    let with_cert = TlsOptions::new()
        .ca_pem(pki.ca_pem.as_str())
        .client_cert_pem(pki.client_cert_pem.as_str())
        .client_key_pem(pki.client_key_pem.as_str());
    let service = RedisService::connect(config(&server.url(), with_cert.clone()))
        .await
        .expect("mTLS connect with the client certificate");
    service
        .set("tls:m", 1, SetOptions::default())
        .await
        .unwrap();
    assert_eq!(service.get::<i64>("tls:m").await.unwrap(), Some(1));

    let err = connect_and_ping(config(
        &server.url(),
        TlsOptions::new().ca_pem(pki.ca_pem.as_str()),
    ))
    .await
    .expect_err("without a client certificate the server refuses");
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Unavailable),
        "{err:?}"
    );

    // The client key never shows in Debug output, nor do URL passwords.
    let config = RedisConfig::builder()
        .url(format!(
            "rediss://alice:hunter2@127.0.0.1:{}/",
            server.port()
        ))
        .tls(with_cert)
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    let key_body = pki.client_key_pem.lines().nth(1).unwrap();
    assert!(!debug.contains(key_body), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("alice:<redacted>@"), "{debug}");
    // Nor in the error of a failed connect (the server has no user alice).
    let err = connect_and_ping(config).await.expect_err("AUTH must fail");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains(key_body), "{text}");
}

#[tokio::test]
async fn a_tls_cluster_runs_commands_and_scripts_on_every_primary() {
    let pki = TestPki::new();
    let Some(cluster) = TlsCluster::start(&pki) else {
        return;
    };
    let config = RedisConfig::builder()
        .cluster_nodes(cluster.urls().into_iter().take(1))
        .tls(TlsOptions::new().ca_pem(pki.ca_pem.as_str()))
        .build()
        .unwrap();
    let service = RedisService::connect(config)
        .await
        .expect("TLS cluster connect with the custom CA");
    // Keys spread over the slots of all three primaries.
    for i in 0..30 {
        let key = format!("tls:c:{i}");
        assert!(service.set(&key, i, SetOptions::default()).await.unwrap());
        assert_eq!(service.get::<i64>(&key).await.unwrap(), Some(i));
        let (allowed, _) = service
            .check_rate_limit(&format!("tls:crl:{i}"), 5, 60, i % 2 == 0)
            .await
            .unwrap();
        assert!(allowed);
    }
}
