//! # Layout
//!
//! The top of s3loader: the tick that drives the queue, and the operator
//! commands around it. Binaries stay thin and call into here.
//!
//! * [`tick`]: [`Scheduler`](tick::Scheduler), one tick end to end.
//! * [`events`]: S3 event notifications as SQS delivers them (direct or
//!   wrapped by SNS), and the partial batch response.
//! * [`fastpath`]: loading the notified objects at once, beside the tick.
//! * [`listen`]: answering a batch of messages (the events Lambda and
//!   `s3loader listen` alike), and polling a queue without Lambda.
//! * [`lease`]: the conditional-put lease that keeps ticks from overlapping.
//! * [`scan`]: listing `incoming/`, backlog counts, the X oldest files.
//! * [`plan`]: routing and batching.
//! * [`attempts`]: retry counts per file version.
//! * [`metrics`]: the per-tick metrics and their sinks.
//! * [`report`]: the `TickReport`.
//! * [`ops`]: `status` and `reprocess`.
//! * [`progress`]: how long operator work reports progress (a bar in the
//!   CLI on a terminal).
//! * `forecasts`: `forecasts`, parsing what users type for the Met Office
//!   index query (with the `netcdf` feature).
//! * [`demo`]: the embedded default, its shipped samples, and the demo run.
//! * [`lambda`]: the scheduler as a Lambda function: what it builds from
//!   the environment, and how long each invocation may dispatch.
//! * [`cost`]: the AWS cost model behind `s3loader cost`.
//! * [`error`]: the crate's one error type.
//!
//! The `s3loader` binary's own modules (`src/cli/`: the arguments, one
//! function per command, and what each prints) are not part of the
//! library. Features (`postgres`, `sqlite`, `netcdf`, all on by default)
//! pass through to the loader crate; the scheduler Lambda is built with
//! none.

pub mod attempts;
pub mod cost;
pub mod demo;
pub mod error;
pub mod events;
pub mod fastpath;
#[cfg(feature = "netcdf")]
pub mod forecasts;
pub mod lambda;
pub mod lease;
pub mod listen;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scan;
pub mod tick;

pub use error::{Error, Result};

/// The most read whole of one of the scheduler's own objects (lease,
/// attempt counts, list cursor): a stray huge object cannot exhaust memory.
pub(crate) const STATE_MAX_BYTES: u64 = 64 * 1024 * 1024;

use std::sync::Arc;

use fanout::LocalFanout;
use loader::config::Config;
use loader::worker::Worker;

/// Builds a scheduler with in-process workers and the configured metrics
/// sink, as the CLI runs it.
pub async fn local(config: Config) -> Result<tick::Scheduler> {
    let store = loader::store::open(&config.source.url)
        .await
        .map_err(Error::loader("open the source"))?;
    let worker =
        Worker::from_config(&config, store.clone()).map_err(Error::loader("build destinations"))?;
    let sink = match config.metrics.sink {
        loader::config::SinkKind::Cloudwatch => {
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            metrics::sink_for(&config, &shared)
        }
        loader::config::SinkKind::Emf => Arc::new(metrics::EmfSink),
        loader::config::SinkKind::Log => Arc::new(metrics::LogSink),
    };
    tick::Scheduler::new(config, store, Arc::new(LocalFanout::new(worker)), sink)
}
