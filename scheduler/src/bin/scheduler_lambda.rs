//! The scheduler Lambda: one tick per scheduled event.
//!
//! Thin on purpose: JSON logs, the config (see [`loader::lambda`]), the
//! store, the Lambda fan-out and the metrics sink built once per cold start.
//! Each event (EventBridge Scheduler's payload is ignored) runs one tick
//! that dispatches no new batch after `tick.deadline_secs` or within
//! `tick.lambda_reserve_secs` of the function's timeout, whichever is
//! first. Files not dispatched are counted as deferred in the report, which
//! is the function's result and is also logged as one JSON line.
//!
//! Environment: `S3LOADER_LOADER_FUNCTION`, the loader function's name or
//! ARN; `S3LOADER_LOADER_TIMEOUT_SECS`, the loader function's timeout
//! (default 900, Lambda's maximum): an invocation gets that plus 5 s to
//! answer, and the tick keeps at least that much in reserve; the config
//! variables of [`loader::lambda`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fanout::LambdaFanout;
use lambda_runtime::{service_fn, LambdaEvent};
use scheduler::tick::Scheduler;

/// Before this (2000-01-01 in epoch milliseconds), a "deadline" is not a
/// point in time but a duration: `cargo lambda watch` 1.9 sends the
/// function's timeout there, where Lambda sends the epoch time.
const EPOCH_2000_MS: u64 = 946_684_800_000;

/// How long the invocation has left, from the runtime's deadline.
fn remaining(deadline_ms: u64, now_ms: u64) -> Duration {
    if deadline_ms < EPOCH_2000_MS {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    }
}

/// When to stop dispatching: the configured deadline, or `reserve` before
/// the invocation runs out of time.
fn dispatch_deadline(
    now: Instant,
    configured: Duration,
    left: Duration,
    reserve: Duration,
) -> Instant {
    now + configured.min(left.saturating_sub(reserve))
}

/// The loader's timeout plus slack for the Invoke round trip.
const INVOKE_SLACK: Duration = Duration::from_secs(5);

async fn build() -> anyhow::Result<(Scheduler, Duration)> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = loader::lambda::config_from_env(&shared).await?;
    let function = std::env::var("S3LOADER_LOADER_FUNCTION")
        .context("S3LOADER_LOADER_FUNCTION: the loader function's name or ARN is not set")?;
    let loader_timeout = match std::env::var("S3LOADER_LOADER_TIMEOUT_SECS") {
        Ok(v) => v.parse::<u64>().map(Duration::from_secs).with_context(|| {
            format!("S3LOADER_LOADER_TIMEOUT_SECS: {v:?} is not a number of seconds")
        })?,
        Err(_) => Duration::from_secs(900),
    };
    let invoke_timeout = loader_timeout + INVOKE_SLACK;
    let reserve = invoke_timeout.max(Duration::from_secs(config.tick.lambda_reserve_secs));
    let store = loader::store::open_with(&config.source.url, &shared)?;
    let fanout = LambdaFanout::from_shared(&shared, function).with_timeout(invoke_timeout);
    let sink = scheduler::metrics::sink_for(&config, &shared);
    Ok((
        Scheduler::new(config, store, Arc::new(fanout), sink)?,
        reserve,
    ))
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    loader::lambda::init_logs();
    let (sched, reserve) = build().await.inspect_err(|e| {
        tracing::error!(error = format!("{e:#}"), "scheduler cold start failed");
    })?;
    tracing::info!(
        source = %sched.config().source.url,
        reserve_s = reserve.as_secs(),
        init_ms = started.elapsed().as_millis() as u64,
        "scheduler ready"
    );
    let sched = &sched;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let tick = &sched.config().tick;
            let now = Instant::now();
            let left = remaining(event.context.deadline, epoch_ms());
            let deadline =
                dispatch_deadline(now, Duration::from_secs(tick.deadline_secs), left, reserve);
            tracing::info!(
                request_id = %event.context.request_id,
                remaining_ms = left.as_millis() as u64,
                dispatch_for_ms = (deadline - now).as_millis() as u64,
                "tick starts"
            );
            // The tick logs its report; an error here is a failed tick
            // (the lease or the listing), which the runtime reports as a
            // function error and the SchedulerErrors alarm watches.
            sched
                .tick_until(deadline)
                .await
                .inspect_err(|e| tracing::error!(error = %loader::error::chain(e), "tick failed"))
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_of_the_two_deadlines_wins() {
        let now = Instant::now();
        let fifty = Duration::from_secs(50);
        let twenty = Duration::from_secs(20);
        let at =
            |left_s: u64| dispatch_deadline(now, fifty, Duration::from_secs(left_s), twenty) - now;
        assert_eq!(at(300), fifty, "5 minutes left: the configured 50 s");
        assert_eq!(
            at(60),
            Duration::from_secs(40),
            "60 s left: stop 20 s early"
        );
        assert_eq!(
            at(10),
            Duration::ZERO,
            "less left than the reserve: nothing new"
        );
    }

    #[test]
    fn the_deadline_is_epoch_time_in_lambda_and_a_duration_in_cargo_lambda() {
        let now = 1_795_324_873_432;
        assert_eq!(remaining(now + 90_000, now), Duration::from_secs(90));
        assert_eq!(remaining(now - 5, now), Duration::ZERO);
        assert_eq!(remaining(600_000, now), Duration::from_secs(600));
    }
}
