//! What both Lambda binaries do once per cold start: JSON logs and the
//! config.
//!
//! The config is the same TOML the CLI reads, from the first of:
//!
//! * `S3LOADER_CONFIG_S3`: `s3://bucket/key` of a TOML object (configs that
//!   outgrow the 4 KB environment limit, or that operators edit without a
//!   deploy; read once per cold start). First, so that pointing a deployed
//!   function at an object overrides the inline text the template sets;
//! * `S3LOADER_CONFIG_TOML`: the TOML text itself;
//! * `S3LOADER_CONFIG`: a path, as for the CLI (a file packaged with the
//!   function).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{ObjectStore, S3Store};

/// A config is a few KB; a larger object is not one.
const CONFIG_MAX_BYTES: u64 = 1024 * 1024;

/// One JSON object per log line on stdout, no timestamp (CloudWatch adds
/// one), level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL` (the
/// function's `ApplicationLogLevel`), else `info`. Structures (the tick
/// report, embedded metrics) are written with their fields at the top
/// level (see [`crate::logs`]).
pub fn init_logs() {
    crate::logs::init(crate::logs::Mode::JsonStdout, "info");
}

/// The SDK config both functions build their clients from: the default
/// chain (region, credentials, `AWS_ENDPOINT_URL*`), with an HTTPS client
/// that trusts the system's CA bundle file ([`crate::ca_bundle`] says why;
/// where it has none, the SDK's default client, unchanged).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    match crate::ca_bundle::pem() {
        Some(pem) => loader.http_client(https_client(pem.to_vec())).load().await,
        None => loader.load().await,
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc, proxy settings from
/// the environment) with `pem` as its only roots.
fn https_client(pem: Vec<u8>) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
        .build()
        .expect("a trust store and no other setting");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut conn = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// The config, from the environment as described in the module docs.
/// Errors name the variable (and the object or file) they came from.
pub async fn config_from_env(shared: &aws_config::SdkConfig) -> Result<Config> {
    config_from(|var| std::env::var(var).ok(), shared).await
}

/// [`config_from_env`] with the variables looked up by `var`.
pub async fn config_from(
    var: impl Fn(&str) -> Option<String>,
    shared: &aws_config::SdkConfig,
) -> Result<Config> {
    let named = |var: &str, e: Error| match e {
        Error::Config { field, message } => Error::Config {
            field: format!("{var}: {field}"),
            message,
        },
        other => other,
    };
    if let Some(url) = var("S3LOADER_CONFIG_S3") {
        let text = read_s3(&url, shared).await?;
        return Config::from_toml(&text)
            .map_err(|e| named(&format!("S3LOADER_CONFIG_S3={url}"), e));
    }
    if let Some(text) = var("S3LOADER_CONFIG_TOML") {
        return Config::from_toml(&text).map_err(|e| named("S3LOADER_CONFIG_TOML", e));
    }
    if let Some(path) = var("S3LOADER_CONFIG") {
        return Config::from_path(path.as_ref());
    }
    Err(Error::config(
        "S3LOADER_CONFIG_TOML",
        "no config: set S3LOADER_CONFIG_S3 (s3://bucket/key), S3LOADER_CONFIG_TOML (the TOML text) or S3LOADER_CONFIG (a path)",
    ))
}

/// The UTF-8 text of `s3://bucket/key`.
async fn read_s3(url: &str, shared: &aws_config::SdkConfig) -> Result<String> {
    let bad = |message: &str| Error::config(format!("S3LOADER_CONFIG_S3={url}"), message);
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| bad("expected s3://BUCKET/KEY"))?;
    let store = S3Store::from_shared(shared, bucket);
    let (_, bytes) = store.get_bytes(key, CONFIG_MAX_BYTES).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|e| bad(&format!("the object is not UTF-8 text: {e}")))
}
