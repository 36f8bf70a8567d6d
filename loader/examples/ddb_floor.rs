//! moto's floor for the netCDF benchmark (`bench/netcdf.sh`): the same
//! BatchWriteItem calls a tick makes for COPIES copies of the Met Office
//! samples (the items built from the files first, untimed: no S3, no
//! netCDF parsing, no moves), through the same `ForecastIndex::write`, one
//! file's items at a time in each of CONCURRENCY streams, as the tick's
//! concurrent batches do. Prints one
//! `floor concurrency=C files=N items=I secs=S` line per concurrency.
//!
//!     cargo run --release --example ddb_floor -- TABLE COPIES 4 16
//!
//! Endpoint and credentials come from the standard AWS settings
//! (`AWS_ENDPOINT_URL_DYNAMODB` for moto).

use std::time::Instant;

use futures::{stream, StreamExt, TryStreamExt};
use loader::contract::FileTask;
use loader::forecast_index::{self, ForecastIndex};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [table, copies, levels @ ..] = args.as_slice() else {
        return Err("usage: ddb_floor TABLE COPIES CONCURRENCY...".into());
    };
    let copies: usize = copies.parse()?;
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/metoffice");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&samples)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".nc") {
            continue;
        }
        let size = std::fs::metadata(&path)?.len();
        // (The land mask has no forecast times: the tick fails it, and
        // bench/netcdf.sh leaves it out.)
        if let Ok(f) = loader::format::netcdf::read(&path, &name, 1_000_000) {
            files.push((name, size, f));
        }
    }
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let index = ForecastIndex::new(forecast_index::client(&shared), table);
    let mut work = Vec::new();
    for c in 0..copies {
        for (name, size, f) in &files {
            let key = format!("incoming/metoffice/{c:04}/{name}");
            let processed = format!("processed/metoffice/{c:04}/{name}");
            let task = FileTask {
                key,
                etag: "\"0\"".into(),
                size: *size,
                spec: Default::default(),
                processed_key: processed.clone(),
                rejected_key: String::new(),
            };
            work.push(forecast_index::items(
                f,
                &processed,
                &format!("s3://bench/{processed}"),
                &task,
            ));
        }
    }
    let n_items: usize = work.iter().map(Vec::len).sum();
    for level in levels {
        let c: usize = level.parse()?;
        let start = Instant::now();
        stream::iter(work.clone())
            .map(|items| index.write(items))
            .buffer_unordered(c)
            .try_collect::<Vec<()>>()
            .await?;
        println!(
            "floor concurrency={c} files={} items={n_items} secs={:.3}",
            work.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
