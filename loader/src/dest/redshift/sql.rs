//! The statements of one Redshift load, and the two objects they read.
//!
//! Keys reach Redshift three ways: in the manifest (JSON, written by
//! serde), in lookups as Data API parameters, and in the load's file list,
//! `INSERT … VALUES` string literals escaped by [`literal`] (a property
//! test checks that no key can end its literal early). Table and column
//! names come only from the config (validated, then quoted as
//! identifiers); the role ARN and CSV options are validated to hold no `'`
//! or `\`, and escaped anyway.

use serde::Serialize;

use crate::config::{Compression, Format, LoadSpec};
use crate::contract::FileTask;
use crate::dest::{column_list, quote_table, LEDGER_TABLE};
use crate::format::compression_of;

/// The session's stage tables: temporary, gone with the session.
const STAGE: &str = "s3loader_stage";
const FILES: &str = "s3loader_files";

/// The ledger, as Redshift holds it. No key is enforced there (Redshift
/// does not enforce primary keys): the load's statements refuse a second
/// load themselves.
pub fn create_ledger() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
             object_key VARCHAR(4096) NOT NULL,
             etag       VARCHAR(256)  NOT NULL,
             table_name VARCHAR(512)  NOT NULL,
             batch_id   VARCHAR(256)  NOT NULL,
             loaded_at  TIMESTAMP     NOT NULL DEFAULT GETDATE()
         )"
    )
}

/// A string literal: `'` doubled, and `\` doubled because Redshift reads a
/// backslash in a literal as an escape.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// One COPY: the files of the batch that share a reading spec and a
/// compression, listed in one manifest.
#[derive(Debug)]
pub struct Copy {
    pub spec: LoadSpec,
    pub compression: Compression,
    pub files: Vec<FileTask>,
}

/// Groups `files` (in order) by how Redshift must read them: a COPY takes
/// one format and one compression for all its files.
pub fn copies(files: &[FileTask]) -> Vec<Copy> {
    let mut out: Vec<Copy> = Vec::new();
    for f in files {
        let compression = compression_of(&f.key, f.spec.compression);
        match out
            .iter_mut()
            .find(|c| c.spec == f.spec && c.compression == compression)
        {
            Some(c) => c.files.push(f.clone()),
            None => out.push(Copy {
                spec: f.spec.clone(),
                compression,
                files: vec![f.clone()],
            }),
        }
    }
    out
}

/// The Data API takes at most 40 statements in a batch and 100 KB in
/// one; the file list gets at most this many of this size.
const LIST_STATEMENTS: usize = 30;
const LIST_STATEMENT_BYTES: usize = 60 * 1024;

/// The list entry of one file: `('key', 'etag')`.
fn list_entry(f: &FileTask) -> String {
    format!("({}, {})", literal(&f.key), literal(&f.etag))
}

/// How many of `files`, from the first, one attempt can list (at least
/// one: a key is at most 1 KiB).
pub fn fits(files: &[FileTask]) -> usize {
    let budget = LIST_STATEMENTS * LIST_STATEMENT_BYTES;
    let mut used = 0;
    files
        .iter()
        .take_while(|f| {
            used += list_entry(f).len() + 2;
            used <= budget
        })
        .count()
        .max(1)
}

/// What one attempt at a batch runs, and where its objects are.
#[derive(Debug)]
pub struct Load<'a> {
    pub bucket: &'a str,
    /// `manifests/` in the bucket.
    pub prefix: &'a str,
    /// Unique per attempt; the ledger rows carry it.
    pub attempt: &'a str,
    pub table: &'a str,
    pub iam_role: &'a str,
    pub max_errors: u32,
    pub jsonpaths: Option<&'a str>,
    pub copies: &'a [Copy],
}

impl Load<'_> {
    /// The key of the `n`th COPY's manifest.
    pub fn manifest_key(&self, n: usize) -> String {
        format!("{}{}.{n}.json", self.prefix, self.attempt)
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The file list: `INSERT … VALUES` statements of at most
    /// [`LIST_STATEMENT_BYTES`] each.
    fn list(&self) -> Vec<String> {
        let head = format!("INSERT INTO {FILES} (object_key, etag) VALUES ");
        let mut out: Vec<String> = Vec::new();
        let mut current = String::new();
        for f in self.copies.iter().flat_map(|c| &c.files) {
            let entry = list_entry(f);
            if !current.is_empty() && current.len() + entry.len() + 2 > LIST_STATEMENT_BYTES {
                out.push(std::mem::take(&mut current));
            }
            current.push_str(if current.is_empty() { &head } else { ", " });
            current.push_str(&entry);
        }
        out.push(current);
        out
    }

    /// The `n`th COPY's manifest, with each file's size (`meta.content_length`,
    /// which lets Redshift split the reading without a HEAD per file).
    pub fn manifest(&self, n: usize) -> String {
        #[derive(Serialize)]
        struct Meta {
            content_length: u64,
        }
        #[derive(Serialize)]
        struct Entry {
            url: String,
            mandatory: bool,
            meta: Meta,
        }
        #[derive(Serialize)]
        struct Manifest {
            entries: Vec<Entry>,
        }
        let entries = self.copies[n]
            .files
            .iter()
            .map(|f| Entry {
                url: self.uri(&f.key),
                mandatory: true,
                meta: Meta {
                    content_length: f.size,
                },
            })
            .collect();
        serde_json::to_string_pretty(&Manifest { entries }).expect("plain data")
    }

    /// The transaction, as one `BatchExecuteStatement`:
    ///
    /// 1. `LOCK` the ledger, so two loads of one table (or two ticks that
    ///    both hold a file) run one after the other;
    /// 2. list the files in a temporary table, and COPY their rows into
    ///    another shaped like the target;
    /// 3. write the ledger rows only when none of the files is in the
    ///    ledger already;
    /// 4. move the staged rows to the table only when step 3 wrote this
    ///    attempt's rows.
    ///
    /// So a file already loaded makes the whole attempt load nothing, and
    /// the loader, finding no ledger rows for the attempt, asks the ledger
    /// which files it holds and tries again without them.
    pub fn statements(&self) -> Vec<String> {
        let table = quote_table(self.table);
        let role = literal(self.iam_role);
        let mut sql = vec![format!("LOCK {LEDGER_TABLE}")];
        sql.extend(self.create_like());
        sql.extend([
            format!("CREATE TEMP TABLE {STAGE} (LIKE {table})"),
            format!("CREATE TEMP TABLE {FILES} (object_key VARCHAR(4096), etag VARCHAR(256))"),
        ]);
        sql.extend(self.list());
        for (n, copy) in self.copies.iter().enumerate() {
            sql.push(self.copy(n, copy, &role));
        }
        // Routes into one table may list columns differently: then the
        // stage (shaped like the table) moves whole.
        let first = self.copies[0].spec.columns.as_deref();
        let columns = first.filter(|_| {
            self.copies
                .iter()
                .all(|c| c.spec.columns.as_deref() == first)
        });
        let list = columns.map_or_else(String::new, |c| format!(" ({})", column_list(c)));
        let select = columns.map_or_else(|| "*".to_owned(), column_list);
        sql.push(format!(
            "INSERT INTO {LEDGER_TABLE} (object_key, etag, table_name, batch_id) \
             SELECT object_key, etag, {}, {} FROM {FILES} \
             WHERE NOT EXISTS (SELECT 1 FROM {LEDGER_TABLE} l JOIN {FILES} f \
             ON l.object_key = f.object_key AND l.etag = f.etag)",
            literal(self.table),
            literal(self.attempt)
        ));
        sql.push(format!(
            "INSERT INTO {table}{list} SELECT {select} FROM {STAGE} \
             WHERE EXISTS (SELECT 1 FROM {LEDGER_TABLE} WHERE batch_id = {})",
            literal(self.attempt)
        ));
        sql
    }

    /// Which statements of [`Load::statements`] are the files' COPYs, by
    /// index, in the order of `copies`.
    pub fn copy_statements(&self) -> std::ops::Range<usize> {
        let first = 3 + usize::from(self.create_like().is_some()) + self.list().len();
        first..first + self.copies.len()
    }

    /// The table, created like the route's `create_like` table when it is
    /// missing (a table per tenant, made on the tenant's first file).
    fn create_like(&self) -> Option<String> {
        let like = self
            .copies
            .iter()
            .find_map(|c| c.spec.create_like.as_deref())?;
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {} (LIKE {})",
            quote_table(self.table),
            quote_table(like)
        ))
    }

    fn copy(&self, n: usize, copy: &Copy, role: &str) -> String {
        if copy.spec.format == Format::Parquet {
            // Columnar COPY takes none of the text options (no MAXERROR:
            // any error fails it), maps columns by position, and
            // decompresses by the file's own codecs.
            return format!(
                "COPY {STAGE} FROM {} IAM_ROLE {role} MANIFEST FORMAT AS PARQUET",
                literal(&self.uri(&self.manifest_key(n)))
            );
        }
        let columns = copy
            .spec
            .columns
            .as_deref()
            .map_or_else(String::new, |c| format!(" ({})", column_list(c)));
        let format = match copy.spec.format {
            Format::Jsonl => format!(
                "FORMAT AS JSON {}",
                literal(self.jsonpaths.unwrap_or("auto"))
            ),
            // Netcdf never routes here (config validation); Parquet
            // returned above.
            Format::Csv | Format::Netcdf | Format::Parquet => {
                let csv = &copy.spec.csv;
                format!(
                    "FORMAT AS CSV QUOTE AS {} DELIMITER AS {} NULL AS {}{}",
                    literal(&csv.quote.to_string()),
                    literal(&csv.delimiter.to_string()),
                    literal(&csv.null),
                    if csv.header { " IGNOREHEADER 1" } else { "" }
                )
            }
        };
        let compression = match copy.compression {
            Compression::Gzip => " GZIP",
            Compression::Zstd => " ZSTD",
            Compression::None | Compression::Auto => "",
        };
        format!(
            "COPY {STAGE}{columns} FROM {} IAM_ROLE {role} MANIFEST {format}{compression} \
             TIMEFORMAT 'auto' DATEFORMAT 'auto' MAXERROR {}",
            literal(&self.uri(&self.manifest_key(n))),
            self.max_errors
        )
    }
}

/// The ledger's rows loaded at or after `:since` whose key starts with
/// `:prefix`, oldest first, at most `limit` (parameters: the user's text
/// never enters the statement). Redshift keeps `loaded_at` in UTC.
pub fn ledger_history(limit: usize) -> String {
    format!(
        "SELECT object_key, etag, table_name, batch_id, \
         TO_CHAR(loaded_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
         FROM {LEDGER_TABLE} \
         WHERE loaded_at >= CAST(:since AS TIMESTAMP) \
         AND LEFT(object_key, CHAR_LENGTH(:prefix)) = :prefix \
         ORDER BY loaded_at, object_key LIMIT {limit}"
    )
}

/// The ledger rows of `keys`, as a query with one Data API parameter per
/// key (`:k0`, `:k1`, …): keys never enter the text.
pub fn ledger_lookup(keys: usize) -> String {
    let params: Vec<String> = (0..keys).map(|i| format!(":k{i}")).collect();
    format!(
        "SELECT object_key, etag FROM {LEDGER_TABLE} WHERE object_key IN ({})",
        params.join(", ")
    )
}

/// The ledger rows one attempt wrote.
pub fn attempt_rows() -> String {
    format!("SELECT object_key, etag FROM {LEDGER_TABLE} WHERE batch_id = :attempt")
}

/// Why rows of the given COPY queries were rejected, file by file.
pub fn load_errors(query_ids: &[i64]) -> String {
    format!(
        "SELECT TRIM(file_name), line_number, TRIM(column_name), TRIM(error_message) \
         FROM sys_load_error_detail WHERE query_id IN ({}) ORDER BY line_number",
        ids(query_ids)
    )
}

/// How many lines each file of the given COPY queries had.
pub fn load_lines(query_ids: &[i64]) -> String {
    format!(
        "SELECT TRIM(file_name), SUM(lines_scanned) FROM sys_load_detail \
         WHERE query_id IN ({}) GROUP BY 1",
        ids(query_ids)
    )
}

fn ids(query_ids: &[i64]) -> String {
    query_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CsvOptions, LoadSpec};
    use proptest::prelude::*;

    /// Splits a statement as Redshift reads it into its text outside
    /// literals (each literal replaced by `?`) and the literals' values:
    /// `''` is a quote, a backslash escapes the next character.
    fn tokens(sql: &str) -> (String, Vec<String>) {
        let mut skeleton = String::new();
        let mut values = Vec::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\'' {
                skeleton.push(c);
                continue;
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().expect("escape at end")),
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => panic!("unterminated literal in {sql}"),
                }
            }
            skeleton.push('?');
            values.push(value);
        }
        (skeleton, values)
    }

    fn file(key: &str, spec: &LoadSpec) -> FileTask {
        FileTask {
            key: key.into(),
            etag: "\"0123abcd\"".into(),
            size: 10,
            spec: spec.clone(),
            processed_key: String::new(),
            rejected_key: String::new(),
        }
    }

    fn statements(keys: &[String]) -> Vec<String> {
        let spec = LoadSpec {
            columns: Some(vec!["id".into(), "user".into()]),
            ..LoadSpec::default()
        };
        let files: Vec<FileTask> = keys.iter().map(|k| file(k, &spec)).collect();
        let copies = copies(&files);
        Load {
            bucket: "bucket",
            prefix: "manifests/",
            attempt: "t1-0000-0",
            table: "public.orders",
            iam_role: "arn:aws:iam::123456789012:role/copy",
            max_errors: 0,
            jsonpaths: None,
            copies: &copies,
        }
        .statements()
    }

    /// The hostile pieces keys are made of.
    fn key() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("'".to_owned()),
            Just("''".to_owned()),
            Just("\\".to_owned()),
            Just("\\'".to_owned()),
            Just(";".to_owned()),
            Just("--".to_owned()),
            Just("/*".to_owned()),
            Just("\"".to_owned()),
            Just("$$".to_owned()),
            Just("\n".to_owned()),
            Just("ünï😀".to_owned()),
            Just(") ; DROP TABLE orders; --".to_owned()),
            "[a-z0-9/._ -]{1,12}",
        ];
        (prop::collection::vec(piece, 1..40), 0usize..1000).prop_map(|(pieces, pad)| {
            let mut k = format!("incoming/{}", pieces.concat());
            // Up to 1,000 bytes, the longest keys the tests use.
            while k.len() < pad {
                k.push('x');
            }
            k
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the keys, every statement has the shape it has with
        /// plain keys, and the file list's literals read back as exactly
        /// the keys: no key can end its literal, add a statement or comment
        /// one out.
        #[test]
        fn no_key_changes_a_statement(keys in prop::collection::vec(key(), 1..30)) {
            let plain: Vec<String> = (0..keys.len()).map(|i| format!("incoming/k{i}.csv")).collect();
            let hostile = statements(&keys);
            let benign = statements(&plain);
            let is_list = |s: &str| s.starts_with("INSERT INTO s3loader_files");
            let (h_other, b_other): (Vec<_>, Vec<_>) = (
                hostile.iter().filter(|s| !is_list(s)).map(|s| tokens(s).0).collect(),
                benign.iter().filter(|s| !is_list(s)).map(|s| tokens(s).0).collect(),
            );
            prop_assert_eq!(h_other, b_other);
            let mut listed = Vec::new();
            for s in hostile.iter().filter(|s| is_list(s)) {
                let (skeleton, values) = tokens(s);
                let n = values.len() / 2;
                let want = format!(
                    "INSERT INTO s3loader_files (object_key, etag) VALUES {}",
                    vec!["(?, ?)"; n].join(", ")
                );
                prop_assert_eq!(skeleton, want);
                listed.extend(values.chunks(2).map(|p| p[0].clone()));
            }
            prop_assert_eq!(listed, keys);
        }

        /// The manifest names each key exactly, whatever it holds.
        #[test]
        fn manifests_name_each_key(keys in prop::collection::vec(key(), 1..10)) {
            let files: Vec<FileTask> = keys.iter().map(|k| file(k, &LoadSpec::default())).collect();
            let copies = copies(&files);
            let load = Load {
                bucket: "b",
                prefix: "manifests/",
                attempt: "a",
                table: "t",
                iam_role: "arn:r",
                max_errors: 0,
                jsonpaths: None,
                copies: &copies,
            };
            let m: serde_json::Value = serde_json::from_str(&load.manifest(0)).unwrap();
            let urls: Vec<String> = m["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["url"].as_str().unwrap().to_owned())
                .collect();
            let want: Vec<String> = keys.iter().map(|k| format!("s3://b/{k}")).collect();
            prop_assert_eq!(urls, want);
            prop_assert_eq!(&m["entries"][0]["meta"]["content_length"], 10);
        }
    }

    #[test]
    fn copy_reads_the_routes_options_and_one_copy_per_compression() {
        let csv = LoadSpec {
            csv: CsvOptions {
                delimiter: '|',
                null: "NA".into(),
                ..CsvOptions::default()
            },
            ..LoadSpec::default()
        };
        let json = LoadSpec {
            format: Format::Jsonl,
            ..LoadSpec::default()
        };
        let files = [
            file("incoming/a.csv", &csv),
            file("incoming/b.csv.gz", &csv),
            file("incoming/c.csv", &csv),
            file("incoming/d.jsonl.zst", &json),
        ];
        let copies = copies(&files);
        assert_eq!(copies.len(), 3);
        let load = Load {
            bucket: "bkt",
            prefix: "manifests/",
            attempt: "t-0001-0",
            table: "s.t",
            iam_role: "arn:aws:iam::1:role/r",
            max_errors: 3,
            jsonpaths: None,
            copies: &copies,
        };
        let sql = load.statements();
        let copy: Vec<&String> = load.copy_statements().map(|i| &sql[i]).collect();
        assert_eq!(
            copy[0],
            "COPY s3loader_stage FROM 's3://bkt/manifests/t-0001-0.0.json' \
             IAM_ROLE 'arn:aws:iam::1:role/r' MANIFEST FORMAT AS CSV QUOTE AS '\"' \
             DELIMITER AS '|' NULL AS 'NA' IGNOREHEADER 1 TIMEFORMAT 'auto' \
             DATEFORMAT 'auto' MAXERROR 3"
        );
        assert!(copy[1].contains("t-0001-0.1.json") && copy[1].contains(" GZIP "));
        assert!(copy[2].contains("FORMAT AS JSON 'auto' ZSTD "));
        assert_eq!(sql[0], "LOCK s3loader_ledger");
        assert_eq!(
            sql[1],
            "CREATE TEMP TABLE s3loader_stage (LIKE \"s\".\"t\")"
        );
        assert!(sql
            .last()
            .unwrap()
            .starts_with("INSERT INTO \"s\".\"t\" SELECT * FROM"));
        assert!(sql.iter().all(|s| s.len() <= 100 * 1024));
    }

    #[test]
    fn parquet_is_copied_by_position_with_no_text_options() {
        let spec = LoadSpec {
            format: Format::Parquet,
            ..LoadSpec::default()
        };
        let files = [
            file("incoming/a.parquet", &spec),
            file("incoming/b.parquet", &spec),
        ];
        let copies = copies(&files);
        let load = Load {
            bucket: "b",
            prefix: "manifests/",
            attempt: "t-0001-0",
            table: "t",
            iam_role: "arn:r",
            max_errors: 5,
            jsonpaths: None,
            copies: &copies,
        };
        let sql = load.statements();
        let copy: Vec<&String> = load.copy_statements().map(|i| &sql[i]).collect();
        assert_eq!(
            copy,
            ["COPY s3loader_stage FROM 's3://b/manifests/t-0001-0.0.json' IAM_ROLE 'arn:r' MANIFEST FORMAT AS PARQUET"]
        );
        let manifest: serde_json::Value = serde_json::from_str(&load.manifest(0)).unwrap();
        assert_eq!(
            manifest["entries"][1]["meta"]["content_length"], 10,
            "columnar COPY needs each file's length"
        );
    }

    #[test]
    fn a_tenant_table_is_created_like_the_template_before_the_stage() {
        let spec = LoadSpec {
            create_like: Some("public.events".into()),
            ..LoadSpec::default()
        };
        let files = [file("incoming/tenants/acme/a.csv", &spec)];
        let copies = copies(&files);
        let load = Load {
            bucket: "b",
            prefix: "manifests/",
            attempt: "a",
            table: "public.events_acme",
            iam_role: "arn:r",
            max_errors: 0,
            jsonpaths: None,
            copies: &copies,
        };
        let sql = load.statements();
        assert_eq!(
            &sql[..3],
            [
                "LOCK s3loader_ledger",
                "CREATE TABLE IF NOT EXISTS \"public\".\"events_acme\" (LIKE \"public\".\"events\")",
                "CREATE TEMP TABLE s3loader_stage (LIKE \"public\".\"events_acme\")",
            ]
        );
        let copy = load.copy_statements();
        assert_eq!(copy.len(), 1);
        assert!(
            sql[copy.start].starts_with("COPY s3loader_stage FROM"),
            "{sql:?}"
        );
    }

    #[test]
    fn a_long_file_list_is_cut_into_statements_and_attempts() {
        let long: Vec<FileTask> = (0..3000)
            .map(|i| {
                file(
                    &format!("incoming/{i:04}-{}", "x".repeat(990)),
                    &LoadSpec::default(),
                )
            })
            .collect();
        let n = fits(&long);
        assert!(n > 100 && n < 3000, "{n}");
        let copies = copies(&long[..n]);
        let load = Load {
            bucket: "b",
            prefix: "manifests/",
            attempt: "a",
            table: "t",
            iam_role: "arn:r",
            max_errors: 0,
            jsonpaths: None,
            copies: &copies,
        };
        let sql = load.statements();
        assert!(sql.len() <= 40, "{}", sql.len());
        assert!(sql.iter().all(|s| s.len() <= 100 * 1024));
    }
}
