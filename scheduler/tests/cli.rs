//! The `s3loader` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn s3loader(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s3loader"))
        .args(args)
        .current_dir(cwd)
        .env_remove("S3LOADER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run s3loader")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `DIR/c.toml`: `DIR/bucket` (relative to the working directory) into
/// SQLite `wh.db`, every `*.csv` into table `t`, with `tick` lines.
fn write_config(dir: &Path, tick: &str) -> std::path::PathBuf {
    let config = dir.join("c.toml");
    let text = format!(
        "[source]\nurl = \"dir:bucket\"\n[tick]\n{tick}\n\
         [destinations.wh]\nkind = \"sqlite\"\npath = \"wh.db\"\n\
         [[route]]\npattern = \"*.csv\"\ndestination = \"wh\"\ntable = \"t\"\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// moto's endpoint, and an SDK config for it.
async fn moto() -> (String, aws_config::SdkConfig) {
    let moto = std::env::var("S3LOADER_TEST_MOTO")
        .expect("S3LOADER_TEST_MOTO is not set: run the tests through tests/services.sh");
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    (moto, shared)
}

fn count(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn demo_drains_the_samples_and_a_second_run_loads_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = s3loader(&["demo", "--dir", "d"], dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("seeded 10 sample file(s)"), "{out}");
    assert!(
        out.contains("=> 7 loaded (18 rows), 0 already loaded, 3 failed"),
        "{out}"
    );
    assert!(
        out.contains("line 4: expected 4 fields"),
        "the malformed row is named: {out}"
    );
    assert!(out.contains("no route"), "{out}");
    let db = dir.path().join("d/warehouse.db");
    // The malformed file has three good rows before its bad one: none stay.
    assert_eq!(count(&db, "orders"), 10);
    assert_eq!(count(&db, "events"), 5);
    assert_eq!(count(&db, "customers"), 3);

    let second = s3loader(&["demo", "--dir", "d"], dir.path());
    assert!(second.status.success(), "{}", stderr(&second));
    let out = stdout(&second);
    assert!(out.contains("seeded 0 sample file(s)"), "{out}");
    assert!(out.contains("nothing to load"), "{out}");
    assert_eq!(count(&db, "orders"), 10);
    assert_eq!(count(&db, "s3loader_ledger"), 7);
    let failed = dir
        .path()
        .join("d/bucket/failed/orders/2026-11-03-malformed.csv");
    assert!(failed.exists());
    let report = std::fs::read_to_string(
        dir.path()
            .join("d/bucket/errors/orders/2026-11-03-malformed.csv.json"),
    )
    .unwrap();
    assert!(report.contains("line 4"), "{report}");
}

#[test]
fn tick_status_and_reprocess_with_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    std::fs::write(dir.path().join("bucket/incoming/good.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(dir.path().join("bucket/incoming/bad.csv"), "a,b\n1\n").unwrap();
    let cfg = config.to_str().unwrap();

    let status = s3loader(&["--config", cfg, "status", "--json"], dir.path());
    assert!(status.status.success(), "{}", stderr(&status));
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["backlog"]["files"], 2);

    let tick = s3loader(&["--config", cfg, "tick", "--json"], dir.path());
    assert!(tick.status.success(), "{}", stderr(&tick));
    let r: serde_json::Value = serde_json::from_slice(&tick.stdout).unwrap();
    assert_eq!(
        (r["loaded"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );

    let dry = s3loader(&["--config", cfg, "reprocess", "--dry-run"], dir.path());
    assert!(
        stdout(&dry).contains("would move failed/bad.csv"),
        "{}",
        stdout(&dry)
    );
    assert!(
        dir.path().join("bucket/failed/bad.csv").exists(),
        "a dry run moves nothing"
    );
    let real = s3loader(&["--config", cfg, "reprocess"], dir.path());
    assert!(real.status.success());
    assert!(dir.path().join("bucket/incoming/bad.csv").exists());

    // It fails again; meanwhile the producer sends a corrected file under
    // the same name: reprocess leaves both where they are, says so, exits 1.
    let tick = s3loader(&["--config", cfg, "tick"], dir.path());
    assert!(tick.status.success(), "{}", stderr(&tick));
    // (The directory store removed the emptied incoming/ folder.)
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    std::fs::write(dir.path().join("bucket/incoming/bad.csv"), "a,b\n1,3\n").unwrap();
    let conflict = s3loader(&["--config", cfg, "reprocess", "--json"], dir.path());
    assert!(!conflict.status.success(), "a conflict is an error exit");
    let r: serde_json::Value = serde_json::from_slice(&conflict.stdout).unwrap();
    assert_eq!(r["moved"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["conflicts"][0]["key"], "failed/bad.csv", "{r}");
    assert_eq!(r["conflicts"][0]["target"], "incoming/bad.csv", "{r}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bucket/incoming/bad.csv")).unwrap(),
        "a,b\n1,3\n",
        "the corrected file is not replaced"
    );
    assert!(dir.path().join("bucket/failed/bad.csv").exists());
}

#[test]
fn emf_metrics_and_the_report_as_json_fields_on_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap()
        + "[metrics]\nsink = \"emf\"\nnamespace = \"S3LoaderCliTest\"\npipeline = \"cli\"\n";
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    std::fs::write(
        dir.path().join("bucket/incoming/good.csv"),
        "a,b\n1,2\n3,4\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let tick = s3loader(&["--config", cfg, "--log-json", "-v", "tick"], dir.path());
    assert!(tick.status.success(), "{}", stderr(&tick));
    let lines: Vec<serde_json::Value> = stderr(&tick)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let emf = lines
        .iter()
        .find(|l| l.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no embedded-metric line: {lines:?}"));
    let directive = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "S3LoaderCliTest");
    assert_eq!(emf["Pipeline"], "cli");
    assert_eq!(emf["FilesLoaded"], 1);
    assert_eq!(emf["RowsLoaded"], 2);
    assert!(emf["_aws"]["Timestamp"].is_u64());
    let report = lines
        .iter()
        .find(|l| l["target"] == "s3loader::report")
        .unwrap_or_else(|| panic!("no report line: {lines:?}"));
    assert_eq!(
        report["loaded"], 1,
        "the report's fields are JSON, not text: {report}"
    );
    assert_eq!(report["files"][0]["key"], "incoming/good.csv");

    // Without -v, the report is not logged; the metrics still are.
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    std::fs::write(dir.path().join("bucket/incoming/more.csv"), "a,b\n5,6\n").unwrap();
    let quiet = s3loader(&["--config", cfg, "--log-json", "tick"], dir.path());
    let err = stderr(&quiet);
    assert!(
        err.contains("\"_aws\"") && !err.contains("s3loader::report"),
        "{err}"
    );
}

/// The progress bar is drawn on a terminal only: through a pseudo-terminal
/// (util-linux `script`) reprocess shows it; captured, stderr has none.
#[test]
fn reprocess_draws_a_progress_bar_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let failed = dir.path().join("bucket/failed/many");
    std::fs::create_dir_all(&failed).unwrap();
    let put_all = || {
        // (The directory store removes a folder its last file left.)
        std::fs::create_dir_all(&failed).unwrap();
        for i in 0..400 {
            std::fs::write(failed.join(format!("{i:03}.csv")), "a\n1\n").unwrap();
        }
    };
    put_all();
    let cfg = config.to_str().unwrap();
    let captured = s3loader(
        &["--config", cfg, "reprocess", "--prefix", "many/"],
        dir.path(),
    );
    assert!(captured.status.success(), "{}", stderr(&captured));
    assert!(stdout(&captured).contains("400"), "{}", stdout(&captured));
    assert!(
        !stderr(&captured).contains("moving back"),
        "a bar on a captured stderr: {}",
        stderr(&captured)
    );

    std::fs::remove_dir_all(dir.path().join("bucket/incoming")).unwrap();
    put_all();
    let command = format!(
        "{} --config {cfg} reprocess --prefix many/",
        env!("CARGO_BIN_EXE_s3loader")
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains("moving back to incoming/"),
        "no bar on a terminal: {screen:?}"
    );
}

#[test]
fn history_and_replay_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    std::fs::write(dir.path().join("bucket/incoming/a.csv"), "x\n1\n2\n").unwrap();
    let cfg = config.to_str().unwrap();
    let tick = s3loader(&["--config", cfg, "tick"], dir.path());
    assert!(tick.status.success(), "{}", stderr(&tick));

    let h = s3loader(
        &["--config", cfg, "history", "--since", "1h", "--json"],
        dir.path(),
    );
    assert!(h.status.success(), "{}", stderr(&h));
    let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(v[0]["destination"], "wh");
    assert_eq!(v[0]["entries"][0]["object_key"], "incoming/a.csv", "{v}");
    assert_eq!(v[0]["entries"][0]["rows"], 2);
    let none = s3loader(&["--config", cfg, "history", "--key", "b"], dir.path());
    assert!(stdout(&none).contains("wh: 0 load(s)"), "{}", stdout(&none));
    let bad = s3loader(
        &["--config", cfg, "history", "--since", "last week"],
        dir.path(),
    );
    assert!(
        !bad.status.success() && stderr(&bad).contains("is not a time"),
        "{}",
        stderr(&bad)
    );

    // Without --reload: lists, refuses, moves nothing.
    let refused = s3loader(&["--config", cfg, "replay", "--prefix", "a"], dir.path());
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("would move processed/a.csv"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stderr(&refused).contains("--reload"),
        "{}",
        stderr(&refused)
    );
    assert!(dir.path().join("bucket/processed/a.csv").exists());
    let replayed = s3loader(
        &["--config", cfg, "replay", "--prefix", "a", "--reload"],
        dir.path(),
    );
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    let tick = s3loader(&["--config", cfg, "tick"], dir.path());
    assert!(
        stdout(&tick).contains("1 loaded (2 rows)"),
        "{}",
        stdout(&tick)
    );
    assert_eq!(
        count(&dir.path().join("wh.db"), "t"),
        4,
        "loaded a second time, deliberately"
    );
    let h = s3loader(&["--config", cfg, "history"], dir.path());
    assert!(
        stdout(&h).contains("(replay of incoming/a.csv)"),
        "{}",
        stdout(&h)
    );
}

#[test]
fn a_bad_config_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    for (text, field) in [
        ("[source]\nurl = \"dir:b\"\n[tick]\nconcurrency = 0\n[destinations.wh]\nkind = \"sqlite\"\npath = \"x\"\n[[route]]\npattern = \"*\"\ndestination = \"wh\"\ntable = \"t\"\n", "tick.concurrency"),
        ("[source]\nurl = \"dir:b\"\n[destinations.wh]\nkind = \"sqlite\"\npath = \"x\"\n[[route]]\npattern = \"*\"\ndestination = \"pg\"\ntable = \"t\"\n", "route[0].destination"),
        ("[source]\nurl = \"dir:b\"\nincomming = \"x/\"\n", "incomming"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = s3loader(&["--config", config.to_str().unwrap(), "tick"], dir.path());
        assert!(!out.status.success());
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
    }
    assert!(!dir.path().join("b").exists(), "nothing ran");
}

#[test]
fn help_explains_the_commands() {
    let out = s3loader(&["--help"], Path::new("."));
    assert!(out.status.success());
    let text = stdout(&out);
    for word in [
        "incoming/",
        "processed/",
        "run",
        "tick",
        "status",
        "reprocess",
        "demo",
        "--config",
    ] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
}

#[test]
fn run_ticks_until_sigint_then_exits_cleanly_releasing_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "interval_secs = 1");
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3loader"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A file that arrives while it runs is picked up by a later tick.
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(dir.path().join("bucket/incoming/late.csv"), "a\n1\n").unwrap();
    let processed = dir.path().join("bucket/processed/late.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !processed.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(processed.exists(), "run loaded the file that arrived");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "run did not stop on SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("tick done"), "run logs each tick: {err}");
    assert!(
        !dir.path().join("bucket/_s3loader/lease").exists(),
        "the lease is released"
    );
}

/// `tick` indexes real Met Office files into moto's DynamoDB, and
/// `forecasts` answers from the index, as text and as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_answers_from_the_index_the_tick_wrote() {
    let (moto, shared) = moto().await;
    let table = format!("cli-{}", std::process::id());
    loader::forecast_index::ForecastIndex::new(aws_sdk_dynamodb::Client::new(&shared), &table)
        .create_table()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/metoffice");
    let incoming = dir.path().join("bucket/incoming/uk");
    std::fs::create_dir_all(&incoming).unwrap();
    for name in [
        "20181121T1200Z-PT0012H00M-pressure_at_mean_sea_level.nc",
        "20181121T1200Z-PT0012H00M-wind_speed_at_10m.nc",
        "multi_time_kgo.nc",
    ] {
        std::fs::copy(samples.join(name), incoming.join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[source]\nurl = \"dir:bucket\"\n[destinations.index]\nkind = \"dynamodb\"\n\
             [[route]]\npattern = \"uk/*.nc\"\ndestination = \"index\"\ntable = \"{table}\"\nformat = \"netcdf\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_s3loader"))
            .args(["--config", "c.toml"])
            .args(args)
            .current_dir(dir.path())
            .env("AWS_ENDPOINT_URL_DYNAMODB", &moto)
            .env("AWS_REGION", "us-east-1")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let tick = run(&["tick"]);
    assert!(tick.status.success(), "{}", stderr(&tick));
    assert!(stdout(&tick).contains("=> 3 loaded"), "{}", stdout(&tick));

    let text = run(&["forecasts", "--time", "2018-11-21T12:00Z"]);
    let out = stdout(&text);
    assert!(
        out.contains("2 file(s) hold a forecast for 2018-11-21T12:00:00Z"),
        "{out}{}",
        stderr(&text)
    );
    assert!(
        out.contains("PT12H")
            && out.contains("processed/uk/20181121T1200Z-PT0012H00M-wind_speed_at_10m.nc"),
        "{out}"
    );

    let json = run(&[
        "forecasts",
        "--time",
        "2019-01-01T01:00Z",
        "--period",
        "PT1H",
        "--json",
    ]);
    let hits: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["object_key"], "processed/uk/multi_time_kgo.nc");
    assert_eq!(hits[0]["forecast_period"], 3600);

    let none = run(&[
        "forecasts",
        "--time",
        "2019-01-01T01:00Z",
        "--period",
        "PT2H",
    ]);
    assert!(
        stdout(&none).contains("no indexed file holds a forecast"),
        "{}",
        stdout(&none)
    );
    let bad = run(&[
        "forecasts",
        "--time",
        "2019-01-01T01:00Z",
        "--period",
        "2 hours",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--period \"2 hours\""),
        "{}",
        stderr(&bad)
    );
}

/// `n` bytes of `byte` as concatenated gzip members of 1 MiB each: a 2 GiB
/// stream in about 2 MB, built in milliseconds (the reader decodes every
/// member, as gzip(1) does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_loads_what_the_queue_notifies_and_stops_when_it_is_empty() {
    let (moto, shared) = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let queue = sqs
        .create_queue()
        .queue_name(format!("cli-listen-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::create_dir_all(dir.path().join("bucket/incoming")).unwrap();
    for (i, name) in ["a.csv", "b c.csv"].iter().enumerate() {
        std::fs::write(
            dir.path().join("bucket/incoming").join(name),
            format!("x\n{i}\n"),
        )
        .unwrap();
        let event = format!(
            r#"{{"Records":[{{"eventName":"ObjectCreated:Put","eventTime":"2026-11-24T03:00:00.000Z","s3":{{"bucket":{{"name":"b"}},"object":{{"key":"incoming/{}"}}}}}}]}}"#,
            name.replace(' ', "+")
        );
        sqs.send_message()
            .queue_url(&queue)
            .message_body(event)
            .send()
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&queue)
        .message_body("garbage")
        .send()
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_s3loader"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "listen",
            "--queue-url",
            &queue,
            "--until-empty",
            "--wait-secs",
            "1",
        ])
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL_SQS", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("2 notified key(s)"), "{text}");
    assert!(text.contains("returned to the queue"), "{text}");
    assert_eq!(count(&dir.path().join("wh.db"), "t"), 2, "{text}");
    assert!(dir.path().join("bucket/processed/b c.csv").exists());
}

fn gzip_of(byte: u8, n: u64) -> Vec<u8> {
    use std::io::Write;
    let mib = 1 << 20;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![byte; mib]).unwrap();
    let member = enc.finish().unwrap();
    member.repeat((n / mib as u64) as usize)
}

/// Hostile inputs fail, each with a reason naming the limit, while the
/// loader's peak RSS stays under 256 MB (GNU time's maximum resident set
/// size of the whole `s3loader tick` process).
#[test]
fn hostile_inputs_fail_with_named_reasons_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let incoming = dir.path().join("bucket/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    // 2 GiB of zeros, no newline: one endless CSV record.
    std::fs::write(incoming.join("zeros.csv.gz"), gzip_of(0, 2 << 30)).unwrap();
    // 2 GiB of newlines: no record at all, only decompressed bytes.
    std::fs::write(incoming.join("bomb.csv.gz"), gzip_of(b'\n', 2 << 30)).unwrap();
    // A single 200 MB JSON line.
    let mut line =
        std::io::BufWriter::new(std::fs::File::create(incoming.join("line.jsonl")).unwrap());
    line.write_all(b"{\"a\":\"").unwrap();
    for _ in 0..200 {
        line.write_all(&[b'x'; 1_000_000]).unwrap();
    }
    line.write_all(b"\"}\n").unwrap();
    line.flush().unwrap();
    drop(line);
    // A netCDF file that declares 2^32 forecast times.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/hostile/huge_time_dimension.nc"),
        incoming.join("huge.nc"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        r#"
        [source]
        url = "dir:bucket"
        [limits]
        max_decompressed_bytes = 268435456
        [destinations.db]
        kind = "sqlite"
        path = "wh.db"
        [destinations.index]
        kind = "dynamodb"
        [[route]]
        pattern = "*.csv*"
        destination = "db"
        table = "t"
        [[route]]
        pattern = "*.jsonl"
        destination = "db"
        table = "j"
        format = "jsonl"
        [[route]]
        pattern = "*.nc"
        destination = "index"
        table = "forecasts"
        format = "netcdf"
        "#,
    )
    .unwrap();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kb %M", env!("CARGO_BIN_EXE_s3loader")])
        .args(["--config", "c.toml", "tick", "--json"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run s3loader under /usr/bin/time (apt-get install time)");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let reason = |key: &str| -> String {
        let line = report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap_or_else(|| panic!("{key} not in {report}"));
        assert_eq!(line["result"], "failed", "{line}");
        line["reason"].as_str().unwrap().to_owned()
    };
    for (key, want) in [
        (
            "incoming/zeros.csv.gz",
            "longer than limits.max_record_bytes (16777216 bytes)",
        ),
        (
            "incoming/bomb.csv.gz",
            "more than limits.max_decompressed_bytes (268435456 bytes)",
        ),
        (
            "incoming/line.jsonl",
            "line 1: line longer than limits.max_record_bytes",
        ),
        (
            "incoming/huge.nc",
            "more than limits.netcdf_max_time_cells (1000000)",
        ),
    ] {
        let why = reason(key);
        assert!(why.contains(want), "{key}: {why}");
    }
    let kb: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS figure in {err}"));
    eprintln!("hostile inputs: peak RSS {} MB", kb / 1024);
    assert!(kb < 256 * 1024, "peak RSS {kb} KB is over 256 MB");
    assert_eq!(
        std::fs::read_dir(dir.path().join("bucket/failed"))
            .unwrap()
            .count(),
        4
    );
}
