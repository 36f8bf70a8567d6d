//! [`LambdaFanout`]: each batch is a synchronous Invoke of the loader
//! function.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use loader::contract::{Batch, BatchOutcome, Cause};

use crate::Fanout;

/// Lambda refuses synchronous request payloads over 6 MB; stay clear of it.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024 - 64 * 1024;

/// Invokes the loader function (RequestResponse) once per batch, splitting
/// a batch whose JSON would exceed [`MAX_PAYLOAD`]. Throttling and 5xx are
/// retried with exponential backoff and full jitter. Whatever still fails —
/// a function error, a timeout, an answer that is not a `BatchOutcome` —
/// becomes a retryable failure of that batch's files: they stay in
/// `incoming/`, and the ledger makes a later attempt safe even if the
/// failed invocation did load them.
#[derive(Debug, Clone)]
pub struct LambdaFanout {
    client: aws_sdk_lambda::Client,
    function: String,
    max_payload: usize,
    retries: u32,
    base_delay: Duration,
    timeout: Option<Duration>,
}

impl LambdaFanout {
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
            max_payload: MAX_PAYLOAD,
            retries: 4,
            base_delay: Duration::from_millis(200),
            timeout: None,
        }
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
        let mut attempt = 0;
        loop {
            let send = self
                .client
                .invoke()
                .function_name(&self.function)
                .payload(Blob::new(payload.clone()))
                .send();
            let sent = match self.timeout {
                None => send.await,
                Some(limit) => match tokio::time::timeout(limit, send).await {
                    Ok(sent) => sent,
                    // Not retried: the invocation may still be running, and
                    // the tick's time is what ran out.
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
            let failure = match sent {
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
                    return match serde_json::from_slice::<BatchOutcome>(body) {
                        Ok(outcome) => part.reconcile(outcome),
                        Err(e) => part.all_failed(
                            true,
                            &format!("unreadable answer from the loader function: {e}"),
                            Cause::Worker,
                        ),
                    };
                }
                Err(err) => classify(err),
            };
            if !failure.retryable || attempt >= self.retries {
                return part.all_failed(
                    true,
                    &format!("invoking {} failed: {}", self.function, failure.message),
                    // Lambda itself throttled or down: an outage, not a file.
                    Cause::Destination,
                );
            }
            attempt += 1;
            // Full jitter: a random delay up to base * 2^attempt.
            let cap = self.base_delay.as_millis() as u64 * (1u64 << attempt.min(6));
            let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(cap.max(1))) as u64;
            tracing::warn!(function = %self.function, attempt, error = %failure.message, "invoke failed; retrying");
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
    }
}

struct Failure {
    retryable: bool,
    message: String,
}

fn classify<E, R>(err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + aws_smithy_runtime_api::client::result::CreateUnhandledError
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(_) => {
            let service = err.into_service_error();
            let code = service.code().unwrap_or("unknown").to_owned();
            let retryable = matches!(
                code.as_str(),
                "TooManyRequestsException"
                    | "ServiceException"
                    | "EC2ThrottledException"
                    | "ResourceNotReadyException"
                    | "SnapStartNotReadyException"
            ) || code.ends_with("Unavailable");
            Failure {
                retryable,
                message: format!("{code}: {}", service.message().unwrap_or_default()),
            }
        }
        SdkError::ConstructionFailure(_) => Failure {
            retryable: false,
            message: format!("{err:?}"),
        },
        // Timeouts and connection errors: the invocation may or may not
        // have run; the ledger makes running it again safe.
        other => Failure {
            retryable: true,
            message: format!("{other:?}"),
        },
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
                })
                .collect(),
            check_only: false,
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
