//! `url = "secretsmanager:<arn or name>"`: the PostgreSQL destination's
//! connection, read from an RDS-style Secrets Manager secret (JSON with
//! `host`, `port`, `username`, `password`, `dbname`) when the loader first
//! connects, so a rotated password needs no deploy. `sslmode` and
//! `sslrootcert` may follow as a query: `secretsmanager:<id>?sslmode=
//! verify-full&sslrootcert=/opt/rds-global-bundle.pem`.
//!
//! The password never leaves this module in a message.

use serde::Deserialize;

use super::pg_tls::{self, Prepared};
use crate::error::{Error, Result};

/// The URL scheme that names a secret.
pub const PREFIX: &str = "secretsmanager:";

/// A secret reference, parsed from the destination's `url`.
#[derive(Debug, Clone)]
pub struct SecretRef {
    pub id: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl SecretRef {
    /// `Some` when `url` names a secret.
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix(PREFIX)?;
        let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut r = SecretRef {
            id: id.to_owned(),
            sslmode: None,
            sslrootcert: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => r.sslmode = Some(v.to_owned()),
                Some(("sslrootcert", v)) => r.sslrootcert = Some(v.to_owned()),
                _ => {}
            }
        }
        Some(r)
    }
}

/// The fields of an RDS-managed (or RDS-style) database secret.
#[derive(Deserialize)]
struct RdsSecret {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    username: String,
    password: String,
    #[serde(default)]
    dbname: Option<String>,
}

/// Reads the secret now and prepares a connection from it. A secret that
/// cannot be read (missing, access denied, throttled) is an outage of
/// `destination`; one that is not RDS-style JSON is named as such.
pub async fn read(
    client: &aws_sdk_secretsmanager::Client,
    destination: &str,
    field: &str,
    secret: &SecretRef,
) -> Result<Prepared> {
    let out = client
        .get_secret_value()
        .secret_id(&secret.id)
        .send()
        .await
        .map_err(|e| {
            let failure = crate::aws::classify(e);
            Error::outage(
                destination,
                format!("GetSecretValue {}: {}", secret.id, failure.describe()),
                failure.code,
                Some(failure.source),
            )
        })?;
    let text = out.secret_string().ok_or_else(|| {
        Error::outage(
            destination,
            format!("secret {} has no SecretString", secret.id),
            None,
            None,
        )
    })?;
    // serde_json's error names the field and position, never the value.
    let s: RdsSecret = serde_json::from_str(text).map_err(|e| {
        Error::config(
            field,
            format!(
                "secret {}: not RDS-style JSON (host, port, username, password, dbname): {e}",
                secret.id
            ),
        )
    })?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&s.host)
        .port(s.port.unwrap_or(5432))
        .user(&s.username)
        .password(s.password)
        .dbname(s.dbname.as_deref().unwrap_or("postgres"));
    pg_tls::secure(
        field,
        config,
        secret.sslmode.as_deref(),
        secret.sslrootcert.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reference_with_and_without_tls_options() {
        assert!(SecretRef::parse("env:X").is_none());
        let r = SecretRef::parse("secretsmanager:arn:aws:secretsmanager:eu-west-2:1:secret:db-AbC")
            .unwrap();
        assert_eq!(r.id, "arn:aws:secretsmanager:eu-west-2:1:secret:db-AbC");
        assert_eq!(r.sslmode, None);
        let r = SecretRef::parse("secretsmanager:prod/db?sslmode=verify-full&sslrootcert=/ca.pem")
            .unwrap();
        assert_eq!(r.id, "prod/db");
        assert_eq!(r.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(r.sslrootcert.as_deref(), Some("/ca.pem"));
    }
}
