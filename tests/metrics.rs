//! The CloudWatch metrics sink against moto's CloudWatch: a real tick
//! publishes, and the data is read back.

use std::sync::Arc;

use bytes::Bytes;
use fanout::LocalFanout;
use loader::config::Config;
use loader::store::PutMode;
use loader::worker::Worker;
use s3loader_e2e::*;
use scheduler::metrics::{CloudWatchSink, MetricsSink, TickMetrics};
use scheduler::tick::Scheduler;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_publishes_all_its_metrics_in_one_namespace_and_pipeline() {
    let cw = cloudwatch().await;
    let namespace = unique("S3LoaderTest");
    let (store, dir) = local();
    let store = arc(store);
    store
        .put(
            "incoming/a.csv",
            Bytes::from_static(b"x\n1\n2\n"),
            PutMode::Create,
        )
        .await
        .unwrap();
    store
        .put(
            "incoming/b.csv",
            Bytes::from_static(b"x\n3\n"),
            PutMode::Create,
        )
        .await
        .unwrap();
    store
        .put(
            "incoming/bad.csv",
            Bytes::from_static(b"x\n1,2\n"),
            PutMode::Create,
        )
        .await
        .unwrap();
    let config = Config::from_toml(&format!(
        r#"
        [source]
        url = "dir:unused"
        [metrics]
        sink = "cloudwatch"
        namespace = "{namespace}"
        pipeline = "orders"
        [destinations.wh]
        kind = "sqlite"
        path = "{}"
        [[route]]
        pattern = "*.csv"
        destination = "wh"
        table = "t"
        "#,
        dir.path().join("wh.db").display()
    ))
    .unwrap();
    let worker = Worker::from_config(&config, store.clone()).unwrap();
    let sched = Scheduler::new(
        config,
        store,
        Arc::new(LocalFanout::new(worker)),
        Arc::new(CloudWatchSink::new(cw.clone())),
    )
    .unwrap();
    let report = sched.tick().await.unwrap();
    assert_eq!((report.loaded, report.failed), (2, 1));

    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "BacklogFiles").await,
        3.0
    );
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "FilesLoaded").await,
        2.0
    );
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "FilesFailed").await,
        1.0
    );
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "RowsLoaded").await,
        3.0
    );
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "orders", "FilesRetried").await,
        0.0
    );
    assert_eq!(
        cloudwatch_sum(&cw, &namespace, "other", "FilesLoaded").await,
        0.0,
        "dimension Pipeline=orders only"
    );
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
        "FilesFailed",
        "FilesLoaded",
        "FilesRetried",
        "FilesStuck",
        "MoveErrors",
        "OldestFileAgeSeconds",
        "RowsLoaded",
        "TickDurationMs",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
}

/// An outage shows in the metrics (and so in the DestinationErrors alarm),
/// not in FilesFailed or FilesRetried attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_published_as_destination_errors_not_failures() {
    let cw = cloudwatch().await;
    let namespace = unique("S3LoaderTest");
    let (store, _dir) = local();
    let store = arc(store);
    for k in ["incoming/a.csv", "incoming/b.csv"] {
        store
            .put(k, Bytes::from_static(b"x\n1\n"), PutMode::Create)
            .await
            .unwrap();
    }
    let down = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        closed_port()
    );
    let config = Config::from_toml(&format!(
        r#"
        [source]
        url = "dir:unused"
        [tick]
        max_attempts = 1
        [metrics]
        sink = "cloudwatch"
        namespace = "{namespace}"
        pipeline = "down"
        [destinations.wh]
        kind = "postgres"
        url = "{down}"
        connect_timeout_secs = 2
        [[route]]
        pattern = "*.csv"
        destination = "wh"
        table = "t"
        "#
    ))
    .unwrap();
    let worker = Worker::from_config(&config, store.clone()).unwrap();
    let sched = Scheduler::new(
        config,
        store.clone(),
        Arc::new(LocalFanout::new(worker)),
        Arc::new(CloudWatchSink::new(cw.clone())),
    )
    .unwrap();
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
