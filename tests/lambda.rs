//! The scheduler fanning out to the real loader Lambda binary, served by
//! `cargo lambda watch` (the Lambda Invoke API, locally), against SeaweedFS
//! and PostgreSQL.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use fanout::LambdaFanout;
use loader::config::Config;
use loader::store::{ObjectStore, PutMode};
use s3loader_e2e::*;
use scheduler::metrics::LogSink;
use scheduler::tick::Scheduler;

/// `cargo lambda watch` in its own process group, stopped on drop.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_drains_a_backlog_through_the_loader_lambda() {
    let seaweed = seaweedfs().await;
    let bucket = seaweed.bucket().to_owned();
    let store: Arc<dyn ObjectStore> = arc(seaweed);
    let url = pg_database().await;
    let pg = pg_connect(&url).await;
    pg.batch_execute("CREATE TABLE orders (id int, customer text)")
        .await
        .unwrap();
    for i in 0..6 {
        store
            .put(
                &format!("incoming/orders/{i}.csv"),
                Bytes::from(format!("id,customer\n{i},c{i}\n")),
                PutMode::Create,
            )
            .await
            .unwrap();
    }
    store
        .put(
            "incoming/orders/bad.csv",
            Bytes::from_static(b"id,customer\n1\n"),
            PutMode::Create,
        )
        .await
        .unwrap();

    let config_text = format!(
        r#"
        [source]
        url = "s3://{bucket}"
        [tick]
        batch_max_files = 2
        concurrency = 2
        [destinations.pg]
        kind = "postgres"
        url = "env:S3LOADER_TEST_LOADER_PG"
        [[route]]
        pattern = "orders/*.csv"
        destination = "pg"
        table = "orders"
        "#
    );
    let port = closed_port();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    // A target dir of its own: cargo-lambda's build environment differs from
    // a plain cargo build's (ring's build script reruns on it), so sharing
    // one would rebuild the TLS stack and the AWS SDK on every switch.
    let watch_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("lambda-watch");
    let _watch = Watch(
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", &watch_target)
            .env("S3LOADER_CONFIG", &config_text)
            .env("S3LOADER_TEST_LOADER_PG", &url)
            .env("AWS_ENDPOINT_URL_S3", service("S3LOADER_TEST_SEAWEEDFS"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch (pip install cargo-lambda)"),
    );
    let shared = aws_config_for(&format!("http://127.0.0.1:{port}")).await;
    let fanout = LambdaFanout::new(aws_sdk_lambda::Client::new(&shared), "loader-lambda");
    let config = Config::from_toml(&config_text).unwrap();
    let sched = Scheduler::new(config, store.clone(), Arc::new(fanout), Arc::new(LogSink)).unwrap();

    // The first invocation waits for `cargo lambda watch` to build the
    // function (minutes on a cold cache); until it answers, batches come
    // back retryable and stay in incoming/.
    let mut report = sched.tick().await.unwrap();
    for _ in 0..300 {
        if report.loaded + report.failed > 0 || report.backlog.files == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        report = sched.tick().await.unwrap();
    }
    let mut loaded = report.loaded;
    let mut failed = report.failed;
    while !keys(&*store, "incoming/").await.is_empty() {
        let r = sched.tick().await.unwrap();
        loaded += r.loaded;
        failed += r.failed;
        assert!(r.made_progress(), "stuck: {r}");
    }
    assert_eq!((loaded, failed), (6, 1));
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 6);
    assert_eq!(keys(&*store, "processed/").await.len(), 6);
    assert_eq!(
        keys(&*store, "failed/").await,
        vec!["failed/orders/bad.csv".to_string()]
    );
    let report: serde_json::Value =
        serde_json::from_slice(&read(&*store, "errors/orders/bad.csv.json").await).unwrap();
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("line 2: expected 2 fields"),
        "{report}"
    );
}
