//! The loader crate's one error type.

use std::error::Error as StdError;

use crate::contract::Cause;

/// A boxed error from a dependency, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong inside the loader crate.
///
/// Every variant that concerns an object names it (store and key), so a
/// message read in a log or an error report is enough to find the file.
/// [`Error::is_retryable`] is the one place that decides whether a failure
/// leaves a file in `incoming/` for another attempt.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{store}: object {key:?} not found")]
    NotFound { store: String, key: String },

    /// A conditional request failed: the object exists (create), or its ETag
    /// is no longer the one we hold (update, move, delete).
    #[error("{store}: precondition failed on {key:?}: {what}")]
    Precondition {
        store: String,
        key: String,
        what: &'static str,
    },

    /// The key cannot be stored by this backend (for example it would escape
    /// a local directory's root).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    /// A store request failed.
    #[error("{store}: {op} {key:?} failed{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Store {
        op: &'static str,
        store: String,
        key: String,
        /// The service's error code, when it sent one.
        code: Option<String>,
        retryable: bool,
        #[source]
        source: BoxError,
    },

    /// The configuration is invalid; `field` is its dotted path.
    #[error("config: {field}: {message}")]
    Config { field: String, message: String },

    /// The file's content cannot be loaded as configured (bad row, bad
    /// compression, bad encoding). Permanent: retrying reads the same bytes.
    #[error("{key:?}: {message}")]
    Format { key: String, message: String },

    /// Reading the object's bytes failed mid-stream. Retryable.
    #[error("{key:?}: reading the object failed")]
    Read {
        key: String,
        #[source]
        source: std::io::Error,
    },

    /// The destination refused or failed. `message` carries the server's
    /// own words; `code` its code (a SQLSTATE, a DynamoDB error code).
    #[error("destination {destination}: {message}{}", code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
    Destination {
        destination: String,
        message: String,
        code: Option<String>,
        retryable: bool,
        /// Whose fault: [`Cause::File`] when the file's data caused it (a
        /// value the column rejects), [`Cause::Destination`] otherwise.
        cause: Cause,
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { retryable, .. } | Error::Destination { retryable, .. } => *retryable,
            Error::Read { .. } => true,
            // A changed object is a new version: the next tick sees it afresh.
            Error::Precondition { .. } => true,
            Error::NotFound { .. }
            | Error::InvalidKey { .. }
            | Error::Config { .. }
            | Error::Format { .. } => false,
        }
    }

    /// Whose fault this is; only [`Cause::File`] counts against a file.
    pub fn cause(&self) -> Cause {
        match self {
            Error::Format { .. } | Error::InvalidKey { .. } => Cause::File,
            Error::Destination { cause, .. } => *cause,
            // The worker's own config or secrets: not the file's doing.
            Error::Config { .. } => Cause::Destination,
            // Moved, replaced or unreadable at the source: the next tick sees
            // what is there then.
            Error::NotFound { .. }
            | Error::Precondition { .. }
            | Error::Store { .. }
            | Error::Read { .. } => Cause::Source,
        }
    }

    /// An outage of `destination`: retryable, counts against no file.
    pub fn outage(
        destination: &str,
        message: impl Into<String>,
        code: Option<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Destination {
            destination: destination.to_owned(),
            message: message.into(),
            code,
            retryable: true,
            cause: Cause::Destination,
            source,
        }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The whole chain of an error on one line (`outer: cause: root cause`), as
/// written into error reports and logs.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
