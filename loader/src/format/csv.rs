//! CSV with configurable delimiter, quote, header and NULL marker.

use std::io::Read;

use super::{check_columns, Ctx, RecordReader, Row};
use crate::config::LoadSpec;
use crate::error::{Error, Result};

pub(super) struct CsvRecords<R> {
    reader: ::csv::Reader<R>,
    record: ::csv::StringRecord,
    columns: Vec<String>,
    null: String,
    ctx: Ctx,
}

impl<R: Read + Send> CsvRecords<R> {
    pub(super) fn new(input: R, ctx: Ctx, spec: &LoadSpec) -> Result<Self> {
        let opts = &spec.csv;
        let mut reader = ::csv::ReaderBuilder::new()
            .delimiter(opts.delimiter as u8)
            .quote(opts.quote as u8)
            .has_headers(opts.header)
            // We check lengths ourselves, against the columns, with a message
            // that names the line.
            .flexible(true)
            .from_reader(input);
        let columns = if opts.header {
            let header = reader.headers().map_err(|e| csv_error(&ctx, e))?;
            match &spec.columns {
                Some(cols) if !header.is_empty() && header.len() != cols.len() => {
                    return Err(ctx.format(
                        1,
                        format!(
                            "header has {} fields but columns lists {}",
                            header.len(),
                            cols.len()
                        ),
                    ))
                }
                Some(cols) if !header.is_empty() => cols.clone(),
                Some(_) => Vec::new(),
                None => header.iter().map(str::to_owned).collect(),
            }
        } else {
            spec.columns.clone().unwrap_or_default()
        };
        check_columns(&ctx, &columns)?;
        Ok(Self {
            reader,
            record: ::csv::StringRecord::new(),
            columns,
            null: opts.null.clone(),
            ctx,
        })
    }
}

fn csv_error(ctx: &Ctx, e: ::csv::Error) -> Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => ctx.io(io, line),
        ::csv::ErrorKind::Utf8 { err, .. } => ctx.format(
            line,
            format!("field {} is not valid UTF-8", err.field() + 1),
        ),
        other => ctx.format(line, format!("{other:?}")),
    }
}

impl<R: Read + Send> RecordReader for CsvRecords<R> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        if !self
            .reader
            .read_record(&mut self.record)
            .map_err(|e| csv_error(&self.ctx, e))?
        {
            return Ok(false);
        }
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        if self.record.len() != self.columns.len() {
            return Err(self.ctx.format(
                line,
                format!(
                    "expected {} fields ({}), found {}",
                    self.columns.len(),
                    self.columns.join(", "),
                    self.record.len()
                ),
            ));
        }
        row.clear();
        row.extend(
            self.record
                .iter()
                .map(|f| (f != self.null).then(|| f.to_owned())),
        );
        Ok(true)
    }
}
