//! Tick metrics, emitted from one place through a sink.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The metrics of one tick (DESIGN.md, step 7), named as published.
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
