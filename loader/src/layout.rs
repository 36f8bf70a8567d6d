//! The object layout in the bucket: the one place that names keys.
//!
//! ```text
//! incoming/<path>               the queue
//! processed/<path>              loaded files
//! failed/<path>                 permanently failed files
//! errors/<failed path>.json     one report per failure
//! _s3loader/<name>              the lease, attempt counts, the list cursor
//! ```
//!
//! **Collisions.** An archive key (`processed/…`, `failed/…`) that already
//! holds a *different* object is never replaced: the file goes to its
//! *versioned* name instead, `<stem>~v<tag><extensions>` in the same folder,
//! where `<tag>` is 12 hex digits derived from the file's ETag
//! (`orders/a.csv.gz` → `orders/a~v1f3c…9e.csv.gz`). Keeping the extensions
//! last keeps compression detection and routes working on reprocess. A
//! report whose name is taken goes to `errors/<failed path>~<tick id>.json`.
//! Every caller asks here; nobody formats these keys by hand.

use std::borrow::Cow;

use crate::config::SourceConfig;

/// Length of the version tag, in hex digits.
const TAG: usize = 12;

impl SourceConfig {
    /// `key` relative to `incoming/` (the key itself if it is elsewhere).
    pub fn relative<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(&self.incoming).unwrap_or(key)
    }

    /// `incoming/<rel>`.
    pub fn incoming_key(&self, rel: &str) -> String {
        format!("{}{rel}", self.incoming)
    }

    /// Where a loaded file goes: `processed/<path>`.
    pub fn processed_key(&self, key: &str) -> String {
        format!("{}{}", self.processed, self.relative(key))
    }

    /// Where a failed file goes: `failed/<path>`.
    pub fn failed_key(&self, key: &str) -> String {
        format!("{}{}", self.failed, self.relative(key))
    }

    /// The report of the file archived at `failed_key`.
    pub fn report_key(&self, failed_key: &str) -> String {
        let rel = failed_key.strip_prefix(&self.failed).unwrap_or(failed_key);
        format!("{}{rel}.json", self.errors)
    }

    /// The report's name when [`SourceConfig::report_key`] is taken by an
    /// earlier report: both are kept.
    pub fn report_key_for_tick(&self, failed_key: &str, tick_id: &str) -> String {
        let rel = failed_key.strip_prefix(&self.failed).unwrap_or(failed_key);
        format!("{}{rel}~{tick_id}.json", self.errors)
    }

    /// `_s3loader/<name>`: the scheduler's own objects.
    pub fn state_key(&self, name: &str) -> String {
        format!("{}{name}", self.state)
    }

    /// Where `failed/<path>` goes back to on reprocess: `incoming/<path>`,
    /// with a version tag this layout added taken off again.
    pub fn reprocess_key(&self, failed_key: &str) -> String {
        let rel = failed_key.strip_prefix(&self.failed).unwrap_or(failed_key);
        self.incoming_key(&unversioned(rel))
    }
}

/// The tag of one version (ETag) of an object: 12 hex digits of a 64-bit
/// FNV-1a hash of the ETag, so any store's ETag format gives the same
/// length and alphabet.
pub fn version_tag(etag: &str) -> String {
    format!("{:016x}", fnv1a(etag.trim_matches('"').as_bytes()))[..TAG].to_owned()
}

/// FNV-1a, 64 bits: a stable name for some bytes (not a defence against
/// an adversary; names that must not collide carry a unique part too).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Splits the last segment of `key` into (folder + stem, extensions): the
/// extensions start at the first `.` after the stem's first character.
fn split_ext(key: &str) -> (&str, &str) {
    let name_at = key.rfind('/').map_or(0, |i| i + 1);
    let name = &key[name_at..];
    match name.char_indices().skip(1).find(|&(_, c)| c == '.') {
        Some((i, _)) => key.split_at(name_at + i),
        None => (key, ""),
    }
}

/// `key` with the version tag of `etag`: `a/b.csv.gz` → `a/b~v<tag>.csv.gz`.
pub fn versioned(key: &str, etag: &str) -> String {
    let (stem, ext) = split_ext(key);
    format!("{stem}~v{}{ext}", version_tag(etag))
}

/// `key` without a version tag added by [`versioned`]; unchanged if it has
/// none.
pub fn unversioned(key: &str) -> Cow<'_, str> {
    let (stem, ext) = split_ext(key);
    match stem.len().checked_sub(TAG + 2) {
        Some(at)
            if stem[at..].starts_with("~v")
                && stem[at + 2..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Cow::Owned(format!("{}{ext}", &stem[..at]))
        }
        _ => Cow::Borrowed(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_names_keep_extensions_and_round_trip() {
        let tag = version_tag("\"abc\"");
        assert_eq!(tag.len(), TAG);
        assert_eq!(tag, version_tag("abc"), "quotes do not matter");
        assert_ne!(tag, version_tag("\"abd\""));
        for (key, want) in [
            ("orders/a.csv.gz", format!("orders/a~v{tag}.csv.gz")),
            ("orders/noext", format!("orders/noext~v{tag}")),
            ("orders/.hidden", format!("orders/.hidden~v{tag}")),
            ("x.y/it's ü 100%.csv", format!("x.y/it's ü 100%~v{tag}.csv")),
            ("top.csv", format!("top~v{tag}.csv")),
        ] {
            let v = versioned(key, "\"abc\"");
            assert_eq!(v, want);
            assert_eq!(unversioned(&v), key);
        }
        assert_eq!(unversioned("a/b~vnothex00000.csv"), "a/b~vnothex00000.csv");
        assert_eq!(unversioned("a/b.csv"), "a/b.csv");
    }

    #[test]
    fn keys_come_from_the_configured_prefixes() {
        let src: SourceConfig = toml::from_str(
            "url = \"dir:x\"\nincoming = \"in/\"\nprocessed = \"done/\"\nfailed = \"bad/\"\nerrors = \"why/\"",
        )
        .unwrap();
        assert_eq!(src.processed_key("in/a/b.csv"), "done/a/b.csv");
        assert_eq!(src.failed_key("in/a/b.csv"), "bad/a/b.csv");
        assert_eq!(src.report_key("bad/a/b.csv"), "why/a/b.csv.json");
        assert_eq!(
            src.report_key_for_tick("bad/a/b.csv", "T1"),
            "why/a/b.csv~T1.json"
        );
        let v = versioned("bad/a/b.csv", "\"e\"");
        assert_eq!(src.reprocess_key(&v), "in/a/b.csv");
    }
}
