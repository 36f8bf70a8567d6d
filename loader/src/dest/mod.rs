//! Destinations: where a batch's rows go, together with its ledger rows.
//!
//! Contract of every [`Destination`]:
//! * one outcome per file of the batch (the caller reconciles anyway);
//! * a file's rows and its ledger row `(object key, ETag)` commit in one
//!   transaction, or neither does;
//! * `Loaded` is reported only after that commit;
//! * a file whose `(key, ETag)` is already in the ledger is `AlreadyLoaded`
//!   and its table is not touched;
//! * a bad file fails alone: the others of the batch still load;
//! * two loads of the same file at once load it once (the ledger's key);
//! * a commit that fails turns every `Loaded` of the batch back into a
//!   retryable failure (`uncommit`);
//! * an outage (down, denied, a missing table) fails every file of the
//!   batch retryably with [`Cause::Destination`]; only a value the file
//!   brings blames the file.
//!
//! `tests/dest_conformance.rs` runs each rule on every destination with a
//! ledger; a new destination joins its `on_every_destination!` list.
//!
//! Each backend is behind its cargo feature (`postgres`, `sqlite`, `netcdf`
//! for the DynamoDB forecast index, `redshift`); the helpers below serve
//! the row loaders and Redshift's statements.

#![cfg_attr(not(all(feature = "postgres", feature = "sqlite")), allow(dead_code))]

#[cfg(feature = "netcdf")]
mod dynamodb;
#[cfg(feature = "postgres")]
mod pg_secret;
#[cfg(feature = "postgres")]
mod pg_tls;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redshift")]
pub mod redshift;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "netcdf")]
pub use dynamodb::Dynamodb;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
#[cfg(feature = "redshift")]
pub use redshift::Redshift;
#[cfg(feature = "sqlite")]
pub use sqlite::Sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::runtime::Handle;

use crate::config::{DestinationConfig, SourceConfig};
use crate::contract::{Batch, BatchOutcome, Cause, FileOutcome, FileTask, Outcome};
use crate::error::Result;
use crate::format::validate::{Rejections, Validating};
use crate::format::{self, RecordReader};
use crate::store::ObjectStore;

/// The name of the ledger table in every destination.
pub const LEDGER_TABLE: &str = "s3loader_ledger";

#[async_trait]
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// Loads the batch, reading each file through `store`.
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome;

    /// Whether the ledger holds each file's `(key, ETag)`, in order. Asked
    /// before a file whose last outcome is uncertain goes to `failed/`. A
    /// destination without a ledger (the idempotent forecast index) says
    /// no: failing such a file again loses nothing.
    async fn loaded(&self, files: &[FileTask]) -> Result<Vec<bool>> {
        Ok(vec![false; files.len()])
    }

    /// The ledger's rows that match `query`, oldest load first, at most
    /// `query.limit`. `None` for a destination without a ledger.
    async fn history(&self, query: &HistoryQuery) -> Result<Option<Vec<LedgerEntry>>> {
        let _ = query;
        Ok(None)
    }
}

/// What [`Destination::history`] looks for.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Loads at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Object keys (as loaded: `incoming/…`) that start with this.
    pub key_prefix: String,
    pub limit: usize,
}

impl HistoryQuery {
    /// `since` as the ledgers compare it: UTC, milliseconds, `Z`.
    pub(crate) fn since_text(&self) -> String {
        self.since
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }
}

/// One ledger row: a file version, loaded once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerEntry {
    pub object_key: String,
    pub etag: String,
    pub table: String,
    /// Rows loaded (Redshift's ledger does not count them).
    pub rows: Option<u64>,
    pub batch_id: String,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

impl LedgerEntry {
    /// Parses a ledger's `loaded_at` text (RFC 3339, or PostgreSQL's
    /// `YYYY-MM-DD HH:MM:SS[.fff]` in UTC).
    pub(crate) fn time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.to_utc())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(
                    text.trim_end_matches('Z'),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map(|t| t.and_utc())
            })
            .ok()
    }
}

/// Builds the destination named `name` from its config, resolving secrets.
///
/// AWS clients come from `shared` when given (a Lambda's one config);
/// otherwise they are built on first use from the standard settings. A
/// kind whose cargo feature is off is a config error naming the feature.
#[cfg_attr(
    not(all(
        feature = "postgres",
        feature = "sqlite",
        feature = "netcdf",
        feature = "redshift"
    )),
    allow(unused_variables)
)]
pub fn build(
    name: &str,
    config: &DestinationConfig,
    source: &SourceConfig,
    shared: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn Destination>> {
    match config {
        #[cfg(feature = "netcdf")]
        DestinationConfig::Dynamodb { max_file_bytes } => {
            let d = Dynamodb::new(name, *max_file_bytes, source);
            Ok(Arc::new(match shared {
                Some(shared) => d.with_client(crate::forecast_index::client(shared)),
                None => d,
            }))
        }
        #[cfg(feature = "sqlite")]
        DestinationConfig::Sqlite { path } => Ok(Arc::new(Sqlite::new(name, path))),
        #[cfg(feature = "postgres")]
        DestinationConfig::Postgres {
            url,
            connect_timeout_secs,
        } => {
            let field = format!("destinations.{name}.url");
            let url = crate::config::Config::resolve_secret(&field, url)?;
            Ok(Arc::new(Postgres::new(
                name,
                url,
                *connect_timeout_secs,
                shared,
            )?))
        }
        #[cfg(feature = "redshift")]
        DestinationConfig::Redshift(r) => Ok(Arc::new(Redshift::new(name, r, source, shared))),
        #[allow(unreachable_patterns)] // when every kind is built in
        other => Err(crate::error::Error::config(
            format!("destinations.{name}.kind"),
            format!(
                "{:?} is not built into this binary (cargo feature {:?})",
                other.kind(),
                other.feature()
            ),
        )),
    }
}

/// Opens a file's rows for streaming, checked against its route's rules
/// and, where its `table` is filled from each record, with each row's
/// table ([`RecordReader::table`]). Blocking: call it on a blocking
/// thread, with a handle to the runtime the store runs on.
pub(crate) fn open_records(
    store: &Arc<dyn ObjectStore>,
    file: &FileTask,
    table: &str,
    handle: &Handle,
) -> Result<(Box<dyn RecordReader>, Rejections)> {
    let object = handle.block_on(store.get(&file.key, Some(&file.etag)))?;
    let compression = format::compression_for(&file.key, file.spec.compression, &object.content);
    let body = tokio_util::io::SyncIoBridge::new_with_handle(object.body, handle.clone());
    let records = format::open_as(body, &file.key, &file.spec, compression)?;
    let spec = &file.spec;
    Ok(if spec.schema.is_some() || !spec.table_fields.is_empty() {
        let (checked, rejections) = Validating::new(
            records,
            &file.key,
            spec.schema.as_ref(),
            table,
            &spec.table_fields,
        );
        (Box::new(checked), rejections)
    } else {
        (records, Rejections::default())
    })
}

/// Writes the records `file`'s schema set aside to its `rejected/` key
/// (ours to overwrite: a reload writes the same ones), and says how many.
/// Called before the file's commit.
pub(crate) async fn put_rejected(
    store: &dyn ObjectStore,
    file: &FileTask,
    rejections: &Rejections,
) -> Result<u64> {
    let Some(body) = rejections.jsonl() else {
        return Ok(0);
    };
    let key = if file.rejected_key.is_empty() {
        format!("rejected/{}.jsonl", file.key)
    } else {
        file.rejected_key.clone()
    };
    store
        .put(
            &key,
            bytes::Bytes::from(body),
            crate::store::PutMode::Overwrite,
        )
        .await?;
    Ok(rejections.count())
}

/// A file whose records name one table more than
/// `limits.max_tables_per_file` allows: its fault, at `line`.
pub(crate) fn too_many_tables(file: &FileTask, table: &str, line: u64) -> crate::Error {
    let max = file.spec.limits.max_tables_per_file;
    crate::Error::Format {
        key: file.key.clone(),
        message: format!(
            "line {line}: table {table:?} would be the file's table number {}, over limits.max_tables_per_file ({max})",
            max + 1
        ),
    }
}

/// The transaction did not commit: what we thought loaded did not.
pub(crate) fn uncommit(files: &mut [FileOutcome], reason: &str) {
    for f in files {
        if matches!(f.outcome, Outcome::Loaded { .. }) {
            f.outcome = Outcome::Failed {
                retryable: true,
                reason: format!("the batch's transaction did not commit: {reason}"),
                cause: Cause::Destination,
            };
        }
    }
}

/// `"name"`, with embedded quotes doubled: safe for any column name a file
/// brings.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A validated `table` or `schema.table`, quoted.
pub(crate) fn quote_table(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}
