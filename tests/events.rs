//! The event-driven fast path against real services: S3 event
//! notifications through moto's SQS (direct, and wrapped by SNS as the Met
//! Office's buckets send them), files in SeaweedFS, rows in PostgreSQL.
//! `Listener::poll` does what Lambda's event source mapping does; the
//! events function itself is exercised under `cargo lambda watch` in
//! `lambda.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loader::store::ObjectStore;
use s3loader_e2e::*;
use scheduler::listen::Listener;
use scheduler::report::FileResult;
use scheduler::tick::Scheduler;

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws_config_for(&service("S3LOADER_TEST_MOTO")).await)
}

async fn queue(client: &aws_sdk_sqs::Client) -> String {
    client
        .create_queue()
        .queue_name(unique("events-"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The notification S3 sends for a new object, as S3 encodes it: the key
/// form-encoded, the ETag without quotes.
fn notification(bucket: &str, key: &str, etag: &str) -> serde_json::Value {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "incoming",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": 1, "eTag": etag.trim_matches('"'), "sequencer": "0A1B2C3D4E5F678901"}
        }
    }]})
}

/// The same, as SNS delivers it to an SQS subscription (raw delivery off).
fn via_sns(inner: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "Type": "Notification", "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:met-office-incoming",
        "Subject": "Amazon S3 Notification", "Message": inner.to_string(),
        "Timestamp": chrono::Utc::now().to_rfc3339(), "SignatureVersion": "1"
    })
}

async fn send(client: &aws_sdk_sqs::Client, queue: &str, body: &serde_json::Value) {
    client
        .send_message()
        .queue_url(queue)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
}

async fn visible(client: &aws_sdk_sqs::Client, queue: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = client
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes.unwrap_or_default();
    let n = |a: &A| attrs.get(a).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(&A::ApproximateNumberOfMessages),
        n(&A::ApproximateNumberOfMessagesNotVisible),
    )
}

fn events_config(bucket: &str, destination: &str) -> loader::config::Config {
    let mut c = config(destination, "batch_max_files = 3\nconcurrency = 2");
    c.source.url = format!("s3://{bucket}");
    c
}

/// Polls until a poll receives nothing; returns the end-to-end latencies
/// (p50, max) of the polls that loaded something.
async fn drain(listener: &Listener, sched: &Scheduler) -> (usize, Vec<(u64, u64)>) {
    let mut received = 0;
    let mut latency = Vec::new();
    for _ in 0..50 {
        let p = listener
            .poll(
                sched,
                Duration::from_secs(1),
                Some(Duration::from_secs(2)),
                Instant::now() + Duration::from_secs(30),
            )
            .await
            .unwrap();
        if p.received == 0 {
            return (received, latency);
        }
        received += p.received;
        if let Some(l) = p.handled.and_then(|h| h.run).and_then(|r| r.report.latency) {
            latency.push((l.p50_ms, l.max_ms));
        }
    }
    panic!("the queue never emptied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_dropped_notifications_load_every_file_exactly_once() {
    let store = seaweedfs().await;
    let bucket = store.bucket().to_owned();
    let store: Arc<dyn ObjectStore> = arc(store);
    let (url, pg) = pg_with(ORDERS_DDL).await;
    let sched = scheduler(events_config(&bucket, &pg_destination(&url)), store.clone());
    let client = sqs().await;
    let q = queue(&client).await;
    let listener = Listener::new(client.clone(), &q);

    // S3 sends a test event when the notification is configured.
    send(
        &client,
        &q,
        &serde_json::json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
            "Time": "2026-11-24T03:00:00.000Z", "Bucket": bucket, "RequestId": "r", "HostId": "h"}),
    )
    .await;
    let mut keys_written = Vec::new();
    for i in 0..12 {
        let key = if i == 5 {
            "incoming/orders/it's a \"quoted\" name + ü 100%.csv".to_owned()
        } else {
            format!("incoming/orders/{i:02}.csv")
        };
        put(
            &*store,
            &key,
            format!("id,customer,amount,ordered_at\n{i},c{i},1.00,2026-11-24T00:00:00Z\n"),
        )
        .await;
        keys_written.push(key);
    }
    put(
        &*store,
        "incoming/orders/bad.csv",
        "id,customer,amount,ordered_at\n99,x\n",
    )
    .await;
    keys_written.push("incoming/orders/bad.csv".into());
    // Every notification twice (half of them wrapped by SNS); three never
    // sent at all; a notification for another bucket and one outside
    // incoming/ acknowledged and ignored.
    let dropped = [
        "incoming/orders/02.csv",
        "incoming/orders/07.csv",
        "incoming/orders/11.csv",
    ];
    for (i, key) in keys_written.iter().enumerate() {
        if dropped.contains(&key.as_str()) {
            continue;
        }
        let etag = store.head(key).await.unwrap().etag;
        let n = notification(&bucket, key, &etag);
        let body = if i % 2 == 0 { via_sns(&n) } else { n };
        send(&client, &q, &body).await;
        send(&client, &q, &body).await;
    }
    send(
        &client,
        &q,
        &notification("someone-else", "incoming/orders/00.csv", "x"),
    )
    .await;
    send(
        &client,
        &q,
        &notification(&bucket, "processed/orders/00.csv", "x"),
    )
    .await;

    let (received, latency) = drain(&listener, &sched).await;
    assert_eq!(received, 1 + 2 * 10 + 2, "every message handled");
    assert_eq!(
        visible(&client, &q).await,
        (0, 0),
        "every message acknowledged"
    );
    assert!(!latency.is_empty(), "the fast path measured its latency");
    let (p50, max) = latency[0];
    println!("fast path, object creation to rows committed: p50 {p50} ms, max {max} ms (per poll: {latency:?})");

    // The notified files are loaded once each; the dropped ones wait.
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 9);
    assert_eq!(
        pg_count(&pg, "SELECT count(DISTINCT id) FROM orders").await,
        9,
        "no file loaded twice"
    );
    let mut left = keys(&*store, "incoming/").await;
    left.sort();
    assert_eq!(
        left, dropped,
        "a missed notification leaves its file for the tick"
    );
    assert_eq!(
        keys(&*store, "failed/").await,
        ["failed/orders/bad.csv"],
        "a bad file fails on the fast path as on a tick"
    );
    assert!(error_report(&*store, "orders/bad.csv").await["reason"]
        .as_str()
        .unwrap()
        .contains("line 2"),);

    // The tick is the backstop: it loads what was missed, nothing twice.
    let report = sched.tick().await.unwrap();
    assert_eq!((report.loaded, report.failed), (3, 0), "{report}");
    assert!(report.latency.is_some(), "ticks measure latency too");
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 12);
    assert_eq!(
        pg_count(&pg, "SELECT count(DISTINCT id) FROM orders").await,
        12
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM s3loader_ledger").await,
        12,
        "one ledger row per loaded file"
    );
    assert!(keys(&*store, "incoming/").await.is_empty());
    assert_eq!(keys(&*store, "processed/").await.len(), 12);

    // A late duplicate of a notification whose file is gone: acknowledged.
    let n = notification(&bucket, "incoming/orders/00.csv", "x");
    send(&client, &q, &n).await;
    let p = listener
        .poll(
            &sched,
            Duration::from_secs(1),
            None,
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    let run = p.handled.unwrap().run.unwrap();
    assert_eq!(run.report.files[0].result, FileResult::Gone);
    assert_eq!(p.deleted, 1);
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_and_a_tick_overlapping_on_the_same_files_load_each_once() {
    let store = seaweedfs().await;
    let bucket = store.bucket().to_owned();
    let store: Arc<dyn ObjectStore> = arc(store);
    let (url, pg) = pg_with(ORDERS_DDL).await;
    let cfg = events_config(&bucket, &pg_destination(&url));
    let sched = scheduler(cfg.clone(), store.clone());
    let other = scheduler(cfg, store.clone());
    let client = sqs().await;
    let q = queue(&client).await;
    let listener = Listener::new(client.clone(), &q);
    for i in 0..20 {
        let key = format!("incoming/orders/{i:02}.csv");
        put(
            &*store,
            &key,
            format!("id,customer,amount,ordered_at\n{i},c{i},1.00,2026-11-24T00:00:00Z\n"),
        )
        .await;
        let etag = store.head(&key).await.unwrap().etag;
        send(&client, &q, &notification(&bucket, &key, &etag)).await;
    }
    let (tick, (received, _)) = tokio::join!(other.tick(), drain(&listener, &sched));
    let tick = tick.unwrap();
    assert_eq!(received, 20);
    for _ in 0..3 {
        if keys(&*store, "incoming/").await.is_empty() {
            break;
        }
        // Whatever each left mid-move, the next tick finishes.
        other.tick().await.unwrap();
    }
    assert!(keys(&*store, "incoming/").await.is_empty());
    assert_eq!(keys(&*store, "processed/").await.len(), 20);
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM orders").await,
        20,
        "{tick}"
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(DISTINCT id) FROM orders").await,
        20
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM s3loader_ledger").await,
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_returns_the_messages_and_counts_no_attempt() {
    let store = seaweedfs().await;
    let bucket = store.bucket().to_owned();
    let store: Arc<dyn ObjectStore> = arc(store);
    let down = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let sched = scheduler(
        events_config(&bucket, &pg_destination(&down)),
        store.clone(),
    );
    let client = sqs().await;
    let q = queue(&client).await;
    let listener = Listener::new(client.clone(), &q);
    for i in 0..3 {
        let key = format!("incoming/orders/{i}.csv");
        put(
            &*store,
            &key,
            "id,customer,amount,ordered_at\n1,a,1,2026-11-24T00:00:00Z\n",
        )
        .await;
        let etag = store.head(&key).await.unwrap().etag;
        send(&client, &q, &notification(&bucket, &key, &etag)).await;
    }
    send(&client, &q, &serde_json::json!({"not": "an S3 event"})).await;
    let p = listener
        .poll(
            &sched,
            Duration::from_secs(1),
            Some(Duration::from_secs(2)),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(p.received, 4);
    let h = p.handled.unwrap();
    assert_eq!(
        (h.failed.len(), p.deleted),
        (4, 0),
        "the outage's messages and the unreadable one go back to the queue (partial batch response)"
    );
    let report = h.run.unwrap().report;
    assert_eq!(report.failed, 0, "an outage is not a bad file: {report}");
    assert!(report.destination_errors > 0, "{report}");
    assert_eq!(keys(&*store, "incoming/").await.len(), 3);
    assert!(
        keys(&*store, "_s3loader/").await.is_empty(),
        "the fast path writes no attempt counts (the tick owns them)"
    );

    // The destination back: the returned messages come again and load.
    let (url, pg) = pg_with(ORDERS_DDL).await;
    let sched = scheduler(events_config(&bucket, &pg_destination(&url)), store.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = listener
        .poll(
            &sched,
            Duration::from_secs(2),
            Some(Duration::from_secs(60)),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(p.received >= 3, "the returned messages came back: {p:?}");
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 3);
    assert!(keys(&*store, "incoming/").await.is_empty());
}
