//! The object layout in the bucket: the one place that names keys.
//!
//! ```text
//! incoming/<path>               the queue
//! processed/<path>              loaded files
//! failed/<path>                 permanently failed files
//! errors/<failed path>.json     one report per failure
//! rejected/<path>.jsonl         records a route's schema set aside
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
//!
//! **Replays.** `s3loader replay` moves a loaded file from `processed/`
//! back to `incoming/` under a *replay* name, `<stem>~r<UTC time><extensions>`
//! (`orders/a.csv.gz` → `orders/a~r20261124T034000Z.csv.gz`): a new key, so
//! the ledger, keyed by (key, ETag), loads it again, and its ledger row
//! says that it was a replay and when. A file replayed again loses its
//! older replay tag first.
//!
//! **Long keys.** S3 keys are at most 1,024 bytes, and `processed/` is one
//! byte longer than `incoming/`, a report adds `.json`, a version tag 14
//! bytes: a legal key in the queue can have an archive name S3 refuses
//! (the file would load, then fail every move until parked as stuck). Every
//! name made here goes through [`fit`]: one longer than 1,024 bytes keeps
//! its first bytes and its extensions, with `~h<16 hex digits>` of the
//! whole intended name between (`processed/…/a-very-long~h3f…c1.csv.gz`).
//! The same intended name always gives the same short one, so a move
//! retried after a crash finds its own copy.
//!
//! Every caller asks here; nobody formats these keys by hand.

use std::borrow::Cow;

use crate::config::SourceConfig;

/// Length of the version tag, in hex digits.
const TAG: usize = 12;

/// S3's longest key, in bytes of UTF-8 (the local store keeps the same
/// limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Extensions longer than this are not kept whole when a name is
/// shortened (they are not compression or format suffixes).
const MAX_KEPT_EXT: usize = 64;

impl SourceConfig {
    /// `key` relative to `incoming/` (the key itself if it is elsewhere).
    pub fn relative<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(&self.incoming).unwrap_or(key)
    }

    /// `incoming/<rel>`.
    pub fn incoming_key(&self, rel: &str) -> String {
        fit(format!("{}{rel}", self.incoming))
    }

    /// Where a loaded file goes: `processed/<path>`.
    pub fn processed_key(&self, key: &str) -> String {
        fit(format!("{}{}", self.processed, self.relative(key)))
    }

    /// Where a failed file goes: `failed/<path>`.
    pub fn failed_key(&self, key: &str) -> String {
        fit(format!("{}{}", self.failed, self.relative(key)))
    }

    /// The report of the file archived at `failed_key`.
    pub fn report_key(&self, failed_key: &str) -> String {
        let rel = failed_key.strip_prefix(&self.failed).unwrap_or(failed_key);
        fit(format!("{}{rel}.json", self.errors))
    }

    /// The report's name when [`SourceConfig::report_key`] is taken by an
    /// earlier report: both are kept.
    pub fn report_key_for_tick(&self, failed_key: &str, tick_id: &str) -> String {
        let rel = failed_key.strip_prefix(&self.failed).unwrap_or(failed_key);
        fit(format!("{}{rel}~{tick_id}.json", self.errors))
    }

    /// `_s3loader/<name>`: the scheduler's own objects.
    pub fn state_key(&self, name: &str) -> String {
        format!("{}{name}", self.state)
    }

    /// Where the records a route's schema sets aside go: `rejected/<path>.jsonl`.
    pub fn rejected_key(&self, key: &str) -> String {
        fit(format!("{}{}.jsonl", self.rejected, self.relative(key)))
    }

    /// Where `processed/<path>` goes back to on a replay at `at`:
    /// `incoming/<path>` with a replay tag (and without a version or an
    /// older replay tag this layout added).
    pub fn replay_key(&self, processed_key: &str, at: chrono::DateTime<chrono::Utc>) -> String {
        let rel = processed_key
            .strip_prefix(&self.processed)
            .unwrap_or(processed_key);
        let original = unreplayed(&unversioned(rel)).into_owned();
        let (stem, ext) = split_ext(&original);
        self.incoming_key(&format!("{stem}~r{}{ext}", at.format(REPLAY_FORMAT)))
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

/// `key` itself if it is at most [`MAX_KEY_BYTES`] long; otherwise its
/// first bytes (cut at a character boundary), `~h` and 16 hex digits of
/// FNV-1a of the whole of `key`, then its extensions, exactly
/// [`MAX_KEY_BYTES`] long or a few bytes less. Two long names that differ
/// anywhere get different short ones (short of a 64-bit hash collision;
/// the store's no-overwrite copy still refuses to replace another object).
pub fn fit(key: String) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let tag = format!("~h{:016x}", fnv1a(key.as_bytes()));
    let (stem, ext) = split_ext(&key);
    let (base, ext) = if ext.len() <= MAX_KEPT_EXT {
        (stem, ext)
    } else {
        (key.as_str(), "")
    };
    let mut cut = MAX_KEY_BYTES - tag.len() - ext.len();
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}{ext}", &base[..cut])
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
    fit(format!("{stem}~v{}{ext}", version_tag(etag)))
}

/// The time in a replay tag: `20261124T034000Z`.
const REPLAY_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Length of a replay tag's time.
const REPLAY_TIME: usize = 16;

/// `key` without a replay tag; unchanged if it has none.
pub fn unreplayed(key: &str) -> Cow<'_, str> {
    match replay_tag_at(key) {
        Some((at, _)) => {
            let (stem, ext) = split_ext(key);
            Cow::Owned(format!("{}{ext}", &stem[..at]))
        }
        None => Cow::Borrowed(key),
    }
}

/// If `key` was put back by a replay: the key it was first loaded under,
/// and when the replay was.
pub fn replay_of(key: &str) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
    let (_, when) = replay_tag_at(key)?;
    Some((unreplayed(key).into_owned(), when))
}

/// Where the replay tag starts in `key`'s stem, and its time.
fn replay_tag_at(key: &str) -> Option<(usize, chrono::DateTime<chrono::Utc>)> {
    let (stem, _) = split_ext(key);
    let at = stem.len().checked_sub(REPLAY_TIME + 2)?;
    let tag = stem.get(at..)?.strip_prefix("~r")?;
    let when = chrono::NaiveDateTime::parse_from_str(tag, REPLAY_FORMAT).ok()?;
    Some((at, when.and_utc()))
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
    fn replay_names_are_new_keys_that_say_what_they_replay() {
        let src: SourceConfig = toml::from_str("url = \"dir:x\"").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T03:40:00Z")
            .unwrap()
            .to_utc();
        let later = at + chrono::Duration::hours(1);
        let tag = version_tag("e");
        for (processed, want) in [
            (
                "processed/orders/a.csv.gz",
                "incoming/orders/a~r20261124T034000Z.csv.gz",
            ),
            (
                &*format!("processed/orders/a~v{tag}.csv.gz"),
                "incoming/orders/a~r20261124T034000Z.csv.gz",
            ),
            (
                "processed/it's ü 100%",
                "incoming/it's ü 100%~r20261124T034000Z",
            ),
        ] {
            let key = src.replay_key(processed, at);
            assert_eq!(key, want);
            let (original, when) = replay_of(&key).unwrap();
            assert_eq!(when, at);
            assert_eq!(original, unreplayed(want));
            assert!(!original.contains("~r"));
        }
        let again = src.replay_key("processed/orders/a~r20261124T034000Z.csv", later);
        assert_eq!(
            again, "incoming/orders/a~r20261124T044000Z.csv",
            "one replay tag, the latest"
        );
        assert_eq!(replay_of("incoming/orders/a.csv"), None);
        assert_eq!(replay_of("incoming/orders/a~rnot-a-time-at-all.csv"), None);
    }

    #[test]
    fn archive_names_of_long_keys_fit_in_s3s_limit() {
        let src: SourceConfig = toml::from_str("url = \"dir:x\"").unwrap();
        // 1,024 bytes in the queue, with two-byte characters across the
        // cut, and a twin that differs only in its last byte before the
        // extension.
        let mut rel = String::from("orders/");
        while rel.len() < 1024 - "incoming/".len() - ".csv.gz".len() - 1 {
            rel.push_str(if rel.len() % 150 == 0 { "/" } else { "é" });
        }
        let twin = |c: char| {
            let mut r = rel.clone();
            while "incoming/".len() + r.len() + 1 + ".csv.gz".len() < 1024 {
                r.push('x');
            }
            format!("{r}{c}.csv.gz")
        };
        let (a, b) = (twin('a'), twin('b'));
        let key = src.incoming_key(&a);
        assert_eq!(key.len(), 1024);
        assert_eq!(key, format!("incoming/{a}"), "a key that fits is kept");
        let names = [
            src.processed_key(&key),
            src.failed_key(&key),
            versioned(&src.processed_key(&key), "\"e\""),
            src.report_key(&src.failed_key(&key)),
            src.report_key_for_tick(&src.failed_key(&key), "20261123T000000Z-abcdef12"),
        ];
        for name in &names {
            assert!(name.len() <= MAX_KEY_BYTES, "{} bytes", name.len());
            assert!(
                name.len() >= MAX_KEY_BYTES - 3,
                "cut no shorter than needed"
            );
        }
        assert!(names[0].starts_with("processed/orders/") && names[0].ends_with(".csv.gz"));
        assert!(names[0].contains("~h"), "{}", names[0]);
        assert_eq!(names[1], format!("failed/{a}"), "failed/ is shorter: kept");
        assert!(names[3].ends_with(".json"));
        // Deterministic, and the twin gets a name of its own.
        assert_eq!(src.processed_key(&key), names[0]);
        assert_ne!(src.processed_key(&src.incoming_key(&b)), names[0]);
        // An extension too long to be one is not kept whole.
        let odd = format!("processed/x.{}", "y".repeat(1100));
        assert_eq!(fit(odd).len(), MAX_KEY_BYTES);
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
