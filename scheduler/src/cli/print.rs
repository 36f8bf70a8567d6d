//! What the commands print: text for people, or `--json`. Pure functions
//! of the work's results, so the wording lives in one place.

use std::fmt::Write;

use anyhow::Result;
use loader::config::Config;
use scheduler::ops::{Reprocessed, Status};
use scheduler::report::TickReport;

pub fn check(config: &Config) -> Result<String> {
    Ok(format!(
        "{}\n# config OK: {} route(s), {} destination(s)\n",
        toml::to_string_pretty(config)?,
        config.routes.len(),
        config.destinations.len()
    ))
}

pub fn status(s: &Status, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(s)? + "\n");
    }
    let oldest = if s.backlog.files == 0 {
        "-".into()
    } else {
        format!("{}s old", s.oldest_age_secs)
    };
    Ok(format!(
        "{}\n  incoming: {} files, {} bytes, oldest {oldest}\n  \
         retrying: {} files have failed at least once\n  \
         failed:   {} files (reprocess with `s3loader reprocess`)\n",
        s.store, s.backlog.files, s.backlog.bytes, s.retrying_files, s.failed_files
    ))
}

/// (stdout, stderr): the errors go to stderr.
pub fn reprocess(r: &Reprocessed, config: &Config, json: bool) -> Result<(String, String)> {
    moves(r, &config.source.failed, &config.source.incoming, json)
}

pub fn replay(r: &Reprocessed, config: &Config, json: bool) -> Result<(String, String)> {
    moves(r, &config.source.processed, &config.source.incoming, json)
}

/// What `reprocess` or `replay` moved from `from` to `to`.
fn moves(r: &Reprocessed, from: &str, to: &str, json: bool) -> Result<(String, String)> {
    if json {
        return Ok((serde_json::to_string_pretty(r)? + "\n", String::new()));
    }
    let verb = if r.dry_run { "would move" } else { "moved" };
    let (mut out, mut err) = (String::new(), String::new());
    for m in &r.moved {
        writeln!(out, "{verb} {} -> {}", m.from, m.to)?;
    }
    for c in &r.conflicts {
        writeln!(out, "CONFLICT {} -> {}: {}", c.key, c.target, c.reason)?;
    }
    for e in &r.errors {
        writeln!(err, "error: {e}")?;
    }
    let conflicts = if r.conflicts.is_empty() {
        String::new()
    } else {
        format!("; {} left in place (conflict)", r.conflicts.len())
    };
    writeln!(
        out,
        "{verb} {} file(s) from {from} back to {to}{conflicts}",
        r.moved.len(),
    )?;
    Ok((out, err))
}

/// The ledgers' rows, one line each, per destination.
pub fn history(ledgers: &[scheduler::ops::LedgerHistory], json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(ledgers)? + "\n");
    }
    let mut out = String::new();
    for l in ledgers {
        match (&l.entries, &l.error) {
            (_, Some(e)) => writeln!(out, "{}: the ledger could not be read: {e}", l.destination)?,
            (None, None) => writeln!(
                out,
                "{}: keeps no ledger (the forecast index)",
                l.destination
            )?,
            (Some(entries), None) => {
                writeln!(out, "{}: {} load(s)", l.destination, entries.len())?;
                for h in entries {
                    let e = &h.entry;
                    let rows = e.rows.map_or("-".to_owned(), |r| r.to_string());
                    write!(
                        out,
                        "  {}  {:>8} rows  {:<16} {}  {}",
                        e.loaded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        rows,
                        e.table,
                        e.batch_id,
                        e.object_key
                    )?;
                    if let Some(original) = &h.replay_of {
                        write!(out, "  (replay of {original})")?;
                    }
                    writeln!(out)?;
                }
            }
        }
    }
    Ok(out)
}

pub fn tick(r: &TickReport, json: bool) -> Result<String> {
    Ok(if json {
        serde_json::to_string(r)? + "\n"
    } else {
        r.to_string()
    })
}

/// One poll of `s3loader listen`: the run's report, then how the messages
/// were answered.
pub fn polled(p: &scheduler::listen::Polled, json: bool) -> Result<String> {
    let Some(h) = &p.handled else {
        return Ok(String::new());
    };
    let mut out = match (&h.run, json) {
        (Some(run), true) => serde_json::to_string(&run.report)? + "\n",
        (Some(run), false) => run.report.to_string(),
        (None, _) => String::new(),
    };
    if !json {
        writeln!(
            out,
            "  messages: {} received, {} acknowledged ({} with nothing to load), {} returned to the queue",
            p.received,
            p.deleted,
            h.ignored,
            h.failed.len()
        )?;
    }
    Ok(out)
}

#[cfg(feature = "netcdf")]
pub fn forecasts(
    hits: &[loader::forecast_index::ForecastHit],
    time: &str,
    table: &str,
    json: bool,
) -> Result<String> {
    use scheduler::forecasts::format_period;
    if json {
        return Ok(serde_json::to_string_pretty(hits)? + "\n");
    }
    if hits.is_empty() {
        return Ok(format!(
            "no indexed file holds a forecast for {time} (table {table})\n"
        ));
    }
    let mut out = format!("{} file(s) hold a forecast for {time}:\n", hits.len());
    for h in hits {
        writeln!(
            out,
            "  {:<9} run {}  {}  [{}]",
            format_period(h.forecast_period),
            h.forecast_reference_time,
            h.object_url,
            h.variables.join(", ")
        )?;
    }
    Ok(out)
}

#[cfg(feature = "sqlite")]
pub fn demo_progress(dir: &std::path::Path, p: &scheduler::demo::Progress<'_>) -> String {
    use scheduler::demo::Progress;
    match p {
        Progress::Seeded { seeded, present } => {
            let earlier = if *present > 0 {
                format!(" ({present} already in the bucket from an earlier run)")
            } else {
                String::new()
            };
            format!(
                "s3loader demo: bucket {0}/bucket, warehouse {0}/warehouse.db\n\
                 seeded {seeded} sample file(s) into incoming/{earlier}\n",
                dir.display()
            )
        }
        Progress::Tick(report) => report.to_string(),
    }
}

#[cfg(feature = "sqlite")]
pub fn demo_summary(dir: &std::path::Path, run: &scheduler::demo::DemoRun) -> String {
    let mut out = String::new();
    if run.ticks == 0 {
        out += "incoming/ is empty: nothing to load\n";
    }
    if run.stopped_waiting {
        out += "stopping: files left in incoming/ are waiting for a retry\n";
    }
    let _ = writeln!(out, "\nwarehouse {}:", dir.join("warehouse.db").display());
    for (name, n) in &run.tables {
        let _ = writeln!(out, "  {name:<16} {n} rows");
    }
    let _ = writeln!(
        out,
        "bucket: {} in incoming/, {} in failed/ (reasons in {}/bucket/errors/)",
        run.status.backlog.files,
        run.status.failed_files,
        dir.display()
    );
    out += "run it again: nothing is loaded twice\n";
    out
}
