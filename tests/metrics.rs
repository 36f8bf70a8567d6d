//! The CloudWatch metrics sink against moto's CloudWatch: a real tick
//! publishes, and the data is read back.

use std::sync::Arc;

use fanout::LocalFanout;
use loader::config::{Config, MetricsConfig, SinkKind};
use loader::store::ObjectStore;
use loader::worker::Worker;
use s3loader_e2e::*;
use scheduler::metrics::{CloudWatchSink, MetricsSink, TickMetrics};
use scheduler::tick::Scheduler;

/// The shared test config (`orders/**` into destination `wh`), publishing
/// to CloudWatch under `namespace` and `pipeline`.
fn cloudwatch_config(destination: &str, tick: &str, namespace: &str, pipeline: &str) -> Config {
    let mut config = config(destination, tick);
    config.metrics = MetricsConfig {
        sink: SinkKind::Cloudwatch,
        namespace: namespace.into(),
        pipeline: pipeline.into(),
    };
    config
}

/// In-process workers, metrics to moto's CloudWatch.
fn cloudwatch_scheduler(
    config: Config,
    store: Arc<dyn ObjectStore>,
    cw: &aws_sdk_cloudwatch::Client,
) -> Scheduler {
    let worker = Worker::from_config(&config, store.clone()).unwrap();
    Scheduler::new(
        config,
        store,
        Arc::new(LocalFanout::new(worker)),
        Arc::new(CloudWatchSink::new(cw.clone())),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_publishes_all_its_metrics_in_one_namespace_and_pipeline() {
    let (cw, namespace) = (cloudwatch().await, unique("S3LoaderTest"));
    let (store, dir) = local();
    let store = arc(store);
    put(&*store, "incoming/orders/a.csv", "x\n1\n2\n").await;
    put(&*store, "incoming/orders/b.csv", "x\n3\n").await;
    put(&*store, "incoming/orders/bad.csv", "x\n1,2\n").await;
    let wh = sqlite_destination(&dir.path().join("wh.db"));
    let config = cloudwatch_config(&wh, "", &namespace, "orders");
    let report = cloudwatch_scheduler(config, store, &cw)
        .tick()
        .await
        .unwrap();
    assert_eq!((report.loaded, report.failed), (2, 1));

    for (pipeline, name, want) in [
        ("orders", "BacklogFiles", 3.0),
        ("orders", "FilesLoaded", 2.0),
        ("orders", "FilesFailed", 1.0),
        ("orders", "RowsLoaded", 3.0),
        ("orders", "FilesRetried", 0.0),
        // Dimension Pipeline=orders only.
        ("other", "FilesLoaded", 0.0),
    ] {
        let sum = cloudwatch_sum(&cw, &namespace, pipeline, name).await;
        assert_eq!(sum, want, "{pipeline} {name}");
    }
    let listed = cw
        .list_metrics()
        .namespace(&namespace)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let names: std::collections::BTreeSet<String> = listed
        .into_iter()
        .flat_map(|page| page.unwrap().metrics.unwrap_or_default())
        .filter_map(|m| m.metric_name)
        .collect();
    let expected = [
        "BacklogBytes",
        "BacklogComplete",
        "BacklogFiles",
        "BytesLoaded",
        "DestinationErrors",
        "EndToEndLatencyMs",
        "FilesFailed",
        "FilesLoaded",
        "FilesRetried",
        "FilesStuck",
        "MoveErrors",
        "OldestFileAgeSeconds",
        "RowsLoaded",
        "RowsRejected",
        "TickDurationMs",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
}

/// The fast path publishes what it loaded and its latency, but no backlog
/// metric: it lists nothing, and a zero would hide a real backlog from the
/// alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_driven_run_publishes_its_loads_and_latency_and_no_backlog() {
    let (cw, namespace) = (cloudwatch().await, unique("S3LoaderTest"));
    let (store, dir) = local();
    let store = arc(store);
    put(&*store, "incoming/orders/a.csv", "x\n1\n2\n").await;
    put(&*store, "incoming/orders/waiting.csv", "x\n3\n").await;
    let wh = sqlite_destination(&dir.path().join("wh.db"));
    let config = cloudwatch_config(&wh, "", &namespace, "orders");
    let bucket = config.source.url.trim_start_matches("s3://").to_owned();
    let sched = cloudwatch_scheduler(config, store, &cw);
    let notified = [scheduler::events::Notified {
        message_id: "m1".into(),
        bucket,
        key: "incoming/orders/a.csv".into(),
        etag: None,
        event_time: Some(chrono::Utc::now() - chrono::Duration::seconds(2)),
    }];
    let run = sched
        .load_notified(
            &notified,
            std::time::Instant::now() + std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(run.report.loaded, 1, "{}", run.report);
    let latency = run.report.latency.unwrap();
    assert!(latency.max_ms >= 2000, "from the event time: {latency:?}");
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "FilesLoaded").await,
        1.0
    );
    let max = cloudwatch_stat(
        &cw,
        &namespace,
        "orders",
        "EndToEndLatencyMs",
        aws_sdk_cloudwatch::types::Statistic::Maximum,
    )
    .await;
    assert_eq!(max, [latency.max_ms as f64]);
    // TickDurationMs too: the TicksMissing alarm counts its samples, and
    // notifications must not hide a schedule that stopped.
    for name in [
        "BacklogFiles",
        "OldestFileAgeSeconds",
        "FilesStuck",
        "BacklogComplete",
        "TickDurationMs",
    ] {
        assert!(
            cloudwatch_stat(
                &cw,
                &namespace,
                "orders",
                name,
                aws_sdk_cloudwatch::types::Statistic::Maximum
            )
            .await
            .is_empty(),
            "{name} published by an event-driven run"
        );
    }
}

/// An outage shows in the metrics (and so in the DestinationErrors alarm),
/// not in FilesFailed or FilesRetried attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_published_as_destination_errors_not_failures() {
    let cw = cloudwatch().await;
    let namespace = unique("S3LoaderTest");
    let (store, _dir) = local();
    let store = arc(store);
    for k in ["incoming/orders/a.csv", "incoming/orders/b.csv"] {
        put(&*store, k, "x\n1\n").await;
    }
    let down = pg_destination(&format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        closed_port()
    ));
    let config = cloudwatch_config(&down, "max_attempts = 1", &namespace, "down");
    let sched = cloudwatch_scheduler(config, store.clone(), &cw);
    for _ in 0..2 {
        let r = sched.tick().await.unwrap();
        assert_eq!((r.failed, r.destination_errors), (0, 2), "{r}");
    }
    let sum = |name: &'static str| {
        let cw = cw.clone();
        let namespace = namespace.clone();
        async move { cloudwatch_sum(&cw, &namespace, "down", name).await }
    };
    assert_eq!(sum("DestinationErrors").await, 4.0);
    assert_eq!(sum("FilesFailed").await, 0.0);
    assert_eq!(sum("BacklogFiles").await, 4.0, "both files, both ticks");
    assert_eq!(keys(&*store, "incoming/").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cloudwatch_is_a_retryable_error_naming_the_namespace() {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .region(aws_config::Region::new("us-east-1"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let sink = CloudWatchSink::new(aws_sdk_cloudwatch::Client::new(&shared));
    let err = sink
        .publish("NS", "p", &TickMetrics::default())
        .await
        .unwrap_err();
    match &err {
        scheduler::Error::Metrics {
            namespace,
            retryable,
            ..
        } => {
            assert_eq!(namespace, "NS");
            assert!(retryable);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("\"NS\""), "{err}");
}
