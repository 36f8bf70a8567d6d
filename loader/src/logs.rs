//! Where log lines go, at what level, and the lines that carry a whole
//! structure (a tick's report, an embedded-metric record).
//!
//! tracing's JSON formatter can only write a structure as a string inside
//! `message`; Logs Insights then cannot filter on its fields. So a
//! structure is written here as one JSON object per line, its fields beside
//! `level`, `target` and `message`, to the same writer the subscriber uses
//! (stdout in Lambda, where CloudWatch Logs reads it; stderr for the CLI).

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

/// How [`init`] set up logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Human text on stderr (the CLI without `--log-json`).
    Text,
    /// JSON lines on stderr (the CLI with `--log-json`).
    JsonStderr,
    /// JSON lines on stdout (Lambda).
    JsonStdout,
}

static MODE: AtomicU8 = AtomicU8::new(0);

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::JsonStderr,
        2 => Mode::JsonStdout,
        _ => Mode::Text,
    }
}

/// The level filter: `RUST_LOG` if set; else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (what the function's `ApplicationLogLevel`
/// sets: TRACE, DEBUG, INFO, WARN, ERROR or FATAL); else `default`.
pub fn filter_directive(
    rust_log: Option<&str>,
    lambda_level: Option<&str>,
    default: &str,
) -> String {
    if let Some(directive) = rust_log.filter(|s| !s.trim().is_empty()) {
        return directive.to_owned();
    }
    let level = lambda_level.map(|l| l.trim().to_ascii_uppercase());
    match level.as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("INFO") => "info",
        Some("WARN") => "warn",
        // tracing has no FATAL; its errors are the closest.
        Some("ERROR") | Some("FATAL") => "error",
        _ => default,
    }
    .to_owned()
}

/// Installs the global subscriber: `mode`, and the filter
/// [`filter_directive`] gives from the environment.
pub fn init(mode: Mode, default_level: &str) {
    let directive = filter_directive(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        default_level,
    );
    let filter = tracing_subscriber::EnvFilter::new(directive);
    MODE.store(
        match mode {
            Mode::Text => 0,
            Mode::JsonStderr => 1,
            Mode::JsonStdout => 2,
        },
        Ordering::Relaxed,
    );
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match mode {
        Mode::Text => builder.with_writer(std::io::stderr).init(),
        Mode::JsonStderr => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .init(),
        // No timestamp: CloudWatch Logs stamps each line.
        Mode::JsonStdout => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .init(),
    }
}

/// Writes `line` whole, as one line, to the log's writer.
pub fn write_line(line: &serde_json::Value) {
    let mut text = line.to_string();
    text.push('\n');
    // One write of the whole line, so lines from tasks on other threads
    // never interleave with it.
    let _ = match mode() {
        Mode::JsonStdout => std::io::stdout().lock().write_all(text.as_bytes()),
        Mode::Text | Mode::JsonStderr => std::io::stderr().lock().write_all(text.as_bytes()),
    };
}

/// In a JSON mode, writes `fields` (a struct that serialises to an object)
/// as one INFO line with its fields at the top level, and returns true.
/// In text mode returns false: the caller logs it as text.
///
/// The caller checks first that INFO is enabled for `target` (tracing's
/// `enabled!` needs the target at compile time).
pub fn structured(target: &str, message: &str, fields: &impl Serialize) -> bool {
    if mode() == Mode::Text {
        return false;
    }
    write_line(&line(target, message, fields));
    true
}

/// The line [`structured`] writes.
pub fn line(target: &str, message: &str, fields: &impl Serialize) -> serde_json::Value {
    let mut line = serde_json::json!({
        "level": "INFO",
        "target": target,
        "message": message,
    });
    if let (Some(out), Ok(serde_json::Value::Object(fields))) =
        (line.as_object_mut(), serde_json::to_value(fields))
    {
        for (k, v) in fields {
            // The line's own keys win; a field named like one is kept under
            // a prefix rather than lost.
            if out.contains_key(&k) {
                out.insert(format!("field_{k}"), v);
            } else {
                out.insert(k, v);
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambdas_level_then_the_default() {
        assert_eq!(
            filter_directive(Some("loader=debug"), Some("ERROR"), "info"),
            "loader=debug"
        );
        assert_eq!(filter_directive(None, Some("WARN"), "info"), "warn");
        assert_eq!(filter_directive(Some(" "), Some("debug"), "info"), "debug");
        assert_eq!(filter_directive(None, Some("FATAL"), "info"), "error");
        assert_eq!(filter_directive(None, Some("LOUD"), "info"), "info");
        assert_eq!(filter_directive(None, None, "error"), "error");
    }

    #[test]
    fn a_structure_is_written_with_its_fields_at_the_top() {
        #[derive(Serialize)]
        struct Report {
            loaded: u64,
            files: Vec<&'static str>,
            message: &'static str,
        }
        let l = line(
            "s3loader::report",
            "tick report",
            &Report {
                loaded: 3,
                files: vec!["incoming/a.csv"],
                message: "mine",
            },
        );
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["target"], "s3loader::report");
        assert_eq!(l["message"], "tick report");
        assert_eq!(l["loaded"], 3, "a number, not text inside message: {l}");
        assert_eq!(l["files"][0], "incoming/a.csv");
        assert_eq!(l["field_message"], "mine");
    }
}
