//! The scheduler lease: at most one tick at a time per bucket.
//!
//! EventBridge may deliver a schedule twice, and a slow tick may overlap the
//! next. The lease is an object taken with a conditional create
//! (`If-None-Match: *`); an expired one is taken over with `If-Match` on its
//! ETag, so of two contenders exactly one wins. Released by a delete guarded
//! by our ETag, so we never delete a lease someone else took over.
//!
//! A lease naming the caller's own owner, when the caller says none of its
//! ticks is running (`reclaim_own`), is taken over like an expired one: it
//! is a leftover of a release that failed or of a create whose answer was
//! lost, and waiting out its TTL would stall the pipeline for nothing.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use loader::store::{ObjectStore, PutMode};
use loader::Error as LoaderError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    owner: String,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A lease we hold.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub owner: String,
    etag: String,
}

#[derive(Debug, Clone)]
pub enum Acquired {
    Yes(Lease),
    /// Someone else holds it until `expires_at`.
    HeldBy {
        owner: String,
        expires_at: DateTime<Utc>,
    },
}

pub async fn acquire(
    store: &dyn ObjectStore,
    key: &str,
    owner: &str,
    ttl: Duration,
    reclaim_own: bool,
) -> Result<Acquired> {
    let now = Utc::now();
    let body = Body {
        owner: owner.to_owned(),
        acquired_at: now,
        expires_at: now + ttl,
    };
    let bytes = Bytes::from(serde_json::to_vec(&body).expect("lease body serialises"));
    let lease = |etag| {
        Acquired::Yes(Lease {
            key: key.to_owned(),
            owner: owner.to_owned(),
            etag,
        })
    };
    // Two rounds: if the lease vanishes between our create and our read
    // (released), the second create normally wins.
    for _ in 0..2 {
        match store.put(key, bytes.clone(), PutMode::Create).await {
            Ok(etag) => return Ok(lease(etag)),
            Err(LoaderError::Precondition { .. }) => {}
            Err(e) => return Err(Error::loader(format!("take the lease {key:?}"))(e)),
        }
        let (current, etag) = match read(store, key).await {
            Ok(found) => found,
            Err(LoaderError::NotFound { .. }) => continue,
            Err(e) => return Err(Error::loader(format!("read the lease {key:?}"))(e)),
        };
        // An unreadable lease is treated as expired rather than blocking
        // the pipeline for ever.
        let live = |c: &Body| c.expires_at > now && !(reclaim_own && c.owner == owner);
        if let Some(cur) = current.filter(live) {
            return Ok(Acquired::HeldBy {
                owner: cur.owner,
                expires_at: cur.expires_at,
            });
        }
        return match store.put(key, bytes, PutMode::Update(etag)).await {
            Ok(etag) => {
                tracing::warn!(
                    lease = key,
                    "took over an expired lease, or our own leftover"
                );
                Ok(lease(etag))
            }
            // Someone else took it over first.
            Err(LoaderError::Precondition { .. }) => match read(store, key).await {
                Ok((Some(cur), _)) => Ok(Acquired::HeldBy {
                    owner: cur.owner,
                    expires_at: cur.expires_at,
                }),
                _ => Ok(Acquired::HeldBy {
                    owner: "unknown".into(),
                    expires_at: now,
                }),
            },
            Err(e) => Err(Error::loader(format!("take over the lease {key:?}"))(e)),
        };
    }
    Ok(Acquired::HeldBy {
        owner: "unknown (the lease kept changing)".into(),
        expires_at: now,
    })
}

async fn read(store: &dyn ObjectStore, key: &str) -> Result<(Option<Body>, String), LoaderError> {
    let (meta, bytes) = store.get_bytes(key, crate::STATE_MAX_BYTES).await?;
    Ok((serde_json::from_slice(&bytes).ok(), meta.etag))
}

/// Gives the lease back. If it was taken over meanwhile (we overran its
/// TTL), the new holder's lease is left alone and a warning logged.
pub async fn release(store: &dyn ObjectStore, lease: &Lease) {
    match store.delete(&lease.key, Some(&lease.etag)).await {
        Ok(()) => {}
        Err(LoaderError::Precondition { .. }) => {
            tracing::warn!(lease = %lease.key, "the lease was taken over before we released it; raise tick.lease_ttl_secs")
        }
        Err(e) => {
            tracing::warn!(lease = %lease.key, error = %loader::error::chain(&e), "could not release the lease; it expires by itself")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loader::store::LocalStore;

    fn held(a: &Acquired) -> bool {
        matches!(a, Acquired::HeldBy { .. })
    }

    #[tokio::test]
    async fn our_own_leftover_is_reclaimed_only_when_no_tick_of_ours_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let ttl = Duration::seconds(300);
        // A tick of ours took the lease and never released it.
        assert!(!held(
            &acquire(&store, "lease", "us", ttl, true).await.unwrap()
        ));
        // Another tick of ours still runs: the lease stands.
        assert!(held(
            &acquire(&store, "lease", "us", ttl, false).await.unwrap()
        ));
        // Someone else never reclaims it before it expires.
        assert!(held(
            &acquire(&store, "lease", "them", ttl, true).await.unwrap()
        ));
        // None of ours runs: it is a leftover, taken over at once, and the
        // new lease is the one a release deletes.
        let Acquired::Yes(lease) = acquire(&store, "lease", "us", ttl, true).await.unwrap() else {
            panic!("our leftover lease was not reclaimed");
        };
        release(&store, &lease).await;
        assert!(!held(
            &acquire(&store, "lease", "them", ttl, true).await.unwrap()
        ));
    }
}
