//! The load contract: a batch goes in, one outcome per file comes out.
//!
//! These types cross process boundaries (the loader Lambda's payload), so
//! they are plain serde data.

use serde::{Deserialize, Serialize};

use crate::config::LoadSpec;

/// Files for one destination table, loaded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Unique per tick and batch; recorded in the ledger.
    pub id: String,
    pub destination: String,
    pub table: String,
    pub files: Vec<FileTask>,
    /// Load nothing: only ask the ledger whether each file is in it
    /// (`AlreadyLoaded`) or not (a permanent `Failed` of cause `File`). The
    /// scheduler asks before it sends a file to `failed/` for failures whose
    /// outcome it cannot be sure of (a lost answer, a timeout).
    #[serde(default)]
    pub check_only: bool,
    /// The tick's deadline: a destination that waits on the warehouse
    /// (Redshift's Data API) stops waiting then, leaving the statement to
    /// finish on its own and the next tick to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// One object to load, pinned to the version that was listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileTask {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub spec: LoadSpec,
    /// Where the file will be in `processed/` once loaded, as the layout
    /// names it: a destination that records the file's place (the forecast
    /// index) takes it from here rather than guessing.
    #[serde(default)]
    pub processed_key: String,
    /// Where the records the route's schema sets aside go:
    /// `rejected/<path>.jsonl`, as the layout names it.
    #[serde(default)]
    pub rejected_key: String,
}

/// Whose fault a failure is. Only [`Cause::File`] counts against a file's
/// attempts or sends it to `failed/`: *an outage is not a bad file*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The file's own bytes: a malformed row, a value the column rejects,
    /// a corrupt stream, no route. Permanent ones fail at once; retryable
    /// ones count an attempt.
    #[default]
    File,
    /// The destination or its environment: down, refusing the login,
    /// missing a table, column or permission, throttling. Nothing is
    /// counted; the tick stops dispatching to that destination.
    Destination,
    /// The source store: S3 5xx, SlowDown, access denied, the object
    /// changed or vanished since it was listed. Nothing is counted.
    Source,
    /// The worker died, timed out or its answer was lost with the batch in
    /// hand: any file of the batch may be the poison. Nothing is counted
    /// against a file that shared its batch; later attempts run the
    /// suspects alone, and a file that kills the worker alone counts.
    Worker,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The rows and the ledger entry are committed; `rejected` records
    /// were set aside by the route's schema (in `rejected/`).
    Loaded {
        rows: u64,
        bytes: u64,
        #[serde(default)]
        rejected: u64,
    },
    /// The ledger already holds this (key, ETag): nothing was written.
    AlreadyLoaded,
    /// Nothing of the file is committed.
    Failed {
        retryable: bool,
        reason: String,
        #[serde(default)]
        cause: Cause,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOutcome {
    pub key: String,
    pub etag: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub batch_id: String,
    pub files: Vec<FileOutcome>,
}

impl Outcome {
    /// The outcome of a file whose load failed with `err`.
    pub fn failed(err: &crate::Error) -> Self {
        Outcome::Failed {
            retryable: err.is_retryable(),
            reason: crate::error::chain(err),
            cause: err.cause(),
        }
    }
}

impl FileTask {
    pub fn outcome(&self, outcome: Outcome) -> FileOutcome {
        FileOutcome {
            key: self.key.clone(),
            etag: self.etag.clone(),
            outcome,
        }
    }
}

impl Batch {
    /// Every file of the batch failed the same way. Used when the batch as a
    /// whole could not run (destination down, worker crashed).
    pub fn all_failed(&self, retryable: bool, reason: &str, cause: Cause) -> BatchOutcome {
        BatchOutcome {
            batch_id: self.id.clone(),
            files: self
                .files
                .iter()
                .map(|f| {
                    f.outcome(Outcome::Failed {
                        retryable,
                        reason: reason.to_owned(),
                        cause,
                    })
                })
                .collect(),
        }
    }

    /// [`Batch::all_failed`] with `err`'s retryability, text and cause.
    pub fn all_failed_with(&self, err: &crate::Error) -> BatchOutcome {
        self.all_failed(err.is_retryable(), &crate::error::chain(err), err.cause())
    }

    /// Returns exactly one outcome per file of this batch, in batch order,
    /// whatever a worker sent back: a file with no outcome is a retryable
    /// failure (so it stays in `incoming/`), and outcomes for files that are
    /// not in the batch are dropped.
    pub fn reconcile(&self, reported: BatchOutcome) -> BatchOutcome {
        let mut reported = reported.files;
        let files = self
            .files
            .iter()
            .map(|f| {
                match reported
                    .iter()
                    .position(|o| o.key == f.key && o.etag == f.etag)
                {
                    Some(i) => reported.swap_remove(i),
                    None => f.outcome(Outcome::Failed {
                        retryable: true,
                        reason: "the worker reported no outcome for this file".into(),
                        cause: Cause::Worker,
                    }),
                }
            })
            .collect();
        BatchOutcome {
            batch_id: self.id.clone(),
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadSpec;

    fn batch() -> Batch {
        let file = |k: &str| FileTask {
            key: k.into(),
            etag: "\"e\"".into(),
            size: 1,
            spec: LoadSpec::default(),
            processed_key: String::new(),
            rejected_key: String::new(),
        };
        Batch {
            id: "b1".into(),
            destination: "d".into(),
            table: "t".into(),
            files: vec![file("a"), file("b")],
            check_only: false,
            deadline: None,
        }
    }

    #[test]
    fn reconcile_fills_missing_outcomes_and_drops_strangers() {
        let b = batch();
        let reported = BatchOutcome {
            batch_id: "b1".into(),
            files: vec![
                FileOutcome {
                    key: "zzz".into(),
                    etag: "\"e\"".into(),
                    outcome: Outcome::AlreadyLoaded,
                },
                FileOutcome {
                    key: "b".into(),
                    etag: "\"e\"".into(),
                    outcome: Outcome::Loaded {
                        rows: 3,
                        bytes: 1,
                        rejected: 0,
                    },
                },
            ],
        };
        let got = b.reconcile(reported);
        assert_eq!(got.files.len(), 2);
        assert_eq!(got.files[0].key, "a");
        assert!(matches!(
            got.files[0].outcome,
            Outcome::Failed {
                retryable: true,
                ..
            }
        ));
        assert_eq!(
            got.files[1].outcome,
            Outcome::Loaded {
                rows: 3,
                bytes: 1,
                rejected: 0
            }
        );
    }
}
