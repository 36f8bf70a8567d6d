//! One tick: lease, list, select, route, batch, dispatch, move, metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use fanout::Fanout;
use futures::{stream, StreamExt};
use loader::config::{Config, Router};
use loader::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use loader::error::chain;
use loader::store::{archive, place, ObjectMeta, ObjectStore, PutMode};
use serde::Serialize;

use crate::attempts::Attempts;
use crate::error::{Error, Result};
use crate::lease::{self, Acquired};
use crate::metrics::{MetricsSink, TickMetrics};
use crate::plan::plan;
use crate::report::{FileLine, FileResult, Latency, LeaseStatus, TickReport};
use crate::scan::scan_with;

/// Runs ticks against one bucket.
pub struct Scheduler {
    config: Config,
    router: Router,
    store: Arc<dyn ObjectStore>,
    fanout: Arc<dyn Fanout>,
    metrics: Arc<dyn MetricsSink>,
    /// Unique per instance, so a lease naming it was written by us.
    owner: String,
    /// Ticks of this instance now running: with none, a lease naming our
    /// owner is a leftover of ours (a release that failed, or a create
    /// that succeeded but whose answer was lost) and is reclaimed at once,
    /// not waited out for `lease_ttl_secs`.
    running: std::sync::atomic::AtomicUsize,
}

/// Counts a tick in [`Scheduler::running`] while it lives.
struct Running<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Running<'a> {
    /// Enters; says whether this is the only tick of the instance.
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> (Self, bool) {
        let before = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (Self(count), before == 0)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Which batch a file's outcome came from, for its report.
#[derive(Debug, Clone)]
struct Origin {
    batch_id: String,
    destination: String,
    table: String,
}

/// What the tick decided for a file whose dispatch is over.
enum Disposition {
    /// Loaded now or before: to `processed/`.
    Done { rows: Option<u64>, rejected: u64 },
    /// To `failed/`, with a report.
    Fail {
        reason: String,
        attempts: u32,
        origin: Option<Origin>,
    },
    /// Its attempts are used up, but its last outcome is uncertain (a lost
    /// answer, a dead worker): ask the ledger before failing it.
    Verify {
        task: Box<FileTask>,
        reason: String,
        attempts: u32,
        origin: Origin,
    },
    /// Stays in `incoming/`. `counted` says whether the attempt counted.
    Retry {
        reason: String,
        attempts: u32,
        counted: bool,
    },
}

/// Who runs [`Scheduler::process`]: a tick, which owns the attempt counts,
/// or the event-driven fast path, which leaves every retry to the ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Sweep,
    Notified,
}

/// What [`Scheduler::decide`] looks files up in.
#[derive(Clone, Copy)]
struct Context<'a> {
    by_key: &'a HashMap<String, ObjectMeta>,
    created: &'a HashMap<String, chrono::DateTime<Utc>>,
    mode: Mode,
}

/// `_s3loader/list-cursor.json`: where the next listing starts.
#[derive(Serialize, serde::Deserialize)]
struct Cursor {
    start_after: String,
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
            running: Default::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn state_key(&self, name: &str) -> String {
        self.config.source.state_key(name)
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
        let (_running, alone) = Running::enter(&self.running);
        let key = self.state_key("lease");
        let lease = match lease::acquire(&*self.store, &key, &self.owner, ttl, alone).await? {
            Acquired::Yes(lease) => lease,
            Acquired::HeldBy { owner, expires_at } => {
                report.lease = LeaseStatus::HeldBy { owner, expires_at };
                report.duration_ms = started.elapsed().as_millis() as u64;
                report.log();
                return Ok(report);
            }
        };
        let result = self.run(&mut report, deadline).await;
        lease::release(&*self.store, &lease).await;
        result?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.publish(&report, now).await;
        report.log();
        Ok(report)
    }

    async fn run(&self, report: &mut TickReport, deadline: Instant) -> Result<()> {
        let src = &self.config.source;
        let tick = &self.config.tick;
        let mut attempts = Attempts::load(&*self.store, &self.state_key("attempts.json")).await?;
        let cursor = self.read_cursor().await?;
        let phase = Instant::now();
        let list_until = deadline.min(phase + Duration::from_secs(tick.list_max_secs));
        let watched = attempts.keys().cloned().collect();
        let max_moves = tick.max_attempts;
        let stuck = |m: &ObjectMeta| {
            attempts
                .current(&m.key, &m.etag)
                .is_some_and(|a| a.move_failures >= max_moves)
        };
        let scanned = scan_with(
            &*self.store,
            &src.incoming,
            cursor.as_deref(),
            tick.max_files,
            tick.max_bytes,
            list_until,
            &watched,
            &stuck,
        )
        .await?;
        report.list_ms = phase.elapsed().as_millis() as u64;
        report.backlog = scanned.backlog;
        report.selected = scanned.selected.len() as u64;
        // A listing cut short leaves a cursor; the next tick lists on from
        // it, and one that reaches the end starts the next from the top, so
        // every key is reached however large the backlog.
        match (&scanned.stopped_after, &cursor) {
            (Some(after), _) => self.write_cursor(Some(after)).await?,
            (None, Some(_)) => self.write_cursor(None).await?,
            (None, None) => {}
        }
        if cursor.is_some() {
            // Only the part after the cursor was seen: lower bounds.
            report.backlog.complete = false;
        }
        if report.backlog.complete {
            attempts.prune(&scanned.seen);
        }
        let lines: Vec<FileLine> = scanned
            .skipped
            .iter()
            .map(|m| FileLine {
                key: m.key.clone(),
                result: FileResult::Stuck,
                rows: None,
                attempts: None,
                reason: attempts.current(&m.key, &m.etag).map(|a| {
                    format!(
                        "{} moves failed; last error: {}",
                        a.move_failures, a.last_error
                    )
                }),
                moved_to: None,
            })
            .collect();
        report.stuck = lines.len() as u64;
        self.process(
            report,
            &mut attempts,
            scanned.selected,
            lines,
            deadline,
            Mode::Sweep,
            &HashMap::new(),
        )
        .await;
        attempts.save(&*self.store).await
    }

    /// Routes, batches, dispatches and settles `selected`, adding to
    /// `report` and ending with `report.files` (after `lines`). `created`
    /// overrides a file's Last-Modified as its creation time for the
    /// latency metric.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn process(
        &self,
        report: &mut TickReport,
        attempts: &mut Attempts,
        selected: Vec<ObjectMeta>,
        mut lines: Vec<FileLine>,
        deadline: Instant,
        mode: Mode,
        created: &HashMap<String, chrono::DateTime<Utc>>,
    ) {
        let src = &self.config.source;
        let tick = &self.config.tick;
        let max_moves = tick.max_attempts;
        if selected.is_empty() {
            report.files = lines;
            return;
        }
        let by_key: HashMap<String, ObjectMeta> = selected
            .iter()
            .map(|m| (m.key.clone(), m.clone()))
            .collect();
        let alone = |m: &ObjectMeta| attempts.current(&m.key, &m.etag).is_some_and(|a| a.suspect);
        let whole = |d: &str| {
            self.config
                .destinations
                .get(d)
                .is_some_and(|d| d.one_batch_per_table())
        };
        let plan = plan(
            selected,
            &self.router,
            src,
            tick,
            &report.tick_id,
            &alone,
            &whole,
        );
        report.batches = plan.batches.len() as u64;

        let decided: Vec<(ObjectMeta, Disposition)> = plan
            .unrouted
            .into_iter()
            .map(|(m, reason)| {
                let attempts = attempts.get(&m.key, &m.etag) + 1;
                (
                    m,
                    Disposition::Fail {
                        reason,
                        attempts,
                        origin: None,
                    },
                )
            })
            .collect();

        // Dispatch at most C batches at a time; once the deadline passes no
        // new batch starts, and the rest wait for the next tick. A
        // destination that fails as a destination (down, refusing, missing
        // a table) gets no further batch this tick. Each batch's files are
        // moved as soon as it returns, while later batches still load.
        let batches = plan.batches;
        let mut dispatched = 0usize;
        let unavailable: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
        let tick_id = report.tick_id.clone();
        let phase = Instant::now();
        let mut load_ms = 0;
        let mut latencies = Vec::new();
        let settled: Vec<(FileLine, bool)> = {
            let attempts = &mut *attempts;
            let latencies = &mut latencies;
            let unavailable = &unavailable;
            let loaded = stream::iter(batches.iter().cloned())
                .take_while(|_| {
                    let go = Instant::now() < deadline;
                    dispatched += usize::from(go);
                    futures::future::ready(go)
                })
                .map(|mut batch| async move {
                    // The deadline as wall-clock time: it travels to the
                    // worker, which may be another process.
                    batch.deadline = Some(
                        chrono::Utc::now() + deadline.saturating_duration_since(Instant::now()),
                    );
                    let down = unavailable
                        .lock()
                        .expect("not poisoned")
                        .get(&batch.destination)
                        .cloned();
                    let outcome = match down {
                        Some(error) => batch.all_failed(
                            true,
                            &format!("not dispatched: the destination is unavailable ({error})"),
                            Cause::Destination,
                        ),
                        None => batch.reconcile(self.fanout.dispatch(batch.clone()).await),
                    };
                    (batch, outcome)
                })
                .buffer_unordered(tick.concurrency)
                .flat_map(|(batch, outcome)| {
                    load_ms = phase.elapsed().as_millis() as u64;
                    stream::iter(self.decide(
                        &batch,
                        outcome,
                        Context {
                            by_key: &by_key,
                            created,
                            mode,
                        },
                        attempts,
                        report,
                        unavailable,
                        latencies,
                    ))
                });
            stream::iter(decided)
                .chain(loaded)
                .map(|(meta, d)| self.settle(meta, d, &tick_id))
                .buffer_unordered(tick.move_concurrency)
                .collect()
                .await
        };
        report.unavailable = unavailable.into_inner().expect("not poisoned");
        report.load_ms = load_ms;
        report.move_ms = (phase.elapsed().as_millis() as u64).saturating_sub(load_ms);
        for batch in &batches[dispatched..] {
            for f in &batch.files {
                report.deferred += 1;
                lines.push(FileLine {
                    key: f.key.clone(),
                    result: FileResult::Deferred,
                    rows: None,
                    attempts: None,
                    reason: None,
                    moved_to: None,
                });
            }
        }
        for (line, settled) in settled {
            match line.result {
                FileResult::Loaded | FileResult::AlreadyLoaded | FileResult::Gone => {
                    attempts.forget(&line.key)
                }
                FileResult::Failed => {
                    report.failed += 1;
                    attempts.forget(&line.key);
                }
                FileResult::Retry => report.retried += 1,
                FileResult::Deferred => report.deferred += 1,
                FileResult::MoveFailed => {
                    report.move_errors += 1;
                    if let Some(meta) = by_key.get(&line.key) {
                        let n = attempts.move_failed(
                            &meta.key,
                            &meta.etag,
                            line.reason.as_deref().unwrap_or_default(),
                        );
                        if n >= max_moves {
                            tracing::error!(key = %meta.key, moves = n, "moves keep failing: the file is stuck until an operator acts");
                        }
                    }
                }
                FileResult::Stuck => {}
            }
            if settled {
                report.already_loaded += 1;
            }
            lines.push(line);
        }
        report.files = lines;
        report.files.sort_by(|a, b| a.key.cmp(&b.key));
        report.latency = Latency::of(latencies);
    }

    /// Turns a batch's outcomes into what to do with each file, counting
    /// loads and attempts. Only a file's own fault counts an attempt.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        batch: &Batch,
        outcome: BatchOutcome,
        cx: Context<'_>,
        attempts: &mut Attempts,
        report: &mut TickReport,
        unavailable: &Mutex<BTreeMap<String, String>>,
        latencies: &mut Vec<u64>,
    ) -> Vec<(ObjectMeta, Disposition)> {
        let Context {
            by_key,
            created,
            mode,
        } = cx;
        let origin = || Origin {
            batch_id: batch.id.clone(),
            destination: batch.destination.clone(),
            table: batch.table.clone(),
        };
        let max = self.config.tick.max_attempts;
        let shared = batch.files.len() > 1;
        outcome
            .files
            .into_iter()
            .zip(&batch.files)
            .map(|(f, task)| {
                let meta = by_key[&f.key].clone();
                let d = match f.outcome {
                    Outcome::Loaded {
                        rows,
                        bytes,
                        rejected,
                    } => {
                        let born = created.get(&meta.key).unwrap_or(&meta.last_modified);
                        latencies.push((Utc::now() - *born).num_milliseconds().max(0) as u64);
                        report.loaded += 1;
                        report.rows += rows;
                        report.bytes += bytes;
                        report.rejected += rejected;
                        Disposition::Done {
                            rows: Some(rows),
                            rejected,
                        }
                    }
                    Outcome::AlreadyLoaded => {
                        report.already_loaded += 1;
                        Disposition::Done {
                            rows: None,
                            rejected: 0,
                        }
                    }
                    // An outage: nothing counts, and the destination gets
                    // no more batches this tick.
                    Outcome::Failed {
                        reason,
                        cause: cause @ (Cause::Destination | Cause::Source),
                        ..
                    } => {
                        report.destination_errors += 1;
                        if cause == Cause::Destination {
                            unavailable
                                .lock()
                                .expect("not poisoned")
                                .entry(batch.destination.clone())
                                .or_insert_with(|| reason.clone());
                        }
                        attempts.note(&meta.key, &meta.etag, &reason);
                        Disposition::Retry {
                            attempts: attempts.get(&meta.key, &meta.etag),
                            reason,
                            counted: false,
                        }
                    }
                    // The worker died with a shared batch: any file may be
                    // the poison. None is counted; each runs alone next.
                    // The fast path counts no attempt and splits no batch:
                    // the file stays in incoming/ for the tick, which does.
                    Outcome::Failed {
                        reason,
                        retryable,
                        cause,
                    } if mode == Mode::Notified && (retryable || cause == Cause::Worker) => {
                        Disposition::Retry {
                            attempts: attempts.get(&meta.key, &meta.etag),
                            reason: format!("{reason} (left to the tick)"),
                            counted: false,
                        }
                    }
                    Outcome::Failed {
                        reason,
                        cause: Cause::Worker,
                        ..
                    } if shared => {
                        attempts.suspect(&meta.key, &meta.etag, &reason);
                        Disposition::Retry {
                            attempts: attempts.get(&meta.key, &meta.etag),
                            reason: format!("{reason} (its batch will be split)"),
                            counted: false,
                        }
                    }
                    Outcome::Failed {
                        retryable,
                        reason,
                        cause,
                    } => {
                        let alone = cause == Cause::Worker;
                        if retryable || alone {
                            let n = attempts.bump(&meta.key, &meta.etag, &reason);
                            let reason = if alone {
                                format!("the worker died or timed out while loading this file alone: {reason}")
                            } else {
                                reason
                            };
                            if n >= max {
                                Disposition::Verify {
                                    task: Box::new(task.clone()),
                                    reason: format!(
                                        "gave up after {n} attempts; last error: {reason}"
                                    ),
                                    attempts: n,
                                    origin: origin(),
                                }
                            } else {
                                Disposition::Retry {
                                    reason,
                                    attempts: n,
                                    counted: true,
                                }
                            }
                        } else {
                            // Permanent and the file's own: the worker
                            // consulted the ledger before loading it.
                            Disposition::Fail {
                                reason,
                                attempts: attempts.get(&meta.key, &meta.etag) + 1,
                                origin: Some(origin()),
                            }
                        }
                    }
                };
                (meta, d)
            })
            .collect()
    }

    /// Asks the ledger whether a file with an uncertain last outcome was in
    /// fact loaded: a check-only batch through the same fanout.
    async fn verify(
        &self,
        task: Box<FileTask>,
        reason: String,
        attempts: u32,
        origin: Origin,
    ) -> Disposition {
        let check = Batch {
            id: format!("{}-check", origin.batch_id),
            destination: origin.destination.clone(),
            table: origin.table.clone(),
            files: vec![*task],
            check_only: true,
            deadline: None,
        };
        let outcome = check.reconcile(self.fanout.dispatch(check.clone()).await);
        match outcome.files.into_iter().next().map(|f| f.outcome) {
            Some(Outcome::AlreadyLoaded) => Disposition::Done {
                rows: None,
                rejected: 0,
            },
            Some(Outcome::Failed {
                cause: Cause::File, ..
            }) => Disposition::Fail {
                reason,
                attempts,
                origin: Some(origin),
            },
            other => Disposition::Retry {
                reason: format!(
                    "{reason}; and the ledger could not be asked whether it was loaded ({}), so it stays",
                    match other {
                        Some(Outcome::Failed { reason, .. }) => reason,
                        _ => "no answer".into(),
                    }
                ),
                attempts,
                counted: false,
            },
        }
    }

    /// Carries out one file's disposition. Never fails: a move that does not
    /// complete leaves the file in `incoming/`, which is always safe. The
    /// second member is true when asking the ledger found the file loaded
    /// after all (it then counts as already loaded).
    async fn settle(&self, meta: ObjectMeta, d: Disposition, tick_id: &str) -> (FileLine, bool) {
        let src = &self.config.source;
        let line = |result, rows, attempts, reason, moved_to| FileLine {
            key: meta.key.clone(),
            result,
            rows,
            attempts,
            reason,
            moved_to,
        };
        let (d, verified) = match d {
            Disposition::Verify {
                task,
                reason,
                attempts,
                origin,
            } => match self.verify(task, reason, attempts, origin).await {
                d @ Disposition::Done { .. } => {
                    tracing::info!(key = %meta.key, "the ledger has it: loaded after all; not failed");
                    (d, true)
                }
                d => (d, false),
            },
            d => (d, false),
        };
        let l = match d {
            Disposition::Verify { .. } => unreachable!("verified above"),
            Disposition::Retry {
                reason,
                attempts,
                counted,
            } => line(
                FileResult::Retry,
                None,
                counted.then_some(attempts),
                Some(reason),
                None,
            ),
            Disposition::Done { rows, rejected } => {
                let result = if rows.is_some() {
                    FileResult::Loaded
                } else {
                    FileResult::AlreadyLoaded
                };
                // The rejects are not a failure: said where they went.
                let rejects = (rejected > 0).then(|| {
                    format!(
                        "{rejected} record(s) broke the route's schema; set aside in {}",
                        src.rejected_key(&meta.key)
                    )
                });
                match archive(&*self.store, &meta, &src.processed_key(&meta.key)).await {
                    Ok(to) => line(result, rows, None, rejects, Some(to)),
                    Err(loader::Error::Precondition { key, .. }) if key == meta.key => {
                        // Moved by another tick, or replaced by a new version
                        // (which stays for the next tick).
                        line(FileResult::Gone, rows, None, None, None)
                    }
                    Err(e) => {
                        let reason = format!("move to {} failed: {}", src.processed, chain(&e));
                        tracing::warn!(key = %meta.key, error = %reason, "move failed; the ledger will finish it next tick");
                        line(FileResult::MoveFailed, rows, None, Some(reason), None)
                    }
                }
            }
            Disposition::Fail {
                reason,
                attempts,
                origin,
            } => match self.fail(&meta, &reason, attempts, origin, tick_id).await {
                Ok(Some(to)) => {
                    tracing::warn!(key = %meta.key, %reason, "file failed; moved to {to}");
                    line(
                        FileResult::Failed,
                        None,
                        Some(attempts),
                        Some(reason),
                        Some(to),
                    )
                }
                Ok(None) => line(FileResult::Gone, None, None, None, None),
                Err(e) => {
                    let why = format!(
                        "{reason}; and moving it to {} failed: {}",
                        src.failed,
                        chain(&e)
                    );
                    tracing::warn!(key = %meta.key, error = %why, "could not move a failed file; it stays in incoming/");
                    line(
                        FileResult::MoveFailed,
                        None,
                        Some(attempts),
                        Some(why),
                        None,
                    )
                }
            },
        };
        (l, verified)
    }

    /// Moves a failed file to `failed/` with its report, never replacing
    /// a different object (see `loader::layout`). Returns where it went, or
    /// `None` if it is no longer in `incoming/` as listed (another tick
    /// moved it): then no report is written.
    async fn fail(
        &self,
        meta: &ObjectMeta,
        reason: &str,
        attempts: u32,
        origin: Option<Origin>,
        tick_id: &str,
    ) -> loader::Result<Option<String>> {
        let src = &self.config.source;
        // Copy, then the report, then the delete: the report names where
        // the file went, and a file leaves incoming/ only once both exist.
        // A source another tick moved (or replaced) fails the copy, so no
        // report is written for it.
        let failed_key = match place(&*self.store, meta, &src.failed_key(&meta.key)).await {
            Ok(k) => k,
            Err(loader::Error::Precondition { key, .. }) if key == meta.key => return Ok(None),
            Err(e) => return Err(e),
        };
        let report = ErrorReport {
            key: &meta.key,
            failed_key: &failed_key,
            etag: &meta.etag,
            size: meta.size,
            reason,
            attempts,
            batch_id: origin.as_ref().map(|b| b.batch_id.as_str()),
            destination: origin.as_ref().map(|b| b.destination.as_str()),
            table: origin.as_ref().map(|b| b.table.as_str()),
            tick_id,
            time: Utc::now(),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&report).expect("report serialises"));
        let plain = src.report_key(&failed_key);
        match self.store.put(&plain, body.clone(), PutMode::Create).await {
            Ok(_) => {}
            // An earlier report of another failure under this name: keep it.
            Err(loader::Error::Precondition { .. }) => {
                let ours = src.report_key_for_tick(&failed_key, tick_id);
                self.store.put(&ours, body, PutMode::Overwrite).await?;
            }
            Err(e) => return Err(e),
        }
        match self.store.delete(&meta.key, Some(&meta.etag)).await {
            Ok(()) => Ok(Some(failed_key)),
            Err(loader::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where the last cut-short listing stopped, if it did.
    async fn read_cursor(&self) -> Result<Option<String>> {
        let key = self.state_key("list-cursor.json");
        match self.store.get_bytes(&key, crate::STATE_MAX_BYTES).await {
            Ok((_, bytes)) => Ok(serde_json::from_slice::<Cursor>(&bytes)
                .map(|c| c.start_after)
                .map_err(|e| tracing::warn!(%key, error = %e, "list cursor unreadable; listing from the top"))
                .ok()),
            Err(loader::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::loader(format!("read the list cursor {key:?}"))(e)),
        }
    }

    async fn write_cursor(&self, after: Option<&str>) -> Result<()> {
        let key = self.state_key("list-cursor.json");
        let done = match after {
            Some(after) => {
                let body = serde_json::to_vec(&Cursor {
                    start_after: after.to_owned(),
                })
                .expect("cursor serialises");
                self.store
                    .put(&key, Bytes::from(body), PutMode::Overwrite)
                    .await
                    .map(|_| ())
            }
            None => self.store.delete(&key, None).await,
        };
        done.map_err(Error::loader(format!("write the list cursor {key:?}")))
    }

    pub(crate) async fn publish(&self, report: &TickReport, now: chrono::DateTime<Utc>) {
        let listed = report.notified.is_none();
        let metrics = TickMetrics {
            backlog_files: listed.then_some(report.backlog.files),
            backlog_bytes: listed.then_some(report.backlog.bytes),
            oldest_file_age_seconds: listed.then(|| report.backlog.oldest_age_secs(now)),
            files_loaded: report.loaded,
            files_failed: report.failed,
            files_retried: report.retried,
            rows_loaded: report.rows,
            rows_rejected: report.rejected,
            bytes_loaded: report.bytes,
            tick_duration_ms: listed.then_some(report.duration_ms),
            destination_errors: report.destination_errors,
            move_errors: report.move_errors,
            files_stuck: listed.then_some(report.stuck),
            backlog_complete: listed.then_some(u64::from(report.backlog.complete)),
            end_to_end_latency_ms: report.latency.map(|l| l.max_ms),
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
