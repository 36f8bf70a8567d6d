//! The `s3loader` command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use loader::config::Config;
use scheduler::report::TickReport;
use scheduler::{demo, ops};

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
struct Cli {
    /// The TOML config file [default: the embedded example config].
    #[arg(long, short, global = true, env = "S3LOADER_CONFIG")]
    config: Option<PathBuf>,

    /// Log more (info); RUST_LOG overrides.
    #[arg(long, short, global = true)]
    verbose: bool,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tick every tick.interval_secs until Ctrl-C or SIGTERM (the
    /// current tick finishes first; a second signal exits at once).
    Run,
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
}

fn init_logging(verbose: bool, json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if verbose { "info" } else { default })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::from_path(p)?,
        None => Config::from_toml(demo::DEFAULT_CONFIG).context("the embedded config")?,
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run) {
        "info"
    } else {
        "error"
    };
    init_logging(cli.verbose, cli.log_json, default_level);
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Demo { dir } = &cli.command {
        return run_demo(dir).await;
    }
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Forecasts {
            time,
            period,
            variable,
            table,
            json,
        } => {
            use scheduler::forecasts as f;
            let time = f::parse_time(&time)?;
            let period = period.as_deref().map(f::parse_period).transpose()?;
            let table = f::table(&config, table.as_deref())?;
            let hits = f::lookup(&table, &time, period, variable.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("no indexed file holds a forecast for {time} (table {table})");
            } else {
                println!("{} file(s) hold a forecast for {time}:", hits.len());
                for h in &hits {
                    println!(
                        "  {:<9} run {}  {}  [{}]",
                        f::format_period(h.forecast_period),
                        h.forecast_reference_time,
                        h.object_url,
                        h.variables.join(", ")
                    );
                }
            }
        }
        Command::Check => {
            println!("{}", toml::to_string_pretty(&config)?);
            println!(
                "# config OK: {} route(s), {} destination(s)",
                config.routes.len(),
                config.destinations.len()
            );
        }
        Command::Status { json } => {
            let store = loader::store::open(&config.source.url).await?;
            let s = ops::status(&config, &*store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("{}", s.store);
                println!(
                    "  incoming: {} files, {} bytes, oldest {}",
                    s.backlog.files,
                    s.backlog.bytes,
                    if s.backlog.files == 0 {
                        "-".into()
                    } else {
                        format!("{}s old", s.oldest_age_secs)
                    }
                );
                println!(
                    "  retrying: {} files have failed at least once",
                    s.retrying_files
                );
                println!(
                    "  failed:   {} files (reprocess with `s3loader reprocess`)",
                    s.failed_files
                );
            }
        }
        Command::Reprocess {
            prefix,
            dry_run,
            json,
        } => {
            let store = loader::store::open(&config.source.url).await?;
            let r = ops::reprocess(&config, &*store, &prefix, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would move" } else { "moved" };
                for m in &r.moved {
                    println!("{verb} {} -> {}", m.from, m.to);
                }
                for c in &r.conflicts {
                    println!("CONFLICT {} -> {}: {}", c.key, c.target, c.reason);
                }
                for e in &r.errors {
                    eprintln!("error: {e}");
                }
                println!(
                    "{verb} {} file(s) from {} back to {}{}",
                    r.moved.len(),
                    config.source.failed,
                    config.source.incoming,
                    if r.conflicts.is_empty() {
                        String::new()
                    } else {
                        format!("; {} left in place (conflict)", r.conflicts.len())
                    }
                );
            }
            if !r.errors.is_empty() || !r.conflicts.is_empty() {
                anyhow::bail!(
                    "{} file(s) could not be moved, {} conflict(s)",
                    r.errors.len(),
                    r.conflicts.len()
                );
            }
        }
        Command::Tick { json } => {
            let scheduler = scheduler::local(config).await?;
            print_report(&scheduler.tick().await?, json)?;
        }
        Command::Run => {
            let interval = Duration::from_secs(config.tick.interval_secs);
            let scheduler = scheduler::local(config).await?;
            let stop = tokio::sync::watch::channel(false);
            let (stop_tx, mut stop_rx) = stop;
            tokio::spawn(async move {
                shutdown_signal().await;
                eprintln!("stopping after the current tick (Ctrl-C again to quit now)");
                let _ = stop_tx.send(true);
                shutdown_signal().await;
                std::process::exit(130);
            });
            loop {
                match scheduler.tick().await {
                    Ok(r) => tracing::info!(
                        tick = %r.tick_id,
                        backlog = r.backlog.files,
                        loaded = r.loaded,
                        failed = r.failed,
                        retried = r.retried,
                        "tick done"
                    ),
                    Err(e) => {
                        tracing::error!(error = %format!("{:#}", anyhow::Error::from(e)), "tick failed")
                    }
                }
                if *stop_rx.borrow() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop_rx.changed() => break,
                }
            }
        }
        Command::Demo { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM as sent by systemd, ECS and Kubernetes.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn print_report(r: &TickReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        print!("{r}");
    }
    Ok(())
}

async fn run_demo(dir: &Path) -> Result<()> {
    let config = demo::config_in(dir);
    let store = loader::store::open(&config.source.url).await?;
    let (seeded, present) = demo::seed(&config, &*store).await?;
    println!(
        "s3loader demo: bucket {}/bucket, warehouse {}/warehouse.db",
        dir.display(),
        dir.display()
    );
    println!(
        "seeded {seeded} sample file(s) into incoming/{}",
        if present > 0 {
            format!(" ({present} already in the bucket from an earlier run)")
        } else {
            String::new()
        }
    );
    let scheduler = scheduler::local(config.clone()).await?;
    let mut ticks = 0;
    loop {
        let report = scheduler.tick().await?;
        ticks += 1;
        if report.selected == 0 {
            if ticks == 1 {
                println!("incoming/ is empty: nothing to load");
            }
            break;
        }
        print!("{report}");
        // Retryable failures stay in incoming/; stop rather than spin.
        if !report.made_progress() || ticks >= 20 {
            println!("stopping: files left in incoming/ are waiting for a retry");
            break;
        }
    }
    let db = dir.join("warehouse.db");
    let conn = rusqlite::Connection::open(&db)?;
    println!("\nwarehouse {}:", db.display());
    let mut tables =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names: Vec<String> = tables
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for name in names {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
            r.get(0)
        })?;
        println!("  {name:<16} {n} rows");
    }
    let s = ops::status(&config, &*store).await?;
    println!(
        "bucket: {} in incoming/, {} in failed/ (reasons in {}/bucket/errors/)",
        s.backlog.files,
        s.failed_files,
        dir.display()
    );
    println!("run it again: nothing is loaded twice");
    Ok(())
}
