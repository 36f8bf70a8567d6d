//! # Layout
//!
//! Shared helpers for the end-to-end tests: connections to the services
//! that `tests/services.sh` starts (a missing service is a test failure,
//! never a skip), then the tick as the tests drive it: config builders,
//! putting objects, gzip, reading reports, a store whose moves fail.
//!
//! The test binaries beside it: `store_conformance` (every store rule on
//! SeaweedFS, moto and a directory), `dest_conformance` (every destination
//! rule on PostgreSQL and SQLite), `pipeline`, `safety`, `metrics`,
//! `forecasts`, `lambda`, `faults` (faults injected on purpose through
//! [`fault::FaultProxy`], checked by [`backlog::Backlog::check`]).

use std::sync::Arc;

use loader::store::{LocalStore, ObjectStore, S3Store};

pub mod backlog;
pub mod cluster;
pub mod fault;

/// The value of a variable `tests/services.sh` exports.
pub fn service(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the integration tests through tests/services.sh (README, 'Test')")
    })
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The shared AWS config for a local endpoint, built as the product builds
/// its own (aws-config; credentials from the environment services.sh sets).
pub async fn aws_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

/// An S3 client for a local endpoint, with path-style addressing.
pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let shared = aws_config_for(endpoint).await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A fresh bucket on the S3 service behind `var`.
pub async fn bucket(var: &str) -> S3Store {
    let client = s3_client(&service(var)).await;
    let name = unique("t-");
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket on {var}: {e:?}"));
    S3Store::new(client, name)
}

pub async fn seaweedfs() -> S3Store {
    bucket("S3LOADER_TEST_SEAWEEDFS").await
}

pub async fn moto() -> S3Store {
    bucket("S3LOADER_TEST_MOTO").await
}

/// A local-directory store in a fresh temporary directory (kept alive by
/// the returned guard).
pub fn local() -> (LocalStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (LocalStore::new(dir.path().join("bucket")).unwrap(), dir)
}

pub fn arc<S: ObjectStore>(s: S) -> Arc<dyn ObjectStore> {
    Arc::new(s)
}

/// A fresh store of the kind named (`seaweedfs`, `moto`, `local_dir`), and
/// the guard that keeps a local one's directory alive.
pub async fn open_store(kind: &str) -> (Arc<dyn ObjectStore>, Option<tempfile::TempDir>) {
    match kind {
        "seaweedfs" => (arc(seaweedfs().await), None),
        "moto" => (arc(moto().await), None),
        "local_dir" => {
            let (store, dir) = local();
            (arc(store), Some(dir))
        }
        other => panic!("no store kind {other:?}"),
    }
}

/// One test per store kind for each rule, an `async fn(Arc<dyn
/// ObjectStore>)` in scope: `on_stores!([seaweedfs, moto, local_dir]
/// [rule_a, rule_b]);` makes `seaweedfs::rule_a`, `moto::rule_a`, and so
/// on. The conformance pattern of arrow-rs's object_store.
#[macro_export]
macro_rules! on_stores {
    ([$($store:ident),* $(,)?] $rules:tt) => {
        $( $crate::on_stores!(@store $store $rules); )*
    };
    (@store $store:ident [$($rule:ident),* $(,)?]) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    let (store, _guard) = $crate::open_store(stringify!($store)).await;
                    super::$rule(store).await;
                }
            )*
        }
    };
}

/// A fresh PostgreSQL database; returns its connection string.
pub async fn pg_database() -> String {
    let admin = service("S3LOADER_TEST_PG");
    let client = pg_connect(&admin).await;
    let name = unique("t_");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.replace("dbname=postgres", &format!("dbname={name}"))
}

/// A fresh database with `ddl` run in it: its connection string, and a
/// client on it.
pub async fn pg_with(ddl: &str) -> (String, tokio_postgres::Client) {
    let url = pg_database().await;
    let client = pg_connect(&url).await;
    client.batch_execute(ddl).await.expect("the test's DDL");
    (url, client)
}

/// A fresh database on the TLS-only cluster (as RDS runs one): the URL the
/// loader uses (TCP, `verify-full` against the test CA) and a client on it
/// over the Unix socket (the cluster refuses plaintext TCP), with `ddl` run.
pub async fn pg_tls_with(ddl: &str) -> (String, tokio_postgres::Client) {
    let admin = service("S3LOADER_TEST_PG_TLS_ADMIN");
    let name = unique("t_");
    pg_connect(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let client = pg_connect(&admin.replace("dbname=postgres", &format!("dbname={name}"))).await;
    client.batch_execute(ddl).await.expect("the test's DDL");
    let url = format!(
        "{} sslmode=verify-full sslrootcert={}",
        service("S3LOADER_TEST_PG_TLS").replace("dbname=postgres", &format!("dbname={name}")),
        service("S3LOADER_TEST_PG_CA")
    );
    (url, client)
}

pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Waits until a COPY runs in the database `admin` is connected to.
pub async fn copy_under_way(admin: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg_count(
        admin,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state = 'active' AND query LIKE 'COPY %'",
    )
    .await
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "no COPY ever ran");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

pub async fn pg_count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Every key under `prefix`.
pub async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    store
        .list(prefix)
        .try_concat()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect()
}

/// Reads an object whole.
pub async fn read(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut o = store.get(key, None).await.unwrap();
    let mut buf = Vec::new();
    o.body.read_to_end(&mut buf).await.unwrap();
    buf
}

/// A port nothing listens on: a destination that is down.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `n` distinct arbitrary keys under `prefix`, drawn by proptest from
/// `seed` (the same seed, the same keys): segments of any unicode that is
/// not a control character, `/` or `\\`, weighted toward quotes, `%`,
/// `+`, spaces and URL metacharacters, never `.` or `..`; each key at most
/// 1,024 bytes, some near it. (A backslash is left out: SeaweedFS stores
/// `a\\b` as `a/b`; control characters cannot travel in S3's XML
/// listings without `encoding-type=url`.)
pub fn arbitrary_keys(prefix: &str, n: usize, seed: u64) -> Vec<String> {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let ch = prop_oneof![
        3 => any::<char>().prop_filter("not a control, / or \\", |c| {
            !c.is_control() && *c != '/' && *c != '\\'
        }),
        2 => prop::sample::select(vec![
            '\'', '"', '%', '+', ' ', '&', '?', '#', '=', '~', '*', '.', ';', ':', '@', '$',
            ',', '<', '>', '|', '`', '{', '}', '[', ']', '^', 'é', '日', '📦',
        ]),
        1 => prop::char::range('a', 'z'),
    ];
    let segment = prop::collection::vec(ch, 1..60)
        .prop_map(String::from_iter)
        .prop_filter("not . or ..", |s| s != "." && s != "..");
    let key = prop::collection::vec(segment, 1..24);
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < n {
        let segments = key.new_tree(&mut runner).unwrap().current();
        let mut k = prefix.to_owned();
        for (i, s) in segments.iter().enumerate() {
            let sep = if i == 0 { "" } else { "/" };
            if k.len() + sep.len() + s.len() > 1024 {
                break;
            }
            k.push_str(sep);
            k.push_str(s);
        }
        if k.len() > prefix.len() {
            keys.insert(k);
        }
    }
    keys.into_iter().collect()
}

/// A CloudWatch client for moto.
pub async fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&aws_config_for(&service("S3LOADER_TEST_MOTO")).await)
}

/// The sum of one metric over the last hour, for one pipeline.
pub async fn cloudwatch_sum(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    pipeline: &str,
    name: &str,
) -> f64 {
    use aws_sdk_cloudwatch::types::Statistic;
    let points = cloudwatch_stat(cw, namespace, pipeline, name, Statistic::Sum).await;
    points.iter().sum()
}

/// One statistic of a metric per minute over the last hour, for one
/// pipeline (an empty list when nothing was published).
pub async fn cloudwatch_stat(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    pipeline: &str,
    name: &str,
    stat: aws_sdk_cloudwatch::types::Statistic,
) -> Vec<f64> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let now = std::time::SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .dimensions(
            Dimension::builder()
                .name("Pipeline")
                .value(pipeline)
                .build(),
        )
        .start_time(DateTime::from(now - std::time::Duration::from_secs(3600)))
        .end_time(DateTime::from(now + std::time::Duration::from_secs(60)))
        .period(60)
        .statistics(stat.clone())
        .send()
        .await
        .unwrap();
    out.datapoints()
        .iter()
        .filter_map(|d| match stat {
            Statistic::Sum => d.sum(),
            Statistic::Minimum => d.minimum(),
            Statistic::Maximum => d.maximum(),
            Statistic::Average => d.average(),
            _ => d.sample_count(),
        })
        .collect()
}

// --- The tick, as the pipeline tests drive it ------------------------------

use bytes::Bytes;
use fanout::{Fanout, LocalFanout};
use loader::config::Config;
use loader::store::{GetObject, ObjectMeta, PutMode};
use loader::worker::Worker;
use scheduler::metrics::LogSink;
use scheduler::report::{FileLine, TickReport};
use scheduler::tick::Scheduler;

/// The tables the routes of [`config`] load into, for PostgreSQL.
pub const ORDERS_DDL: &str = "CREATE TABLE orders (id int, customer text NOT NULL, amount numeric(12,2), ordered_at timestamptz);
                          CREATE TABLE events (event_id text, type text, \"user\" text, at timestamptz, props jsonb);";

/// A config with one destination `wh` (its TOML body given), routes for
/// `orders/**/*.csv*` and `events/**/*.jsonl*`, and `tick` lines.
pub fn config(destination: &str, tick: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        [source]
        url = "s3://set-by-the-test"
        [tick]
        {tick}
        [destinations.wh]
        {destination}
        [[route]]
        pattern = "orders/**/*.csv*"
        destination = "wh"
        table = "orders"
        [[route]]
        pattern = "events/**/*.jsonl*"
        destination = "wh"
        table = "events"
        format = "jsonl"
        "#
    ))
    .unwrap()
}

pub fn pg_destination(url: &str) -> String {
    format!("kind = \"postgres\"\nurl = \"{url}\"\nconnect_timeout_secs = 3")
}

pub fn sqlite_destination(path: &std::path::Path) -> String {
    format!("kind = \"sqlite\"\npath = \"{}\"", path.display())
}

pub fn scheduler_with(
    config: Config,
    store: Arc<dyn ObjectStore>,
    fanout: Arc<dyn Fanout>,
) -> Scheduler {
    Scheduler::new(config, store, fanout, Arc::new(LogSink)).unwrap()
}

/// A scheduler with in-process workers, as `s3loader tick` runs.
pub fn scheduler(config: Config, store: Arc<dyn ObjectStore>) -> Scheduler {
    let worker = Worker::from_config(&config, store.clone()).unwrap();
    scheduler_with(config, store, Arc::new(LocalFanout::new(worker)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub async fn put(store: &dyn ObjectStore, key: &str, body: impl Into<Bytes>) {
    store
        .put(key, body.into(), PutMode::Overwrite)
        .await
        .unwrap();
}

/// The task for the object now at `key`, as the scheduler would send it.
pub async fn file_task(store: &dyn ObjectStore, key: &str) -> loader::contract::FileTask {
    let meta = store.head(key).await.unwrap();
    loader::contract::FileTask {
        key: key.to_owned(),
        etag: meta.etag,
        size: meta.size,
        spec: Default::default(),
        processed_key: String::new(),
        rejected_key: String::new(),
    }
}

pub fn result_of<'a>(report: &'a TickReport, key: &str) -> &'a FileLine {
    report
        .files
        .iter()
        .find(|l| l.key == key)
        .unwrap_or_else(|| panic!("{key:?} not in the report: {report:#?}"))
}

pub async fn error_report(store: &dyn ObjectStore, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(store, &format!("errors/{rel}.json")).await).unwrap()
}

/// A store with faults injected on purpose, delegating the rest.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    /// Copies into `processed/` fail: the load commits, the move does
    /// not, as when the process dies between the two.
    moves_fail: bool,
    /// Listing comes in pages of 100 keys, each 150 ms, as a bucket of
    /// millions of keys is slow to list in full.
    slow_list: bool,
}

impl Faulty {
    pub fn moves_fail(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            moves_fail: true,
            slow_list: false,
        }
    }

    pub fn slow_list(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            moves_fail: false,
            slow_list: true,
        }
    }

    fn pages<'a>(&self, pages: Pages<'a>) -> Pages<'a> {
        use futures::StreamExt;
        if !self.slow_list {
            return pages;
        }
        pages
            .flat_map(|page| {
                futures::stream::iter(match page {
                    Ok(p) => p.chunks(100).map(|c| Ok(c.to_vec())).collect(),
                    Err(e) => vec![Err(e)],
                })
            })
            .then(|page| async {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                page
            })
            .boxed()
    }
}

type Pages<'a> = futures::stream::BoxStream<'a, loader::Result<Vec<ObjectMeta>>>;

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn list<'a>(&'a self, prefix: &'a str) -> Pages<'a> {
        self.pages(self.inner.list(prefix))
    }
    fn list_after<'a>(&'a self, prefix: &'a str, start_after: &'a str) -> Pages<'a> {
        self.pages(self.inner.list_after(prefix, start_after))
    }
    async fn head(&self, key: &str) -> loader::Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str, if_match: Option<&str>) -> loader::Result<GetObject> {
        self.inner.get(key, if_match).await
    }
    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> loader::Result<String> {
        self.inner.put(key, body, mode).await
    }
    async fn delete(&self, key: &str, if_match: Option<&str>) -> loader::Result<()> {
        self.inner.delete(key, if_match).await
    }
    async fn copy_if_absent(&self, from: &ObjectMeta, to: &str) -> loader::Result<()> {
        if self.moves_fail && to.starts_with("processed/") {
            return Err(loader::Error::Store {
                op: "copy",
                store: self.name().to_owned(),
                key: from.key.clone(),
                code: Some("InjectedFault".into()),
                retryable: true,
                source: "injected: the process died before the move".into(),
            });
        }
        self.inner.copy_if_absent(from, to).await
    }
    async fn same_content(&self, a: &ObjectMeta, b: &ObjectMeta) -> loader::Result<bool> {
        self.inner.same_content(a, b).await
    }
}

/// A `[destinations.wh]` body for Redshift through the Data API stand-in
/// (`tests/redshift_standin.py`): `cluster` is the test's own, so its
/// counts and delays are its own; `database` is a PostgreSQL database.
pub fn redshift_destination(cluster: &str, database: &str) -> String {
    format!(
        "kind = \"redshift\"\ncluster_id = \"{cluster}\"\ndatabase = \"{database}\"\n\
         db_user = \"s3loader\"\niam_role = \"arn:aws:iam::123456789012:role/s3loader-copy\"\n\
         wait_secs = 30"
    )
}

/// The name of the database a [`pg_database`] URL points at.
pub fn pg_dbname(url: &str) -> String {
    url.split("dbname=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("dbname= in the URL")
        .to_owned()
}

/// What the Redshift stand-in ran for `cluster`: `copies`, `batches`,
/// `statements`, `token_hits`.
pub fn redshift_stats(cluster: &str) -> serde_json::Value {
    let url = format!(
        "{}/_standin/stats?cluster={cluster}",
        service("S3LOADER_TEST_REDSHIFT")
    );
    let out = std::process::Command::new("curl")
        .args(["-sf", "-m", "5", &url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "stand-in stats: {out:?}");
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

/// Holds every statement of `cluster` for `ms` before it commits.
pub fn redshift_delay(cluster: &str, ms: u64) {
    let url = format!("{}/_standin/delay", service("S3LOADER_TEST_REDSHIFT"));
    let body = format!("{{\"cluster\": \"{cluster}\", \"ms\": {ms}}}");
    let out = std::process::Command::new("curl")
        .args(["-sf", "-m", "5", "-X", "POST", "-d", &body, &url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "stand-in delay: {out:?}");
}

/// A Parquet file shaped like `orders` (id, customer, amount, ordered_at
/// in UTC), snappy-compressed, in row groups of `group` rows: what Spark
/// or pandas would write.
pub fn orders_parquet(rows: &[(i32, Option<&str>)], group: usize) -> Vec<u8> {
    use arrow_array::TimestampMillisecondArray;
    use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "customer",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ),
        (
            "amount",
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| f64::from(r.0) / 4.0)
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "ordered_at",
            Arc::new(
                TimestampMillisecondArray::from(
                    rows.iter()
                        .map(|r| 1_795_000_000_000 + i64::from(r.0))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}
