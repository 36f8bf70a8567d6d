//! One function per command: load the config, do the work through the
//! library, print the result with [`super::print`].

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use loader::config::Config;
use scheduler::{demo, ops};

use super::bar::Bar;
use super::print;

/// The config file, or the embedded default without one.
fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::from_path(p)?,
        None => Config::from_toml(demo::DEFAULT_CONFIG).context("the embedded config")?,
    })
}

/// Writes the config with its defaults filled in.
pub fn check(config: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    print!("{}", print::check(&config)?);
    Ok(())
}

pub fn cost(a: &super::CostArgs) -> Result<()> {
    if !(a.files_per_day > 0.0 && a.avg_bytes >= 0.0) {
        anyhow::bail!("--files-per-day must be above 0 and --avg-bytes 0 or more");
    }
    let workload = scheduler::cost::Workload {
        files_per_day: a.files_per_day,
        avg_bytes: a.avg_bytes,
        loader_ms_per_file: a.loader_ms_per_file,
        loader_memory_mb: a.loader_memory_mb,
        batch_files: a.batch_files,
        scheduler_ms_per_tick: a.scheduler_ms_per_tick,
        scheduler_memory_mb: 256.0,
        ticks_per_day: a.ticks_per_day,
        metrics: scheduler::metrics::TickMetrics::every().named().len() as f64,
        alarms: scheduler::cost::TEMPLATE_ALARMS,
        // A file's line in the tick report, and the report's own fields.
        log_bytes_per_file: 300.0,
        log_bytes_per_tick: 2000.0,
        kms: a.kms,
    };
    let e = scheduler::cost::estimate(&workload, &scheduler::cost::Prices::LIST);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{e}");
    }
    Ok(())
}

pub async fn status(config: Option<&Path>, json: bool) -> Result<()> {
    let config = load_config(config)?;
    let store = loader::store::open(&config.source.url).await?;
    let status = ops::status(&config, &*store, &Bar::on_stderr()).await?;
    print!("{}", print::status(&status, json)?);
    Ok(())
}

/// Fails (exit 1) when any file could not move back or hit a conflict.
pub async fn reprocess(
    config: Option<&Path>,
    prefix: &str,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let config = load_config(config)?;
    let store = loader::store::open(&config.source.url).await?;
    let r = ops::reprocess(&config, &*store, prefix, dry_run, &Bar::on_stderr()).await?;
    let (out, err) = print::reprocess(&r, &config, json)?;
    print!("{out}");
    eprint!("{err}");
    moved_all(&r)
}

/// Fails when any file could not move or hit a conflict.
fn moved_all(r: &ops::Reprocessed) -> Result<()> {
    if !r.errors.is_empty() || !r.conflicts.is_empty() {
        anyhow::bail!(
            "{} file(s) could not be moved, {} conflict(s)",
            r.errors.len(),
            r.conflicts.len()
        );
    }
    Ok(())
}

/// What `replay` was asked.
pub struct ReplayArgs {
    pub prefix: String,
    pub since: Option<String>,
    pub reload: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// Without --reload, lists what would move and fails (exit 1); with it,
/// fails when any file could not move back or hit a conflict.
pub async fn replay(config: Option<&Path>, a: ReplayArgs) -> Result<()> {
    let config = load_config(config)?;
    let since = a
        .since
        .as_deref()
        .map(|s| ops::parse_time(s, chrono::Utc::now()))
        .transpose()?;
    let store = loader::store::open(&config.source.url).await?;
    let dry_run = a.dry_run || !a.reload;
    let r = ops::replay(
        &config,
        &*store,
        &a.prefix,
        since,
        dry_run,
        &Bar::on_stderr(),
    )
    .await?;
    let (out, err) = print::replay(&r, &config, a.json)?;
    print!("{out}");
    eprint!("{err}");
    if !a.reload && !a.dry_run {
        anyhow::bail!(
            "replay loads these {} file(s) again, appending their rows a second time: pass --reload to confirm (or --dry-run to only list them)",
            r.moved.len()
        );
    }
    moved_all(&r)
}

/// Fails (exit 1) when a destination's ledger could not be read.
pub async fn history(
    config: Option<&Path>,
    since: Option<&str>,
    key: &str,
    limit: usize,
    json: bool,
) -> Result<()> {
    let config = load_config(config)?;
    let since = since
        .map(|s| ops::parse_time(s, chrono::Utc::now()))
        .transpose()?;
    let ledgers = ops::history(&config, since, key, limit).await?;
    print!("{}", print::history(&ledgers, json)?);
    let failed: Vec<String> = ledgers
        .iter()
        .filter_map(|l| Some(format!("{}: {}", l.destination, l.error.as_ref()?)))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("could not read the ledger of {}", failed.join("; "));
    }
    Ok(())
}

pub async fn tick(config: Option<&Path>, json: bool) -> Result<()> {
    let scheduler = scheduler::local(load_config(config)?).await?;
    print!("{}", print::tick(&scheduler.tick().await?, json)?);
    Ok(())
}

/// Polls the queue until Ctrl-C (or, with `until_empty`, an empty poll),
/// loading what each batch of messages notifies.
pub async fn listen(
    config: Option<&Path>,
    queue_url: &str,
    until_empty: bool,
    wait: Duration,
    json: bool,
) -> Result<()> {
    let config = load_config(config)?;
    let deadline = Duration::from_secs(config.tick.deadline_secs);
    let scheduler = scheduler::local(config).await?;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let listener = scheduler::listen::Listener::new(aws_sdk_sqs::Client::new(&shared), queue_url);
    eprintln!("listening on {queue_url} (Ctrl-C to stop)");
    // As in `run`: a batch being loaded finishes before we stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("stopping after the current poll (Ctrl-C again to quit now)");
        let _ = stop_tx.send(true);
        shutdown_signal().await;
        std::process::exit(130);
    });
    while !*stop_rx.borrow() {
        let polled = listener
            .poll(&scheduler, wait, None, std::time::Instant::now() + deadline)
            .await?;
        print!("{}", print::polled(&polled, json)?);
        if until_empty && polled.received == 0 {
            break;
        }
    }
    Ok(())
}

/// A tick every `tick.interval_secs` until Ctrl-C or SIGTERM: the current
/// tick finishes first; a second signal exits at once.
pub async fn run(config: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    let interval = Duration::from_secs(config.tick.interval_secs);
    let scheduler = scheduler::local(config).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
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
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop_rx.changed() => return Ok(()),
        }
    }
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

/// What `s3loader forecasts` was asked, as typed.
#[cfg_attr(not(feature = "netcdf"), allow(dead_code))]
pub struct ForecastQuery {
    pub time: String,
    pub period: Option<String>,
    pub variable: Option<String>,
    pub table: Option<String>,
}

#[cfg(feature = "netcdf")]
pub async fn forecasts(config: Option<&Path>, q: ForecastQuery, json: bool) -> Result<()> {
    use scheduler::forecasts as f;
    let config = load_config(config)?;
    let time = f::parse_time(&q.time)?;
    let period = q.period.as_deref().map(f::parse_period).transpose()?;
    let table = f::table(&config, q.table.as_deref())?;
    let hits = f::lookup(&table, &time, period, q.variable.as_deref()).await?;
    print!("{}", print::forecasts(&hits, &time, &table, json)?);
    Ok(())
}

#[cfg(not(feature = "netcdf"))]
pub async fn forecasts(_: Option<&Path>, _: ForecastQuery, _: bool) -> Result<()> {
    anyhow::bail!("this s3loader was built without the netcdf feature: no forecast index")
}

/// The embedded default end to end, printing each tick as it goes.
#[cfg(feature = "sqlite")]
pub async fn demo(dir: &Path) -> Result<()> {
    let bar = Bar::on_stderr();
    let run = demo::run(
        dir,
        |p| bar.suspend(|| print!("{}", print::demo_progress(dir, &p))),
        &bar,
    )
    .await?;
    print!("{}", print::demo_summary(dir, &run));
    Ok(())
}

#[cfg(not(feature = "sqlite"))]
pub async fn demo(_: &Path) -> Result<()> {
    anyhow::bail!("this s3loader was built without the sqlite feature the demo's warehouse needs")
}
