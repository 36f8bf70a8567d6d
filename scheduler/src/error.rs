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
    #[error("metrics sink {sink}: {message}")]
    Metrics { sink: &'static str, message: String },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
