//! The scheduler crate's one error type.

/// A tick or an operator command could not run at all. Per-file problems
/// are never errors here: they are outcomes in the report.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store or config operation the tick cannot do without.
    #[error("{context}")]
    Loader {
        context: String,
        #[source]
        source: Box<loader::Error>,
    },
    /// Publishing the tick's metrics failed; the tick itself went on.
    #[error("metrics sink {sink}: publishing to namespace {namespace:?} failed{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Metrics {
        sink: loader::config::SinkKind,
        namespace: String,
        code: Option<String>,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// The fast path's queue could not be polled or answered
    /// (`s3loader listen`).
    #[error("queue {queue}: {operation} failed{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Queue {
        queue: String,
        operation: &'static str,
        code: Option<String>,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// The demo's warehouse could not be read for its summary.
    #[error("warehouse {path}")]
    Warehouse {
        path: String,
        #[source]
        source: BoxError,
    },
    /// An operator command's argument cannot be understood.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn loader(context: impl Into<String>) -> impl FnOnce(loader::Error) -> Error {
        let context = context.into();
        move |source| Error::Loader {
            context,
            source: Box::new(source),
        }
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;
