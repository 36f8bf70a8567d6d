//! Faults on purpose: each scenario runs a mixed backlog (CSV, gzip, zstd,
//! JSON Lines, bad files) through real services with a [`FaultProxy`] in
//! the way, ticks until the queue drains, and checks the invariants with
//! the one shared checker (`Backlog::check`): every good row exactly once,
//! every file in exactly one of `processed/` and `failed/`, `incoming/`
//! empty, and the backlog metric (published to moto's CloudWatch, read
//! back from there) gone to zero.
//!
//! `FAULT_SEEDS` (default 2, the test command's quick profile; 200 for a
//! nightly run) sets how many seeded runs each scenario makes per
//! destination; `FAULT_OUTAGE_SECS` (default 3; 90 nightly) how long
//! PostgreSQL refuses connections. Each run prints one `fault-tally` line (scenario,
//! destination, seed, files, rows, lost, doubled).

use std::sync::Arc;
use std::time::Duration;

use loader::config::Config;
use loader::store::{ObjectStore, S3Store};
use s3loader_e2e::backlog::{fault_seeds, pg_rows, Backlog, Metrics, Rng};
use s3loader_e2e::fault::FaultProxy;
use s3loader_e2e::*;
use scheduler::tick::Scheduler;

/// Where the rows go, and how to read them back.
enum Warehouse {
    Postgres(tokio_postgres::Client),
    Redshift(tokio_postgres::Client),
    /// The file, and the directory that holds it (kept while in use).
    Sqlite(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir),
}

impl Warehouse {
    /// A fresh warehouse of `kind`, and its `[destinations.wh]` body;
    /// PostgreSQL is reached through `pg_port` (a proxy) when given.
    async fn new(kind: &str, pg_port: Option<u16>) -> (Self, String) {
        match kind {
            "postgres" => {
                let (url, client) = pg_with(ORDERS_DDL).await;
                let url = match pg_port {
                    Some(p) => replace_port(&url, p),
                    None => url,
                };
                (
                    Warehouse::Postgres(client),
                    pg_destination(&format!("{url} sslmode=disable")),
                )
            }
            "redshift" => {
                let (url, client) = pg_with(ORDERS_DDL).await;
                let toml = redshift_destination(&unique("cluster-"), &pg_dbname(&url));
                (Warehouse::Redshift(client), toml)
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("wh.db");
                let toml = sqlite_destination(&path);
                (Warehouse::Sqlite(path, dir), toml)
            }
        }
    }

    async fn rows(&self) -> Vec<((String, String), String)> {
        let mut out = Vec::new();
        match self {
            Warehouse::Postgres(c) | Warehouse::Redshift(c) => out = pg_rows(c).await,
            Warehouse::Sqlite(path, _) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                for (table, sql) in [
                    ("orders", "SELECT id, customer FROM orders"),
                    ("events", "SELECT event_id, \"user\" FROM events"),
                ] {
                    let mut stmt = match conn.prepare(sql) {
                        Ok(s) => s,
                        Err(_) => continue, // never created: nothing loaded
                    };
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .unwrap();
                    for r in rows {
                        let (id, v) = r.unwrap();
                        out.push(((table.to_owned(), id), v));
                    }
                }
            }
        }
        out
    }
}

fn replace_port(url: &str, port: u16) -> String {
    url.split_whitespace()
        .map(|kv| match kv.strip_prefix("port=") {
            Some(_) => format!("port={port}"),
            None => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh SeaweedFS bucket, reached by s3loader through `proxy`; the
/// second store goes direct (seeding and checking see no faults).
async fn bucket_behind(proxy: &FaultProxy) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) {
    let direct = seaweedfs().await;
    let name = direct.name().strip_prefix("s3://").unwrap().to_owned();
    let faulty = S3Store::from_shared(&aws_config_for(&proxy.url()).await, &name);
    (arc(faulty), arc(direct))
}

fn upstream(var: &str) -> String {
    service(var).trim_start_matches("http://").to_owned()
}

/// A scheduler with in-process workers (AWS clients from `shared`, when
/// given) whose metrics go to moto's CloudWatch (through `via`, a proxy's
/// URL, when given).
async fn metered(
    mut cfg: Config,
    store: Arc<dyn ObjectStore>,
    fanout: Option<Arc<dyn fanout::Fanout>>,
    shared: Option<&aws_config::SdkConfig>,
    via: Option<String>,
    metrics: &Metrics,
) -> Scheduler {
    metrics.configure(&mut cfg);
    let fanout = fanout.unwrap_or_else(|| {
        let worker = match shared {
            Some(shared) => loader::worker::Worker::from_config_shared(&cfg, store.clone(), shared),
            None => loader::worker::Worker::from_config(&cfg, store.clone()),
        };
        Arc::new(fanout::LocalFanout::new(worker.unwrap()))
    });
    let sink = metrics.sink(via).await;
    Scheduler::new(cfg, store, fanout, sink).unwrap()
}

/// Ticks until `incoming/` is empty (a tick that errs, as when the lease
/// or the state cannot be written, is just another tick), at most `max`;
/// then `between(usize::MAX)` (heal) and one last tick that must hold the
/// lease and find the backlog empty, so the metric goes to zero.
async fn drain(
    sched: &Scheduler,
    direct: &dyn ObjectStore,
    max: usize,
    mut between: impl FnMut(usize),
) {
    let mut drained = false;
    for i in 0..max {
        between(i);
        let _ = sched.tick().await;
        if keys(direct, "incoming/").await.is_empty() {
            drained = true;
            break;
        }
    }
    assert!(
        drained,
        "not drained after {max} ticks: {:?}",
        keys(direct, "incoming/").await
    );
    between(usize::MAX);
    for _ in 0..20 {
        match sched.tick().await {
            Ok(r) if r.lease == scheduler::report::LeaseStatus::Acquired => {
                assert_eq!(r.backlog.files, 0, "{r}");
                return;
            }
            // Another tick's lease (a killed one's) has yet to expire.
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    panic!("no tick held the lease after the queue drained");
}

/// Storms on every HTTP service s3loader talks to, at once, for six
/// ticks: 10-30% of requests to S3 (SeaweedFS) get 503 SlowDown, 500 or
/// 429 and as many connections are cut mid-answer (mid-GET of a file,
/// mid-copy); so go moto's CloudWatch (the metrics) and, for Redshift, the
/// Data API stand-in (mid-submit, mid-describe), while the tick leases,
/// lists, loads, moves and publishes.
async fn storms(dest: &str) {
    for seed in 0..fault_seeds() {
        let s3 = FaultProxy::start(&upstream("S3LOADER_TEST_SEAWEEDFS")).await;
        let moto = FaultProxy::start(&upstream("S3LOADER_TEST_MOTO")).await;
        let data_api = FaultProxy::start(&upstream("S3LOADER_TEST_REDSHIFT")).await;
        let (faulty, direct) = bucket_behind(&s3).await;
        let backlog = Backlog::put(&*direct, 10, 40).await;
        let (wh, toml) = Warehouse::new(dest, None).await;
        let cfg = config(&toml, "batch_max_files = 3\nmax_attempts = 50");
        let shared = aws_config_for(&data_api.url()).await;
        let metrics = Metrics::default();
        let via = Some(moto.url());
        let sched = metered(cfg, faulty, None, Some(&shared), via, &metrics).await;
        let mut rng = Rng::new(seed);
        let proxies = [&s3, &moto, &data_api];
        let percent = 10 + rng.below(21);
        drain(&sched, &*direct, 40, |i| {
            for (n, proxy) in proxies.iter().enumerate() {
                match i {
                    // A storm, and one certain error and cut first, so
                    // each service sees a fault however few its requests.
                    0 => {
                        proxy.storm(percent, seed * 3 + n as u64);
                        proxy.http_errors(1, 503, "");
                        proxy.cut_answers(1, 100 + seed * 97 % 1900);
                    }
                    // Healed; one that has seen no fault yet (a service
                    // no tick reached in the storm) still answers its next
                    // request with a 503, which the SDK retries.
                    6.. => {
                        let (_, cut, errors) = proxy.injected();
                        proxy.heal();
                        if cut + errors == 0 {
                            proxy.http_errors(1, 503, "");
                        }
                    }
                    _ => {}
                }
            }
        })
        .await;
        for (name, proxy) in [("S3", &s3), ("CloudWatch", &moto)] {
            let (_, cut, errors) = proxy.injected();
            assert!(cut + errors > 0, "no fault was injected into {name}");
        }
        if dest == "redshift" {
            let (_, cut, errors) = data_api.injected();
            assert!(cut + errors > 0, "no fault was injected into the Data API");
        }
        let found = wh.rows().await;
        backlog
            .check(&*direct, &found, &metrics)
            .await
            .report("storms", dest, seed);
    }
}

/// PostgreSQL refuses connections for a while, and connections are cut
/// mid-transaction (as when the server restarts mid-COPY).
async fn postgres_outages(scenario: &str, refuse: Duration) {
    for seed in 0..fault_seeds() {
        let pg_port: u16 = service("S3LOADER_TEST_PG")
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("port="))
            .unwrap()
            .parse()
            .unwrap();
        let proxy = FaultProxy::start(&format!("127.0.0.1:{pg_port}")).await;
        let store = arc(seaweedfs().await);
        let backlog = Backlog::put(&*store, 10, 200).await;
        let (wh, toml) = Warehouse::new("postgres", Some(proxy.port)).await;
        let cfg: Config = config(&toml, "batch_max_files = 2\nmax_attempts = 50");
        let metrics = Metrics::default();
        let sched = metered(cfg, store.clone(), None, None, None, &metrics).await;
        let mut rng = Rng::new(seed);
        let ticks = 60 + 5 * refuse.as_secs() as usize;
        drain(&sched, &*store, ticks, |i| match (scenario, i) {
            ("refused", 0) => proxy.refuse_for(refuse),
            ("cut-mid-copy", 0..=4) => proxy.cut_answers(2, 50 + rng.below(450)),
            ("cut-mid-copy", _) => proxy.heal(),
            _ => std::thread::sleep(Duration::from_millis(200)),
        })
        .await;
        let (refused, cut, _) = proxy.injected();
        assert!(refused + cut > 0, "no fault was injected");
        let found = wh.rows().await;
        backlog
            .check(&*store, &found, &metrics)
            .await
            .report(scenario, "postgres", seed);
    }
}

/// A real restart of the destination while it copies: a cluster of the
/// test's own is restarted (`pg_ctl restart -m fast`: every session is
/// terminated, the COPY under way rolled back) the moment a COPY of the
/// tick shows in `pg_stat_activity`, a seeded 0-30 ms later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_copy() {
    for seed in 0..fault_seeds() {
        let cluster = Arc::new(s3loader_e2e::cluster::PgCluster::start());
        pg_connect(&cluster.url())
            .await
            .batch_execute(ORDERS_DDL)
            .await
            .unwrap();
        let store = arc(seaweedfs().await);
        let backlog = Backlog::put(&*store, 10, 20_000).await;
        let toml = pg_destination(&format!("{} sslmode=disable", cluster.url()));
        let cfg: Config = config(&toml, "batch_max_files = 2\nmax_attempts = 50");
        let metrics = Metrics::default();
        let sched = metered(cfg, store.clone(), None, None, None, &metrics).await;
        let mut rng = Rng::new(seed);
        // The tick, and beside it (the tick's future is not Send) the
        // watch for its COPY and the restart.
        let restart = async {
            copy_under_way(&pg_connect(&cluster.url()).await).await;
            tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
            let cluster = cluster.clone();
            tokio::task::spawn_blocking(move || cluster.restart())
                .await
                .unwrap();
        };
        let (first, ()) = tokio::join!(sched.tick(), restart);
        // The tick the restart hit loaded what it committed before and
        // returned the rest to the queue: not all of it.
        let first = first.expect("a destination restart is not a failed tick");
        assert!(first.retried > 0, "the restart hit no batch: {first}");

        drain(&sched, &*store, 60, |_| {}).await;
        let found = pg_rows(&pg_connect(&cluster.url()).await).await;
        backlog.check(&*store, &found, &metrics).await.report(
            "restarted-mid-copy",
            "postgres",
            seed,
        );
    }
}

/// Redshift's side of a restart: the Data API stand-in runs each COPY on
/// a PostgreSQL session, and every session of the warehouse's database is
/// terminated (what a restart does to them) the moment a COPY shows, a
/// seeded 0-30 ms later. The statement ends FAILED with no rejected row
/// to blame: an outage, every file of it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_sessions_terminated_mid_copy() {
    for seed in 0..fault_seeds() {
        let store = arc(seaweedfs().await);
        let backlog = Backlog::put(&*store, 10, 20_000).await;
        let (wh, toml) = Warehouse::new("redshift", None).await;
        let Warehouse::Redshift(admin) = &wh else {
            unreachable!()
        };
        let cfg: Config = config(&toml, "batch_max_files = 2\nmax_attempts = 50");
        let metrics = Metrics::default();
        let sched = metered(cfg, store.clone(), None, None, None, &metrics).await;
        let mut rng = Rng::new(seed);
        let terminate = async {
            copy_under_way(admin).await;
            tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
        };
        let (first, terminated) = tokio::join!(sched.tick(), terminate);
        assert!(terminated > 0, "no session to terminate");
        let first = first.expect("a destination restart is not a failed tick");
        assert!(first.retried > 0, "the termination hit no batch: {first}");
        drain(&sched, &*store, 60, |_| {}).await;
        let found = wh.rows().await;
        backlog.check(&*store, &found, &metrics).await.report(
            "restarted-mid-copy",
            "redshift",
            seed,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_into_postgres() {
    storms("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_into_sqlite() {
    storms("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_into_redshift() {
    storms("redshift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_for_a_while() {
    let secs = std::env::var("FAULT_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    postgres_outages("refused", Duration::from_secs(secs)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_copy() {
    postgres_outages("cut-mid-copy", Duration::ZERO).await;
}

/// The checker can fail: a backlog metric that never went to zero, a
/// doubled row and a lost one are each seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_sees_a_doubled_row_a_lost_one_and_a_metric_left_up() {
    use futures::FutureExt;
    let store = arc(seaweedfs().await);
    let backlog = Backlog::put(&*store, 5, 3).await;
    let (wh, toml) = Warehouse::new("sqlite", None).await;
    let metrics = Metrics::default();
    let sched = metered(config(&toml, ""), store.clone(), None, None, None, &metrics).await;
    sched.tick().await.unwrap();
    let rows = wh.rows().await;
    // Drained, but no tick has seen the empty queue yet.
    assert!(keys(&*store, "incoming/").await.is_empty());
    let early = std::panic::AssertUnwindSafe(backlog.check(&*store, &rows, &metrics))
        .catch_unwind()
        .await;
    assert!(
        early.is_err(),
        "the checker passed a backlog metric left up"
    );
    sched.tick().await.unwrap();
    assert_eq!(backlog.check(&*store, &rows, &metrics).await.lost, 0);
    let mut doubled = rows.clone();
    doubled.push(rows[0].clone());
    let mut lost = rows.clone();
    lost.pop();
    for bad in [doubled, lost] {
        let caught = std::panic::AssertUnwindSafe(backlog.check(&*store, &bad, &metrics))
            .catch_unwind()
            .await;
        assert!(caught.is_err(), "the checker passed a broken warehouse");
    }
}

/// Runs the real worker, but first (or after the load, before the tick
/// moves anything) replaces one file of the batch with new bytes: a new
/// ETag between list and load, or between load and move.
struct ReplaceDuring {
    inner: fanout::LocalFanout,
    store: Arc<dyn ObjectStore>,
    key: String,
    body: String,
    after_load: bool,
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl fanout::Fanout for ReplaceDuring {
    async fn dispatch(&self, batch: loader::contract::Batch) -> loader::contract::BatchOutcome {
        use std::sync::atomic::Ordering;
        let ours = batch.files.iter().any(|f| f.key == self.key);
        let replace = || async {
            if ours && !self.done.swap(true, Ordering::SeqCst) {
                put(&*self.store, &self.key, self.body.clone()).await;
            }
        };
        if !self.after_load {
            replace().await;
        }
        let out = self.inner.dispatch(batch).await;
        if self.after_load {
            replace().await;
        }
        out
    }
}

/// An object replaced between list and load (or between load and move):
/// only the version that was loaded moves, and the new version loads
/// later, each once.
async fn replaced(after_load: bool) {
    let store = arc(seaweedfs().await);
    let mut backlog = Backlog::put(&*store, 10, 5).await;
    let (wh, toml) = Warehouse::new("postgres", None).await;
    let cfg = config(&toml, "batch_max_files = 3");
    // The first CSV file gets a new version with other ids.
    let i = 0;
    let key = backlog.files[i].key.clone();
    let mut body = String::from("id,customer,amount,ordered_at\n");
    let mut new_rows = std::collections::BTreeMap::new();
    for id in 900_000..900_004 {
        body += &format!("{id},c{id},1.50,2026-11-01T00:00:00Z\n");
        new_rows.insert(("orders".to_owned(), id.to_string()), format!("c{id}"));
    }
    if after_load {
        backlog.files[i].rows.extend(new_rows);
    } else {
        backlog.files[i].rows = new_rows;
    }
    let worker = loader::worker::Worker::from_config(&cfg, store.clone()).unwrap();
    let fanout = ReplaceDuring {
        inner: fanout::LocalFanout::new(worker),
        store: store.clone(),
        key: key.clone(),
        body,
        after_load,
        done: false.into(),
    };
    let metrics = Metrics::default();
    let sched = metered(
        cfg,
        store.clone(),
        Some(Arc::new(fanout)),
        None,
        None,
        &metrics,
    )
    .await;
    let first = sched.tick().await.unwrap();
    let line = result_of(&first, &key);
    // Before the load: the worker's read is pinned to the listed ETag,
    // so the file stays, to be listed afresh. After the load: the move is
    // pinned too, so the new version is not moved as the loaded one.
    let want = if after_load {
        scheduler::report::FileResult::Gone
    } else {
        scheduler::report::FileResult::Retry
    };
    assert_eq!(line.result, want, "{first}");
    drain(&sched, &*store, 5, |_| {}).await;
    let scenario = if after_load {
        "replaced-after-load"
    } else {
        "replaced-before-load"
    };
    let found = wh.rows().await;
    backlog
        .check(&*store, &found, &metrics)
        .await
        .report(scenario, "postgres", 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_between_list_and_load_loads_its_new_version_once() {
    replaced(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_between_load_and_move_keeps_both_versions_once() {
    replaced(true).await;
}

/// The real worker, late: every batch waits `delay` before it loads, as a
/// tick stalled by a slow destination.
struct Late(fanout::LocalFanout, Duration);

#[async_trait::async_trait]
impl fanout::Fanout for Late {
    async fn dispatch(&self, batch: loader::contract::Batch) -> loader::contract::BatchOutcome {
        tokio::time::sleep(self.1).await;
        self.0.dispatch(batch).await
    }
}

/// A tick so slow that its lease expires: a second tick takes over and
/// loads the same files while the first still holds them; the first then
/// loads (the ledger says `AlreadyLoaded` or it loads first) and moves
/// after the takeover. Each row still lands once, each file in one place.
async fn lease_expires(dest: &str) {
    for seed in 0..fault_seeds() {
        let store = arc(seaweedfs().await);
        let backlog = Backlog::put(&*store, 10, 20).await;
        let (wh, toml) = Warehouse::new(dest, None).await;
        let tick = "deadline_secs = 1\nlist_max_secs = 1\nlease_ttl_secs = 2\nbatch_max_files = 3";
        let cfg = config(&toml, tick);
        let worker = loader::worker::Worker::from_config(&cfg, store.clone()).unwrap();
        let mut rng = Rng::new(seed);
        let late = Duration::from_millis(3000 + rng.below(1500));
        let metrics = Metrics::default();
        let late = Arc::new(Late(fanout::LocalFanout::new(worker), late));
        let slow = metered(cfg.clone(), store.clone(), Some(late), None, None, &metrics).await;
        let fast = metered(cfg, store.clone(), None, None, None, &metrics).await;
        let takeover = Duration::from_millis(2200 + rng.below(500));
        let (_first, second) = tokio::join!(slow.tick(), async {
            tokio::time::sleep(takeover).await;
            fast.tick().await.unwrap()
        });
        assert_eq!(
            second.lease,
            scheduler::report::LeaseStatus::Acquired,
            "the second tick took over: {second}"
        );
        // It dispatched files the first tick still held. (Whether it
        // also loaded them within its 1 s deadline depends on the
        // destination's pace: a Redshift COPY still running at the
        // deadline is found by the next tick, not started again.)
        assert!(
            second.selected > 0 && second.loaded + second.retried > 0,
            "the ticks shared files: {second}"
        );
        drain(&fast, &*store, 5, |_| {}).await;
        let found = wh.rows().await;
        backlog
            .check(&*store, &found, &metrics)
            .await
            .report("lease-expired", dest, seed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_under_a_slow_tick_into_postgres() {
    lease_expires("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_under_a_slow_tick_into_sqlite() {
    lease_expires("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_under_a_slow_tick_into_redshift() {
    lease_expires("redshift").await;
}

/// The `s3loader` binary, built now (the test may run before anything
/// else built it).
fn s3loader_bin() -> std::path::PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "s3loader", "--bin", "s3loader"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build -p s3loader");
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/faults-<hash> -> <target>/debug/s3loader
    exe.parent().unwrap().parent().unwrap().join("s3loader")
}

/// `s3loader run` SIGKILLed at a random moment, again and again, the
/// lease left to expire between kills so each kill lands in real work;
/// then one last run drains the queue.
async fn killed_at_random(dest: &str) {
    let bin = s3loader_bin();
    for seed in 0..fault_seeds() {
        let store = arc(seaweedfs().await);
        let bucket = store.name().to_owned();
        let backlog = Backlog::put(&*store, 12, 300).await;
        let (wh, toml) = Warehouse::new(dest, None).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3loader.toml");
        let metrics = Metrics::default();
        std::fs::write(
            &config,
            format!(
                "{}[source]\nurl = \"{bucket}\"\n[tick]\ninterval_secs = 1\ndeadline_secs = 2\n\
                 list_max_secs = 1\nlease_ttl_secs = 3\nbatch_max_files = 2\nconcurrency = 2\n\
                 [destinations.wh]\n{toml}\n[[route]]\npattern = \"orders/**/*.csv*\"\n\
                 destination = \"wh\"\ntable = \"orders\"\n[[route]]\npattern = \"events/**/*.jsonl*\"\n\
                 destination = \"wh\"\ntable = \"events\"\nformat = \"jsonl\"\n",
                metrics.toml()
            ),
        )
        .unwrap();
        let start = || {
            std::process::Command::new(&bin)
                .args(["--config", config.to_str().unwrap(), "run"])
                .env("AWS_ENDPOINT_URL_S3", service("S3LOADER_TEST_SEAWEEDFS"))
                .env("AWS_ENDPOINT_URL_CLOUDWATCH", service("S3LOADER_TEST_MOTO"))
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut rng = Rng::new(seed);
        let mut kills = 0;
        for _ in 0..2 {
            if keys(&*store, "incoming/").await.is_empty() {
                break;
            }
            let mut child = start();
            tokio::time::sleep(Duration::from_millis(300 + rng.below(2500))).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            // The dead process's lease expires.
            tokio::time::sleep(Duration::from_millis(3200)).await;
        }
        let mut child = start();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !keys(&*store, "incoming/").await.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "not drained after the kills"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Its next tick (1 s on) finds the queue empty and says so.
        while metrics.backlog_min().await.is_none_or(|min| min > 0.0) {
            assert!(
                std::time::Instant::now() < deadline,
                "no tick published the empty backlog"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kills > 0);
        let found = wh.rows().await;
        backlog
            .check(&*store, &found, &metrics)
            .await
            .report("killed-at-random", dest, seed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3loader_run_killed_at_random_into_postgres() {
    killed_at_random("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3loader_run_killed_at_random_into_sqlite() {
    killed_at_random("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3loader_run_killed_at_random_into_redshift() {
    killed_at_random("redshift").await;
}
