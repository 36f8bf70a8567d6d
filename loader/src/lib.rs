//! # Layout
//!
//! The bottom of s3loader: everything a worker needs to turn a batch of
//! objects into committed rows (or forecast index items), and the object
//! store the scheduler also lists and moves through.
//!
//! * [`store`]: the [`ObjectStore`](store::ObjectStore) trait and its S3 and
//!   local-directory backends (`store/s3.rs`, `store/local.rs`).
//! * [`contract`]: [`Batch`](contract::Batch) in,
//!   [`BatchOutcome`](contract::BatchOutcome) out: the load contract.
//! * [`config`]: the TOML config every binary reads, and the router.
//! * [`layout`]: every key the queue writes (processed/, failed/, errors/,
//!   state) and the rule that keeps archive names from colliding.
//! * [`format`](mod@format): CSV and JSON Lines, plain, gzip or zstd, as row streams
//!   (`format/csv.rs`, `format/jsonl.rs`; their tests in
//!   `format/tests.rs`); `format::netcdf`, the forecast times of a Met
//!   Office netCDF file.
//! * [`dest`]: the [`Destination`](dest::Destination) contract; SQLite,
//!   PostgreSQL (`dest/sqlite.rs`, `dest/postgres.rs`, its TLS in
//!   `dest/pg_tls.rs`, its secrets in `dest/pg_secret.rs`) and Redshift
//!   (`dest/redshift/`: the Data API in `api.rs`, the statements in
//!   `sql.rs`), each with the ledger that makes loads exactly-once; the
//!   `dynamodb` destination (`dest/dynamodb.rs`), which indexes netCDF
//!   files.
//! * `forecast_index`: the DynamoDB forecast index: item schema, writing,
//!   querying, table creation (the `dynamodb` destination writes through
//!   it, `s3loader forecasts` queries through it).
//! * [`template`]: table templates (`events_{tenant}`): placeholders
//!   filled from the key or a record field, and the identifier rule their
//!   values keep.
//! * [`worker`]: loads one batch into its destination.
//! * [`aws`]: one way to talk to AWS: SDK error classification, retry
//!   configs, backoff.
//! * [`ca_bundle`]: the system's CA bundle, read once: the roots TLS trusts.
//! * [`lambda`]: cold-start setup shared by the Lambda binaries (JSON
//!   logs, the config from an env var, an S3 object or a file).
//! * [`logs`]: the log writer and level (`AWS_LAMBDA_LOG_LEVEL`), and the
//!   lines that carry a structure as JSON fields.
//! * [`error`]: the crate's one error type.
//!
//! # Features
//!
//! The heavy backends are cargo features, all on by default: `postgres`,
//! `sqlite`, `netcdf` (libnetcdf and the DynamoDB forecast index) and
//! `redshift` (the Data API). A binary built without one refuses, with a
//! config error naming the feature, a config that uses it.

pub mod aws;
pub mod ca_bundle;
pub mod config;
pub mod contract;
pub mod dest;
pub mod error;
#[cfg(feature = "netcdf")]
pub mod forecast_index;
pub mod format;
pub mod lambda;
pub mod layout;
pub mod logs;
pub mod store;
pub mod template;
pub mod worker;

pub use error::{Error, Result};
