//! The DynamoDB forecast index: one item per (netCDF file, forecast time).
//!
//! Keys follow the Met Office design: partition key `forecast_period`
//! (seconds, N), sort key `forecast_time_key` (`<forecast_time>#<processed
//! key>`, unique per file), and the global secondary index
//! [`TIME_INDEX`] on `forecast_time` (RFC 3339, S) with `forecast_period` as
//! its sort key, which answers "which files hold time T".
//!
//! Exactly-once without a ledger: item keys are a function of the file's
//! final key and its times, so indexing a file again writes the same items
//! and changes nothing. A file is `Loaded` only after all its items are
//! written; a partial write is retried whole.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use super::Destination;
use crate::config::SourceConfig;
use crate::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use crate::error::{chain, Error, Result};
use crate::format::netcdf::{self, iso, ForecastFile};
use crate::store::ObjectStore;

/// The global secondary index on `forecast_time`.
pub const TIME_INDEX: &str = "forecast_time-index";

/// BatchWriteItem takes at most 25 items.
const BATCH: usize = 25;
const MAX_TRIES: u32 = 8;

#[derive(Debug)]
pub struct Dynamodb {
    name: String,
    max_file_bytes: u64,
    source: SourceConfig,
    client: OnceCell<aws_sdk_dynamodb::Client>,
}

impl Dynamodb {
    pub fn new(name: &str, max_file_bytes: u64, source: &SourceConfig) -> Self {
        Self {
            name: name.to_owned(),
            max_file_bytes,
            source: source.clone(),
            client: OnceCell::new(),
        }
    }

    /// With a client built by the caller (tests, or a Lambda's shared config).
    pub fn with_client(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.client = OnceCell::new_with(Some(client));
        self
    }

    /// Built once, on first use, from the standard AWS configuration
    /// (`AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint).
    async fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.client
            .get_or_init(|| async {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_dynamodb::Client::new(&shared)
            })
            .await
    }

    /// Trouble on our side of the call (a temporary file, a panicking
    /// reader): an outage of this worker, not the file's fault.
    fn error(&self, message: String) -> Error {
        Error::outage(&self.name, message, None, None)
    }

    async fn index_file(
        &self,
        table: &str,
        file: &FileTask,
        store: &Arc<dyn ObjectStore>,
        processed: &str,
    ) -> Result<u64> {
        if file.size > self.max_file_bytes {
            return Err(Error::Format {
                key: file.key.clone(),
                message: format!(
                    "{} bytes is over this destination's max_file_bytes ({})",
                    file.size, self.max_file_bytes
                ),
            });
        }
        // libnetcdf reads from a path: copy the pinned version to /tmp.
        let tmp = tempfile::NamedTempFile::new()
            .map_err(|e| self.error(format!("temporary file: {e}")))?;
        let mut object = store.get(&file.key, Some(&file.etag)).await?;
        let mut out = tokio::fs::File::from_std(
            tmp.reopen()
                .map_err(|e| self.error(format!("temporary file: {e}")))?,
        );
        let copied = tokio::io::copy(
            &mut (&mut object.body).take(self.max_file_bytes + 1),
            &mut out,
        )
        .await
        .map_err(|e| Error::Read {
            key: file.key.clone(),
            source: e,
        })?;
        out.flush().await.ok();
        if copied > self.max_file_bytes {
            return Err(Error::Format {
                key: file.key.clone(),
                message: format!(
                    "over this destination's max_file_bytes ({})",
                    self.max_file_bytes
                ),
            });
        }
        let key = file.key.clone();
        let path = tmp.path().to_owned();
        let max_cells = file.spec.limits.netcdf_max_time_cells;
        let forecast = tokio::task::spawn_blocking(move || netcdf::read(&path, &key, max_cells))
            .await
            .map_err(|e| self.error(format!("netCDF reader panicked: {e}")))??;
        drop(tmp);
        let object_url = format!("{}/{processed}", store.name());
        let items = items(&forecast, processed, &object_url, file);
        let n = items.len() as u64;
        for chunk in items.chunks(BATCH) {
            self.write(table, chunk.to_vec()).await?;
        }
        Ok(n)
    }

    /// One BatchWriteItem, its UnprocessedItems retried with full-jitter
    /// backoff.
    async fn write(&self, table: &str, items: Vec<HashMap<String, AttributeValue>>) -> Result<()> {
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
        let client = self.client().await;
        for attempt in 0..MAX_TRIES {
            if attempt > 0 {
                let cap = 50u64 << attempt.min(8);
                let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(cap)) as u64;
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let sent = client
                .batch_write_item()
                .request_items(table, pending.clone())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(table))
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                Err(err) => {
                    let service = err.into_service_error();
                    let code = service.code().unwrap_or("unknown").to_owned();
                    // Only a bad item is the file's fault. A missing table,
                    // denied access or throttling that outlasts this loop is
                    // the destination being unavailable: retried by a later
                    // tick and counted against no file. This loop retries in
                    // place only throttling, 5xx and connection errors.
                    let file = code == "ValidationException";
                    let transient = matches!(
                        code.as_str(),
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                            | "unknown"
                    );
                    let message = format!(
                        "BatchWriteItem on {table}: {}",
                        service.message().unwrap_or_default()
                    );
                    if !transient || attempt + 1 == MAX_TRIES {
                        return Err(Error::Destination {
                            destination: self.name.clone(),
                            message,
                            code: Some(code),
                            retryable: !file,
                            cause: if file {
                                Cause::File
                            } else {
                                Cause::Destination
                            },
                            source: Some(Box::new(service)),
                        });
                    }
                    tracing::warn!(destination = %self.name, attempt, %code, error = %message, "retrying");
                }
            }
        }
        Err(self.error(format!(
            "{} items still unprocessed after {MAX_TRIES} tries (throttled)",
            pending.len()
        )))
    }
}

/// The items of one file.
fn items(
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

#[async_trait]
impl Destination for Dynamodb {
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome {
        let mut files = Vec::with_capacity(batch.files.len());
        for file in &batch.files {
            // The scheduler names the file's place in processed/ (the
            // layout's rule); an older scheduler sent none.
            let processed = if file.processed_key.is_empty() {
                self.source.processed_key(&file.key)
            } else {
                file.processed_key.clone()
            };
            let outcome = match self
                .index_file(&batch.table, file, &store, &processed)
                .await
            {
                Ok(rows) => Outcome::Loaded {
                    rows,
                    bytes: file.size,
                },
                // The table is missing, access denied, throttled for good:
                // the rest of the batch would fare no better.
                Err(e) if e.cause() == Cause::Destination => return batch.all_failed_with(&e),
                Err(e) => {
                    tracing::debug!(key = %file.key, error = %chain(&e), "index failed");
                    Outcome::failed(&e)
                }
            };
            files.push(file.outcome(outcome));
        }
        BatchOutcome {
            batch_id: batch.id.clone(),
            files,
        }
    }
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

/// Which files hold a forecast for `time` (RFC 3339 as indexed), from the
/// [`TIME_INDEX`]; optionally only lead time `period` (seconds) and files
/// with data variable `variable`. Sorted by lead time, then key.
pub async fn query(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    time: &str,
    period: Option<i64>,
    variable: Option<&str>,
) -> Result<Vec<ForecastHit>> {
    let mut q = client
        .query()
        .table_name(table)
        .index_name(TIME_INDEX)
        .expression_attribute_values(":t", AttributeValue::S(time.to_owned()));
    q = match period {
        Some(p) => q
            .key_condition_expression("forecast_time = :t AND forecast_period = :p")
            .expression_attribute_values(":p", AttributeValue::N(p.to_string())),
        None => q.key_condition_expression("forecast_time = :t"),
    };
    let pages: Vec<_> = q.into_paginator().items().send().collect().await;
    let text = |item: &HashMap<String, AttributeValue>, k: &str| {
        item.get(k).and_then(|v| v.as_s().ok()).cloned()
    };
    let mut hits = Vec::new();
    for item in pages {
        let item = item.map_err(|err| {
            let service = err.into_service_error();
            Error::outage(
                table,
                format!(
                    "Query {TIME_INDEX}: {}",
                    service.message().unwrap_or_default()
                ),
                service.code().map(str::to_owned),
                Some(Box::new(service)),
            )
        })?;
        let variables: Vec<String> = item
            .get("variables")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default();
        if variable.is_some_and(|want| !variables.iter().any(|v| v == want)) {
            continue;
        }
        hits.push(ForecastHit {
            forecast_time: text(&item, "forecast_time").unwrap_or_default(),
            forecast_period: item
                .get("forecast_period")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or_default(),
            forecast_reference_time: text(&item, "forecast_reference_time").unwrap_or_default(),
            object_key: text(&item, "object_key").unwrap_or_default(),
            object_url: text(&item, "object_url").unwrap_or_default(),
            variables,
            model_configuration: text(&item, "model_configuration"),
        });
    }
    hits.sort_by(|a, b| {
        (a.forecast_period, &a.object_key).cmp(&(b.forecast_period, &b.object_key))
    });
    Ok(hits)
}

/// Creates the index table as `infra/template.yaml` does (for local runs
/// and tests; in AWS the template owns it). On-demand billing.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
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
    client
        .create_table()
        .table_name(table)
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
        .map_err(|err| {
            let service = err.into_service_error();
            Error::outage(
                table,
                format!("CreateTable: {}", service.message().unwrap_or_default()),
                service.code().map(str::to_owned),
                Some(Box::new(service)),
            )
        })?;
    Ok(())
}
