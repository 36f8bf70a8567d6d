//! CSV with configurable delimiter, quote, header and NULL marker, read as
//! PostgreSQL's `COPY ... (FORMAT csv)` reads it:
//!
//! * a quote opens quoted text anywhere in a field and the next lone quote
//!   closes it; a doubled quote inside is a literal quote;
//! * only an *unquoted* field equal to `null` is NULL: `""` is an empty
//!   string;
//! * a quote still open at the end of the file fails the file, naming the
//!   line where it opened (rather than loading the rest as one value);
//! * records end at `\n`, `\r\n` or `\r` outside quotes; blank lines are
//!   skipped.
//!
//! A record longer than `limits.max_record_bytes` fails the file: memory
//! is bounded by the limit, never by the input (a 2 GiB line is refused
//! after reading `max_record_bytes` of it).

use std::io::BufRead;

use super::{check_columns, Ctx, RecordReader, Row};
use crate::config::LoadSpec;
use crate::error::Result;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside quotes.
    Plain,
    /// Inside quotes.
    Quoted,
    /// A quote seen inside quotes: a second one is a literal quote,
    /// anything else closed the quoted text.
    QuoteInQuoted,
}

pub(super) struct CsvRecords<R> {
    input: R,
    delimiter: u8,
    quote: u8,
    columns: Vec<String>,
    null: String,
    ctx: Ctx,
    max_record: usize,
    /// The physical line the next byte is on (1-based).
    line: u64,
    /// The line the last record started on.
    last: u64,
    /// A `\r` ended the last record: skip one `\n` right after it.
    skip_lf: bool,
    /// The current record's field bytes, end offsets and quotedness.
    buf: Vec<u8>,
    ends: Vec<usize>,
    quoted: Vec<bool>,
    /// Copy runs of ordinary bytes whole (always, but in the test that
    /// checks it against reading one byte at a time).
    runs: bool,
    /// The bytes that end such a run, outside and inside quotes (inside,
    /// `\n` only to count lines).
    plain_special: [bool; 256],
    quoted_special: [bool; 256],
}

fn special(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    for &b in bytes {
        table[usize::from(b)] = true;
    }
    table
}

impl<R: BufRead + Send> CsvRecords<R> {
    pub(super) fn new(input: R, ctx: Ctx, spec: &LoadSpec) -> Result<Self> {
        let opts = &spec.csv;
        let mut this = Self {
            input,
            delimiter: opts.delimiter as u8,
            quote: opts.quote as u8,
            columns: Vec::new(),
            null: opts.null.clone(),
            ctx,
            max_record: usize::try_from(spec.limits.max_record_bytes).unwrap_or(usize::MAX),
            line: 1,
            last: 0,
            skip_lf: false,
            buf: Vec::new(),
            ends: Vec::new(),
            quoted: Vec::new(),
            runs: true,
            plain_special: special(&[opts.delimiter as u8, opts.quote as u8, b'\n', b'\r']),
            quoted_special: special(&[opts.quote as u8, b'\n']),
        };
        this.skip_bom()?;
        this.columns = if opts.header {
            let header: Vec<String> = match this.read_record()? {
                Some(_) => (0..this.ends.len())
                    .map(|i| this.field(i, 1).map(str::to_owned))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            };
            match &spec.columns {
                Some(cols) if !header.is_empty() && header.len() != cols.len() => {
                    return Err(this.ctx.format(
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
                None => header,
            }
        } else {
            spec.columns.clone().unwrap_or_default()
        };
        check_columns(&this.ctx, &this.columns)?;
        Ok(this)
    }

    /// This reader, reading one byte at a time from the next record on:
    /// the plain algorithm the runs must agree with.
    #[cfg(test)]
    pub(super) fn byte_at_a_time(mut self) -> Self {
        self.runs = false;
        self
    }

    fn skip_bom(&mut self) -> Result<()> {
        let head = self.input.fill_buf().map_err(|e| self.ctx.io(e, 1))?;
        if head.starts_with(b"\xEF\xBB\xBF") {
            self.input.consume(3);
        }
        Ok(())
    }

    /// Field `i` of the current record as text.
    fn field(&self, i: usize, line: u64) -> Result<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.buf[start..self.ends[i]]).map_err(|_| {
            self.ctx
                .format(line, format!("field {} is not valid UTF-8", i + 1))
        })
    }

    /// Reads the next record into `buf`/`ends`/`quoted`; returns the line
    /// it starts on, or `None` at the end of the input.
    fn read_record(&mut self) -> Result<Option<u64>> {
        self.buf.clear();
        self.ends.clear();
        self.quoted.clear();
        let (delimiter, quote) = (self.delimiter, self.quote);
        let mut state = State::Plain;
        let mut field_quoted = false;
        let mut start = self.line;
        let mut quote_line = 0;
        // Bytes of the record so far, separators included: what the limit
        // is about.
        let mut size = 0usize;
        loop {
            let line = self.line;
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) => return Err(self.ctx.io(e, line)),
            };
            if chunk.is_empty() {
                return match state {
                    State::Quoted => Err(self.ctx.format(
                        quote_line,
                        "a quoted field opened on this line is never closed (unterminated quote at the end of the file)",
                    )),
                    _ if size == 0 && !field_quoted && self.ends.is_empty() => Ok(None),
                    _ => {
                        self.ends.push(self.buf.len());
                        self.quoted.push(field_quoted);
                        Ok(Some(start))
                    }
                };
            }
            let mut used = 0;
            let mut done = false;
            let mut too_long = false;
            while used < chunk.len() {
                let b = chunk[used];
                // A run of ordinary bytes (most of any field) is copied
                // whole; only the bytes that change state go one at a time.
                if self.runs && !self.skip_lf && state != State::QuoteInQuoted {
                    let special = if state == State::Plain {
                        &self.plain_special
                    } else {
                        &self.quoted_special
                    };
                    let run = chunk[used..]
                        .iter()
                        .position(|&c| special[usize::from(c)])
                        .unwrap_or(chunk.len() - used);
                    if run > 0 {
                        // Never hold more than the limit, whatever the run.
                        let take = run.min(self.max_record.saturating_add(1) - size);
                        self.buf.extend_from_slice(&chunk[used..used + take]);
                        used += take;
                        size += take;
                        if size > self.max_record {
                            too_long = true;
                            break;
                        }
                        continue;
                    }
                }
                used += 1;
                if self.skip_lf {
                    self.skip_lf = false;
                    if b == b'\n' {
                        continue;
                    }
                }
                if state == State::QuoteInQuoted {
                    if b == quote {
                        self.buf.push(quote);
                        size += 1;
                        state = State::Quoted;
                        continue;
                    }
                    state = State::Plain;
                }
                match state {
                    State::Quoted => {
                        if b == quote {
                            state = State::QuoteInQuoted;
                        } else {
                            if b == b'\n' {
                                self.line += 1;
                            }
                            self.buf.push(b);
                        }
                    }
                    _ if b == b'\n' || b == b'\r' => {
                        self.line += 1;
                        self.skip_lf = b == b'\r';
                        if size == 0 && !field_quoted && self.ends.is_empty() {
                            // A blank line: not a record.
                            start = self.line;
                            continue;
                        }
                        self.ends.push(self.buf.len());
                        self.quoted.push(field_quoted);
                        done = true;
                        break;
                    }
                    _ if b == delimiter => {
                        self.ends.push(self.buf.len());
                        self.quoted.push(field_quoted);
                        field_quoted = false;
                    }
                    _ if b == quote => {
                        state = State::Quoted;
                        field_quoted = true;
                        quote_line = self.line;
                    }
                    _ => self.buf.push(b),
                }
                size += 1;
                if size > self.max_record {
                    too_long = true;
                    break;
                }
            }
            self.input.consume(used);
            if too_long {
                return Err(self.ctx.format(
                    start,
                    format!(
                        "record longer than limits.max_record_bytes ({} bytes){}",
                        self.max_record,
                        if state == State::Quoted {
                            " inside a quoted field: an unclosed quote?"
                        } else {
                            ": no end of line within the limit"
                        }
                    ),
                ));
            }
            if done {
                return Ok(Some(start));
            }
        }
    }
}

impl<R: BufRead + Send> RecordReader for CsvRecords<R> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    // The line the last record *started* on: `self.line` has moved past it.
    #[allow(clippy::misnamed_getters)]
    fn line(&self) -> u64 {
        self.last
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        let Some(line) = self.read_record()? else {
            return Ok(false);
        };
        self.last = line;
        if self.ends.len() != self.columns.len() {
            return Err(self.ctx.format(
                line,
                format!(
                    "expected {} fields ({}), found {}",
                    self.columns.len(),
                    self.columns.join(", "),
                    self.ends.len()
                ),
            ));
        }
        // The row's strings are reused: no allocation per field once the
        // first rows have sized them.
        row.resize(self.ends.len(), None);
        for (i, slot) in row.iter_mut().enumerate() {
            let text = self.field(i, line)?;
            // Only an unquoted field can be NULL, as in PostgreSQL's CSV.
            if !self.quoted[i] && text == self.null {
                *slot = None;
            } else if let Some(value) = slot {
                value.clear();
                value.push_str(text);
            } else {
                *slot = Some(text.to_owned());
            }
        }
        Ok(true)
    }
}
