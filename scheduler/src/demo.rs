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
