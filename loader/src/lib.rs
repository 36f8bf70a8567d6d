//! # Layout
//!
//! The bottom of s3loader: everything a worker needs to turn a batch of
//! objects into committed rows, and the object store the scheduler also
//! lists and moves through.
//!
//! * [`store`]: the [`ObjectStore`](store::ObjectStore) trait and its S3 and
//!   local-directory backends.
//! * [`contract`]: [`Batch`](contract::Batch) in,
//!   [`BatchOutcome`](contract::BatchOutcome) out: the load contract.
//! * [`config`]: the TOML config every binary reads, and the router.
//! * [`format`]: CSV and JSON Lines, plain, gzip or zstd, as row streams.
//! * [`dest`]: SQLite and PostgreSQL, each with the ledger that makes loads
//!   exactly-once.
//! * [`worker`]: loads one batch into its destination.
//! * [`layout`]: every key the queue writes (processed/, failed/, errors/,
//!   state) and the rule that keeps archive names from colliding.
//! * [`lambda`]: cold-start setup shared by both Lambda binaries (JSON
//!   logs, the config from an env var, an S3 object or a file).
//! * [`error`]: the crate's one error type.

pub mod aws;
pub mod config;
pub mod contract;
pub mod dest;
pub mod error;
#[cfg(feature = "netcdf")]
pub mod forecast_index;
pub mod format;
pub mod lambda;
pub mod layout;
pub mod store;
pub mod worker;

pub use error::{Error, Result};
