//! Shared helpers for the end-to-end tests: connections to the services
//! that `tests/services.sh` starts. A missing service is a test failure,
//! never a skip.

use std::sync::Arc;

use loader::store::{LocalStore, ObjectStore, S3Store};

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

pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL at {url}: {e}"));
    tokio::spawn(conn);
    client
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
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap();
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}
