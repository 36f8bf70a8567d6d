//! The object store: the queue's only way to touch objects.
//!
//! The scheduler lists and moves through it, the loader reads through it.
//! Two backends: [`S3Store`] (any S3 API: AWS, SeaweedFS, moto) and
//! [`LocalStore`] (a directory; the embedded default). One conformance suite
//! (`tests/store_conformance.rs`) runs the same functions against all of them.

mod local;
mod s3;

pub use local::LocalStore;
pub use s3::S3Store;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::error::{Error, Result};

/// What a listing says about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// The ETag as the store returns it, quotes included. It changes whenever
    /// the object is written again, which is what the ledger and the move
    /// guard rely on.
    pub etag: String,
}

/// An object being read.
pub struct GetObject {
    pub meta: ObjectMeta,
    /// What the producer said the bytes are, where the store keeps it.
    pub content: Content,
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// The `Content-Encoding` and `Content-Type` an object was written with
/// (S3 keeps them; a local directory has neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    pub encoding: Option<String>,
    pub content_type: Option<String>,
}

/// The precondition of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Write whatever is there.
    Overwrite,
    /// `If-None-Match: *`: fail with [`Error::Precondition`] if the key exists.
    Create,
    /// `If-Match: <etag>`: fail with [`Error::Precondition`] unless the object
    /// exists with this ETag.
    Update(String),
}

/// The operations the queue needs, and their contracts.
///
/// * Keys are arbitrary UTF-8 up to 1,024 bytes. A backend that cannot hold a
///   key returns [`Error::InvalidKey`]; it never writes somewhere else.
/// * A put is atomic: readers see the old object or the new one, never a mix.
/// * Errors name the store and the key.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and errors: `s3://bucket` or `dir:/path`.
    fn name(&self) -> &str;

    /// Lists the objects whose key starts with `prefix`, in ascending byte
    /// order of key, one page at a time. Directory markers (keys ending in
    /// `/`) are skipped. Objects written during the listing may or may not
    /// appear.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<Vec<ObjectMeta>>>;

    /// [`ObjectStore::list`], starting after `start_after` (S3's
    /// `StartAfter`): only keys greater than it. Lets a listing too long
    /// for one tick continue where the last one stopped. The default filters
    /// a full listing; backends that can skip ahead override it.
    fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        start_after: &'a str,
    ) -> BoxStream<'a, Result<Vec<ObjectMeta>>> {
        use futures::StreamExt;
        self.list(prefix)
            .map(move |page| {
                page.map(|p| {
                    p.into_iter()
                        .filter(|m| m.key.as_str() > start_after)
                        .collect()
                })
            })
            .boxed()
    }

    /// The object's metadata; [`Error::NotFound`] if it is missing.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// The object's [`Content`] headers; [`Error::NotFound`] if it is
    /// missing. A store that keeps none answers empty ones (the default).
    async fn content(&self, key: &str) -> Result<Content> {
        self.head(key).await.map(|_| Content::default())
    }

    /// Opens the object for streaming. With `if_match`, fails with
    /// [`Error::Precondition`] if the object's ETag differs, so a reader never
    /// loads a version other than the one it was given.
    async fn get(&self, key: &str, if_match: Option<&str>) -> Result<GetObject>;

    /// Reads a small object whole (state, config), with its metadata: at
    /// most `max` bytes, else [`Error::InvalidKey`] naming the size, so a
    /// stray huge object cannot exhaust memory.
    async fn get_bytes(&self, key: &str, max: u64) -> Result<(ObjectMeta, Bytes)> {
        use tokio::io::AsyncReadExt;
        let object = self.get(key, None).await?;
        let mut buf = Vec::new();
        let read = object
            .body
            .take(max + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::Read {
                key: key.to_owned(),
                source: e,
            })?;
        if read as u64 > max {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: format!("larger than {max} bytes, the most read whole"),
            });
        }
        Ok((object.meta, Bytes::from(buf)))
    }

    /// Writes the object whole; returns its new ETag.
    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<String>;

    /// Deletes the object. With `if_match`, only if its ETag is still that
    /// one ([`Error::Precondition`] otherwise). Deleting a missing object
    /// succeeds: a retried delete must not fail.
    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()>;

    /// Copies `from` (the version described, where the backend can enforce
    /// it) to `to`, only if `to` does not exist (`If-None-Match: *` on S3; a
    /// check under the store's lock on a directory), atomically: two writers
    /// racing for `to` cannot both succeed. Fails with
    /// [`Error::Precondition`] if `to` exists *or* `from` no longer has the
    /// listed ETag (S3 answers 412 for both; [`place`] tells them apart).
    ///
    /// There is no overwriting copy: *never overwrite what you did not
    /// write* is kept by the port itself. Moves go through [`archive`].
    async fn copy_if_absent(&self, from: &ObjectMeta, to: &str) -> Result<()>;

    /// Whether `a` and `b` hold the same bytes. The default trusts equal
    /// ETags and sizes (S3 keeps a single-part object's MD5 ETag on copy);
    /// a store whose ETags change on copy compares the bytes.
    async fn same_content(&self, a: &ObjectMeta, b: &ObjectMeta) -> Result<bool> {
        Ok(a.size == b.size && a.etag == b.etag)
    }
}

/// Copies `from` to `to` without replacing a different object, and returns
/// the key that now holds the copy: `to` if it was free or already holds the
/// same bytes (a move that crashed after its copy, or the same file sent
/// again), otherwise the versioned name of `to` (see [`crate::layout`]).
/// Fails with [`Error::Precondition`] on `from` if the source changed or is
/// gone, and refuses (also a precondition error) if both names hold other
/// objects.
pub async fn place(store: &dyn ObjectStore, from: &ObjectMeta, to: &str) -> Result<String> {
    let mut target = to.to_owned();
    let source_changed = || Error::Precondition {
        store: store.name().to_owned(),
        key: from.key.clone(),
        what: "the object changed or went away since it was listed",
    };
    for _ in 0..3 {
        match store.copy_if_absent(from, &target).await {
            Ok(()) => return Ok(target),
            Err(Error::Precondition { .. }) => {}
            // Moved away by someone else (another tick): the same answer as
            // a changed source, so every caller treats the two alike.
            Err(Error::NotFound { key, .. }) if key == from.key => return Err(source_changed()),
            Err(e) => return Err(e),
        }
        // 412: either the target exists or the source changed.
        let existing = match store.head(&target).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => match store.head(&from.key).await {
                Ok(now) if now.etag == from.etag => continue, // the target went away: again
                Ok(_) | Err(Error::NotFound { .. }) => return Err(source_changed()),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if store.same_content(from, &existing).await? {
            return Ok(target);
        }
        let alt = crate::layout::versioned(to, &from.etag);
        if target == alt {
            return Err(Error::Precondition {
                store: store.name().to_owned(),
                key: alt,
                what: "both the plain and the versioned name hold other objects",
            });
        }
        target = alt;
    }
    Err(Error::Precondition {
        store: store.name().to_owned(),
        key: to.to_owned(),
        what: "the target kept changing while we copied",
    })
}

/// Moves `from` to `to` without replacing a different object ([`place`]),
/// then deletes the source if it still has the listed ETag. Returns the key
/// the object now has. If the source changed in between, the new version
/// stays where it is and [`Error::Precondition`] is returned; a crash
/// between the two steps leaves the object in both places, never in
/// neither.
pub async fn archive(store: &dyn ObjectStore, from: &ObjectMeta, to: &str) -> Result<String> {
    let placed = place(store, from, to).await?;
    store.delete(&from.key, Some(&from.etag)).await?;
    Ok(placed)
}

/// Opens the store named by a URL: `s3://bucket` or `dir:PATH` (a bare
/// path is also taken as a directory).
pub async fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    if url.starts_with("s3://") {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        open_with(url, &shared)
    } else {
        open_with(url, &aws_config::SdkConfig::builder().build())
    }
}

/// [`open`] with an AWS configuration already loaded (used for `s3://`).
pub fn open_with(url: &str, shared: &aws_config::SdkConfig) -> Result<Arc<dyn ObjectStore>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let bucket = rest.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(Error::config(
                "source.url",
                format!(
                    "{url:?}: expected s3://BUCKET (prefixes are set with source.incoming etc.)"
                ),
            ));
        }
        Ok(Arc::new(S3Store::from_shared(shared, bucket)))
    } else {
        let path = url.strip_prefix("dir:").unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(Error::config(
                "source.url",
                format!("{url:?}: expected s3://BUCKET or dir:PATH"),
            ));
        }
        Ok(Arc::new(LocalStore::new(path)?))
    }
}
