//! The scheduler Lambda: one tick per scheduled event (EventBridge
//! Scheduler's payload is ignored).
//!
//! Thin on purpose: JSON logs, then [`scheduler::lambda::LambdaScheduler`]
//! built once per cold start from the environment (documented there). The
//! tick's report is the function's result and is also logged as one JSON
//! line; a tick that cannot run (the lease, the listing) is a function
//! error, which the SchedulerErrors alarm watches.

use lambda_runtime::{service_fn, LambdaEvent};
use scheduler::lambda::LambdaScheduler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    loader::lambda::init_logs();
    let shared = loader::lambda::sdk_config().await;
    let sched = LambdaScheduler::from_env(&shared).await.inspect_err(|e| {
        tracing::error!(error = %loader::error::chain(e), "scheduler cold start failed");
    })?;
    tracing::info!(
        source = %sched.scheduler().config().source.url,
        reserve_s = sched.reserve().as_secs(),
        init_ms = started.elapsed().as_millis() as u64,
        "scheduler ready"
    );
    let sched = &sched;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let ctx = &event.context;
            sched
                .invoke(ctx.deadline, &ctx.request_id)
                .await
                .inspect_err(|e| tracing::error!(error = %loader::error::chain(e), "tick failed"))
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
