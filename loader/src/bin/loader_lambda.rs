//! The loader Lambda: one batch in, one outcome per file out.
//!
//! Thin on purpose: set up JSON logs, read the config and build the store
//! and destinations once per cold start, then serve invocations.
//!
//! Config: the TOML text in `S3LOADER_CONFIG`, or a file named by
//! `S3LOADER_CONFIG_FILE`.

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use loader::config::Config;
use loader::contract::{Batch, BatchOutcome};
use loader::worker::Worker;

fn config() -> anyhow::Result<Config> {
    if let Ok(text) = std::env::var("S3LOADER_CONFIG") {
        return Config::from_toml(&text).context("S3LOADER_CONFIG");
    }
    let path = std::env::var("S3LOADER_CONFIG_FILE")
        .context("set S3LOADER_CONFIG (TOML text) or S3LOADER_CONFIG_FILE")?;
    Ok(Config::from_path(path.as_ref())?)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    let config = config()?;
    let store = loader::store::open(&config.source.url).await?;
    let worker = Worker::from_config(&config, store)?;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Batch>| async move {
        Ok::<BatchOutcome, lambda_runtime::Error>(worker.load(&event.payload).await)
    }))
    .await
}
