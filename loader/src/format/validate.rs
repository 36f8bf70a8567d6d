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

/// Checks every record of `inner` against the route's schema, and finds
/// the table each goes to when the route fills its table from a field.
pub struct Validating {
    inner: Box<dyn RecordReader>,
    key: String,
    on_invalid: OnInvalid,
    max_rejected: u64,
    /// The schema's rule for each of the file's columns, in order.
    rules: Vec<Option<ColumnRule>>,
    /// Required columns the file does not have at all.
    missing: Vec<String>,
    tables: Option<Tables>,
    /// The route's JSON Schema, compiled.
    json: Option<JsonSchema>,
    rejections: Rejections,
}

#[cfg(feature = "json-schema")]
type JsonSchema = jsonschema::Validator;
#[cfg(not(feature = "json-schema"))]
type JsonSchema = std::convert::Infallible;

/// Compiles a route's JSON Schema; the error says what is wrong with it.
#[cfg(feature = "json-schema")]
pub fn compile_json_schema(text: &str) -> std::result::Result<JsonSchema, String> {
    let schema: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    jsonschema::validator_for(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))
}

/// Without the `json-schema` feature, a schema is checked as JSON only; a
/// loader built so refuses it when it loads (none of the row destinations
/// is built without it).
#[cfg(not(feature = "json-schema"))]
pub fn compile_json_schema(text: &str) -> std::result::Result<(), String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(drop)
        .map_err(|e| format!("not JSON: {e}"))
}

/// A table template filled from each record's fields.
struct Tables {
    template: String,
    fields: Vec<Field>,
    /// The last record's table.
    current: String,
}

/// One placeholder's field: the column it is in, and the path within that
/// column's JSON object (empty for the column's own value).
struct Field {
    placeholder: String,
    name: String,
    column: Option<usize>,
    path: Vec<String>,
}

impl Field {
    fn new(placeholder: &str, name: &str, columns: &[String]) -> Self {
        // A column whose name holds the dots wins over a path into one.
        let (column, path) = match columns.iter().position(|c| c == name) {
            Some(i) => (Some(i), Vec::new()),
            None => {
                let (head, rest) = name.split_once('.').unwrap_or((name, ""));
                let path = rest
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                (columns.iter().position(|c| c == head), path)
            }
        };
        Self {
            placeholder: placeholder.to_owned(),
            name: name.to_owned(),
            column,
            path,
        }
    }

    /// The field's value in `row`, or why there is none to use.
    fn value(&self, row: &Row) -> std::result::Result<String, String> {
        let Some(Some(text)) = self.column.map(|i| &row[i]) else {
            return Err(match self.column {
                None => "the file has no such field".into(),
                Some(_) => "is null".into(),
            });
        };
        if self.path.is_empty() {
            return Ok(text.clone());
        }
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|_| "is not inside a JSON object".to_owned())?;
        let mut at = &json;
        for p in &self.path {
            at = at.get(p).ok_or_else(|| "is missing".to_owned())?;
        }
        match at {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            serde_json::Value::Null => Err("is null".into()),
            _ => Err("is not a string".into()),
        }
    }
}

impl Validating {
    /// Checks `inner` against `schema`, if any, and fills `table`'s
    /// placeholders from `table_fields`, if any.
    pub fn new(
        inner: Box<dyn RecordReader>,
        key: &str,
        schema: Option<&Schema>,
        table: &str,
        table_fields: &BTreeMap<String, String>,
    ) -> (Self, Rejections) {
        let columns = inner.columns();
        let rules = columns
            .iter()
            .map(|c| schema.and_then(|s| s.columns.get(c)).cloned())
            .collect();
        let missing = schema
            .map(|s| {
                s.columns
                    .iter()
                    .filter(|(name, rule)| rule.required && !columns.contains(name))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let tables = (!table_fields.is_empty()).then(|| Tables {
            template: table.to_owned(),
            fields: table_fields
                .iter()
                .map(|(p, name)| Field::new(p, name, columns))
                .collect(),
            current: String::new(),
        });
        #[cfg(feature = "json-schema")]
        let json = schema
            .and_then(|s| s.json_schema.as_deref())
            .and_then(|text| compile_json_schema(text).ok());
        #[cfg(not(feature = "json-schema"))]
        let json = None;
        let rejections = Rejections::default();
        let this = Self {
            json,
            inner,
            key: key.to_owned(),
            on_invalid: schema.map_or(OnInvalid::Reject, |s| s.on_invalid),
            max_rejected: schema
                .map_or_else(crate::config::default_max_rejected, |s| s.max_rejected),
            rules,
            missing,
            tables,
            rejections: rejections.clone(),
        };
        (this, rejections)
    }

    /// Why `row` breaks a rule, if it does.
    fn check(&self, row: &Row) -> Option<String> {
        if let Some(reason) = self.check_json() {
            return Some(reason);
        }
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

    /// Why the record as parsed breaks the route's JSON Schema: the first
    /// error, with where in the record it is.
    #[cfg(feature = "json-schema")]
    fn check_json(&self) -> Option<String> {
        let (schema, record) = (self.json.as_ref()?, self.inner.record()?);
        let error = schema.iter_errors(record).next()?;
        let at = error.instance_path().to_string();
        Some(if at.is_empty() {
            format!("json schema: {error}")
        } else {
            format!("json schema: at {at}: {error}")
        })
    }

    #[cfg(not(feature = "json-schema"))]
    fn check_json(&self) -> Option<String> {
        self.json.map(|never| match never {})
    }

    /// The table `row` goes to, or why it cannot go to any.
    fn table_of(tables: &Tables, row: &Row) -> std::result::Result<String, String> {
        let mut values = Vec::with_capacity(tables.fields.len());
        for f in &tables.fields {
            let v = f
                .value(row)
                .map_err(|why| format!("field {:?} (fills {{{}}}) {why}", f.name, f.placeholder))?;
            values.push((f.placeholder.as_str(), v));
        }
        crate::template::fill(&tables.template, |name| {
            values
                .iter()
                .find(|(p, _)| *p == name)
                .map(|(_, v)| v.as_str())
        })
        .map_err(|why| format!("field {why}: the record has no table"))
    }
}

impl RecordReader for Validating {
    fn columns(&self) -> &[String] {
        self.inner.columns()
    }

    fn line(&self) -> u64 {
        self.inner.line()
    }

    fn table(&self) -> Option<&str> {
        self.tables.as_ref().map(|t| t.current.as_str())
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        loop {
            if !self.inner.next_row(row)? {
                return Ok(false);
            }
            let mut reason = self.check(row);
            if let (None, Some(tables)) = (&reason, &mut self.tables) {
                match Self::table_of(tables, row) {
                    Ok(table) => tables.current = table,
                    Err(why) => reason = Some(why),
                }
            }
            let Some(reason) = reason else {
                return Ok(true);
            };
            let line = self.inner.line();
            let at = if line > 0 {
                format!("line {line}: ")
            } else {
                String::new()
            };
            if self.on_invalid == OnInvalid::FailFile {
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
            if n > self.max_rejected {
                return Err(Error::Format {
                    key: self.key.clone(),
                    message: format!(
                        "more than max_rejected ({}) records break the route's schema or have no table; the last, {at}{reason}",
                        self.max_rejected
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
