//! PostgreSQL: `COPY ... FROM STDIN`, streamed.
//!
//! A batch is one transaction with a savepoint per file, so many small
//! files share one commit and a bad file still rolls back alone. Parsing
//! runs on a blocking thread and hands encoded chunks through a small
//! bounded channel, so reading the next bytes overlaps the COPY and memory
//! stays flat whatever the file's size (at most `CHUNKS_IN_FLIGHT` chunks
//! per file, for the file being copied and `READ_AHEAD` files after it).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, OnceCell};
use tokio_postgres::{Client, GenericClient};

use super::pg_secret::SecretRef;
use super::pg_tls::Prepared;
use super::{
    column_list, open_records, put_rejected, quote_table, uncommit, Destination, HistoryQuery,
    LedgerEntry, LEDGER_TABLE,
};
use crate::contract::{Batch, BatchOutcome, Cause, FileTask, Outcome};
use crate::error::{chain, Error, Result};
use crate::format::validate::Rejections;
use crate::format::Row;
use crate::store::ObjectStore;

const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;
/// Files read ahead of the one being copied.
const READ_AHEAD: usize = 2;

pub struct Postgres {
    name: String,
    /// Where the connection comes from.
    source: Source,
    /// The connection as last prepared (from the URL once, or from the
    /// secret as last read).
    prepared: tokio::sync::Mutex<Option<Arc<Prepared>>>,
    connect_timeout: Duration,
    ledger_ready: OnceCell<()>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: never print it.
        f.debug_struct("Postgres")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Where a destination's connection comes from.
#[derive(Debug)]
enum Source {
    /// The URL in the config (or its `env:` variable), prepared once.
    Url,
    /// A Secrets Manager secret, read at first connect and again after an
    /// authentication failure.
    Secret {
        secret: SecretRef,
        client: OnceCell<aws_sdk_secretsmanager::Client>,
    },
}

/// What the parsing thread sends to the COPY.
enum Msg {
    Columns(Vec<String>),
    Chunk(Bytes),
    /// Where rows go to a table each (the route's `table_fields`): each
    /// table's rows, spooled in COPY text, once the file is read.
    Spooled(Vec<Spool>),
    /// The rows read, and the records the route's schema set aside.
    Done(u64, Rejections),
    Failed(Error),
}

/// One table's rows of a file, in COPY text, in a temporary file.
struct Spool {
    table: String,
    file: std::fs::File,
}

impl Postgres {
    /// `url` is a connection string, or `secretsmanager:<id>` (see
    /// [`super::pg_secret`]; its client from `shared` when given).
    pub fn new(
        name: &str,
        url: String,
        connect_timeout_secs: u64,
        shared: Option<&aws_config::SdkConfig>,
    ) -> Result<Self> {
        let field = format!("destinations.{name}.url");
        let (source, prepared) = match SecretRef::parse(&url) {
            Some(secret) => (
                Source::Secret {
                    secret,
                    client: match shared {
                        Some(shared) => {
                            OnceCell::new_with(Some(aws_sdk_secretsmanager::Client::new(shared)))
                        }
                        None => OnceCell::new(),
                    },
                },
                None,
            ),
            None => (
                Source::Url,
                Some(Arc::new(super::pg_tls::prepare(&field, &url)?)),
            ),
        };
        Ok(Self {
            name: name.to_owned(),
            source,
            prepared: tokio::sync::Mutex::new(prepared),
            connect_timeout: Duration::from_secs(connect_timeout_secs),
            ledger_ready: OnceCell::new(),
        })
    }

    /// Classifies a PostgreSQL error by whose fault it is (see [`fault`])
    /// and keeps the server's own message and SQLSTATE.
    fn error(&self, what: impl std::fmt::Display, e: tokio_postgres::Error) -> Error {
        let code = e.code().map(|c| c.code().to_owned());
        let (cause, retryable) = fault(code.as_deref());
        let message = match e.as_db_error() {
            Some(db) => {
                let mut m = format!("{what}: {}", db.message());
                if let Some(detail) = db.detail() {
                    m.push_str(&format!("; {detail}"));
                }
                if let Some(place) = db.where_() {
                    m.push_str(&format!("; at {place}"));
                }
                m
            }
            None => format!("{what}: {}", chain(&e)),
        };
        Error::Destination {
            destination: self.name.clone(),
            message,
            code,
            retryable,
            cause,
            source: Some(Box::new(e)),
        }
    }

    /// [`Self::error`], but the destination's fault and retryable whatever
    /// the SQLSTATE: for DDL, where even a unique violation (23505, two
    /// creators racing on the catalog) says nothing about a file.
    fn outage_error(&self, what: impl std::fmt::Display, e: tokio_postgres::Error) -> Error {
        match self.error(what, e) {
            Error::Destination {
                destination,
                message,
                code,
                source,
                ..
            } => Error::Destination {
                destination,
                message,
                code,
                retryable: true,
                cause: Cause::Destination,
                source,
            },
            other => other,
        }
    }

    /// The connection to use: as prepared, or read from the secret when it
    /// has not been read yet or `fresh` asks for it again.
    async fn prepared(&self, fresh: bool) -> Result<Arc<Prepared>> {
        let mut slot = self.prepared.lock().await;
        if let (Some(p), false) = (slot.as_ref(), fresh) {
            return Ok(p.clone());
        }
        let Source::Secret { secret, client } = &self.source else {
            return Ok(slot.clone().expect("a URL is prepared in new"));
        };
        let client = client
            .get_or_init(|| async {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_secretsmanager::Client::new(&shared)
            })
            .await;
        let field = format!("destinations.{}.url", self.name);
        let p = Arc::new(super::pg_secret::read(client, &self.name, &field, secret).await?);
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Connects; with a secret, an authentication failure reads the secret
    /// again, once, and tries once more: a rotation costs one retry.
    async fn connect(&self) -> Result<Client> {
        let first = self.prepared(false).await?;
        match self.connect_with(&first).await {
            Err(Error::Destination {
                code: Some(code), ..
            }) if code.starts_with("28") && matches!(self.source, Source::Secret { .. }) => {
                tracing::info!(destination = %self.name, %code, "authentication failed; reading the secret again");
                let fresh = self.prepared(true).await?;
                self.connect_with(&fresh).await
            }
            other => other,
        }
    }

    async fn connect_with(&self, prepared: &Prepared) -> Result<Client> {
        tracing::debug!(destination = %self.name, sslmode = ?prepared.mode, "connecting");
        let connecting = prepared.config.connect(prepared.tls.clone());
        let (client, connection) =
            match tokio::time::timeout(self.connect_timeout, connecting).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(self.error("connect", e)),
                Err(_) => {
                    return Err(Error::outage(
                        &self.name,
                        format!("connect: no answer within {:?}", self.connect_timeout),
                        None,
                        None,
                    ))
                }
            };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        self.ledger_ready
            .get_or_try_init(|| async {
                let ddl = format!(
                    "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                         object_key TEXT NOT NULL,
                         etag       TEXT NOT NULL,
                         table_name TEXT NOT NULL,
                         rows       BIGINT NOT NULL,
                         batch_id   TEXT NOT NULL,
                         loaded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
                         rejected   BIGINT NOT NULL DEFAULT 0,
                         PRIMARY KEY (object_key, etag)
                     );
                     DO $$ BEGIN
                         IF NOT EXISTS (SELECT 1 FROM pg_attribute
                                        WHERE attrelid = '{LEDGER_TABLE}'::regclass
                                          AND attname = 'rejected' AND NOT attisdropped) THEN
                             ALTER TABLE {LEDGER_TABLE} ADD COLUMN IF NOT EXISTS rejected BIGINT NOT NULL DEFAULT 0;
                         END IF;
                     END $$"
                );
                // A ledger from before rejects were counted gains the column
                // once. The ALTER is asked only then: it takes an exclusive
                // lock, which would wait behind every load in flight (and
                // hold up the loads behind it) on each cold start.
                // Two workers creating the table at once: one loses with a
                // unique violation on the catalog or "already exists"; the
                // table is there. Any other failure is not the files' fault,
                // so it is retryable whatever its SQLSTATE.
                match client.batch_execute(&ddl).await {
                    Err(e)
                        if e.code()
                            .is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42701")) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(self.outage_error("create ledger", e)),
                    Ok(()) => Ok(()),
                }
            })
            .await?;
        Ok(client)
    }

    /// The `(key, ETag)` pairs of `files` the ledger holds.
    async fn in_ledger(
        &self,
        client: &impl GenericClient,
        files: &[FileTask],
    ) -> Result<HashSet<(String, String)>> {
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        Ok(client
            .query(
                &format!("SELECT object_key, etag FROM {LEDGER_TABLE} WHERE object_key = ANY($1)"),
                &[&keys],
            )
            .await
            .map_err(|e| self.error("ledger lookup", e))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn load_batch(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> Result<BatchOutcome> {
        let mut client = self.connect().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.error("begin", e))?;
        let seen = self.in_ledger(&tx, &batch.files).await?;
        // Parsed once per batch, not once per file.
        let ledger_insert = tx
            .prepare(&format!(
                "INSERT INTO {LEDGER_TABLE} (object_key, etag, table_name, rows, batch_id, rejected)
                 VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .await
            .map_err(|e| self.error("prepare ledger insert", e))?;
        let mut tx = tx;
        // Read the next files while the current one is copied: with many
        // small files, the S3 round trips would otherwise add up serially.
        let mut to_read = batch
            .files
            .iter()
            .filter(|f| !seen.contains(&(f.key.clone(), f.etag.clone())));
        let mut ahead: VecDeque<Reading> = VecDeque::new();
        let mut files = Vec::with_capacity(batch.files.len());
        for file in &batch.files {
            if seen.contains(&(file.key.clone(), file.etag.clone())) {
                files.push(file.outcome(Outcome::AlreadyLoaded));
                continue;
            }
            while ahead.len() <= READ_AHEAD {
                match to_read.next() {
                    Some(f) => ahead.push_back(Reading::start(&store, f, &batch.table, &self.name)),
                    None => break,
                }
            }
            let reading = ahead
                .pop_front()
                .expect("a reader was started for every file to load");
            let sp = tx
                .savepoint("s3loader_file")
                .await
                .map_err(|e| self.error("savepoint", e))?;
            let outcome = match self
                .load_file(&sp, batch, file, reading, &ledger_insert, &*store)
                .await
            {
                Ok((rows, rejected)) => {
                    sp.commit()
                        .await
                        .map_err(|e| self.error("release savepoint", e))?;
                    Outcome::Loaded {
                        rows,
                        bytes: file.size,
                        rejected,
                    }
                }
                Err(LoadError::AlreadyLoaded) => {
                    sp.rollback()
                        .await
                        .map_err(|e| self.error("rollback to savepoint", e))?;
                    Outcome::AlreadyLoaded
                }
                // The destination's fault (a missing table, column or
                // permission, a dropped connection): the whole batch stops
                // here and rolls back, and the server's own message goes up.
                // Rolling back to the savepoint would only hide it: after a
                // failed COPY start the connection may not be in a state to
                // take another statement.
                Err(LoadError::Failed(e)) if e.cause() == Cause::Destination => return Err(e),
                Err(LoadError::Failed(e)) => {
                    sp.rollback()
                        .await
                        .map_err(|e| self.error("rollback to savepoint", e))?;
                    Outcome::failed(&e)
                }
            };
            files.push(file.outcome(outcome));
        }
        if let Err(e) = tx.commit().await {
            uncommit(&mut files, &chain(&self.error("commit", e)));
        }
        Ok(BatchOutcome {
            batch_id: batch.id.clone(),
            files,
        })
    }

    async fn load_file(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        batch: &Batch,
        file: &FileTask,
        reading: Reading,
        ledger_insert: &tokio_postgres::Statement,
        store: &dyn ObjectStore,
    ) -> Result<(u64, u64), LoadError> {
        let Reading { mut recv, producer } = reading;
        let columns = match recv.recv().await {
            Some(Msg::Columns(c)) => c,
            Some(Msg::Failed(e)) => return Err(e.into()),
            _ => return Err(worker_gone(&file.key).into()),
        };
        let mut rows = 0;
        let mut rejections = Rejections::default();
        // The tables that took rows, for the ledger (a file whose records
        // each name a table may fill several).
        let mut tables = Vec::new();
        if columns.is_empty() {
            // An empty file: nothing to COPY, but the ledger still records it.
            while let Some(msg) = recv.recv().await {
                match msg {
                    Msg::Failed(e) => return Err(e.into()),
                    Msg::Done(_, r) => rejections = r,
                    _ => {}
                }
            }
        } else if !file.spec.table_fields.is_empty() {
            // Each record names its table: the reading thread spools them
            // apart, then each table takes its rows in one COPY.
            loop {
                match recv.recv().await {
                    Some(Msg::Spooled(spools)) => {
                        for spool in spools {
                            self.create_like(tx, file, &spool.table).await?;
                            self.copy_spool(tx, file, &columns, &spool).await?;
                            tables.push(spool.table);
                        }
                    }
                    Some(Msg::Done(n, r)) => {
                        rows = n;
                        rejections = r;
                        break;
                    }
                    Some(Msg::Failed(e)) => return Err(e.into()),
                    _ => return Err(worker_gone(&file.key).into()),
                }
            }
        } else {
            self.create_like(tx, file, &batch.table).await?;
            let statement = format!(
                "COPY {} ({}) FROM STDIN",
                quote_table(&batch.table),
                column_list(&columns)
            );
            let what = format!("{:?}: COPY into {}", file.key, batch.table);
            let sink = tx
                .copy_in::<_, Bytes>(&statement)
                .await
                .map_err(|e| self.error(&what, e))?;
            futures::pin_mut!(sink);
            loop {
                match recv.recv().await {
                    Some(Msg::Chunk(b)) => sink.send(b).await.map_err(|e| self.error(&what, e))?,
                    Some(Msg::Done(n, r)) => {
                        rows = n;
                        rejections = r;
                        break;
                    }
                    // Returning drops the sink unfinished, which aborts the
                    // COPY (CopyFail); the caller rolls the savepoint back.
                    Some(Msg::Failed(e)) => return Err(e.into()),
                    _ => return Err(worker_gone(&file.key).into()),
                }
            }
            sink.as_mut()
                .finish()
                .await
                .map_err(|e| self.error(&what, e))?;
        }
        let _ = producer.await;
        // Before the commit: a reload after a failed commit writes the same
        // rejects again, and a committed file always has them.
        let rejected = put_rejected(store, file, &rejections).await?;
        let table_name = if tables.is_empty() {
            batch.table.clone()
        } else {
            tables.join(", ")
        };
        let inserted = tx
            .execute(
                ledger_insert,
                &[
                    &file.key,
                    &file.etag,
                    &table_name,
                    &(rows as i64),
                    &batch.id,
                    &(rejected as i64),
                ],
            )
            .await;
        match inserted {
            Ok(_) => Ok((rows, rejected)),
            // Another worker committed the same (key, ETag) while we loaded:
            // ours rolls back, theirs stands.
            Err(e) if e.code().is_some_and(|c| c.code() == "23505") => {
                Err(LoadError::AlreadyLoaded)
            }
            Err(e) => Err(self.error("ledger insert", e).into()),
        }
    }
}

impl Postgres {
    /// Creates `table` like the route's `create_like` table, if it names
    /// one and `table` is missing. Asked for each file, inside its
    /// savepoint: a file that fails rolls its creation back with it, so no
    /// later file may assume the table. Any failure is the destination's
    /// (a missing template, a lost race with another worker creating the
    /// same table: SQLSTATE 23505 here is the catalog's, not the file's)
    /// and retryable.
    async fn create_like(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        file: &FileTask,
        table: &str,
    ) -> Result<()> {
        let Some(like) = &file.spec.create_like else {
            return Ok(());
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)",
            quote_table(table),
            quote_table(like)
        );
        tx.batch_execute(&sql)
            .await
            .map_err(|e| self.outage_error(format_args!("create table {table} like {like}"), e))
    }

    /// COPYs one table's spooled rows.
    async fn copy_spool(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        file: &FileTask,
        columns: &[String],
        spool: &Spool,
    ) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let statement = format!(
            "COPY {} ({}) FROM STDIN",
            quote_table(&spool.table),
            column_list(columns)
        );
        let what = format!("{:?}: COPY into {}", file.key, spool.table);
        let sink = tx
            .copy_in::<_, Bytes>(&statement)
            .await
            .map_err(|e| self.error(&what, e))?;
        futures::pin_mut!(sink);
        let spooled = spool
            .file
            .try_clone()
            .map_err(|e| spool_error(&self.name, file, e))?;
        let mut from = tokio::fs::File::from_std(spooled);
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            let n = from
                .read_buf(&mut buf)
                .await
                .map_err(|e| spool_error(&self.name, file, e))?;
            if n == 0 {
                break;
            }
            sink.send(buf.split().freeze())
                .await
                .map_err(|e| self.error(&what, e))?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| self.error(&what, e))?;
        Ok(())
    }
}

/// The worker's temporary disk failed: not the file's fault.
fn spool_error(destination: &str, file: &FileTask, e: std::io::Error) -> Error {
    Error::outage(
        destination,
        format!("{:?}: spooling rows to a temporary file: {e}", file.key),
        None,
        Some(Box::new(e)),
    )
}

/// A file being read and encoded on a blocking thread.
struct Reading {
    recv: mpsc::Receiver<Msg>,
    producer: tokio::task::JoinHandle<()>,
}

impl Reading {
    /// Starts reading. Dropping the `Reading` stops it: the thread's next
    /// send fails and it returns.
    fn start(store: &Arc<dyn ObjectStore>, file: &FileTask, table: &str, name: &str) -> Self {
        let (send, recv) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let handle = Handle::current();
        let (store, task) = (store.clone(), file.clone());
        let (table, name) = (table.to_owned(), name.to_owned());
        let producer = tokio::task::spawn_blocking(move || {
            let into = Target {
                table: &table,
                destination: &name,
            };
            produce(&store, &task, into, &handle, &send)
        });
        Self { recv, producer }
    }
}

enum LoadError {
    AlreadyLoaded,
    Failed(Error),
}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        LoadError::Failed(e)
    }
}

fn worker_gone(key: &str) -> Error {
    Error::Read {
        key: key.to_owned(),
        source: std::io::Error::other("the reading thread stopped unexpectedly"),
    }
}

/// Where a file's rows go: the batch's table (or template), and the
/// destination's name for errors.
#[derive(Clone, Copy)]
struct Target<'a> {
    table: &'a str,
    destination: &'a str,
}

/// Reads and encodes a file on a blocking thread, feeding the COPY.
fn produce(
    store: &Arc<dyn ObjectStore>,
    file: &FileTask,
    into: Target<'_>,
    handle: &Handle,
    send: &mpsc::Sender<Msg>,
) {
    let (mut records, rejections) = match open_records(store, file, into.table, handle) {
        Ok(r) => r,
        Err(e) => {
            let _ = send.blocking_send(Msg::Failed(e));
            return;
        }
    };
    if send
        .blocking_send(Msg::Columns(records.columns().to_vec()))
        .is_err()
    {
        return;
    }
    if !file.spec.table_fields.is_empty() {
        return spool(records, rejections, file, into, send);
    }
    let mut buf = BytesMut::with_capacity(CHUNK + 4096);
    let mut row = Row::new();
    let mut rows = 0u64;
    loop {
        match records.next_row(&mut row) {
            Ok(true) => {
                rows += 1;
                encode_row(&row, &mut buf);
                // A send error means the COPY side gave up: stop reading.
                if buf.len() >= CHUNK
                    && send
                        .blocking_send(Msg::Chunk(buf.split().freeze()))
                        .is_err()
                {
                    return;
                }
            }
            Ok(false) => break,
            Err(e) => {
                let _ = send.blocking_send(Msg::Failed(e));
                return;
            }
        }
    }
    if !buf.is_empty() && send.blocking_send(Msg::Chunk(buf.freeze())).is_err() {
        return;
    }
    let _ = send.blocking_send(Msg::Done(rows, rejections));
}

/// Reads a file whose records each name their table, writing each table's
/// rows to a temporary file of its own (at most
/// `limits.max_tables_per_file`), then hands the files over.
fn spool(
    mut records: Box<dyn crate::format::RecordReader>,
    rejections: Rejections,
    file: &FileTask,
    into: Target<'_>,
    send: &mpsc::Sender<Msg>,
) {
    use std::io::{Seek, Write};
    let max = file.spec.limits.max_tables_per_file;
    let mut spools: Vec<(String, std::io::BufWriter<std::fs::File>)> = Vec::new();
    let mut buf = BytesMut::with_capacity(4096);
    let mut row = Row::new();
    let mut rows = 0u64;
    let failed = |e: Error| {
        let _ = send.blocking_send(Msg::Failed(e));
    };
    loop {
        match records.next_row(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return failed(e),
        }
        rows += 1;
        let table = records
            .table()
            .expect("a reader with table_fields names each row's table");
        let at = match spools.iter().position(|(t, _)| t == table) {
            Some(at) => at,
            None if spools.len() as u64 >= max => {
                return failed(super::too_many_tables(file, table, records.line()))
            }
            None => match tempfile::tempfile() {
                Ok(f) => {
                    spools.push((table.to_owned(), std::io::BufWriter::new(f)));
                    spools.len() - 1
                }
                Err(e) => return failed(spool_error(into.destination, file, e)),
            },
        };
        buf.clear();
        encode_row(&row, &mut buf);
        if let Err(e) = spools[at].1.write_all(&buf) {
            return failed(spool_error(into.destination, file, e));
        }
    }
    let mut done = Vec::with_capacity(spools.len());
    for (table, writer) in spools {
        let file_done = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.rewind().map(|()| f));
        match file_done {
            Ok(f) => done.push(Spool { table, file: f }),
            Err(e) => return failed(spool_error(into.destination, file, e)),
        }
    }
    if send.blocking_send(Msg::Spooled(done)).is_ok() {
        let _ = send.blocking_send(Msg::Done(rows, rejections));
    }
}

/// COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn encode_row(row: &Row, out: &mut BytesMut) {
    for (i, field) in row.iter().enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        match field {
            None => out.put_slice(b"\\N"),
            Some(value) => {
                // Runs between the bytes that need escaping are copied whole.
                let bytes = value.as_bytes();
                let mut from = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    let escaped: &[u8] = match b {
                        b'\\' => b"\\\\",
                        b'\t' => b"\\t",
                        b'\n' => b"\\n",
                        b'\r' => b"\\r",
                        _ => continue,
                    };
                    out.put_slice(&bytes[from..i]);
                    out.put_slice(escaped);
                    from = i + 1;
                }
                out.put_slice(&bytes[from..]);
            }
        }
    }
    out.put_u8(b'\n');
}

#[async_trait]
impl Destination for Postgres {
    async fn load(&self, batch: &Batch, store: Arc<dyn ObjectStore>) -> BatchOutcome {
        match self.load_batch(batch, store).await {
            Ok(outcome) => outcome,
            // Anything that broke the batch as a whole (connect, begin, a
            // dead connection) leaves every file for another attempt; the
            // transaction did not commit, so nothing is half-loaded.
            Err(e) => batch.all_failed_with(&e),
        }
    }

    async fn loaded(&self, files: &[FileTask]) -> Result<Vec<bool>> {
        let client = self.connect().await?;
        let seen = self.in_ledger(&client, files).await?;
        Ok(files
            .iter()
            .map(|f| seen.contains(&(f.key.clone(), f.etag.clone())))
            .collect())
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Option<Vec<LedgerEntry>>> {
        let client = self.connect().await?;
        // Times as text in UTC: no chrono feature for the driver needed.
        let sql = format!(
            "SELECT object_key, etag, table_name, rows,  batch_id,
                    to_char(loaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM {LEDGER_TABLE}
             WHERE loaded_at >= $1::text::timestamptz AND left(object_key, length($2::text)) = $2::text
             ORDER BY loaded_at, object_key LIMIT $3::bigint"
        );
        let rows = client
            .query(
                &sql,
                &[
                    &query.since_text(),
                    &query.key_prefix,
                    &(query.limit as i64),
                ],
            )
            .await
            .map_err(|e| self.error("ledger history", e))?;
        Ok(Some(
            rows.iter()
                .map(|r| LedgerEntry {
                    object_key: r.get(0),
                    etag: r.get(1),
                    table: r.get(2),
                    rows: Some(r.get::<_, i64>(3).max(0) as u64),
                    batch_id: r.get(4),
                    loaded_at: LedgerEntry::time(r.get(5)).unwrap_or_default(),
                })
                .collect(),
        ))
    }
}

/// Whose fault a PostgreSQL error is, and whether retrying may help, by
/// SQLSTATE class. The file's: 22 (data exception: a value the column
/// rejects, a malformed COPY row), 23 (integrity constraint: NOT NULL,
/// unique, check, foreign key) and 54 (program limit: a row or value too
/// large). Those are permanent. Everything else is the destination's and
/// retryable: no SQLSTATE at all (connection refused or reset, DNS, TLS
/// refused, timeouts), 08 connection, 28 authentication (28P01, 28000:
/// wrong password, no pg_hba entry, non-TLS refused), 3D missing database,
/// 3F missing schema, 42 missing table, column or permission (42P01,
/// 42703, 42501), 53 resources (53300 too many connections), 55 lock not
/// available, 57 shutdown, 40 rollback, 25 transaction state, 0A, XX.
pub(crate) fn fault(sqlstate: Option<&str>) -> (Cause, bool) {
    match sqlstate.and_then(|c| c.get(..2)) {
        Some("22" | "23" | "54") => (Cause::File, false),
        _ => (Cause::Destination, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_separators_and_nulls() {
        let mut out = BytesMut::new();
        encode_row(
            &vec![
                Some("a\tb\\c\nd\re".into()),
                None,
                Some(String::new()),
                Some("\\x\t".into()),
            ],
            &mut out,
        );
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd\\re\t\\N\t\t\\\\x\\t\n");
    }
}
