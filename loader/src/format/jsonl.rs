//! JSON Lines: one object per line; blank lines are skipped.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use serde_json::{Map, Value};

use super::{check_columns, Ctx, RecordReader, Row};
use crate::config::LoadSpec;
use crate::error::Result;

pub(super) struct JsonlRecords<R> {
    input: R,
    line: u64,
    max_record: u64,
    buf: Vec<u8>,
    /// The first object, read early to learn the columns from its keys.
    pending: Option<Map<String, Value>>,
    columns: Vec<String>,
    index: HashMap<String, usize>,
    ctx: Ctx,
    /// The last object read, kept whole when a JSON Schema will check it.
    last: Option<Value>,
    keep: bool,
}

impl<R: BufRead + Send> JsonlRecords<R> {
    pub(super) fn new(input: R, ctx: Ctx, spec: &LoadSpec) -> Result<Self> {
        let mut this = Self {
            input,
            line: 0,
            max_record: spec.limits.max_record_bytes,
            buf: Vec::new(),
            pending: None,
            columns: Vec::new(),
            index: HashMap::new(),
            ctx,
            last: None,
            keep: spec
                .schema
                .as_ref()
                .is_some_and(|s| s.json_schema.is_some()),
        };
        this.columns = match &spec.columns {
            Some(cols) => cols.clone(),
            None => {
                this.pending = this.read_object()?;
                this.pending
                    .as_ref()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            }
        };
        check_columns(&this.ctx, &this.columns)?;
        this.index = this
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Ok(this)
    }

    fn read_object(&mut self) -> Result<Option<Map<String, Value>>> {
        loop {
            self.buf.clear();
            // At most one byte over the limit is read: a 2 GiB line costs
            // max_record_bytes of memory, not 2 GiB.
            let n = (&mut self.input)
                .take(self.max_record + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| self.ctx.io(e, self.line + 1))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if n as u64 > self.max_record {
                return Err(self.ctx.format(
                    self.line,
                    format!(
                        "line longer than limits.max_record_bytes ({} bytes)",
                        self.max_record
                    ),
                ));
            }
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Err(self.ctx.format(self.line, "not valid UTF-8"));
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(Some(map)),
                Ok(other) => Err(self.ctx.format(
                    self.line,
                    format!("expected a JSON object, found {}", kind(&other)),
                )),
                Err(e) => Err(self.ctx.format(self.line, format!("invalid JSON: {e}"))),
            };
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<R: BufRead + Send> RecordReader for JsonlRecords<R> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn line(&self) -> u64 {
        self.line
    }

    fn record(&self) -> Option<&Value> {
        self.last.as_ref()
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        let object = match self.pending.take() {
            Some(o) => o,
            None => match self.read_object()? {
                Some(o) => o,
                None => return Ok(false),
            },
        };
        row.clear();
        row.resize(self.columns.len(), None);
        if self.keep {
            self.last = Some(Value::Object(object.clone()));
        }
        for (k, v) in object {
            let Some(&i) = self.index.get(&k) else {
                return Err(self.ctx.format(
                    self.line,
                    format!(
                        "field {k:?} is not one of the columns ({})",
                        self.columns.join(", ")
                    ),
                ));
            };
            row[i] = match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                // Nested values are kept as JSON text.
                other => Some(other.to_string()),
            };
        }
        Ok(true)
    }
}
