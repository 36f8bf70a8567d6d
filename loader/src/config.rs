//! The one TOML configuration file, shared by every binary.
//!
//! Parsing refuses unknown fields and [`Config::validate`] checks what serde
//! cannot; either way the error names the field (`route[1].destination`).

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::template::{self, Captures};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    // `tick`, `metrics` and the [`Router`] are used by the scheduler alone,
    // yet they live here: the config is one TOML file, parsed and validated
    // in one place, so `s3loader check`, the scheduler Lambda and the
    // loader Lambda accept and refuse exactly the same text (with
    // `deny_unknown_fields`, a loader-only parse would refuse `[tick]`).
    // The router also makes each file's `LoadSpec`, which travels with the
    // batch to the worker.
    #[serde(default)]
    pub tick: TickConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub limits: Limits,
}

/// What one file may cost a worker, whatever its content: *memory is
/// bounded by config, never by input*. Past a limit the file fails
/// permanently with a reason that names the limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The longest CSV record or JSON line, in bytes.
    pub max_record_bytes: u64,
    /// The most one compressed file may decompress to, in bytes.
    pub max_decompressed_bytes: u64,
    /// The largest zstd window accepted, as a power of two (27 = 128 MiB,
    /// zstd's own default limit): a frame asking for more is refused
    /// before the window is allocated.
    pub zstd_window_log_max: u32,
    /// The most values read from one netCDF time coordinate.
    pub netcdf_max_time_cells: u64,
    /// The largest Parquet row group accepted, by the uncompressed size its
    /// metadata declares: what reading one costs in memory.
    pub max_row_group_bytes: u64,
    /// The most tables one file's records may go to (a route whose table
    /// is filled from a record field): each is spooled apart until the
    /// file is read.
    pub max_tables_per_file: u64,
}

impl Limits {
    pub const DEFAULT_NETCDF_MAX_TIME_CELLS: u64 = 1_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 16 * 1024 * 1024 * 1024,
            zstd_window_log_max: 27,
            netcdf_max_time_cells: Self::DEFAULT_NETCDF_MAX_TIME_CELLS,
            max_tables_per_file: 100,
            max_row_group_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Where the queue lives and how its prefixes are named.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `s3://BUCKET` or `dir:PATH` (relative paths are relative to the
    /// working directory).
    pub url: String,
    #[serde(default = "defaults::incoming")]
    pub incoming: String,
    #[serde(default = "defaults::processed")]
    pub processed: String,
    #[serde(default = "defaults::failed")]
    pub failed: String,
    #[serde(default = "defaults::errors")]
    pub errors: String,
    /// Records a route's schema set aside, one JSON Lines file per source
    /// file.
    #[serde(default = "defaults::rejected")]
    pub rejected: String,
    /// The lease and the attempt counts live under this prefix.
    #[serde(default = "defaults::state")]
    pub state: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TickConfig {
    /// X: at most this many files per tick, oldest first.
    pub max_files: usize,
    /// At most this many bytes per tick (at least one file is always taken).
    pub max_bytes: u64,
    pub batch_max_files: usize,
    pub batch_max_bytes: u64,
    /// C: batches in flight at once.
    pub concurrency: usize,
    /// Moves (copy + delete) in flight at once.
    pub move_concurrency: usize,
    /// Retryable failures after which a file fails permanently.
    pub max_attempts: u32,
    /// The tick stops dispatching new batches after this many seconds.
    pub deadline_secs: u64,
    /// Listing stops after this many seconds, so a huge backlog still
    /// leaves the tick time to load: the oldest found so far are loaded,
    /// and the next tick lists on from where this one stopped.
    pub list_max_secs: u64,
    /// In Lambda, the tick also stops dispatching this many seconds before
    /// the function times out, so batches in flight can return and their
    /// files move. The scheduler Lambda raises it to the loader function's
    /// timeout plus 5 s, so a batch sent last can still answer.
    pub lambda_reserve_secs: u64,
    /// A lease older than this is taken over; must exceed `deadline_secs`
    /// plus the time moves take.
    pub lease_ttl_secs: u64,
    /// `s3loader run` starts a tick this often.
    pub interval_secs: u64,
}

impl Default for TickConfig {
    fn default() -> Self {
        Self {
            max_files: 1000,
            max_bytes: 10 * 1024 * 1024 * 1024,
            batch_max_files: 100,
            batch_max_bytes: 1024 * 1024 * 1024,
            concurrency: 4,
            move_concurrency: 16,
            max_attempts: 5,
            deadline_secs: 50,
            list_max_secs: 8,
            lambda_reserve_secs: 20,
            lease_ttl_secs: 300,
            interval_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub sink: SinkKind,
    pub namespace: String,
    /// The value of the `Pipeline` dimension.
    pub pipeline: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            sink: SinkKind::Log,
            namespace: "S3Loader".into(),
            pipeline: "default".into(),
        }
    }
}

/// Where the tick's metrics go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// One JSON line per tick in the log (the embedded default).
    #[default]
    Log,
    /// One PutMetricData per tick.
    Cloudwatch,
    /// One CloudWatch embedded-metric-format line per tick on the log's
    /// writer (stdout in Lambda): CloudWatch Logs makes the metrics, with
    /// no API call.
    Emf,
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SinkKind::Log => "log",
            SinkKind::Cloudwatch => "cloudwatch",
            SinkKind::Emf => "emf",
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationConfig {
    /// A SQLite database file, created if missing. Tables are created with
    /// TEXT columns named after the file's columns if they do not exist.
    Sqlite { path: String },
    /// PostgreSQL. `url` is a reference (`env:NAME`, or
    /// `secretsmanager:<name or ARN>` for an RDS-style secret read at run
    /// time) or a URL without a password. Tables must exist.
    Postgres {
        url: String,
        #[serde(default = "defaults::connect_timeout")]
        connect_timeout_secs: u64,
    },
    /// A DynamoDB forecast index for netCDF files (`format = "netcdf"`
    /// routes; the route's `table` is the DynamoDB table). One item per
    /// (file, forecast time), pointing at the file in `processed/`.
    Dynamodb {
        /// Larger objects fail permanently before being read: libnetcdf
        /// needs the whole file on local disk (`/tmp` in Lambda).
        #[serde(default = "defaults::netcdf_max_bytes")]
        max_file_bytes: u64,
    },
    /// Amazon Redshift through the Data API: Redshift reads the files from
    /// S3 itself (one manifest COPY per table per tick). Tables must exist.
    Redshift(RedshiftConfig),
}

/// Where a Redshift destination is and how it reads the bucket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftConfig {
    /// A provisioned cluster's identifier (with `secret_arn` or `db_user`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// …or a Redshift Serverless workgroup (with or without `secret_arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workgroup: Option<String>,
    pub database: String,
    /// The Secrets Manager secret the Data API logs in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// A provisioned cluster's database user (temporary credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_user: Option<String>,
    /// The role Redshift assumes to read `incoming/` and the manifests.
    pub iam_role: String,
    /// Where manifests are written, in the source bucket.
    #[serde(default = "defaults::manifests")]
    pub manifests: String,
    /// COPY's MAXERROR: rows a file may reject before the COPY fails.
    #[serde(default)]
    pub max_errors: u32,
    /// For JSON Lines routes: an `s3://` jsonpaths file; `auto` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonpaths: Option<String>,
    /// How long to wait for a COPY when the batch carries no deadline.
    #[serde(default = "defaults::redshift_wait")]
    pub wait_secs: u64,
}

impl DestinationConfig {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::Sqlite { .. } => "sqlite",
            DestinationConfig::Postgres { .. } => "postgres",
            DestinationConfig::Dynamodb { .. } => "dynamodb",
            DestinationConfig::Redshift(_) => "redshift",
        }
    }

    /// Whether a tick sends all of a table's files in one batch, however
    /// many (Redshift: COPYs into one table run one after another, so one
    /// COPY of many files beats many COPYs of few).
    pub fn one_batch_per_table(&self) -> bool {
        matches!(self, DestinationConfig::Redshift(_))
    }

    /// The cargo feature that builds this kind in.
    pub fn feature(&self) -> &'static str {
        match self {
            DestinationConfig::Dynamodb { .. } => "netcdf",
            other => other.kind(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Csv,
    Jsonl,
    /// netCDF forecast files, indexed (not loaded) into a `dynamodb`
    /// destination.
    Netcdf,
    /// Apache Parquet: read a row group at a time (PostgreSQL, SQLite), or
    /// COPYed by Redshift itself.
    Parquet,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// By the object's Content-Encoding or Content-Type where they name
    /// gzip or zstd, else by extension: `.gz` is gzip, `.zst` is zstd,
    /// anything else is plain.
    #[default]
    Auto,
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    pub delimiter: char,
    pub quote: char,
    /// The first line names the columns.
    pub header: bool,
    /// A field equal to this string is NULL.
    pub null: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            header: true,
            null: String::new(),
        }
    }
}

/// How to read one file: the part of a route that travels with the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSpec {
    pub format: Format,
    pub compression: Compression,
    pub csv: CsvOptions,
    /// Column names. Required for CSV without a header; for JSON Lines,
    /// defaults to the keys of the first object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// The config's `[limits]`, carried with the batch to the worker.
    pub limits: Limits,
    /// The route's record rules, if it names any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
    /// The table's placeholders filled from each record (the route's
    /// `table_fields`): placeholder → field path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_fields: BTreeMap<String, String>,
    /// A missing target table is created like this one (the route's
    /// `create_like`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_like: Option<String>,
}

/// `[route.schema]`: what every record of the route must hold, and what
/// happens to one that does not.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The rules, by column name.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
    /// A JSON Schema (its JSON text) each record of a JSON Lines route
    /// must match, checked on the record as parsed (types as JSON has
    /// them). Local only: a remote `$ref` is not fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<String>,
    /// `reject` (the default): a record that breaks a rule goes to
    /// `rejected/<path>.jsonl` with its line and reason, and the file's
    /// valid records load. `fail_file`: the first one fails the file, as a
    /// malformed row does.
    #[serde(default)]
    pub on_invalid: OnInvalid,
    /// More rejected records than this fail the file (as Redshift's
    /// MAXERROR): a file that is mostly wrong is not half-loaded. Also
    /// what bounds the rejects kept in memory.
    #[serde(default = "default_max_rejected")]
    pub max_rejected: u64,
}

/// `max_rejected` when the route names no schema (its table's fields can
/// still reject records).
pub fn default_max_rejected() -> u64 {
    1000
}

/// One column's rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// The value's type, when present.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ColumnType>,
    /// NULL (or absent) is refused.
    #[serde(default)]
    pub required: bool,
    /// The only values allowed, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    /// A whole number that fits 64 bits.
    Integer,
    /// A decimal number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// RFC 3339: `2026-11-24T03:00:00Z`.
    Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    #[default]
    Reject,
    FailFile,
}

/// One `[[route]]`. Its reading options repeat [`LoadSpec`]'s fields
/// rather than `#[serde(flatten)]` it, because serde ignores
/// `deny_unknown_fields` through a flatten, and a misspelt option
/// (`delimter = ";"`) must be an error, not silently the default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A glob over the key relative to `source.incoming`: `*` stays within
    /// one path segment, `**` spans any. A whole segment `{name}` matches
    /// as `*` and fills `{name}` in `table` (see [`crate::template`]).
    pub pattern: String,
    pub destination: String,
    /// The table, or a template (`events_{tenant}`) whose placeholders come
    /// from the pattern's captures or from `table_fields`.
    pub table: String,
    /// Placeholders of `table` filled from each record: placeholder →
    /// field (a column, or `column.key...` into a JSON object). A record
    /// whose value breaks the identifier rule is rejected with a reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_fields: BTreeMap<String, String>,
    /// When a target table does not exist, create it like this one
    /// (PostgreSQL and Redshift `LIKE`, SQLite its columns' types). Without
    /// it, a missing table is an outage, as for any route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_like: Option<String>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub csv: CsvOptions,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Record rules (`[route.schema]`), for the destinations s3loader
    /// streams rows into (PostgreSQL, SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
}

impl RouteConfig {
    /// How files of this route are read.
    pub fn spec(&self) -> LoadSpec {
        LoadSpec {
            format: self.format,
            compression: self.compression,
            csv: self.csv.clone(),
            columns: self.columns.clone(),
            limits: Limits::default(),
            schema: self.schema.clone(),
            table_fields: self.table_fields.clone(),
            create_like: self.create_like.clone(),
        }
    }
}

mod defaults {
    pub fn rejected() -> String {
        "rejected/".into()
    }

    pub fn incoming() -> String {
        "incoming/".into()
    }
    pub fn processed() -> String {
        "processed/".into()
    }
    pub fn failed() -> String {
        "failed/".into()
    }
    pub fn errors() -> String {
        "errors/".into()
    }
    pub fn state() -> String {
        "_s3loader/".into()
    }
    pub fn netcdf_max_bytes() -> u64 {
        256 * 1024 * 1024
    }
    pub fn connect_timeout() -> u64 {
        10
    }
    pub fn manifests() -> String {
        "manifests/".into()
    }
    pub fn redshift_wait() -> u64 {
        45
    }
}

impl Config {
    /// Parses and validates.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml reports a byte span; name the line and show it, since
            // the message alone ("invalid type") may not name the key.
            let field = e.span().map_or_else(
                || "file".to_owned(),
                |span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    let content = text.lines().nth(line - 1).unwrap_or("").trim();
                    format!("line {line} `{content}`")
                },
            );
            Error::Config {
                field,
                message: e.message().trim().to_owned(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a file, then [`Config::from_toml`].
    pub fn from_path(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            field: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Config { field, message } => Error::Config {
                field: format!("{}: {field}", path.display()),
                message,
            },
            other => other,
        })
    }

    /// Checks what serde cannot, section by section; the first problem
    /// found is the error, naming its field.
    pub fn validate(&self) -> Result<()> {
        self.source.validate()?;
        self.tick.validate()?;
        self.limits.validate()?;
        for (name, dest) in &self.destinations {
            dest.validate(name)?;
            if let DestinationConfig::Redshift(r) = dest {
                self.source
                    .separate(&format!("destinations.{name}.manifests"), &r.manifests)?;
            }
        }
        if self.routes.is_empty() {
            return Err(Error::config("route", "at least one [[route]] is needed"));
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(i, &self.destinations)?;
        }
        Ok(())
    }

    /// Resolves `env:NAME` references.
    pub fn resolve_secret(field: &str, value: &str) -> Result<String> {
        match value.strip_prefix("env:") {
            Some(var) => std::env::var(var).map_err(|_| {
                Error::config(field, format!("environment variable {var} is not set"))
            }),
            None => Ok(value.to_owned()),
        }
    }
}

/// Every field that must be at least 1.
fn at_least_one(fields: &[(&str, u64)]) -> Result<()> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((field, _)) => Err(Error::config(*field, "must be at least 1")),
        None => Ok(()),
    }
}

impl SourceConfig {
    /// `prefix` (another prefix in the bucket) overlaps none of the queue's.
    fn separate(&self, field: &str, prefix: &str) -> Result<()> {
        for p in [
            &self.incoming,
            &self.processed,
            &self.failed,
            &self.errors,
            &self.state,
        ] {
            if p.starts_with(prefix) || prefix.starts_with(p.as_str()) {
                return Err(Error::config(
                    field,
                    format!("{prefix:?} overlaps the source prefix {p:?}; each must be separate"),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let prefixes = [
            ("source.incoming", &self.incoming),
            ("source.processed", &self.processed),
            ("source.failed", &self.failed),
            ("source.errors", &self.errors),
            ("source.state", &self.state),
        ];
        for (field, value) in prefixes {
            if !value.ends_with('/') || value.starts_with('/') || value.len() < 2 {
                return Err(Error::config(
                    field,
                    format!("{value:?} must be a prefix like \"incoming/\""),
                ));
            }
        }
        for (i, (_, a)) in prefixes.iter().enumerate() {
            for (_, b) in &prefixes[i + 1..] {
                if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                    return Err(Error::config(
                        "source",
                        format!("prefixes {a:?} and {b:?} overlap; each must be separate"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl TickConfig {
    fn validate(&self) -> Result<()> {
        at_least_one(&[
            ("tick.max_files", self.max_files as u64),
            ("tick.max_bytes", self.max_bytes),
            ("tick.batch_max_files", self.batch_max_files as u64),
            ("tick.batch_max_bytes", self.batch_max_bytes),
            ("tick.concurrency", self.concurrency as u64),
            ("tick.move_concurrency", self.move_concurrency as u64),
            ("tick.max_attempts", self.max_attempts as u64),
            ("tick.deadline_secs", self.deadline_secs),
            ("tick.interval_secs", self.interval_secs),
        ])?;
        if self.list_max_secs == 0 || self.list_max_secs > self.deadline_secs {
            return Err(Error::config(
                "tick.list_max_secs",
                format!(
                    "{} must be between 1 and tick.deadline_secs ({})",
                    self.list_max_secs, self.deadline_secs
                ),
            ));
        }
        if self.lease_ttl_secs <= self.deadline_secs {
            return Err(Error::config(
                "tick.lease_ttl_secs",
                format!(
                    "{} must be greater than tick.deadline_secs ({}), or a slow tick loses its lease",
                    self.lease_ttl_secs, self.deadline_secs
                ),
            ));
        }
        Ok(())
    }
}

impl Limits {
    fn validate(&self) -> Result<()> {
        at_least_one(&[
            ("limits.max_record_bytes", self.max_record_bytes),
            ("limits.max_decompressed_bytes", self.max_decompressed_bytes),
            ("limits.netcdf_max_time_cells", self.netcdf_max_time_cells),
            ("limits.max_tables_per_file", self.max_tables_per_file),
            ("limits.max_row_group_bytes", self.max_row_group_bytes),
        ])?;
        if !(10..=31).contains(&self.zstd_window_log_max) {
            return Err(Error::config(
                "limits.zstd_window_log_max",
                format!(
                    "{} is outside 10..=31 (27 = 128 MiB, zstd's default)",
                    self.zstd_window_log_max
                ),
            ));
        }
        Ok(())
    }
}

impl DestinationConfig {
    fn validate(&self, name: &str) -> Result<()> {
        if let DestinationConfig::Redshift(r) = self {
            return r.validate(name);
        }
        if let DestinationConfig::Postgres { url, .. } = self {
            let field = format!("destinations.{name}.url");
            if url.strip_prefix("env:").is_some_and(str::is_empty) {
                return Err(Error::config(field, "env: needs a variable name"));
            }
            if url
                .strip_prefix("secretsmanager:")
                .is_some_and(|id| id.split('?').next().unwrap_or("").is_empty())
            {
                return Err(Error::config(
                    field,
                    "secretsmanager: needs a secret's name or ARN",
                ));
            }
            if !url.starts_with("env:") && url_has_password(url) {
                return Err(Error::config(
                    field,
                    "contains a password; reference it instead, e.g. url = \"env:DATABASE_URL\"",
                ));
            }
        }
        Ok(())
    }
}

impl RedshiftConfig {
    fn validate(&self, name: &str) -> Result<()> {
        let field = |f: &str| format!("destinations.{name}.{f}");
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match (given(&self.cluster_id), given(&self.workgroup)) {
            (true, true) | (false, false) => {
                return Err(Error::config(
                    field("cluster_id"),
                    "give exactly one of cluster_id (provisioned) and workgroup (Serverless)",
                ))
            }
            (true, false) if given(&self.secret_arn) == given(&self.db_user) => {
                return Err(Error::config(
                    field("secret_arn"),
                    "a provisioned cluster needs exactly one of secret_arn and db_user",
                ))
            }
            (false, true) if self.db_user.is_some() => {
                return Err(Error::config(
                    field("db_user"),
                    "Redshift Serverless logs in with secret_arn or the caller's IAM identity, not db_user",
                ))
            }
            _ => {}
        }
        if self.database.is_empty() {
            return Err(Error::config(field("database"), "must not be empty"));
        }
        // These go into COPY as string literals: refuse what a literal
        // would have to escape, rather than trust an escape.
        let plain = |s: &str| {
            !s.chars()
                .any(|c| matches!(c, '\'' | '\\') || c.is_control())
        };
        if !self.iam_role.starts_with("arn:") || !plain(&self.iam_role) {
            return Err(Error::config(
                field("iam_role"),
                format!("{:?} is not a role ARN", self.iam_role),
            ));
        }
        if let Some(j) = &self.jsonpaths {
            if !j.starts_with("s3://") || !plain(j) {
                return Err(Error::config(
                    field("jsonpaths"),
                    format!("{j:?} is not an s3:// URI"),
                ));
            }
        }
        let m = &self.manifests;
        if !m.ends_with('/')
            || m.starts_with('/')
            || m.len() < 2
            || !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
        {
            return Err(Error::config(
                field("manifests"),
                format!("{m:?} must be a prefix like \"manifests/\" (letters, digits, / _ - .)"),
            ));
        }
        at_least_one(&[(&field("wait_secs"), self.wait_secs)])
    }
}

impl RouteConfig {
    /// `route[i]`: its glob, its destination, and what that destination
    /// can take.
    fn validate(&self, i: usize, destinations: &BTreeMap<String, DestinationConfig>) -> Result<()> {
        let field = |f: &str| format!("route[{i}].{f}");
        let captures =
            Captures::parse(&self.pattern).map_err(|m| Error::config(field("pattern"), m))?;
        compile_glob(&captures.glob).map_err(|m| Error::config(field("pattern"), m))?;
        let Some(dest) = destinations.get(&self.destination) else {
            let have: Vec<_> = destinations.keys().cloned().collect();
            return Err(Error::config(
                field("destination"),
                format!(
                    "no destination named {:?} (have: {have:?})",
                    self.destination
                ),
            ));
        };
        let index = matches!(dest, DestinationConfig::Dynamodb { .. });
        if index != (self.format == Format::Netcdf) {
            return Err(Error::config(
                field("format"),
                format!(
                    "format {:?} cannot go to destination {:?}: netcdf files go to dynamodb destinations, and only they",
                    self.format, self.destination
                ),
            ));
        }
        if index && !valid_dynamodb_table(&self.table) {
            return Err(Error::config(
                field("table"),
                format!(
                    "{:?} is not a DynamoDB table name (3-255 of letters, digits, _ - .)",
                    self.table
                ),
            ));
        }
        self.validate_template(&captures, dest, &field)?;
        let example = template::fill(&self.table, |_| Some("x")).unwrap_or_default();
        if !index && !valid_table(&example) {
            return Err(Error::config(
                field("table"),
                format!(
                    "{:?} is not a table name (letters, digits, _ and one optional schema., with {{placeholders}})",
                    self.table
                ),
            ));
        }
        if let Some(schema) = &self.schema {
            if matches!(
                dest,
                DestinationConfig::Redshift(_) | DestinationConfig::Dynamodb { .. }
            ) {
                return Err(Error::config(
                    field("schema"),
                    format!(
                        "record rules need a destination s3loader streams rows into (postgres, sqlite); {:?} reads the files itself",
                        self.destination
                    ),
                ));
            }
            if schema.columns.is_empty() && schema.json_schema.is_none() {
                return Err(Error::config(
                    field("schema.columns"),
                    "names no column (and there is no json_schema)",
                ));
            }
            if let Some(text) = &schema.json_schema {
                if self.format != Format::Jsonl {
                    return Err(Error::config(
                        field("schema.json_schema"),
                        "applies to JSON Lines routes only (format = \"jsonl\"); use columns rules for others",
                    ));
                }
                crate::format::validate::compile_json_schema(text)
                    .map_err(|m| Error::config(field("schema.json_schema"), m))?;
            }
        }
        if self.format == Format::Parquet {
            if !matches!(self.compression, Compression::Auto | Compression::None) {
                return Err(Error::config(
                    field("compression"),
                    "Parquet compresses inside the file: leave compression as auto",
                ));
            }
            if self.columns.is_some() && matches!(dest, DestinationConfig::Redshift(_)) {
                return Err(Error::config(
                    field("columns"),
                    "Redshift maps Parquet columns by position to all of the table's: columns cannot be named",
                ));
            }
        }
        let csv = &self.csv;
        if !csv.delimiter.is_ascii() || !csv.quote.is_ascii() || csv.delimiter == csv.quote {
            return Err(Error::config(
                field("csv"),
                "delimiter and quote must be two different ASCII characters",
            ));
        }
        if matches!(dest, DestinationConfig::Redshift(_))
            && [csv.delimiter, csv.quote]
                .into_iter()
                .chain(csv.null.chars())
                .any(|c| matches!(c, '\'' | '\\') || c.is_control() && c != '\t')
        {
            // They become COPY string literals.
            return Err(Error::config(
                field("csv"),
                "for a redshift destination, delimiter, quote and null cannot hold ' or \\ or control characters (but tab)",
            ));
        }
        if self.format == Format::Csv && !csv.header && self.columns.is_none() {
            return Err(Error::config(
                field("columns"),
                "CSV without a header needs columns = [...]",
            ));
        }
        if self.columns.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(Error::config(field("columns"), "must not be empty"));
        }
        Ok(())
    }
}

impl RouteConfig {
    /// The table's placeholders each come from a capture or a field, and
    /// the destination can fill them.
    fn validate_template(
        &self,
        captures: &Captures,
        dest: &DestinationConfig,
        field: &dyn Fn(&str) -> String,
    ) -> Result<()> {
        let placeholders = template::placeholders(&self.table);
        let index = matches!(dest, DestinationConfig::Dynamodb { .. });
        if index && (!placeholders.is_empty() || self.create_like.is_some()) {
            return Err(Error::config(
                field("table"),
                "the forecast index is one table: no {placeholders} or create_like",
            ));
        }
        for name in &placeholders {
            let captured = captures.names().any(|c| c == *name);
            let from_field = self.table_fields.contains_key(*name);
            if !template::valid_placeholder(name) || captured == from_field {
                return Err(Error::config(
                    field("table"),
                    format!(
                        "{{{name}}} must be filled from exactly one of a pattern segment {{{name}}} or table_fields.{name}"
                    ),
                ));
            }
        }
        for (name, path) in &self.table_fields {
            if !placeholders.contains(&name.as_str()) {
                return Err(Error::config(
                    field(&format!("table_fields.{name}")),
                    format!("the table {:?} has no {{{name}}}", self.table),
                ));
            }
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(Error::config(
                    field(&format!("table_fields.{name}")),
                    "must name a field: `column` or `column.key`",
                ));
            }
        }
        if !self.table_fields.is_empty() && matches!(dest, DestinationConfig::Redshift(_)) {
            return Err(Error::config(
                field("table_fields"),
                format!(
                    "tables from record fields need a destination s3loader streams rows into (postgres, sqlite); {:?} reads the files itself (capture the tenant from the key instead)",
                    self.destination
                ),
            ));
        }
        if let Some(like) = &self.create_like {
            if !valid_table(like) {
                return Err(Error::config(
                    field("create_like"),
                    format!("{like:?} is not a table name"),
                ));
            }
        }
        Ok(())
    }
}

fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        || url.contains("password=")
}

fn valid_dynamodb_table(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_table(name: &str) -> bool {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((schema, table)) => ident(schema) && ident(table),
        None => ident(name),
    }
}

fn compile_glob(pattern: &str) -> std::result::Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid glob {pattern:?}: {e}"))
}

/// The routes, compiled: the first rule that matches a key wins.
#[derive(Debug, Clone)]
pub struct Router {
    incoming: String,
    rules: Vec<(GlobMatcher, Captures, RouteConfig)>,
    limits: Limits,
}

impl Router {
    pub fn new(config: &Config) -> Result<Self> {
        let rules = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Captures::parse(&r.pattern)
                    .and_then(|c| compile_glob(&c.glob).map(|g| (g, c, r.clone())))
                    .map_err(|m| Error::config(format!("route[{i}].pattern"), m))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            incoming: config.source.incoming.clone(),
            rules,
            limits: config.limits.clone(),
        })
    }

    /// How a file of `route` is read, with the config's limits.
    pub fn spec(&self, route: &RouteConfig) -> LoadSpec {
        LoadSpec {
            limits: self.limits.clone(),
            ..route.spec()
        }
    }

    /// The route for a key under `incoming/`, matched on its relative path.
    pub fn route(&self, key: &str) -> Option<&RouteConfig> {
        let rel = key.strip_prefix(&self.incoming)?;
        self.rules
            .iter()
            .find(|(glob, _, _)| glob.is_match(rel))
            .map(|(_, _, r)| r)
    }

    /// The route for a key under `incoming/` and the table the key loads
    /// into: the route's table with the pattern's captures filled
    /// (placeholders from record fields stay for the loader), matched
    /// once. `None` without a route; the table is an error, naming the
    /// segment and the rule it breaks, when a captured value may not name
    /// a table.
    pub fn resolve(
        &self,
        key: &str,
    ) -> Option<(&RouteConfig, std::result::Result<String, String>)> {
        let rel = key.strip_prefix(&self.incoming)?;
        let (_, captures, route) = self.rules.iter().find(|(glob, _, _)| glob.is_match(rel))?;
        let table = template::fill(&route.table, |name| captures.value(rel, name))
            .map_err(|why| format!("the key's segment {why} (route table {:?})", route.table));
        Some((route, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [source]
        url = "dir:/tmp/x"
        [destinations.wh]
        kind = "sqlite"
        path = "/tmp/x.db"
        [[route]]
        pattern = "orders/**/*.csv*"
        destination = "wh"
        table = "orders"
        [[route]]
        pattern = "**"
        destination = "wh"
        table = "other"
        format = "jsonl"
    "#;

    fn err_field(text: &str) -> String {
        match Config::from_toml(text) {
            Err(Error::Config { field, message }) => format!("{field}: {message}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn redshift_configs_are_checked_field_by_field() {
        let with = |dest: &str, route: &str| {
            format!(
                "[source]\nurl = \"s3://b\"\n[destinations.rs]\nkind = \"redshift\"\n\
                 database = \"dev\"\n{dest}\n[[route]]\npattern = \"**\"\n\
                 destination = \"rs\"\ntable = \"public.t\"\n{route}"
            )
        };
        let role = "iam_role = \"arn:aws:iam::1:role/copy\"";
        let good = with(&format!("cluster_id = \"c\"\ndb_user = \"u\"\n{role}"), "");
        let c = Config::from_toml(&good).unwrap();
        assert!(c.destinations["rs"].one_batch_per_table());
        for (dest, route, want) in [
            (
                format!("cluster_id = \"c\"\nworkgroup = \"w\"\ndb_user = \"u\"\n{role}"),
                "",
                "destinations.rs.cluster_id: give exactly one",
            ),
            (
                format!("cluster_id = \"c\"\n{role}"),
                "",
                "destinations.rs.secret_arn: a provisioned cluster needs",
            ),
            (
                format!("workgroup = \"w\"\ndb_user = \"u\"\n{role}"),
                "",
                "destinations.rs.db_user:",
            ),
            (
                "workgroup = \"w\"\niam_role = \"copy'; --\"".into(),
                "",
                "destinations.rs.iam_role:",
            ),
            (
                format!("workgroup = \"w\"\n{role}\nmanifests = \"incoming/m/\""),
                "",
                "destinations.rs.manifests: \"incoming/m/\" overlaps",
            ),
            (
                format!("workgroup = \"w\"\n{role}"),
                "csv = { null = \"\\\\N\" }",
                "route[0].csv: for a redshift destination",
            ),
            (
                format!("workgroup = \"w\"\n{role}"),
                "[route.schema.columns.id]\ntype = \"integer\"",
                "route[0].schema: record rules need a destination s3loader streams rows into",
            ),
        ] {
            let got = err_field(&with(&dest, route));
            assert!(got.starts_with(want), "{got}");
        }
    }

    #[test]
    fn a_route_schema_reads_as_written_and_refuses_what_it_cannot_mean() {
        let base =
            "[source]\nurl = \"dir:b\"\n[destinations.wh]\nkind = \"sqlite\"\npath = \"w.db\"\n\
                    [[route]]\npattern = \"**\"\ndestination = \"wh\"\ntable = \"t\"\n";
        let c = Config::from_toml(&format!(
            "{base}[route.schema]\non_invalid = \"fail_file\"\n\
             [route.schema.columns.id]\ntype = \"integer\"\nrequired = true\n\
             [route.schema.columns.kind]\nallowed = [\"a\", \"b\"]\n"
        ))
        .unwrap();
        let schema = c.routes[0].spec().schema.unwrap();
        assert_eq!(schema.on_invalid, OnInvalid::FailFile);
        assert_eq!(schema.max_rejected, 1000, "the default");
        assert_eq!(schema.columns["id"].kind, Some(ColumnType::Integer));
        assert!(schema.columns["id"].required);
        assert_eq!(
            schema.columns["kind"].allowed.as_deref().unwrap(),
            ["a", "b"]
        );
        assert!(
            err_field(&format!("{base}[route.schema]\ncolumns = {{}}\n"))
                .starts_with("route[0].schema.columns: names no column")
        );
        let typo = Config::from_toml(&format!(
            "{base}[route.schema.columns.id]\ntype = \"int\"\n"
        ));
        assert!(
            typo.is_err(),
            "an unknown type is an error, not a string column"
        );
    }

    #[test]
    fn parquet_routes_take_no_outer_compression_and_no_redshift_columns() {
        let sqlite = "[source]\nurl = \"s3://b\"\n[destinations.wh]\nkind = \"sqlite\"\npath = \"w.db\"\n\
                      [[route]]\npattern = \"**\"\ndestination = \"wh\"\ntable = \"t\"\nformat = \"parquet\"\n";
        assert_eq!(
            Config::from_toml(sqlite).unwrap().routes[0].format,
            Format::Parquet
        );
        assert!(err_field(&format!("{sqlite}compression = \"gzip\"\n"))
            .starts_with("route[0].compression: Parquet compresses inside the file"));
        let redshift = sqlite.replace(
            "kind = \"sqlite\"\npath = \"w.db\"",
            "kind = \"redshift\"\nworkgroup = \"w\"\ndatabase = \"dev\"\niam_role = \"arn:aws:iam::1:role/copy\"",
        );
        Config::from_toml(&redshift).unwrap();
        assert!(err_field(&format!("{redshift}columns = [\"a\"]\n"))
            .starts_with("route[0].columns: Redshift maps Parquet columns by position"));
    }

    #[test]
    fn table_templates_are_filled_from_the_key_or_a_field_and_checked() {
        let conf = |kind: &str, route: &str| {
            let dest = match kind {
                "sqlite" => "kind = \"sqlite\"\npath = \"w.db\"",
                _ => "kind = \"redshift\"\nworkgroup = \"w\"\ndatabase = \"dev\"\niam_role = \"arn:aws:iam::1:role/copy\"",
            };
            format!(
                "[source]\nurl = \"s3://b\"\n[destinations.wh]\n{dest}\n\
                 [[route]]\ndestination = \"wh\"\n{route}\n"
            )
        };
        let c = Config::from_toml(&conf(
            "sqlite",
            "pattern = \"tenants/{tenant}/**\"\ntable = \"ev_{tenant}\"\ncreate_like = \"ev\"",
        ))
        .unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(
            r.resolve("incoming/tenants/acme/2026/a.csv")
                .unwrap()
                .1
                .unwrap(),
            "ev_acme"
        );
        let bad = r
            .resolve("incoming/tenants/ACME/a.csv")
            .unwrap()
            .1
            .unwrap_err();
        assert!(bad.contains("{tenant} = \"ACME\": holds 'A'"), "{bad}");
        assert!(r.resolve("incoming/other/a.csv").is_none());
        let fields = Config::from_toml(&conf(
            "sqlite",
            "pattern = \"**\"\ntable = \"ev_{tenant}\"\ntable_fields = { tenant = \"metadata.tenant_id\" }",
        ))
        .unwrap();
        let r = Router::new(&fields).unwrap();
        assert_eq!(
            r.resolve("incoming/a.jsonl").unwrap().1.unwrap(),
            "ev_{tenant}",
            "a field's placeholder stays for the loader"
        );
        for (kind, route, field, why) in [
            ("sqlite", "pattern = \"**\"\ntable = \"ev_{tenant}\"", "route[0].table", "exactly one"),
            ("sqlite", "pattern = \"{tenant}/**\"\ntable = \"ev_{tenant}\"\ntable_fields = { tenant = \"t\" }", "route[0].table", "exactly one"),
            ("sqlite", "pattern = \"**/{tenant}/*\"\ntable = \"ev_{tenant}\"", "route[0].pattern", "after **"),
            ("sqlite", "pattern = \"**\"\ntable = \"ev\"\ntable_fields = { tenant = \"t\" }", "route[0].table_fields.tenant", "no {tenant}"),
            ("sqlite", "pattern = \"**\"\ntable = \"ev_{tenant}\"\ntable_fields = { tenant = \"a..b\" }", "route[0].table_fields.tenant", "must name a field"),
            ("sqlite", "pattern = \"{t}/*\"\ntable = \"ev_{t}\"\ncreate_like = \"x y\"", "route[0].create_like", "not a table name"),
            ("redshift", "pattern = \"**\"\ntable = \"ev_{tenant}\"\ntable_fields = { tenant = \"t\" }", "route[0].table_fields", "capture the tenant from the key"),
        ] {
            let e = err_field(&conf(kind, route));
            assert!(e.starts_with(field) && e.contains(why), "{route}: {e}");
        }
    }

    #[test]
    fn first_matching_route_wins_on_relative_path() {
        let c = Config::from_toml(GOOD).unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(
            r.route("incoming/orders/2024/a.csv.gz").unwrap().table,
            "orders"
        );
        assert_eq!(r.route("incoming/orders.csv").unwrap().table, "other");
        assert!(r.route("processed/orders/a.csv").is_none());
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err_field(&GOOD.replace(
            "destination = \"wh\"\n        table = \"orders\"",
            "destination = \"pg\"\n        table = \"orders\""
        ))
        .starts_with("route[0].destination"));
        assert!(err_field(&format!("{GOOD}\n[tick]\nconcurrency = 0\n"))
            .starts_with("tick.concurrency"));
        let unknown = err_field(&format!("{GOOD}\n[tick]\nmax_filez = 3\n"));
        assert!(unknown.contains("max_filez"), "{unknown}");
        let in_route = err_field(&GOOD.replace(
            "table = \"other\"",
            "table = \"other\"\n        delimter = \";\"",
        ));
        assert!(in_route.contains("delimter"), "{in_route}");
        let typed = err_field(&format!("{GOOD}\n[tick]\nmax_files = \"many\"\n"));
        assert!(typed.contains("max_files = \"many\""), "{typed}");
        assert!(err_field(&GOOD.replace("\"orders\"", "\"orders; drop\""))
            .starts_with("route[0].table"));
        let pw = GOOD.replace(
            "kind = \"sqlite\"\n        path = \"/tmp/x.db\"",
            "kind = \"postgres\"\n        url = \"postgres://u:secret@h/db\"",
        );
        assert!(err_field(&pw).starts_with("destinations.wh.url"));
    }
}
