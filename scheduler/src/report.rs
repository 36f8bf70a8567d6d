//! The tick report: what one tick saw and did, logged as one JSON line.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::scan::Backlog;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LeaseStatus {
    Acquired,
    /// Another tick holds the lease: this one did nothing.
    HeldBy {
        owner: String,
        expires_at: DateTime<Utc>,
    },
    /// An event-driven run (the fast path) takes no lease: it lists
    /// nothing and writes no scheduler state, and the ledger makes its
    /// overlap with a tick safe.
    NotTaken,
}

/// What happened to one file in this tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileResult {
    /// Loaded and moved to `processed/`.
    Loaded,
    /// The ledger already had it; moved to `processed/`.
    AlreadyLoaded,
    /// Moved to `failed/`, with a report in `errors/`.
    Failed,
    /// Left in `incoming/` for another attempt.
    Retry,
    /// Not dispatched before the deadline; left in `incoming/`.
    Deferred,
    /// Its outcome is final but the move did not complete; left in
    /// `incoming/`, and the ledger makes the next tick finish the job.
    MoveFailed,
    /// Its moves failed `max_attempts` times: left in `incoming/` and no
    /// longer dispatched or moved (the `FilesStuck` metric alarms) until an
    /// operator fixes the cause (runbook, "FilesStuck").
    Stuck,
    /// No longer in `incoming/` as listed (another tick moved it, or it was
    /// replaced): nothing done, no report written.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    pub key: String,
    pub result: FileResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the file went (`processed/…` or `failed/…`), when it moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    pub tick_id: String,
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub lease: LeaseStatus,
    /// The backlog in `incoming/` when the tick listed it.
    pub backlog: Backlog,
    pub selected: u64,
    pub batches: u64,
    pub loaded: u64,
    pub already_loaded: u64,
    pub failed: u64,
    pub retried: u64,
    pub deferred: u64,
    pub move_errors: u64,
    /// Files left in `incoming/` because their destination (or the source
    /// store) was unavailable: counted against no file.
    pub destination_errors: u64,
    /// Destinations this tick stopped dispatching to, with the error that
    /// stopped it.
    #[serde(default)]
    pub unavailable: std::collections::BTreeMap<String, String>,
    /// Files passed over because their moves keep failing.
    pub stuck: u64,
    pub rows: u64,
    /// Records the routes' schemas set aside (in `rejected/`) from the
    /// files loaded.
    #[serde(default)]
    pub rejected: u64,
    pub bytes: u64,
    /// Where the time went: listing; loading (from the first dispatch until
    /// the last batch returned; moves run meanwhile); and the moves still
    /// left after that.
    pub list_ms: u64,
    pub load_ms: u64,
    pub move_ms: u64,
    /// End-to-end latency of the files loaded now: from the object's
    /// creation (the notification's event time, else its Last-Modified)
    /// until its rows committed. `None` when nothing was loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// For an event-driven run: how many distinct keys the notifications
    /// named (the backlog is then not listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<u64>,
    pub files: Vec<FileLine>,
}

/// End-to-end latency over the files one run loaded, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: u64,
    pub max_ms: u64,
}

impl Latency {
    /// The median and the maximum; `None` for no samples.
    pub fn of(mut samples: Vec<u64>) -> Option<Self> {
        samples.sort_unstable();
        let max_ms = *samples.last()?;
        Some(Self {
            p50_ms: samples[(samples.len() - 1) / 2],
            max_ms,
        })
    }
}

impl TickReport {
    pub fn new(tick_id: &str, pipeline: &str, started_at: DateTime<Utc>) -> Self {
        Self {
            tick_id: tick_id.to_owned(),
            pipeline: pipeline.to_owned(),
            started_at,
            duration_ms: 0,
            lease: LeaseStatus::Acquired,
            backlog: Backlog::default(),
            selected: 0,
            batches: 0,
            loaded: 0,
            already_loaded: 0,
            failed: 0,
            retried: 0,
            deferred: 0,
            move_errors: 0,
            destination_errors: 0,
            unavailable: Default::default(),
            stuck: 0,
            rows: 0,
            rejected: 0,
            bytes: 0,
            list_ms: 0,
            load_ms: 0,
            move_ms: 0,
            latency: None,
            notified: None,
            files: Vec::new(),
        }
    }

    /// Logs the report at INFO, target `s3loader::report`: as JSON fields
    /// where logs are JSON (Lambda, `--log-json`), so Logs Insights can
    /// filter on `loaded` or `files.0.key`; else as its JSON text.
    pub fn log(&self) {
        if !tracing::enabled!(target: "s3loader::report", tracing::Level::INFO) {
            return;
        }
        let message = if self.notified.is_some() {
            "events report"
        } else {
            "tick report"
        };
        if !loader::logs::structured("s3loader::report", message, self) {
            tracing::info!(target: "s3loader::report", "{}", serde_json::to_string(self).unwrap_or_default());
        }
    }

    /// Whether this tick changed anything in the bucket.
    pub fn made_progress(&self) -> bool {
        self.loaded + self.already_loaded + self.failed > 0
    }
}

/// The human summary `s3loader tick` prints.
impl fmt::Display for TickReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let LeaseStatus::HeldBy { owner, expires_at } = &self.lease {
            return writeln!(
                f,
                "tick {}: another tick ({owner}) holds the lease until {expires_at}; nothing done",
                self.tick_id
            );
        }
        let b = &self.backlog;
        let latency = self
            .latency
            .map(|l| format!("; created→loaded p50 {} ms, max {} ms", l.p50_ms, l.max_ms))
            .unwrap_or_default();
        if let Some(n) = self.notified {
            writeln!(
                f,
                "events {}: {n} notified key(s); {} to load in {} batches ({} ms: load {}, move {}){latency}",
                self.tick_id, self.selected, self.batches, self.duration_ms, self.load_ms, self.move_ms
            )?;
        } else {
            writeln!(
            f,
            "tick {}: backlog {} files, {} bytes{}; selected {} in {} batches ({} ms: list {}, load {}, move {})",
            self.tick_id,
            b.files,
            b.bytes,
            if b.complete {
                ""
            } else {
                " (listing cut short at the deadline: at least this many)"
            },
            self.selected,
            self.batches,
            self.duration_ms,
            self.list_ms,
            self.load_ms,
            self.move_ms
        )?;
        }
        for line in &self.files {
            let what = match line.result {
                FileResult::Loaded => format!("loaded {} rows", line.rows.unwrap_or(0)),
                FileResult::AlreadyLoaded => "already loaded (ledger); moved".into(),
                FileResult::Failed => "FAILED -> failed/".into(),
                FileResult::Retry => {
                    format!("retry later (attempt {})", line.attempts.unwrap_or(0))
                }
                FileResult::Deferred => "deferred to the next tick".into(),
                FileResult::MoveFailed => "move failed (next tick finishes it)".into(),
                FileResult::Stuck => "STUCK: moves keep failing".into(),
                FileResult::Gone => "gone (moved by another tick)".into(),
            };
            write!(f, "  {:<16} {}", what, line.key)?;
            if let Some(reason) = &line.reason {
                write!(f, "\n                   reason: {reason}")?;
            }
            writeln!(f)?;
        }
        for (destination, error) in &self.unavailable {
            writeln!(
                f,
                "  destination {destination} unavailable; its files stay in incoming/, no attempt counted: {error}"
            )?;
        }
        writeln!(
            f,
            "  => {} loaded ({} rows{}), {} already loaded, {} failed, {} to retry, {} deferred, {} move errors{}",
            self.loaded,
            self.rows,
            if self.rejected > 0 {
                format!(", {} records rejected", self.rejected)
            } else {
                String::new()
            },
            self.already_loaded,
            self.failed,
            self.retried,
            self.deferred,
            self.move_errors,
            if self.destination_errors + self.stuck > 0 {
                format!(
                    ", {} held back by an outage, {} stuck",
                    self.destination_errors, self.stuck
                )
            } else {
                String::new()
            }
        )
    }
}
