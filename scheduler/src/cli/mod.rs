//! The `s3loader` command line: its arguments, and one function per
//! command in [`commands`], which does the work through the library and
//! hands the result to [`print`](mod@print) for the text (or `--json`) users see.

mod bar;
mod commands;
mod print;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Load files that land in a bucket's incoming/ prefix into a warehouse,
/// exactly once.
///
/// Every tick takes the oldest files from incoming/, loads them in batches,
/// moves each loaded file to processed/ and each failed one to failed/ (with
/// a JSON report in errors/ naming the reason). A ledger in the destination
/// makes a file load once even if a move fails or ticks overlap.
///
/// Without --config, the embedded default runs: a local directory
/// (./demo/bucket) into SQLite (./demo/warehouse.db). Try `s3loader demo`.
#[derive(Debug, Parser)]
#[command(name = "s3loader", version, about, long_about)]
pub struct Cli {
    /// The TOML config file [default: the embedded example config].
    #[arg(long, short, global = true, env = "S3LOADER_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log more (info); RUST_LOG (or AWS_LAMBDA_LOG_LEVEL) overrides.
    #[arg(long, short, global = true)]
    pub verbose: bool,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a tick every tick.interval_secs until Ctrl-C or SIGTERM (the
    /// current tick finishes first; a second signal exits at once).
    Run,
    /// The event-driven fast path without Lambda: long-poll an SQS queue of
    /// S3 event notifications (direct, or wrapped by SNS) and load each
    /// notified file at once, as the events Lambda does. Ticks (`run`) stay
    /// the backstop for anything a notification misses; overlap is safe.
    /// Prints one line per batch of messages; runs until Ctrl-C.
    Listen {
        /// The queue's URL (AWS_ENDPOINT_URL_SQS for a local endpoint).
        #[arg(long, env = "S3LOADER_QUEUE_URL")]
        queue_url: String,
        /// Stop once a long poll finds the queue empty, instead of running
        /// until Ctrl-C.
        #[arg(long)]
        until_empty: bool,
        /// How long each poll waits for a first message (SQS long polling,
        /// at most 20).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
        wait_secs: u64,
        /// Print each batch's raw report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one tick and print what it did.
    Tick {
        /// Print the raw TickReport JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the backlog: files, bytes, age of the oldest, failed files.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Move failed files back to incoming/ to load them again.
    Reprocess {
        /// Only files under failed/<PREFIX>.
        #[arg(long, default_value = "")]
        prefix: String,
        /// List what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what moved, the conflicts and errors as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move loaded files from processed/ back to incoming/ for a deliberate
    /// reload (a backfill): each goes back under a replay name
    /// (`a~r20261124T034000Z.csv`), so the ledger loads it again and its
    /// new ledger row records the replay. Rows are appended a second time:
    /// delete the old ones first to have them replaced. Needs --reload (or
    /// --dry-run to see what would move).
    Replay {
        /// Only files under processed/<PREFIX> ("" for all of processed/).
        #[arg(long)]
        prefix: String,
        /// Only files archived at or after this time (2026-11-24T03:00Z,
        /// 2026-11-24, or an age: 90m, 6h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Confirm that these files are to be loaded again.
        #[arg(long)]
        reload: bool,
        /// List what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what moved, the conflicts and errors as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What the ledger says was loaded: which file (and version), when,
    /// how many rows, into which table, in which batch; replays marked.
    /// Read from every destination's ledger.
    History {
        /// Only loads at or after this time (2026-11-24T03:00Z, 2026-11-24,
        /// or an age: 90m, 6h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only keys under this prefix (relative to incoming/, or whole).
        #[arg(long, default_value = "")]
        key: String,
        /// At most this many rows per destination, oldest first.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Check the config and print it with defaults filled in.
    Check,
    /// Which indexed Met Office netCDF files hold a forecast for a time
    /// (from the DynamoDB forecast index; AWS_ENDPOINT_URL_DYNAMODB for a
    /// local endpoint).
    Forecasts {
        /// The validity time, UTC: 2018-11-29T12:00Z.
        #[arg(long)]
        time: String,
        /// Only this lead time: PT2H, P1DT6H, or seconds.
        #[arg(long)]
        period: Option<String>,
        /// Only files with this data variable (e.g. wind_speed).
        #[arg(long)]
        variable: Option<String>,
        /// The index table [default: the config's one netcdf route's table].
        #[arg(long)]
        table: Option<String>,
        /// Print the matches as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The embedded default, end to end: seed the shipped sample files into
    /// DIR/bucket/incoming/, tick until the backlog is drained into
    /// DIR/warehouse.db, and summarise. Running it again loads nothing twice.
    Demo {
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
    },
    /// The AWS cost of this design for a workload, per month and per
    /// million files (S3 requests, Lambda GB-seconds, CloudWatch, KMS),
    /// beside Snowpipe's and Firehose's fees, with every price it assumes,
    /// its source and the date it was recorded. bench/run.sh feeds it the
    /// durations it measured.
    Cost(CostArgs),
}

/// The workload `cost` prices. Durations default to what bench/run.sh
/// measured on a 2-core machine (bench/RESULTS.md); pass your own.
#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Files landing in incoming/ a day.
    #[arg(long)]
    pub files_per_day: f64,
    /// Their average size in bytes (uncompressed, for Snowpipe's fee).
    #[arg(long)]
    pub avg_bytes: f64,
    /// The loader Lambda's billed milliseconds per file.
    #[arg(long, default_value_t = 10.0)]
    pub loader_ms_per_file: f64,
    /// The loader Lambda's memory (infra/template.yaml: LoaderMemoryMB).
    #[arg(long, default_value_t = 512.0)]
    pub loader_memory_mb: f64,
    /// Files per loader invoke (tick.batch_max_files).
    #[arg(long, default_value_t = 100.0)]
    pub batch_files: f64,
    /// The scheduler Lambda's billed milliseconds per tick.
    #[arg(long, default_value_t = 1500.0)]
    pub scheduler_ms_per_tick: f64,
    /// Ticks a day (EventBridge Scheduler, once a minute).
    #[arg(long, default_value_t = 1440.0)]
    pub ticks_per_day: f64,
    /// The bucket uses SSE-KMS without an S3 Bucket Key (3 KMS requests
    /// per file).
    #[arg(long)]
    pub kms: bool,
    /// Print the estimate as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// `run` logs each tick at info; the other commands print their result
    /// and log only errors unless asked.
    pub fn init_logging(&self) {
        let default = if self.verbose || matches!(self.command, Command::Run) {
            "info"
        } else {
            "error"
        };
        let mode = if self.log_json {
            loader::logs::Mode::JsonStderr
        } else {
            loader::logs::Mode::Text
        };
        loader::logs::init(mode, default);
    }

    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        let config = self.config;
        match self.command {
            Command::Demo { dir } => commands::demo(&dir).await,
            Command::Run => commands::run(config.as_deref()).await,
            Command::Tick { json } => commands::tick(config.as_deref(), json).await,
            Command::Listen {
                queue_url,
                until_empty,
                wait_secs,
                json,
            } => {
                let wait = std::time::Duration::from_secs(wait_secs);
                commands::listen(config.as_deref(), &queue_url, until_empty, wait, json).await
            }
            Command::Status { json } => commands::status(config.as_deref(), json).await,
            Command::Reprocess {
                prefix,
                dry_run,
                json,
            } => commands::reprocess(config.as_deref(), &prefix, dry_run, json).await,
            Command::Replay {
                prefix,
                since,
                reload,
                dry_run,
                json,
            } => {
                let args = commands::ReplayArgs {
                    prefix,
                    since,
                    reload,
                    dry_run,
                    json,
                };
                commands::replay(config.as_deref(), args).await
            }
            Command::History {
                since,
                key,
                limit,
                json,
            } => commands::history(config.as_deref(), since.as_deref(), &key, limit, json).await,
            Command::Check => commands::check(config.as_deref()),
            Command::Cost(args) => commands::cost(&args),
            Command::Forecasts {
                time,
                period,
                variable,
                table,
                json,
            } => {
                let query = commands::ForecastQuery {
                    time,
                    period,
                    variable,
                    table,
                };
                commands::forecasts(config.as_deref(), query, json).await
            }
        }
    }
}
