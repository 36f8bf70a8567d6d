//! Operator commands: `status` and `reprocess`.

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use loader::config::Config;
use loader::error::chain;
use loader::store::ObjectStore;
use serde::Serialize;

use crate::attempts::Attempts;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::scan::{count, Backlog};

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

/// Counts `incoming/` and `failed/` whole, reporting each listed page.
pub async fn status(
    config: &Config,
    store: &dyn ObjectStore,
    progress: &dyn Progress,
) -> Result<Status> {
    let src = &config.source;
    let backlog = count(store, &src.incoming, progress).await?;
    let failed = count(store, &src.failed, progress).await?;
    progress.finish();
    let attempts = Attempts::load(store, &src.state_key("attempts.json")).await?;
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

/// One file `reprocess` moved back.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub from: String,
    pub to: String,
}

/// A file `reprocess` left in `failed/` because its place in `incoming/`
/// is taken (a producer sent a new file under that name).
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    pub key: String,
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reprocessed {
    pub moved: Vec<Moved>,
    pub conflicts: Vec<Conflict>,
    pub errors: Vec<String>,
    pub dry_run: bool,
}

/// Moves `failed/<prefix>...` back to `incoming/`, same relative paths
/// (a version tag the layout added is taken off again). Never replaces
/// anything: the copy is conditional on `incoming/<path>` not existing,
/// and a file whose place is taken stays in `failed/` and is reported as a
/// conflict. Error reports stay in `errors/` as history.
pub async fn reprocess(
    config: &Config,
    store: &dyn ObjectStore,
    prefix: &str,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Reprocessed> {
    let src = &config.source;
    let from = format!("{}{}", src.failed, prefix.trim_start_matches('/'));
    progress.start(&format!("listing {from}"), None);
    let objects: Vec<_> = store
        .list(&from)
        .inspect_ok(|page| progress.advance(page.len() as u64))
        .try_concat()
        .await
        .map_err(Error::loader(format!("list {from:?}")))?;
    progress.start(
        &format!("moving back to {}", src.incoming),
        Some(objects.len() as u64),
    );
    let mut out = Reprocessed {
        dry_run,
        ..Reprocessed::default()
    };
    if dry_run {
        progress.finish();
        out.moved = objects
            .into_iter()
            .map(|m| Moved {
                to: src.reprocess_key(&m.key),
                from: m.key,
            })
            .collect();
        return Ok(out);
    }
    let results: Vec<_> = stream::iter(objects)
        .map(|meta| async move {
            let to = src.reprocess_key(&meta.key);
            let conflict = |to: String| {
                Err(Ok(Conflict {
                    key: meta.key.clone(),
                    target: to,
                    reason: "the target already exists (a newer file?); the failed copy stays"
                        .into(),
                }))
            };
            // The conditional copy is the guarantee (S3, SeaweedFS, the
            // local store); this look first also keeps a store that ignores
            // the condition (moto) from overwriting, bar a race.
            match store.head(&to).await {
                Ok(_) => return conflict(to),
                Err(loader::Error::NotFound { .. }) => {}
                Err(e) => return Err(Err(format!("{}: {}", to, chain(&e)))),
            }
            match store.copy_if_absent(&meta, &to).await {
                Ok(()) => {}
                Err(loader::Error::Precondition { .. }) => {
                    // Taken, or the failed copy changed: say which.
                    return match store.head(&to).await {
                        Ok(_) => conflict(to),
                        Err(_) => Err(Err(format!(
                            "{}: it changed since it was listed; not moved",
                            meta.key
                        ))),
                    };
                }
                Err(e) => return Err(Err(format!("{}: {}", meta.key, chain(&e)))),
            }
            store
                .delete(&meta.key, Some(&meta.etag))
                .await
                .map(|()| Moved {
                    from: meta.key.clone(),
                    to,
                })
                .map_err(|e| {
                    Err(format!(
                        "{}: copied back, but deleting it failed: {}",
                        meta.key,
                        chain(&e)
                    ))
                })
        })
        .buffer_unordered(config.tick.move_concurrency)
        .inspect(|_| progress.advance(1))
        .collect()
        .await;
    progress.finish();
    for r in results {
        match r {
            Ok(m) => out.moved.push(m),
            Err(Ok(c)) => out.conflicts.push(c),
            Err(Err(e)) => out.errors.push(e),
        }
    }
    out.moved.sort_by(|a, b| a.from.cmp(&b.from));
    out.conflicts.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
