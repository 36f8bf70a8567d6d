//! The embedded default: a local bucket seeded with shipped samples,
//! loaded into SQLite, and a summary of what happened.

use std::path::Path;

use bytes::Bytes;
use loader::config::{Config, DestinationConfig};
use loader::store::{ObjectStore, PutMode};

use crate::error::{Error, Result};

/// The example config, compiled in: what runs when no --config is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../s3loader.example.toml");

/// The shipped sample files, by path relative to `incoming/`: good CSV,
/// JSON Lines, gzip and zstd files, a hostile key name, and bad input (a
/// malformed row, a truncated gzip, an empty file, a file with no route).
pub const SAMPLES: &[(&str, &[u8])] = &[
    (
        "customers/customers.psv",
        include_bytes!("../../samples/incoming/customers/customers.psv"),
    ),
    (
        "events/2026-11-01.jsonl",
        include_bytes!("../../samples/incoming/events/2026-11-01.jsonl"),
    ),
    (
        "events/2026-11-02.jsonl.zst",
        include_bytes!("../../samples/incoming/events/2026-11-02.jsonl.zst"),
    ),
    (
        "misc/README.txt",
        include_bytes!("../../samples/incoming/misc/README.txt"),
    ),
    (
        "orders/2026-11-01.csv",
        include_bytes!("../../samples/incoming/orders/2026-11-01.csv"),
    ),
    (
        "orders/2026-11-02.csv.gz",
        include_bytes!("../../samples/incoming/orders/2026-11-02.csv.gz"),
    ),
    (
        "orders/2026-11-03-malformed.csv",
        include_bytes!("../../samples/incoming/orders/2026-11-03-malformed.csv"),
    ),
    (
        "orders/2026-11-04-empty.csv",
        include_bytes!("../../samples/incoming/orders/2026-11-04-empty.csv"),
    ),
    (
        "orders/2026-11-05-truncated.csv.gz",
        include_bytes!("../../samples/incoming/orders/2026-11-05-truncated.csv.gz"),
    ),
    (
        "orders/weird name 'quoted' + 100% ünïcødé!.csv",
        include_bytes!("../../samples/incoming/orders/weird name 'quoted' + 100% ünïcødé!.csv"),
    ),
];

/// The default config with its paths moved under `dir`.
pub fn config_in(dir: &Path) -> Config {
    let mut config = Config::from_toml(DEFAULT_CONFIG).expect("the embedded config is valid");
    config.source.url = format!("dir:{}", dir.join("bucket").display());
    for dest in config.destinations.values_mut() {
        if let DestinationConfig::Sqlite { path } = dest {
            *path = dir.join("warehouse.db").display().to_string();
        }
    }
    config
}

/// Puts each sample into `incoming/` unless it is already in the bucket
/// (in any of incoming/, processed/ or failed/), so running the demo again
/// seeds nothing new. Returns (seeded, already there).
pub async fn seed(config: &Config, store: &dyn ObjectStore) -> Result<(usize, usize)> {
    let src = &config.source;
    let (mut seeded, mut present) = (0, 0);
    'samples: for (rel, bytes) in SAMPLES {
        let key = src.incoming_key(rel);
        for place in [key.clone(), src.processed_key(&key), src.failed_key(&key)] {
            match store.head(&place).await {
                Ok(_) => {
                    present += 1;
                    continue 'samples;
                }
                Err(loader::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::loader(format!("check sample {rel:?}"))(e)),
            }
        }
        match store
            .put(&key, Bytes::from_static(bytes), PutMode::Create)
            .await
        {
            Ok(_) => seeded += 1,
            Err(loader::Error::Precondition { .. }) => present += 1,
            Err(e) => return Err(Error::loader(format!("seed {key:?}"))(e)),
        }
    }
    Ok((seeded, present))
}

/// What [`run`] reports as it goes.
pub enum Progress<'a> {
    /// The samples are in the bucket: how many were put, how many were
    /// there already.
    Seeded { seeded: usize, present: usize },
    /// One tick's report.
    Tick(&'a crate::report::TickReport),
}

/// What [`run`] did, for the summary.
#[derive(Debug, Clone)]
pub struct DemoRun {
    /// Ticks that found files to work on.
    pub ticks: usize,
    /// The last tick made no progress: what is left waits for a retry.
    pub stopped_waiting: bool,
    /// The warehouse's tables and their row counts, by name.
    pub tables: Vec<(String, i64)>,
    pub status: crate::ops::Status,
}

/// The embedded default end to end under `dir`: seeds the samples, ticks
/// until `incoming/` is drained (or nothing moves, or 20 ticks), and counts
/// the warehouse's rows. Running it again loads nothing twice. `bar`
/// follows the draining, file by file.
#[cfg(feature = "sqlite")]
pub async fn run(
    dir: &Path,
    mut progress: impl FnMut(Progress<'_>),
    bar: &dyn crate::progress::Progress,
) -> Result<DemoRun> {
    let config = config_in(dir);
    let store = loader::store::open(&config.source.url)
        .await
        .map_err(Error::loader("open the demo bucket"))?;
    let (seeded, present) = seed(&config, &*store).await?;
    progress(Progress::Seeded { seeded, present });
    let scheduler = crate::local(config.clone()).await?;
    let (mut ticks, mut stopped_waiting) = (0, false);
    loop {
        let report = scheduler.tick().await?;
        if report.selected == 0 {
            break;
        }
        if ticks == 0 {
            bar.start("draining incoming/", Some(report.backlog.files));
        }
        bar.advance(report.loaded + report.already_loaded + report.failed);
        ticks += 1;
        progress(Progress::Tick(&report));
        // Retryable failures stay in incoming/; stop rather than spin.
        if !report.made_progress() || ticks >= 20 {
            stopped_waiting = true;
            break;
        }
    }
    Ok(DemoRun {
        ticks,
        stopped_waiting,
        tables: warehouse_tables(&dir.join("warehouse.db"))?,
        status: {
            bar.finish();
            crate::ops::status(&config, &*store, &crate::progress::Quiet).await?
        },
    })
}

/// Every table of a SQLite file with its row count, by name.
#[cfg(feature = "sqlite")]
fn warehouse_tables(db: &Path) -> Result<Vec<(String, i64)>> {
    let failed = |e: rusqlite::Error| Error::Warehouse {
        path: db.display().to_string(),
        source: Box::new(e),
    };
    let conn = rusqlite::Connection::open(db).map_err(failed)?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(failed)?;
    names
        .into_iter()
        .map(|name| {
            let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
            let n = conn.query_row(&sql, [], |r| r.get(0)).map_err(failed)?;
            Ok((name, n))
        })
        .collect()
}
