//! One tick: lease, list, select, route, batch, dispatch, move, metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use fanout::Fanout;
use futures::{stream, StreamExt};
use loader::config::{Config, Router};
use loader::contract::{Batch, BatchOutcome, Outcome};
use loader::error::chain;
use loader::store::{ObjectMeta, ObjectStore, PutMode};
use serde::Serialize;

use crate::attempts::Attempts;
use crate::error::{Error, Result};
use crate::lease::{self, Acquired};
use crate::metrics::{MetricsSink, TickMetrics};
use crate::plan::plan;
use crate::report::{FileLine, FileResult, LeaseStatus, TickReport};
use crate::scan::scan;

/// Runs ticks against one bucket.
pub struct Scheduler {
    config: Config,
    router: Router,
    store: Arc<dyn ObjectStore>,
    fanout: Arc<dyn Fanout>,
    metrics: Arc<dyn MetricsSink>,
    owner: String,
}

/// What the tick decided for a file whose dispatch is over.
enum Disposition {
    /// Loaded now or before: to `processed/`.
    Done { rows: Option<u64> },
    /// To `failed/`, with a report.
    Fail {
        reason: String,
        attempts: u32,
        batch: Option<(String, String, String)>,
    },
    /// Stays in `incoming/`.
    Retry { reason: String, attempts: u32 },
}

/// `errors/<path>.json`.
#[derive(Serialize)]
struct ErrorReport<'a> {
    key: &'a str,
    failed_key: &'a str,
    etag: &'a str,
    size: u64,
    reason: &'a str,
    attempts: u32,
    batch_id: Option<&'a str>,
    destination: Option<&'a str>,
    table: Option<&'a str>,
    tick_id: &'a str,
    time: chrono::DateTime<Utc>,
}

impl Scheduler {
    pub fn new(
        config: Config,
        store: Arc<dyn ObjectStore>,
        fanout: Arc<dyn Fanout>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Result<Self> {
        let router = Router::new(&config).map_err(Error::loader("routes"))?;
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "s3loader".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Self {
            config,
            router,
            store,
            fanout,
            metrics,
            owner,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn state_key(&self, name: &str) -> String {
        format!("{}{name}", self.config.source.state)
    }

    /// Runs one tick with the configured deadline.
    pub async fn tick(&self) -> Result<TickReport> {
        self.tick_until(Instant::now() + Duration::from_secs(self.config.tick.deadline_secs))
            .await
    }

    /// Runs one tick that dispatches no new batch after `deadline` (in
    /// Lambda: the function's remaining time, less a margin for moves).
    pub async fn tick_until(&self, deadline: Instant) -> Result<TickReport> {
        let started = Instant::now();
        let now = Utc::now();
        let tick_id = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut report = TickReport::new(&tick_id, &self.config.metrics.pipeline, now);
        let ttl = chrono::Duration::seconds(self.config.tick.lease_ttl_secs as i64);
        let lease = match lease::acquire(&*self.store, &self.state_key("lease"), &self.owner, ttl)
            .await?
        {
            Acquired::Yes(lease) => lease,
            Acquired::HeldBy { owner, expires_at } => {
                report.lease = LeaseStatus::HeldBy { owner, expires_at };
                report.duration_ms = started.elapsed().as_millis() as u64;
                tracing::info!(target: "s3loader::report", "{}", serde_json::to_string(&report).unwrap_or_default());
                return Ok(report);
            }
        };
        let result = self.run(&mut report, deadline).await;
        lease::release(&*self.store, &lease).await;
        result?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.publish(&report, now).await;
        tracing::info!(target: "s3loader::report", "{}", serde_json::to_string(&report).unwrap_or_default());
        Ok(report)
    }

    async fn run(&self, report: &mut TickReport, deadline: Instant) -> Result<()> {
        let src = &self.config.source;
        let tick = &self.config.tick;
        let phase = Instant::now();
        let (backlog, selected) = scan(
            &*self.store,
            &src.incoming,
            tick.max_files,
            tick.max_bytes,
            deadline,
        )
        .await?;
        report.list_ms = phase.elapsed().as_millis() as u64;
        report.backlog = backlog;
        report.selected = selected.len() as u64;
        if selected.is_empty() {
            return Ok(());
        }
        let mut attempts = Attempts::load(&*self.store, &self.state_key("attempts.json")).await?;
        let by_key: HashMap<String, ObjectMeta> = selected
            .iter()
            .map(|m| (m.key.clone(), m.clone()))
            .collect();
        let plan = plan(selected, &self.router, tick, &report.tick_id);
        report.batches = plan.batches.len() as u64;

        let decided: Vec<(ObjectMeta, Disposition)> = plan
            .unrouted
            .into_iter()
            .map(|m| {
                let reason = format!(
                    "no route: no [[route]] pattern matches {:?}",
                    m.key.strip_prefix(&src.incoming).unwrap_or(&m.key)
                );
                let attempts = attempts.get(&m.key, &m.etag) + 1;
                (
                    m,
                    Disposition::Fail {
                        reason,
                        attempts,
                        batch: None,
                    },
                )
            })
            .collect();

        // Dispatch at most C batches at a time; once the deadline passes no
        // new batch starts, and the rest wait for the next tick. Each
        // batch's files are moved as soon as it returns, while later
        // batches still load.
        let batches = plan.batches;
        let mut dispatched = 0usize;
        let tick_id = report.tick_id.clone();
        let phase = Instant::now();
        let mut load_ms = 0;
        let mut lines: Vec<FileLine> = {
            let loaded = stream::iter(batches.iter().cloned())
                .take_while(|_| {
                    let go = Instant::now() < deadline;
                    dispatched += usize::from(go);
                    futures::future::ready(go)
                })
                .map(|batch| async move {
                    let outcome = self.fanout.dispatch(batch.clone()).await;
                    let outcome = batch.reconcile(outcome);
                    (batch, outcome)
                })
                .buffer_unordered(tick.concurrency)
                .flat_map(|(batch, outcome)| {
                    load_ms = phase.elapsed().as_millis() as u64;
                    stream::iter(self.decide(&batch, outcome, &by_key, &mut attempts, report))
                });
            stream::iter(decided)
                .chain(loaded)
                .map(|(meta, d)| self.settle(meta, d, &tick_id))
                .buffer_unordered(tick.move_concurrency)
                .collect()
                .await
        };
        report.load_ms = load_ms;
        report.move_ms = (phase.elapsed().as_millis() as u64).saturating_sub(load_ms);
        for batch in &batches[dispatched..] {
            for f in &batch.files {
                lines.push(FileLine {
                    key: f.key.clone(),
                    result: FileResult::Deferred,
                    rows: None,
                    attempts: None,
                    reason: None,
                });
            }
        }
        for line in &lines {
            match line.result {
                FileResult::Loaded | FileResult::AlreadyLoaded => attempts.forget(&line.key),
                FileResult::Failed => {
                    report.failed += 1;
                    attempts.forget(&line.key);
                }
                FileResult::Retry => report.retried += 1,
                FileResult::Deferred => report.deferred += 1,
                FileResult::MoveFailed => report.move_errors += 1,
            }
        }
        report.files = lines;
        report.files.sort_by(|a, b| a.key.cmp(&b.key));
        attempts.save(&*self.store).await
    }

    /// Turns a batch's outcomes into what to do with each file, counting
    /// loads and attempts.
    fn decide(
        &self,
        batch: &Batch,
        outcome: BatchOutcome,
        by_key: &HashMap<String, ObjectMeta>,
        attempts: &mut Attempts,
        report: &mut TickReport,
    ) -> Vec<(ObjectMeta, Disposition)> {
        let origin = || {
            Some((
                batch.id.clone(),
                batch.destination.clone(),
                batch.table.clone(),
            ))
        };
        outcome
            .files
            .into_iter()
            .map(|f| {
                let meta = by_key[&f.key].clone();
                let d = match f.outcome {
                    Outcome::Loaded { rows, bytes } => {
                        report.loaded += 1;
                        report.rows += rows;
                        report.bytes += bytes;
                        Disposition::Done { rows: Some(rows) }
                    }
                    Outcome::AlreadyLoaded => {
                        report.already_loaded += 1;
                        Disposition::Done { rows: None }
                    }
                    Outcome::Failed {
                        retryable: true,
                        reason,
                    } => {
                        let n = attempts.bump(&meta.key, &meta.etag, &reason);
                        if n >= self.config.tick.max_attempts {
                            Disposition::Fail {
                                reason: format!("gave up after {n} attempts; last error: {reason}"),
                                attempts: n,
                                batch: origin(),
                            }
                        } else {
                            Disposition::Retry {
                                reason,
                                attempts: n,
                            }
                        }
                    }
                    Outcome::Failed {
                        retryable: false,
                        reason,
                    } => Disposition::Fail {
                        reason,
                        attempts: attempts.get(&meta.key, &meta.etag) + 1,
                        batch: origin(),
                    },
                };
                (meta, d)
            })
            .collect()
    }

    /// Carries out one file's disposition. Never fails: a move that does not
    /// complete leaves the file in `incoming/`, which is always safe.
    async fn settle(&self, meta: ObjectMeta, d: Disposition, tick_id: &str) -> FileLine {
        let src = &self.config.source;
        let rel = meta
            .key
            .strip_prefix(&src.incoming)
            .unwrap_or(&meta.key)
            .to_owned();
        let line = |result, rows, attempts, reason| FileLine {
            key: meta.key.clone(),
            result,
            rows,
            attempts,
            reason,
        };
        match d {
            Disposition::Retry { reason, attempts } => {
                line(FileResult::Retry, None, Some(attempts), Some(reason))
            }
            Disposition::Done { rows } => {
                let result = if rows.is_some() {
                    FileResult::Loaded
                } else {
                    FileResult::AlreadyLoaded
                };
                match self
                    .store
                    .move_object(&meta, &format!("{}{rel}", src.processed))
                    .await
                {
                    Ok(()) => line(result, rows, None, None),
                    Err(e) => {
                        let reason = format!("move to {} failed: {}", src.processed, chain(&e));
                        tracing::warn!(key = %meta.key, error = %reason, "move failed; the ledger will finish it next tick");
                        line(FileResult::MoveFailed, rows, None, Some(reason))
                    }
                }
            }
            Disposition::Fail {
                reason,
                attempts,
                batch,
            } => {
                let failed_key = format!("{}{rel}", src.failed);
                let report = ErrorReport {
                    key: &meta.key,
                    failed_key: &failed_key,
                    etag: &meta.etag,
                    size: meta.size,
                    reason: &reason,
                    attempts,
                    batch_id: batch.as_ref().map(|b| b.0.as_str()),
                    destination: batch.as_ref().map(|b| b.1.as_str()),
                    table: batch.as_ref().map(|b| b.2.as_str()),
                    tick_id,
                    time: Utc::now(),
                };
                let body =
                    Bytes::from(serde_json::to_vec_pretty(&report).expect("report serialises"));
                let report_key = format!("{}{rel}.json", src.errors);
                // The report first: a file in failed/ always has its reason.
                let moved = match self.store.put(&report_key, body, PutMode::Overwrite).await {
                    Ok(_) => self.store.move_object(&meta, &failed_key).await,
                    Err(e) => Err(e),
                };
                match moved {
                    Ok(()) => {
                        tracing::warn!(key = %meta.key, %reason, "file failed; moved to {}", src.failed);
                        line(FileResult::Failed, None, Some(attempts), Some(reason))
                    }
                    Err(e) => {
                        let why = format!(
                            "{reason}; and moving it to {} failed: {}",
                            src.failed,
                            chain(&e)
                        );
                        tracing::warn!(key = %meta.key, error = %why, "could not move a failed file; it stays in incoming/");
                        line(FileResult::MoveFailed, None, Some(attempts), Some(why))
                    }
                }
            }
        }
    }

    async fn publish(&self, report: &TickReport, now: chrono::DateTime<Utc>) {
        let metrics = TickMetrics {
            backlog_files: report.backlog.files,
            backlog_bytes: report.backlog.bytes,
            oldest_file_age_seconds: report.backlog.oldest_age_secs(now),
            files_loaded: report.loaded,
            files_failed: report.failed,
            files_retried: report.retried,
            rows_loaded: report.rows,
            bytes_loaded: report.bytes,
            tick_duration_ms: report.duration_ms,
        };
        let m = &self.config.metrics;
        if let Err(e) = self
            .metrics
            .publish(&m.namespace, &m.pipeline, &metrics)
            .await
        {
            // Metrics must not stop loading; the missing data alarms instead.
            tracing::error!(error = %e, "publishing metrics failed");
        }
    }
}
