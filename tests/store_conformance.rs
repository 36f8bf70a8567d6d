//! The object store's contract, run against every backend: SeaweedFS,
//! moto's S3 and the local directory, with the same test functions.

use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt};
use loader::layout::versioned;
use loader::store::{archive, ObjectStore, PutMode};
use loader::Error;
use s3loader_e2e::*;

/// The key names every backend must carry unchanged. (A backslash is not
/// among them: SeaweedFS stores `a\\b` as `a/b`.)
fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "with space.csv",
        "quote'single\"double.csv",
        "plus+sign.csv",
        "percent%20literal%.csv",
        "bang!.csv",
        "semi;colon.csv",
        "amp&eq=q?.csv",
        "ünïcødé/日本語 файл.csv",
        "..dots/x.csv",
        "emoji 📦.csv",
    ]
    .iter()
    .map(|k| format!("incoming/{k}"))
    .collect();
    keys.push(thousand_byte_key(150));
    keys.sort();
    keys
}

/// A key of exactly 1,000 bytes, with multi-byte characters, in path
/// segments of at most `segment` bytes.
fn thousand_byte_key(segment: usize) -> String {
    let mut key = String::from("incoming/long/");
    let mut current = 0;
    while key.len() < 990 {
        if current + 7 > segment {
            key.push('/');
            current = 0;
        }
        key.push_str("é-key-");
        current += 7;
    }
    while key.len() < 1000 {
        key.push('k');
    }
    assert_eq!(key.len(), 1000);
    key
}

/// One segment of ~985 bytes: legal in S3, longer than any file name a
/// file system allows. SeaweedFS refuses it (KeyTooLongError: its filer
/// stores names of at most 255 bytes), so this runs on moto and the local
/// directory, which splits long segments.
pub async fn one_long_segment_key(store: Arc<dyn ObjectStore>) {
    let key = thousand_byte_key(2000);
    store
        .put(&key, Bytes::from_static(b"long"), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(keys(&*store, "incoming/").await, vec![key.clone()]);
    let meta = store.head(&key).await.unwrap();
    let to = key.replacen("incoming/", "processed/", 1);
    archive(&*store, &meta, &to).await.unwrap();
    assert_eq!(keys(&*store, "processed/").await, vec![to.clone()]);
    assert_eq!(read(&*store, &to).await, b"long");
}

/// Arbitrary keys (proptest, a fixed seed per run of `PROPTEST_SEED`,
/// default 0): each one put, listed back byte for byte, read, moved to
/// `processed/` and read there. A key a backend cannot carry names itself.
pub async fn arbitrary_keys_survive_put_list_move_read(store: Arc<dyn ObjectStore>) {
    let seed = std::env::var("PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let wanted = arbitrary_keys("incoming/", 48, seed);
    assert!(wanted.iter().any(|k| k.len() > 900), "no long key drawn");
    for k in &wanted {
        store
            .put(k, Bytes::from(k.clone()), PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e:?}"));
    }
    assert_eq!(keys(&*store, "incoming/").await, wanted);
    for k in &wanted {
        let meta = store
            .head(k)
            .await
            .unwrap_or_else(|e| panic!("head {k:?}: {e:?}"));
        assert_eq!(read(&*store, k).await, k.as_bytes(), "content of {k:?}");
        // The layout's name: a key near 1,024 bytes has a longer
        // `processed/` name than S3 takes, shortened by `fit`.
        let to = loader::layout::fit(k.replacen("incoming/", "processed/", 1));
        archive(&*store, &meta, &to)
            .await
            .unwrap_or_else(|e| panic!("move {k:?}: {e:?}"));
        assert_eq!(read(&*store, &to).await, k.as_bytes(), "content of {to:?}");
    }
    assert!(keys(&*store, "incoming/").await.is_empty());
    let mut moved: Vec<_> = wanted
        .iter()
        .map(|k| loader::layout::fit(k.replacen("incoming/", "processed/", 1)))
        .collect();
    moved.sort();
    assert_eq!(keys(&*store, "processed/").await, moved);
}

pub async fn hostile_keys_survive_list_and_move(store: Arc<dyn ObjectStore>) {
    let wanted = hostile_keys();
    for k in &wanted {
        store
            .put(k, Bytes::from(k.clone()), PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e:?}"));
    }
    assert_eq!(keys(&*store, "incoming/").await, wanted);
    let metas: Vec<_> = stream::iter(wanted.clone())
        .then(|k| {
            let store = store.clone();
            async move { store.head(&k).await.unwrap() }
        })
        .collect()
        .await;
    for m in &metas {
        let to = m.key.replacen("incoming/", "processed/", 1);
        assert_eq!(
            archive(&*store, m, &to)
                .await
                .unwrap_or_else(|e| panic!("move {:?}: {e:?}", m.key)),
            to
        );
    }
    assert!(keys(&*store, "incoming/").await.is_empty());
    let moved = keys(&*store, "processed/").await;
    let expected: Vec<_> = wanted
        .iter()
        .map(|k| k.replacen("incoming/", "processed/", 1))
        .collect();
    assert_eq!(moved, expected);
    for (orig, k) in wanted.iter().zip(&moved) {
        assert_eq!(read(&*store, k).await, orig.as_bytes(), "content of {k:?}");
    }
}

pub async fn conditional_put_get_delete(store: Arc<dyn ObjectStore>) {
    let k = "state/lease";
    let e1 = store
        .put(k, Bytes::from_static(b"one"), PutMode::Create)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put(k, Bytes::from_static(b"two"), PutMode::Create)
            .await,
        Err(Error::Precondition { .. })
    ));
    assert!(matches!(
        store
            .put(
                k,
                Bytes::from_static(b"two"),
                PutMode::Update("\"nope\"".into())
            )
            .await,
        Err(Error::Precondition { .. })
    ));
    let e2 = store
        .put(k, Bytes::from_static(b"two"), PutMode::Update(e1.clone()))
        .await
        .unwrap();
    assert_ne!(e1, e2);
    assert_eq!(store.head(k).await.unwrap().etag, e2);
    assert!(matches!(
        store.get(k, Some(&e1)).await,
        Err(Error::Precondition { .. })
    ));
    assert!(store.get(k, Some(&e2)).await.is_ok());
    assert!(matches!(
        store.delete(k, Some(&e1)).await,
        Err(Error::Precondition { .. })
    ));
    assert_eq!(read(&*store, k).await, b"two");
    store.delete(k, Some(&e2)).await.unwrap();
    assert!(matches!(store.head(k).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        store.get(k, None).await,
        Err(Error::NotFound { .. })
    ));
    // Deleting what is gone succeeds: a retried delete must not fail.
    store.delete(k, None).await.unwrap();
    // Create works again once it is gone.
    store
        .put(k, Bytes::from_static(b"three"), PutMode::Create)
        .await
        .unwrap();
}

pub async fn listing_is_paged_ordered_and_bounded_by_prefix(store: Arc<dyn ObjectStore>) {
    let n = 1100;
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let store = store.clone();
            async move {
                put(
                    &*store,
                    &format!("incoming/p/{i:05}.csv"),
                    Bytes::from_static(b"x"),
                )
                .await;
            }
        })
        .await;
    put(&*store, "incoming/q.csv", Bytes::from_static(b"x")).await;
    put(&*store, "incoming-not/p.csv", Bytes::from_static(b"x")).await;
    let pages: Vec<_> = store.list("incoming/p/").collect().await;
    assert!(
        pages.len() >= 2,
        "1,100 keys come in more than one page, got {}",
        pages.len()
    );
    let listed: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.unwrap())
        .map(|m| m.key)
        .collect();
    assert_eq!(listed.len(), n);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "ascending order");
    assert_eq!(keys(&*store, "incoming/").await.len(), n + 1);
}

/// A listing can go on after a key, as a tick whose listing was cut short
/// does.
pub async fn listing_goes_on_after_a_key(store: Arc<dyn ObjectStore>) {
    for k in [
        "incoming/a",
        "incoming/b/1",
        "incoming/b/2",
        "incoming/c",
        "other/z",
    ] {
        store
            .put(k, Bytes::from_static(b"x"), PutMode::Overwrite)
            .await
            .unwrap();
    }
    let after: Vec<String> = store
        .list_after("incoming/", "incoming/b/1")
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|p| p.unwrap())
        .map(|m| m.key)
        .collect();
    assert_eq!(after, vec!["incoming/b/2", "incoming/c"]);
}

pub async fn move_refuses_to_delete_a_changed_object(store: Arc<dyn ObjectStore>) {
    let k = "incoming/changing.csv";
    store
        .put(k, Bytes::from_static(b"v1"), PutMode::Overwrite)
        .await
        .unwrap();
    let listed = store.head(k).await.unwrap();
    // Distinct content and (for the local store) a distinct inode.
    store
        .put(k, Bytes::from_static(b"version 2"), PutMode::Overwrite)
        .await
        .unwrap();
    let err = archive(&*store, &listed, "processed/changing.csv")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Precondition { .. }), "{err:?}");
    assert_eq!(
        read(&*store, k).await,
        b"version 2",
        "the new version stays in incoming/"
    );
}

pub async fn directory_markers_are_not_objects(store: Arc<dyn ObjectStore>) {
    store
        .put("incoming/dir/", Bytes::new(), PutMode::Overwrite)
        .await
        .unwrap();
    put(&*store, "incoming/dir/a.csv", Bytes::from_static(b"x")).await;
    assert_eq!(
        keys(&*store, "incoming/").await,
        vec!["incoming/dir/a.csv".to_string()]
    );
}

pub async fn multipart_copy_above_threshold(store: loader::store::S3Store) {
    let store = store.with_multipart_copy(5 * 1024 * 1024, 5 * 1024 * 1024);
    let body: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    store
        .put(
            "incoming/big.bin",
            Bytes::from(body.clone()),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let meta = store.head("incoming/big.bin").await.unwrap();
    archive(&store, &meta, "processed/big bin+é.bin")
        .await
        .unwrap();
    assert!(matches!(
        store.head("incoming/big.bin").await,
        Err(Error::NotFound { .. })
    ));
    let copied = read(&store, "processed/big bin+é.bin").await;
    assert_eq!(copied.len(), body.len());
    assert!(copied == body, "multipart copy preserved the bytes");
}

/// `copy_if_absent` and the archive built on it never replace a different
/// object; the same bytes again leave one copy; a changed source is refused.
pub async fn archive_never_replaces_a_different_object(store: Arc<dyn ObjectStore>) {
    let s = &*store;
    let put = |k: &'static str, v: &'static [u8]| async move {
        s.put(k, Bytes::from_static(v), PutMode::Overwrite)
            .await
            .unwrap();
    };
    put("incoming/a.csv", b"new").await;
    put("processed/a.csv", b"old, someone else's").await;
    let a = s.head("incoming/a.csv").await.unwrap();
    let err = s.copy_if_absent(&a, "processed/a.csv").await.unwrap_err();
    assert!(matches!(err, Error::Precondition { .. }), "{err:?}");
    assert_eq!(read(s, "processed/a.csv").await, b"old, someone else's");
    let to = archive(s, &a, "processed/a.csv").await.unwrap();
    assert_eq!(to, versioned("processed/a.csv", &a.etag));
    assert_eq!(read(s, &to).await, b"new");
    assert_eq!(read(s, "processed/a.csv").await, b"old, someone else's");
    assert!(matches!(
        s.head("incoming/a.csv").await,
        Err(Error::NotFound { .. })
    ));

    put("incoming/b.csv", b"same bytes").await;
    put("processed/b.csv", b"same bytes").await;
    let b = s.head("incoming/b.csv").await.unwrap();
    assert_eq!(
        archive(s, &b, "processed/b.csv").await.unwrap(),
        "processed/b.csv"
    );
    assert_eq!(keys(s, "processed/").await.len(), 3);

    put("incoming/c.csv", b"v1").await;
    let c = s.head("incoming/c.csv").await.unwrap();
    put("incoming/c.csv", b"version 2").await;
    let err = archive(s, &c, "processed/c.csv").await.unwrap_err();
    assert!(
        matches!(&err, Error::Precondition { key, .. } if key == "incoming/c.csv"),
        "{err:?}"
    );
    assert!(matches!(
        s.head("processed/c.csv").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(read(s, "incoming/c.csv").await, b"version 2");

    // Gone since it was listed (another tick moved it): the same answer.
    let c2 = s.head("incoming/c.csv").await.unwrap();
    s.delete("incoming/c.csv", None).await.unwrap();
    let err = archive(s, &c2, "processed/c.csv").await.unwrap_err();
    assert!(
        matches!(&err, Error::Precondition { key, .. } if key == "incoming/c.csv"),
        "{err:?}"
    );
}

/// Known difference, asserted so that it is noticed when it changes: moto
/// 5.2 ignores `If-None-Match` on CopyObject (and `x-amz-copy-source-if-match`),
/// so a conditional copy there overwrites. AWS S3 and SeaweedFS answer 412
/// (`archive_never_replaces_a_different_object` above); `reprocess` also
/// looks before it copies, so it is safe on moto too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_ignores_if_none_match_on_copy() {
    let store = s3loader_e2e::moto().await;
    store
        .put("a", Bytes::from_static(b"new"), PutMode::Overwrite)
        .await
        .unwrap();
    store
        .put("b", Bytes::from_static(b"old"), PutMode::Overwrite)
        .await
        .unwrap();
    let a = store.head("a").await.unwrap();
    assert!(store.copy_if_absent(&a, "b").await.is_ok());
    assert_eq!(read(&store, "b").await, b"new");
}

s3loader_e2e::on_stores!(
    [local_dir, seaweedfs, moto]
    [
        hostile_keys_survive_list_and_move,
        arbitrary_keys_survive_put_list_move_read,
        conditional_put_get_delete,
        listing_is_paged_ordered_and_bounded_by_prefix,
        move_refuses_to_delete_a_changed_object,
        listing_goes_on_after_a_key,
    ]
);

/// Conditional copies: not on moto, which ignores the conditions (above).
mod conditional_copy {
    use super::archive_never_replaces_a_different_object;
    s3loader_e2e::on_stores!([seaweedfs, local_dir][archive_never_replaces_a_different_object]);
}

/// One very long segment: not on SeaweedFS (see the rule).
mod long_segment {
    use super::one_long_segment_key;
    s3loader_e2e::on_stores!([moto, local_dir][one_long_segment_key]);
}

/// S3 only: a local directory has no directory markers or multipart copy.
/// Multipart copy is not run on moto: moto 5.2 answers
/// CompleteMultipartUpload with a `CompleteMultipartUploadResponse` XML
/// root, which aws-sdk-rust rightly rejects.
mod s3_only {
    use super::directory_markers_are_not_objects;
    s3loader_e2e::on_stores!([seaweedfs, moto][directory_markers_are_not_objects]);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seaweedfs_multipart_copy() {
        super::multipart_copy_above_threshold(s3loader_e2e::seaweedfs().await).await;
    }
}

/// Local only: no key reaches outside the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_keys_never_escape_the_root() {
    let (store, dir) = s3loader_e2e::local();
    for key in [
        "../escape.csv",
        "incoming/../../escape.csv",
        "/etc/passwd-ish",
        "incoming//x",
        ".s3loader/lock",
    ] {
        let err = store
            .put(key, Bytes::from_static(b"x"), PutMode::Overwrite)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err:?}");
    }
    assert!(!dir.path().join("escape.csv").exists());
    assert!(!std::path::Path::new("/etc/passwd-ish").exists());
}
