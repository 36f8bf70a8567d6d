//! The Met Office forecast index end to end: every sample netCDF file (and
//! broken variants) through a tick into moto's DynamoDB, then the query.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fanout::LocalFanout;
use loader::config::Config;
use loader::dest::Destination;
use loader::dest::Dynamodb;
use loader::forecast_index::ForecastIndex;
use loader::store::PutMode;
use loader::worker::Worker;
use s3loader_e2e::*;

fn samples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/metoffice")
}

async fn dynamo() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config_for(&service("S3LOADER_TEST_MOTO")).await)
}

/// file name → (reference times, periods, times), from EXPECTED.tsv.
fn expected() -> BTreeMap<String, [BTreeSet<i64>; 3]> {
    let text = std::fs::read_to_string(samples().join("EXPECTED.tsv")).unwrap();
    let set = |f: &str| -> BTreeSet<i64> {
        f.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    };
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].to_owned(), [set(c[1]), set(c[2]), set(c[3])])
        })
        .collect()
}

fn epoch(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_is_indexed_with_its_times_and_the_query_finds_it() {
    let store = arc(seaweedfs().await);
    let ddb = dynamo().await;
    let table = unique("forecasts-");
    ForecastIndex::new(ddb.clone(), &table)
        .create_table()
        .await
        .unwrap();

    let expected = expected();
    for name in expected.keys() {
        let bytes = std::fs::read(samples().join(name)).unwrap();
        store
            .put(
                &format!("incoming/metoffice/{name}"),
                Bytes::from(bytes),
                PutMode::Create,
            )
            .await
            .unwrap();
    }
    let whole =
        std::fs::read(samples().join("20181129T1000Z-PT0004H00M-lwe_precipitation_rate.nc"))
            .unwrap();
    let broken: [(&str, Vec<u8>); 3] = [
        ("broken/truncated.nc", whole[..whole.len() / 3].to_vec()),
        ("broken/empty.nc", Vec::new()),
        ("broken/not netcdf 'at all'.nc", b"id,name\n1,a\n".to_vec()),
    ];
    for (name, bytes) in &broken {
        store
            .put(
                &format!("incoming/metoffice/{name}"),
                Bytes::from(bytes.clone()),
                PutMode::Create,
            )
            .await
            .unwrap();
    }
    // A CSV file in the same backlog keeps draining beside them.
    put(
        &*store,
        "incoming/orders/1.csv",
        Bytes::from_static(b"id\n1\n"),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml(&format!(
        r#"
        [source]
        url = "unused"
        [tick]
        batch_max_files = 4
        [destinations.forecasts]
        kind = "dynamodb"
        [destinations.wh]
        kind = "sqlite"
        path = "{}"
        [[route]]
        pattern = "metoffice/**/*.nc"
        destination = "forecasts"
        table = "{table}"
        format = "netcdf"
        [[route]]
        pattern = "orders/*.csv"
        destination = "wh"
        table = "orders"
        "#,
        dir.path().join("wh.db").display()
    ))
    .unwrap();
    let index: Arc<dyn Destination> =
        Arc::new(Dynamodb::new("forecasts", 256 << 20, &config.source).with_client(ddb.clone()));
    let wh = loader::dest::build("wh", &config.destinations["wh"], &config.source, None).unwrap();
    let worker = Worker::new(
        store.clone(),
        [("forecasts".to_owned(), index), ("wh".to_owned(), wh)].into(),
    );
    let sched = scheduler_with(config, store.clone(), Arc::new(LocalFanout::new(worker)));
    let report = sched.tick().await.unwrap();
    assert_eq!(report.backlog.files, 20, "{report}");
    assert_eq!(
        (report.loaded, report.failed, report.retried),
        (16, 4, 0),
        "{report}"
    );

    // The failures, each with the reason that says which.
    for (name, want) in [
        ("ukvx_landmask.nc", "no forecast time coordinates"),
        ("broken/truncated.nc", "truncated or corrupt"),
        ("broken/empty.nc", "empty file"),
        ("broken/not netcdf 'at all'.nc", "not a netCDF file"),
    ] {
        assert!(
            keys(&*store, &format!("failed/metoffice/{name}"))
                .await
                .len()
                == 1,
            "{name}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&read(&*store, &format!("errors/metoffice/{name}.json")).await)
                .unwrap();
        let reason = report["reason"].as_str().unwrap();
        assert!(
            reason.contains(want) && reason.contains(name),
            "{name}: {reason}"
        );
    }
    assert_eq!(keys(&*store, "processed/").await.len(), 16);

    // Every indexed file with exactly its expected times.
    let items: Vec<_> = ddb
        .scan()
        .table_name(&table)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|i| i.unwrap())
        .collect();
    let mut by_file: BTreeMap<String, [BTreeSet<i64>; 3]> = BTreeMap::new();
    for item in &items {
        let key = item["object_key"].as_s().unwrap();
        let name = key.strip_prefix("processed/metoffice/").unwrap().to_owned();
        let e = by_file.entry(name).or_default();
        e[0].insert(epoch(item["forecast_reference_time"].as_s().unwrap()));
        e[1].insert(item["forecast_period"].as_n().unwrap().parse().unwrap());
        e[2].insert(epoch(item["forecast_time"].as_s().unwrap()));
        assert!(item["object_url"].as_s().unwrap().ends_with(key));
    }
    let mut want = expected.clone();
    want.remove("ukvx_landmask.nc");
    assert_eq!(by_file, want);

    // Indexing again changes nothing: same keys, same items.
    let before = items.len();
    store
        .copy_if_absent(
            &store
                .head("processed/metoffice/multi_time_kgo.nc")
                .await
                .unwrap(),
            "incoming/metoffice/multi_time_kgo.nc",
        )
        .await
        .unwrap();
    let again = sched.tick().await.unwrap();
    assert_eq!(again.loaded, 1, "{again}");
    let count = ddb.scan().table_name(&table).send().await.unwrap().count();
    assert_eq!(count as usize, before);

    // The query. Scalar: one file.
    let q = |t: &'static str, p: Option<i64>, v: Option<&'static str>| {
        let (ddb, table) = (ddb.clone(), table.clone());
        async move {
            ForecastIndex::new(ddb.clone(), &table)
                .query(t, p, v)
                .await
                .unwrap()
        }
    };
    let hits = q("2018-11-29T10:00:00Z", None, None).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].object_key,
        "processed/metoffice/20181129T1000Z-PT0004H00M-lwe_precipitation_rate.nc"
    );
    assert_eq!(hits[0].forecast_period, 14400);
    // Two files for the same time; the variable picks one.
    let hits = q("2018-11-21T12:00:00Z", Some(43200), None).await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    let hits = q("2018-11-21T12:00:00Z", None, Some("wind_speed")).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].object_key.ends_with("wind_speed_at_10m.nc"));
    // 1-D: each time of the file is found, with its own lead time.
    let hits = q("2019-01-01T01:00:00Z", None, None).await;
    assert_eq!((hits.len(), hits[0].forecast_period), (1, 3600), "{hits:?}");
    assert!(hits[0].object_key.ends_with("multi_time_kgo.nc"));
    // 2-D: one validity time, four lead times; the period narrows it.
    let t = "2022-05-22T15:00:00Z";
    assert_eq!(epoch(t), 1_653_231_600);
    let hits = q(t, None, None).await;
    assert_eq!(
        hits.iter().map(|h| h.forecast_period).collect::<Vec<_>>(),
        vec![468000, 475200, 478800, 482400]
    );
    assert_eq!(q(t, Some(475200), None).await.len(), 1);
    // Nothing there.
    assert!(q("2000-01-01T00:00:00Z", None, None).await.is_empty());
}

#[tokio::test]
async fn a_file_over_the_size_limit_fails_before_it_is_read() {
    let (store, _dir) = local();
    let store = arc(store);
    let bytes = std::fs::read(samples().join("multi_time_kgo.nc")).unwrap();
    let size = bytes.len() as u64;
    let etag = store
        .put("incoming/big.nc", Bytes::from(bytes), PutMode::Create)
        .await
        .unwrap();
    let config = Config::from_toml(
        "[source]\nurl = \"unused\"\n[destinations.f]\nkind = \"dynamodb\"\nmax_file_bytes = 1024\n\
         [[route]]\npattern = \"*.nc\"\ndestination = \"f\"\ntable = \"forecasts\"\nformat = \"netcdf\"\n",
    )
    .unwrap();
    let dest = loader::dest::build("f", &config.destinations["f"], &config.source, None).unwrap();
    let batch = loader::contract::Batch {
        id: "b".into(),
        destination: "f".into(),
        table: "forecasts".into(),
        files: vec![loader::contract::FileTask {
            key: "incoming/big.nc".into(),
            etag,
            size,
            spec: config.routes[0].spec(),
            processed_key: config.source.processed_key("incoming/big.nc"),
            rejected_key: String::new(),
        }],
        check_only: false,
        deadline: None,
    };
    let out = dest.load(&batch, store).await;
    match &out.files[0].outcome {
        loader::contract::Outcome::Failed {
            retryable,
            reason,
            cause,
        } => {
            assert!(!retryable);
            assert_eq!(*cause, loader::contract::Cause::File);
            assert!(
                reason.contains("max_file_bytes (1024)") && reason.contains("incoming/big.nc"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A missing table is the destination being down, not the file being bad:
/// the files stay in incoming/ with a reason naming the table, and no
/// attempt counts against them however many ticks it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_keeps_the_files_in_incoming() {
    let (store, _dir) = local();
    let store = arc(store);
    let bytes = std::fs::read(samples().join("multi_time_kgo.nc")).unwrap();
    store
        .put("incoming/a.nc", Bytes::from(bytes), PutMode::Create)
        .await
        .unwrap();
    let table = unique("absent-");
    let config = Config::from_toml(&format!(
        "[source]\nurl = \"unused\"\n[destinations.f]\nkind = \"dynamodb\"\n\
         [[route]]\npattern = \"*.nc\"\ndestination = \"f\"\ntable = \"{table}\"\nformat = \"netcdf\"\n"
    ))
    .unwrap();
    let index: Arc<dyn Destination> =
        Arc::new(Dynamodb::new("f", 1 << 20, &config.source).with_client(dynamo().await));
    let worker = Worker::new(store.clone(), [("f".to_owned(), index)].into());
    let sched = scheduler_with(config, store.clone(), Arc::new(LocalFanout::new(worker)));
    // More ticks than max_attempts (5): an outage never fails the file.
    for _ in 0..6 {
        let report = sched.tick().await.unwrap();
        assert_eq!(
            (report.loaded, report.failed, report.retried),
            (0, 0, 1),
            "{report}"
        );
        assert_eq!(report.destination_errors, 1, "{report}");
        assert_eq!(report.files[0].attempts, None, "no attempt counted");
        let reason = report.files[0].reason.clone().unwrap_or_default();
        assert!(
            reason.contains("ResourceNotFoundException") && reason.contains(&table),
            "{reason}"
        );
        assert_eq!(keys(&*store, "incoming/").await, vec!["incoming/a.nc"]);
    }
}
