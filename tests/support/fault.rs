//! A scriptable TCP proxy that sits between s3loader and a real service
//! (SeaweedFS, PostgreSQL, moto, the Redshift stand-in) and injects faults
//! on purpose: latency, refused connections, connections cut after some
//! bytes, and, for HTTP services, error answers (S3's 503 SlowDown, 500,
//! 429) in place of the service's.
//!
//! Faults are scripted per proxy with counters, so a test says "the next 5
//! requests get 503" or "refuse connections for 2 s", and every fault the
//! proxy injected is counted ([`FaultProxy::injected`]) so a test can
//! check that its faults really happened.
//!
//! HTTP error answers need request boundaries: the proxy reads each request
//! head (and a `Content-Length` body) from the client before forwarding
//! it; the service's answers are piped back untouched. hyper (the SDK's
//! client) sends one request at a time per connection, so an answer the
//! proxy writes in place of the service's is the answer to that request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::backlog::Rng;

/// What the proxy does to traffic; changed by the test while it runs.
#[derive(Debug, Default)]
struct Script {
    latency: Duration,
    refuse_until: Option<Instant>,
    /// Cut this many next connections after this many bytes of answer.
    cut_answers: Option<(u32, u64)>,
    /// Answer this many next HTTP requests with this status instead.
    http_errors: Option<(u32, u16)>,
    /// Only requests whose first line contains this get `http_errors`.
    http_filter: Option<String>,
    /// The next this many HTTP requests whose first line contains the
    /// filter reach the service, and the connection is cut before their
    /// answer: the work is done, the client never hears.
    drop_answers: Option<(u32, String)>,
    /// A storm: each request, and each new connection, is hit with this
    /// probability (percent), drawn from the seeded generator.
    storm: Option<(u64, Rng)>,
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    http_errors: AtomicU64,
}

/// A running proxy to one upstream; stops when dropped.
pub struct FaultProxy {
    pub port: u16,
    script: Arc<Mutex<Script>>,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script::default()));
        let counts = Arc::new(Counts::default());
        let upstream = upstream.to_owned();
        let task = {
            let (script, counts) = (script.clone(), counts.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                    let refuse = script
                        .lock()
                        .unwrap()
                        .refuse_until
                        .is_some_and(|t| Instant::now() < t);
                    if refuse {
                        // Closed at once, as by a host that is down or a
                        // server restarting.
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                        continue;
                    }
                    let (script, counts, upstream) =
                        (script.clone(), counts.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let _ = relay(client, &upstream, script, counts).await;
                    });
                }
            })
        };
        Self {
            port,
            script,
            counts,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for an HTTP service.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every chunk in either direction waits this long first.
    pub fn latency(&self, d: Duration) {
        self.script.lock().unwrap().latency = d;
    }

    /// New connections are reset for `d` from now.
    pub fn refuse_for(&self, d: Duration) {
        self.script.lock().unwrap().refuse_until = Some(Instant::now() + d);
    }

    /// The next `n` connections are cut after `after` bytes of answer
    /// (mid-response, or mid-body when `after` is past the head).
    pub fn cut_answers(&self, n: u32, after: u64) {
        self.script.lock().unwrap().cut_answers = Some((n, after));
    }

    /// The next `n` HTTP requests whose first line contains `filter` (any
    /// request if empty) get `status` (503 is S3's SlowDown, 500
    /// InternalError, 429 TooManyRequests) without reaching the service.
    pub fn http_errors(&self, n: u32, status: u16, filter: &str) {
        let mut s = self.script.lock().unwrap();
        s.http_errors = Some((n, status));
        s.http_filter = (!filter.is_empty()).then(|| filter.to_owned());
    }

    /// The next `n` HTTP requests whose first line contains `filter` (any
    /// if empty) are forwarded, and their connection is cut before the
    /// answer, whichever connection carries them (a pooled one too).
    pub fn drop_answers(&self, n: u32, filter: &str) {
        self.script.lock().unwrap().drop_answers = Some((n, filter.to_owned()));
    }

    /// A storm from now on: each request gets 503, 500 or 429 with
    /// probability `percent`, and each new connection is cut after 100 to
    /// 20,000 bytes of answer with the same probability; `seed` makes the
    /// draws repeat. Unlike the counted faults, a storm reaches requests
    /// the SDK retries and the ones after them alike.
    pub fn storm(&self, percent: u64, seed: u64) {
        self.script.lock().unwrap().storm = Some((percent, Rng::new(seed)));
    }

    /// Stops every fault; traffic flows untouched.
    pub fn heal(&self) {
        *self.script.lock().unwrap() = Script::default();
    }

    /// Faults injected so far: (refused connections, cut connections, HTTP
    /// error answers).
    pub fn injected(&self) -> (u64, u64, u64) {
        (
            self.counts.refused.load(Ordering::Relaxed),
            self.counts.cut.load(Ordering::Relaxed),
            self.counts.http_errors.load(Ordering::Relaxed),
        )
    }
}

fn take_cut(script: &Mutex<Script>) -> Option<u64> {
    let mut s = script.lock().unwrap();
    match s.cut_answers {
        Some((n, after)) if n > 0 => {
            s.cut_answers = Some((n - 1, after));
            Some(after)
        }
        _ => match &mut s.storm {
            Some((percent, rng)) => (rng.below(100) < *percent).then(|| 100 + rng.below(19_900)),
            None => None,
        },
    }
}

fn take_drop(script: &Mutex<Script>, first_line: &str) -> bool {
    let mut s = script.lock().unwrap();
    match &mut s.drop_answers {
        Some((n, filter)) if *n > 0 && first_line.contains(filter.as_str()) => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

fn take_http_error(script: &Mutex<Script>, first_line: &str) -> Option<u16> {
    let mut s = script.lock().unwrap();
    if s.http_filter
        .as_deref()
        .is_some_and(|f| !first_line.contains(f))
    {
        return None;
    }
    match s.http_errors {
        Some((n, status)) if n > 0 => {
            s.http_errors = Some((n - 1, status));
            Some(status)
        }
        _ => match &mut s.storm {
            Some((percent, rng)) => {
                (rng.below(100) < *percent).then(|| [503, 500, 429][rng.below(3) as usize])
            }
            None => None,
        },
    }
}

fn error_answer(status: u16) -> Vec<u8> {
    let (reason, code) = match status {
        503 => ("Slow Down", "SlowDown"),
        429 => ("Too Many Requests", "TooManyRequests"),
        _ => ("Internal Server Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the fault proxy</Message><RequestId>fault</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nx-amz-request-id: fault\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn relay(
    client: TcpStream,
    upstream: &str,
    script: Arc<Mutex<Script>>,
    counts: Arc<Counts>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut client_r, client_w) = client.into_split();
    let (server_r, mut server_w) = server.into_split();
    let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
    let cut = take_cut(&script);
    // Set when a request whose answer is to be dropped was forwarded.
    let drop_next = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Answers: piped back, cut after `cut` bytes if scripted.
    let answers = {
        let (client_w, script, counts) = (client_w.clone(), script.clone(), counts.clone());
        let drop_next = drop_next.clone();
        tokio::spawn(async move {
            let mut server_r = server_r;
            let mut buf = vec![0u8; 16 * 1024];
            let mut sent: u64 = 0;
            loop {
                let n = match server_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if drop_next.load(Ordering::SeqCst) {
                    counts.cut.fetch_add(1, Ordering::Relaxed);
                    let _ = client_w.lock().await.shutdown().await;
                    return;
                }
                let latency = script.lock().unwrap().latency;
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                let mut n = n;
                if let Some(limit) = cut {
                    if sent + n as u64 >= limit {
                        n = (limit - sent) as usize;
                        let mut w = client_w.lock().await;
                        let _ = w.write_all(&buf[..n]).await;
                        counts.cut.fetch_add(1, Ordering::Relaxed);
                        // An abortive close: the client sees a reset, as
                        // from a crashed server or a broken network.
                        let _ = w.shutdown().await;
                        return;
                    }
                }
                sent += n as u64;
                if client_w.lock().await.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_w.lock().await.shutdown().await;
        })
    };

    // Requests: read whole (head and Content-Length body) when the service
    // speaks HTTP, so an error answer can stand in for one; bytes otherwise.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    // Decided by the connection's first bytes: an HTTP method, or not
    // (PostgreSQL's startup packet).
    let mut http: Option<bool> = None;
    loop {
        let n = client_r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let latency = script.lock().unwrap().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if http.is_none() && pending.len() >= 7 {
            http = Some(looks_like_http(&pending));
        }
        if http != Some(true) {
            if http == Some(false) {
                server_w.write_all(&pending).await?;
                pending.clear();
            }
            continue;
        }
        while let Some(head_end) = http_head_end(&pending) {
            let head = String::from_utf8_lossy(&pending[..head_end]).to_string();
            let body_len = content_length(&head);
            // Stream a large body through rather than hold it.
            if pending.len() < head_end + body_len {
                let first_line = head.lines().next().unwrap_or("").to_owned();
                if let Some(status) = take_http_error(&script, &first_line) {
                    counts.http_errors.fetch_add(1, Ordering::Relaxed);
                    // Swallow the body as it comes, then answer.
                    let mut left = head_end + body_len - pending.len();
                    while left > 0 {
                        let n = client_r.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        left = left.saturating_sub(n);
                    }
                    pending.clear();
                    client_w
                        .lock()
                        .await
                        .write_all(&error_answer(status))
                        .await?;
                    break;
                }
                if take_drop(&script, &first_line) {
                    drop_next.store(true, Ordering::SeqCst);
                }
                server_w.write_all(&pending).await?;
                let mut left = head_end + body_len - pending.len();
                pending.clear();
                while left > 0 {
                    let n = client_r.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    let take = n.min(left);
                    server_w.write_all(&buf[..take]).await?;
                    left -= take;
                    pending.extend_from_slice(&buf[take..n]);
                }
                continue;
            }
            let request: Vec<u8> = pending.drain(..head_end + body_len).collect();
            let first_line = head.lines().next().unwrap_or("").to_owned();
            match take_http_error(&script, &first_line) {
                Some(status) => {
                    counts.http_errors.fetch_add(1, Ordering::Relaxed);
                    client_w
                        .lock()
                        .await
                        .write_all(&error_answer(status))
                        .await?;
                }
                None => {
                    if take_drop(&script, &first_line) {
                        drop_next.store(true, Ordering::SeqCst);
                    }
                    server_w.write_all(&request).await?
                }
            }
        }
    }
    let _ = server_w.shutdown().await;
    let _ = answers.await;
    Ok(())
}

/// Where the head of an HTTP request ends (after `\r\n\r\n`).
fn http_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// An HTTP method and a space: anything else (PostgreSQL's protocol) is
/// relayed as bytes.
fn looks_like_http(buf: &[u8]) -> bool {
    const METHODS: [&[u8]; 6] = [b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ", b"PATCH "];
    METHODS.iter().any(|m| buf.starts_with(m))
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}
