//! The events Lambda: the fast path. An SQS event source mapping (with
//! `ReportBatchItemFailures`) feeds it S3 event notifications, direct or
//! wrapped by SNS; it loads the notified files at once, through the same
//! routes, ledger and moves as the scheduler's ticks, which stay the
//! backstop for anything it misses or returns.
//!
//! Thin on purpose: JSON logs, then [`scheduler::lambda::EventsFunction`]
//! built once per cold start from the environment (the config variables
//! of `loader::lambda`). The result is the partial batch response.

use lambda_runtime::{service_fn, LambdaEvent};
use scheduler::events::SqsEvent;
use scheduler::lambda::EventsFunction;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    loader::lambda::init_logs();
    let shared = loader::lambda::sdk_config().await;
    let function = EventsFunction::from_vars(|v| std::env::var(v).ok(), &shared)
        .await
        .inspect_err(|e| {
            tracing::error!(error = %loader::error::chain(e), "events function cold start failed");
        })?;
    tracing::info!(
        source = %function.scheduler().config().source.url,
        init_ms = started.elapsed().as_millis() as u64,
        "events function ready"
    );
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let ctx = &event.context;
        function
            .invoke(&event.payload, ctx.deadline, &ctx.request_id)
            .await
            .inspect_err(|e| tracing::error!(error = %loader::error::chain(e), "events failed"))
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
