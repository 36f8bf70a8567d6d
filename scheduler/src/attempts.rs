//! What the queue remembers about files still in `incoming/`: attempts
//! that counted against them, whether a worker died holding them, and
//! moves that failed.
//!
//! Kept in one object, `<state>/attempts.json`. Ticks hold the lease while
//! they update it, but a lease can expire under a slow tick, so the write
//! is conditional (`If-Match` on the ETag read, `If-None-Match: *` when
//! there was none) and a conflict is merged: the other writer's entries
//! stand, except those this tick changed, which take this tick's value.
//! An entry is for one version (ETag) of a key: a new version starts again.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use loader::store::{ObjectStore, PutMode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Conflicting writers are merged and retried this many times.
const SAVE_TRIES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub etag: String,
    /// Failures that counted against the file (its own fault).
    pub attempts: u32,
    pub last_error: String,
    pub last_at: DateTime<Utc>,
    /// A worker died or timed out with this file in a shared batch: it
    /// runs alone from now on, so a poison file only takes itself down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspect: bool,
    /// Moves out of `incoming/` that failed after the outcome was final.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub move_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Default)]
pub struct Attempts {
    key: String,
    /// The ETag of the object as read; `None` if it did not exist.
    etag: Option<String>,
    entries: BTreeMap<String, Attempt>,
    /// Keys this tick changed (or removed), for the merge on conflict.
    touched: BTreeSet<String>,
}

impl Attempts {
    pub async fn load(store: &dyn ObjectStore, key: &str) -> Result<Self> {
        let mut this = Self {
            key: key.to_owned(),
            ..Self::default()
        };
        (this.etag, this.entries) = read(store, key).await?;
        Ok(this)
    }

    fn entry(&mut self, key: &str, etag: &str) -> &mut Attempt {
        self.touched.insert(key.to_owned());
        let fresh = || Attempt {
            etag: etag.to_owned(),
            attempts: 0,
            last_error: String::new(),
            last_at: Utc::now(),
            suspect: false,
            move_failures: 0,
        };
        let entry = self.entries.entry(key.to_owned()).or_insert_with(fresh);
        if entry.etag != etag {
            *entry = fresh();
        }
        entry
    }

    /// The entry of this version, its last error set to `error`.
    fn noted(&mut self, key: &str, etag: &str, error: &str) -> &mut Attempt {
        let entry = self.entry(key, etag);
        entry.last_error = error.to_owned();
        entry.last_at = Utc::now();
        entry
    }

    /// Counts one more failed attempt; returns the total for this version.
    pub fn bump(&mut self, key: &str, etag: &str, error: &str) -> u32 {
        let entry = self.noted(key, etag, error);
        entry.attempts += 1;
        entry.attempts
    }

    /// Notes a failure that does not count (an outage), for `status`.
    pub fn note(&mut self, key: &str, etag: &str, error: &str) {
        self.noted(key, etag, error);
    }

    /// Marks the file as one that must run alone.
    pub fn suspect(&mut self, key: &str, etag: &str, error: &str) {
        self.noted(key, etag, error).suspect = true;
    }

    /// Counts a failed move; returns the total for this version.
    pub fn move_failed(&mut self, key: &str, etag: &str, error: &str) -> u32 {
        let entry = self.noted(key, etag, error);
        entry.move_failures += 1;
        entry.move_failures
    }

    /// Attempts so far for this version of `key`.
    pub fn get(&self, key: &str, etag: &str) -> u32 {
        self.current(key, etag).map_or(0, |a| a.attempts)
    }

    /// The entry for this version of `key`, if any.
    pub fn current(&self, key: &str, etag: &str) -> Option<&Attempt> {
        self.entries.get(key).filter(|a| a.etag == etag)
    }

    /// Forgets a key that left `incoming/`.
    pub fn forget(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.touched.insert(key.to_owned());
        }
    }

    /// Forgets every key not in `present`: files that left `incoming/`
    /// some other way (an operator, another tick). Only call it with a
    /// complete listing.
    pub fn prune(&mut self, present: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the counts back if this tick changed any, conditionally; on a
    /// conflict, re-reads, keeps the other writer's entries for keys this
    /// tick did not touch, and tries again.
    pub async fn save(&mut self, store: &dyn ObjectStore) -> Result<()> {
        if self.touched.is_empty() {
            return Ok(());
        }
        for _ in 0..SAVE_TRIES {
            let body =
                Bytes::from(serde_json::to_vec_pretty(&self.entries).expect("attempts serialise"));
            let mode = match &self.etag {
                Some(etag) => PutMode::Update(etag.clone()),
                None => PutMode::Create,
            };
            match store.put(&self.key, body, mode).await {
                Ok(etag) => {
                    self.etag = Some(etag);
                    self.touched.clear();
                    return Ok(());
                }
                Err(loader::Error::Precondition { .. }) => {
                    tracing::info!(key = %self.key, "attempt counts changed meanwhile; merging");
                    let (etag, mut theirs) = read(store, &self.key).await?;
                    for key in &self.touched {
                        match self.entries.get(key) {
                            Some(ours) => theirs.insert(key.clone(), ours.clone()),
                            None => theirs.remove(key),
                        };
                    }
                    self.etag = etag;
                    self.entries = theirs;
                }
                Err(e) => {
                    return Err(Error::loader(format!(
                        "write attempt counts {:?}",
                        self.key
                    ))(e))
                }
            }
        }
        Err(Error::loader(format!(
            "write attempt counts {:?}",
            self.key
        ))(loader::Error::Precondition {
            store: store.name().to_owned(),
            key: self.key.clone(),
            what: "other writers kept changing it",
        }))
    }
}

/// Reads the object: its ETag (`None` if missing) and entries.
async fn read(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<(Option<String>, BTreeMap<String, Attempt>)> {
    let (meta, buf) = match store.get_bytes(key, crate::STATE_MAX_BYTES).await {
        Ok(o) => o,
        Err(loader::Error::NotFound { .. }) => return Ok((None, BTreeMap::new())),
        Err(e) => return Err(Error::loader(format!("read attempt counts {key:?}"))(e)),
    };
    let entries = match serde_json::from_slice(&buf) {
        Ok(entries) => entries,
        // Losing counts only means more retries; refusing to tick would
        // stop the pipeline.
        Err(e) => {
            tracing::warn!(key, error = %e, "attempt counts unreadable; starting from zero");
            BTreeMap::new()
        }
    };
    Ok((Some(meta.etag), entries))
}
