//! The queue's promises, each against real services (SeaweedFS, moto,
//! PostgreSQL, the local directory with SQLite): no file is lost,
//! overwritten, failed by an outage, or loaded twice.

use std::sync::Arc;

use async_trait::async_trait;
use fanout::{Fanout, LocalFanout};
use loader::config::Config;
use loader::contract::{Batch, BatchOutcome, Cause, Outcome};
use loader::layout::versioned;
use loader::store::{archive, ObjectStore};
use loader::worker::Worker;
use s3loader_e2e::*;
use scheduler::attempts::Attempts;
use scheduler::ops::reprocess;
use scheduler::report::{FileResult, TickReport};

const HEADER: &str = "id,customer,amount,ordered_at\n";

fn row(id: u32, customer: &str) -> String {
    format!("{id},{customer},1,2026-11-01T00:00:00Z\n")
}

fn csv(rows: &[(u32, &str)]) -> String {
    let mut out = HEADER.to_owned();
    for (id, c) in rows {
        out.push_str(&row(*id, c));
    }
    out
}

async fn text(store: &dyn ObjectStore, key: &str) -> String {
    String::from_utf8(read(store, key).await).unwrap()
}

/// A warehouse for a test: SeaweedFS into PostgreSQL (plain, or the
/// TLS-only cluster over verified TLS), SeaweedFS into Redshift (the Data API
/// stand-in), or a directory into SQLite.
struct Setup {
    store: Arc<dyn ObjectStore>,
    destination: String,
    pg: Option<tokio_postgres::Client>,
    /// The stand-in's cluster, for Redshift.
    cluster: Option<String>,
    /// The store keeps a backslash in a key (SeaweedFS makes it a slash).
    backslash: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Setup {
    async fn seaweedfs_postgres() -> Self {
        let (url, pg) = pg_with(ORDERS_DDL).await;
        Self {
            store: arc(seaweedfs().await),
            destination: pg_destination(&format!("{url} sslmode=disable")),
            pg: Some(pg),
            cluster: None,
            backslash: false,
            _dir: None,
        }
    }

    /// The TLS-only cluster, verified against the test CA.
    async fn seaweedfs_postgres_tls() -> Self {
        let (url, pg) = pg_tls_with(ORDERS_DDL).await;
        Self {
            store: arc(seaweedfs().await),
            destination: pg_destination(&url),
            pg: Some(pg),
            cluster: None,
            backslash: false,
            _dir: None,
        }
    }

    async fn seaweedfs_redshift() -> Self {
        let (url, pg) = pg_with(ORDERS_DDL).await;
        let cluster = unique("cluster-");
        Self {
            store: arc(seaweedfs().await),
            destination: redshift_destination(&cluster, &pg_dbname(&url)),
            pg: Some(pg),
            cluster: Some(cluster),
            backslash: false,
            _dir: None,
        }
    }

    /// Redshift reading from moto, whose keys keep a backslash.
    async fn moto_redshift() -> Self {
        Self {
            store: arc(moto().await),
            backslash: true,
            ..Self::seaweedfs_redshift().await
        }
    }

    /// The COPY statements Redshift has run so far (None elsewhere).
    fn copies(&self) -> Option<u64> {
        self.cluster
            .as_deref()
            .map(|c| redshift_stats(c)["copies"].as_u64().unwrap())
    }

    fn local_sqlite() -> Self {
        let (store, dir) = local();
        Self {
            store: arc(store),
            destination: sqlite_destination(&dir.path().join("wh.db")),
            pg: None,
            cluster: None,
            backslash: true,
            _dir: Some(dir),
        }
    }

    fn config(&self, tick: &str) -> Config {
        config(&self.destination, tick)
    }

    /// Rows in `orders` with this id.
    async fn count(&self, id: u32) -> i64 {
        match &self.pg {
            Some(pg) => pg_count(pg, &format!("SELECT count(*) FROM orders WHERE id = {id}")).await,
            None => {
                let db = self._dir.as_ref().unwrap().path().join("wh.db");
                let conn = rusqlite::Connection::open(db).unwrap();
                conn.query_row(
                    "SELECT count(*) FROM orders WHERE id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .unwrap()
            }
        }
    }
}

// --- reprocess never overwrites ---------------------------------------------

async fn reprocess_never_overwrites(store: Arc<dyn ObjectStore>) {
    let s = &*store;
    let cfg = config("kind = \"sqlite\"\npath = \"unused.db\"", "");
    put(s, "failed/orders/a.csv", "the version that failed").await;
    put(
        s,
        "incoming/orders/a.csv",
        "a corrected file the producer sent",
    )
    .await;
    let tagged = versioned("failed/orders/b.csv", "\"some-etag\"");
    put(s, &tagged, "a second version that failed").await;

    let r = reprocess(&cfg, s, "orders/", false, &scheduler::progress::Quiet)
        .await
        .unwrap();
    assert_eq!(r.conflicts.len(), 1, "{r:?}");
    assert_eq!(r.conflicts[0].key, "failed/orders/a.csv");
    assert_eq!(r.conflicts[0].target, "incoming/orders/a.csv");
    assert_eq!(r.moved.len(), 1, "{r:?}");
    assert_eq!(
        (r.moved[0].from.as_str(), r.moved[0].to.as_str()),
        (tagged.as_str(), "incoming/orders/b.csv"),
        "the version tag comes off on the way back"
    );
    assert_eq!(
        text(s, "incoming/orders/a.csv").await,
        "a corrected file the producer sent"
    );
    assert_eq!(
        text(s, "failed/orders/a.csv").await,
        "the version that failed"
    );
    assert_eq!(
        text(s, "incoming/orders/b.csv").await,
        "a second version that failed"
    );
    assert_eq!(keys(s, "failed/").await, vec!["failed/orders/a.csv"]);
}

mod reprocess_on {
    use super::reprocess_never_overwrites;
    s3loader_e2e::on_stores!([seaweedfs, moto, local_dir][reprocess_never_overwrites]);
}

// --- archive names never collide --------------------------------------------

async fn archive_names_never_collide(w: Setup) {
    let s = &*w.store;
    let other = csv(&[(99, "someone else")]);
    put(s, "processed/orders/a.csv", other.clone()).await;
    put(s, "incoming/orders/a.csv", csv(&[(1, "new")])).await;
    let same = csv(&[(2, "same bytes")]);
    put(s, "processed/orders/same.csv", same.clone()).await;
    put(s, "incoming/orders/same.csv", same.clone()).await;
    put(s, "failed/orders/bad.csv", "an older failure").await;
    put(s, "errors/orders/bad.csv.json", "{\"older\": true}").await;
    put(s, "incoming/orders/bad.csv", format!("{HEADER}3,short\n")).await;
    put(s, "errors/orders/bad2.csv.json", "{\"older\": true}").await;
    put(s, "incoming/orders/bad2.csv", format!("{HEADER}4,short\n")).await;
    let a_etag = s.head("incoming/orders/a.csv").await.unwrap().etag;
    let bad_etag = s.head("incoming/orders/bad.csv").await.unwrap().etag;

    let r = scheduler(w.config(""), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((r.loaded, r.failed, r.move_errors), (2, 2, 0), "{r}");

    let a_to = versioned("processed/orders/a.csv", &a_etag);
    assert_eq!(
        result_of(&r, "incoming/orders/a.csv").moved_to.as_deref(),
        Some(a_to.as_str())
    );
    assert_eq!(
        text(s, "processed/orders/a.csv").await,
        other,
        "not replaced"
    );
    assert_eq!(text(s, &a_to).await, csv(&[(1, "new")]));
    assert_eq!(
        result_of(&r, "incoming/orders/same.csv")
            .moved_to
            .as_deref(),
        Some("processed/orders/same.csv"),
        "the same bytes again: one copy, no versioned name"
    );
    assert_eq!(keys(s, "processed/").await.len(), 3);

    let bad_to = versioned("failed/orders/bad.csv", &bad_etag);
    assert_eq!(
        result_of(&r, "incoming/orders/bad.csv").moved_to.as_deref(),
        Some(bad_to.as_str())
    );
    assert_eq!(text(s, "failed/orders/bad.csv").await, "an older failure");
    assert_eq!(
        text(s, "errors/orders/bad.csv.json").await,
        "{\"older\": true}"
    );
    let rel = bad_to.strip_prefix("failed/").unwrap();
    let report = error_report(s, rel).await;
    assert_eq!(report["failed_key"], bad_to.as_str(), "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("line 2"),
        "{report}"
    );

    // bad2's place in failed/ was free, its report's was not: both reports
    // stay, the new one named after the tick.
    assert_eq!(
        text(s, "errors/orders/bad2.csv.json").await,
        "{\"older\": true}"
    );
    let ours = format!("errors/orders/bad2.csv~{}.json", r.tick_id);
    let report: serde_json::Value = serde_json::from_slice(&read(s, &ours).await).unwrap();
    assert_eq!(report["failed_key"], "failed/orders/bad2.csv");

    // Reprocess understands versioned names: both versions of bad.csv want
    // incoming/orders/bad.csv; one goes back, the other waits its turn.
    let cfg = w.config("");
    let back = reprocess(&cfg, s, "orders/", false, &scheduler::progress::Quiet)
        .await
        .unwrap();
    assert_eq!((back.moved.len(), back.conflicts.len()), (2, 1), "{back:?}");
    assert!(back.moved.iter().all(|m| !m.to.contains("~v")), "{back:?}");
    assert_eq!(w.count(1).await, 1);
    assert_eq!(w.count(2).await, 1);
}

// --- an outage is not a bad file --------------------------------------------

/// Runs more ticks than `max_attempts` against a destination that refuses
/// in some way: the file never fails, no attempt is counted, and the
/// server's own message and code are in the report.
async fn refused(url: &str, file: String, expect: &[&str]) {
    let store = arc(seaweedfs().await);
    let s = &*store;
    put(s, "incoming/orders/a.csv", file).await;
    // The URL goes through an env: reference, as a real password would.
    let var = format!("S3L_TEST_URL_{}", unique("").to_uppercase());
    std::env::set_var(&var, url);
    let sched = scheduler(
        config(&pg_destination(&format!("env:{var}")), "max_attempts = 2"),
        store.clone(),
    );
    for _ in 0..4 {
        let r = sched.tick().await.unwrap();
        assert_eq!((r.loaded, r.failed, r.retried), (0, 0, 1), "{r}");
        assert_eq!(r.destination_errors, 1, "{r}");
        let line = result_of(&r, "incoming/orders/a.csv");
        assert_eq!(line.attempts, None, "no attempt counted: {r}");
        let why = &r.unavailable["wh"];
        for e in expect {
            assert!(why.contains(e), "expected {e:?} in {why:?}");
        }
        assert!(!why.contains("unexpected message"), "{why}");
        assert_eq!(keys(s, "incoming/").await, vec!["incoming/orders/a.csv"]);
        assert!(keys(s, "failed/").await.is_empty());
    }
    std::env::remove_var(&var);
}

fn pg_as(user_and_more: &str, dbname: &str) -> String {
    service("S3LOADER_TEST_PG")
        .replace("user=postgres", user_and_more)
        .replace("dbname=postgres", &format!("dbname={dbname}"))
}

/// Tests of a login the server refuses: `name: user, database => what the
/// report must say`.
macro_rules! refused_logins {
    ($($name:ident: $user:expr, $db:expr => $expect:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            refused(&pg_as($user, &$db), csv(&[(1, "a")]), &$expect).await;
        }
    )*};
}

refused_logins! {
    a_wrong_password_is_an_outage: "user=s3l_password password=wrong", "postgres"
        => ["password authentication failed", "[28P01]"];
    a_server_that_refuses_plaintext_is_an_outage: "user=s3l_tls_only sslmode=disable", "postgres"
        => ["no encryption", "[28000]"];
    a_server_certificate_from_the_wrong_ca_is_an_outage:
        &format!("user=s3l_tls_only sslmode=verify-full sslrootcert={}", service("S3LOADER_TEST_PG_WRONG_CA")),
        "postgres"
        => ["TLS handshake", "invalid peer certificate"];
    a_missing_database_is_an_outage: "user=postgres", unique("absent_")
        => ["does not exist", "[3D000]"];
}

/// The second cluster takes TCP only over TLS, as RDS does by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_only_cluster_refuses_plaintext_as_an_outage() {
    let url = format!("{} sslmode=disable", service("S3LOADER_TEST_PG_TLS"));
    refused(
        &url,
        csv(&[(1, "a")]),
        &["no pg_hba.conf entry", "no encryption", "[28000]"],
    )
    .await;
}

/// A new role, created by `admin` with `options`, logs into `dbname` and
/// is refused.
async fn refused_role(
    admin: &tokio_postgres::Client,
    options: &str,
    dbname: &str,
    expect: &[&str],
) {
    let role = unique("s3l_role_");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN {options}"))
        .await
        .unwrap();
    refused(
        &pg_as(&format!("user={role}"), dbname),
        csv(&[(1, "a")]),
        expect,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_is_an_outage_named_by_the_server() {
    let (url, admin) = pg_with(ORDERS_DDL).await;
    admin.batch_execute("DROP TABLE orders").await.unwrap();
    refused(
        &url,
        csv(&[(1, "a")]),
        &["relation \"orders\" does not exist", "[42P01]"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_column_is_an_outage() {
    let (url, _) = pg_with(ORDERS_DDL).await;
    refused(
        &url,
        "id,customer,amount,ordered_at,coupon\n1,a,1,2026-11-01T00:00:00Z,X\n".to_owned(),
        &[
            "column \"coupon\" of relation \"orders\" does not exist",
            "[42703]",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_an_outage() {
    let (url, admin) = pg_with(ORDERS_DDL).await;
    let dbname = url.split("dbname=").nth(1).unwrap().to_owned();
    refused_role(&admin, "", &dbname, &["permission denied", "[42501]"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_is_an_outage() {
    let admin = pg_connect(&service("S3LOADER_TEST_PG")).await;
    let expect = ["too many connections", "[53300]"];
    refused_role(&admin, "CONNECTION LIMIT 0", "postgres", &expect).await;
}

/// The file's own faults still fail it, at once, beside good files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_reads_as_postgresql_reads_it() {
    let w = Setup::seaweedfs_postgres().await;
    let s = &*w.store;
    put(
        s,
        "incoming/orders/quoted-empty.csv",
        format!("{HEADER}1,\"\",1,2026-11-01T00:00:00Z\n"),
    )
    .await;
    put(
        s,
        "incoming/orders/unquoted-empty.csv",
        format!("{HEADER}2,,1,2026-11-01T00:00:00Z\n"),
    )
    .await;
    put(
        s,
        "incoming/orders/open-quote.csv",
        format!("{HEADER}3,\"never closed,1,2026-11-01T00:00:00Z\n4,x,1,2026-11-01T00:00:00Z\n"),
    )
    .await;
    let r = scheduler(w.config(""), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((r.loaded, r.failed), (1, 2), "{r}");
    let pg = w.pg.as_ref().unwrap();
    assert_eq!(
        pg_count(
            pg,
            "SELECT count(*) FROM orders WHERE id = 1 AND customer = ''"
        )
        .await,
        1,
        "\"\" is an empty string"
    );
    let null = result_of(&r, "incoming/orders/unquoted-empty.csv");
    let reason = null.reason.as_deref().unwrap();
    assert!(
        reason.contains("null value in column \"customer\"") && reason.contains("[23502]"),
        "an unquoted empty field is NULL, and NOT NULL is the file's fault: {reason}"
    );
    let open = result_of(&r, "incoming/orders/open-quote.csv");
    assert!(
        open.reason
            .as_deref()
            .unwrap()
            .contains("line 2: a quoted field opened on this line is never closed"),
        "{r}"
    );
    assert_eq!(pg_count(pg, "SELECT count(*) FROM orders").await, 1);
}

// --- a file goes to failed/ only after the ledger says it was not loaded -----

/// Runs the real worker, then loses its answer, as when a COMMIT reply or
/// an invoke's response is lost. Ledger checks are answered truthfully.
struct AnswerLost(LocalFanout);

#[async_trait]
impl Fanout for AnswerLost {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        let real = self.0.dispatch(batch.clone()).await;
        if batch.check_only {
            return real;
        }
        batch.all_failed(
            true,
            "no answer: the invoke timed out after the load committed",
            Cause::Worker,
        )
    }
}

async fn the_ledger_decides_before_failed(w: Setup) {
    let s = &*w.store;
    put(s, "incoming/orders/a.csv", csv(&[(1, "a")])).await;
    put(s, "incoming/orders/b.csv", csv(&[(2, "b")])).await;
    let cfg = w.config("max_attempts = 1");
    let worker = Worker::from_config(&cfg, w.store.clone()).unwrap();
    let lying = scheduler_with(
        cfg.clone(),
        w.store.clone(),
        Arc::new(AnswerLost(LocalFanout::new(worker))),
    );
    for _ in 0..3 {
        lying.tick().await.unwrap();
    }
    assert!(keys(s, "incoming/").await.is_empty());
    assert!(
        keys(s, "failed/").await.is_empty(),
        "loaded files never fail"
    );
    assert_eq!(
        keys(s, "processed/").await,
        vec!["processed/orders/a.csv", "processed/orders/b.csv"]
    );
    assert_eq!((w.count(1).await, w.count(2).await), (1, 1));
    // Reprocessing finds nothing to do, and another tick loads nothing.
    let back = reprocess(&cfg, s, "", false, &scheduler::progress::Quiet)
        .await
        .unwrap();
    assert!(back.moved.is_empty());
    let r = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!(r.selected, 0);
    assert_eq!((w.count(1).await, w.count(2).await), (1, 1));
}

// --- a poison file cannot take its neighbours down ---------------------------

/// A worker that dies (as on an OOM kill) whenever its batch holds the
/// poison file, having committed nothing.
struct Poison(LocalFanout);

#[async_trait]
impl Fanout for Poison {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        if !batch.check_only && batch.files.iter().any(|f| f.key.contains("poison")) {
            return batch.all_failed(
                true,
                "the loader function failed (Runtime.ExitError): signal: killed",
                Cause::Worker,
            );
        }
        self.0.dispatch(batch).await
    }
}

async fn a_poison_file_fails_alone(w: Setup) {
    let s = &*w.store;
    put(s, "incoming/orders/1.csv", csv(&[(1, "a")])).await;
    put(s, "incoming/orders/2-poison.csv", csv(&[(2, "p")])).await;
    put(s, "incoming/orders/3.csv", csv(&[(3, "c")])).await;
    let cfg = w.config("max_attempts = 2");
    let worker = Worker::from_config(&cfg, w.store.clone()).unwrap();
    let sched = scheduler_with(
        cfg,
        w.store.clone(),
        Arc::new(Poison(LocalFanout::new(worker))),
    );
    let r = sched.tick().await.unwrap();
    assert_eq!((r.batches, r.retried, r.loaded), (1, 3, 0), "{r}");
    assert!(r.files.iter().all(|l| l.attempts.is_none()), "{r}");
    let r = sched.tick().await.unwrap();
    assert_eq!((r.batches, r.loaded, r.retried), (3, 2, 1), "split: {r}");
    assert_eq!(
        result_of(&r, "incoming/orders/2-poison.csv").attempts,
        Some(1)
    );
    let r = sched.tick().await.unwrap();
    assert_eq!(r.failed, 1, "{r}");
    let report = error_report(s, "orders/2-poison.csv").await;
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("the worker died or timed out while loading this file alone"),
        "{reason}"
    );
    assert_eq!(report["attempts"], 2);
    assert!(keys(s, "incoming/").await.is_empty());
    assert_eq!(
        (w.count(1).await, w.count(2).await, w.count(3).await),
        (1, 0, 1)
    );
}

// --- every warehouse, the same pipeline --------------------------------------

/// Ragged rows fail their file alone, named by file and line; keys with
/// quotes, a backslash, `;`, `--`, spaces and unicode load as any other.
async fn bad_rows_and_hostile_keys_drain(w: Setup) {
    let s = &*w.store;
    let mut hostile = vec![
        "incoming/orders/it's a \"quoted\" name + ü 100%.csv",
        "incoming/orders/'); DROP TABLE orders; --.csv",
        "incoming/orders/semi;colon -- not a comment.csv",
    ];
    if w.backslash {
        hostile.push("incoming/orders/back\\slash\\'.csv");
    }
    for (i, k) in hostile.iter().enumerate() {
        put(s, k, csv(&[(100 + i as u32, "o'brien")])).await;
    }
    put(s, "incoming/orders/good.csv", csv(&[(1, "a"), (2, "b")])).await;
    put(
        s,
        "incoming/orders/short-row.csv",
        format!("{HEADER}{}21,y\n", row(20, "x")),
    )
    .await;
    put(
        s,
        "incoming/orders/long-row.csv",
        format!(
            "{HEADER}{}31,y,1,2026-11-01T00:00:00Z,extra\n",
            row(30, "x")
        ),
    )
    .await;
    let sched = scheduler(w.config(""), w.store.clone());
    let r = sched.tick().await.unwrap();
    assert_eq!(
        (r.loaded, r.failed, r.retried),
        (1 + hostile.len() as u64, 2, 0),
        "{r}"
    );
    for k in &hostile {
        assert_eq!(result_of(&r, k).result, FileResult::Loaded, "{k}: {r}");
    }
    for id in [1, 2].into_iter().chain(100..100 + hostile.len() as u32) {
        assert_eq!(w.count(id).await, 1, "id {id}");
    }
    for id in [20, 21, 30, 31] {
        assert_eq!(w.count(id).await, 0, "no rows of a failed file: id {id}");
    }
    for bad in ["short-row", "long-row"] {
        let report = error_report(s, &format!("orders/{bad}.csv")).await;
        let reason = report["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("incoming/orders/{bad}.csv")) && reason.contains("line 3"),
            "{reason}"
        );
    }
    // A rerun finds nothing, and loads nothing twice.
    let again = sched.tick().await.unwrap();
    assert_eq!(again.selected, 0, "{again}");
    assert_eq!(w.count(100).await, 1);
}

/// A key of exactly 1,024 bytes (S3's most) in the queue: its archive
/// names would be longer (`processed/` is a byte longer than `incoming/`,
/// a report adds `.json`). Found by the arbitrary-keys property test: such
/// a file loaded, then failed every move until parked as stuck, never
/// leaving `incoming/`. Now its archive names are shortened (the layout's
/// `fit`): it loads once and moves; a twin that differs only at the end
/// gets a name of its own; a bad one goes to `failed/` with its report.
async fn keys_of_1024_bytes_load_and_move(w: Setup) {
    let s = &*w.store;
    // Segments of 100 bytes: SeaweedFS's filer takes at most 255.
    let key = |tail: &str| {
        let mut k = String::from("incoming/orders/");
        let mut segment = 0;
        while k.len() < 1024 - tail.len() {
            let c = if segment >= 100 { '/' } else { 'é' };
            segment = if c == '/' { 0 } else { segment + 2 };
            k.push(c);
            if k.len() > 1024 - tail.len() {
                k.pop();
                k.push('x');
            }
        }
        k.push_str(tail);
        assert_eq!(k.len(), 1024);
        k
    };
    let (a, b, bad) = (key("a.csv"), key("b.csv"), key("z.csv"));
    put(s, &a, csv(&[(1, "a")])).await;
    put(s, &b, csv(&[(2, "b")])).await;
    put(s, &bad, format!("{HEADER}3\n")).await;
    let sched = scheduler(w.config("max_attempts = 2"), w.store.clone());
    let r = sched.tick().await.unwrap();
    assert_eq!((r.loaded, r.failed, r.move_errors), (2, 1, 0), "{r}");
    assert!(keys(s, "incoming/").await.is_empty());
    let processed = keys(s, "processed/").await;
    assert_eq!(processed.len(), 2, "{processed:?}");
    for k in keys(s, "").await {
        assert!(k.len() <= 1024, "{} bytes: {k}", k.len());
    }
    assert_eq!(
        keys(s, "failed/").await,
        vec![bad.replacen("incoming/", "failed/", 1)]
    );
    let reports = keys(s, "errors/").await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report: serde_json::Value = serde_json::from_slice(&read(s, &reports[0]).await).unwrap();
    assert!(
        report["reason"].as_str().unwrap().contains("line 2"),
        "{report}"
    );
    assert_eq!(
        (w.count(1).await, w.count(2).await, w.count(3).await),
        (1, 1, 0)
    );
    // Another run finds nothing to do.
    let again = sched.tick().await.unwrap();
    assert_eq!(again.selected, 0, "{again}");
}

/// Files for two tables in one tick, more than a batch holds: Redshift
/// gets exactly one COPY per table; the row loaders cut batches.
async fn two_tables_in_one_tick(w: Setup) {
    let s = &*w.store;
    for i in 0..5 {
        put(s, &format!("incoming/orders/{i}.csv"), csv(&[(i, "c")])).await;
    }
    for i in 0..3 {
        let line = format!(
            "{{\"event_id\":\"e{i}\",\"type\":\"t\",\"user\":\"u\",\"at\":\"2026-11-01T00:00:00Z\",\"props\":{{\"n\":{i}}}}}\n"
        );
        put(s, &format!("incoming/events/{i}.jsonl"), line).await;
    }
    let copies = w.copies();
    let r = scheduler(w.config("batch_max_files = 2"), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((r.loaded, r.failed, r.retried), (8, 0, 0), "{r}");
    match copies {
        Some(before) => {
            assert_eq!(r.batches, 2, "{r}");
            assert_eq!(w.copies().unwrap() - before, 2, "one COPY per table");
        }
        None => assert_eq!(r.batches, 3 + 2, "{r}"),
    }
    for i in 0..5 {
        assert_eq!(w.count(i).await, 1);
    }
    assert!(keys(s, "incoming/").await.is_empty());
}

/// `history` answers from the ledger (key prefix and time filters);
/// `replay` puts loaded files back under replay names, they load once more
/// (the ledger lets them: new keys), and the ledger's new rows say they
/// were replays.
async fn history_and_replay_reload_deliberately(w: Setup) {
    use scheduler::ops::{history, replay};
    use scheduler::progress::Quiet;
    let cfg = w.config("");
    let s = &*w.store;
    for (key, id) in [
        ("incoming/orders/jan/h1.csv", 8001),
        ("incoming/orders/jan/h2.csv", 8002),
        ("incoming/orders/feb/h3.csv", 8003),
    ] {
        put(
            s,
            key,
            format!("id,customer,amount,ordered_at\n{id},c,1.00,2026-11-24T00:00:00Z\n"),
        )
        .await;
    }
    let report = scheduler(cfg.clone(), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!(report.loaded, 3, "{report}");

    let entries = |h: Vec<scheduler::ops::LedgerHistory>| {
        assert_eq!(h.len(), 1, "one destination");
        assert!(h[0].error.is_none(), "{:?}", h[0].error);
        h.into_iter().next().unwrap().entries.expect("a ledger")
    };
    let all = entries(history(&cfg, None, "", 100).await.unwrap());
    let loaded: Vec<&str> = all.iter().map(|e| e.entry.object_key.as_str()).collect();
    assert_eq!(loaded.len(), 3, "{loaded:?}");
    assert!(loaded.contains(&"incoming/orders/jan/h1.csv"), "{loaded:?}");
    let first = &all[0].entry;
    assert_eq!(first.table, "orders");
    assert!(first.batch_id.starts_with(&report.tick_id), "{first:?}");
    assert!(first.rows.is_none_or(|r| r == 1), "{first:?}");
    let age = chrono::Utc::now() - first.loaded_at;
    assert!(
        age.num_seconds().abs() < 120,
        "loaded_at {} is now",
        first.loaded_at
    );
    assert_eq!(
        entries(history(&cfg, None, "orders/jan/", 100).await.unwrap()).len(),
        2
    );
    assert_eq!(
        entries(
            history(&cfg, None, "incoming/orders/feb/", 100)
                .await
                .unwrap()
        )
        .len(),
        1
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(entries(history(&cfg, Some(later), "", 100).await.unwrap()).is_empty());
    assert_eq!(
        entries(history(&cfg, None, "", 2).await.unwrap()).len(),
        2,
        "the limit"
    );

    let dry = replay(&cfg, s, "orders/jan/", None, true, &Quiet)
        .await
        .unwrap();
    assert_eq!(dry.moved.len(), 2);
    assert!(
        keys(s, "incoming/").await.is_empty(),
        "a dry run moves nothing"
    );
    let r = replay(&cfg, s, "orders/jan/", None, false, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (r.moved.len(), r.conflicts.len(), r.errors.len()),
        (2, 0, 0),
        "{r:?}"
    );
    let back = keys(s, "incoming/").await;
    assert!(
        back.iter().all(|k| k.contains("~r")),
        "replay names: {back:?}"
    );
    let report = scheduler(cfg.clone(), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((report.loaded, report.already_loaded), (2, 0), "{report}");
    assert_eq!(
        (
            w.count(8001).await,
            w.count(8002).await,
            w.count(8003).await
        ),
        (2, 2, 1)
    );
    let all = entries(history(&cfg, None, "", 100).await.unwrap());
    let replays: Vec<&str> = all.iter().filter_map(|e| e.replay_of.as_deref()).collect();
    assert_eq!(all.len(), 5);
    assert_eq!(replays.len(), 2, "{all:?}");
    assert!(
        replays.contains(&"incoming/orders/jan/h1.csv"),
        "{replays:?}"
    );
    assert_eq!(keys(s, "processed/").await.len(), 3);
}

/// A route's schema: the valid records of a file load, the
/// others go to `rejected/<path>.jsonl` with line and reason, the ledger
/// counts them; `fail_file` and `max_rejected` fail the file instead.
async fn invalid_records_are_set_aside_and_the_rest_load_once(w: Setup) {
    use loader::config::{ColumnRule, ColumnType, OnInvalid, Schema};
    let mut cfg = w.config("");
    let rules = |on_invalid, max_rejected| Schema {
        columns: [
            (
                "id".to_owned(),
                ColumnRule {
                    kind: Some(ColumnType::Integer),
                    required: true,
                    allowed: None,
                },
            ),
            (
                "customer".to_owned(),
                ColumnRule {
                    kind: None,
                    required: false,
                    allowed: Some(vec!["acme".into(), "globex".into()]),
                },
            ),
        ]
        .into_iter()
        .collect(),
        json_schema: None,
        on_invalid,
        max_rejected,
    };
    cfg.routes[0].pattern = "orders/lenient/*.csv".into();
    cfg.routes[0].schema = Some(rules(OnInvalid::Reject, 10));
    let mut strict = cfg.routes[0].clone();
    strict.pattern = "orders/strict/*.csv".into();
    strict.schema = Some(rules(OnInvalid::FailFile, 10));
    let mut few = cfg.routes[0].clone();
    few.pattern = "orders/few/*.csv".into();
    few.schema = Some(rules(OnInvalid::Reject, 1));
    cfg.routes.extend([strict, few]);
    let s = &*w.store;
    let body = "id,customer,amount,ordered_at\n\
                9001,acme,1,2026-11-24T00:00:00Z\n\
                x,acme,1,2026-11-24T00:00:00Z\n\
                9002,initech,1,2026-11-24T00:00:00Z\n\
                9003,globex,1,2026-11-24T00:00:00Z\n";
    put(s, "incoming/orders/lenient/a.csv", body).await;
    put(
        s,
        "incoming/orders/strict/a.csv",
        body.replace("900", "910"),
    )
    .await;
    put(s, "incoming/orders/few/a.csv", body.replace("900", "920")).await;
    let report = scheduler(cfg.clone(), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!(
        (report.loaded, report.failed, report.rejected),
        (1, 2, 2),
        "{report}"
    );
    let lenient = result_of(&report, "incoming/orders/lenient/a.csv");
    assert!(
        lenient
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("rejected/orders/lenient/a.csv.jsonl"),
        "{lenient:?}"
    );
    assert_eq!(
        (
            w.count(9001).await,
            w.count(9002).await,
            w.count(9003).await
        ),
        (1, 0, 1)
    );
    let rejected = String::from_utf8(read(s, "rejected/orders/lenient/a.csv.jsonl").await).unwrap();
    let rejected: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 3);
    assert!(rejected[0]["reason"]
        .as_str()
        .unwrap()
        .contains("not an integer"));
    assert_eq!(rejected[1]["line"], 4);
    assert_eq!(rejected[1]["record"]["customer"], "initech");
    let strict = error_report(s, "orders/strict/a.csv").await;
    assert!(
        strict["reason"]
            .as_str()
            .unwrap()
            .contains("line 3: column \"id\""),
        "{strict}"
    );
    let few = error_report(s, "orders/few/a.csv").await;
    assert!(
        few["reason"].as_str().unwrap().contains("max_rejected (1)"),
        "{few}"
    );
    assert_eq!(
        w.count(9101).await + w.count(9201).await,
        0,
        "failed files load nothing"
    );
    let history = scheduler::ops::history(&cfg, None, "orders/lenient/", 10)
        .await
        .unwrap();
    assert_eq!(history[0].entries.as_ref().unwrap().len(), 1);
    // The ledger counts the rejects (read straight from it).
    let counted = match &w.pg {
        Some(pg) => pg_count(pg, "SELECT rejected FROM s3loader_ledger WHERE object_key = 'incoming/orders/lenient/a.csv'").await,
        None => {
            let db = w._dir.as_ref().unwrap().path().join("wh.db");
            rusqlite::Connection::open(db)
                .unwrap()
                .query_row("SELECT rejected FROM s3loader_ledger WHERE object_key = 'incoming/orders/lenient/a.csv'", [], |r| r.get(0))
                .unwrap()
        }
    };
    assert_eq!(counted, 2);
}

/// A PostgreSQL ledger from before rejects were counted gains the column
/// on first use (its rows counted 0) and keeps loading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_postgres_ledger_gains_the_rejected_column() {
    let old = "CREATE TABLE s3loader_ledger (object_key TEXT NOT NULL, etag TEXT NOT NULL,
                   table_name TEXT NOT NULL, rows BIGINT NOT NULL, batch_id TEXT NOT NULL,
                   loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (object_key, etag));
               INSERT INTO s3loader_ledger VALUES ('incoming/old.csv', 'e', 'orders', 1, 'b', now());";
    let (url, pg) = pg_with(&format!("{ORDERS_DDL} {old}")).await;
    let store = arc(seaweedfs().await);
    put(
        &*store,
        "incoming/orders/new.csv",
        "id,customer,amount,ordered_at\n1,a,1,2026-11-24T00:00:00Z\n",
    )
    .await;
    let report = scheduler(config(&pg_destination(&url), ""), store)
        .tick()
        .await
        .unwrap();
    assert_eq!(report.loaded, 1, "{report}");
    assert_eq!(
        pg_count(
            &pg,
            "SELECT count(*) FROM s3loader_ledger WHERE rejected = 0"
        )
        .await,
        2
    );
}

/// A JSON Lines route whose rules are a JSON Schema: records are checked
/// as parsed (a string "7" is not an integer), the breaking ones set aside
/// with the JSON pointer of what broke, the rest loaded once.
async fn json_schema_rejects_records_as_parsed(w: Setup) {
    use loader::config::{Format, OnInvalid, Schema};
    let mut cfg = w.config("");
    let route = cfg
        .routes
        .iter_mut()
        .find(|r| r.format == Format::Jsonl)
        .unwrap();
    route.schema = Some(Schema {
        columns: Default::default(),
        json_schema: Some(
            r#"{"type": "object", "required": ["event_id", "type"],
                "properties": {"event_id": {"type": "string", "pattern": "^e[0-9]+$"},
                               "type": {"enum": ["login", "logout"]},
                               "props": {"type": ["object", "null"]}}}"#
                .into(),
        ),
        on_invalid: OnInvalid::Reject,
        max_rejected: 10,
    });
    cfg.validate().unwrap();
    let body = [
        r#"{"event_id":"e1","type":"login","user":"u","at":"2026-11-24T00:00:00Z","props":{"a":1}}"#,
        r#"{"event_id":"e2","type":"jump","user":"u","at":"2026-11-24T00:00:00Z","props":null}"#,
        r#"{"event_id":"e3","type":"logout","user":"u","at":"2026-11-24T00:00:00Z","props":null}"#,
        r#"{"event_id":7,"type":"login","user":"u","at":"2026-11-24T00:00:00Z","props":null}"#,
    ]
    .join("\n");
    let s = &*w.store;
    put(s, "incoming/events/a.jsonl", body).await;
    let report = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!(
        (report.loaded, report.failed, report.rejected),
        (1, 0, 2),
        "{report}"
    );
    assert_eq!(w.number("SELECT count(*) FROM events").await, 2);
    assert_eq!(
        w.number("SELECT count(*) FROM events WHERE event_id IN ('e2', '7')")
            .await,
        0
    );
    let rejected = String::from_utf8(read(s, "rejected/events/a.jsonl.jsonl").await).unwrap();
    let rejected: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(
        (rejected[0]["line"].as_u64(), rejected[1]["line"].as_u64()),
        (Some(2), Some(4))
    );
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("json schema: at /type:"),
        "{rejected:?}"
    );
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("json schema: at /event_id:"),
        "{rejected:?}"
    );
}

/// Record rules on the destinations that take them.
mod schema {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn json_seaweedfs_postgres() {
        super::json_schema_rejects_records_as_parsed(super::Setup::seaweedfs_postgres().await)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn json_local_sqlite() {
        super::json_schema_rejects_records_as_parsed(super::Setup::local_sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seaweedfs_postgres() {
        super::invalid_records_are_set_aside_and_the_rest_load_once(
            super::Setup::seaweedfs_postgres().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_sqlite() {
        super::invalid_records_are_set_aside_and_the_rest_load_once(super::Setup::local_sqlite())
            .await;
    }
}

// --- a table per tenant ---------------------------------------------------

impl Setup {
    /// Runs `sql` on the warehouse (PostgreSQL behind Redshift's stand-in
    /// too).
    async fn exec(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg.batch_execute(sql).await.unwrap(),
            None => {
                let db = self._dir.as_ref().unwrap().path().join("wh.db");
                rusqlite::Connection::open(db)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap()
            }
        }
    }

    /// The first column of the first row `sql` returns, as an integer; -1
    /// when the query fails (a table that does not exist).
    async fn number(&self, sql: &str) -> i64 {
        match &self.pg {
            Some(pg) => match pg.query_one(sql, &[]).await {
                Ok(row) => row.get(0),
                Err(_) => -1,
            },
            None => {
                let db = self._dir.as_ref().unwrap().path().join("wh.db");
                rusqlite::Connection::open(db)
                    .unwrap()
                    .query_row(sql, [], |r| r.get(0))
                    .unwrap_or(-1)
            }
        }
    }

    async fn ledger_table(&self, key: &str) -> String {
        let sql = format!("SELECT table_name FROM s3loader_ledger WHERE object_key = '{key}'");
        match &self.pg {
            Some(pg) => pg.query_one(&sql, &[]).await.unwrap().get(0),
            None => {
                let db = self._dir.as_ref().unwrap().path().join("wh.db");
                rusqlite::Connection::open(db)
                    .unwrap()
                    .query_row(&sql, [], |r| r.get(0))
                    .unwrap()
            }
        }
    }
}

/// `tenants/{tenant}/*.csv` → `orders_{tenant}`, created like `orders` on
/// the tenant's first file; a segment that breaks the identifier rule fails
/// its file with the reason, and the rest load. On every warehouse.
async fn tenant_tables_from_the_key(w: Setup) {
    if w.pg.is_none() {
        w.exec("CREATE TABLE orders (id INTEGER, customer TEXT NOT NULL, amount REAL, ordered_at TEXT)")
            .await;
    }
    let mut cfg = w.config("");
    let mut route = cfg.routes[0].clone();
    route.pattern = "tenants/{tenant}/*.csv".into();
    route.table = "orders_{tenant}".into();
    route.create_like = Some("orders".into());
    cfg.routes.insert(0, route);
    cfg.validate().unwrap();
    let s = &*w.store;
    put(s, "incoming/tenants/acme/a.csv", csv(&[(1, "a"), (2, "a")])).await;
    put(s, "incoming/tenants/acme/b.csv", csv(&[(3, "a")])).await;
    put(s, "incoming/tenants/globex/a.csv", csv(&[(4, "g")])).await;
    put(s, "incoming/tenants/Bad Name/a.csv", csv(&[(5, "x")])).await;
    put(s, "incoming/tenants/o'brien/a.csv", csv(&[(6, "x")])).await;
    let report = scheduler(cfg.clone(), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((report.loaded, report.failed), (3, 2), "{report}");
    assert_eq!(w.number("SELECT count(*) FROM orders_acme").await, 3);
    assert_eq!(w.number("SELECT count(*) FROM orders_globex").await, 1);
    assert_eq!(
        w.number("SELECT count(*) FROM orders").await,
        0,
        "the template stays empty"
    );
    let bad = error_report(s, "tenants/Bad Name/a.csv").await;
    let reason = bad["reason"].as_str().unwrap();
    assert!(
        reason.contains("{tenant} = \"Bad Name\": holds 'B'") && reason.contains("orders_{tenant}"),
        "{bad}"
    );
    assert!(error_report(s, "tenants/o'brien/a.csv").await["reason"]
        .as_str()
        .unwrap()
        .contains("holds '\\''"));
    assert_eq!(
        w.ledger_table("incoming/tenants/globex/a.csv").await,
        "orders_globex"
    );
    // The next file of a known tenant loads into its table, once.
    put(s, "incoming/tenants/globex/b.csv", csv(&[(7, "g")])).await;
    let report = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!((report.loaded, report.failed), (1, 0), "{report}");
    assert_eq!(w.number("SELECT count(*) FROM orders_globex").await, 2);
}

/// One JSON Lines file whose records name their tenant
/// (`metadata.tenant_id`) loads into three tenants' tables, each created
/// on first use; records whose tenant is missing or breaks the rule go to
/// `rejected/` and no table; a file with a record the warehouse refuses
/// fails whole, so none of its tenants gets a row from it.
async fn tenant_tables_from_a_record_field(w: Setup) {
    let template = if w.pg.is_some() {
        "CREATE TABLE metrics (id int NOT NULL, value numeric, metadata jsonb)"
    } else {
        "CREATE TABLE metrics (id INTEGER NOT NULL, value REAL, metadata TEXT)"
    };
    w.exec(template).await;
    let mut cfg = w.config("");
    let mut route = cfg.routes[0].clone();
    route.pattern = "metrics/*.jsonl".into();
    route.format = loader::config::Format::Jsonl;
    route.table = "metrics_{tenant}".into();
    route.table_fields = [("tenant".to_owned(), "metadata.tenant_id".to_owned())].into();
    route.create_like = Some("metrics".into());
    cfg.routes.insert(0, route);
    cfg.validate().unwrap();
    let record = |id: &str, tenant: &str| {
        format!(r#"{{"id":{id},"value":1.5,"metadata":{{"tenant_id":{tenant},"host":"h"}}}}"#)
    };
    let mixed = [
        record("1", "\"acme\""),
        record("2", "\"globex\""),
        record("3", "\"Acme\""),
        record("4", "\"initech\""),
        record("5", "null"),
        record("6", "\"acme\""),
        record("7", "\"x\\\"; DROP TABLE metrics; --\""),
        record("8", "\"globex\""),
    ]
    .join("\n");
    let refused = [record("11", "\"acme\""), record("null", "\"globex\"")].join("\n");
    let s = &*w.store;
    put(s, "incoming/metrics/mixed.jsonl", mixed).await;
    put(s, "incoming/metrics/refused.jsonl", refused).await;
    // The first tick's moves fail, so the second sees the loaded file again.
    let broken = scheduler(cfg.clone(), Arc::new(Faulty::moves_fail(w.store.clone())));
    let report = broken.tick().await.unwrap();
    assert_eq!((report.loaded, report.rejected), (1, 3), "{report}");
    let ids = |t: &str| format!("SELECT count(*) FROM {t}");
    assert_eq!(w.number(&ids("metrics_acme")).await, 2);
    assert_eq!(w.number(&ids("metrics_globex")).await, 2);
    assert_eq!(w.number(&ids("metrics_initech")).await, 1);
    assert_eq!(w.number("SELECT count(*) FROM metrics").await, 0);
    assert_eq!(
        w.number("SELECT count(*) FROM metrics_acme WHERE id IN (2, 4, 8, 11)")
            .await,
        0,
        "no tenant's rows in another's table, none from the refused file"
    );
    assert_eq!(
        w.ledger_table("incoming/metrics/mixed.jsonl").await,
        "metrics_acme, metrics_globex, metrics_initech"
    );
    let rejected = String::from_utf8(read(s, "rejected/metrics/mixed.jsonl.jsonl").await).unwrap();
    let rejected: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 7]);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("holds 'A'"),
        "{rejected:?}"
    );
    assert!(
        rejected[1]["reason"].as_str().unwrap().contains("is null"),
        "{rejected:?}"
    );
    // Loaded once: the second tick finds the file in the ledger.
    let report = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!((report.loaded, report.already_loaded), (0, 1), "{report}");
    assert_eq!(w.number(&ids("metrics_acme")).await, 2, "{report}");
    let refused = error_report(s, "metrics/refused.jsonl").await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("null"),
        "{refused}"
    );
}

mod tenants {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_seaweedfs_postgres() {
        super::tenant_tables_from_the_key(super::Setup::seaweedfs_postgres().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_seaweedfs_redshift() {
        super::tenant_tables_from_the_key(super::Setup::seaweedfs_redshift().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_local_sqlite() {
        super::tenant_tables_from_the_key(super::Setup::local_sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn field_seaweedfs_postgres() {
        super::tenant_tables_from_a_record_field(super::Setup::seaweedfs_postgres().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn field_local_sqlite() {
        super::tenant_tables_from_a_record_field(super::Setup::local_sqlite()).await;
    }
}

/// A producer that says how it encoded the bytes (Content-Encoding, or
/// Content-Type) is believed before the key's name: gzip and zstd under a
/// plain `.csv` name load, on every warehouse that reads from S3 (Redshift
/// too, which reads the bytes itself: the COPY must say GZIP or ZSTD).
async fn compression_from_the_headers_before_the_name(w: Setup) {
    let bucket = w.store.name().strip_prefix("s3://").unwrap().to_owned();
    let s3 = s3_client(&service("S3LOADER_TEST_SEAWEEDFS")).await;
    let row =
        |id: u32| format!("id,customer,amount,ordered_at\n{id},c,1.00,2026-11-24T00:00:00Z\n");
    let put =
        |key: &'static str, body: Vec<u8>, encoding: Option<&'static str>, ctype: &'static str| {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .set_content_encoding(encoding.map(str::to_owned))
                .content_type(ctype)
                .send()
        };
    put(
        "incoming/orders/encoded.csv",
        gzip(row(7001).as_bytes()),
        Some("gzip"),
        "text/csv",
    )
    .await
    .unwrap();
    put(
        "incoming/orders/typed.csv",
        zstd::encode_all(row(7002).as_bytes(), 3).unwrap(),
        None,
        "application/zstd",
    )
    .await
    .unwrap();
    put(
        "incoming/orders/plain.csv",
        row(7003).into_bytes(),
        None,
        "text/csv; charset=utf-8",
    )
    .await
    .unwrap();
    let report = scheduler(w.config(""), w.store.clone())
        .tick()
        .await
        .unwrap();
    assert_eq!((report.loaded, report.failed), (3, 0), "{report}");
    for id in [7001, 7002, 7003] {
        assert_eq!(w.count(id).await, 1, "row {id}");
    }
}

/// The header rule on each warehouse that reads from S3 (a directory keeps
/// no headers).
mod headers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seaweedfs_postgres() {
        super::compression_from_the_headers_before_the_name(
            super::Setup::seaweedfs_postgres().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seaweedfs_redshift() {
        super::compression_from_the_headers_before_the_name(
            super::Setup::seaweedfs_redshift().await,
        )
        .await;
    }
}

/// A load that committed but whose files did not move is not loaded
/// again: the rerun finds every file in the ledger (and Redshift runs no
/// second COPY).
async fn a_rerun_loads_nothing_twice(w: Setup) {
    let s = &*w.store;
    for i in 0..3 {
        put(s, &format!("incoming/orders/{i}.csv"), csv(&[(i, "c")])).await;
    }
    let cfg = w.config("");
    let broken = scheduler(cfg.clone(), Arc::new(Faulty::moves_fail(w.store.clone())));
    let r = broken.tick().await.unwrap();
    assert_eq!((r.loaded, r.move_errors), (3, 3), "{r}");
    assert!(r.files.iter().all(|l| l.result == FileResult::MoveFailed));
    assert_eq!(
        keys(s, "incoming/").await.len(),
        3,
        "files stay when the move fails"
    );
    let copies = w.copies();

    let r = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!((r.loaded, r.already_loaded, r.failed), (0, 3, 0), "{r}");
    for i in 0..3 {
        assert_eq!(w.count(i).await, 1, "row counts unchanged");
    }
    assert_eq!(w.copies(), copies, "no second COPY");
    assert!(keys(s, "incoming/").await.is_empty());
    assert_eq!(keys(s, "processed/").await.len(), 3);
}

/// A key with a backslash and a quote, through Redshift's COPY: on moto,
/// since SeaweedFS turns a backslash into a slash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_on_moto_bad_rows_and_hostile_keys_drain() {
    bad_rows_and_hostile_keys_drain(Setup::moto_redshift().await).await;
}

/// A Redshift load that outlives the tick's deadline is left running and
/// recorded; the next tick, while it still runs, starts no second COPY;
/// once it has committed, a tick finds the files in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_a_load_still_running_at_the_next_tick_is_found_not_repeated() {
    let w = Setup::seaweedfs_redshift().await;
    let s = &*w.store;
    let cluster = w.cluster.clone().unwrap();
    put(s, "incoming/orders/a.csv", csv(&[(1, "a")])).await;
    put(s, "incoming/orders/b.csv", csv(&[(2, "b")])).await;
    let sched = scheduler(
        w.config("deadline_secs = 1\nlist_max_secs = 1"),
        w.store.clone(),
    );
    // Create the ledger first, so only the load waits.
    sched.tick().await.unwrap();
    assert_eq!((w.count(1).await, w.count(2).await), (1, 1));
    put(s, "incoming/orders/c.csv", csv(&[(3, "c")])).await;
    let started = std::time::Instant::now();
    redshift_delay(&cluster, 5000);
    let copies = w.copies().unwrap();
    let r = sched.tick().await.unwrap();
    assert_eq!((r.loaded, r.failed, r.retried), (0, 0, 1), "{r}");
    let why = result_of(&r, "incoming/orders/c.csv")
        .reason
        .clone()
        .unwrap();
    assert!(why.contains("still running"), "{why}");
    assert_eq!(w.copies().unwrap(), copies + 1);

    let r = sched.tick().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "too slow to test"
    );
    assert_eq!((r.loaded, r.failed, r.retried), (0, 0, 1), "{r}");
    let why = result_of(&r, "incoming/orders/c.csv")
        .reason
        .clone()
        .unwrap();
    assert!(
        why.contains("still running") && why.contains("no second COPY"),
        "{why}"
    );
    assert_eq!(
        w.copies().unwrap(),
        copies + 1,
        "no second COPY while it runs"
    );
    assert_eq!(w.count(3).await, 0, "not committed yet");

    redshift_delay(&cluster, 0);
    tokio::time::sleep(std::time::Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    let mut r = sched.tick().await.unwrap();
    for _ in 0..20 {
        if r.already_loaded == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        r = sched.tick().await.unwrap();
    }
    assert_eq!((r.loaded, r.already_loaded, r.failed), (0, 1, 0), "{r}");
    assert_eq!(
        w.copies().unwrap(),
        copies + 1,
        "the first COPY was the only one"
    );
    assert_eq!(w.count(3).await, 1);
    assert!(keys(s, "incoming/").await.is_empty());
}

// --- concurrent state stays consistent --------------------------------------

async fn attempt_counts_merge(store: Arc<dyn ObjectStore>) {
    let s = &*store;
    let key = "_s3loader/attempts.json";
    let mut first = Attempts::load(s, key).await.unwrap();
    first.bump("incoming/x", "\"e\"", "x failed");
    first.save(s).await.unwrap();
    // Two ticks read the same state, each counts a different file.
    let mut a = Attempts::load(s, key).await.unwrap();
    let mut b = Attempts::load(s, key).await.unwrap();
    assert_eq!(a.bump("incoming/y", "\"e\"", "y failed"), 1);
    assert_eq!(b.bump("incoming/z", "\"e\"", "z failed"), 1);
    b.forget("incoming/x");
    a.save(s).await.unwrap();
    b.save(s).await.unwrap(); // conflicts, merges, succeeds
    let now = Attempts::load(s, key).await.unwrap();
    assert_eq!(now.get("incoming/y", "\"e\""), 1, "a's count survived b");
    assert_eq!(now.get("incoming/z", "\"e\""), 1);
    assert_eq!(now.get("incoming/x", "\"e\""), 0, "b's forget survived");
    assert_eq!(now.len(), 2);
}

mod attempts_on {
    use super::attempt_counts_merge;
    s3loader_e2e::on_stores!([seaweedfs, local_dir][attempt_counts_merge]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_counts_of_files_that_left_incoming_are_pruned() {
    let w = Setup::local_sqlite();
    let s = &*w.store;
    let mut a = Attempts::load(s, "_s3loader/attempts.json").await.unwrap();
    a.bump("incoming/orders/gone.csv", "\"e\"", "it failed once");
    a.save(s).await.unwrap();
    put(s, "incoming/orders/1.csv", csv(&[(1, "a")])).await;
    scheduler(w.config(""), w.store.clone())
        .tick()
        .await
        .unwrap();
    let now = Attempts::load(s, "_s3loader/attempts.json").await.unwrap();
    assert!(now.is_empty(), "{:?}", now.keys().collect::<Vec<_>>());
}

/// Another tick (its lease taken over) loads and moves the file while this
/// one is still deciding; this tick's worker then reports `outcome`.
struct MovedMeanwhile {
    store: Arc<dyn ObjectStore>,
    outcome: Outcome,
}

#[async_trait]
impl Fanout for MovedMeanwhile {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        for f in &batch.files {
            let meta = self.store.head(&f.key).await.unwrap();
            archive(&*self.store, &meta, &f.processed_key)
                .await
                .unwrap();
        }
        BatchOutcome {
            batch_id: batch.id.clone(),
            files: batch
                .files
                .iter()
                .map(|f| f.outcome(self.outcome.clone()))
                .collect(),
        }
    }
}

/// One tick over one file that another tick moves meanwhile: the file is
/// `Gone` from this tick's point of view, and in `processed/`.
async fn moved_meanwhile(outcome: Outcome) -> (Arc<dyn ObjectStore>, TickReport) {
    let store = arc(seaweedfs().await);
    put(&*store, "incoming/orders/a.csv", csv(&[(1, "a")])).await;
    let sched = scheduler_with(
        config("kind = \"sqlite\"\npath = \"unused.db\"", ""),
        store.clone(),
        Arc::new(MovedMeanwhile {
            store: store.clone(),
            outcome,
        }),
    );
    let r = sched.tick().await.unwrap();
    assert_eq!(
        result_of(&r, "incoming/orders/a.csv").result,
        FileResult::Gone,
        "{r}"
    );
    assert_eq!(
        keys(&*store, "processed/").await,
        vec!["processed/orders/a.csv"]
    );
    (store, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_another_tick_moved_gets_no_error_report() {
    let (store, _) = moved_meanwhile(Outcome::Failed {
        retryable: false,
        reason: "line 2: expected 4 fields".into(),
        cause: Cause::File,
    })
    .await;
    assert!(keys(&*store, "errors/").await.is_empty());
    assert!(keys(&*store, "failed/").await.is_empty());
}

/// The same, for a file whose load succeeded: it is `Gone`, not a failed
/// move counted towards parking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_file_another_tick_moved_is_not_a_move_error() {
    let (store, r) = moved_meanwhile(Outcome::AlreadyLoaded).await;
    assert_eq!(r.move_errors, 0, "{r}");
    let attempts = Attempts::load(&*store, "_s3loader/attempts.json")
        .await
        .unwrap();
    assert!(attempts.is_empty(), "no move failure recorded");
}

// --- no file is retried for ever ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_moves_keep_failing_is_parked_not_retried_for_ever() {
    let w = Setup::seaweedfs_postgres().await;
    put(&*w.store, "incoming/orders/a.csv", csv(&[(1, "a")])).await;
    let broken = scheduler(
        w.config("max_attempts = 2"),
        Arc::new(Faulty::moves_fail(w.store.clone())),
    );
    let r = broken.tick().await.unwrap();
    assert_eq!((r.loaded, r.move_errors), (1, 1), "{r}");
    let r = broken.tick().await.unwrap();
    assert_eq!((r.already_loaded, r.move_errors), (1, 1), "{r}");
    for _ in 0..2 {
        let r = broken.tick().await.unwrap();
        assert_eq!((r.selected, r.stuck, r.already_loaded), (0, 1, 0), "{r}");
        let line = result_of(&r, "incoming/orders/a.csv");
        assert_eq!(line.result, FileResult::Stuck);
        assert!(
            line.reason.as_deref().unwrap().contains("2 moves failed"),
            "{r}"
        );
    }
    assert_eq!(w.count(1).await, 1);
}

/// A producer writing straight into the directory can use any name the
/// file system takes (up to 255 bytes); the store finds and moves it, and
/// its report (`.json` added) still fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_file_with_a_255_byte_name_loads_and_moves() {
    let w = Setup::local_sqlite();
    let root = w._dir.as_ref().unwrap().path().join("bucket");
    let good = format!("{}.csv", "g".repeat(251));
    let bad = format!("{}.csv", "b".repeat(251));
    std::fs::create_dir_all(root.join("incoming/orders")).unwrap();
    std::fs::write(root.join("incoming/orders").join(&good), csv(&[(1, "a")])).unwrap();
    std::fs::write(
        root.join("incoming/orders").join(&bad),
        format!("{HEADER}2\n"),
    )
    .unwrap();
    let sched = scheduler(w.config("max_attempts = 2"), w.store.clone());
    let r = sched.tick().await.unwrap();
    assert_eq!((r.loaded, r.failed, r.move_errors), (1, 1, 0), "{r}");
    assert!(root.join("processed/orders").join(&good).is_file());
    assert!(root.join("failed/orders").join(&bad).is_file());
    let report = error_report(&*w.store, &format!("orders/{bad}")).await;
    assert!(report["reason"].as_str().unwrap().contains("line 2"));
    assert!(keys(&*w.store, "incoming/").await.is_empty());
}

// --- a huge backlog still drains ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_too_large_to_list_in_a_tick_still_drains() {
    let w = Setup::local_sqlite();
    let orders = w
        ._dir
        .as_ref()
        .unwrap()
        .path()
        .join("bucket/incoming/orders");
    std::fs::create_dir_all(&orders).unwrap();
    for i in 0..1000u32 {
        std::fs::write(orders.join(format!("{i:04}.csv")), csv(&[(i, "c")])).unwrap();
    }
    let store: Arc<dyn ObjectStore> = Arc::new(Faulty::slow_list(w.store.clone()));
    // Listing all 1,000 keys takes 1.5 s; a tick may list for 1 s.
    let sched = scheduler(
        w.config("deadline_secs = 30\nlist_max_secs = 1\nmax_files = 2000"),
        store.clone(),
    );
    let first = sched.tick().await.unwrap();
    assert!(!first.backlog.complete, "{first}");
    assert!(
        first.list_ms < 1500,
        "listing stopped at its budget: {first}"
    );
    assert!(
        first.loaded > 0 && first.loaded < 1000,
        "it loaded what it had listed: {first}"
    );
    assert!(!keys(&*w.store, "_s3loader/list-cursor.json")
        .await
        .is_empty());
    let mut loaded = first.loaded;
    for _ in 0..3 {
        let r = sched.tick().await.unwrap();
        loaded += r.loaded;
    }
    assert_eq!(loaded, 1000);
    assert!(keys(&*w.store, "incoming/").await.is_empty());
    assert!(
        keys(&*w.store, "_s3loader/list-cursor.json")
            .await
            .is_empty(),
        "a listing that reached the end clears the cursor"
    );
    let last = sched.tick().await.unwrap();
    assert!(last.backlog.complete && last.selected == 0, "{last}");
    let db = w._dir.as_ref().unwrap().path().join("wh.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let (n, distinct): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT id) FROM orders", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, distinct), (1000, 1000), "each file once");
}

// --- Parquet ------------------------------------------------------------------

/// Parquet files load once, a row group at a time (PostgreSQL, SQLite) or
/// by Redshift's own `FORMAT AS PARQUET` COPY; a truncated file and one
/// with a row the table refuses fail alone, with their reasons.
async fn parquet_files_load_once(w: Setup) {
    if w.pg.is_none() {
        w.exec("CREATE TABLE orders (id INTEGER, customer TEXT NOT NULL, amount REAL, ordered_at TEXT)")
            .await;
    }
    let mut cfg = w.config("");
    let mut route = cfg.routes[0].clone();
    route.pattern = "orders/**/*.parquet".into();
    route.format = loader::config::Format::Parquet;
    cfg.routes.insert(0, route);
    cfg.validate().unwrap();
    let s = &*w.store;
    let many: Vec<(i32, Option<&str>)> = (6000..8500).map(|i| (i, Some("pq"))).collect();
    put(
        s,
        "incoming/orders/pq/many.parquet",
        orders_parquet(&many, 1000),
    )
    .await;
    let whole = orders_parquet(&[(8600, Some("pq")), (8601, Some("pq"))], 10);
    put(
        s,
        "incoming/orders/pq/cut.parquet",
        whole[..whole.len() - 20].to_vec(),
    )
    .await;
    put(
        s,
        "incoming/orders/pq/null.parquet",
        orders_parquet(&[(8700, Some("pq")), (8701, None)], 10),
    )
    .await;
    // The first tick's moves fail, so the second sees the files again.
    let broken = scheduler(cfg.clone(), Arc::new(Faulty::moves_fail(w.store.clone())));
    let report = broken.tick().await.unwrap();
    assert_eq!((report.loaded, report.failed), (1, 2), "{report}");
    let report = scheduler(cfg, w.store.clone()).tick().await.unwrap();
    assert_eq!(report.already_loaded, 1, "{report}");
    let sql = "SELECT count(*) FROM orders WHERE customer = 'pq'";
    assert_eq!(w.number(sql).await, 2500, "each row once");
    assert_eq!((w.count(6000).await, w.count(8499).await), (1, 1));
    assert_eq!(w.count(8700).await, 0, "a refused file loads nothing");
    let cut = error_report(s, "orders/pq/cut.parquet").await;
    let reason = cut["reason"].as_str().unwrap();
    assert!(
        reason.contains("cut.parquet") && reason.contains("Parquet"),
        "{cut}"
    );
    let null = error_report(s, "orders/pq/null.parquet").await;
    assert!(
        null["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("null"),
        "{null}"
    );
}

/// Each rule that holds a whole setup, on every one: SeaweedFS into
/// PostgreSQL (plain and TLS) and into Redshift, and a local directory
/// into SQLite.
macro_rules! on_every_setup {
    ($($rule:ident),* $(,)?) => {
        on_every_setup!(@one seaweedfs_postgres, super::Setup::seaweedfs_postgres().await, $($rule),*);
        on_every_setup!(@one seaweedfs_postgres_tls, super::Setup::seaweedfs_postgres_tls().await, $($rule),*);
        on_every_setup!(@one seaweedfs_redshift, super::Setup::seaweedfs_redshift().await, $($rule),*);
        on_every_setup!(@one local_sqlite, super::Setup::local_sqlite(), $($rule),*);
    };
    (@one $module:ident, $setup:expr, $($rule:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    super::$rule($setup).await;
                }
            )*
        }
    };
}

on_every_setup!(
    archive_names_never_collide,
    the_ledger_decides_before_failed,
    a_poison_file_fails_alone,
    bad_rows_and_hostile_keys_drain,
    keys_of_1024_bytes_load_and_move,
    two_tables_in_one_tick,
    a_rerun_loads_nothing_twice,
    history_and_replay_reload_deliberately,
    parquet_files_load_once,
);

// --- secrets read at run time --------------------------------------------------

/// A Secrets Manager client on moto (as the product builds its own, from
/// the standard endpoint settings services.sh exports).
async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config_for(&service("S3LOADER_TEST_MOTO")).await)
}

/// An RDS-style secret for `role` with `password` on the test cluster.
fn rds_secret(role: &str, password: &str, dbname: &str) -> String {
    let pg = service("S3LOADER_TEST_PG");
    let port: u16 = pg
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap();
    serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": port,
        "username": role, "password": password, "dbname": dbname,
    })
    .to_string()
}

/// A role's login, in PostgreSQL and in its secret.
struct Login<'a> {
    pg: &'a tokio_postgres::Client,
    sm: &'a aws_sdk_secretsmanager::Client,
    secret: &'a str,
    role: &'a str,
    dbname: &'a str,
}

impl Login<'_> {
    /// Rotation, as Secrets Manager's rotation function does it: the
    /// password changes in the database and in the secret.
    async fn set_password(&self, password: &str) {
        let sql = format!("ALTER ROLE {} PASSWORD '{password}'", self.role);
        self.pg.batch_execute(&sql).await.unwrap();
        let value = rds_secret(self.role, password, self.dbname);
        let put = self.sm.put_secret_value().secret_id(self.secret);
        put.secret_string(value).send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_costs_one_retry_not_a_batch() {
    let (url, pg) = pg_with(ORDERS_DDL).await;
    let dbname = url.split("dbname=").nth(1).unwrap().to_owned();
    // A role whose password the server checks (scram, via s3l_scram).
    let role = unique("s3l_rotated_");
    pg.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN SUPERUSER IN ROLE s3l_scram"
    ))
    .await
    .unwrap();
    let sm = secrets().await;
    let secret = unique("s3loader/pg-");
    sm.create_secret().name(&secret).send().await.unwrap();
    let login = Login {
        pg: &pg,
        sm: &sm,
        secret: &secret,
        role: &role,
        dbname: &dbname,
    };
    login.set_password("first").await;
    let (store, _dir) = local();
    let store = arc(store);
    let destination = format!("kind = \"postgres\"\nurl = \"secretsmanager:{secret}\"");
    let sched = scheduler(config(&destination, ""), store.clone());
    put(&*store, "incoming/orders/1.csv", csv(&[(1, "a")])).await;
    let r = sched.tick().await.unwrap();
    assert_eq!((r.loaded, r.destination_errors), (1, 0), "{r}");

    login.set_password("second").await;
    put(&*store, "incoming/orders/2.csv", csv(&[(2, "b")])).await;
    let r = sched.tick().await.unwrap();
    assert_eq!(
        (r.loaded, r.retried, r.destination_errors),
        (1, 0, 0),
        "the same worker reads the secret again and loads: {r}"
    );
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_an_outage_naming_it() {
    let (store, _dir) = local();
    let store = arc(store);
    let secret = unique("s3loader/absent-");
    let destination = format!("kind = \"postgres\"\nurl = \"secretsmanager:{secret}\"");
    let sched = scheduler(config(&destination, "max_attempts = 1"), store.clone());
    put(&*store, "incoming/orders/1.csv", csv(&[(1, "a")])).await;
    for _ in 0..2 {
        let r = sched.tick().await.unwrap();
        assert_eq!((r.failed, r.destination_errors), (0, 1), "{r}");
        let why = &r.unavailable["wh"];
        assert!(
            why.contains(&secret) && why.contains("ResourceNotFoundException"),
            "{why}"
        );
    }
    assert_eq!(keys(&*store, "incoming/").await.len(), 1);
}
