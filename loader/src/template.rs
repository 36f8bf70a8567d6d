//! Table templates: one route, a table per tenant (`events_{tenant}`).
//!
//! A placeholder is filled from the key, where the route's pattern has a
//! whole segment `{name}` (`tenants/{tenant}/**`), or from each record,
//! where the route's `table_fields` names a field for it
//! (`tenant = "metadata.tenant_id"`).
//!
//! Every value passes [`check_value`] before it becomes part of a table
//! name. The rule is strict on purpose: lowercase only, because folding
//! `Acme` into `acme` would merge two tenants' data, and short, because
//! PostgreSQL silently truncates identifiers past 63 bytes, which would
//! merge two long names.

/// The longest value a placeholder takes.
pub const MAX_VALUE_LEN: usize = 40;

/// The longest table name a template may produce (PostgreSQL's limit; past
/// it the server truncates, and two tenants could share a table).
pub const MAX_TABLE_LEN: usize = 63;

/// The names of the `{name}` placeholders in `template`, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out
}

/// Whether `name` may name a placeholder: a letter or `_`, then letters,
/// digits or `_`.
pub fn valid_placeholder(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The identifier rule for a value: 1 to [`MAX_VALUE_LEN`] characters of
/// `a-z`, `0-9` and `_`. The error says what is wrong with it.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("is longer than {MAX_VALUE_LEN} characters"));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(c) => Err(format!(
            "holds {c:?}: only lowercase a-z, 0-9 and _ may name a table"
        )),
        None => Ok(()),
    }
}

/// Fills the placeholders `value` knows; the others stay as `{name}`.
/// A value that breaks [`check_value`] is an error naming the placeholder
/// and the value.
pub fn fill<'a>(template: &str, value: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        out.push_str(&rest[..open]);
        match value(name) {
            Some(v) => {
                check_value(v).map_err(|why| format!("{{{name}}} = {}: {why}", shown(v)))?;
                out.push_str(v);
            }
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if !out.contains('{') && out.rsplit('.').next().unwrap_or("").len() > MAX_TABLE_LEN {
        return Err(format!(
            "table {out:?} is longer than {MAX_TABLE_LEN} characters"
        ));
    }
    Ok(out)
}

/// A value in a reason: quoted, cut at 60 characters.
fn shown(v: &str) -> String {
    match v.char_indices().nth(60) {
        Some((i, _)) => format!("{:?}…", &v[..i]),
        None => format!("{v:?}"),
    }
}

/// The `{name}` segments of a route's pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    /// The pattern as a glob: each capture becomes `*`.
    pub glob: String,
    /// Each capture's name and its segment's index in the relative key.
    segments: Vec<(String, usize)>,
}

impl Captures {
    /// Reads `pattern`. A segment that is exactly `{name}` captures that
    /// segment of the key; it must come before any `**`, which would make
    /// its position unknowable. (`{a,b}` stays a glob alternation.)
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let mut glob = Vec::new();
        let mut segments = Vec::new();
        let mut spanned = false;
        for (i, seg) in pattern.split('/').enumerate() {
            let name = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .filter(|n| valid_placeholder(n));
            match name {
                Some(name) => {
                    if spanned {
                        return Err(format!(
                            "the capture {{{name}}} comes after **: its segment's place in the key would be unknown"
                        ));
                    }
                    if segments.iter().any(|(n, _)| n == name) {
                        return Err(format!("{{{name}}} is captured twice"));
                    }
                    segments.push((name.to_owned(), i));
                    glob.push("*");
                }
                None => {
                    spanned |= seg.contains("**");
                    glob.push(seg);
                }
            }
        }
        Ok(Self {
            glob: glob.join("/"),
            segments,
        })
    }

    /// The names captured.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|(n, _)| n.as_str())
    }

    /// The value of capture `name` in `rel` (a key relative to
    /// `incoming/` that the glob matched).
    pub fn value<'a>(&self, rel: &'a str, name: &str) -> Option<&'a str> {
        let (_, i) = self.segments.iter().find(|(n, _)| n == name)?;
        rel.split('/').nth(*i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_in_order() {
        assert_eq!(placeholders("events_{tenant}_{kind}"), ["tenant", "kind"]);
        assert!(placeholders("events").is_empty());
    }

    #[test]
    fn values_follow_the_identifier_rule() {
        for good in ["acme", "a_1", "0", &"x".repeat(40)] {
            assert_eq!(check_value(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Acme", "'A'"),
            ("ac me", "' '"),
            ("a-b", "'-'"),
            ("a\"b", "'\"'"),
            ("../x", "'.'"),
            ("é", "'é'"),
            (&"x".repeat(41), "longer than 40"),
        ] {
            let e = check_value(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn fill_checks_each_value_and_leaves_the_unknown() {
        let v = |n: &str| (n == "tenant").then_some("acme");
        assert_eq!(fill("e_{tenant}_{day}", v).unwrap(), "e_acme_{day}");
        let e = fill("e_{tenant}", |_| Some("Acme")).unwrap_err();
        assert!(e.starts_with("{tenant} = \"Acme\": holds 'A'"), "{e}");
        let long = "y".repeat(40);
        let e = fill("events_for_the_tenant_named_{t}", |_| Some(long.as_str())).unwrap_err();
        assert!(e.contains("longer than 63"), "{e}");
    }

    #[test]
    fn captures_are_whole_segments_before_any_double_star() {
        let c = Captures::parse("tenants/{tenant}/**/*.jsonl").unwrap();
        assert_eq!(c.glob, "tenants/*/**/*.jsonl");
        assert_eq!(c.value("tenants/acme/2026/a.jsonl", "tenant"), Some("acme"));
        assert_eq!(c.names().collect::<Vec<_>>(), ["tenant"]);
        let alt = Captures::parse("{a,b}/*.csv").unwrap();
        assert_eq!(alt.glob, "{a,b}/*.csv");
        assert_eq!(alt.names().count(), 0);
        assert!(Captures::parse("**/{tenant}/x")
            .unwrap_err()
            .contains("after **"));
        assert!(Captures::parse("{t}/{t}").unwrap_err().contains("twice"));
    }
}
