//! [`LambdaFanout`]: each batch is a synchronous Invoke of the loader
//! function.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use loader::contract::{Batch, BatchOutcome, Cause};

use crate::Fanout;

/// Lambda refuses synchronous request payloads over 6 MB; stay clear of it.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024 - 64 * 1024;

/// Invokes the loader function (RequestResponse) once per batch, splitting
/// a batch whose JSON would exceed [`MAX_PAYLOAD`]. Throttling and 5xx are
/// retried by the client's own retry config (see [`LambdaFanout::from_shared`]).
/// Whatever still fails — a function error, a timeout, an answer that is
/// not a `BatchOutcome` — becomes a retryable failure of that batch's
/// files: they stay in `incoming/`, and the ledger makes a later attempt
/// safe even if the failed invocation did load them.
#[derive(Debug, Clone)]
pub struct LambdaFanout {
    client: aws_sdk_lambda::Client,
    function: String,
    max_payload: usize,
    timeout: Option<Duration>,
}

/// Attempts per Invoke, and the first retry's delay: a throttled account
/// gets about 3 s (200 ms doubling) to make room before the batch waits
/// for the next tick.
const INVOKE_ATTEMPTS: u32 = 5;
const INVOKE_FIRST_RETRY: Duration = Duration::from_millis(200);

impl LambdaFanout {
    /// Uses a client built by the caller, with its retry config.
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
            max_payload: MAX_PAYLOAD,
            timeout: None,
        }
    }

    /// Builds the client from the shared config, retrying each Invoke up to
    /// 5 times ([`loader::aws::retry_config`]).
    pub fn from_shared(shared: &aws_config::SdkConfig, function: impl Into<String>) -> Self {
        let conf = aws_sdk_lambda::config::Builder::from(shared)
            .retry_config(loader::aws::retry_config(
                INVOKE_ATTEMPTS,
                INVOKE_FIRST_RETRY,
            ))
            .build();
        Self::new(aws_sdk_lambda::Client::from_conf(conf), function)
    }

    /// Gives up on an invocation after `timeout` (set it a little above the
    /// loader function's timeout). Lambda answers a crashed or timed-out
    /// function with a function error, but an answer can still be lost; the
    /// batch then comes back retryable instead of holding the tick, and its
    /// lease, until the scheduler itself times out.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lowers the payload limit (tests use it to exercise splitting).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    async fn invoke(&self, part: &Batch) -> BatchOutcome {
        let payload = serde_json::to_vec(part).expect("a batch serialises");
        let send = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload))
            .send();
        let sent = match self.timeout {
            None => send.await,
            Some(limit) => match tokio::time::timeout(limit, send).await {
                Ok(sent) => sent,
                // The invocation may still be running, and the tick's time
                // is what ran out.
                Err(_) => {
                    return part.all_failed(
                        true,
                        &format!(
                            "{} did not answer within {} s (timed out or crashed)",
                            self.function,
                            limit.as_secs()
                        ),
                        Cause::Worker,
                    )
                }
            },
        };
        match sent {
            Ok(out) => {
                let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
                if let Some(kind) = out.function_error() {
                    let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
                    return part.all_failed(
                        true,
                        &format!("the loader function failed ({kind}): {text}"),
                        Cause::Worker,
                    );
                }
                match serde_json::from_slice::<BatchOutcome>(body) {
                    Ok(outcome) => part.reconcile(outcome),
                    Err(e) => part.all_failed(
                        true,
                        &format!("unreadable answer from the loader function: {e}"),
                        Cause::Worker,
                    ),
                }
            }
            Err(err) => {
                let failure = loader::aws::classify(err);
                tracing::warn!(
                    function = %self.function,
                    code = failure.code.as_deref().unwrap_or_default(),
                    retryable = failure.retryable,
                    "invoke failed"
                );
                part.all_failed(
                    true,
                    &format!("invoking {} failed: {}", self.function, failure.describe()),
                    // Lambda itself throttled, denied or down: an outage, not
                    // a file. Retryable even when the error is not: a fixed
                    // permission loads the files on a later tick.
                    Cause::Destination,
                )
            }
        }
    }
}

/// Cuts a batch into parts whose JSON stays under `max` bytes, keeping the
/// files' order. A part always holds at least one file.
pub fn split(batch: &Batch, max: usize) -> Vec<Batch> {
    let empty = Batch {
        files: Vec::new(),
        ..batch.clone()
    };
    let overhead = serde_json::to_vec(&empty).map(|v| v.len()).unwrap_or(0);
    let mut parts = Vec::new();
    let mut current = empty.clone();
    let mut size = overhead;
    for file in &batch.files {
        // The file's JSON and a separating comma.
        let len = serde_json::to_vec(file).map(|v| v.len()).unwrap_or(0) + 1;
        if !current.files.is_empty() && size + len > max {
            parts.push(std::mem::replace(&mut current, empty.clone()));
            size = overhead;
        }
        size += len;
        current.files.push(file.clone());
    }
    if !current.files.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    for (i, p) in parts.iter_mut().enumerate().skip(1) {
        p.id = format!("{}.{i}", batch.id);
    }
    parts
}

#[async_trait]
impl Fanout for LambdaFanout {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        let mut files = Vec::with_capacity(batch.files.len());
        // Parts run one after another: the scheduler's bound C counts
        // batches, and a split batch must not exceed its share.
        for part in split(&batch, self.max_payload) {
            files.extend(self.invoke(&part).await.files);
        }
        batch.reconcile(BatchOutcome {
            batch_id: batch.id.clone(),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loader::contract::FileTask;

    fn batch(n: usize, key_len: usize) -> Batch {
        Batch {
            id: "b".into(),
            destination: "d".into(),
            table: "t".into(),
            files: (0..n)
                .map(|i| FileTask {
                    key: format!("incoming/{i:06}-{}", "k".repeat(key_len)),
                    etag: "\"e\"".into(),
                    size: 1,
                    spec: Default::default(),
                    processed_key: String::new(),
                    rejected_key: String::new(),
                })
                .collect(),
            check_only: false,
            deadline: None,
        }
    }

    #[test]
    fn split_keeps_every_part_under_the_limit_and_every_file_in_order() {
        let b = batch(3000, 900);
        let max = 256 * 1024;
        let parts = split(&b, max);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(serde_json::to_vec(p).unwrap().len() <= max);
        }
        let keys: Vec<_> = parts
            .iter()
            .flat_map(|p| p.files.iter().map(|f| f.key.clone()))
            .collect();
        assert_eq!(
            keys,
            b.files.iter().map(|f| f.key.clone()).collect::<Vec<_>>()
        );
        let ids: std::collections::HashSet<_> = parts.iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids.len(), parts.len(), "part ids are distinct");
    }

    #[test]
    fn a_small_batch_is_not_split_and_one_huge_file_still_goes() {
        assert_eq!(split(&batch(10, 10), MAX_PAYLOAD).len(), 1);
        let parts = split(&batch(2, 5000), 1000);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.files.len() == 1));
    }
}
