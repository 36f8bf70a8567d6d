//! The destination contract (`loader::dest`), one test function per rule,
//! run on every destination that keeps a ledger: SQLite, PostgreSQL,
//! PostgreSQL over verified TLS (a second cluster that refuses plaintext),
//! and Redshift (through the Data API
//! stand-in, which runs the statements on PostgreSQL and COPYs from
//! SeaweedFS). Each calls `Destination::load` directly, with batches built
//! by hand, so the rule is the destination's own and not the scheduler's.
//!
//! The rules:
//! * a file whose `(key, ETag)` is in the ledger is `AlreadyLoaded`, its
//!   table untouched, and `loaded` says so;
//! * a bad file fails alone (permanent, its own fault); the others load;
//! * two loads of the same batch at once load each file once;
//! * a commit that fails undoes the files it had marked loaded;
//! * an outage (down, or a missing table) fails every file retryably and
//!   blames none; a value the table rejects blames its file.

use std::path::PathBuf;
use std::sync::Arc;

use loader::contract::{Batch, BatchOutcome, Cause, Outcome};
use loader::dest::Destination;
use loader::store::ObjectStore;
use s3loader_e2e::*;

/// A warehouse of one kind, fresh per test, and how to reach it directly.
enum Warehouse {
    Postgres {
        /// How the destination connects.
        url: String,
        /// The test's own connection, for DDL and counts.
        client: tokio_postgres::Client,
    },
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    /// Through the Data API stand-in, on a PostgreSQL database of its own.
    Redshift {
        cluster: String,
        database: String,
        client: tokio_postgres::Client,
    },
}

impl Warehouse {
    /// PostgreSQL in plaintext (`sslmode=disable`: the test cluster offers
    /// TLS, which the loopback default, `prefer`, would take).
    async fn postgres() -> Self {
        let admin = pg_database().await;
        let client = pg_connect(&admin).await;
        let url = format!("{admin} sslmode=disable");
        Warehouse::Postgres { url, client }
    }

    /// PostgreSQL as RDS runs it: the second cluster, which takes TCP only
    /// over TLS, and `verify-full` against the CA that issued its
    /// certificate.
    async fn postgres_tls() -> Self {
        let (url, client) = pg_tls_with("").await;
        Warehouse::Postgres { url, client }
    }

    async fn redshift() -> Self {
        let admin = pg_database().await;
        Warehouse::Redshift {
            cluster: unique("cluster-"),
            database: pg_dbname(&admin),
            client: pg_connect(&admin).await,
        }
    }

    /// Where the files are: Redshift reads them from S3 itself.
    async fn store(&self) -> (Arc<dyn ObjectStore>, Option<tempfile::TempDir>) {
        match self {
            Warehouse::Redshift { .. } => open_store("seaweedfs").await,
            _ => open_store("local_dir").await,
        }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Warehouse::Sqlite {
            path: dir.path().join("wh.db"),
            _dir: dir,
        }
    }

    /// The `[destinations.wh]` body that reaches it.
    fn toml(&self) -> String {
        match self {
            Warehouse::Postgres { url, .. } => pg_destination(url),
            Warehouse::Sqlite { path, .. } => sqlite_destination(path),
            Warehouse::Redshift {
                cluster, database, ..
            } => redshift_destination(cluster, database),
        }
    }

    /// The same kind, unreachable: nothing listens, or the path cannot be
    /// a database.
    fn down(&self) -> String {
        match self {
            Warehouse::Postgres { .. } => pg_destination(&format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                closed_port()
            )),
            Warehouse::Sqlite { path, .. } => {
                let dir = path.with_extension("is-a-directory");
                std::fs::create_dir_all(&dir).unwrap();
                sqlite_destination(&dir)
            }
            // The cluster answers, the database is not there.
            Warehouse::Redshift { cluster, .. } => {
                redshift_destination(cluster, "no_such_database")
            }
        }
    }

    /// A new instance of the destination, as another worker would build it.
    fn destination(&self) -> Arc<dyn Destination> {
        build(&self.toml())
    }

    async fn execute(&self, sql: &str) {
        match self {
            Warehouse::Postgres { client, .. } | Warehouse::Redshift { client, .. } => {
                client.batch_execute(sql).await.unwrap()
            }
            Warehouse::Sqlite { path, .. } => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
        }
    }

    /// The ledger's keys, in byte order.
    async fn ledger_keys(&self) -> Vec<String> {
        const SQL: &str = "SELECT object_key FROM s3loader_ledger";
        let mut keys: Vec<String> = match self {
            Warehouse::Postgres { client, .. } | Warehouse::Redshift { client, .. } => client
                .query(SQL, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect(),
            Warehouse::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(SQL).unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
        };
        keys.sort();
        keys
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Warehouse::Postgres { client, .. } | Warehouse::Redshift { client, .. } => {
                pg_count(client, sql).await
            }
            Warehouse::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
        }
    }
}

fn build(destination_toml: &str) -> Arc<dyn Destination> {
    let config = config(destination_toml, "");
    loader::dest::build("wh", &config.destinations["wh"], &config.source, None).unwrap()
}

/// Puts each `(name, body)` under `incoming/` and returns one batch of them
/// for `table`.
async fn batch(store: &dyn ObjectStore, table: &str, files: &[(&str, String)]) -> Batch {
    let mut tasks = Vec::new();
    for (name, body) in files {
        let key = format!("incoming/{name}");
        put(store, &key, body.clone()).await;
        tasks.push(file_task(store, &key).await);
    }
    Batch {
        id: unique("batch-"),
        destination: "wh".into(),
        table: table.into(),
        files: tasks,
        check_only: false,
        deadline: None,
    }
}

fn orders(ids: std::ops::Range<u32>) -> String {
    let mut csv = String::from("id,customer,amount,ordered_at\n");
    for i in ids {
        csv += &format!("{i},c{i},1.50,2026-11-01T00:00:00Z\n");
    }
    csv
}

fn outcomes(o: &BatchOutcome) -> Vec<&Outcome> {
    o.files.iter().map(|f| &f.outcome).collect()
}

fn count_of(o: &BatchOutcome, want: fn(&Outcome) -> bool) -> usize {
    o.files.iter().filter(|f| want(&f.outcome)).count()
}

fn is_loaded(o: &Outcome) -> bool {
    matches!(o, Outcome::Loaded { .. })
}

fn is_already(o: &Outcome) -> bool {
    *o == Outcome::AlreadyLoaded
}

/// Every file failed retryably, blamed on the destination.
fn assert_outage(o: &BatchOutcome) {
    for f in &o.files {
        assert!(
            matches!(
                f.outcome,
                Outcome::Failed {
                    retryable: true,
                    cause: Cause::Destination,
                    ..
                }
            ),
            "{}: {:?}",
            f.key,
            f.outcome
        );
    }
}

async fn a_ledger_hit_is_already_loaded(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    wh.execute(ORDERS_DDL).await;
    let dest = wh.destination();
    let first = batch(&*store, "orders", &[("a.csv", orders(0..2))]).await;
    let out = dest.load(&first, store.clone()).await;
    assert_eq!(
        outcomes(&out),
        [&Outcome::Loaded {
            rows: 2,
            bytes: first.files[0].size,
            rejected: 0,
        }]
    );
    let never = batch(&*store, "orders", &[("b.csv", orders(2..3))]).await;
    let asked = [first.files[0].clone(), never.files[0].clone()];
    assert_eq!(dest.loaded(&asked).await.unwrap(), [true, false]);

    // Again, in a new batch, through a new instance: the ledger decides.
    let again = Batch {
        id: unique("batch-"),
        ..first.clone()
    };
    let out = wh.destination().load(&again, store.clone()).await;
    assert_eq!(outcomes(&out), [&Outcome::AlreadyLoaded]);
    assert_eq!(wh.count("SELECT count(*) FROM orders").await, 2);
    assert_eq!(wh.count("SELECT count(*) FROM s3loader_ledger").await, 1);
}

async fn a_bad_file_fails_alone(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    wh.execute(ORDERS_DDL).await;
    let b = batch(
        &*store,
        "orders",
        &[
            ("good-1.csv", orders(0..3)),
            ("ragged.csv", "id,customer,amount,ordered_at\n9,x\n".into()),
            // NOT NULL: a value the table rejects is the file's fault.
            (
                "null-customer.csv",
                "id,customer,amount,ordered_at\n8,,1,2026-11-01T00:00:00Z\n".into(),
            ),
            ("good-2.csv", orders(3..5)),
        ],
    )
    .await;
    let out = wh.destination().load(&b, store.clone()).await;
    let o = outcomes(&out);
    assert!(is_loaded(o[0]) && is_loaded(o[3]), "{o:?}");
    for bad in [o[1], o[2]] {
        assert!(
            matches!(
                bad,
                Outcome::Failed {
                    retryable: false,
                    cause: Cause::File,
                    ..
                }
            ),
            "{bad:?}"
        );
    }
    assert_eq!(wh.count("SELECT count(*) FROM orders").await, 5);
    assert_eq!(wh.count("SELECT count(*) FROM s3loader_ledger").await, 2);
}

async fn concurrent_loads_of_one_batch_load_each_file_once(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    wh.execute(ORDERS_DDL).await;
    let files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("orders/{i}.csv"), orders(i..i + 1)))
        .collect();
    let named: Vec<(&str, String)> = files.iter().map(|(k, b)| (k.as_str(), b.clone())).collect();
    let b = batch(&*store, "orders", &named).await;
    // No scheduler and no lease: two workers get the same batch at once.
    let (d1, d2) = (wh.destination(), wh.destination());
    let (o1, o2) = tokio::join!(d1.load(&b, store.clone()), d2.load(&b, store.clone()));
    assert_eq!(
        count_of(&o1, is_loaded) + count_of(&o2, is_loaded),
        20,
        "{o1:?} {o2:?}"
    );
    assert_eq!(
        count_of(&o1, is_already) + count_of(&o2, is_already),
        20,
        "{o1:?} {o2:?}"
    );
    assert_eq!(wh.count("SELECT count(*) FROM orders").await, 20);
}

async fn a_failed_commit_undoes_what_it_marked_loaded(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    // Checked at COMMIT, not at the insert: the rows go in, the commit fails.
    wh.execute(
        "CREATE TABLE parents (name text PRIMARY KEY);
         INSERT INTO parents VALUES ('p');
         CREATE TABLE children (id int, parent text REFERENCES parents (name) DEFERRABLE INITIALLY DEFERRED);",
    )
    .await;
    let b = batch(
        &*store,
        "children",
        &[
            ("has-parent.csv", "id,parent\n1,p\n".into()),
            ("orphan.csv", "id,parent\n2,nobody\n".into()),
        ],
    )
    .await;
    let out = wh.destination().load(&b, store.clone()).await;
    for f in &out.files {
        match &f.outcome {
            Outcome::Failed {
                retryable: true,
                reason,
                ..
            } => assert!(reason.contains("did not commit"), "{reason}"),
            other => panic!("{}: {other:?}", f.key),
        }
    }
    assert_eq!(wh.count("SELECT count(*) FROM children").await, 0);
    assert_eq!(wh.count("SELECT count(*) FROM s3loader_ledger").await, 0);
}

async fn an_outage_fails_every_file_retryably_and_blames_none(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    let b = batch(
        &*store,
        "orders",
        &[("a.csv", orders(0..2)), ("b.csv", orders(2..4))],
    )
    .await;
    let out = build(&wh.down()).load(&b, store.clone()).await;
    assert_outage(&out);
    assert!(build(&wh.down()).loaded(&b.files).await.is_err());
}

/// Arbitrary keys (proptest-drawn: unicode, quotes, `%`, `+`, up to 1,024
/// bytes) through every statement the destination builds: each file
/// loads once, the ledger holds its key byte for byte, and a second load
/// finds every one already loaded.
async fn arbitrary_keys_reach_the_ledger_unchanged(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    wh.execute(ORDERS_DDL).await;
    let names = arbitrary_keys("", 12, 7);
    let files: Vec<(&str, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), orders(i as u32..i as u32 + 1)))
        .collect();
    let b = batch(&*store, "orders", &files).await;
    let out = wh.destination().load(&b, store.clone()).await;
    assert_eq!(count_of(&out, is_loaded), names.len(), "{out:?}");
    let mut wanted: Vec<String> = names.iter().map(|n| format!("incoming/{n}")).collect();
    wanted.sort();
    assert_eq!(wh.ledger_keys().await, wanted);
    let again = Batch {
        id: unique("batch-"),
        ..b.clone()
    };
    let out = wh.destination().load(&again, store.clone()).await;
    assert_eq!(count_of(&out, is_already), names.len(), "{out:?}");
    assert_eq!(
        wh.count("SELECT count(*) FROM orders").await,
        names.len() as i64
    );
}

// --- Each rule on each destination ------------------------------------------

/// One test per rule, each on the warehouse `$warehouse` makes.
macro_rules! rules_on {
    ($module:ident, $warehouse:expr, [$($rule:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    super::$rule($warehouse).await;
                }
            )*
        }
    };
}

macro_rules! on_every_destination {
    ($rules:tt) => {
        rules_on!(postgres, Warehouse::postgres().await, $rules);
        rules_on!(postgres_tls, Warehouse::postgres_tls().await, $rules);
        rules_on!(sqlite, Warehouse::sqlite(), $rules);
        rules_on!(redshift, Warehouse::redshift().await, $rules);
    };
}

/// PostgreSQL and Redshift tables must exist: a missing one is an outage.
/// (SQLite creates the tables it loads.)
async fn a_missing_table_is_an_outage(wh: Warehouse) {
    let (store, _dir) = wh.store().await;
    let b = batch(&*store, "orders", &[("a.csv", orders(0..2))]).await;
    assert_outage(&wh.destination().load(&b, store.clone()).await);
}

rules_on!(
    postgres_only,
    Warehouse::postgres().await,
    [a_missing_table_is_an_outage]
);
rules_on!(
    redshift_only,
    Warehouse::redshift().await,
    [a_missing_table_is_an_outage]
);

on_every_destination!([
    a_ledger_hit_is_already_loaded,
    arbitrary_keys_reach_the_ledger_unchanged,
    a_bad_file_fails_alone,
    concurrent_loads_of_one_batch_load_each_file_once,
    a_failed_commit_undoes_what_it_marked_loaded,
    an_outage_fails_every_file_retryably_and_blames_none,
]);
