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
    /// The backlog metrics come from ticks alone: an event-driven run lists
    /// nothing, and publishes `None` rather than a zero that would hide a
    /// backlog from the alarms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_file_age_seconds: Option<u64>,
    pub files_loaded: u64,
    pub files_failed: u64,
    pub files_retried: u64,
    pub rows_loaded: u64,
    /// Records the routes' schemas set aside, in `rejected/`.
    pub rows_rejected: u64,
    pub bytes_loaded: u64,
    /// Ticks only: the TicksMissing alarm counts its samples, so an
    /// event-driven run must not stand in for a tick that never ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_duration_ms: Option<u64>,
    /// Files held in `incoming/` by an outage of their destination or of
    /// the source store (counted against no file). Alarmed.
    pub destination_errors: u64,
    /// Moves out of `incoming/` that failed this tick.
    pub move_errors: u64,
    /// Files whose moves failed `max_attempts` times: no longer touched
    /// until an operator acts. Alarmed. Ticks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_stuck: Option<u64>,
    /// 1 if the listing saw all of `incoming/`; 0 if it was cut short, so
    /// BacklogFiles and BacklogBytes are lower bounds. Ticks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_complete: Option<u64>,
    /// The longest time from an object's creation to its rows committing,
    /// over the files this run loaded; absent when it loaded none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_latency_ms: Option<u64>,
}

impl TickMetrics {
    /// Every metric a tick that loads publishes (each one zero): what the
    /// cost model counts.
    pub fn every() -> Self {
        Self {
            backlog_files: Some(0),
            backlog_bytes: Some(0),
            oldest_file_age_seconds: Some(0),
            files_stuck: Some(0),
            backlog_complete: Some(0),
            end_to_end_latency_ms: Some(0),
            tick_duration_ms: Some(0),
            ..Self::default()
        }
    }

    /// Each metric with its published name, in declaration order; those
    /// this run has no value for are left out.
    pub fn named(&self) -> Vec<(String, u64)> {
        let value = serde_json::to_value(self).expect("plain counters serialise");
        value
            .as_object()
            .expect("a struct serialises as an object")
            .iter()
            .filter_map(|(name, v)| Some((name.clone(), v.as_u64()?)))
            .collect()
    }
}

/// The CloudWatch unit of a metric, by its name.
fn unit_of(name: &str) -> aws_sdk_cloudwatch::types::StandardUnit {
    use aws_sdk_cloudwatch::types::StandardUnit;
    match name {
        "BacklogBytes" | "BytesLoaded" => StandardUnit::Bytes,
        "OldestFileAgeSeconds" => StandardUnit::Seconds,
        "TickDurationMs" | "EndToEndLatencyMs" => StandardUnit::Milliseconds,
        "BacklogComplete" => StandardUnit::None,
        _ => StandardUnit::Count,
    }
}

/// Where metrics go. Contract: one `publish` per tick, all metrics in it.
#[async_trait]
pub trait MetricsSink: Send + Sync {
    async fn publish(&self, namespace: &str, pipeline: &str, metrics: &TickMetrics) -> Result<()>;
}

/// Writes the metrics as one log line (target `s3loader::metrics`): their
/// fields at the top level where logs are JSON, else as JSON text.
#[derive(Debug, Default, Clone)]
pub struct LogSink;

#[async_trait]
impl MetricsSink for LogSink {
    async fn publish(&self, namespace: &str, pipeline: &str, metrics: &TickMetrics) -> Result<()> {
        if !tracing::enabled!(target: "s3loader::metrics", tracing::Level::INFO) {
            return Ok(());
        }
        let line = serde_json::json!({
            "Namespace": namespace,
            "Pipeline": pipeline,
            "Metrics": metrics,
        });
        if !loader::logs::structured("s3loader::metrics", "tick metrics", &line) {
            tracing::info!(target: "s3loader::metrics", "{line}");
        }
        Ok(())
    }
}

/// Writes the metrics in CloudWatch's embedded metric format: one JSON line
/// with an `_aws` block that names the namespace, the `Pipeline` dimension
/// and each metric's unit, and the values at the top level. In Lambda,
/// CloudWatch Logs turns the line into metrics: no PutMetricData call, no
/// CloudWatch endpoint needed (a function in a VPC without one), no
/// `cloudwatch:PutMetricData` permission. Written whatever the log level:
/// these are data, not diagnostics.
#[derive(Debug, Default, Clone)]
pub struct EmfSink;

#[async_trait]
impl MetricsSink for EmfSink {
    async fn publish(&self, namespace: &str, pipeline: &str, metrics: &TickMetrics) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        loader::logs::write_line(&emf_line(namespace, pipeline, metrics, now));
        Ok(())
    }
}

/// The embedded-metric record of one run's metrics, stamped `timestamp_ms`.
pub fn emf_line(
    namespace: &str,
    pipeline: &str,
    metrics: &TickMetrics,
    timestamp_ms: u64,
) -> serde_json::Value {
    let named = metrics.named();
    let definitions: Vec<serde_json::Value> = named
        .iter()
        .map(|(name, _)| serde_json::json!({ "Name": name, "Unit": unit_of(name).as_str() }))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Pipeline"]],
                "Metrics": definitions,
            }],
        },
        "Pipeline": pipeline,
    });
    let out = line.as_object_mut().expect("an object");
    for (name, value) in named {
        out.insert(name, value.into());
    }
    line
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
/// `shared`; `AWS_ENDPOINT_URL_CLOUDWATCH` for a local endpoint), embedded
/// metric format lines, or the log.
pub fn sink_for(config: &Config, shared: &aws_config::SdkConfig) -> Arc<dyn MetricsSink> {
    match config.metrics.sink {
        SinkKind::Cloudwatch => {
            Arc::new(CloudWatchSink::new(aws_sdk_cloudwatch::Client::new(shared)))
        }
        SinkKind::Emf => Arc::new(EmfSink),
        SinkKind::Log => Arc::new(LogSink),
    }
}

#[async_trait]
impl MetricsSink for CloudWatchSink {
    async fn publish(&self, namespace: &str, pipeline: &str, m: &TickMetrics) -> Result<()> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let dimension = Dimension::builder()
            .name("Pipeline")
            .value(pipeline)
            .build();
        let at = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
        // Every field of TickMetrics, by its published name: a metric
        // added there is published without another line here.
        let data = m
            .named()
            .into_iter()
            .map(|(name, value)| {
                MetricDatum::builder()
                    .metric_name(&name)
                    .dimensions(dimension.clone())
                    .timestamp(at)
                    .value(value as f64)
                    .unit(unit_of(&name))
                    .build()
            })
            .collect();
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
fn classify<E: loader::aws::OperationError>(
    namespace: &str,
    err: aws_sdk_cloudwatch::error::SdkError<E>,
) -> Error {
    let failure = loader::aws::classify(err);
    Error::Metrics {
        sink: SinkKind::Cloudwatch,
        namespace: namespace.to_owned(),
        code: failure.code,
        retryable: failure.retryable,
        source: failure.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_metric_record_declares_every_value_it_carries() {
        let m = TickMetrics {
            files_loaded: 3,
            bytes_loaded: 10,
            ..TickMetrics::default()
        };
        let line = emf_line("S3Loader", "orders", &m, 1_795_500_000_000);
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_500_000_000u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "S3Loader");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Pipeline"]]));
        assert_eq!(
            line["Pipeline"], "orders",
            "the dimension's value is a member"
        );
        let defined = directive["Metrics"].as_array().unwrap();
        assert_eq!(defined.len(), m.named().len());
        for d in defined {
            let name = d["Name"].as_str().unwrap();
            assert!(line[name].is_u64(), "{name} has a value: {line}");
        }
        assert_eq!(line["FilesLoaded"], 3);
        assert!(defined.contains(&serde_json::json!({"Name": "BytesLoaded", "Unit": "Bytes"})));
        assert!(
            line.get("BacklogFiles").is_none(),
            "a metric without a value is neither declared nor written"
        );
    }

    #[test]
    fn every_metric_is_published_under_its_name_with_its_unit() {
        let m = TickMetrics {
            backlog_bytes: Some(7),
            tick_duration_ms: Some(9),
            ..TickMetrics::every()
        };
        let named = m.named();
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "BacklogFiles",
                "BacklogBytes",
                "OldestFileAgeSeconds",
                "FilesLoaded",
                "FilesFailed",
                "FilesRetried",
                "RowsLoaded",
                "RowsRejected",
                "BytesLoaded",
                "TickDurationMs",
                "DestinationErrors",
                "MoveErrors",
                "FilesStuck",
                "BacklogComplete",
                "EndToEndLatencyMs"
            ]
        );
        let notified = TickMetrics {
            files_loaded: 2,
            ..Default::default()
        };
        assert!(
            !notified
                .named()
                .iter()
                .any(|(n, _)| n.starts_with("Backlog")
                    || n == "OldestFileAgeSeconds"
                    || n == "EndToEndLatencyMs"
                    || n == "TickDurationMs"),
            "a run without a listing or a load publishes no backlog or latency: {:?}",
            notified.named()
        );
        assert!(named.contains(&("BacklogBytes".into(), 7)));
        assert!(named.contains(&("TickDurationMs".into(), 9)));
        use aws_sdk_cloudwatch::types::StandardUnit;
        assert_eq!(unit_of("BacklogBytes"), StandardUnit::Bytes);
        assert_eq!(unit_of("TickDurationMs"), StandardUnit::Milliseconds);
        assert_eq!(unit_of("EndToEndLatencyMs"), StandardUnit::Milliseconds);
        assert_eq!(unit_of("FilesStuck"), StandardUnit::Count);
    }
}
