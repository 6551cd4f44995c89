//! TLS settings (feature `tls`): a custom CA and a client certificate for
//! mutual TLS, handed to redis-rs's rustls support.
//!
//! A `rediss://` URL turns TLS on; [`TlsOptions`] only says which
//! certificates to use. Server-name checks are always on: the host of the URL
//! must be named in the server's certificate (there is no switch to turn
//! this off). The crypto provider is rustls's `ring` (built with the C
//! compiler every Rust toolchain setup has; no OpenSSL, no cmake), so
//! nothing needs to be installed on the machine. If another dependency also
//! enables rustls's `aws-lc-rs`, rustls cannot choose on its own: install
//! one at start-up with `rustls::crypto::ring::default_provider()
//! .install_default()`.
//!
//! **Secrets stay out of output:** the `Debug` form of [`TlsOptions`] never
//! shows the client key, and PEM that does not parse is reported without its
//! contents.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::core::error::{Error, Result};

/// Certificates for `rediss://` connections, given to
/// [`RedisConfigBuilder::tls`](crate::RedisConfigBuilder::tls).
///
/// ```
/// use redis_atomics::{RedisConfig, TlsOptions};
///
/// # let (ca, cert, key) = (String::new(), String::new(), String::new());
/// let tls = TlsOptions::new()
///     .ca_pem(ca) // trust this CA instead of the system's roots
///     .client_cert_pem(cert) // mutual TLS: present this certificate
///     .client_key_pem(key); // ... signed with this key
/// let builder = RedisConfig::builder()
///     .url("rediss://redis.internal:6380")
///     .tls(tls);
/// // The key never shows in Debug output.
/// assert!(format!("{builder:?}").contains("client_key_pem: \"<redacted>\""));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    ca_pem: Option<Vec<u8>>,
    client_cert_pem: Option<Vec<u8>>,
    client_key_pem: Option<Vec<u8>>,
}

impl TlsOptions {
    /// Options with every default: the system's trust store, no client
    /// certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// The CA certificate(s), PEM, that the server's certificate must chain
    /// to, instead of the system's trust store. Defaults to none: the
    /// platform's native root certificates.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The client certificate (chain), PEM, presented for mutual TLS; needs
    /// [`client_key_pem`](Self::client_key_pem) too. Defaults to none: no
    /// client certificate.
    #[must_use]
    pub fn client_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_cert_pem = Some(pem.into());
        self
    }

    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1), of the client
    /// certificate; needs [`client_cert_pem`](Self::client_cert_pem) too.
    /// Never shown in `Debug` output or errors. Defaults to none.
    #[must_use]
    pub fn client_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_key_pem = Some(pem.into());
        self
    }

    /// Checks that every PEM parses and that a client certificate comes with
    /// its key; errors never quote the PEM.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(ca) = &self.ca_pem {
            check_certs(ca, "ca_pem")?;
        }
        match (&self.client_cert_pem, &self.client_key_pem) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::config(
                    "TLS client_cert_pem is set without client_key_pem: give both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "TLS client_key_pem is set without client_cert_pem: give both or neither",
                ));
            }
            (Some(cert), Some(key)) => {
                check_certs(cert, "client_cert_pem")?;
                // The parser's error may quote a line of its input: not shown.
                PrivateKeyDer::from_pem_slice(key).map_err(|_| {
                    Error::config(
                        "TLS client_key_pem holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The certificates in the form redis-rs takes them.
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        let client_tls = match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        redis::TlsCertificates {
            client_tls,
            root_cert: self.ca_pem.clone(),
        }
    }
}

fn check_certs(pem: &[u8], name: &str) -> Result<()> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::config(format!("TLS {name} is not valid PEM")))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "TLS {name} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(())
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<Vec<u8>>| if v.is_some() { "set" } else { "not set" };
        f.debug_struct("TlsOptions")
            .field("ca_pem", &set(&self.ca_pem))
            .field("client_cert_pem", &set(&self.client_cert_pem))
            .field(
                "client_key_pem",
                &if self.client_key_pem.is_some() {
                    "<redacted>"
                } else {
                    "not set"
                },
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "-----BEGIN PRIVATE KEY-----\nSECRETSECRET!!\n-----END PRIVATE KEY-----\n";

    #[test]
    fn debug_never_shows_the_key() {
        let o = TlsOptions::new()
            .client_cert_pem("cert")
            .client_key_pem(SECRET);
        let s = format!("{o:?}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("<redacted>"), "{s}");
    }

    #[test]
    fn bad_pem_is_a_config_error_without_the_pem() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let cases = [
            (TlsOptions::new().ca_pem("junk"), "ca_pem holds no PEM"),
            (
                TlsOptions::new().client_cert_pem(cert),
                "without client_key_pem",
            ),
            (
                TlsOptions::new().client_key_pem(SECRET),
                "without client_cert_pem",
            ),
            (
                TlsOptions::new()
                    .client_cert_pem(cert)
                    .client_key_pem(SECRET),
                "client_key_pem holds no PEM private key",
            ),
        ];
        for (o, needle) in cases {
            let err = o.validate().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            let text = format!("{err} {err:?}");
            assert!(text.contains(needle), "{text} lacks {needle}");
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}
