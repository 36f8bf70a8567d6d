//! The worker: takes a batch, returns one outcome per file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::contract::{Batch, BatchOutcome, Cause, Outcome};
use crate::dest::{self, Destination};
use crate::error::Result;
use crate::store::ObjectStore;

/// What runs inside a loader Lambda, or in-process for the embedded default.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<dyn ObjectStore>,
    destinations: BTreeMap<String, Arc<dyn Destination>>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        destinations: BTreeMap<String, Arc<dyn Destination>>,
    ) -> Self {
        Self {
            store,
            destinations,
        }
    }

    /// Builds every destination of the config once (call it at start-up).
    pub fn from_config(config: &Config, store: Arc<dyn ObjectStore>) -> Result<Self> {
        Self::build(config, store, None)
    }

    /// [`Worker::from_config`], with AWS clients built from `shared`.
    pub fn from_config_shared(
        config: &Config,
        store: Arc<dyn ObjectStore>,
        shared: &aws_config::SdkConfig,
    ) -> Result<Self> {
        Self::build(config, store, Some(shared))
    }

    fn build(
        config: &Config,
        store: Arc<dyn ObjectStore>,
        shared: Option<&aws_config::SdkConfig>,
    ) -> Result<Self> {
        let destinations = config
            .destinations
            .iter()
            .map(|(name, c)| Ok((name.clone(), dest::build(name, c, &config.source, shared)?)))
            .collect::<Result<_>>()?;
        Ok(Self::new(store, destinations))
    }

    /// Loads a batch. Never fails as a whole: problems become per-file
    /// outcomes, and every file of the batch gets exactly one.
    pub async fn load(&self, batch: &Batch) -> BatchOutcome {
        let started = Instant::now();
        let Some(destination) = self.destinations.get(&batch.destination) else {
            // The worker's config lags the scheduler's: an outage of this
            // worker, not the files' fault.
            return batch.all_failed(
                true,
                &format!(
                    "no destination named {:?} in this worker's config",
                    batch.destination
                ),
                Cause::Destination,
            );
        };
        if batch.check_only {
            return self.check(batch, &**destination).await;
        }
        let outcome = batch.reconcile(destination.load(batch, self.store.clone()).await);
        let (mut loaded, mut failed, mut rows) = (0, 0, 0);
        for f in &outcome.files {
            match &f.outcome {
                Outcome::Loaded { rows: r, .. } => {
                    loaded += 1;
                    rows += r;
                }
                Outcome::AlreadyLoaded => {}
                Outcome::Failed { .. } => failed += 1,
            }
        }
        tracing::info!(
            batch = %batch.id,
            destination = %batch.destination,
            table = %batch.table,
            files = batch.files.len(),
            loaded,
            failed,
            rows,
            ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        outcome
    }

    /// A check-only batch: asks the ledger, loads nothing.
    async fn check(&self, batch: &Batch, destination: &dyn Destination) -> BatchOutcome {
        match destination.loaded(&batch.files).await {
            Ok(found) => BatchOutcome {
                batch_id: batch.id.clone(),
                files: batch
                    .files
                    .iter()
                    .zip(found)
                    .map(|(f, found)| {
                        f.outcome(if found {
                            Outcome::AlreadyLoaded
                        } else {
                            Outcome::Failed {
                                retryable: false,
                                reason: "not in the ledger: it was not loaded".into(),
                                cause: Cause::File,
                            }
                        })
                    })
                    .collect(),
            },
            Err(e) => batch.all_failed_with(&e),
        }
    }
}
