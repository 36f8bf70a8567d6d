//! Operator commands: `status` and `reprocess`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use loader::config::Config;
use loader::error::chain;
use loader::store::ObjectStore;
use serde::Serialize;

use crate::attempts::Attempts;
use crate::error::{Error, Result};
use crate::scan::{scan, Backlog};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub store: String,
    pub backlog: Backlog,
    pub oldest_age_secs: u64,
    pub failed_files: u64,
    /// Files in `incoming/` that have failed at least once and wait for
    /// another attempt.
    pub retrying_files: usize,
    pub checked_at: DateTime<Utc>,
}

pub async fn status(config: &Config, store: &dyn ObjectStore) -> Result<Status> {
    let src = &config.source;
    // No deadline: an operator asked for the whole count.
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    let (backlog, _) = scan(store, &src.incoming, 0, 0, far).await?;
    let (failed, _) = scan(store, &src.failed, 0, 0, far).await?;
    let attempts = Attempts::load(store, &format!("{}attempts.json", src.state)).await?;
    let now = Utc::now();
    Ok(Status {
        store: store.name().to_owned(),
        oldest_age_secs: backlog.oldest_age_secs(now),
        backlog,
        failed_files: failed.files,
        retrying_files: attempts.len(),
        checked_at: now,
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reprocessed {
    pub moved: Vec<String>,
    pub errors: Vec<String>,
    pub dry_run: bool,
}

/// Moves `failed/<prefix>...` back to `incoming/`, same relative paths.
/// Error reports stay in `errors/` as history.
pub async fn reprocess(
    config: &Config,
    store: &dyn ObjectStore,
    prefix: &str,
    dry_run: bool,
) -> Result<Reprocessed> {
    let src = &config.source;
    let from = format!("{}{}", src.failed, prefix.trim_start_matches('/'));
    let objects: Vec<_> = store
        .list(&from)
        .try_concat()
        .await
        .map_err(Error::loader(format!("list {from:?}")))?;
    let mut out = Reprocessed {
        dry_run,
        ..Reprocessed::default()
    };
    if dry_run {
        out.moved = objects.into_iter().map(|m| m.key).collect();
        return Ok(out);
    }
    let results: Vec<_> = stream::iter(objects)
        .map(|meta| async move {
            let rel = meta.key.strip_prefix(&src.failed).unwrap_or(&meta.key);
            let to = format!("{}{rel}", src.incoming);
            store
                .move_object(&meta, &to)
                .await
                .map(|()| meta.key.clone())
                .map_err(|e| format!("{}: {}", meta.key, chain(&e)))
        })
        .buffer_unordered(config.tick.move_concurrency)
        .collect()
        .await;
    for r in results {
        match r {
            Ok(k) => out.moved.push(k),
            Err(e) => out.errors.push(e),
        }
    }
    out.moved.sort();
    Ok(out)
}
