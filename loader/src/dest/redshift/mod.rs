//! Amazon Redshift through the Data API. The rows never pass through the
//! loader: it writes a manifest and Redshift COPYs the files from S3.
//!
//! Exactly once without unique constraints (Redshift enforces no primary
//! key): each attempt is one `BatchExecuteStatement` transaction that locks
//! the ledger, stages the rows, and moves them to the table only if none of
//! its files is in the ledger ([`sql::Load::statements`]). An attempt that
//! finds one there loads nothing; the loader sees no ledger rows for the
//! attempt, marks the files the ledger holds `AlreadyLoaded`, and tries
//! again without them.
//!
//! A statement may outlive the tick. Before submitting, the attempt is
//! recorded under `<state>redshift/<destination>/<table>.json` with its
//! statements and its `ClientToken` (derived from the attempt's id, which
//! is unique per load); the record goes once the statement has ended. The next load of that table resubmits the record first, with the
//! same token, which the Data API answers with the first statement's id
//! rather than running it again: while that statement runs, the table gets
//! no second COPY of anything; once it has ended, the ledger says what it
//! loaded.
//!
//! A failed COPY names its file: the rejected rows are read from
//! `sys_load_error_detail` for the COPY's query ids; those files fail (the
//! file's fault, permanent) and the rest are tried again without them. A
//! failure no rejected row explains (access denied to the bucket, a missing
//! table, a paused cluster) is an outage: every file stays.

mod api;
pub mod sql;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use self::api::{DataApi, Ended};
use super::Destination;
use crate::config::{RedshiftConfig, SourceConfig};
use crate::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use crate::error::{Error, Result};
use crate::layout::fnv1a;
use crate::store::{ObjectStore, PutMode};

/// Keys per ledger lookup: each is one Data API parameter.
const LOOKUP_CHUNK: usize = 100;

#[derive(Debug)]
pub struct Redshift {
    name: String,
    config: RedshiftConfig,
    state: String,
    api: DataApi,
    ledger_ready: OnceCell<()>,
}

/// An attempt whose statement may still be running.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    attempt: String,
    token: String,
    statement_name: String,
    sqls: Vec<String>,
}

/// What became of the files of one attempt.
enum Round {
    /// Done: every file has its outcome.
    Done,
    /// The transaction loaded nothing: some file was in the ledger.
    Refused,
    /// Some files failed alone: go again without them.
    Rejected,
    /// The statement outlived the wait: nothing more starts for this
    /// table until it ends.
    Running(String),
}

impl Redshift {
    pub fn new(
        name: &str,
        config: &RedshiftConfig,
        source: &SourceConfig,
        shared: Option<&aws_config::SdkConfig>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            config: config.clone(),
            state: source.state_key(&format!("redshift/{name}/")),
            api: DataApi::new(name, config, shared),
            ledger_ready: OnceCell::new(),
        }
    }

    fn pending_key(&self, table: &str) -> String {
        format!("{}{table}.json", self.state)
    }

    /// How long queries (lookups, error details) may take.
    fn query_until(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.config.wait_secs)
    }

    fn outage(&self, message: impl Into<String>) -> Error {
        Error::outage(&self.name, message, None, None)
    }

    async fn ensure_ledger(&self) -> Result<()> {
        self.ledger_ready
            .get_or_try_init(|| async {
                let ddl = sql::create_ledger();
                let create = || self.api.run(&ddl, self.query_until());
                // Two workers creating it at once: one may lose (a catalog
                // conflict); by the time it tries again the table is there.
                match create().await {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        create().await
                    }
                }
            })
            .await
            .map(drop)
    }

    /// The `(key, ETag)` pairs of `files` the ledger holds.
    async fn in_ledger(&self, files: &[FileTask]) -> Result<HashSet<(String, String)>> {
        let mut seen = HashSet::new();
        for chunk in files.chunks(LOOKUP_CHUNK) {
            let params: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("k{i}"), f.key.clone()))
                .collect();
            let rows = self
                .api
                .query(
                    &sql::ledger_lookup(chunk.len()),
                    &params,
                    self.query_until(),
                )
                .await?;
            seen.extend(rows.into_iter().filter_map(pair));
        }
        Ok(seen)
    }

    /// Resubmits an attempt an earlier load left running (same token: the
    /// Data API returns its statement, it does not run it again) and waits
    /// for it. `Ok(Some(_))` while it still runs.
    async fn settle_pending(
        &self,
        store: &dyn ObjectStore,
        table: &str,
        until: Instant,
    ) -> Result<Option<String>> {
        let key = self.pending_key(table);
        let pending: Pending = match store.get_bytes(&key, 1024 * 1024).await {
            Ok((_, body)) => serde_json::from_slice(&body)
                .map_err(|e| self.outage(format!("{key}: unreadable record: {e}")))?,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = self
            .api
            .submit(pending.sqls, &pending.token, &pending.statement_name)
            .await?;
        if let Ended::Running = self.api.wait(&id, until).await? {
            return Ok(Some(format!(
                "a COPY into {table} from attempt {} (statement {id}) is still running; \
                 no second COPY starts until it ends",
                pending.attempt
            )));
        }
        store.delete(&key, None).await?;
        Ok(None)
    }

    async fn load_batch(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> Result<BatchOutcome> {
        let bucket = store.name().strip_prefix("s3://").ok_or_else(|| {
            Error::config(
                format!("destinations.{}", self.name),
                format!(
                    "redshift reads the files from S3 itself; the source is {}",
                    store.name()
                ),
            )
        })?;
        let wait = match batch.deadline {
            Some(d) => (d - chrono::Utc::now()).to_std().unwrap_or_default(),
            None => Duration::from_secs(self.config.wait_secs),
        };
        let until = Instant::now() + wait;
        self.ensure_ledger().await?;
        if let Some(running) = self.settle_pending(&*store, &batch.table, until).await? {
            return Ok(batch.all_failed(true, &running, Cause::Destination));
        }
        let mut outcomes: HashMap<(String, String), Outcome> = HashMap::new();
        let mut remaining = batch.files.clone();
        resolve_compression(&*store, &mut remaining).await;
        let mut refused = false;
        for round in 0.. {
            let seen = self.in_ledger(&remaining).await?;
            if refused && seen.is_empty() {
                // The attempt wrote no ledger rows, yet none was there.
                return Err(self.outage(format!(
                    "attempt {round} of batch {} committed without its ledger rows",
                    batch.id
                )));
            }
            remaining.retain(|f| {
                let id = (f.key.clone(), f.etag.clone());
                let hit = seen.contains(&id);
                if hit {
                    outcomes.insert(id, Outcome::AlreadyLoaded);
                }
                !hit
            });
            if remaining.is_empty() {
                break;
            }
            if round > 0 && Instant::now() >= until {
                let reason = "the tick's deadline passed before this file's COPY";
                settle_all(&mut remaining, &mut outcomes, reason);
                break;
            }
            // A batch whose file list would not fit one transaction goes
            // in parts (only with very many long keys).
            let rest = remaining.split_off(sql::fits(&remaining));
            let round_result = self
                .attempt(
                    batch,
                    bucket,
                    round,
                    &mut remaining,
                    &mut outcomes,
                    &*store,
                    until,
                )
                .await;
            remaining.extend(rest);
            match round_result? {
                Round::Done if remaining.is_empty() => break,
                Round::Done => refused = false,
                Round::Refused => refused = true,
                Round::Running(reason) => {
                    settle_all(&mut remaining, &mut outcomes, &reason);
                    break;
                }
                Round::Rejected => refused = false,
            }
        }
        Ok(BatchOutcome {
            batch_id: batch.id.clone(),
            files: batch
                .files
                .iter()
                .map(|f| {
                    f.outcome(outcomes.remove(&(f.key.clone(), f.etag.clone())).unwrap_or(
                        Outcome::Failed {
                            retryable: true,
                            reason: "no outcome".into(),
                            cause: Cause::Destination,
                        },
                    ))
                })
                .collect(),
        })
    }

    /// One COPY transaction for `remaining`; moves the files it settles
    /// from `remaining` to `outcomes`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        batch: &Batch,
        bucket: &str,
        round: usize,
        remaining: &mut Vec<FileTask>,
        outcomes: &mut HashMap<(String, String), Outcome>,
        store: &dyn ObjectStore,
        until: Instant,
    ) -> Result<Round> {
        let set: Vec<u8> = remaining
            .iter()
            .flat_map(|f| [f.key.as_bytes(), b"\0", f.etag.as_bytes(), b"\0"].concat())
            .collect();
        // Unique per batch, file set and round (Lambda may split one batch
        // into parts that share its id), and per load: two workers that
        // hold the same batch at once must not read each other's ledger
        // rows as their own.
        let attempt = format!(
            "{}-{:016x}-{round}-{}",
            batch.id,
            fnv1a(&set),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let copies = sql::copies(remaining);
        let load = sql::Load {
            bucket,
            prefix: &self.config.manifests,
            attempt: &attempt,
            table: &batch.table,
            iam_role: &self.config.iam_role,
            max_errors: self.config.max_errors,
            jsonpaths: self.config.jsonpaths.as_deref(),
            copies: &copies,
        };
        for n in 0..copies.len() {
            store
                .put(
                    &load.manifest_key(n),
                    Bytes::from(load.manifest(n)),
                    PutMode::Overwrite,
                )
                .await?;
        }
        let sqls = load.statements();
        // The SDK's retries of this call resend this token, and the next
        // tick resubmits it from the record: either way the Data API runs
        // the statement once.
        let token = format!("s3l-{:016x}", fnv1a(attempt.as_bytes()));
        let pending = Pending {
            attempt: attempt.clone(),
            token: token.clone(),
            statement_name: format!("s3loader:{}:{}", self.name, batch.table),
            sqls: sqls.clone(),
        };
        let record = self.pending_key(&batch.table);
        store
            .put(
                &record,
                Bytes::from(serde_json::to_vec(&pending).expect("plain data")),
                PutMode::Overwrite,
            )
            .await?;
        let id = self
            .api
            .submit(sqls, &token, &pending.statement_name)
            .await?;
        let ended = self.api.wait(&id, until).await?;
        if !matches!(ended, Ended::Running) {
            store.delete(&record, None).await?;
        }
        let uri = |f: &FileTask| format!("s3://{bucket}/{}", f.key);
        let copy_ids = |ids: &[i64]| -> Vec<i64> {
            load.copy_statements()
                .filter_map(|i| ids.get(i).copied())
                .filter(|q| *q > 0)
                .collect()
        };
        match ended {
            Ended::Running => Ok(Round::Running(format!(
                "the COPY (statement {id}) was still running at the tick's deadline; \
                     the next tick finds it and does not start another"
            ))),
            Ended::Aborted => Err(self.outage(format!("statement {id} was aborted"))),
            Ended::Finished { query_ids } => {
                let wrote: HashSet<(String, String)> = self
                    .api
                    .query(
                        &sql::attempt_rows(),
                        &[("attempt".into(), attempt.clone())],
                        self.query_until(),
                    )
                    .await?
                    .into_iter()
                    .filter_map(pair)
                    .collect();
                if wrote.is_empty() {
                    // Refused: some file was in the ledger. The next round
                    // asks which.
                    return Ok(Round::Refused);
                }
                let lines: HashMap<String, u64> = match self
                    .api
                    .query(
                        &sql::load_lines(&copy_ids(&query_ids)),
                        &[],
                        self.query_until(),
                    )
                    .await
                {
                    Ok(rows) => rows
                        .into_iter()
                        .filter_map(|r| {
                            Some((r.first()?.clone()?, r.get(1)?.as_deref()?.parse().ok()?))
                        })
                        .collect(),
                    Err(e) => {
                        // Only the count is lost: the rows are committed.
                        tracing::warn!(destination = %self.name, error = %e, "no per-file line counts");
                        HashMap::new()
                    }
                };
                for f in remaining.drain(..) {
                    let outcome = if wrote.contains(&(f.key.clone(), f.etag.clone())) {
                        Outcome::Loaded {
                            rows: lines.get(&uri(&f)).copied().unwrap_or(0),
                            bytes: f.size,
                            rejected: 0,
                        }
                    } else {
                        Outcome::Failed {
                            retryable: true,
                            reason: format!("not in the ledger after attempt {attempt} committed"),
                            cause: Cause::Destination,
                        }
                    };
                    outcomes.insert((f.key, f.etag), outcome);
                }
                Ok(Round::Done)
            }
            Ended::Failed {
                error,
                failed_at,
                query_ids,
            } => {
                let copy_failed = failed_at.is_none_or(|i| load.copy_statements().contains(&i));
                let ids = copy_ids(&query_ids);
                let rejected = if copy_failed && !ids.is_empty() {
                    self.api
                        .query(&sql::load_errors(&ids), &[], self.query_until())
                        .await?
                } else {
                    Vec::new()
                };
                // The first rejected row of each file names it.
                let mut why: HashMap<String, String> = HashMap::new();
                for r in rejected {
                    let field = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    why.entry(field(0)).or_insert_with(|| {
                        format!(
                            "{}: line {}, column {:?}: {} (Redshift COPY, statement {id})",
                            field(0),
                            field(1),
                            field(2),
                            field(3)
                        )
                    });
                }
                let before = remaining.len();
                remaining.retain(|f| match why.get(&uri(f)) {
                    Some(reason) => {
                        outcomes.insert(
                            (f.key.clone(), f.etag.clone()),
                            Outcome::Failed {
                                retryable: false,
                                reason: reason.clone(),
                                cause: Cause::File,
                            },
                        );
                        false
                    }
                    None => true,
                });
                if remaining.len() == before {
                    return Err(self.outage(format!(
                        "the batch's transaction did not commit: statement {id} failed: {error}"
                    )));
                }
                Ok(Round::Rejected)
            }
        }
    }
}

/// Leaves every file of `remaining` for a later tick, counting nothing.
fn settle_all(
    remaining: &mut Vec<FileTask>,
    outcomes: &mut HashMap<(String, String), Outcome>,
    reason: &str,
) {
    for f in remaining.drain(..) {
        outcomes.insert(
            (f.key, f.etag),
            Outcome::Failed {
                retryable: true,
                reason: reason.to_owned(),
                cause: Cause::Destination,
            },
        );
    }
}

fn pair(row: Vec<Option<String>>) -> Option<(String, String)> {
    let mut it = row.into_iter();
    Some((it.next()??, it.next()??))
}

impl Redshift {
    async fn ledger_history(&self, query: &super::HistoryQuery) -> Result<Vec<super::LedgerEntry>> {
        self.ensure_ledger().await?;
        // Redshift compares a `Z`-less timestamp.
        let since = query.since_text().trim_end_matches('Z').replace('T', " ");
        let params = [
            ("since".to_owned(), since),
            ("prefix".to_owned(), query.key_prefix.clone()),
        ];
        let rows = self
            .api
            .query(
                &sql::ledger_history(query.limit),
                &params,
                self.query_until(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let mut it = row.into_iter();
                let (key, etag, table, batch, at) = (
                    it.next()??,
                    it.next()??,
                    it.next()??,
                    it.next()??,
                    it.next()??,
                );
                Some(super::LedgerEntry {
                    loaded_at: super::LedgerEntry::time(&at)?,
                    object_key: key,
                    etag,
                    table,
                    rows: None,
                    batch_id: batch,
                })
            })
            .collect())
    }
}

#[async_trait]
impl Destination for Redshift {
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome {
        match self.load_batch(batch, store).await {
            Ok(outcome) => outcome,
            // Nothing the loader can blame on a file: every file stays.
            Err(e) => batch.all_failed_with(&e),
        }
    }

    async fn loaded(&self, files: &[FileTask]) -> Result<Vec<bool>> {
        self.ensure_ledger().await?;
        let seen = self.in_ledger(files).await?;
        Ok(files
            .iter()
            .map(|f| seen.contains(&(f.key.clone(), f.etag.clone())))
            .collect())
    }

    async fn history(
        &self,
        query: &super::HistoryQuery,
    ) -> Result<Option<Vec<super::LedgerEntry>>> {
        self.ledger_history(query).await.map(Some)
    }
}

/// Redshift reads the bytes itself, so a compression that only the
/// object's headers name must be known before the COPY: each `auto` file
/// whose key has no compression extension gets the compression its
/// `Content-Encoding` or `Content-Type` names, if any (one HEAD each, 16
/// at once). A HEAD that fails leaves the file as its name says; the COPY
/// then reports what it finds.
async fn resolve_compression(store: &dyn ObjectStore, files: &mut [FileTask]) {
    use crate::config::Compression;
    use crate::format::{compression_for, compression_of};
    use futures::StreamExt;
    let unknown: Vec<(usize, String)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            // Parquet's codecs are inside the file.
            f.spec.format != crate::config::Format::Parquet
                && f.spec.compression == Compression::Auto
                && compression_of(&f.key, Compression::Auto) == Compression::None
        })
        .map(|(i, f)| (i, f.key.clone()))
        .collect();
    let found: Vec<(usize, String, crate::Result<crate::store::Content>)> =
        futures::stream::iter(unknown)
            .map(|(i, key)| async move {
                let content = store.content(&key).await;
                (i, key, content)
            })
            .buffer_unordered(16)
            .collect()
            .await;
    for (i, key, content) in found {
        match content {
            Ok(content) => {
                let c = compression_for(&key, Compression::Auto, &content);
                if c != Compression::None {
                    files[i].spec.compression = c;
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %crate::error::chain(&e), "could not read the object's headers; its compression is what its name says")
            }
        }
    }
}
