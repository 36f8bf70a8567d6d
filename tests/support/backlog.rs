//! A mixed backlog for fault scenarios, and the one checker of what every
//! scenario must leave behind: each good file's rows in the warehouse
//! exactly once (compared row by row, per file), each file in exactly one
//! of `processed/` or `failed/` (a report for each failed one),
//! `incoming/` empty, and the backlog metric, read back from moto's
//! CloudWatch, gone to zero.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_cloudwatch::types::Statistic;
use loader::config::{Config, SinkKind};
use loader::store::ObjectStore;
use scheduler::metrics::{CloudWatchSink, MetricsSink};

use crate::{aws_config_for, cloudwatch, cloudwatch_stat, gzip, keys, put, service, unique};

/// Where a scenario's tick metrics go: moto's CloudWatch, under a
/// pipeline of the scenario's own.
pub struct Metrics {
    pub namespace: String,
    pub pipeline: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            namespace: "S3LoaderFaults".into(),
            pipeline: unique("faults-"),
        }
    }
}

impl Metrics {
    /// Points `config`'s metrics here (for a process that builds its own
    /// sink from the config, with `AWS_ENDPOINT_URL_CLOUDWATCH` set).
    pub fn configure(&self, config: &mut Config) {
        config.metrics.sink = SinkKind::Cloudwatch;
        config.metrics.namespace = self.namespace.clone();
        config.metrics.pipeline = self.pipeline.clone();
    }

    /// The `[metrics]` table of [`Metrics::configure`], as TOML.
    pub fn toml(&self) -> String {
        format!(
            "[metrics]\nsink = \"cloudwatch\"\nnamespace = \"{}\"\npipeline = \"{}\"\n",
            self.namespace, self.pipeline
        )
    }

    /// A CloudWatch sink to moto, or to `via` (a fault proxy's URL).
    pub async fn sink(&self, via: Option<String>) -> Arc<dyn MetricsSink> {
        let endpoint = via.unwrap_or_else(|| service("S3LOADER_TEST_MOTO"));
        let client = aws_sdk_cloudwatch::Client::new(&aws_config_for(&endpoint).await);
        Arc::new(CloudWatchSink::new(client))
    }

    /// The lowest `BacklogFiles` published (None if none was).
    pub async fn backlog_min(&self) -> Option<f64> {
        let cw = cloudwatch().await;
        cloudwatch_stat(
            &cw,
            &self.namespace,
            &self.pipeline,
            "BacklogFiles",
            Statistic::Minimum,
        )
        .await
        .into_iter()
        .reduce(f64::min)
    }
}

/// How many seeded runs each scenario makes per destination:
/// `FAULT_SEEDS`, default 2 (the test command's quick profile; 200 for a
/// nightly run).
pub fn fault_seeds() -> u64 {
    std::env::var("FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// Every `(table, id)` → value row of `orders` and `events` in a
/// PostgreSQL database (or the Redshift stand-in's), with repeats, for
/// [`Backlog::check`].
pub async fn pg_rows(client: &tokio_postgres::Client) -> Vec<((String, String), String)> {
    let mut out = Vec::new();
    for (table, sql) in [
        ("orders", "SELECT id::text, customer FROM orders"),
        ("events", "SELECT event_id, \"user\" FROM events"),
    ] {
        for r in client.query(sql, &[]).await.unwrap() {
            out.push(((table.to_owned(), r.get(0)), r.get(1)));
        }
    }
    out
}

/// A small seeded generator (xorshift64*): a scenario's choices repeat
/// for the same seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// One file of the backlog and the rows it must leave in the warehouse:
/// `(table, id)` → value (empty for a bad file).
pub struct SourceFile {
    pub key: String,
    pub rows: BTreeMap<(String, String), String>,
}

pub struct Backlog {
    pub files: Vec<SourceFile>,
}

/// What a check found, for the closing table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub files: usize,
    pub rows: usize,
    pub lost: usize,
    pub doubled: usize,
}

impl Tally {
    /// Prints one `fault-tally` line (scenario, destination, seed, files,
    /// rows, lost, doubled) and, when `FAULT_TALLY_FILE` names a file,
    /// appends it there too: the test command sums that file into its
    /// `tests/faults` line, whatever cargo's capture did with stdout.
    pub fn report(&self, scenario: &str, dest: &str, seed: u64) {
        let line = format!(
            "fault-tally scenario={scenario} destination={dest} seed={seed} files={} rows={} lost={} doubled={}",
            self.files, self.rows, self.lost, self.doubled
        );
        println!("{line}");
        if let Some(path) = std::env::var_os("FAULT_TALLY_FILE") {
            use std::io::Write;
            // One write per line, in append mode: lines from tests running
            // at once do not interleave.
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("FAULT_TALLY_FILE");
            f.write_all(format!("{line}\n").as_bytes()).unwrap();
        }
    }
}

impl Backlog {
    /// Puts `n` files (CSV, gzip CSV, zstd CSV, JSON Lines, and one bad
    /// file in five: a ragged row) with `rows` rows each under
    /// `incoming/`; ids are unique across the backlog.
    pub async fn put(store: &dyn ObjectStore, n: u32, rows: u32) -> Self {
        let mut files = Vec::new();
        for f in 0..n {
            // Ids are unique across the backlog whatever `rows` is.
            let base = f * rows.max(1000);
            let mut expect = BTreeMap::new();
            let (key, body): (String, Vec<u8>) = match f % 5 {
                4 => (
                    format!("incoming/orders/{f:03}-bad.csv"),
                    format!(
                        "id,customer,amount,ordered_at\n{base},x,1,2026-11-01T00:00:00Z\n{},y\n",
                        base + 1
                    )
                    .into_bytes(),
                ),
                3 => {
                    let mut body = String::new();
                    for i in base..base + rows {
                        body += &format!(
                            "{{\"event_id\":\"e{i}\",\"type\":\"t\",\"user\":\"u{i}\",\"at\":\"2026-11-01T00:00:00Z\",\"props\":{{\"n\":{i}}}}}\n"
                        );
                        expect.insert(("events".into(), format!("e{i}")), format!("u{i}"));
                    }
                    (format!("incoming/events/{f:03}.jsonl"), body.into_bytes())
                }
                k => {
                    let mut body = String::from("id,customer,amount,ordered_at\n");
                    for i in base..base + rows {
                        body += &format!("{i},c{i},1.50,2026-11-01T00:00:00Z\n");
                        expect.insert(("orders".into(), i.to_string()), format!("c{i}"));
                    }
                    match k {
                        0 => (format!("incoming/orders/{f:03}.csv"), body.into_bytes()),
                        1 => (
                            format!("incoming/orders/{f:03}.csv.gz"),
                            gzip(body.as_bytes()),
                        ),
                        _ => (
                            format!("incoming/orders/{f:03}.csv.zst"),
                            zstd::encode_all(body.as_bytes(), 3).unwrap(),
                        ),
                    }
                }
            };
            put(store, &key, body).await;
            files.push(SourceFile { key, rows: expect });
        }
        Backlog { files }
    }

    /// Checks the invariants against `found`: every `(table, id)` → value
    /// row read back from the warehouse (`orders.id, customer` and
    /// `events.event_id, "user"`), with repeats, and against `metrics` (a
    /// tick must have run after the queue drained). Panics with what
    /// broke; returns the tally.
    pub async fn check(
        &self,
        store: &dyn ObjectStore,
        found: &[((String, String), String)],
        metrics: &Metrics,
    ) -> Tally {
        let mut seen: BTreeMap<&(String, String), Vec<&String>> = BTreeMap::new();
        for (id, value) in found {
            seen.entry(id).or_default().push(value);
        }
        let processed = keys(store, "processed/").await;
        let failed = keys(store, "failed/").await;
        let errors = keys(store, "errors/").await;
        let incoming = keys(store, "incoming/").await;
        assert!(incoming.is_empty(), "incoming/ not drained: {incoming:?}");
        let mut tally = Tally {
            files: self.files.len(),
            ..Tally::default()
        };
        for f in &self.files {
            let rel = f.key.strip_prefix("incoming/").unwrap();
            let done = processed.iter().any(|k| k == &format!("processed/{rel}"));
            let gone = failed.iter().any(|k| k == &format!("failed/{rel}"));
            let bad = f.rows.is_empty();
            assert!(done != gone, "{}: processed {done}, failed {gone}", f.key);
            if gone != bad {
                let why = match store
                    .get_bytes(&format!("errors/{rel}.json"), 1 << 20)
                    .await
                {
                    Ok((_, body)) => String::from_utf8_lossy(&body).into_owned(),
                    Err(e) => format!("no report: {e}"),
                };
                panic!(
                    "{}: in failed/ {gone}, a bad file {bad}; report: {why}",
                    f.key
                );
            }
            if gone {
                assert!(
                    errors
                        .iter()
                        .any(|k| k.starts_with(&format!("errors/{rel}"))),
                    "{}: no report in errors/",
                    f.key
                );
            }
            for (id, value) in &f.rows {
                tally.rows += 1;
                match seen.get(id).map(Vec::as_slice) {
                    None | Some([]) => tally.lost += 1,
                    Some([v]) => assert_eq!(*v, value, "{}: row {id:?} changed", f.key),
                    Some(_) => tally.doubled += 1,
                }
            }
        }
        assert_eq!((tally.lost, tally.doubled), (0, 0), "{tally:?}");
        let expected: usize = self.files.iter().map(|f| f.rows.len()).sum();
        assert_eq!(found.len(), expected, "rows in the warehouse: {tally:?}");
        // A tick publishes only when it held the lease and its run did not
        // fail, so a zero is a listing that found `incoming/` empty. Under
        // a storm every tick that saw files may have failed (and published
        // nothing), so a published value above zero is not required.
        match metrics.backlog_min().await {
            Some(min) => assert!(min == 0.0, "BacklogFiles never went to zero: min {min}"),
            None => panic!("no BacklogFiles published for {}", metrics.pipeline),
        }
        tally
    }
}
