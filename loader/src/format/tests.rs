use std::io::{self, Cursor, Read, Write};

use super::*;
use crate::config::{CsvOptions, Format, LoadSpec};

fn rows(data: Vec<u8>, key: &str, spec: &LoadSpec) -> Result<(Vec<String>, Vec<Row>)> {
    let mut r = open(Cursor::new(data), key, spec)?;
    let mut out = Vec::new();
    let mut row = Row::new();
    while r.next_row(&mut row)? {
        out.push(row.clone());
    }
    Ok((r.columns().to_vec(), out))
}

/// [`rows`] with the default spec.
fn read(data: Vec<u8>, key: &str) -> Result<(Vec<String>, Vec<Row>)> {
    rows(data, key, &LoadSpec::default())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn format_message(e: Error) -> String {
    match e {
        Error::Format { message, .. } => message,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn csv_with_header_nulls_and_quotes() {
    let (cols, rows) = read(
        b"id,name,note\n1,\"a, b\",\n2,\"say \"\"hi\"\"\",x\n".to_vec(),
        "k.csv",
    )
    .unwrap();
    assert_eq!(cols, ["id", "name", "note"]);
    assert_eq!(rows[0], [Some("1".into()), Some("a, b".into()), None]);
    assert_eq!(rows[1][1].as_deref(), Some("say \"hi\""));
}

#[test]
fn csv_without_header_uses_configured_columns_and_delimiter() {
    let spec = LoadSpec {
        csv: CsvOptions {
            delimiter: ';',
            header: false,
            null: "NULL".into(),
            ..CsvOptions::default()
        },
        columns: Some(vec!["a".into(), "b".into()]),
        ..LoadSpec::default()
    };
    let (cols, rows) = rows(b"1;NULL\n2;x\n".to_vec(), "k", &spec).unwrap();
    assert_eq!(cols, ["a", "b"]);
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), None],
            vec![Some("2".into()), Some("x".into())]
        ]
    );
}

#[test]
fn csv_short_row_names_the_line_and_columns() {
    let err = read(b"id,name\n1,a\n2\n3,c\n".to_vec(), "k.csv").unwrap_err();
    let msg = format_message(err);
    assert!(
        msg.starts_with("line 3: expected 2 fields (id, name), found 1"),
        "{msg}"
    );
}

#[test]
fn empty_file_has_no_columns_and_no_rows() {
    let (cols, rows) = read(Vec::new(), "k.csv").unwrap();
    assert!(cols.is_empty() && rows.is_empty());
}

#[test]
fn gzip_and_zstd_are_decoded_by_extension() {
    let plain = b"id\n1\n2\n";
    let (_, gz) = read(gzip(plain), "a.csv.gz").unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let (_, zs) = read(zst, "a.csv.zst").unwrap();
    assert_eq!(gz.len(), 2);
    assert_eq!(gz, zs);
}

#[test]
fn truncated_compressed_files_fail_permanently() {
    let body: Vec<u8> = (0..2000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let mut data = b"id\n".to_vec();
    data.extend(body);
    let gz = gzip(&data);
    let err = read(gz[..gz.len() / 2].to_vec(), "t.csv.gz").unwrap_err();
    assert!(!err.is_retryable());
    assert!(format_message(err).contains("truncated"));
    let zst = zstd::encode_all(&data[..], 3).unwrap();
    let err = read(zst[..zst.len() / 2].to_vec(), "t.csv.zst").unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

#[test]
fn jsonl_columns_from_first_object_and_nested_values_as_json() {
    let spec = LoadSpec {
        format: Format::Jsonl,
        ..LoadSpec::default()
    };
    let (cols, rows) = rows(
        b"{\"id\":1,\"tags\":[\"a\"],\"n\":null}\n\n{\"id\":2,\"n\":\"x\"}\n".to_vec(),
        "e.jsonl",
        &spec,
    )
    .unwrap();
    assert_eq!(cols, ["id", "tags", "n"]);
    assert_eq!(rows[0], [Some("1".into()), Some("[\"a\"]".into()), None]);
    assert_eq!(rows[1], [Some("2".into()), None, Some("x".into())]);
}

#[test]
fn jsonl_errors_name_line_and_field() {
    let spec = LoadSpec {
        format: Format::Jsonl,
        ..LoadSpec::default()
    };
    let msg = format_message(
        rows(b"{\"id\":1}\n{\"id\":2,\"oops\":3}\n".to_vec(), "e", &spec).unwrap_err(),
    );
    assert!(msg.starts_with("line 2: field \"oops\""), "{msg}");
    let msg = format_message(rows(b"{\"id\":1}\n[1]\n".to_vec(), "e", &spec).unwrap_err());
    assert!(msg.starts_with("line 2: expected a JSON object"), "{msg}");
    let msg = format_message(rows(b"{\"id\":1}\n{\"id\":\n".to_vec(), "e", &spec).unwrap_err());
    assert!(msg.starts_with("line 2: invalid JSON"), "{msg}");
}

/// A source that fails after some bytes, like a dropped connection.
struct Broken(Cursor<Vec<u8>>);
impl Read for Broken {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            n => Ok(n),
        }
    }
}

#[test]
fn transport_errors_are_retryable_even_inside_gzip() {
    let gz = gzip(b"id\n1\n2\n3\n");
    let cut = gz[..gz.len() - 4].to_vec();
    let err = open(Broken(Cursor::new(cut)), "x.csv.gz", &LoadSpec::default())
        .and_then(|mut r| {
            let mut row = Row::new();
            while r.next_row(&mut row)? {}
            Ok(r)
        })
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.is_retryable());
}

fn limited(max_record_bytes: u64, max_decompressed_bytes: u64) -> LoadSpec {
    LoadSpec {
        limits: crate::config::Limits {
            max_record_bytes,
            max_decompressed_bytes,
            ..Default::default()
        },
        ..LoadSpec::default()
    }
}

/// As PostgreSQL's CSV COPY reads it: `""` is an empty string, only an
/// unquoted empty field is NULL (with the default `null = ""`).
#[test]
fn csv_quoted_empty_is_an_empty_string_and_unquoted_empty_is_null() {
    let (_, rows) = read(b"a,b,c\n\"\",,\"x\"\"\"\n".to_vec(), "k.csv").unwrap();
    assert_eq!(
        rows,
        vec![vec![Some(String::new()), None, Some("x\"".into())]]
    );
}

#[test]
fn csv_unclosed_quote_fails_naming_the_line_where_it_opened() {
    let data = b"id,note\n1,ok\n2,\"never closed\n3,x\n4,y\n".to_vec();
    let e = format_message(read(data, "k.csv").unwrap_err());
    assert!(
        e.starts_with("line 3: a quoted field opened on this line is never closed"),
        "{e}"
    );
}

#[test]
fn csv_quoted_newlines_crlf_and_blank_lines() {
    let (_, rows) = read(
        b"a,b\r\n1,\"two\r\nlines\"\r\n\r\n3,4\r\n".to_vec(),
        "k.csv",
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("two\r\nlines".into())],
            vec![Some("3".into()), Some("4".into())]
        ]
    );
    // A short row after a quoted newline is named by the line it starts on.
    let e = format_message(self::read(b"a,b\n1,\"x\ny\"\n2\n".to_vec(), "k.csv").unwrap_err());
    assert!(e.starts_with("line 4: expected 2 fields"), "{e}");
}

/// A reader of `n` zero bytes that never holds them: the input of a
/// hostile file without building it.
fn zeros(n: u64) -> impl Read + Send + 'static {
    io::repeat(0).take(n)
}

#[test]
fn a_record_longer_than_the_limit_fails_without_reading_it_whole() {
    for (key, spec) in [
        ("k.csv", limited(1024 * 1024, u64::MAX)),
        (
            "k.jsonl",
            LoadSpec {
                format: Format::Jsonl,
                ..limited(1024 * 1024, u64::MAX)
            },
        ),
    ] {
        // 256 MiB with no newline: only ~1 MiB of it is ever buffered. Both
        // readers fail at open: the CSV header and the first JSON object
        // (which names the columns) are that record.
        let r = open(zeros(256 << 20), key, &spec).map(|_| ());
        let e = format_message(r.unwrap_err());
        assert!(
            e.contains("longer than limits.max_record_bytes (1048576 bytes)"),
            "{key}: {e}"
        );
    }
}

#[test]
fn a_decompression_bomb_fails_at_the_limit() {
    // 64 MiB of newlines compress to ~64 KiB; the limit is 8 MiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::copy(&mut io::repeat(b'\n').take(64 << 20), &mut enc).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let spec = limited(1 << 20, 8 << 20);
    let e = format_message(rows(bomb, "bomb.csv.gz", &spec).unwrap_err());
    assert!(
        e.contains("decompresses to more than limits.max_decompressed_bytes (8388608 bytes)"),
        "{e}"
    );
}

#[test]
fn a_zstd_frame_with_a_window_over_the_limit_is_refused() {
    // A window of 2^28 (256 MiB) declared; the default limit is 2^27.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(28))
        .unwrap();
    enc.include_contentsize(false).unwrap();
    enc.write_all(&vec![b'a'; 1 << 20]).unwrap();
    let data = enc.finish().unwrap();
    let e = format_message(read(data, "w.csv.zst").unwrap_err());
    assert!(e.contains("limits.zstd_window_log_max"), "{e}");
}

mod arbitrary_bytes {
    //! Whatever bytes a file holds, the readers return rows or a named
    //! error: never a panic, and never more than the record limit held.
    use super::*;
    use crate::config::{Compression, Limits};
    use proptest::prelude::*;

    fn spec(format: Format, compression: Compression, header: bool) -> LoadSpec {
        LoadSpec {
            format,
            compression,
            csv: CsvOptions {
                header,
                ..CsvOptions::default()
            },
            columns: (!header).then(|| vec!["a".into(), "b".into()]),
            limits: Limits {
                max_record_bytes: 4096,
                max_decompressed_bytes: 1 << 20,
                ..Limits::default()
            },
            ..LoadSpec::default()
        }
    }

    /// Bytes that look like the formats often enough to get past the
    /// first line: CSV and JSON punctuation, quotes, newlines, high bytes.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b','),
                Just(b'"'),
                Just(b'\n'),
                Just(b'\r'),
                Just(b'{'),
                Just(b'}'),
                Just(b':'),
                Just(b'['),
                Just(b'a'),
                Just(b'1'),
                any::<u8>(),
            ],
            0..3000,
        )
    }

    /// The CSV reader over a buffer of `capacity` bytes (`None`: one byte
    /// at a time, no runs): what it returns, errors as their debug text.
    /// The header is read the same way in both, so it is not compared.
    fn csv_rows(
        data: &[u8],
        spec: &LoadSpec,
        capacity: Option<usize>,
    ) -> std::result::Result<(Vec<String>, Vec<Row>), String> {
        let ctx = Ctx {
            key: "k".into(),
            source_failed: Arc::new(AtomicBool::new(false)),
        };
        let input = BufReader::with_capacity(capacity.unwrap_or(1), data);
        let read = || -> Result<_> {
            let mut r = csv::CsvRecords::new(input, ctx, spec)?;
            if capacity.is_none() {
                r = r.byte_at_a_time();
            }
            let mut out = Vec::new();
            let mut row = Row::new();
            while r.next_row(&mut row)? {
                out.push(row.clone());
            }
            Ok((r.columns().to_vec(), out))
        };
        read().map_err(|e| format!("{e:?}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// The reader copies runs of ordinary bytes whole. It must give
        /// the same rows as reading one byte at a time, or the same error
        /// on the same line, at any record limit and any buffer size.
        #[test]
        fn csv_runs_read_as_single_bytes_do(
            data in bytes(),
            header in any::<bool>(),
            limit in 1..5000u64,
            capacity in 2..300usize,
        ) {
            let mut spec = spec(Format::Csv, Compression::None, header);
            spec.limits.max_record_bytes = limit;
            let plain = csv_rows(&data, &spec, None);
            prop_assert_eq!(&plain, &csv_rows(&data, &spec, Some(1)));
            prop_assert_eq!(&plain, &csv_rows(&data, &spec, Some(capacity)));
            prop_assert_eq!(&plain, &csv_rows(&data, &spec, Some(1 << 16)));
        }

        #[test]
        fn csv_and_jsonl_never_panic(data in bytes(), header in any::<bool>(), json in any::<bool>()) {
            let format = if json { Format::Jsonl } else { Format::Csv };
            let got = rows(data, "k", &spec(format, Compression::None, header));
            if let Ok((_, rows)) = got {
                // Every field came from the input: none longer than it.
                for r in rows {
                    for f in r.into_iter().flatten() {
                        prop_assert!(f.len() <= 4096);
                    }
                }
            }
        }

        #[test]
        fn compressed_garbage_is_an_error_not_a_panic(data in bytes(), zstd in any::<bool>()) {
            let compression = if zstd { Compression::Zstd } else { Compression::Gzip };
            let _ = rows(data, "k", &spec(Format::Csv, compression, true));
        }

        #[test]
        fn a_gzip_of_arbitrary_bytes_reads_or_fails_by_name(data in bytes()) {
            if let Err(e) = rows(gzip(&data), "k.csv.gz", &spec(Format::Csv, Compression::Auto, true)) {
                prop_assert!(matches!(e, Error::Format { .. }), "{e:?}");
            }
        }
    }
}

#[test]
fn the_headers_name_the_compression_before_the_key_does() {
    use crate::config::Compression::{self, Auto, Gzip, Zstd};
    use crate::format::compression_for;
    use crate::store::Content;
    let c = |encoding: Option<&str>, content_type: Option<&str>| Content {
        encoding: encoding.map(str::to_owned),
        content_type: content_type.map(str::to_owned),
    };
    let auto = |key: &str, content: Content| compression_for(key, Auto, &content);
    assert_eq!(auto("a.csv", c(Some("gzip"), None)), Gzip);
    assert_eq!(auto("a.csv", c(Some("x-gzip"), Some("text/csv"))), Gzip);
    assert_eq!(auto("a.csv", c(Some("ZSTD"), None)), Zstd);
    assert_eq!(auto("a.csv", c(None, Some("application/zstd"))), Zstd);
    assert_eq!(
        auto("a.csv", c(None, Some("application/gzip; charset=binary"))),
        Gzip
    );
    assert_eq!(
        auto("a.csv.zst", c(Some("gzip"), None)),
        Gzip,
        "the producer's header beats the name"
    );
    assert_eq!(
        auto("a.csv.gz", c(Some("identity"), Some("text/csv"))),
        Gzip,
        "headers that name no compression leave the name to decide"
    );
    assert_eq!(auto("a.csv", c(None, Some("text/csv"))), Compression::None);
    assert_eq!(
        compression_for("a.csv.gz", Compression::None, &c(Some("gzip"), None)),
        Compression::None,
        "a configured compression is not second-guessed"
    );
}

mod schema {
    use super::*;
    use crate::config::{ColumnRule, ColumnType, OnInvalid, Schema};
    use crate::format::validate::Validating;

    fn schema(on_invalid: OnInvalid, max_rejected: u64) -> Schema {
        let rule = |kind, required, allowed: Option<&[&str]>| ColumnRule {
            kind,
            required,
            allowed: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
        };
        Schema {
            columns: [
                ("id".to_owned(), rule(Some(ColumnType::Integer), true, None)),
                ("kind".to_owned(), rule(None, false, Some(&["a", "b"]))),
                (
                    "at".to_owned(),
                    rule(Some(ColumnType::Timestamp), false, None),
                ),
                (
                    "ok".to_owned(),
                    rule(Some(ColumnType::Boolean), false, None),
                ),
                (
                    "amount".to_owned(),
                    rule(Some(ColumnType::Number), false, None),
                ),
            ]
            .into_iter()
            .collect(),
            json_schema: None,
            on_invalid,
            max_rejected,
        }
    }

    const FILE: &str = "id,kind,at,ok,amount\n\
        1,a,2026-11-24T03:00:00Z,true,1.50\n\
        x,a,,,\n\
        3,c,,,\n\
        \n\
        4,b,yesterday,,\n\
        5,b,,maybe,\n\
        6,a,,,1e400\n\
        ,a,,,\n\
        8,\"b\",,false,-2\n";

    fn checked(schema: &Schema) -> (Validating, crate::format::validate::Rejections) {
        let inner = open(
            Cursor::new(FILE.as_bytes().to_vec()),
            "in/f.csv",
            &LoadSpec::default(),
        )
        .unwrap();
        Validating::new(inner, "in/f.csv", Some(schema), "t", &Default::default())
    }

    #[test]
    fn records_that_break_the_schema_are_set_aside_with_line_and_reason() {
        let (mut r, rejections) = checked(&schema(OnInvalid::Reject, 100));
        let mut kept = Vec::new();
        let mut row = Row::new();
        while r.next_row(&mut row).unwrap() {
            kept.push(row[0].clone().unwrap());
        }
        assert_eq!(kept, ["1", "8"], "only the valid records pass");
        assert_eq!(rejections.count(), 6);
        let lines: Vec<serde_json::Value> = String::from_utf8(rejections.jsonl().unwrap())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let at: Vec<(u64, &str)> = lines
            .iter()
            .map(|l| (l["line"].as_u64().unwrap(), l["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(at[0], (3, "column \"id\": \"x\" is not an integer"));
        assert_eq!(
            at[1],
            (
                4,
                "column \"kind\": \"c\" is not one of the allowed values (a, b)"
            )
        );
        assert_eq!(at[2].0, 6, "the blank line counts: {at:?}");
        assert!(at[2].1.contains("RFC 3339"), "{at:?}");
        assert!(at[3].1.contains("\"maybe\" is not true or false"), "{at:?}");
        assert!(at[4].1.contains("\"1e400\" is not a number"), "{at:?}");
        for (v, number) in [
            ("1.5", true),
            ("-2", true),
            ("1e5", true),
            ("NaN", false),
            ("inf", false),
            ("1,5", false),
        ] {
            assert_eq!(super::super::validate::is_number(v), number, "{v}");
        }
        assert_eq!(at[5], (9, "column \"id\" is required and is null"));
        assert_eq!(lines[0]["record"]["id"], "x", "the record as read");
        assert!(lines[0]["record"]["at"].is_null());
    }

    #[test]
    fn fail_file_fails_on_the_first_and_max_rejected_bounds_the_rest() {
        let drain = |schema: Schema| {
            let (mut r, _) = checked(&schema);
            let mut row = Row::new();
            loop {
                match r.next_row(&mut row) {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(e.to_string()),
                }
            }
        };
        let e = drain(schema(OnInvalid::FailFile, 100)).unwrap();
        assert!(
            e.contains("in/f.csv") && e.contains("line 3: column \"id\""),
            "{e}"
        );
        let e = drain(schema(OnInvalid::Reject, 2)).unwrap();
        assert!(
            e.contains("more than max_rejected (2)") && e.contains("line 6"),
            "{e}"
        );
        assert_eq!(
            drain(schema(OnInvalid::Reject, 6)),
            None,
            "6 rejects are allowed"
        );
    }

    #[test]
    fn a_required_column_the_file_lacks_rejects_every_record() {
        let mut s = schema(OnInvalid::Reject, 100);
        s.columns.insert(
            "tenant".into(),
            ColumnRule {
                required: true,
                ..ColumnRule::default()
            },
        );
        let (mut r, rejections) = checked(&s);
        while r.next_row(&mut Row::new()).unwrap() {}
        assert_eq!(rejections.count(), 8);
        let text = String::from_utf8(rejections.jsonl().unwrap()).unwrap();
        assert!(
            text.contains("column \\\"tenant\\\" is required and the file has no such column"),
            "{text}"
        );
    }
}

mod tables_from_fields {
    use super::*;
    use crate::format::validate::Validating;

    const FILE: &str = concat!(
        r#"{"id":1,"metadata":{"tenant_id":"acme"}}"#,
        "\n",
        r#"{"id":2,"metadata":{"tenant_id":"globex"}}"#,
        "\n",
        r#"{"id":3,"metadata":{"tenant_id":"Acme"}}"#,
        "\n",
        r#"{"id":4,"metadata":{}}"#,
        "\n",
        r#"{"id":5,"metadata":"acme"}"#,
        "\n",
        r#"{"id":6,"metadata":{"tenant_id":"a\"; DROP TABLE x; --"}}"#,
        "\n",
        r#"{"id":7,"metadata":{"tenant_id":42}}"#,
        "\n",
        r#"{"id":8,"metadata":{"tenant_id":"acme"}}"#,
        "\n",
    );

    #[test]
    fn each_record_names_its_table_and_a_bad_name_is_rejected_with_the_reason() {
        let spec = LoadSpec {
            format: Format::Jsonl,
            ..LoadSpec::default()
        };
        let inner = open(Cursor::new(FILE.as_bytes().to_vec()), "in/t.jsonl", &spec).unwrap();
        let fields = [("tenant".to_owned(), "metadata.tenant_id".to_owned())].into();
        let (mut r, rejections) =
            Validating::new(inner, "in/t.jsonl", None, "ev_{tenant}", &fields);
        let mut row = Row::new();
        let mut went = Vec::new();
        while r.next_row(&mut row).unwrap() {
            went.push((row[0].clone().unwrap(), r.table().unwrap().to_owned()));
        }
        let went: Vec<(&str, &str)> = went.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            went,
            [
                ("1", "ev_acme"),
                ("2", "ev_globex"),
                ("7", "ev_42"),
                ("8", "ev_acme")
            ]
        );
        let text = String::from_utf8(rejections.jsonl().unwrap()).unwrap();
        let reasons: Vec<(u64, String)> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                (
                    v["line"].as_u64().unwrap(),
                    v["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0].0, 3);
        assert!(reasons[0].1.contains("\"Acme\": holds 'A'"), "{reasons:?}");
        assert!(
            reasons[1]
                .1
                .contains("\"metadata.tenant_id\" (fills {tenant}) is missing"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].1.contains("is not inside a JSON object"),
            "{reasons:?}"
        );
        assert!(reasons[3].1.contains("holds '\"'"), "{reasons:?}");
    }

    #[test]
    fn a_file_without_the_field_rejects_every_record_up_to_max_rejected() {
        let spec = LoadSpec {
            format: Format::Jsonl,
            ..LoadSpec::default()
        };
        let body = "{\"id\":1}\n".repeat(1001);
        let inner = open(Cursor::new(body.into_bytes()), "in/t.jsonl", &spec).unwrap();
        let fields = [("tenant".to_owned(), "tenant".to_owned())].into();
        let (mut r, _) = Validating::new(inner, "in/t.jsonl", None, "ev_{tenant}", &fields);
        let e = match r.next_row(&mut Row::new()) {
            Ok(true) => panic!("no record has a table"),
            Ok(false) => panic!("1001 rejects are over the default 1000"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("more than max_rejected (1000)") && e.contains("the file has no such field"),
            "{e}"
        );
    }
}

#[cfg(feature = "json-schema")]
mod json_schema {
    use super::*;
    use crate::config::{OnInvalid, Schema};
    use crate::format::validate::Validating;

    const SCHEMA: &str = r#"{
        "type": "object",
        "required": ["event_id", "type"],
        "properties": {
            "event_id": {"type": "integer"},
            "type": {"enum": ["login", "logout"]},
            "props": {"type": ["object", "null"], "properties": {"ms": {"type": "number", "minimum": 0}}}
        }
    }"#;

    #[test]
    fn records_are_checked_as_parsed_and_the_first_error_is_the_reason() {
        let schema = Schema {
            columns: Default::default(),
            json_schema: Some(SCHEMA.into()),
            on_invalid: OnInvalid::Reject,
            max_rejected: 10,
        };
        let spec = LoadSpec {
            format: Format::Jsonl,
            schema: Some(schema.clone()),
            ..LoadSpec::default()
        };
        let file = concat!(
            r#"{"event_id":1,"type":"login","props":{"ms":5}}"#,
            "\n",
            r#"{"event_id":"2","type":"login","props":null}"#,
            "\n",
            r#"{"event_id":3,"type":"jump","props":null}"#,
            "\n",
            r#"{"event_id":4,"type":"logout","props":{"ms":-1}}"#,
            "\n",
            r#"{"event_id":5,"type":null,"props":null}"#,
            "\n",
            r#"{"event_id":6,"type":"logout","props":null}"#,
            "\n",
        );
        let inner = open(Cursor::new(file.as_bytes().to_vec()), "in/e.jsonl", &spec).unwrap();
        let (mut r, rejections) =
            Validating::new(inner, "in/e.jsonl", Some(&schema), "t", &Default::default());
        let mut kept = Vec::new();
        let mut row = Row::new();
        while r.next_row(&mut row).unwrap() {
            kept.push(row[0].clone().unwrap());
        }
        assert_eq!(kept, ["1", "6"]);
        let text = String::from_utf8(rejections.jsonl().unwrap()).unwrap();
        let reasons: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].starts_with("json schema: at /event_id:") && reasons[0].contains("integer"),
            "the string \"2\" is not an integer: {reasons:?}"
        );
        assert!(
            reasons[1].starts_with("json schema: at /type:"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].starts_with("json schema: at /props/ms:") && reasons[2].contains("minimum"),
            "{reasons:?}"
        );
        assert!(
            reasons[3].starts_with("json schema: at /type:"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_schema_that_does_not_compile_is_a_config_error() {
        let base =
            "[source]\nurl = \"dir:b\"\n[destinations.wh]\nkind = \"sqlite\"\npath = \"w.db\"\n\
                    [[route]]\npattern = \"**\"\ndestination = \"wh\"\ntable = \"t\"\n";
        let with = |format: &str, schema: &str| {
            crate::config::Config::from_toml(&format!(
                "{base}format = \"{format}\"\n[route.schema]\njson_schema = '''{schema}'''\n"
            ))
        };
        assert!(with("jsonl", SCHEMA).is_ok());
        for (format, schema, want) in [
            ("jsonl", "{", "not JSON"),
            ("jsonl", r#"{"type": "nope"}"#, "not a valid JSON Schema"),
            ("csv", SCHEMA, "JSON Lines routes only"),
        ] {
            let e = with(format, schema).unwrap_err().to_string();
            assert!(
                e.contains("route[0].schema.json_schema") && e.contains(want),
                "{e}"
            );
        }
    }
}
