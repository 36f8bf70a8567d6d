//! The AWS cost of this design per month and per million files, from the
//! requests it makes (counted from the code: see [`Workload`]) and
//! published prices, beside Snowpipe's and Firehose's published prices for
//! the same data. `s3loader cost` prints it; `bench/cost.sh` feeds it the
//! benchmark's measured Lambda durations.
//!
//! A model, not a bill: prices are us-east-1 list prices with no free tier,
//! as recorded in [`Prices::LIST`] (each with its source and the date it was
//! recorded), and they change. The requests per file and per tick follow
//! the code as of this writing; a change to the tick's requests belongs
//! here too.

use serde::Serialize;

/// One price, where it comes from, and when it was recorded.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Price {
    pub value: f64,
    /// What `value` counts, per what: "USD per 1,000 GET requests".
    pub unit: &'static str,
    pub source: &'static str,
}

/// The prices the model assumes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    /// When these were recorded (not fetched at run time).
    pub recorded: &'static str,
    pub s3_put_copy_list: Price,
    pub s3_get: Price,
    pub lambda_gb_second_arm64: Price,
    pub lambda_requests: Price,
    pub cloudwatch_put_metric_data: Price,
    pub cloudwatch_custom_metric: Price,
    pub cloudwatch_alarm: Price,
    pub cloudwatch_logs_ingest: Price,
    pub kms_requests: Price,
    pub snowpipe_credits_per_gb: Price,
    pub snowflake_credit: Price,
    pub firehose_ingest_gb: Price,
}

impl Prices {
    pub const LIST: Prices = Prices {
        recorded: "2026-11-23",
        s3_put_copy_list: Price {
            value: 0.005,
            unit: "USD per 1,000 PUT, COPY, POST or LIST requests (S3 Standard)",
            source: "https://aws.amazon.com/s3/pricing/",
        },
        s3_get: Price {
            value: 0.0004,
            unit: "USD per 1,000 GET requests (S3 Standard; DELETE is free)",
            source: "https://aws.amazon.com/s3/pricing/",
        },
        lambda_gb_second_arm64: Price {
            value: 0.000_013_333_4,
            unit: "USD per GB-second, arm64 (first 6 billion GB-s a month)",
            source: "https://aws.amazon.com/lambda/pricing/",
        },
        lambda_requests: Price {
            value: 0.20,
            unit: "USD per 1,000,000 requests",
            source: "https://aws.amazon.com/lambda/pricing/",
        },
        cloudwatch_put_metric_data: Price {
            value: 0.01,
            unit: "USD per 1,000 PutMetricData requests",
            source: "https://aws.amazon.com/cloudwatch/pricing/",
        },
        cloudwatch_custom_metric: Price {
            value: 0.30,
            unit: "USD per custom metric a month (first 10,000)",
            source: "https://aws.amazon.com/cloudwatch/pricing/",
        },
        cloudwatch_alarm: Price {
            value: 0.10,
            unit: "USD per standard-resolution alarm metric a month",
            source: "https://aws.amazon.com/cloudwatch/pricing/",
        },
        cloudwatch_logs_ingest: Price {
            value: 0.50,
            unit: "USD per GB of logs ingested (standard class)",
            source: "https://aws.amazon.com/cloudwatch/pricing/",
        },
        kms_requests: Price {
            value: 0.03,
            unit: "USD per 10,000 KMS requests (SSE-KMS without an S3 Bucket Key)",
            source: "https://aws.amazon.com/kms/pricing/",
        },
        snowpipe_credits_per_gb: Price {
            value: 0.0037,
            unit: "credits per GB loaded (text billed uncompressed; all editions)",
            source: "https://docs.snowflake.com/en/user-guide/data-load-snowpipe-billing",
        },
        snowflake_credit: Price {
            value: 2.00,
            unit: "USD per credit, Standard edition, AWS us-east-1, on demand",
            source: "https://www.snowflake.com/pricing/",
        },
        firehose_ingest_gb: Price {
            value: 0.029,
            unit: "USD per GB ingested, Direct PUT, first 500 TB a month (records billed in 5 KB steps)",
            source: "https://aws.amazon.com/firehose/pricing/",
        },
    };
}

/// What runs, and what the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub files_per_day: f64,
    pub avg_bytes: f64,
    /// The loader Lambda's billed time per file (the benchmark's Lambda
    /// case: its seconds x 4 concurrent loaders / files).
    pub loader_ms_per_file: f64,
    pub loader_memory_mb: f64,
    pub batch_files: f64,
    /// The scheduler Lambda's billed time per tick.
    pub scheduler_ms_per_tick: f64,
    pub scheduler_memory_mb: f64,
    pub ticks_per_day: f64,
    /// Custom metrics published per tick (one PutMetricData call).
    pub metrics: f64,
    pub alarms: f64,
    /// Log bytes per file (its line in the tick report) and per tick.
    pub log_bytes_per_file: f64,
    pub log_bytes_per_tick: f64,
    /// The bucket uses SSE-KMS without an S3 Bucket Key.
    pub kms: bool,
}

/// One line of the estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub item: String,
    pub usd_per_month: f64,
    pub usd_per_million_files: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub workload: Workload,
    pub prices: Prices,
    pub lines: Vec<Line>,
    pub total_usd_per_month: f64,
    pub total_usd_per_million_files: f64,
    pub snowpipe_usd_per_million_files: f64,
    pub firehose_usd_per_million_files: f64,
}

/// The alarms `infra/template.yaml` creates (a test keeps this true).
pub const TEMPLATE_ALARMS: f64 = 10.0;

const DAYS_PER_MONTH: f64 = 30.0;
const GB: f64 = 1e9;

/// The estimate for `w` at `p`. Requests counted, per file: the loader's
/// GET, the move's CopyObject (conditional) and DeleteObject (free). Per
/// tick: ListObjectsV2 pages over `incoming/` (a day's files spread over
/// its ticks, 1,000 keys a page, at least one), the lease's PUT (its
/// DELETE is free), and the GET of the attempts record.
pub fn estimate(w: &Workload, p: &Prices) -> Estimate {
    let month_files = w.files_per_day * DAYS_PER_MONTH;
    let month_ticks = w.ticks_per_day * DAYS_PER_MONTH;
    let per_tick_files = w.files_per_day / w.ticks_per_day.max(1.0);
    let list_pages = (per_tick_files / 1000.0).ceil().max(1.0);
    let loader_invokes = (month_files / w.batch_files.max(1.0)).ceil();
    let per_million = |usd_per_month: f64| {
        if month_files > 0.0 {
            usd_per_month / month_files * 1e6
        } else {
            0.0
        }
    };
    // Billed GB-seconds (requests are priced apart).
    let lambda = |invokes: f64, ms: f64, mb: f64| {
        invokes * ms / 1000.0 * mb / 1024.0 * p.lambda_gb_second_arm64.value
    };
    let mut lines = Vec::new();
    let mut line = |item: String, usd: f64| {
        lines.push(Line {
            item,
            usd_per_month: usd,
            usd_per_million_files: per_million(usd),
        });
    };
    line(
        "S3 CopyObject (the move), one per file".into(),
        month_files / 1000.0 * p.s3_put_copy_list.value,
    );
    line(
        "S3 GET, one per file".into(),
        month_files / 1000.0 * p.s3_get.value,
    );
    line(
        format!("S3 per tick: {list_pages} LIST page(s) + the lease's PUT + 1 GET"),
        month_ticks
            * ((list_pages + 1.0) / 1000.0 * p.s3_put_copy_list.value + p.s3_get.value / 1000.0),
    );
    line(
        format!(
            "Lambda loader: {:.1} ms per file at {} MB, {} files per invoke",
            w.loader_ms_per_file, w.loader_memory_mb, w.batch_files
        ),
        lambda(month_files, w.loader_ms_per_file, w.loader_memory_mb)
            + loader_invokes / 1e6 * p.lambda_requests.value,
    );
    line(
        format!(
            "Lambda scheduler: {:.0} ms per tick at {} MB, {} ticks a day",
            w.scheduler_ms_per_tick, w.scheduler_memory_mb, w.ticks_per_day
        ),
        lambda(month_ticks, w.scheduler_ms_per_tick, w.scheduler_memory_mb)
            + month_ticks / 1e6 * p.lambda_requests.value,
    );
    line(
        format!(
            "CloudWatch: 1 PutMetricData a tick, {} metrics, {} alarms",
            w.metrics, w.alarms
        ),
        month_ticks / 1000.0 * p.cloudwatch_put_metric_data.value
            + w.metrics * p.cloudwatch_custom_metric.value
            + w.alarms * p.cloudwatch_alarm.value,
    );
    line(
        "CloudWatch Logs: the tick reports".into(),
        (month_files * w.log_bytes_per_file + month_ticks * w.log_bytes_per_tick) / GB
            * p.cloudwatch_logs_ingest.value,
    );
    if w.kms {
        // GET decrypts; CopyObject decrypts the source and asks for a data
        // key for the copy.
        line(
            "KMS: 3 requests per file (SSE-KMS, no Bucket Key)".into(),
            month_files * 3.0 / 10_000.0 * p.kms_requests.value,
        );
    }
    let total: f64 = lines.iter().map(|l| l.usd_per_month).sum();
    let snowpipe =
        1e6 * w.avg_bytes / GB * p.snowpipe_credits_per_gb.value * p.snowflake_credit.value;
    // Firehose bills each record rounded up to 5 KB; a file is at least one
    // record (records are at most 1,000 KiB).
    let records = (w.avg_bytes / (1000.0 * 1024.0)).ceil().max(1.0);
    let billed = (w.avg_bytes / records / 5120.0).ceil() * 5120.0 * records;
    let firehose = 1e6 * billed / GB * p.firehose_ingest_gb.value;
    Estimate {
        workload: w.clone(),
        prices: *p,
        total_usd_per_million_files: per_million(total),
        total_usd_per_month: total,
        lines,
        snowpipe_usd_per_million_files: snowpipe,
        firehose_usd_per_million_files: firehose,
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.workload;
        writeln!(
            f,
            "{} files a day of {} bytes on average ({} a month); prices recorded {}, us-east-1, no free tier\n",
            w.files_per_day,
            w.avg_bytes,
            w.files_per_day * DAYS_PER_MONTH,
            self.prices.recorded
        )?;
        writeln!(f, "| item | USD a month | USD per million files |")?;
        writeln!(f, "|---|---|---|")?;
        for l in &self.lines {
            writeln!(
                f,
                "| {} | {:.2} | {:.3} |",
                l.item, l.usd_per_month, l.usd_per_million_files
            )?;
        }
        writeln!(
            f,
            "| **this design, in all** | **{:.2}** | **{:.3}** |",
            self.total_usd_per_month, self.total_usd_per_million_files
        )?;
        writeln!(
            f,
            "| Snowpipe (its own fee only; the warehouse is extra) | | {:.3} |",
            self.snowpipe_usd_per_million_files
        )?;
        writeln!(
            f,
            "| Firehose Direct PUT ingestion (its own fee only) | | {:.3} |",
            self.firehose_usd_per_million_files
        )?;
        writeln!(f, "\nPrices assumed ({}):", self.prices.recorded)?;
        let p = &self.prices;
        for (name, price) in [
            ("S3 PUT/COPY/LIST", p.s3_put_copy_list),
            ("S3 GET", p.s3_get),
            ("Lambda arm64", p.lambda_gb_second_arm64),
            ("Lambda requests", p.lambda_requests),
            ("CloudWatch PutMetricData", p.cloudwatch_put_metric_data),
            ("CloudWatch custom metric", p.cloudwatch_custom_metric),
            ("CloudWatch alarm", p.cloudwatch_alarm),
            ("CloudWatch Logs", p.cloudwatch_logs_ingest),
            ("KMS", p.kms_requests),
            ("Snowpipe", p.snowpipe_credits_per_gb),
            ("Snowflake credit", p.snowflake_credit),
            ("Firehose", p.firehose_ingest_gb),
        ] {
            writeln!(
                f,
                "- {name}: {} {} ({})",
                price.value, price.unit, price.source
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(files_per_day: f64, avg_bytes: f64) -> Workload {
        Workload {
            files_per_day,
            avg_bytes,
            loader_ms_per_file: 10.0,
            loader_memory_mb: 512.0,
            batch_files: 100.0,
            scheduler_ms_per_tick: 1000.0,
            scheduler_memory_mb: 256.0,
            ticks_per_day: 1440.0,
            metrics: 10.0,
            alarms: 9.0,
            log_bytes_per_file: 300.0,
            log_bytes_per_tick: 2000.0,
            kms: false,
        }
    }

    #[test]
    fn a_million_small_files_cost_what_their_requests_cost() {
        // 1,000,000 files a month: the move's COPY is 5 USD, the GET 0.40.
        let e = estimate(&workload(1e6 / 30.0, 2048.0), &Prices::LIST);
        let line = |s: &str| e.lines.iter().find(|l| l.item.starts_with(s)).unwrap();
        assert!((line("S3 CopyObject").usd_per_month - 5.0).abs() < 1e-9);
        assert!((line("S3 GET").usd_per_month - 0.4).abs() < 1e-9);
        // 10 ms x 0.5 GB x 1e6 = 5,000 GB-s, plus 10,000 invokes.
        let lambda = 5000.0 * 0.000_013_333_4 + 0.01 * 0.20;
        assert!((line("Lambda loader").usd_per_month - lambda).abs() < 1e-6);
        let sum: f64 = e.lines.iter().map(|l| l.usd_per_month).sum();
        assert!((e.total_usd_per_month - sum).abs() < 1e-9);
        assert!((e.total_usd_per_million_files - sum).abs() < 1e-9);
        // Snowpipe: 2.048 GB x 0.0037 credits x 2 USD. Firehose: 5 KB each.
        assert!((e.snowpipe_usd_per_million_files - 2.048 * 0.0037 * 2.0).abs() < 1e-9);
        assert!((e.firehose_usd_per_million_files - 5.12 * 0.029).abs() < 1e-9);
    }

    #[test]
    fn fixed_costs_spread_over_fewer_files_cost_more_per_file() {
        let few = estimate(&workload(100.0, 2048.0), &Prices::LIST);
        let many = estimate(&workload(1e6, 2048.0), &Prices::LIST);
        assert!(few.total_usd_per_million_files > 10.0 * many.total_usd_per_million_files);
        // A day's files over 1,440 ticks: 1e6 / 1440 = 695 per tick, 1 page.
        assert!(many.lines.iter().any(|l| l.item.contains("1 LIST page")));
        let huge = estimate(&workload(1e7, 2048.0), &Prices::LIST);
        assert!(huge.lines.iter().any(|l| l.item.contains("7 LIST page")));
    }

    #[test]
    fn kms_adds_three_requests_per_file() {
        let mut w = workload(1e6 / 30.0, 2048.0);
        w.kms = true;
        let e = estimate(&w, &Prices::LIST);
        let kms = e.lines.iter().find(|l| l.item.starts_with("KMS")).unwrap();
        assert!((kms.usd_per_month - 3e6 / 1e4 * 0.03).abs() < 1e-9);
    }

    #[test]
    fn firehose_bills_large_files_as_several_records() {
        // 3 MB: 4 records of 750 KiB, each rounded up to a 5 KB step.
        let e = estimate(&workload(1000.0, 3.0 * 1024.0 * 1024.0), &Prices::LIST);
        let per_record = (3.0 * 1024.0 * 1024.0 / 4.0 / 5120.0_f64).ceil() * 5120.0;
        assert!(
            (e.firehose_usd_per_million_files - 1e6 * 4.0 * per_record / 1e9 * 0.029).abs() < 1e-6
        );
    }

    #[test]
    fn the_alarm_count_matches_the_template() {
        let template = include_str!("../../infra/template.yaml");
        let alarms = template.matches("Type: AWS::CloudWatch::Alarm").count();
        assert_eq!(
            alarms as f64,
            crate::cost::TEMPLATE_ALARMS,
            "update TEMPLATE_ALARMS"
        );
    }
}
