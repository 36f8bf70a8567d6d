//! # Layout
//!
//! How the scheduler hands batches to workers.
//!
//! * [`Fanout`]: the trait: one batch out, one outcome per file back.
//! * [`LocalFanout`]: workers as tasks in this process (the embedded
//!   default, and tests).
//! * [`LambdaFanout`] (module `lambda`): each batch a synchronous Invoke of
//!   the loader Lambda, split to fit Lambda's payload limit.
//!
//! The scheduler bounds how many batches are in flight; a fanout only has
//! to run the one it is given and never lose a file's outcome.

mod lambda;

pub use lambda::{split, LambdaFanout, MAX_PAYLOAD};

use std::sync::Arc;

use async_trait::async_trait;
use loader::contract::{Batch, BatchOutcome, Cause};
use loader::worker::Worker;

/// Runs batches on workers.
///
/// Contract: `dispatch` always returns, with exactly one outcome per file of
/// the batch. Whatever goes wrong on the way (a worker that panics, cannot
/// be reached or answers nonsense) is reported as a *retryable* failure of
/// the affected files, so they stay in `incoming/` and nothing is lost.
#[async_trait]
pub trait Fanout: Send + Sync {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome;
}

/// Runs each batch on a Tokio task in this process.
#[derive(Debug, Clone)]
pub struct LocalFanout {
    worker: Arc<Worker>,
}

impl LocalFanout {
    pub fn new(worker: Worker) -> Self {
        Self {
            worker: Arc::new(worker),
        }
    }
}

#[async_trait]
impl Fanout for LocalFanout {
    async fn dispatch(&self, batch: Batch) -> BatchOutcome {
        let worker = self.worker.clone();
        let owned = batch.clone();
        // A separate task, so a panic in a worker is contained to its batch.
        match tokio::spawn(async move { worker.load(&owned).await }).await {
            Ok(outcome) => batch.reconcile(outcome),
            Err(e) => {
                tracing::error!(batch = %batch.id, error = %e, "worker task failed");
                batch.all_failed(true, &format!("the worker failed: {e}"), Cause::Worker)
            }
        }
    }
}
