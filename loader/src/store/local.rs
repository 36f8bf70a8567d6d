//! [`ObjectStore`] over a local directory: the embedded default's bucket.
//!
//! Key `a/b/c.csv` is the file `ROOT/a/b/c.csv`. What S3 allows and a file
//! system does not is handled here, not by callers:
//! * a key segment is its own file name up to the file system's limit (255
//!   bytes), so a file a producer puts straight into the directory is found
//!   under the name it has; only a longer segment (which no file system
//!   name can be) is split into directories whose names end in `~~s3l`,
//!   meaning "continued, no slash";
//! * `ROOT/.s3loader/` holds temporary files and the lock, and is not part
//!   of the key space;
//! * `..`, `.`, empty segments and absolute keys are refused, so no key can
//!   reach outside the root.
//!
//! Writes go to a temporary file that is renamed into place, so they are
//! atomic. Conditional writes and deletes hold an advisory lock (`flock`) on
//! `ROOT/.s3loader/lock`, which makes them atomic across processes that use
//! this store on the same directory.
//!
//! The ETag is derived from inode, modification time and size: every write
//! creates a new inode, so a rewritten file always gets a new ETag.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};

use super::{GetObject, ObjectMeta, ObjectStore, PutMode};
use crate::error::{Error, Result};

const RESERVED: &str = ".s3loader";
const CONTINUED: &str = "~~s3l";
/// Linux allows 255 bytes per name: a segment up to that is kept whole.
const MAX_NAME: usize = 255;
const MAX_KEY: usize = 1024;
const PAGE: usize = 1000;

/// A directory used as a bucket.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    name: String,
}

impl LocalStore {
    /// Opens (creating if needed) the directory at `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let io_err = |e: io::Error| Error::Store {
            op: "open",
            store: format!("dir:{}", root.display()),
            key: String::new(),
            code: None,
            retryable: false,
            source: Box::new(e),
        };
        fs::create_dir_all(root.join(RESERVED).join("tmp")).map_err(io_err)?;
        let root = root.canonicalize().map_err(io_err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: format!("dir:{}", root.display()),
                root,
            }),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Store {
                op: "run",
                store: self.inner.name.clone(),
                key: String::new(),
                code: None,
                retryable: true,
                source: Box::new(e),
            })?
    }
}

/// Maps a key to a path relative to the root, or refuses it.
fn key_to_rel(key: &str) -> Result<PathBuf> {
    let invalid = |reason: &str| {
        Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if key.is_empty() {
        return invalid("empty key");
    }
    if key.len() > MAX_KEY {
        return invalid("longer than 1,024 bytes");
    }
    if key.contains('\0') {
        return invalid("contains NUL");
    }
    let mut rel = PathBuf::new();
    for (i, segment) in key.split('/').enumerate() {
        match segment {
            "" => return invalid("empty path segment (leading, trailing or double '/')"),
            "." | ".." => return invalid("'.' or '..' segment would leave the store's root"),
            RESERVED if i == 0 => return invalid("'.s3loader/' is reserved by the local store"),
            s if s.ends_with(CONTINUED) => {
                return invalid("segments ending in '~~s3l' are reserved")
            }
            _ => {}
        }
        let mut rest = segment;
        while rest.len() > MAX_NAME {
            let mut cut = MAX_NAME - CONTINUED.len();
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            rel.push(format!("{}{CONTINUED}", &rest[..cut]));
            rest = &rest[cut..];
        }
        rel.push(rest);
    }
    Ok(rel)
}

fn etag(md: &fs::Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}\"",
        md.ino(),
        md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
        md.size()
    )
}

fn meta(key: &str, md: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: md.size(),
        last_modified: md.modified().map(DateTime::<Utc>::from).unwrap_or_default(),
        etag: etag(md),
    }
}

impl Inner {
    fn io(&self, op: &'static str, key: &str, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            return Error::NotFound {
                store: self.name.clone(),
                key: key.to_owned(),
            };
        }
        // Disk full, permissions and the like do not fix themselves within a
        // tick, but they are not the file's fault either: retry.
        Error::Store {
            op,
            store: self.name.clone(),
            key: key.to_owned(),
            code: e.raw_os_error().map(|c| format!("errno {c}")),
            retryable: true,
            source: Box::new(e),
        }
    }

    fn precondition(&self, key: &str, what: &'static str) -> Error {
        Error::Precondition {
            store: self.name.clone(),
            key: key.to_owned(),
            what,
        }
    }

    fn lock(&self, key: &str) -> Result<File> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(RESERVED).join("lock"))
            .map_err(|e| self.io("lock for", key, e))?;
        lock.lock().map_err(|e| self.io("lock for", key, e))?;
        Ok(lock)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(RESERVED)
            .join("tmp")
            .join(uuid::Uuid::new_v4().to_string())
    }

    /// Current ETag of `path`, or None if it does not exist.
    fn current_etag(&self, key: &str, path: &Path) -> Result<Option<String>> {
        match fs::metadata(path) {
            Ok(md) => Ok(Some(etag(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("stat", key, e)),
        }
    }

    /// Renames a finished temporary file to `key`, checking `mode` under the
    /// lock. Returns the new ETag.
    fn install(&self, tmp: &Path, key: &str, mode: &PutMode) -> Result<String> {
        let path = self.root.join(key_to_rel(key)?);
        let _lock = self.lock(key)?;
        let current = self.current_etag(key, &path)?;
        match (mode, current) {
            (PutMode::Create, Some(_)) => {
                return Err(self.precondition(key, "the object already exists"))
            }
            (PutMode::Update(want), have) if have.as_deref() != Some(want.as_str()) => {
                return Err(self.precondition(key, "the object's ETag changed"))
            }
            _ => {}
        }
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(|e| self.io("create directory for", key, e))?;
        fs::rename(tmp, &path).map_err(|e| self.io("rename into", key, e))?;
        // Make the rename itself durable before we report success.
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
        let md = fs::metadata(&path).map_err(|e| self.io("stat", key, e))?;
        Ok(etag(&md))
    }

    fn remove_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("list", prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io("list", prefix, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: not something we wrote
                };
                if key_prefix.is_empty() && name == RESERVED {
                    continue;
                }
                let ft = entry.file_type().map_err(|e| self.io("list", prefix, e))?;
                if ft.is_dir() {
                    let sub = match name.strip_suffix(CONTINUED) {
                        Some(part) => format!("{key_prefix}{part}"),
                        None => format!("{key_prefix}{name}/"),
                    };
                    if prefix.starts_with(&sub) || sub.starts_with(prefix) {
                        stack.push((entry.path(), sub));
                    }
                } else if ft.is_file() {
                    let key = format!("{key_prefix}{name}");
                    if key.starts_with(prefix) {
                        match entry.metadata() {
                            Ok(md) => out.push(meta(&key, &md)),
                            // Moved away while we listed: not there any more.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(self.io("list", &key, e)),
                        }
                    }
                }
            }
        }
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<Vec<ObjectMeta>>> {
        // The walk is done once and handed out in pages, like S3's.
        let prefix = prefix.to_owned();
        stream::once(self.blocking(move |inner| inner.walk(&prefix)))
            .flat_map(|all| {
                let pages: Vec<Result<Vec<ObjectMeta>>> = match all {
                    Ok(all) => all.chunks(PAGE).map(|c| Ok(c.to_vec())).collect(),
                    Err(e) => vec![Err(e)],
                };
                stream::iter(pages)
            })
            .boxed()
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let key = key.to_owned();
        self.blocking(move |inner| {
            let path = inner.root.join(key_to_rel(&key)?);
            let md = fs::metadata(&path).map_err(|e| inner.io("head", &key, e))?;
            if !md.is_file() {
                return Err(Error::NotFound {
                    store: inner.name.clone(),
                    key,
                });
            }
            Ok(meta(&key, &md))
        })
        .await
    }

    async fn get(&self, key: &str, if_match: Option<&str>) -> Result<GetObject> {
        let key = key.to_owned();
        let if_match = if_match.map(str::to_owned);
        let (meta, file) = self
            .blocking(move |inner| {
                let path = inner.root.join(key_to_rel(&key)?);
                let file = File::open(&path).map_err(|e| inner.io("get", &key, e))?;
                let md = file.metadata().map_err(|e| inner.io("get", &key, e))?;
                if !md.is_file() {
                    return Err(Error::NotFound {
                        store: inner.name.clone(),
                        key,
                    });
                }
                let meta = meta(&key, &md);
                if if_match.is_some_and(|want| want != meta.etag) {
                    return Err(inner.precondition(&key, "the object's ETag changed"));
                }
                Ok((meta, file))
            })
            .await?;
        Ok(GetObject {
            meta,
            content: Default::default(),
            body: Box::pin(tokio::fs::File::from_std(file)),
        })
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<String> {
        let key = key.to_owned();
        self.blocking(move |inner| {
            key_to_rel(&key)?;
            let tmp = inner.tmp_path();
            let written = File::create(&tmp).and_then(|mut f| {
                f.write_all(&body)?;
                f.sync_all()
            });
            let result = written
                .map_err(|e| inner.io("put", &key, e))
                .and_then(|()| inner.install(&tmp, &key, &mode));
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        })
        .await
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let key = key.to_owned();
        let if_match = if_match.map(str::to_owned);
        self.blocking(move |inner| {
            let path = inner.root.join(key_to_rel(&key)?);
            let _lock = inner.lock(&key)?;
            match (inner.current_etag(&key, &path)?, if_match) {
                (None, _) => return Ok(()),
                (Some(have), Some(want)) if have != want => {
                    return Err(inner.precondition(&key, "the object's ETag changed"))
                }
                _ => {}
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(inner.io("delete", &key, e)),
            }
            inner.remove_empty_parents(&path);
            Ok(())
        })
        .await
    }

    async fn copy_if_absent(&self, from: &ObjectMeta, to: &str) -> Result<()> {
        let from = from.clone();
        let to = to.to_owned();
        self.blocking(move |inner| {
            key_to_rel(&to)?;
            let src = inner.root.join(key_to_rel(&from.key)?);
            // The open file keeps the inode we checked even if the path is
            // replaced meanwhile, so we copy exactly the listed version.
            let mut file = File::open(&src).map_err(|e| inner.io("copy", &from.key, e))?;
            let md = file
                .metadata()
                .map_err(|e| inner.io("copy", &from.key, e))?;
            if etag(&md) != from.etag {
                return Err(inner.precondition(&from.key, "the object's ETag changed"));
            }
            let tmp = inner.tmp_path();
            let copied = File::create(&tmp).and_then(|mut out| {
                io::copy(&mut file, &mut out)?;
                out.sync_all()
            });
            let result = copied
                .map_err(|e| inner.io("copy", &from.key, e))
                .and_then(|()| inner.install(&tmp, &to, &PutMode::Create));
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result.map(|_| ())
        })
        .await
    }

    /// A copy here is a new inode, hence a new ETag: compare the bytes.
    async fn same_content(&self, a: &ObjectMeta, b: &ObjectMeta) -> Result<bool> {
        if a.size != b.size {
            return Ok(false);
        }
        let (a, b) = (a.key.clone(), b.key.clone());
        self.blocking(move |inner| {
            use std::io::Read;
            let open = |key: &str| {
                let path = inner.root.join(key_to_rel(key)?);
                File::open(path)
                    .map(|f| io::BufReader::with_capacity(64 * 1024, f))
                    .map_err(|e| inner.io("compare", key, e))
            };
            let (mut fa, mut fb) = (open(&a)?, open(&b)?);
            let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            loop {
                let n = fa.read(&mut ba).map_err(|e| inner.io("compare", &a, e))?;
                if n == 0 {
                    let m = fb
                        .read(&mut bb[..1])
                        .map_err(|e| inner.io("compare", &b, e))?;
                    return Ok(m == 0);
                }
                if fb
                    .read_exact(&mut bb[..n])
                    .map(|()| ba[..n] != bb[..n])
                    .unwrap_or(true)
                {
                    return Ok(false);
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_or_collide_are_refused() {
        for key in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/../../x",
            "a/./b",
            ".s3loader/lock",
            "x~~s3l/y",
            "nul\0",
        ] {
            assert!(key_to_rel(key).is_err(), "{key:?} should be refused");
        }
        assert!(key_to_rel("incoming/..hidden/x").is_ok());
    }

    #[test]
    fn long_segments_split_on_char_boundaries_and_round_trip() {
        let key = format!("incoming/{}", "é".repeat(450));
        let rel = key_to_rel(&key).unwrap();
        let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap().to_owned()).collect();
        assert!(parts.len() > 3);
        assert!(parts.iter().all(|p| p.len() <= MAX_NAME));
        let mut back = String::new();
        for (i, p) in parts.iter().enumerate() {
            match p.strip_suffix(CONTINUED) {
                Some(part) => back.push_str(part),
                None => {
                    back.push_str(p);
                    if i + 1 < parts.len() {
                        back.push('/');
                    }
                }
            }
        }
        assert_eq!(back, key);
    }
}
