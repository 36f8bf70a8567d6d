//! Puts a huge backlog for the benchmark's backlog case (`bench/backlog.sh`):
//! N small CSV objects under `incoming/orders/NNNN/NNNNNNN.csv` of a new
//! bucket, CONCURRENCY puts at once. A Python loop puts ~1,000 objects/s;
//! this one is limited by the server. Prints `put files=N secs=S`.
//!
//!     cargo run --release --example s3_backlog -- BUCKET 1000000 128
//!
//! Endpoint and credentials come from the standard AWS settings
//! (`AWS_ENDPOINT_URL_S3` for SeaweedFS).

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use futures::{stream, StreamExt, TryStreamExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bucket, n, c] = args.as_slice() else {
        return Err("usage: s3_backlog BUCKET N CONCURRENCY".into());
    };
    let (n, c): (u64, usize) = (n.parse()?, c.parse()?);
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(bucket).send().await?;
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let s3 = &s3;
            async move {
                let body = format!(
                    "id,customer,amount,ordered_at,note\n{i},c{},1.00,2026-11-01T00:00:00Z,n\n",
                    i % 97
                );
                s3.put_object()
                    .bucket(bucket)
                    .key(format!("incoming/orders/{:04}/{i:07}.csv", i / 1000))
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(c)
        .try_collect::<Vec<()>>()
        .await?;
    println!("put files={n} secs={:.3}", start.elapsed().as_secs_f64());
    Ok(())
}
