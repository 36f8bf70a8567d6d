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
    let (cols, rows) = rows(
        b"id,name,note\n1,\"a, b\",\n2,\"say \"\"hi\"\"\",x\n".to_vec(),
        "k.csv",
        &LoadSpec::default(),
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
    let err = rows(
        b"id,name\n1,a\n2\n3,c\n".to_vec(),
        "k.csv",
        &LoadSpec::default(),
    )
    .unwrap_err();
    let msg = format_message(err);
    assert!(
        msg.starts_with("line 3: expected 2 fields (id, name), found 1"),
        "{msg}"
    );
}

#[test]
fn empty_file_has_no_columns_and_no_rows() {
    let (cols, rows) = rows(Vec::new(), "k.csv", &LoadSpec::default()).unwrap();
    assert!(cols.is_empty() && rows.is_empty());
}

#[test]
fn gzip_and_zstd_are_decoded_by_extension() {
    let plain = b"id\n1\n2\n";
    let (_, gz) = rows(gzip(plain), "a.csv.gz", &LoadSpec::default()).unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let (_, zs) = rows(zst, "a.csv.zst", &LoadSpec::default()).unwrap();
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
    let err = rows(
        gz[..gz.len() / 2].to_vec(),
        "t.csv.gz",
        &LoadSpec::default(),
    )
    .unwrap_err();
    assert!(!err.is_retryable());
    assert!(format_message(err).contains("truncated"));
    let zst = zstd::encode_all(&data[..], 3).unwrap();
    let err = rows(
        zst[..zst.len() / 2].to_vec(),
        "t.csv.zst",
        &LoadSpec::default(),
    )
    .unwrap_err();
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
