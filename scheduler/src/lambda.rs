//! The scheduler as a Lambda function: what `scheduler-lambda` builds once
//! per cold start, and how long each invocation may dispatch.
//!
//! Environment: `S3LOADER_LOADER_FUNCTION`, the loader function's name or
//! ARN; `S3LOADER_LOADER_TIMEOUT_SECS`, the loader function's timeout
//! (default 900, Lambda's maximum): an invocation gets that plus 5 s to
//! answer, and the tick keeps at least that much in reserve; and the config
//! variables of [`loader::lambda`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fanout::LambdaFanout;

use crate::error::{Error, Result};
use crate::report::TickReport;
use crate::tick::Scheduler;

/// The loader's timeout plus slack for the Invoke round trip.
const INVOKE_SLACK: Duration = Duration::from_secs(5);

/// Lambda's longest timeout, assumed when the loader's is not given.
const DEFAULT_LOADER_TIMEOUT: Duration = Duration::from_secs(900);

/// Before this (2000-01-01 in epoch milliseconds), a "deadline" is not a
/// point in time but a duration: `cargo lambda watch` 1.9 sends the
/// function's timeout there, where Lambda sends the epoch time.
const EPOCH_2000_MS: u64 = 946_684_800_000;

/// A scheduler that dispatches to the loader function, and keeps enough of
/// each invocation in reserve for the last batch it sends to answer.
pub struct LambdaScheduler {
    scheduler: Scheduler,
    reserve: Duration,
}

impl LambdaScheduler {
    /// Builds everything from the environment (see the module docs) and
    /// the shared AWS config: the config, the store, the Lambda fan-out and
    /// the metrics sink. Errors name the variable.
    pub async fn from_env(shared: &aws_config::SdkConfig) -> Result<Self> {
        Self::from_vars(|v| std::env::var(v).ok(), shared).await
    }

    /// [`LambdaScheduler::from_env`] with the variables looked up by `var`.
    pub async fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        shared: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let config = loader::lambda::config_from(&var, shared)
            .await
            .map_err(Error::loader("read the config"))?;
        let function = var("S3LOADER_LOADER_FUNCTION").ok_or_else(|| {
            env_error(
                "S3LOADER_LOADER_FUNCTION",
                "the loader function's name or ARN is not set",
            )
        })?;
        let loader_timeout = loader_timeout(var("S3LOADER_LOADER_TIMEOUT_SECS").as_deref())?;
        let invoke_timeout = loader_timeout + INVOKE_SLACK;
        let reserve = invoke_timeout.max(Duration::from_secs(config.tick.lambda_reserve_secs));
        let store = loader::store::open_with(&config.source.url, shared)
            .map_err(Error::loader("open the source"))?;
        let fanout = LambdaFanout::from_shared(shared, function).with_timeout(invoke_timeout);
        let sink = crate::metrics::sink_for(&config, shared);
        Ok(Self {
            scheduler: Scheduler::new(config, store, Arc::new(fanout), sink)?,
            reserve,
        })
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// How much of each invocation is kept for batches in flight.
    pub fn reserve(&self) -> Duration {
        self.reserve
    }

    /// One tick for an invocation whose runtime deadline is `deadline_ms`
    /// (as `lambda_runtime::Context::deadline` gives it). No new batch is
    /// dispatched after `tick.deadline_secs` or within the reserve of the
    /// function's timeout, whichever is first.
    pub async fn invoke(&self, deadline_ms: u64, request_id: &str) -> Result<TickReport> {
        let now = Instant::now();
        let left = remaining(deadline_ms, epoch_ms());
        let configured = Duration::from_secs(self.scheduler.config().tick.deadline_secs);
        let deadline = dispatch_deadline(now, configured, left, self.reserve);
        tracing::info!(
            request_id,
            remaining_ms = left.as_millis() as u64,
            dispatch_for_ms = (deadline - now).as_millis() as u64,
            "tick starts"
        );
        self.scheduler.tick_until(deadline).await
    }
}

/// The events function: the fast path ([`crate::fastpath`]) with the
/// loading done in the function itself, so a notified file is in the
/// table one invocation after it landed.
pub struct EventsFunction {
    scheduler: Scheduler,
}

impl EventsFunction {
    /// Builds the config (see [`loader::lambda`]), the store, the
    /// destinations and the metrics sink once per cold start.
    pub async fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        shared: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let config = loader::lambda::config_from(&var, shared)
            .await
            .map_err(Error::loader("read the config"))?;
        let store = loader::store::open_with(&config.source.url, shared)
            .map_err(Error::loader("open the source"))?;
        let worker = loader::worker::Worker::from_config_shared(&config, store.clone(), shared)
            .map_err(Error::loader("build destinations"))?;
        let sink = crate::metrics::sink_for(&config, shared);
        let fanout = Arc::new(fanout::LocalFanout::new(worker));
        Ok(Self {
            scheduler: Scheduler::new(config, store, fanout, sink)?,
        })
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Answers one SQS event with the partial batch response
    /// (`ReportBatchItemFailures`). No new batch starts within
    /// `tick.lambda_reserve_secs` of the invocation's deadline, so the
    /// last ones loaded still move. An error returns every message.
    pub async fn invoke(
        &self,
        event: &crate::events::SqsEvent,
        deadline_ms: u64,
        request_id: &str,
    ) -> Result<serde_json::Value> {
        let now = Instant::now();
        let left = remaining(deadline_ms, epoch_ms());
        let tick = &self.scheduler.config().tick;
        let deadline = dispatch_deadline(
            now,
            Duration::from_secs(tick.deadline_secs),
            left,
            Duration::from_secs(tick.lambda_reserve_secs).min(left / 2),
        );
        let handled = crate::listen::handle(&self.scheduler, &event.records, deadline).await?;
        tracing::info!(
            request_id,
            messages = event.records.len(),
            returned = handled.failed.len(),
            ignored = handled.ignored,
            "events handled"
        );
        Ok(crate::events::batch_response(
            handled.failed.iter().map(String::as_str),
        ))
    }
}

fn env_error(var: &str, message: &str) -> Error {
    Error::loader(var.to_owned())(loader::Error::Config {
        field: var.to_owned(),
        message: message.to_owned(),
    })
}

fn loader_timeout(value: Option<&str>) -> Result<Duration> {
    match value {
        None => Ok(DEFAULT_LOADER_TIMEOUT),
        Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
            env_error(
                "S3LOADER_LOADER_TIMEOUT_SECS",
                &format!("{v:?} is not a number of seconds"),
            )
        }),
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

    #[test]
    fn the_loader_timeout_defaults_to_lambdas_maximum_and_must_be_seconds() {
        assert_eq!(loader_timeout(None).unwrap(), Duration::from_secs(900));
        assert_eq!(loader_timeout(Some("60")).unwrap(), Duration::from_secs(60));
        let err = loader::error::chain(&loader_timeout(Some("1m")).unwrap_err());
        assert!(
            err.contains("S3LOADER_LOADER_TIMEOUT_SECS") && err.contains("\"1m\""),
            "{err}"
        );
    }
}
