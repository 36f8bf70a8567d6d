//! The S3 floor of the small-files benchmark (`bench/run.sh`): the same
//! per-file requests s3loader makes for a loaded file — GET (body read to
//! the end), CopyObject to `processed/`, DeleteObject — issued by a bare
//! async client with no loading, no ledger and no state, at each
//! concurrency given. Prints one `floor concurrency=C files=N secs=S` line
//! per concurrency; every pass moves the files back first (not timed).
//!
//!     cargo run --release --example s3_floor -- BUCKET 8 32 64
//!
//! Endpoint and credentials come from the standard AWS settings
//! (`AWS_ENDPOINT_URL_S3` for SeaweedFS).

use std::time::Instant;

use aws_sdk_s3::Client;
use futures::{stream, StreamExt, TryStreamExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn keys(s3: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let pages: Vec<_> = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send()
        .try_collect()
        .await?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.contents.unwrap_or_default())
        .filter_map(|o| o.key)
        .collect())
}

/// GET (read whole), copy to `to`, delete `from`.
async fn one(s3: &Client, bucket: &str, from: &str, to: &str, read: bool) -> Result<()> {
    if read {
        let got = s3.get_object().bucket(bucket).key(from).send().await?;
        got.body.collect().await?;
    }
    s3.copy_object()
        .bucket(bucket)
        .key(to)
        .copy_source(format!("{bucket}/{}", urlencoding(from)))
        .send()
        .await?;
    s3.delete_object().bucket(bucket).key(from).send().await?;
    Ok(())
}

/// Percent-encodes a key for `x-amz-copy-source` (everything but
/// unreserved characters and `/`).
fn urlencoding(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn pass(
    s3: &Client,
    bucket: &str,
    from: &str,
    to: &str,
    c: usize,
    read: bool,
) -> Result<usize> {
    let all = keys(s3, bucket, from).await?;
    let n = all.len();
    stream::iter(all)
        .map(|k| {
            let dest = format!("{to}{}", &k[from.len()..]);
            async move { one(s3, bucket, &k, &dest, read).await }
        })
        .buffer_unordered(c)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(n)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let bucket = args.next().ok_or("usage: s3_floor BUCKET CONCURRENCY...")?;
    let levels: Vec<usize> = args
        .map(|a| a.parse())
        .collect::<std::result::Result<_, _>>()?;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    );
    for c in levels {
        // Back to incoming/, untimed, without reading.
        pass(&s3, &bucket, "processed/", "incoming/", 64, false).await?;
        let start = Instant::now();
        let n = pass(&s3, &bucket, "incoming/", "processed/", c, true).await?;
        println!(
            "floor concurrency={c} files={n} secs={:.3}",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
