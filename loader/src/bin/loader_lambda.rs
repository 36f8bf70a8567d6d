//! The loader Lambda: one batch in, one outcome per file out.
//!
//! Thin on purpose: JSON logs, the config (see [`loader::lambda`]), the store
//! and destinations built once per cold start, then one batch per
//! invocation. `Worker::load` never fails as a whole: every file gets an
//! outcome. A panic or a timeout is reported by the runtime as a function
//! error, which the scheduler turns into retryable outcomes for the batch.

use lambda_runtime::{service_fn, LambdaEvent};
use loader::contract::{Batch, BatchOutcome};
use loader::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    loader::lambda::init_logs();
    let shared = loader::lambda::sdk_config().await;
    let config = loader::lambda::config_from_env(&shared).await?;
    let store = loader::store::open_with(&config.source.url, &shared)?;
    let worker = Worker::from_config_shared(&config, store, &shared)?;
    tracing::info!(
        source = %config.source.url,
        init_ms = started.elapsed().as_millis() as u64,
        "loader ready"
    );
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Batch>| async move {
        Ok::<BatchOutcome, lambda_runtime::Error>(worker.load(&event.payload).await)
    }))
    .await
}
