//! SQLite: the embedded default's warehouse.
//!
//! A batch is one `BEGIN IMMEDIATE` transaction (so concurrent writers
//! queue up rather than interleave), with a savepoint per file. SQLite has
//! one writer at a time anyway, so the process keeps one connection and its
//! batches take turns on it: separate connections racing through a schema
//! change get `SQLITE_BUSY` at once instead of waiting.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, TransactionBehavior};
use tokio::runtime::Handle;

use super::{
    column_list, open_records, put_rejected, quote_table, uncommit, Destination, HistoryQuery,
    LedgerEntry, LEDGER_TABLE,
};
use crate::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use crate::error::{chain, Error, Result};
use crate::format::Row;
use crate::store::ObjectStore;

#[derive(Debug, Clone)]
pub struct Sqlite {
    name: String,
    path: PathBuf,
    /// Opened on first use, kept for the life of the process.
    conn: Arc<Mutex<Option<Connection>>>,
}

impl Sqlite {
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            path: path.into(),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// A constraint the file's rows break, or a value too big, is the
    /// file's fault (permanent); anything else (busy, locked, I/O, a
    /// read-only or corrupt database) is the destination's and retryable.
    fn error(&self, what: impl std::fmt::Display, e: rusqlite::Error) -> Error {
        let code = e.sqlite_error_code();
        let file = matches!(
            code,
            Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
        );
        Error::Destination {
            destination: self.name.clone(),
            message: format!("{what}: {e}"),
            code: code.map(|c| format!("{c:?}")),
            retryable: !file,
            cause: if file {
                Cause::File
            } else {
                Cause::Destination
            },
            source: Some(Box::new(e)),
        }
    }

    /// The ledger rows of `files`, on the shared connection.
    fn loaded_blocking(&self, files: &[FileTask]) -> Result<Vec<bool>> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let conn = slot.as_mut().expect("opened above");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT EXISTS (SELECT 1 FROM {LEDGER_TABLE} WHERE object_key = ?1 AND etag = ?2)"
            ))
            .map_err(|e| self.error("ledger lookup", e))?;
        files
            .iter()
            .map(|f| {
                stmt.query_row(params![f.key, f.etag], |r| r.get(0))
                    .map_err(|e| self.error("ledger lookup", e))
            })
            .collect()
    }

    fn open(&self) -> Result<Connection> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(&self.path).map_err(|e| self.error("open", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(|e| self.error("open", e))?;
        // IMMEDIATE takes the write lock up front, so another process's
        // writer makes us wait (busy_timeout) rather than fail.
        let prepare = format!(
            "PRAGMA journal_mode = WAL;
             BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                 object_key TEXT NOT NULL,
                 etag       TEXT NOT NULL,
                 table_name TEXT NOT NULL,
                 rows       INTEGER NOT NULL,
                 batch_id   TEXT NOT NULL,
                 loaded_at  TEXT NOT NULL,
                 rejected   INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (object_key, etag)
             );
             COMMIT;"
        );
        // Connections racing to switch a new file to WAL get SQLITE_BUSY
        // at once, without the busy handler (it could deadlock there):
        // try again, for as long as the busy timeout would have waited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            match conn.execute_batch(&prepare) {
                Ok(()) => return self.migrate(conn),
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) && std::time::Instant::now() < deadline =>
                {
                    // A BEGIN that went through stays open otherwise.
                    let _ = conn.execute_batch("ROLLBACK");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(self.error("prepare ledger", e)),
            }
        }
    }

    /// Ledgers written before rows could be rejected get the `rejected`
    /// column (0 for their rows).
    fn migrate(&self, conn: Connection) -> Result<Connection> {
        let has: bool = conn
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pragma_table_info('{LEDGER_TABLE}') WHERE name = 'rejected')"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error("prepare ledger", e))?;
        if !has {
            match conn.execute_batch(&format!(
                "ALTER TABLE {LEDGER_TABLE} ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0"
            )) {
                // Another connection added it first.
                Err(e) if e.to_string().contains("duplicate column") => {}
                Err(e) => return Err(self.error("prepare ledger", e)),
                Ok(()) => {}
            }
        }
        Ok(conn)
    }

    fn load_blocking(
        &self,
        batch: &Batch,
        store: &Arc<dyn ObjectStore>,
        handle: &Handle,
    ) -> BatchOutcome {
        // After a panic mid-batch the transaction was rolled back when its
        // guard dropped, so the connection is still good to use.
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match self.open() {
                Ok(c) => *slot = Some(c),
                Err(e) => return batch.all_failed_with(&e),
            }
        }
        let conn = slot.as_mut().expect("opened above");
        let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                return batch.all_failed_with(&self.error("begin", e));
            }
        };
        let mut files = Vec::with_capacity(batch.files.len());
        for file in &batch.files {
            let outcome = match self.load_file(&mut tx, batch, file, store, handle) {
                Ok(o) => o,
                // The destination's fault: the batch stops and rolls back
                // whole (dropping the transaction), every file retryable.
                Err(e) if e.cause() == Cause::Destination => return batch.all_failed_with(&e),
                Err(e) => Outcome::failed(&e),
            };
            files.push(file.outcome(outcome));
        }
        if let Err(e) = tx.commit() {
            let e = self.error("commit", e);
            uncommit(&mut files, &chain(&e));
        }
        BatchOutcome {
            batch_id: batch.id.clone(),
            files,
        }
    }

    fn load_file(
        &self,
        tx: &mut rusqlite::Transaction<'_>,
        batch: &Batch,
        file: &FileTask,
        store: &Arc<dyn ObjectStore>,
        handle: &Handle,
    ) -> Result<Outcome> {
        let seen: bool = tx
            .query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM {LEDGER_TABLE} WHERE object_key = ?1 AND etag = ?2)"),
                params![file.key, file.etag],
                |r| r.get(0),
            )
            .map_err(|e| self.error("ledger lookup", e))?;
        if seen {
            return Ok(Outcome::AlreadyLoaded);
        }
        // Dropping the savepoint without commit rolls the file back alone.
        let sp = tx.savepoint().map_err(|e| self.error("savepoint", e))?;
        let (mut records, rejections) = open_records(store, file, &batch.table, handle)?;
        let per_row = !file.spec.table_fields.is_empty();
        let mut rows = 0u64;
        // The tables that took rows, each with its INSERT.
        let mut tables: Vec<(String, rusqlite::Statement<'_>)> = Vec::new();
        if !records.columns().is_empty() {
            let columns = records.columns().to_vec();
            let mut row = Row::new();
            while records.next_row(&mut row)? {
                rows += 1;
                let table = records.table().unwrap_or(&batch.table);
                let at = match tables.iter().position(|(t, _)| t == table) {
                    Some(at) => at,
                    None => {
                        if per_row && tables.len() as u64 >= file.spec.limits.max_tables_per_file {
                            return Err(super::too_many_tables(file, table, records.line()));
                        }
                        let insert = self.open_table(&sp, file, table, &columns)?;
                        tables.push((table.to_owned(), insert));
                        tables.len() - 1
                    }
                };
                tables[at]
                    .1
                    .execute(params_from_iter(row.iter()))
                    .map_err(|e| self.error(format_args!("{:?}: record {rows}", file.key), e))?;
            }
        } else {
            while records.next_row(&mut Row::new())? {}
        }
        let table_name = if tables.is_empty() {
            batch.table.clone()
        } else {
            let names: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
            names.join(", ")
        };
        drop(tables);
        // Before the commit: a reload after a failed commit writes the
        // same rejects again, and a committed file always has them.
        let rejected = handle.block_on(put_rejected(&**store, file, &rejections))?;
        sp.execute(
            &format!(
                "INSERT INTO {LEDGER_TABLE} (object_key, etag, table_name, rows, batch_id, loaded_at, rejected)
                 VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?6)"
            ),
            params![file.key, file.etag, table_name, rows as i64, batch.id, rejected as i64],
        )
        .map_err(|e| self.error("ledger insert", e))?;
        sp.commit()
            .map_err(|e| self.error("release savepoint", e))?;
        Ok(Outcome::Loaded {
            rows,
            bytes: file.size,
            rejected,
        })
    }
}

impl Sqlite {
    /// Creates `table` if it is missing, and prepares its INSERT. A new
    /// table takes the column types of the route's `create_like` table
    /// when it names one (and a missing template is an outage); else every
    /// column is TEXT, as the file brings it.
    fn open_table<'c>(
        &self,
        sp: &'c rusqlite::Savepoint<'_>,
        file: &FileTask,
        table: &str,
        columns: &[String],
    ) -> Result<rusqlite::Statement<'c>> {
        let quoted = quote_table(table);
        let definition = match &file.spec.create_like {
            Some(like) => self.definition_like(sp, like)?,
            None => columns
                .iter()
                .map(|c| format!("{} TEXT", super::quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        sp.execute(
            &format!("CREATE TABLE IF NOT EXISTS {quoted} ({definition})"),
            [],
        )
        .map_err(|e| self.error(format_args!("create table {table}"), e))?;
        let marks = vec!["?"; columns.len()].join(", ");
        sp.prepare(&format!(
            "INSERT INTO {quoted} ({}) VALUES ({marks})",
            column_list(columns)
        ))
        .map_err(|e| self.error(format_args!("{:?}: insert into {table}", file.key), e))
    }

    /// `like`'s columns as a table definition: names, declared types, NOT
    /// NULL, defaults and primary key.
    fn definition_like(&self, sp: &rusqlite::Savepoint<'_>, like: &str) -> Result<String> {
        let name = like.rsplit('.').next().unwrap_or(like);
        let mut info = sp
            .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(|e| self.error("read create_like table", e))?;
        let columns: Vec<(String, String, bool, Option<String>, i64)> = info
            .query_map([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error("read create_like table", e))?;
        if columns.is_empty() {
            return Err(Error::outage(
                &self.name,
                format!("create_like table {like:?} does not exist"),
                None,
                None,
            ));
        }
        let mut defs: Vec<String> = columns
            .iter()
            .map(|(c, kind, not_null, default, _)| {
                let mut d = format!("{} {kind}", super::quote_ident(c));
                if *not_null {
                    d.push_str(" NOT NULL");
                }
                if let Some(default) = default {
                    d.push_str(&format!(" DEFAULT {default}"));
                }
                d
            })
            .collect();
        let mut keys: Vec<&(String, String, bool, Option<String>, i64)> =
            columns.iter().filter(|c| c.4 > 0).collect();
        keys.sort_by_key(|c| c.4);
        if !keys.is_empty() {
            let names: Vec<String> = keys.iter().map(|c| super::quote_ident(&c.0)).collect();
            defs.push(format!("PRIMARY KEY ({})", names.join(", ")));
        }
        Ok(defs.join(", "))
    }
}

#[async_trait]
impl Destination for Sqlite {
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome {
        let this = self.clone();
        let owned = batch.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || this.load_blocking(&owned, &store, &handle))
            .await
            .unwrap_or_else(|e| {
                batch.all_failed(
                    true,
                    &format!("the SQLite worker failed: {e}"),
                    Cause::Worker,
                )
            })
    }

    async fn loaded(&self, files: &[FileTask]) -> Result<Vec<bool>> {
        let this = self.clone();
        let owned = files.to_vec();
        tokio::task::spawn_blocking(move || this.loaded_blocking(&owned))
            .await
            .map_err(|e| Error::outage(&self.name, format!("ledger lookup: {e}"), None, None))?
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Option<Vec<LedgerEntry>>> {
        let this = self.clone();
        let query = query.clone();
        tokio::task::spawn_blocking(move || this.history_blocking(&query).map(Some))
            .await
            .map_err(|e| Error::outage(&self.name, format!("ledger history: {e}"), None, None))?
    }
}

impl Sqlite {
    fn history_blocking(&self, query: &HistoryQuery) -> Result<Vec<LedgerEntry>> {
        let conn = self.open()?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT object_key, etag, table_name, rows, batch_id, loaded_at FROM {LEDGER_TABLE}
                 WHERE loaded_at >= ?1 AND substr(object_key, 1, length(?2)) = ?2
                 ORDER BY loaded_at, object_key LIMIT ?3"
            ))
            .map_err(|e| self.error("ledger history", e))?;
        let rows = stmt
            .query_map(
                params![query.since_text(), query.key_prefix, query.limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .map_err(|e| self.error("ledger history", e))?;
        rows.map(|r| {
            let (object_key, etag, table, rows, batch_id, at) =
                r.map_err(|e| self.error("ledger history", e))?;
            Ok(LedgerEntry {
                loaded_at: LedgerEntry::time(&at).unwrap_or_default(),
                object_key,
                etag,
                table,
                rows: Some(rows.max(0) as u64),
                batch_id,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger written before records could be rejected gets the column,
    /// its rows counted 0, and opening it again changes nothing.
    #[test]
    fn an_older_ledger_gains_the_rejected_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "CREATE TABLE {LEDGER_TABLE} (object_key TEXT NOT NULL, etag TEXT NOT NULL,
                 table_name TEXT NOT NULL, rows INTEGER NOT NULL, batch_id TEXT NOT NULL,
                 loaded_at TEXT NOT NULL, PRIMARY KEY (object_key, etag));
             INSERT INTO {LEDGER_TABLE} VALUES ('incoming/a.csv', 'e', 't', 3, 'b', '2026-11-01T00:00:00.000Z');"
        ))
        .unwrap();
        drop(old);
        let dest = Sqlite::new("wh", &path);
        for _ in 0..2 {
            let conn = dest.open().unwrap();
            let rejected: i64 = conn
                .query_row(&format!("SELECT rejected FROM {LEDGER_TABLE}"), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(rejected, 0);
        }
    }

    /// Workers with connections of their own opening one fresh database
    /// at once: each must get it. (Two of them switching a new file to WAL
    /// and creating the ledger got `database is locked` at once, without
    /// the busy timeout, and failed a whole batch as an outage: seen once
    /// in `dest_conformance::sqlite::concurrent_loads_of_one_batch_…`.)
    #[test]
    fn connections_racing_to_open_a_new_database_all_get_it() {
        for round in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("wh-{round}.db"));
            let start = Arc::new(std::sync::Barrier::new(8));
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Sqlite::new("wh", path).open().map(|_| ())
                    })
                })
                .collect();
            for t in opened {
                if let Err(e) = t.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }
}
