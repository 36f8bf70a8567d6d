//! Tick metrics, emitted from one place through a sink.

use std::sync::Arc;

use async_trait::async_trait;
use loader::config::{Config, SinkKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The metrics of one tick, named as published (listed in `runbook.md`,
/// "Where to look"; the alarms on them are in `infra/template.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TickMetrics {
    pub backlog_files: u64,
    pub backlog_bytes: u64,
    pub oldest_file_age_seconds: u64,
    pub files_loaded: u64,
    pub files_failed: u64,
    pub files_retried: u64,
    pub rows_loaded: u64,
    pub bytes_loaded: u64,
    pub tick_duration_ms: u64,
    /// Files held in `incoming/` by an outage of their destination or of
    /// the source store (counted against no file). Alarmed.
    pub destination_errors: u64,
    /// Moves out of `incoming/` that failed this tick.
    pub move_errors: u64,
    /// Files whose moves failed `max_attempts` times: no longer touched
    /// until an operator acts. Alarmed.
    pub files_stuck: u64,
    /// 1 if the listing saw all of `incoming/`; 0 if it was cut short, so
    /// BacklogFiles and BacklogBytes are lower bounds.
    pub backlog_complete: u64,
}

/// Where metrics go. Contract: one `publish` per tick, all metrics in it.
#[async_trait]
pub trait MetricsSink: Send + Sync {
    async fn publish(&self, namespace: &str, pipeline: &str, metrics: &TickMetrics) -> Result<()>;
}

/// Writes the metrics as one JSON line to the log (target
/// `s3loader::metrics`), in the shape of an embedded-metric record.
#[derive(Debug, Default, Clone)]
pub struct LogSink;

#[async_trait]
impl MetricsSink for LogSink {
    async fn publish(&self, namespace: &str, pipeline: &str, metrics: &TickMetrics) -> Result<()> {
        let line = serde_json::json!({
            "Namespace": namespace,
            "Pipeline": pipeline,
            "Metrics": metrics,
        });
        tracing::info!(target: "s3loader::metrics", "{line}");
        Ok(())
    }
}

/// Publishes the metrics to CloudWatch: one `PutMetricData` per tick, all
/// metrics in one namespace with the dimension `Pipeline=<name>`, stamped
/// with the tick's start.
#[derive(Debug, Clone)]
pub struct CloudWatchSink {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchSink {
    /// Uses a client built once by the caller.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

/// The sink `metrics.sink` names: CloudWatch (its client built from
/// `shared`; `AWS_ENDPOINT_URL_CLOUDWATCH` for a local endpoint) or the log.
pub fn sink_for(config: &Config, shared: &aws_config::SdkConfig) -> Arc<dyn MetricsSink> {
    match config.metrics.sink {
        SinkKind::Cloudwatch => {
            Arc::new(CloudWatchSink::new(aws_sdk_cloudwatch::Client::new(shared)))
        }
        SinkKind::Log => Arc::new(LogSink),
    }
}

#[async_trait]
impl MetricsSink for CloudWatchSink {
    async fn publish(&self, namespace: &str, pipeline: &str, m: &TickMetrics) -> Result<()> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        let dimension = Dimension::builder()
            .name("Pipeline")
            .value(pipeline)
            .build();
        let at = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
        let datum = |name: &str, value: u64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dimension.clone())
                .timestamp(at)
                .value(value as f64)
                .unit(unit)
                .build()
        };
        let data = vec![
            datum("BacklogFiles", m.backlog_files, StandardUnit::Count),
            datum("BacklogBytes", m.backlog_bytes, StandardUnit::Bytes),
            datum(
                "OldestFileAgeSeconds",
                m.oldest_file_age_seconds,
                StandardUnit::Seconds,
            ),
            datum("FilesLoaded", m.files_loaded, StandardUnit::Count),
            datum("FilesFailed", m.files_failed, StandardUnit::Count),
            datum("FilesRetried", m.files_retried, StandardUnit::Count),
            datum("RowsLoaded", m.rows_loaded, StandardUnit::Count),
            datum("BytesLoaded", m.bytes_loaded, StandardUnit::Bytes),
            datum(
                "TickDurationMs",
                m.tick_duration_ms,
                StandardUnit::Milliseconds,
            ),
            datum(
                "DestinationErrors",
                m.destination_errors,
                StandardUnit::Count,
            ),
            datum("MoveErrors", m.move_errors, StandardUnit::Count),
            datum("FilesStuck", m.files_stuck, StandardUnit::Count),
            datum("BacklogComplete", m.backlog_complete, StandardUnit::None),
        ];
        self.client
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| classify(namespace, e))?;
        Ok(())
    }
}

/// Throttling and server errors are worth retrying (the next tick
/// publishes anyway); the rest (bad namespace, missing permission) are not.
fn classify<E>(namespace: &str, err: aws_sdk_cloudwatch::error::SdkError<E>) -> Error
where
    E: aws_sdk_cloudwatch::error::ProvideErrorMetadata
        + aws_smithy_runtime_api::client::result::CreateUnhandledError
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let failure = loader::aws::classify(err);
    Error::Metrics {
        sink: SinkKind::Cloudwatch,
        namespace: namespace.to_owned(),
        code: failure.code,
        retryable: failure.retryable,
        source: failure.source,
    }
}
