//! Operator commands: `status`, `reprocess`, `replay` and `history`.

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
    let targets = |m: &loader::store::ObjectMeta| src.reprocess_key(&m.key);
    move_all(config, store, &from, None, dry_run, progress, &targets).await
}

/// Moves `processed/<prefix>...` (archived at or after `since`) back to
/// `incoming/` for a deliberate reload, each under a replay name
/// (`loader::layout`): a new key, so the ledger loads it again and its new
/// ledger row records the replay. Never replaces anything, as
/// [`reprocess`]. The rows are appended again: delete the old ones first
/// to have them replaced.
pub async fn replay(
    config: &Config,
    store: &dyn ObjectStore,
    prefix: &str,
    since: Option<DateTime<Utc>>,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Reprocessed> {
    let src = &config.source;
    let from = format!("{}{}", src.processed, prefix.trim_start_matches('/'));
    let now = Utc::now();
    let targets = |m: &loader::store::ObjectMeta| src.replay_key(&m.key, now);
    move_all(config, store, &from, since, dry_run, progress, &targets).await
}

/// Moves everything under `from` (last modified at or after `since`) to
/// where `target` says, never replacing anything.
async fn move_all(
    config: &Config,
    store: &dyn ObjectStore,
    from: &str,
    since: Option<DateTime<Utc>>,
    dry_run: bool,
    progress: &dyn Progress,
    target: &(dyn Fn(&loader::store::ObjectMeta) -> String + Sync),
) -> Result<Reprocessed> {
    let src = &config.source;
    progress.start(&format!("listing {from}"), None);
    let objects: Vec<_> = store
        .list(from)
        .inspect_ok(|page| progress.advance(page.len() as u64))
        .try_concat()
        .await
        .map_err(Error::loader(format!("list {from:?}")))?;
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|m| since.is_none_or(|t| m.last_modified >= t))
        .collect();
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
                to: target(&m),
                from: m.key,
            })
            .collect();
        return Ok(out);
    }
    let results: Vec<_> = stream::iter(objects)
        .map(|meta| {
            let to = target(&meta);
            move_back(store, meta, to)
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

/// Moves `meta` to `to`, never replacing anything: the copy is conditional
/// on `to` not existing; a taken `to` is a conflict and the file stays.
async fn move_back(
    store: &dyn ObjectStore,
    meta: loader::store::ObjectMeta,
    to: String,
) -> std::result::Result<Moved, std::result::Result<Conflict, String>> {
    let conflict = |to: String| {
        Err(Ok(Conflict {
            key: meta.key.clone(),
            target: to,
            reason: "the target already exists (a newer file?); the original stays".into(),
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
}

/// What `history` found in one destination's ledger.
#[derive(Debug, Serialize)]
pub struct LedgerHistory {
    pub destination: String,
    /// `None`: this destination keeps no ledger (the forecast index).
    pub entries: Option<Vec<HistoryEntry>>,
    /// Why the ledger could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A ledger row, and what the layout says about its key.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub entry: loader::dest::LedgerEntry,
    /// For a replayed file: the key it was first loaded under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

/// Every ledger's rows loaded at or after `since` whose key starts with
/// `key_prefix` (relative to `incoming/`, or a whole key), at most `limit`
/// per destination. A destination whose ledger cannot be read is
/// reported, not fatal: the others still answer.
pub async fn history(
    config: &Config,
    since: Option<DateTime<Utc>>,
    key_prefix: &str,
    limit: usize,
) -> Result<Vec<LedgerHistory>> {
    let src = &config.source;
    let prefix = if key_prefix.starts_with(&src.incoming) {
        key_prefix.to_owned()
    } else {
        format!("{}{}", src.incoming, key_prefix.trim_start_matches('/'))
    };
    let query = loader::dest::HistoryQuery {
        since,
        key_prefix: prefix,
        limit,
    };
    let mut out = Vec::new();
    for (name, c) in &config.destinations {
        let dest = loader::dest::build(name, c, src, None)
            .map_err(Error::loader(format!("destination {name}")))?;
        let (entries, error) = match dest.history(&query).await {
            Ok(entries) => (
                entries.map(|es| {
                    es.into_iter()
                        .map(|entry| HistoryEntry {
                            replay_of: loader::layout::replay_of(&entry.object_key).map(|(k, _)| k),
                            entry,
                        })
                        .collect()
                }),
                None,
            ),
            Err(e) => (None, Some(chain(&e))),
        };
        out.push(LedgerHistory {
            destination: name.clone(),
            entries,
            error,
        });
    }
    Ok(out)
}

/// A time as users type it: RFC 3339 (`2026-11-24T03:00:00Z`), a date and
/// minutes (`2026-11-24T03:00Z`), a date (`2026-11-24`, midnight UTC), or
/// an age before `now` (`90m`, `6h`, `7d`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let t = text.trim();
    let bad = || {
        Error::Usage(format!(
            "{text:?} is not a time: use 2026-11-24T03:00:00Z, 2026-11-24T03:00Z, 2026-11-24, or an age such as 90m, 6h, 7d"
        ))
    };
    if let Some((n, unit)) = t
        .char_indices()
        .last()
        .and_then(|(i, c)| t[..i].parse::<i64>().ok().map(|n| (n, c)))
    {
        let age = match unit {
            'm' => chrono::Duration::minutes(n),
            'h' => chrono::Duration::hours(n),
            'd' => chrono::Duration::days(n),
            _ => return Err(bad()),
        };
        return Ok(now - age);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(t) {
        return Ok(t.to_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%MZ") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_users_type_them() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .to_utc();
        let at = |s: &str| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2026-11-24T03:00:00Z"), "2026-11-24T03:00:00+00:00");
        assert_eq!(at("2026-11-24T05:00:00+02:00"), "2026-11-24T03:00:00+00:00");
        assert_eq!(at("2026-11-24T03:00Z"), "2026-11-24T03:00:00+00:00");
        assert_eq!(at("2026-11-23"), "2026-11-23T00:00:00+00:00");
        assert_eq!(at("90m"), "2026-11-24T10:30:00+00:00");
        assert_eq!(at("6h"), "2026-11-24T06:00:00+00:00");
        assert_eq!(at("7d"), "2026-11-17T12:00:00+00:00");
        for bad in ["yesterday", "5w", "", "2026-13-01"] {
            let e = parse_time(bad, now).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }
}
