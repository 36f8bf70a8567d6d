//! Attempt counts of files whose loads failed in a retryable way.
//!
//! Kept in one object, `<state>/attempts.json`, read and written under the
//! lease, so there is no concurrent writer. An entry is for one version
//! (ETag) of a key: a new version starts again from zero.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use loader::store::{ObjectStore, PutMode};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub etag: String,
    pub attempts: u32,
    pub last_error: String,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Attempts {
    key: String,
    entries: BTreeMap<String, Attempt>,
    dirty: bool,
}

impl Attempts {
    pub async fn load(store: &dyn ObjectStore, key: &str) -> Result<Self> {
        let mut this = Self {
            key: key.to_owned(),
            ..Self::default()
        };
        let mut object = match store.get(key, None).await {
            Ok(o) => o,
            Err(loader::Error::NotFound { .. }) => return Ok(this),
            Err(e) => return Err(Error::loader(format!("read attempt counts {key:?}"))(e)),
        };
        let mut buf = Vec::new();
        object.body.read_to_end(&mut buf).await.map_err(|e| {
            Error::loader(format!("read attempt counts {key:?}"))(loader::Error::Read {
                key: key.to_owned(),
                source: e,
            })
        })?;
        match serde_json::from_slice(&buf) {
            Ok(entries) => this.entries = entries,
            // Losing counts only means more retries; refusing to tick would
            // stop the pipeline.
            Err(e) => {
                tracing::warn!(key, error = %e, "attempt counts unreadable; starting from zero")
            }
        }
        Ok(this)
    }

    /// Counts one more failed attempt; returns the total for this version.
    pub fn bump(&mut self, key: &str, etag: &str, error: &str) -> u32 {
        let entry = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(|| Attempt {
                etag: etag.to_owned(),
                attempts: 0,
                last_error: String::new(),
                last_at: Utc::now(),
            });
        if entry.etag != etag {
            entry.etag = etag.to_owned();
            entry.attempts = 0;
        }
        entry.attempts += 1;
        entry.last_error = error.to_owned();
        entry.last_at = Utc::now();
        self.dirty = true;
        entry.attempts
    }

    /// Attempts so far for this version of `key`.
    pub fn get(&self, key: &str, etag: &str) -> u32 {
        self.entries
            .get(key)
            .filter(|a| a.etag == etag)
            .map_or(0, |a| a.attempts)
    }

    /// Forgets a key that left `incoming/`.
    pub fn forget(&mut self, key: &str) {
        self.dirty |= self.entries.remove(key).is_some();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub async fn save(&mut self, store: &dyn ObjectStore) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let body =
            Bytes::from(serde_json::to_vec_pretty(&self.entries).expect("attempts serialise"));
        store
            .put(&self.key, body, PutMode::Overwrite)
            .await
            .map_err(Error::loader(format!(
                "write attempt counts {:?}",
                self.key
            )))?;
        self.dirty = false;
        Ok(())
    }
}
