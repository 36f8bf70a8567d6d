//! The tick end to end against real services: SeaweedFS for S3, PostgreSQL
//! as the warehouse, and the local directory with SQLite.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use fanout::{Fanout, LocalFanout};
use futures::{stream, StreamExt};
use loader::contract::{Batch, BatchOutcome};
use loader::worker::Worker;
use s3loader_e2e::*;
use scheduler::report::{FileResult, LeaseStatus};
use scheduler::tick::Scheduler;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_files_drain_from_seaweedfs_into_postgres() {
    let store = arc(seaweedfs().await);
    let (url, pg) = pg_with(ORDERS_DDL).await;

    let s = &*store;
    put(s, "incoming/orders/a.csv", "id,customer,amount,ordered_at\n1,acme,10.50,2026-11-01T00:00:00Z\n2,\"globex, inc\",,2026-11-01T01:00:00Z\n3,initech,3,2026-11-01T02:00:00Z\n").await;
    put(s, "incoming/orders/b.csv.gz", gzip(b"id,customer,amount,ordered_at\n4,acme,1,2026-11-02T00:00:00Z\n5,hooli,2,2026-11-02T00:00:00Z\n")).await;
    put(s, "incoming/events/e.jsonl.zst", zstd::encode_all(&b"{\"event_id\":\"e1\",\"type\":\"login\",\"user\":\"u1\",\"at\":\"2026-11-01T00:00:00Z\",\"props\":{\"a\":1}}\n{\"event_id\":\"e2\",\"type\":\"logout\",\"user\":\"u1\",\"at\":\"2026-11-01T01:00:00Z\",\"props\":null}\n"[..], 3).unwrap()).await;
    let hostile = "incoming/orders/it's a \"quoted\" name + ü 100%.csv";
    put(
        s,
        hostile,
        "id,customer,amount,ordered_at\n6,o'brien,1,2026-11-03T00:00:00Z\n",
    )
    .await;
    put(s, "incoming/orders/bad-type.csv", "id,customer,amount,ordered_at\n10,x,1.00,2026-11-03T00:00:00Z\n11,y,abc,2026-11-03T00:00:00Z\n").await;
    put(
        s,
        "incoming/orders/short-row.csv",
        "id,customer,amount,ordered_at\n20,x,1,2026-11-03T00:00:00Z\n21,y\n",
    )
    .await;
    put(
        s,
        "incoming/orders/truncated.csv.gz",
        gzip(&b"id,customer,amount,ordered_at\n30,x,1,2026-11-03T00:00:00Z\n".repeat(200))[..60]
            .to_vec(),
    )
    .await;
    put(s, "incoming/orders/empty.csv", Bytes::new()).await;
    put(s, "incoming/unrouted.bin", "?").await;

    let sched = scheduler(config(&pg_destination(&url), ""), store.clone());
    let report = sched.tick().await.unwrap();
    assert_eq!(report.lease, LeaseStatus::Acquired);
    assert_eq!(report.backlog.files, 9);
    assert!(report.backlog.complete);
    assert_eq!(
        (
            report.loaded,
            report.failed,
            report.retried,
            report.move_errors
        ),
        (5, 4, 0, 0),
        "{report}"
    );
    assert_eq!(report.rows, 3 + 2 + 2 + 1);

    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 6);
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM orders WHERE id >= 10").await,
        0,
        "no partial rows from failed files"
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM orders WHERE amount IS NULL").await,
        1,
        "empty CSV field is NULL"
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM events WHERE props->>'a' = '1'").await,
        1
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM s3loader_ledger").await,
        5
    );

    assert!(keys(s, "incoming/").await.is_empty());
    let processed: BTreeSet<String> = keys(s, "processed/").await.into_iter().collect();
    let expected: BTreeSet<String> = [
        "processed/orders/a.csv",
        "processed/orders/b.csv.gz",
        "processed/events/e.jsonl.zst",
        "processed/orders/it's a \"quoted\" name + ü 100%.csv",
        "processed/orders/empty.csv",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(processed, expected);
    assert_eq!(keys(s, "failed/").await.len(), 4);

    let bad_type = error_report(s, "orders/bad-type.csv").await;
    let reason = bad_type["reason"].as_str().unwrap();
    assert!(
        reason.contains("incoming/orders/bad-type.csv")
            && reason.contains("amount")
            && reason.contains("abc"),
        "{reason}"
    );
    assert_eq!(bad_type["failed_key"], "failed/orders/bad-type.csv");
    assert_eq!(bad_type["table"], "orders");
    let short = error_report(s, "orders/short-row.csv").await["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(short.contains("line 3: expected 4 fields"), "{short}");
    let truncated = error_report(s, "orders/truncated.csv.gz").await["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(truncated.contains("truncated"), "{truncated}");
    let no_route = error_report(s, "unrouted.bin").await["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(no_route.starts_with("no route"), "{no_route}");
    assert_eq!(result_of(&report, hostile).result, FileResult::Loaded);

    // The queue is drained: the next tick has nothing to do.
    let again = sched.tick().await.unwrap();
    assert_eq!((again.backlog.files, again.selected), (0, 0));
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_fails_no_file_however_long_it_lasts() {
    let store = arc(seaweedfs().await);
    let s = &*store;
    put(
        s,
        "incoming/orders/a.csv",
        "id,customer,amount,ordered_at\n1,a,1,2026-11-01T00:00:00Z\n",
    )
    .await;
    put(
        s,
        "incoming/orders/b.csv",
        "id,customer,amount,ordered_at\n2,b,2,2026-11-01T00:00:00Z\n",
    )
    .await;
    let down = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        closed_port()
    );
    // One file per batch: after the first batch finds the destination
    // down, the second is not even dispatched.
    let sched = scheduler(
        config(
            &pg_destination(&down),
            "max_attempts = 2\nbatch_max_files = 1\nconcurrency = 1",
        ),
        store.clone(),
    );
    // Three times max_attempts: an outage never counts against a file.
    for _ in 0..6 {
        let r = sched.tick().await.unwrap();
        assert_eq!((r.loaded, r.retried, r.failed), (0, 2, 0), "{r}");
        assert_eq!(r.destination_errors, 2, "{r}");
        let why = &r.unavailable["wh"];
        assert!(why.contains("connect"), "{why}");
        let a = result_of(&r, "incoming/orders/a.csv");
        assert_eq!(a.attempts, None, "no attempt counted: {r}");
        let b = result_of(&r, "incoming/orders/b.csv");
        assert!(
            b.reason.as_deref().unwrap().contains("not dispatched"),
            "{r}"
        );
        assert_eq!(
            keys(s, "incoming/").await.len(),
            2,
            "nothing moves while the destination is down"
        );
        assert!(keys(s, "processed/").await.is_empty() && keys(s, "failed/").await.is_empty());
    }

    // The destination comes back: both load, each once.
    let (url, pg) = pg_with(ORDERS_DDL).await;
    let cfg = config(&pg_destination(&url), "max_attempts = 2");
    let r = scheduler(cfg, store.clone()).tick().await.unwrap();
    assert_eq!((r.loaded, r.failed, r.destination_errors), (2, 0, 0), "{r}");
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ticks_at_once_on_500_files_load_each_exactly_once() {
    let store = arc(seaweedfs().await);
    let (url, pg) = pg_with(ORDERS_DDL).await;
    stream::iter(0..500)
        .for_each_concurrent(32, |i| {
            let store = store.clone();
            async move {
                put(&*store, &format!("incoming/orders/{i:03}.csv"), format!("id,customer,amount,ordered_at\n{i},a,1,2026-11-01T00:00:00Z\n{i},b,2,2026-11-01T00:00:00Z\n")).await;
            }
        })
        .await;
    let cfg = config(
        &pg_destination(&url),
        "max_files = 120\nbatch_max_files = 30\nconcurrency = 4",
    );
    // Two schedulers with their own workers, as two Lambda invocations.
    let a = scheduler(cfg.clone(), store.clone());
    let b = scheduler(cfg, store.clone());
    let drain = |s: Scheduler| async move {
        let (mut held, mut loaded) = (0, 0);
        for _ in 0..200 {
            let r = s.tick().await.unwrap();
            match r.lease {
                LeaseStatus::HeldBy { .. } => {
                    held += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                LeaseStatus::Acquired if r.backlog.files == 0 => break,
                LeaseStatus::Acquired => loaded += r.loaded,
                LeaseStatus::NotTaken => unreachable!("a tick takes the lease"),
            }
        }
        (held, loaded)
    };
    let ((held_a, loaded_a), (held_b, loaded_b)) = tokio::join!(drain(a), drain(b));
    println!("tick A loaded {loaded_a} (lease busy {held_a}x), tick B loaded {loaded_b} (lease busy {held_b}x)");
    assert_eq!(loaded_a + loaded_b, 500);
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 1000);
    assert_eq!(
        pg_count(&pg, "SELECT count(DISTINCT id) FROM orders").await,
        500
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM s3loader_ledger").await,
        500
    );
    assert!(keys(&*store, "incoming/").await.is_empty());
    assert_eq!(keys(&*store, "processed/").await.len(), 500);
}

/// Wraps a fanout and records the most batches it ever had in flight.
struct Counting {
    inner: LocalFanout,
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl Fanout for Counting {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = self.inner.dispatch(batch).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir_into_sqlite_takes_the_oldest_first_with_at_most_c_batches_in_flight() {
    let (store, dir) = local();
    let db = dir.path().join("wh.db");
    let cfg = config(
        &format!("kind = \"sqlite\"\npath = \"{}\"", db.display()),
        "max_files = 4\nbatch_max_files = 1\nconcurrency = 2",
    );
    let store = arc(store);
    // Six files, written newest first, with explicit ages.
    let base = SystemTime::now() - Duration::from_secs(3600);
    for i in (0..6u64).rev() {
        let key = format!("incoming/orders/f{i}.csv");
        put(
            &*store,
            &key,
            format!("id,customer,amount,ordered_at\n{i},c,1,x\n"),
        )
        .await;
        let path = dir.path().join("bucket").join(&key);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(base + Duration::from_secs(i * 60))
            .unwrap();
    }
    let counting = Arc::new(Counting {
        inner: LocalFanout::new(Worker::from_config(&cfg, store.clone()).unwrap()),
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let sched = scheduler_with(cfg, store.clone(), counting.clone());
    let r = sched.tick().await.unwrap();
    let loaded: Vec<&str> = r.files.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(
        loaded,
        [
            "incoming/orders/f0.csv",
            "incoming/orders/f1.csv",
            "incoming/orders/f2.csv",
            "incoming/orders/f3.csv"
        ]
    );
    assert_eq!((r.loaded, r.retried), (4, 0), "{r}");
    assert_eq!(r.backlog.files, 6);
    assert!(r.backlog.oldest_age_secs(chrono::Utc::now()) >= 3600);
    assert_eq!(
        counting.max.load(Ordering::SeqCst),
        2,
        "C = 2 batches in flight, no more, no less"
    );
    let r = sched.tick().await.unwrap();
    assert_eq!(r.loaded, 2);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_deadline_nothing_is_dispatched_and_nothing_is_lost() {
    let (store, dir) = local();
    let store = arc(store);
    for i in 0..3 {
        put(&*store, &format!("incoming/orders/{i}.csv"), "id\n1\n").await;
    }
    let cfg = config(
        &format!(
            "kind = \"sqlite\"\npath = \"{}\"",
            dir.path().join("wh.db").display()
        ),
        "",
    );
    let r = scheduler(cfg, store.clone())
        .tick_until(Instant::now())
        .await
        .unwrap();
    assert!(!r.backlog.complete, "a listing cut by the deadline says so");
    assert_eq!((r.selected, r.deferred, r.loaded), (3, 3, 0), "{r}");
    assert_eq!(keys(&*store, "incoming/").await.len(), 3);
}
