//! Apache Parquet, through arrow-rs: rows of text, like every format here.
//!
//! Parquet keeps its index at the end of the file, so the object is first
//! copied to a temporary file (at most `limits.max_decompressed_bytes`).
//! Then row groups are read in batches of [`BATCH_ROWS`] rows. Memory is
//! what arrow holds for one batch of one row group, and a row group
//! larger than `limits.max_row_group_bytes` (by the uncompressed size its
//! metadata declares) is refused before anything is decoded.
//!
//! Values become text as PostgreSQL's COPY and SQLite take them: integers
//! and decimals as digits, booleans as `true`/`false`, timestamps in RFC
//! 3339, NULL as `None`. Nested values (lists, structs, maps) are Arrow's
//! display text.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::{RecordReader, Row};
use crate::config::LoadSpec;
use crate::error::{Error, Result};

/// Rows decoded at a time.
pub const BATCH_ROWS: usize = 1024;

/// Parquet's magic, at both ends of a file.
const MAGIC: &[u8; 4] = b"PAR1";

pub struct ParquetRecords {
    key: String,
    columns: Vec<String>,
    reader: ParquetRecordBatchReader,
    /// The current batch, column by column, as text.
    batch: Vec<Vec<Option<String>>>,
    /// The next row of `batch`.
    at: usize,
    /// Rows returned so far.
    rows: u64,
}

/// Copies `raw` to a temporary file and opens it as rows.
pub fn open(raw: impl Read, key: &str, spec: &LoadSpec) -> Result<Box<dyn RecordReader>> {
    let file = spool(raw, key, spec.limits.max_decompressed_bytes)?;
    Ok(Box::new(ParquetRecords::new(file, key, spec)?))
}

/// The object's bytes in an unnamed temporary file, rewound. A read error
/// is the transport's (retryable); a file over `max` bytes is the file's.
fn spool(mut raw: impl Read, key: &str, max: u64) -> Result<File> {
    let local = |e: io::Error| Error::Read {
        key: key.to_owned(),
        source: io::Error::other(format!("spooling to a temporary file: {e}")),
    };
    let mut file = tempfile::tempfile().map_err(local)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match raw.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Read {
                    key: key.to_owned(),
                    source: e,
                })
            }
        };
        total += n as u64;
        if total > max {
            return Err(Error::Format {
                key: key.to_owned(),
                message: format!(
                    "a Parquet file is read from a local copy, and this one is larger than limits.max_decompressed_bytes ({max} bytes)"
                ),
            });
        }
        file.write_all(&buf[..n]).map_err(local)?;
    }
    file.seek(SeekFrom::Start(0)).map_err(local)?;
    Ok(file)
}

impl ParquetRecords {
    fn new(mut file: File, key: &str, spec: &LoadSpec) -> Result<Self> {
        let fail = |message: String| Error::Format {
            key: key.to_owned(),
            message,
        };
        check_footer(&mut file, spec.limits.max_record_bytes).map_err(fail)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fail(format!("not a readable Parquet file: {e}")))?;
        let max = spec.limits.max_row_group_bytes;
        for (i, group) in builder.metadata().row_groups().iter().enumerate() {
            let size = group.total_byte_size().max(0) as u64;
            if size > max {
                return Err(fail(format!(
                    "row group {i} declares {size} bytes uncompressed, over limits.max_row_group_bytes ({max})"
                )));
            }
        }
        let fields: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // A route's `columns` picks (and orders) the columns read.
        let (columns, mask) = match &spec.columns {
            Some(wanted) => {
                let mut roots = Vec::with_capacity(wanted.len());
                for w in wanted {
                    match fields.iter().position(|f| f == w) {
                        Some(i) => roots.push(i),
                        None => {
                            return Err(fail(format!(
                                "has no column {w:?} (the route's columns); it has {fields:?}"
                            )))
                        }
                    }
                }
                let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
                // The projection keeps the file's order: name them so.
                roots.sort_unstable();
                (roots.iter().map(|&i| fields[i].clone()).collect(), mask)
            }
            None => (fields, ProjectionMask::all()),
        };
        super::check_columns(
            &super::Ctx {
                key: key.to_owned(),
                source_failed: Default::default(),
            },
            &columns,
        )?;
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| fail(format!("not a readable Parquet file: {e}")))?;
        Ok(Self {
            key: key.to_owned(),
            columns,
            reader,
            batch: Vec::new(),
            at: 0,
            rows: 0,
        })
    }

    /// The next batch as text; `false` at the end.
    fn next_batch(&mut self) -> Result<bool> {
        let Some(batch) = self.reader.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|e| Error::Format {
            key: self.key.clone(),
            message: format!("row {}: cannot decode: {e}", self.rows + 1),
        })?;
        self.batch = as_text(&batch).map_err(|e| Error::Format {
            key: self.key.clone(),
            message: format!("row {}: {e}", self.rows + 1),
        })?;
        self.at = 0;
        Ok(true)
    }
}

/// The footer must end in `PAR1` after a metadata length no larger than
/// `max` (the metadata is read whole, so its length is a memory bound).
fn check_footer(file: &mut File, max: u64) -> std::result::Result<(), String> {
    let io = |e: io::Error| format!("cannot read: {e}");
    let len = file.metadata().map_err(io)?.len();
    if len < 12 {
        return Err(format!(
            "{len} bytes is too short for a Parquet file (truncated?)"
        ));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8)).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    if &tail[4..] != MAGIC {
        return Err("does not end in PAR1: not a Parquet file, or truncated".into());
    }
    let metadata = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if metadata > max {
        return Err(format!(
            "its metadata declares {metadata} bytes, over limits.max_record_bytes ({max})"
        ));
    }
    if metadata + 12 > len {
        return Err(format!(
            "its metadata declares {metadata} bytes, more than the file holds (truncated?)"
        ));
    }
    Ok(())
}

/// Each column of `batch` as text, NULL as `None`.
fn as_text(batch: &RecordBatch) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let options = FormatOptions::default();
    let shown = |e: arrow_schema::ArrowError| format!("cannot show a value as text: {e}");
    batch
        .columns()
        .iter()
        .map(|array| {
            // A timestamp with a zone holds UTC instants: shown without
            // the zone (which would need a zone database to name) and
            // marked `Z`.
            let (array, zone) = match array.data_type() {
                DataType::Timestamp(unit, Some(_)) => (
                    arrow_cast::cast(array, &DataType::Timestamp(*unit, None)).map_err(shown)?,
                    "Z",
                ),
                _ => (array.clone(), ""),
            };
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(shown)?;
            Ok((0..array.len())
                .map(|i| (!array.is_null(i)).then(|| format!("{}{zone}", formatter.value(i))))
                .collect())
        })
        .collect()
}

impl RecordReader for ParquetRecords {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        while self.batch.first().is_none_or(|c| self.at >= c.len()) {
            if !self.next_batch()? {
                return Ok(false);
            }
            if self.batch.is_empty() {
                return Ok(false);
            }
        }
        row.clear();
        row.extend(self.batch.iter_mut().map(|c| c[self.at].take()));
        self.at += 1;
        self.rows += 1;
        Ok(true)
    }

    /// The row's number in the file (1-based): Parquet has no lines.
    fn line(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_array::{RecordBatch, TimestampMicrosecondArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::config::{Format, Limits};

    /// `n` rows in row groups of `group` rows: id, name (every third NULL),
    /// at (UTC), ok, amount.
    fn file(n: i64, group: usize) -> Vec<u8> {
        let ids: Vec<i64> = (1..=n).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(ids.clone()))),
            (
                "name",
                Arc::new(StringArray::from(
                    ids.iter()
                        .map(|i| (i % 3 != 0).then(|| format!("n\t{i}")))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "at",
                Arc::new(
                    TimestampMicrosecondArray::from(
                        ids.iter()
                            .map(|i| 1_795_000_000_000_000 + i)
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            (
                "ok",
                Arc::new(BooleanArray::from(
                    ids.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
                )),
            ),
            (
                "amount",
                Arc::new(Float64Array::from(
                    ids.iter().map(|i| *i as f64 / 4.0).collect::<Vec<_>>(),
                )),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    fn spec() -> LoadSpec {
        LoadSpec {
            format: Format::Parquet,
            ..LoadSpec::default()
        }
    }

    fn read(bytes: Vec<u8>, spec: &LoadSpec) -> Result<(Vec<String>, Vec<Row>)> {
        let mut r = crate::format::open(Cursor::new(bytes), "in/f.parquet", spec)?;
        let mut rows = Vec::new();
        let mut row = Row::new();
        while r.next_row(&mut row)? {
            rows.push(row.clone());
        }
        Ok((r.columns().to_vec(), rows))
    }

    fn message(e: Error) -> String {
        match e {
            Error::Format { key, message } => {
                assert_eq!(key, "in/f.parquet");
                message
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn rows_come_out_as_text_across_row_groups_and_batches() {
        let (columns, rows) = read(file(2500, 1000), &spec()).unwrap();
        assert_eq!(columns, ["id", "name", "at", "ok", "amount"]);
        assert_eq!(rows.len(), 2500);
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r[0].as_deref().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ids, (1..=2500).collect::<Vec<_>>(), "every row, in order");
        assert_eq!(
            rows[1],
            [
                Some("2".into()),
                Some("n\t2".into()),
                Some("2026-11-18T11:06:40.000002Z".into()),
                Some("true".into()),
                Some("0.5".into())
            ]
        );
        assert_eq!(rows[2][1], None, "NULL stays NULL");
    }

    #[test]
    fn route_columns_pick_the_columns_read() {
        let spec = LoadSpec {
            columns: Some(vec!["amount".into(), "id".into()]),
            ..spec()
        };
        let (columns, rows) = read(file(5, 5), &spec).unwrap();
        assert_eq!(columns, ["id", "amount"], "in the file's order");
        assert_eq!(rows[3], [Some("4".into()), Some("1.0".into())]);
        let spec = LoadSpec {
            columns: Some(vec!["nope".into()]),
            ..spec
        };
        let e = message(read(file(5, 5), &spec).unwrap_err());
        assert!(e.contains("has no column \"nope\""), "{e}");
    }

    #[test]
    fn damaged_files_fail_with_a_named_reason() {
        let good = file(100, 50);
        for (bytes, want) in [
            (Vec::new(), "too short"),
            (good[..good.len() - 3].to_vec(), "does not end in PAR1"),
            (b"id,name\n1,a\n".repeat(3), "does not end in PAR1"),
            (
                [
                    b"PAR1".as_slice(),
                    &[0; 8],
                    &0xFFFF_FF00u32.to_le_bytes(),
                    b"PAR1",
                ]
                .concat(),
                "over limits.max_record_bytes",
            ),
            (
                [b"PAR1".as_slice(), &[0; 8], &4000u32.to_le_bytes(), b"PAR1"].concat(),
                "more than the file holds",
            ),
            (
                [&good[..good.len() / 2], &good[good.len() - 8..]].concat(),
                "",
            ),
        ] {
            let e = message(read(bytes, &spec()).unwrap_err());
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn any_damaged_byte_fails_the_file_or_reads_never_panics() {
        let good = file(300, 100);
        let mut failed = 0;
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x5A;
            match std::panic::catch_unwind(|| read(bad, &spec())) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    message(e);
                    failed += 1;
                }
                Err(_) => panic!("byte {i} of {} damaged: the reader panicked", good.len()),
            }
        }
        assert!(failed > 0, "some damage must be noticed");
    }

    #[test]
    fn a_row_group_over_the_limit_is_refused_before_decoding() {
        let spec = LoadSpec {
            limits: Limits {
                max_row_group_bytes: 1000,
                ..Limits::default()
            },
            ..spec()
        };
        let e = message(read(file(1000, 1000), &spec).unwrap_err());
        assert!(
            e.starts_with("row group 0 declares")
                && e.contains("limits.max_row_group_bytes (1000)"),
            "{e}"
        );
    }

    #[test]
    fn a_file_over_the_byte_limit_is_refused_while_copied() {
        let spec = LoadSpec {
            limits: Limits {
                max_decompressed_bytes: 100,
                ..Limits::default()
            },
            ..spec()
        };
        let e = message(read(file(100, 100), &spec).unwrap_err());
        assert!(
            e.contains("limits.max_decompressed_bytes (100 bytes)"),
            "{e}"
        );
    }
}
