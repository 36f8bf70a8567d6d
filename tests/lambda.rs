//! Both Lambda binaries as they run in AWS: `cargo lambda watch` serves the
//! Lambda Invoke API locally and runs `scheduler-lambda` and
//! `loader-lambda` under the Lambda runtime API. The test invokes the
//! scheduler with an EventBridge Scheduler event; the scheduler invokes the
//! loader through the same endpoint; the data lives in SeaweedFS and
//! PostgreSQL, the metrics in moto's CloudWatch.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use loader::store::{ObjectStore, S3Store};
use s3loader_e2e::backlog::{fault_seeds, pg_rows, Backlog, Metrics, Rng};
use s3loader_e2e::fault::FaultProxy;
use s3loader_e2e::*;
use scheduler::report::TickReport;

/// `cargo lambda watch` in its own process group, stopped on drop.
struct Watch {
    child: Child,
    client: aws_sdk_lambda::Client,
    /// The watch's output: builds, and every function's log lines.
    log: PathBuf,
}

impl Watch {
    /// Serves the workspace's functions with `config` (TOML) for both.
    async fn start(config: &str, pg_url: &str) -> Watch {
        let port = closed_port();
        Watch::start_at(port, &format!("http://127.0.0.1:{port}"), config, pg_url).await
    }

    /// Serves on `port`; the scheduler invokes the loader at `invoke` (this
    /// watch, or a fault proxy in front of it), the test's client direct.
    async fn start_at(port: u16, invoke: &str, config: &str, pg_url: &str) -> Watch {
        Watch::start_env(port, invoke, config, pg_url, &[]).await
    }

    /// [`Watch::start_at`] with more environment for the functions.
    async fn start_env(
        port: u16,
        invoke: &str,
        config: &str,
        pg_url: &str,
        env: &[(&str, &str)],
    ) -> Watch {
        let endpoint = format!("http://127.0.0.1:{port}");
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        // A target dir of its own: cargo-lambda's build environment differs
        // from a plain cargo build's (ring's build script reruns on it), so
        // sharing one would rebuild the TLS stack and the AWS SDK each time.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"))
            .join("lambda-watch");
        // Its output (builds, and both functions' JSON logs) goes to a file
        // beside the build, for when a test fails.
        std::fs::create_dir_all(&target).unwrap();
        let log_path = target.join(format!("watch-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--concurrency",
                "4",
                "--timeout",
                "120",
            ])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", &target)
            .env("S3LOADER_CONFIG_TOML", config)
            .env("S3LOADER_LOADER_FUNCTION", "loader-lambda")
            .env("S3LOADER_LOADER_TIMEOUT_SECS", "5")
            .env("S3LOADER_TEST_LOADER_PG", pg_url)
            .env("AWS_ENDPOINT_URL_S3", service("S3LOADER_TEST_SEAWEEDFS"))
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", service("S3LOADER_TEST_MOTO"))
            .env("AWS_ENDPOINT_URL_LAMBDA", invoke)
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch (pip install cargo-lambda)");
        let shared = aws_config_for(&endpoint).await;
        Watch {
            child,
            client: aws_sdk_lambda::Client::new(&shared),
            log: log_path,
        }
    }

    /// The JSON lines the functions logged so far.
    fn json_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// One scheduled event: the report, or the function error.
    async fn tick(&self) -> Result<TickReport, String> {
        invoke_scheduler(&self.client).await
    }
    /// Ticks until `incoming/` is empty. The first ones wait for
    /// `cargo lambda watch` to build both functions (minutes on a cold
    /// cache): meanwhile invocations fail, time out after doing their work,
    /// or find the lease held. So the tests judge the bucket, the database
    /// and the metrics, not the sum of the reports that came back.
    async fn drain(&self, store: &S3Store) {
        let mut last = String::new();
        for _ in 0..450 {
            if keys(store, "incoming/").await.is_empty() {
                return;
            }
            match self.tick().await {
                Ok(r) if r.made_progress() => continue,
                Ok(r) => last = r.to_string(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        panic!("incoming/ never drained: {last}");
    }

    /// Kills every running `loader-lambda` this watch started, as a crash
    /// (out of memory, a segfault) would. Returns how many it killed.
    fn kill_loaders(&self) -> usize {
        // Descendants of the watch, found through /proc: cargo-lambda may
        // start functions in process groups of their own.
        let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
                let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
                Some((pid, ppid, comm.to_owned()))
            })
            .collect();
        let mut family = vec![self.child.id()];
        let mut i = 0;
        while i < family.len() {
            let parent = family[i];
            family.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
            i += 1;
        }
        let loaders: Vec<u32> = procs
            .iter()
            .filter(|p| family.contains(&p.0) && p.2 == "loader-lambda")
            .map(|p| p.0)
            .collect();
        for pid in &loaders {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
        }
        loaders.len()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let _ = self.child.wait();
    }
}

/// Invokes the scheduler as EventBridge Scheduler does and returns its
/// report, or the function error.
async fn invoke_scheduler(client: &aws_sdk_lambda::Client) -> Result<TickReport, String> {
    let event = serde_json::json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "time": chrono::Utc::now().to_rfc3339(), "detail": {}
    });
    let out = client
        .invoke()
        .function_name("scheduler-lambda")
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| format!("{:?}", e.into_service_error()))?;
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(kind) = out.function_error() {
        return Err(format!("{kind}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))
}

fn config(bucket: &str, pipeline: &str, batch_max_files: usize) -> String {
    format!(
        r#"
        [source]
        url = "s3://{bucket}"
        [tick]
        batch_max_files = {batch_max_files}
        concurrency = 2
        deadline_secs = 20
        lease_ttl_secs = 30
        [metrics]
        sink = "cloudwatch"
        namespace = "S3LoaderLambdaTest"
        pipeline = "{pipeline}"
        [destinations.pg]
        kind = "postgres"
        url = "env:S3LOADER_TEST_LOADER_PG"
        [[route]]
        pattern = "orders/*.csv"
        destination = "pg"
        table = "orders"
        "#
    )
}

/// A fresh database with the table the lambda tests load, and a client.
async fn orders_db() -> (String, tokio_postgres::Client) {
    pg_with("CREATE TABLE orders (id int, customer text)").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_lambda_drains_a_backlog_through_the_loader_lambda() {
    let store = seaweedfs().await;
    let (url, pg) = orders_db().await;
    for i in 0..6 {
        put(
            &store,
            &format!("incoming/orders/{i}.csv"),
            format!("id,customer\n{i},c{i}\n"),
        )
        .await;
    }
    put(&store, "incoming/orders/bad.csv", "id,customer\n1\n").await;
    let pipeline = unique("lambda-");
    let watch = Watch::start(&config(store.bucket(), &pipeline, 2), &url).await;

    watch.drain(&store).await;
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 6);
    assert_eq!(keys(&store, "processed/").await.len(), 6);
    assert_eq!(keys(&store, "failed/").await, vec!["failed/orders/bad.csv"]);
    let report: serde_json::Value =
        serde_json::from_slice(&read(&store, "errors/orders/bad.csv.json").await).unwrap();
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("line 2: expected 2 fields"),
        "{report}"
    );

    // The tick report is a structure in the log, not text in `message`.
    let reports: Vec<serde_json::Value> = watch
        .json_lines()
        .into_iter()
        .filter(|l| l["target"] == "s3loader::report")
        .collect();
    assert!(
        !reports.is_empty(),
        "no report line in {}",
        watch.log.display()
    );
    let loaded: u64 = reports.iter().filter_map(|r| r["loaded"].as_u64()).sum();
    assert!(
        loaded >= 6,
        "reports with `loaded` as a number: {reports:?}"
    );
    assert!(
        reports
            .iter()
            .all(|r| r["message"] == "tick report" && r["files"].is_array()),
        "{reports:?}"
    );

    let cw = cloudwatch().await;
    let sum = |name: &'static str| cloudwatch_sum(&cw, "S3LoaderLambdaTest", &pipeline, name);
    assert_eq!(sum("FilesLoaded").await, 6.0);
    assert_eq!(sum("FilesFailed").await, 1.0);
    assert_eq!(sum("RowsLoaded").await, 6.0);
}

/// An SQS event as Lambda's event source mapping delivers it, one record
/// per body.
fn sqs_event(bodies: &[(String, String)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:s3loader-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The S3 notification of a new object, SNS-wrapped or not.
fn s3_notification(bucket: &str, key: &str, sns: bool) -> String {
    let event = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(' ', "+"), "size": 1}}
    }]});
    if sns {
        serde_json::json!({"Type": "Notification", "Message": event.to_string()}).to_string()
    } else {
        event.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_lambda_loads_notified_files_and_returns_only_the_failed_messages() {
    let store = seaweedfs().await;
    let (url, pg) = orders_db().await;
    let pipeline = unique("events-");
    // As Lambda sets it from the function's ApplicationLogLevel.
    let port = closed_port();
    let watch = Watch::start_env(
        port,
        &format!("http://127.0.0.1:{port}"),
        &config(store.bucket(), &pipeline, 2),
        &url,
        &[("AWS_LAMBDA_LOG_LEVEL", "WARN")],
    )
    .await;
    for i in 0..3 {
        put(
            &store,
            &format!("incoming/orders/ev {i}.csv"),
            format!("id,customer\n{i},c{i}\n"),
        )
        .await;
    }
    put(&store, "incoming/orders/bad.csv", "id,customer\n1\n").await;
    let bucket = store.bucket();
    let mut bodies: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("m{i}"),
                s3_notification(bucket, &format!("incoming/orders/ev {i}.csv"), i == 1),
            )
        })
        .collect();
    bodies.push((
        "dup".into(),
        s3_notification(bucket, "incoming/orders/ev 0.csv", false),
    ));
    bodies.push((
        "bad".into(),
        s3_notification(bucket, "incoming/orders/bad.csv", true),
    ));
    bodies.push(("garbage".into(), "{not json".into()));
    let event = sqs_event(&bodies);
    // The first invocations wait for cargo lambda watch to build.
    let mut last = String::new();
    let mut answer = None;
    for _ in 0..450 {
        match watch
            .client
            .invoke()
            .function_name("events-lambda")
            .payload(Blob::new(event.to_string()))
            .send()
            .await
        {
            Ok(out) if out.function_error().is_none() => {
                answer = Some(
                    serde_json::from_slice::<serde_json::Value>(out.payload().unwrap().as_ref())
                        .unwrap(),
                );
                break;
            }
            Ok(out) => {
                last =
                    String::from_utf8_lossy(out.payload().map(|b| b.as_ref()).unwrap_or_default())
                        .into_owned()
            }
            Err(e) => last = format!("{:?}", e.into_service_error()),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let answer = answer.unwrap_or_else(|| panic!("the events function never answered: {last}"));
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "garbage"}]}),
        "only the unreadable message goes back to the queue"
    );
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 3);
    assert_eq!(keys(&store, "processed/").await.len(), 3);
    assert_eq!(keys(&store, "failed/").await, vec!["failed/orders/bad.csv"]);
    assert!(keys(&store, "incoming/").await.is_empty());
    let cw = cloudwatch().await;
    assert_eq!(
        cloudwatch_sum(&cw, "S3LoaderLambdaTest", &pipeline, "FilesLoaded").await,
        3.0
    );
    assert!(
        !cloudwatch_stat(
            &cw,
            "S3LoaderLambdaTest",
            &pipeline,
            "EndToEndLatencyMs",
            aws_sdk_cloudwatch::types::Statistic::Maximum
        )
        .await
        .is_empty(),
        "the latency is published"
    );
    // AWS_LAMBDA_LOG_LEVEL=WARN: the unreadable message's warning, and
    // no INFO line (no "events handled", no report).
    let lines = watch.json_lines();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap_or_default()
                .contains("unreadable")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l["level"] == "INFO"),
        "INFO lines despite AWS_LAMBDA_LOG_LEVEL=WARN: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_that_crashes_mid_batch_loses_nothing_and_loads_nothing_twice() {
    let store = seaweedfs().await;
    let (url, pg) = orders_db().await;
    let pipeline = unique("crash-");
    let watch = Watch::start(&config(store.bucket(), &pipeline, 3), &url).await;
    // A first file, loaded, so the functions are built and the ledger exists.
    put(&store, "incoming/orders/0.csv", "id,customer\n0,c0\n").await;
    watch.drain(&store).await;
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 1);

    // One batch of three. A concurrent session holds the ledger entry of
    // the second file uncommitted, so the loader copies the first file,
    // then blocks inside its transaction on the second: mid-batch.
    for i in 1..=3 {
        put(
            &store,
            &format!("incoming/orders/{i}.csv"),
            format!("id,customer\n{i},c{i}\n"),
        )
        .await;
    }
    let second = store.head("incoming/orders/2.csv").await.unwrap();
    let mut blocker = pg_connect(&url).await;
    let hold = blocker.transaction().await.unwrap();
    hold.execute(
        "INSERT INTO s3loader_ledger (object_key, etag, table_name, rows, batch_id) \
         VALUES ($1, $2, 'orders', 1, 'blocker')",
        &[&second.key, &second.etag],
    )
    .await
    .unwrap();

    let tick = {
        let client = watch.client.clone();
        tokio::spawn(async move { invoke_scheduler(&client).await })
    };
    // Wait until the loader is stuck on the ledger row, then kill it.
    let mut waited = 0;
    while pg_count(
        &pg,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND query LIKE 'INSERT INTO s3loader_ledger%'",
    )
    .await
        == 0
    {
        waited += 1;
        assert!(waited < 600, "the loader never reached the second file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(watch.kill_loaders() > 0, "no loader-lambda process to kill");
    hold.rollback().await.unwrap();

    let report = tick
        .await
        .unwrap()
        .expect("the scheduler survives a loader crash");
    assert_eq!(report.loaded + report.failed, 0, "{report}");
    assert_eq!(report.retried, 3, "{report}");
    assert_eq!(
        keys(&store, "incoming/").await,
        vec![
            "incoming/orders/1.csv",
            "incoming/orders/2.csv",
            "incoming/orders/3.csv"
        ]
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM orders").await,
        1,
        "the crashed batch's rows were rolled back"
    );

    // The next ticks load each file once. Lambda would start a fresh
    // sandbox for the next invocation; cargo lambda watch does not always
    // restart a killed function, so a new watch stands in for that.
    drop(watch);
    let watch = Watch::start(&config(store.bucket(), &pipeline, 3), &url).await;
    let mut loaded = 0;
    for _ in 0..60 {
        if keys(&store, "incoming/").await.is_empty() {
            break;
        }
        match watch.tick().await {
            Ok(r) if r.made_progress() => loaded += r.loaded,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    assert_eq!(loaded, 3);
    assert!(keys(&store, "incoming/").await.is_empty());
    assert_eq!(keys(&store, "processed/").await.len(), 4);
    assert_eq!(pg_count(&pg, "SELECT count(*) FROM orders").await, 4);
    assert_eq!(
        pg_count(&pg, "SELECT count(DISTINCT id) FROM orders").await,
        4
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM s3loader_ledger").await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_read_their_config_from_an_s3_object_first() {
    let store = seaweedfs().await;
    let shared = aws_config_for(&service("S3LOADER_TEST_SEAWEEDFS")).await;
    let url = format!("s3://{}/_s3loader/config.toml", store.bucket());
    let from_object = config(store.bucket(), "from-object", 7);
    put(&store, "_s3loader/config.toml", from_object).await;
    let inline = config(store.bucket(), "inline", 3);
    let vars = |object: Option<&str>, toml: Option<&str>| {
        let (object, toml) = (object.map(str::to_owned), toml.map(str::to_owned));
        move |var: &str| match var {
            "S3LOADER_CONFIG_S3" => object.clone(),
            "S3LOADER_CONFIG_TOML" => toml.clone(),
            _ => None,
        }
    };

    let c = loader::lambda::config_from(vars(Some(&url), Some(&inline)), &shared)
        .await
        .unwrap();
    assert_eq!(
        (c.metrics.pipeline.as_str(), c.tick.batch_max_files),
        ("from-object", 7)
    );
    let c = loader::lambda::config_from(vars(None, Some(&inline)), &shared)
        .await
        .unwrap();
    assert_eq!(c.metrics.pipeline, "inline");

    // Errors name the variable, the object and the field.
    put(
        &store,
        "_s3loader/bad.toml",
        "[tick]\nmax_files = \"many\"\n",
    )
    .await;
    let bad = format!("s3://{}/_s3loader/bad.toml", store.bucket());
    let err = loader::lambda::config_from(vars(Some(&bad), None), &shared)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&bad) && err.contains("max_files"), "{err}");
    let missing = format!("s3://{}/_s3loader/none.toml", store.bucket());
    let err = loader::lambda::config_from(vars(Some(&missing), None), &shared)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("_s3loader/none.toml"), "{err}");
    let err = loader::lambda::config_from(vars(None, None), &shared)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("S3LOADER_CONFIG_S3"), "{err}");
}

/// Both routes of the fault backlog (CSV, compressed CSV and JSON Lines),
/// four files a tick in batches of two, metrics to `metrics`.
fn mixed_config(bucket: &str, metrics: &Metrics) -> String {
    format!(
        "[source]\nurl = \"s3://{bucket}\"\n\
         [tick]\nmax_files = 4\nbatch_max_files = 2\nconcurrency = 2\n\
         deadline_secs = 20\nlease_ttl_secs = 30\n{}\
         [destinations.pg]\nkind = \"postgres\"\nurl = \"env:S3LOADER_TEST_LOADER_PG\"\n\
         [[route]]\npattern = \"orders/**/*.csv*\"\ndestination = \"pg\"\ntable = \"orders\"\n\
         [[route]]\npattern = \"events/**/*.jsonl*\"\ndestination = \"pg\"\ntable = \"events\"\n\
         format = \"jsonl\"\n",
        metrics.toml()
    )
}

/// Faults on the Lambda path: a mixed backlog drained by the scheduler
/// and loader functions under `cargo lambda watch`, while `loader-lambda`
/// processes are SIGKILLed mid-COPY (a seeded moment), and the answers
/// to the scheduler's invokes are dropped (the loader ran, the scheduler
/// never hears) or replaced by 503/429 (a fault proxy sits between the
/// scheduler and the Invoke API; the test's own client goes direct). The
/// shared checker then finds every row once and every file settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_path_under_killed_loaders_and_dropped_invoke_answers() {
    for seed in 0..fault_seeds() {
        let store = seaweedfs().await;
        let (url, pg) = pg_with(ORDERS_DDL).await;
        let metrics = Metrics::default();
        let config = mixed_config(store.bucket(), &metrics);
        let port = closed_port();
        let invoke = FaultProxy::start(&format!("127.0.0.1:{port}")).await;
        let mut rng = Rng::new(seed);
        let mut watch = Watch::start_at(port, &invoke.url(), &config, &url).await;

        // Both functions built and warm (minutes on a cold cache, while
        // invocations queue up) before the backlog lands: one file loaded,
        // its row taken out again.
        put(
            &store,
            "incoming/orders/warm.csv",
            "id,customer\n999999,w\n",
        )
        .await;
        watch.drain(&store).await;
        pg.execute("DELETE FROM orders WHERE id = 999999", &[])
            .await
            .unwrap();
        let backlog = Backlog::put(&store, 12, 5_000).await;

        // A loader killed mid-COPY, 0-20 ms after the COPY shows in
        // pg_stat_activity (a moment drawn from the tick's start, 0-1.5 s,
        // fell after the loaders' work in each of 4 seeds: no file came
        // back to the queue). Lambda would start
        // a fresh sandbox; cargo lambda watch does not always restart a
        // killed function, so a new watch on the same port stands in.
        let tick = {
            let client = watch.client.clone();
            tokio::spawn(async move { invoke_scheduler(&client).await })
        };
        copy_under_way(&pg).await;
        tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
        let killed = watch.kill_loaders();
        // Files the kill sent back to the queue.
        let hit = tick.await.unwrap().map_or(0, |r| r.retried);
        assert!(hit > 0, "the kill sent no file back to the queue");
        drop(watch);
        watch = Watch::start_at(port, &invoke.url(), &config, &url).await;

        // Invoke answers dropped after the loader ran, and refused.
        invoke.drop_answers(1 + rng.below(3) as u32, "loader-lambda");
        invoke.http_errors(
            1 + rng.below(2) as u32,
            [503, 429][rng.below(2) as usize],
            "loader-lambda",
        );
        watch.drain(&store).await;
        let (_, cut, refused) = invoke.injected();
        assert!(cut > 0 && refused > 0, "cut {cut}, refused {refused}");
        // One more tick finds the queue empty and publishes the zero.
        let mut zero = false;
        for _ in 0..30 {
            match watch.tick().await {
                Ok(r) if r.lease == scheduler::report::LeaseStatus::Acquired => {
                    assert_eq!(r.backlog.files, 0, "{r}");
                    zero = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        assert!(zero, "no tick held the lease after the queue drained");
        let found = pg_rows(&pg).await;
        println!(
            "lambda seed {seed}: {killed} loader process(es) killed ({hit} files back to the queue), \
             {cut} answers dropped, {refused} refused"
        );
        backlog.check(&store, &found, &metrics).await.report(
            "lambda-killed-and-dropped",
            "postgres",
            seed,
        );
    }
}
