//! TLS for the PostgreSQL destination, as libpq's `sslmode` and
//! `sslrootcert` mean it, so a URL written for `psql` against RDS works as
//! it is.
//!
//! * `disable`: plaintext only.
//! * `prefer`: TLS if the server offers it, without verifying it;
//!   plaintext otherwise.
//! * `require`: TLS, without verifying the server (libpq's meaning when no
//!   root certificate is given).
//! * `verify-full`: TLS, the server's certificate chained to `sslrootcert`
//!   (a PEM bundle, e.g. RDS's global bundle) or else to the system's
//!   roots, and issued for the host connected to.
//!
//! Without `sslmode`, a loopback or Unix-socket host gets `prefer` (a local
//! server rarely has a certificate anyone issued) and every other host
//! `verify-full`: credentials never cross a network unverified by default.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// libpq's `sslmode` values that s3loader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl Mode {
    fn parse(field: &str, value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::config(
                    field,
                    format!(
                        "sslmode={other:?} is not supported; use disable, prefer, require or verify-full"
                    ),
                ))
            }
        })
    }
}

/// A connection string made ready for tokio-postgres: its `sslmode` and
/// `sslrootcert` taken out and turned into a TLS connector.
pub struct Prepared {
    pub config: tokio_postgres::Config,
    pub mode: Mode,
    pub tls: MakeRustlsConnect,
}

/// Parses `url` (key=value or `postgres://` form); `field` names it in
/// errors.
pub fn prepare(field: &str, url: &str) -> Result<Prepared> {
    let (rest, sslmode) = take_param(url, "sslmode");
    let (rest, rootcert) = take_param(&rest, "sslrootcert");
    let config = rest
        .parse::<tokio_postgres::Config>()
        .map_err(|e| Error::config(field, format!("not a PostgreSQL connection string: {e}")))?;
    secure(field, config, sslmode.as_deref(), rootcert.as_deref())
}

/// The TLS connector for `config`, as `sslmode` and `sslrootcert` ask
/// (defaults in the module docs).
pub fn secure(
    field: &str,
    mut config: tokio_postgres::Config,
    sslmode: Option<&str>,
    rootcert: Option<&str>,
) -> Result<Prepared> {
    let mode = match sslmode {
        Some(v) => Mode::parse(field, v)?,
        None if is_local(&config) => Mode::Prefer,
        None => Mode::VerifyFull,
    };
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyFull => SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(field, format!("TLS setup: {e}")))?;
    let client = if mode == Mode::VerifyFull {
        builder
            .with_root_certificates(roots(field, rootcert)?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth()
    };
    Ok(Prepared {
        config,
        mode,
        tls: MakeRustlsConnect::new(client),
    })
}

/// Whether every host is on this machine.
fn is_local(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    })
}

/// The roots `verify-full` trusts: the PEM file given, or the system's.
fn roots(field: &str, rootcert: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::config(field, format!("sslrootcert={path}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::config(
                    field,
                    format!("sslrootcert={path}: no CA certificate in the file"),
                ));
            }
        }
        // The bundle file alone where there is one (crate::ca_bundle).
        None => {
            match crate::ca_bundle::pem() {
                Some(pem) => store.add_parsable_certificates(
                    CertificateDer::pem_slice_iter(pem).filter_map(|c| c.ok()),
                ),
                None => {
                    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs)
                }
            };
            if store.is_empty() {
                return Err(Error::config(
                    field,
                    "sslmode=verify-full: no sslrootcert given and no system CA certificates found",
                ));
            }
        }
    }
    Ok(store)
}

/// `key=value` out of a key=value string or a URL's query, as libpq
/// writes both; the rest of the string, and the value if it was there.
fn take_param(url: &str, key: &str) -> (String, Option<String>) {
    let prefix = format!("{key}=");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| match p.strip_prefix(&prefix) {
                Some(v) => {
                    value = Some(v.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, value);
    }
    let mut value = None;
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|p| match p.strip_prefix(&prefix) {
            Some(v) => {
                value = Some(v.trim_matches('\'').to_owned());
                false
            }
            None => true,
        })
        .collect();
    (kept.join(" "), value)
}

/// The handshake-signature checks of a verifier: the provider's own, for
/// TLS 1.2 and 1.3 alike.
macro_rules! signatures {
    ($($method:ident => $check:path),* $(,)?) => {$(
        fn $method(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            $check(message, cert, dss, &self.0.signature_verification_algorithms)
        }
    )*};
}

/// Accepts any certificate (for `prefer` and `require`, which do not
/// verify), while still checking the handshake's signatures.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signatures! {
        verify_tls12_signature => rustls::crypto::verify_tls12_signature,
        verify_tls13_signature => rustls::crypto::verify_tls13_signature,
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_come_out_of_both_forms() {
        let (rest, mode) = take_param(
            "host=db.example.com user=u sslmode=verify-full sslrootcert=/ca.pem",
            "sslmode",
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(rest, "host=db.example.com user=u sslrootcert=/ca.pem");
        let (rest, mode) = take_param(
            "postgres://u@db.example.com/d?sslmode=require&application_name=x",
            "sslmode",
        );
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(rest, "postgres://u@db.example.com/d?application_name=x");
        let (rest, none) = take_param("postgres://u@h/d", "sslmode");
        assert_eq!((rest.as_str(), none), ("postgres://u@h/d", None));
    }

    #[test]
    fn verify_full_by_default_except_on_this_machine() {
        let mode = |url: &str| prepare("f", url).map(|p| p.mode);
        assert_eq!(
            mode("host=db.example.com user=u").unwrap(),
            Mode::VerifyFull
        );
        assert_eq!(mode("host=127.0.0.1 user=u").unwrap(), Mode::Prefer);
        assert_eq!(mode("host=localhost user=u").unwrap(), Mode::Prefer);
        assert_eq!(
            mode("host=db.example.com user=u sslmode=disable").unwrap(),
            Mode::Disable
        );
        let err = mode("host=h sslmode=verify-ca").unwrap_err().to_string();
        assert!(
            err.contains("verify-ca") && err.contains("verify-full"),
            "{err}"
        );
        let err = mode("host=h sslmode=verify-full sslrootcert=/nonexistent.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent.pem"), "{err}");
    }
}
