//! The event-driven fast path: load the objects S3 notified at once,
//! through the same routes, batches, ledger and moves as a tick.
//!
//! It is an optimisation beside the tick, never a replacement, so it is
//! built to be safe to lose, repeat or overlap:
//! - it takes no lease and writes no scheduler state: the ledger (one row
//!   per file version, in the load's own transaction) makes a file that a
//!   tick and a notification both load commit once, and the moves are
//!   conditional on the version seen;
//! - it counts no attempt and splits no batch: anything that may succeed
//!   later stays in `incoming/` for the tick, which owns the counts, and a
//!   file the tick is already retrying is left to it;
//! - a notification that never comes is the tick's to load a minute later.
//!
//! What it reports per message decides the partial batch response: a
//! message whose files all reached a final state (loaded, already loaded,
//! failed, gone) is acknowledged; one with a file left to retry is
//! returned to the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt};
use loader::error::chain;
use loader::store::ObjectMeta;

use crate::attempts::Attempts;
use crate::error::Result;
use crate::events::Notified;
use crate::report::{FileLine, FileResult, LeaseStatus, TickReport};
use crate::tick::{Mode, Scheduler};

/// What one event-driven run did.
#[derive(Debug)]
pub struct EventRun {
    pub report: TickReport,
    /// The messages to return to the queue.
    pub failed_messages: BTreeSet<String>,
}

impl Scheduler {
    /// Loads the objects `notified` names that are in this source's
    /// bucket under `incoming/`, dispatching no batch after `deadline`.
    /// Fails as a whole only if the attempt counts cannot be read (every
    /// message then returns to the queue).
    pub async fn load_notified(
        &self,
        notified: &[Notified],
        deadline: Instant,
    ) -> Result<EventRun> {
        let started = Instant::now();
        let now = Utc::now();
        let src = &self.config().source;
        let tick_id = format!(
            "{}-ev{}",
            now.format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut report = TickReport::new(&tick_id, &self.config().metrics.pipeline, now);
        report.lease = LeaseStatus::NotTaken;

        // Each key once, with every message that named it and the earliest
        // time it was notified as created.
        let bucket = source_bucket(&src.url);
        let mut wanted: BTreeMap<&str, (Vec<&str>, Option<DateTime<Utc>>)> = BTreeMap::new();
        for n in notified {
            if bucket.is_some_and(|b| b != n.bucket) || !n.key.starts_with(&src.incoming) {
                tracing::info!(bucket = %n.bucket, key = %n.key, message_id = %n.message_id,
                    "notified object is not under this source's incoming/; acknowledged");
                continue;
            }
            let entry = wanted.entry(&n.key).or_default();
            entry.0.push(&n.message_id);
            entry.1 = match (entry.1, n.event_time) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        report.notified = Some(wanted.len() as u64);

        let attempts_key = self.state_key("attempts.json");
        let mut attempts = Attempts::load(&**self.store(), &attempts_key).await?;
        let store = self.store();
        let heads: Vec<(&str, loader::Result<ObjectMeta>)> = stream::iter(wanted.keys().copied())
            .map(|key| async move { (key, store.head(key).await) })
            .buffered(self.config().tick.move_concurrency.max(1))
            .collect()
            .await;
        let mut lines = Vec::new();
        let mut selected = Vec::new();
        let mut created = HashMap::new();
        let line = |key: &str, result, reason: Option<String>| FileLine {
            key: key.to_owned(),
            result,
            rows: None,
            attempts: None,
            reason,
            moved_to: None,
        };
        for (key, head) in heads {
            match head {
                Ok(meta) => {
                    if let Some(a) = attempts.current(&meta.key, &meta.etag) {
                        let why = format!(
                            "the tick is retrying it ({} attempt(s), last: {})",
                            a.attempts, a.last_error
                        );
                        lines.push(line(key, FileResult::Deferred, Some(why)));
                        report.deferred += 1;
                        continue;
                    }
                    // The notification's time is the creation of the
                    // version it named; a later version was created later.
                    let same = wanted[key].1.is_some()
                        && notified.iter().any(|n| {
                            n.key == key
                                && n.etag
                                    .as_deref()
                                    .is_none_or(|e| e == meta.etag.trim_matches('"'))
                        });
                    if let (true, Some(t)) = (same, wanted[key].1) {
                        created.insert(key.to_owned(), t);
                    }
                    selected.push(meta);
                }
                // Moved already: by a tick, or by an earlier delivery of
                // this notification.
                Err(loader::Error::NotFound { .. }) => {
                    lines.push(line(key, FileResult::Gone, None));
                }
                Err(e) => {
                    let why = format!("could not read it: {}", chain(&e));
                    tracing::warn!(%key, error = %why, "notified object unreadable; its message returns");
                    report.destination_errors += 1;
                    report.retried += 1;
                    lines.push(line(key, FileResult::Retry, Some(why)));
                }
            }
        }
        report.selected = selected.len() as u64;
        self.process(
            &mut report,
            &mut attempts,
            selected,
            lines,
            deadline,
            Mode::Notified,
            &created,
        )
        .await;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.publish(&report, now).await;
        report.log();

        let failed_messages = report
            .files
            .iter()
            .filter(|l| match l.result {
                FileResult::Retry => true,
                // Not dispatched before the deadline (the tick's own
                // files carry a reason, and are the tick's business).
                FileResult::Deferred => l.reason.is_none(),
                _ => false,
            })
            .flat_map(|l| {
                wanted
                    .get(l.key.as_str())
                    .map(|w| w.0.clone())
                    .unwrap_or_default()
            })
            .map(str::to_owned)
            .collect();
        Ok(EventRun {
            report,
            failed_messages,
        })
    }
}

/// The bucket of an `s3://` source; `None` for a local directory, whose
/// notifications (from `s3loader listen` in tests) name any bucket.
fn source_bucket(url: &str) -> Option<&str> {
    url.strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
}
