//! Record rules (`[route.schema]`): a reader that passes the records that
//! keep them and sets the others aside with their line and reason, or
//! fails the file on the first, as the route says.
//!
//! The rejects are kept in memory until the destination writes them out
//! (`rejected/<path>.jsonl`, before its commit), so `max_rejected` bounds
//! them: past it the file fails, naming the limit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{RecordReader, Row};
use crate::config::{ColumnRule, ColumnType, OnInvalid, Schema};
use crate::error::{Error, Result};

/// One record set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The physical line the record starts on (1-based).
    pub line: u64,
    pub reason: String,
    /// The record as read: its values by column (`null` for NULL).
    pub record: BTreeMap<String, Option<String>>,
}

/// The records one file set aside, shared by its reader and whoever
/// writes them out.
#[derive(Debug, Clone, Default)]
pub struct Rejections(Arc<Mutex<Vec<Rejected>>>);

impl Rejections {
    pub fn count(&self) -> u64 {
        self.0.lock().expect("not poisoned").len() as u64
    }

    /// The rejects as JSON Lines, in file order; `None` if there are none.
    pub fn jsonl(&self) -> Option<Vec<u8>> {
        let rejects = self.0.lock().expect("not poisoned");
        if rejects.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for r in rejects.iter() {
            serde_json::to_writer(&mut out, r).expect("rejects serialise");
            out.push(b'\n');
        }
        Some(out)
    }

    fn push(&self, r: Rejected) -> u64 {
        let mut rejects = self.0.lock().expect("not poisoned");
        rejects.push(r);
        rejects.len() as u64
    }
}

/// Checks every record of `inner` against `schema`.
pub struct Validating {
    inner: Box<dyn RecordReader>,
    key: String,
    schema: Schema,
    /// The schema's rule for each of the file's columns, in order.
    rules: Vec<Option<ColumnRule>>,
    /// Required columns the file does not have at all.
    missing: Vec<String>,
    rejections: Rejections,
}

impl Validating {
    pub fn new(inner: Box<dyn RecordReader>, key: &str, schema: &Schema) -> (Self, Rejections) {
        let rules = inner
            .columns()
            .iter()
            .map(|c| schema.columns.get(c).cloned())
            .collect();
        let missing = schema
            .columns
            .iter()
            .filter(|(name, rule)| rule.required && !inner.columns().contains(name))
            .map(|(name, _)| name.clone())
            .collect();
        let rejections = Rejections::default();
        let this = Self {
            inner,
            key: key.to_owned(),
            schema: schema.clone(),
            rules,
            missing,
            rejections: rejections.clone(),
        };
        (this, rejections)
    }

    /// Why `row` breaks a rule, if it does.
    fn check(&self, row: &Row) -> Option<String> {
        if let Some(name) = self.missing.first() {
            return Some(format!(
                "column {name:?} is required and the file has no such column"
            ));
        }
        for ((rule, value), name) in self.rules.iter().zip(row).zip(self.inner.columns()) {
            let Some(rule) = rule else { continue };
            let Some(value) = value else {
                if rule.required {
                    return Some(format!("column {name:?} is required and is null"));
                }
                continue;
            };
            if let Some(kind) = rule.kind {
                if !is(kind, value) {
                    return Some(format!(
                        "column {name:?}: {} is not {}",
                        shown(value),
                        kind_name(kind)
                    ));
                }
            }
            if let Some(allowed) = &rule.allowed {
                if !allowed.iter().any(|a| a == value) {
                    return Some(format!(
                        "column {name:?}: {} is not one of the allowed values ({})",
                        shown(value),
                        allowed.join(", ")
                    ));
                }
            }
        }
        None
    }
}

impl RecordReader for Validating {
    fn columns(&self) -> &[String] {
        self.inner.columns()
    }

    fn line(&self) -> u64 {
        self.inner.line()
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        loop {
            if !self.inner.next_row(row)? {
                return Ok(false);
            }
            let Some(reason) = self.check(row) else {
                return Ok(true);
            };
            let line = self.inner.line();
            let at = if line > 0 {
                format!("line {line}: ")
            } else {
                String::new()
            };
            if self.schema.on_invalid == OnInvalid::FailFile {
                return Err(Error::Format {
                    key: self.key.clone(),
                    message: format!("{at}{reason} (route schema, on_invalid = \"fail_file\")"),
                });
            }
            let record = self
                .inner
                .columns()
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .collect();
            let n = self.rejections.push(Rejected {
                line,
                reason: reason.clone(),
                record,
            });
            if n > self.schema.max_rejected {
                return Err(Error::Format {
                    key: self.key.clone(),
                    message: format!(
                        "more than max_rejected ({}) records break the route's schema; the last, {at}{reason}",
                        self.schema.max_rejected
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
pub(crate) fn is_number(v: &str) -> bool {
    is(ColumnType::Number, v)
}

fn is(kind: ColumnType, v: &str) -> bool {
    match kind {
        ColumnType::String => true,
        ColumnType::Integer => v.parse::<i64>().is_ok(),
        // Decimal or scientific; not inf or NaN (which f64 would take),
        // nor a value too large to be finite.
        ColumnType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        ColumnType::Boolean => v == "true" || v == "false",
        ColumnType::Timestamp => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
    }
}

fn kind_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::String => "a string",
        ColumnType::Integer => "an integer",
        ColumnType::Number => "a number",
        ColumnType::Boolean => "true or false",
        ColumnType::Timestamp => "an RFC 3339 timestamp",
    }
}

/// A value in a reason: quoted, and cut at 80 characters.
fn shown(v: &str) -> String {
    match v.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}…", &v[..i]),
        None => format!("{v:?}"),
    }
}
