//! `s3loader listen`: the fast path without Lambda. It does what Lambda's
//! event source mapping does for the events function: receive up to ten
//! messages, hand them to [`handle`], delete the ones it acknowledged, and
//! leave the rest to reappear after the queue's visibility timeout (and,
//! after `maxReceiveCount`, to go to the dead-letter queue).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::{self, SqsMessage};
use crate::fastpath::EventRun;
use crate::tick::Scheduler;

/// One batch of messages handled: what to answer the queue, and the run.
#[derive(Debug)]
pub struct Handled {
    /// The messages to return to the queue (a partial batch response).
    pub failed: Vec<String>,
    /// Messages acknowledged without a load: S3's test event, deletions,
    /// objects outside `incoming/`.
    pub ignored: usize,
    /// `None` when no message named an object to load.
    pub run: Option<EventRun>,
}

/// Loads what a batch of messages notified. Unreadable messages and those
/// with a file left to retry are returned; the rest are acknowledged. An
/// error (the attempt counts unreadable) returns every message.
pub async fn handle(
    sched: &Scheduler,
    messages: &[SqsMessage],
    deadline: Instant,
) -> Result<Handled> {
    let parsed = events::parse(messages);
    for (id, why) in &parsed.unreadable {
        tracing::warn!(message_id = %id, reason = %why, "unreadable message; returned to the queue");
    }
    for (id, why) in &parsed.ignored {
        tracing::info!(message_id = %id, reason = %why, "message acknowledged; nothing to load");
    }
    let mut failed: Vec<String> = parsed.unreadable.iter().map(|(id, _)| id.clone()).collect();
    let run = if parsed.notified.is_empty() {
        None
    } else {
        let run = sched.load_notified(&parsed.notified, deadline).await?;
        failed.extend(run.failed_messages.iter().cloned());
        Some(run)
    };
    Ok(Handled {
        failed,
        ignored: parsed.ignored.len(),
        run,
    })
}

/// Polls one SQS queue.
#[derive(Debug, Clone)]
pub struct Listener {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// One poll: how many messages came, and how they were answered.
#[derive(Debug)]
pub struct Polled {
    pub received: usize,
    pub deleted: usize,
    pub handled: Option<Handled>,
}

impl Listener {
    /// Uses a client built once by the caller (`AWS_ENDPOINT_URL_SQS` for
    /// a local queue).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Receives up to ten messages (waiting up to `wait` for the first),
    /// loads what they notify, and deletes the acknowledged ones.
    /// `visibility` overrides the queue's visibility timeout for these
    /// messages: how long a returned one stays hidden.
    pub async fn poll(
        &self,
        sched: &Scheduler,
        wait: Duration,
        visibility: Option<Duration>,
        deadline: Instant,
    ) -> Result<Polled> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .set_visibility_timeout(visibility.map(|v| v.as_secs() as i32))
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", e))?;
        let received: Vec<(SqsMessage, String)> = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some((
                    SqsMessage {
                        message_id: m.message_id?,
                        body: m.body.unwrap_or_default(),
                    },
                    m.receipt_handle?,
                ))
            })
            .collect();
        if received.is_empty() {
            return Ok(Polled {
                received: 0,
                deleted: 0,
                handled: None,
            });
        }
        let messages: Vec<SqsMessage> = received
            .iter()
            .map(|(m, _)| SqsMessage {
                message_id: m.message_id.clone(),
                body: m.body.clone(),
            })
            .collect();
        // An error leaves every message to come back, as a function error
        // does in Lambda.
        let handled = handle(sched, &messages, deadline).await?;
        let done: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = received
            .iter()
            .enumerate()
            .filter(|(_, (m, _))| !handled.failed.contains(&m.message_id))
            .filter_map(|(i, (_, receipt))| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        let mut deleted = 0;
        if !done.is_empty() {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| self.error("DeleteMessageBatch", e))?;
            deleted = out.successful.len();
            for f in out.failed {
                // The message comes back and is handled again: harmless,
                // the ledger has its file.
                tracing::warn!(entry = %f.id, code = %f.code, "could not delete a handled message");
            }
        }
        Ok(Polled {
            received: received.len(),
            deleted,
            handled: Some(handled),
        })
    }

    fn error<E: loader::aws::OperationError>(
        &self,
        operation: &'static str,
        err: aws_sdk_sqs::error::SdkError<E>,
    ) -> Error {
        let failure = loader::aws::classify(err);
        Error::Queue {
            queue: self.queue_url.clone(),
            operation,
            code: failure.code,
            retryable: failure.retryable,
            source: failure.source,
        }
    }
}
