//! File formats: bytes in, rows of optional text fields out.
//!
//! Everything here is synchronous and streaming: a reader pulls a few
//! hundred KB at a time through decompression and parsing, so memory does
//! not grow with the file. Callers run it on a blocking thread.
//!
//! Errors separate the file's fault from the transport's: a decode or parse
//! error is [`Error::Format`] (permanent, with the line), while an error
//! from the underlying object read is [`Error::Read`] (retryable).

mod csv;
mod jsonl;
#[cfg(feature = "netcdf")]
pub mod netcdf;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod validate;

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::{Compression, Format, LoadSpec};
use crate::error::{Error, Result};
use crate::store::Content;

/// One row: a value per column, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A stream of rows with known columns.
pub trait RecordReader: Send {
    /// The column names, in row order. Empty for an empty file.
    fn columns(&self) -> &[String];

    /// Reads the next row into `row`; `Ok(false)` at the end.
    fn next_row(&mut self, row: &mut Row) -> Result<bool>;

    /// The physical line the last row read starts on (1-based); 0 where
    /// lines mean nothing.
    fn line(&self) -> u64 {
        0
    }

    /// The last row read as its JSON object, where the reader was asked to
    /// keep it ([`JSON_SCHEMA`](crate::config::Schema::json_schema) rules
    /// need the types the row's text loses).
    fn record(&self) -> Option<&serde_json::Value> {
        None
    }

    /// The table the last row read goes to, where a route fills its table
    /// from each record (`table_fields`); `None` where the batch's table
    /// holds every row.
    fn table(&self) -> Option<&str> {
        None
    }
}

const BUFFER: usize = 256 * 1024;

/// Opens `raw` (the object's bytes) as records according to `spec`, its
/// compression from the key's extension.
pub fn open(
    raw: impl Read + Send + 'static,
    key: &str,
    spec: &LoadSpec,
) -> Result<Box<dyn RecordReader>> {
    open_as(raw, key, spec, compression_of(key, spec.compression))
}

/// [`open`] with the compression already decided ([`compression_for`]).
pub fn open_as(
    raw: impl Read + Send + 'static,
    key: &str,
    spec: &LoadSpec,
    compression: Compression,
) -> Result<Box<dyn RecordReader>> {
    let failed = Arc::new(AtomicBool::new(false));
    let source = Tagged {
        inner: raw,
        failed: failed.clone(),
    };
    let ctx = Ctx {
        key: key.to_owned(),
        source_failed: failed,
    };
    let limits = &spec.limits;
    // Parquet's codecs are inside the file.
    let compression = if spec.format == Format::Parquet {
        Compression::None
    } else {
        compression
    };
    let decoded: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(Capped::new(
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUFFER, source)),
            limits.max_decompressed_bytes,
        )),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUFFER, source))
                    .map_err(|e| ctx.io(e, 0))?;
            // A frame may ask for a window of up to 2 GiB; refuse one larger
            // than the limit before it is allocated.
            decoder
                .window_log_max(limits.zstd_window_log_max)
                .map_err(|e| ctx.io(e, 0))?;
            Box::new(Capped::new(decoder, limits.max_decompressed_bytes))
        }
        Compression::None | Compression::Auto => Box::new(source),
    };
    let decoded = BufReader::with_capacity(BUFFER, decoded);
    match spec.format {
        Format::Csv => Ok(Box::new(csv::CsvRecords::new(decoded, ctx, spec)?)),
        Format::Jsonl => Ok(Box::new(jsonl::JsonlRecords::new(decoded, ctx, spec)?)),
        // Config validation sends netCDF only to DynamoDB, which reads it
        // with `netcdf::read`; reaching here is a config bug, named as such.
        Format::Netcdf => Err(Error::Format {
            key: key.to_owned(),
            message: "netcdf files have no rows: route them to a dynamodb destination".into(),
        }),
        // Parquet needs to seek: it is read from a local copy.
        Format::Parquet => open_parquet(decoded, key, spec),
    }
}

#[cfg(feature = "parquet")]
fn open_parquet(
    raw: impl Read + Send + 'static,
    key: &str,
    spec: &LoadSpec,
) -> Result<Box<dyn RecordReader>> {
    parquet::open(raw, key, spec)
}

#[cfg(not(feature = "parquet"))]
fn open_parquet(
    _raw: impl Read + Send + 'static,
    key: &str,
    _spec: &LoadSpec,
) -> Result<Box<dyn RecordReader>> {
    Err(Error::Format {
        key: key.to_owned(),
        message: "this binary was built without Parquet (cargo feature \"parquet\")".into(),
    })
}

/// The compression an object is read with: a configured one as is; with
/// `auto`, what its `Content-Encoding` or `Content-Type` names (`gzip`,
/// `x-gzip`, `zstd`; `application/gzip`, `application/x-gzip`,
/// `application/zstd`), else its key's extension. The headers come first:
/// a producer that says how it encoded the bytes knows better than a name.
pub fn compression_for(key: &str, configured: Compression, content: &Content) -> Compression {
    if configured != Compression::Auto {
        return configured;
    }
    let named = |v: &Option<String>| {
        let v = v.as_deref()?.split(';').next()?.trim().to_ascii_lowercase();
        match v.as_str() {
            "gzip" | "x-gzip" | "application/gzip" | "application/x-gzip" => {
                Some(Compression::Gzip)
            }
            "zstd" | "application/zstd" => Some(Compression::Zstd),
            _ => None,
        }
    };
    named(&content.encoding)
        .or_else(|| named(&content.content_type))
        .unwrap_or_else(|| compression_of(key, configured))
}

/// The compression a key is read with, by its extension alone.
pub fn compression_of(key: &str, configured: Compression) -> Compression {
    match configured {
        Compression::Auto => {
            let lower = key.to_ascii_lowercase();
            if lower.ends_with(".gz") || lower.ends_with(".gzip") {
                Compression::Gzip
            } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
                Compression::Zstd
            } else {
                Compression::None
            }
        }
        other => other,
    }
}

/// Remembers whether the object read itself failed, so a later decode
/// error can be told apart from a transport error.
struct Tagged<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// A limit the input went past; carried inside an `io::Error` so the
/// readers above name it as the file's fault.
#[derive(Debug)]
struct LimitExceeded(String);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// Fails the read once more than `max` decompressed bytes came out: a
/// decompression bomb stops at the limit.
struct Capped<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R> Capped<R> {
    fn new(inner: R, max: u64) -> Self {
        Self {
            inner,
            left: max,
            max,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(io::Error::other(LimitExceeded(format!(
                "decompresses to more than limits.max_decompressed_bytes ({} bytes): a decompression bomb?",
                self.max
            )))),
        }
    }
}

/// What a reader needs to build its errors.
struct Ctx {
    key: String,
    source_failed: Arc<AtomicBool>,
}

impl Ctx {
    fn format(&self, line: u64, message: impl std::fmt::Display) -> Error {
        Error::Format {
            key: self.key.clone(),
            message: if line > 0 {
                format!("line {line}: {message}")
            } else {
                message.to_string()
            },
        }
    }

    fn io(&self, e: io::Error, line: u64) -> Error {
        if self.source_failed.load(Ordering::Relaxed) {
            return Error::Read {
                key: self.key.clone(),
                source: e,
            };
        }
        if let Some(limit) = e.get_ref().and_then(|r| r.downcast_ref::<LimitExceeded>()) {
            return self.format(line, limit);
        }
        let what = match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the compressed stream ends early (truncated file?)".to_owned()
            }
            // zstd refuses a frame whose window is over the limit.
            _ if e.to_string().contains("too much memory") => format!(
                "the zstd frame needs a window larger than limits.zstd_window_log_max allows ({e})"
            ),
            io::ErrorKind::InvalidData => format!("invalid data: {e}"),
            _ => format!("cannot decode: {e}"),
        };
        self.format(line, what)
    }
}

/// Checks column names from a header or a config.
fn check_columns(ctx: &Ctx, columns: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, c) in columns.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(ctx.format(1, format!("column {} has an empty name", i + 1)));
        }
        if !seen.insert(c) {
            return Err(ctx.format(1, format!("column {c:?} appears twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
