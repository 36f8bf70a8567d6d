//! The system's CA bundle file, read once per process: the roots both the
//! AWS SDK's HTTPS client (in the Lambda functions) and PostgreSQL's
//! `verify-full` trust.
//!
//! Why not the "native roots" (`rustls-native-certs`)? On Linux they are
//! the bundle file *and* every file of the certificate directory beside it
//! (openssl-probe finds both): on Debian ~150 more files opened and parsed,
//! which were most of a Lambda function's cold start (`bench/coldstart.sh`;
//! the profile's top frame was `rustls_native_certs::CertPaths::load`). The
//! distributions' bundle holds the same roots as their directory.
//!
//! Where `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, the operator chose the
//! roots: [`pem`] is `None` and callers keep the native roots, which honour
//! both variables. Likewise where no bundle is found.

use std::sync::LazyLock;

/// Where distributions keep the bundle: Amazon Linux 2023 (Lambda's
/// provided.al2023) and RHEL first, then Debian, Ubuntu and Alpine.
const BUNDLES: [&str; 3] = [
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
];

static PEM: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| {
    let chosen = |v: &str| std::env::var_os(v).is_some_and(|p| !p.is_empty());
    if chosen("SSL_CERT_FILE") || chosen("SSL_CERT_DIR") {
        return None;
    }
    BUNDLES.iter().find_map(|p| std::fs::read(p).ok())
});

/// The bundle's PEM text, or `None` for "use the native roots".
pub fn pem() -> Option<&'static [u8]> {
    PEM.as_deref()
}
