//! The Met Office forecast index in DynamoDB: its item schema, writing,
//! the query behind `s3loader forecasts`, and table creation. The
//! `dynamodb` destination writes through it; the CLI queries through it.
//!
//! One item per (netCDF file, forecast time). Keys follow the Met Office
//! design: partition key `forecast_period` (seconds, N), sort key
//! `forecast_time_key` (`<forecast_time>#<processed key>`, unique per file),
//! and the global secondary index [`TIME_INDEX`] on `forecast_time`
//! (RFC 3339, S) with `forecast_period` as its sort key, which answers
//! "which files hold time T".
//!
//! Exactly-once without a ledger: item keys are a function of the file's
//! final key and its times, so indexing a file again writes the same items
//! and changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::contract::{Cause, FileTask};
use crate::error::{Error, Result};
use crate::format::netcdf::{iso, ForecastFile};

/// The global secondary index on `forecast_time`.
pub const TIME_INDEX: &str = "forecast_time-index";

/// BatchWriteItem takes at most 25 items.
const BATCH: usize = 25;

/// Attempts per DynamoDB call (the SDK's retry), and retries of the items
/// a successful BatchWriteItem left unprocessed ([`crate::aws::backoff`]).
const ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// A DynamoDB client that retries throttling as the index needs: on-demand
/// tables throttle bursts of new partitions, and a write that gives up too
/// soon costs a whole tick.
pub fn client(shared: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_config(crate::aws::retry_config(ATTEMPTS, FIRST_RETRY))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// One index table.
///
/// Errors are [`Error::Destination`] named after `destination` (the
/// config's destination, or the table itself for the CLI): an item the
/// service rejects (`ValidationException`) is the file's fault; anything
/// else (a missing table, denied access, throttling that outlasts the
/// retries) is an outage, retryable and counted against no file.
#[derive(Debug, Clone)]
pub struct ForecastIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
    destination: String,
}

impl ForecastIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            destination: table.to_owned(),
        }
    }

    /// Names errors after the config's destination rather than the table.
    pub fn for_destination(mut self, destination: &str) -> Self {
        self.destination = destination.to_owned();
        self
    }

    fn failed<E: crate::aws::OperationError>(
        &self,
        op: &str,
        err: aws_sdk_dynamodb::error::SdkError<E>,
    ) -> Error {
        let failure = crate::aws::classify(err);
        let file = failure.code.as_deref() == Some("ValidationException");
        Error::Destination {
            destination: self.destination.clone(),
            message: format!("{op} on {}: {}", self.table, failure.describe()),
            code: failure.code,
            retryable: !file,
            cause: if file {
                Cause::File
            } else {
                Cause::Destination
            },
            source: Some(failure.source),
        }
    }

    /// Writes the items of one file, 25 to a BatchWriteItem. Done only when
    /// every item is written; a partial write is retried whole by the
    /// caller, which rewrites the same items.
    pub async fn write(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<()> {
        for chunk in items.chunks(BATCH) {
            self.write_batch(chunk.to_vec()).await?;
        }
        Ok(())
    }

    async fn write_batch(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<()> {
        let mut pending: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("item set"),
                    )
                    .build()
            })
            .collect();
        let mut delays = crate::aws::backoff(FIRST_RETRY, ATTEMPTS as usize - 1);
        loop {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| self.failed("BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            // Unprocessed items are throttling the SDK does not see.
            let Some(delay) = delays.next() else {
                return Err(Error::outage(
                    &self.destination,
                    format!(
                        "BatchWriteItem on {}: {} items still unprocessed after {ATTEMPTS} tries (throttled)",
                        self.table,
                        pending.len()
                    ),
                    None,
                    None,
                ));
            };
            tracing::warn!(table = %self.table, unprocessed = pending.len(), "retrying unprocessed items");
            tokio::time::sleep(delay).await;
        }
    }

    /// Which files hold a forecast for `time` (RFC 3339 as indexed), from
    /// the [`TIME_INDEX`]; optionally only lead time `period` (seconds) and
    /// files with data variable `variable`. Sorted by lead time, then key.
    pub async fn query(
        &self,
        time: &str,
        period: Option<i64>,
        variable: Option<&str>,
    ) -> Result<Vec<ForecastHit>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TIME_INDEX)
            .expression_attribute_values(":t", AttributeValue::S(time.to_owned()));
        q = match period {
            Some(p) => q
                .key_condition_expression("forecast_time = :t AND forecast_period = :p")
                .expression_attribute_values(":p", AttributeValue::N(p.to_string())),
            None => q.key_condition_expression("forecast_time = :t"),
        };
        let pages: Vec<_> = q.into_paginator().items().send().collect().await;
        let mut hits = Vec::new();
        for item in pages {
            let item = item.map_err(|e| self.failed(&format!("Query {TIME_INDEX}"), e))?;
            let hit = ForecastHit::from_item(&item);
            if variable.is_none_or(|want| hit.variables.iter().any(|v| v == want)) {
                hits.push(hit);
            }
        }
        hits.sort_by(|a, b| {
            (a.forecast_period, &a.object_key).cmp(&(b.forecast_period, &b.object_key))
        });
        Ok(hits)
    }

    /// Creates the table as `infra/template.yaml` does (for local runs and
    /// tests; in AWS the template owns it). On-demand billing.
    pub async fn create_table(&self) -> Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
                .expect("name and type set")
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .expect("name and type set")
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("forecast_period", ScalarAttributeType::N))
            .attribute_definitions(attr("forecast_time_key", ScalarAttributeType::S))
            .attribute_definitions(attr("forecast_time", ScalarAttributeType::S))
            .key_schema(key("forecast_period", KeyType::Hash))
            .key_schema(key("forecast_time_key", KeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(TIME_INDEX)
                    .key_schema(key("forecast_time", KeyType::Hash))
                    .key_schema(key("forecast_period", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("name and keys set"),
            )
            .send()
            .await
            .map_err(|e| self.failed("CreateTable", e))?;
        Ok(())
    }
}

/// The items of one file: `processed` is its key in `processed/` (where
/// the items point), `object_url` the same as a URL.
pub fn items(
    f: &ForecastFile,
    processed: &str,
    object_url: &str,
    file: &FileTask,
) -> Vec<HashMap<String, AttributeValue>> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    f.times
        .iter()
        .map(|t| {
            let time = iso(t.time);
            let mut item = HashMap::from([
                (
                    "forecast_period".to_owned(),
                    AttributeValue::N(t.forecast_period.to_string()),
                ),
                (
                    "forecast_time_key".to_owned(),
                    s(&format!("{time}#{processed}")),
                ),
                ("forecast_time".to_owned(), s(&time)),
                (
                    "forecast_reference_time".to_owned(),
                    s(&iso(t.forecast_reference_time)),
                ),
                ("object_key".to_owned(), s(processed)),
                ("object_url".to_owned(), s(object_url)),
                ("source_key".to_owned(), s(&file.key)),
                ("etag".to_owned(), s(&file.etag)),
                ("size".to_owned(), AttributeValue::N(file.size.to_string())),
                (
                    "variables".to_owned(),
                    AttributeValue::L(f.variables.iter().map(|v| s(v)).collect()),
                ),
            ]);
            for (name, value) in [
                ("model_configuration", &f.model_configuration),
                ("institution", &f.institution),
                ("title", &f.title),
            ] {
                if let Some(v) = value {
                    item.insert(name.to_owned(), s(v));
                }
            }
            item
        })
        .collect()
}

/// One file that holds a forecast for the time asked about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForecastHit {
    pub forecast_time: String,
    pub forecast_period: i64,
    pub forecast_reference_time: String,
    pub object_key: String,
    pub object_url: String,
    pub variables: Vec<String>,
    pub model_configuration: Option<String>,
}

impl ForecastHit {
    /// Reads an item as [`items`] writes it; a missing attribute is empty.
    fn from_item(item: &HashMap<String, AttributeValue>) -> Self {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Self {
            forecast_time: text("forecast_time").unwrap_or_default(),
            forecast_period: item
                .get("forecast_period")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or_default(),
            forecast_reference_time: text("forecast_reference_time").unwrap_or_default(),
            object_key: text("object_key").unwrap_or_default(),
            object_url: text("object_url").unwrap_or_default(),
            variables: item
                .get("variables")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                .unwrap_or_default(),
            model_configuration: text("model_configuration"),
        }
    }
}
