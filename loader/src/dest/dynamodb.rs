//! The `dynamodb` destination: netCDF forecast files indexed into the
//! [`ForecastIndex`], one item per (file, forecast time).
//!
//! A file is `Loaded` only after all its items are written; a partial write
//! is retried whole, which rewrites the same items (the index is
//! idempotent, so this destination needs no ledger).

use std::sync::Arc;

use async_trait::async_trait;
use futures::{stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

use super::Destination;
use crate::config::SourceConfig;
use crate::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use crate::error::{chain, Error, Result};
use crate::forecast_index::{self, ForecastIndex};
use crate::format::netcdf;
use crate::store::ObjectStore;

/// Files of one batch indexed at once, so that one file's S3 read, another's
/// parse and a third's BatchWriteItem overlap: each step is a round trip
/// or a blocking parse (libnetcdf's calls take a global lock). Memory is
/// this many files' limits (`max_file_bytes` on disk, the parsed times
/// under `netcdf_max_time_cells`).
const FILES_AT_ONCE: usize = 4;

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
                forecast_index::client(&shared)
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
        let items = forecast_index::items(&forecast, processed, &object_url, file);
        let n = items.len() as u64;
        ForecastIndex::new(self.client().await.clone(), table)
            .for_destination(&self.name)
            .write(items)
            .await?;
        Ok(n)
    }
}

#[async_trait]
impl Destination for Dynamodb {
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome {
        let store = &store;
        // In batch order, FILES_AT_ONCE at a time.
        // (By index: a closure taking `&FileTask` is not general enough
        // for async_trait's Send bound.)
        let mut indexed = stream::iter(0..batch.files.len())
            .map(|i| async move {
                let file = &batch.files[i];
                // The scheduler names the file's place in processed/ (the
                // layout's rule); an older scheduler sent none.
                let processed = if file.processed_key.is_empty() {
                    self.source.processed_key(&file.key)
                } else {
                    file.processed_key.clone()
                };
                let result = self.index_file(&batch.table, file, store, &processed).await;
                (file, result)
            })
            .buffered(FILES_AT_ONCE);
        let mut files = Vec::with_capacity(batch.files.len());
        while let Some((file, result)) = indexed.next().await {
            let outcome = match result {
                Ok(rows) => Outcome::Loaded {
                    rows,
                    bytes: file.size,
                    rejected: 0,
                },
                // The table is missing, access denied, throttled for good:
                // the rest of the batch would fare no better. (Files still
                // in flight are dropped; their items, if written, are
                // rewritten when the batch is retried.)
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
