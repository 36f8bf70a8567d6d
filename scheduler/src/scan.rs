//! Listing `incoming/`: the backlog counts and the X oldest files.

use std::collections::{BTreeSet, BinaryHeap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use loader::store::{ObjectMeta, ObjectStore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The backlog as one listing saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    pub files: u64,
    pub bytes: u64,
    pub oldest: Option<DateTime<Utc>>,
    /// False if the listing stopped at the deadline: the counts are then
    /// lower bounds.
    pub complete: bool,
}

impl Backlog {
    /// Counts one more object.
    pub fn add(&mut self, meta: &ObjectMeta) {
        self.files += 1;
        self.bytes += meta.size;
        self.oldest = Some(match self.oldest {
            Some(t) => t.min(meta.last_modified),
            None => meta.last_modified,
        });
    }

    pub fn oldest_age_secs(&self, now: DateTime<Utc>) -> u64 {
        self.oldest
            .map(|t| (now - t).num_seconds().max(0) as u64)
            .unwrap_or(0)
    }
}

/// Orders by (last modified, key): oldest first, ties by key.
#[derive(Debug, PartialEq, Eq)]
struct ByAge(ObjectMeta);

impl Ord for ByAge {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.last_modified, &self.0.key).cmp(&(other.0.last_modified, &other.0.key))
    }
}

impl PartialOrd for ByAge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Lists `prefix` page by page until done or `deadline`, counting the
/// backlog and keeping the `max_files` oldest objects in a bounded heap
/// (memory is O(max_files) whatever the backlog). Of those, returns the
/// oldest that fit in `max_bytes`, oldest first; at least one, so a file
/// larger than `max_bytes` is not stuck for ever.
pub async fn scan(
    store: &dyn ObjectStore,
    prefix: &str,
    max_files: usize,
    max_bytes: u64,
    deadline: Instant,
) -> Result<(Backlog, Vec<ObjectMeta>)> {
    let s = scan_with(
        store,
        prefix,
        None,
        max_files,
        max_bytes,
        deadline,
        &BTreeSet::new(),
        &|_| false,
    )
    .await?;
    Ok((s.backlog, s.selected))
}

/// Counts everything under `prefix` (no selection, no deadline: an
/// operator asked for the whole count), reporting each page to `progress`.
pub async fn count(
    store: &dyn ObjectStore,
    prefix: &str,
    progress: &dyn crate::progress::Progress,
) -> Result<Backlog> {
    let mut backlog = Backlog {
        complete: true,
        ..Backlog::default()
    };
    progress.start(&format!("listing {prefix}"), None);
    let mut pages = store.list(prefix);
    while let Some(page) = pages.next().await {
        let page = page.map_err(Error::loader(format!(
            "list {prefix:?} in {}",
            store.name()
        )))?;
        page.iter().for_each(|m| backlog.add(m));
        progress.advance(page.len() as u64);
    }
    Ok(backlog)
}

/// What [`scan_with`] found.
#[derive(Debug, Default)]
pub struct Scan {
    pub backlog: Backlog,
    /// The oldest files that fit, oldest first.
    pub selected: Vec<ObjectMeta>,
    /// Those of the watched keys the listing saw.
    pub seen: BTreeSet<String>,
    /// Files counted in the backlog but passed over because `skip` said so.
    pub skipped: Vec<ObjectMeta>,
    /// The last key listed, if the listing stopped before the end: where
    /// the next listing goes on.
    pub stopped_after: Option<String>,
}

/// [`scan`], starting after `start_after` if given, also noting which of
/// `watched` exist and passing over (not selecting) the files `skip` names.
#[allow(clippy::too_many_arguments)]
pub async fn scan_with(
    store: &dyn ObjectStore,
    prefix: &str,
    start_after: Option<&str>,
    max_files: usize,
    max_bytes: u64,
    deadline: Instant,
    watched: &BTreeSet<String>,
    skip: &dyn Fn(&ObjectMeta) -> bool,
) -> Result<Scan> {
    let mut seen = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut backlog = Backlog {
        complete: true,
        ..Backlog::default()
    };
    // A max-heap of the youngest kept on top, so it is the one evicted.
    let mut heap: BinaryHeap<ByAge> = BinaryHeap::with_capacity(max_files + 1);
    let mut pages = match start_after {
        Some(after) => store.list_after(prefix, after),
        None => store.list(prefix),
    };
    let mut last: Option<String> = None;
    let mut stopped_after = None;
    while let Some(page) = pages.next().await {
        let page = page.map_err(Error::loader(format!(
            "list {prefix:?} in {}",
            store.name()
        )))?;
        if let Some(m) = page.last() {
            last = Some(m.key.clone());
        }
        for meta in page {
            backlog.add(&meta);
            if watched.contains(&meta.key) {
                seen.insert(meta.key.clone());
            }
            if skip(&meta) {
                skipped.push(meta);
                continue;
            }
            if max_files > 0 {
                heap.push(ByAge(meta));
                if heap.len() > max_files {
                    heap.pop();
                }
            }
        }
        if Instant::now() >= deadline {
            backlog.complete = false;
            stopped_after = last.clone();
            break;
        }
    }
    let mut budget = max_bytes;
    let selected = heap
        .into_sorted_vec()
        .into_iter()
        .map(|ByAge(m)| m)
        .enumerate()
        .take_while(|(i, m)| {
            let fits = m.size <= budget || *i == 0;
            budget = budget.saturating_sub(m.size);
            fits
        })
        .map(|(_, m)| m)
        .collect();
    Ok(Scan {
        backlog,
        selected,
        seen,
        skipped,
        stopped_after,
    })
}
