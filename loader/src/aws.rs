//! One way to talk to AWS: what an SDK error means, how each client
//! retries, and how long to wait before the retries the SDK cannot make.
//!
//! Every client s3loader builds (S3, DynamoDB, Lambda, CloudWatch) retries
//! inside each call with the SDK's own standard retry mode: throttling, 5xx
//! and connection errors, with exponential backoff and jitter. An error that
//! reaches our code has outlived those attempts; [`classify`] reads it once
//! (by `into_service_error()`, the service's code and the HTTP status) and
//! each caller maps the result onto its own error, never onto text.
//!
//! The one retry the SDK cannot make is a partial success (DynamoDB's
//! `UnprocessedItems`); [`backoff`] gives its delays.

use std::error::Error as StdError;
use std::time::Duration;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{CreateUnhandledError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use backon::BackoffBuilder;

use crate::error::BoxError;

/// Codes that are transient although their HTTP status does not say so
/// (or that services send with a 4xx): worth another try, never a file's
/// fault. Added to the SDK's own throttling and transient lists.
const ALSO_TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServiceException",
    "ServiceUnavailable",
    "RequestTimeTooSkewed",
    "ResourceNotReadyException",
    "SnapStartNotReadyException",
];

/// An SDK call that failed, read once.
#[derive(Debug)]
pub struct Failure {
    /// The service's error code (`NoSuchKey`, `ThrottlingException`), when
    /// the service answered with one.
    pub code: Option<String>,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The service's own message, when it sent one.
    pub message: Option<String>,
    /// Whether the same request may succeed later: throttling, 5xx, and a
    /// request that got no answer (timeout, connection reset), which may
    /// never have reached the service.
    pub retryable: bool,
    /// The service error (or, with no service answer, the SDK error).
    pub source: BoxError,
}

impl Failure {
    /// `code: message`, for a message that must stand on its own.
    pub fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => match self.status {
                Some(s) => format!("HTTP {s}"),
                None => "no answer from the service (timeout or connection error)".into(),
            },
        }
    }
}

/// What every operation error of the AWS SDKs is: the bound [`classify`]
/// takes, named once.
pub trait OperationError:
    ProvideErrorMetadata + CreateUnhandledError + StdError + Send + Sync + 'static
{
}

impl<E> OperationError for E where
    E: ProvideErrorMetadata + CreateUnhandledError + StdError + Send + Sync + 'static
{
}

/// Reads an SDK error: its code and status, and whether it is retryable.
pub fn classify<E: OperationError>(err: SdkError<E, HttpResponse>) -> Failure {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(_) => {
            let service = err.into_service_error();
            let code = service.code().map(str::to_owned);
            Failure {
                retryable: is_transient(status, code.as_deref()),
                message: service.message().map(str::to_owned),
                code,
                status,
                source: Box::new(service),
            }
        }
        // A request we could not even build: the same one fails again.
        SdkError::ConstructionFailure(_) => Failure {
            code: None,
            status,
            message: None,
            retryable: false,
            source: Box::new(err),
        },
        // Timeouts, connection failures, unparseable responses: the request
        // may never have reached the service.
        other => Failure {
            code: None,
            status,
            message: None,
            retryable: true,
            source: Box::new(other),
        },
    }
}

/// Throttling and server-side trouble, by HTTP status or error code.
pub fn is_transient(status: Option<u16>, code: Option<&str>) -> bool {
    matches!(status, Some(429 | 500..=599))
        || code.is_some_and(|c| {
            THROTTLING_ERRORS.contains(&c)
                || TRANSIENT_ERRORS.contains(&c)
                || ALSO_TRANSIENT.contains(&c)
                || c.ends_with("Unavailable")
        })
}

/// The SDK's standard retry mode with `attempts` attempts in all, the first
/// retry after about `initial` (exponential, full jitter).
pub fn retry_config(attempts: u32, initial: Duration) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(initial)
}

/// Delays between the tries of a retry the SDK cannot make: `retries` of
/// them, from about `initial`, doubling, with jitter, capped at 20 s.
pub fn backoff(initial: Duration, retries: usize) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(initial)
        .with_max_delay(Duration::from_secs(20))
        .with_max_times(retries)
        .with_jitter()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient_client_errors_are_not() {
        for (status, code) in [
            (Some(503), Some("SlowDown")),
            (Some(400), Some("ThrottlingException")),
            (Some(400), Some("ProvisionedThroughputExceededException")),
            (Some(429), Some("TooManyRequestsException")),
            (Some(500), None),
            (Some(403), Some("RequestTimeTooSkewed")),
            (Some(502), Some("EC2Unavailable")),
        ] {
            assert!(is_transient(status, code), "{status:?} {code:?}");
        }
        for (status, code) in [
            (Some(403), Some("AccessDenied")),
            (Some(400), Some("ValidationException")),
            (Some(400), Some("ResourceNotFoundException")),
            (Some(404), None),
        ] {
            assert!(!is_transient(status, code), "{status:?} {code:?}");
        }
    }

    #[test]
    fn backoff_gives_the_retries_asked_for_and_grows() {
        let delays: Vec<Duration> = backoff(Duration::from_millis(50), 5).collect();
        assert_eq!(delays.len(), 5);
        // Jitter adds up to one base delay; the last is still well above
        // the first's ceiling.
        assert!(delays[0] <= Duration::from_millis(100), "{delays:?}");
        assert!(delays[4] >= Duration::from_millis(800), "{delays:?}");
    }
}
