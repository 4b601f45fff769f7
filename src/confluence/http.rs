//! The retrying HTTP layer both flavors share: authentication, a per-site
//! concurrency limit, `Retry-After` handling, bounded exponential backoff with
//! jitter, and the mapping of HTTP failures onto [`ConfluenceError`].
//!
//! Confluence (or whatever answers in its place) is not trusted to behave:
//! every request has one deadline covering connect, headers and body; a body
//! is read up to [`MAX_RESPONSE_BYTES`]; a success must be JSON (a 200 HTML
//! login page of an SSO proxy is named as such); bytes that are not UTF-8 are
//! decoded lossily (U+FFFD), so one bad page does not stop a space; and no
//! request ever leaves the site's origin: redirects elsewhere and paging links
//! to another host are refused, so credentials are never sent to another host.

use super::{ClientOptions, ConfluenceError, Credentials, SiteConfig};
use base64::Engine as _;
use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;

/// A decoded response: the JSON body plus the headers paging needs (`Link`).
pub(crate) struct JsonResponse<T> {
    pub body: T,
    pub headers: HeaderMap,
}

/// What a request ended with when it did not succeed.
#[derive(Debug)]
pub(crate) enum HttpFailure {
    /// 404: the caller decides what was not found (a space, a page...).
    NotFound,
    Other(ConfluenceError),
}

impl From<ConfluenceError> for HttpFailure {
    fn from(e: ConfluenceError) -> Self {
        HttpFailure::Other(e)
    }
}

/// Largest response body the client reads. A listing of 250 pages with
/// bodies fits many times over; a larger or endless answer fails the request
/// instead of growing memory without bound.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Same-origin redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// One site's HTTP client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    /// Requests go only here (scheme, host, port of the site's URL).
    origin: url::Origin,
    /// Deadline of one attempt, body included.
    deadline: Duration,
    /// Precomputed `Authorization` value, marked sensitive so reqwest and
    /// hyper never log it.
    auth: HeaderValue,
    permits: Arc<Semaphore>,
    max_retries: u32,
    options: ClientOptions,
}

impl Http {
    pub fn new(config: &SiteConfig, options: ClientOptions) -> Result<Self, ConfluenceError> {
        // Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (reqwest's
        // default), as clusters behind an egress proxy expect.
        // The request's deadline (body included) is kept in `attempt`, so
        // its error names it; reqwest only bounds connecting.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .redirect(redirect_policy())
            .user_agent(concat!("confluence-operator/", env!("CARGO_PKG_VERSION")))
            .tls_built_in_native_certs(false);
        for cert in super::tls::system_roots() {
            builder = builder.add_root_certificate(cert.clone());
        }
        if let Some(bundle) = &config.ca_bundle {
            for cert in bundle.certificates() {
                builder = builder.add_root_certificate(cert.clone());
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConfluenceError::Config(format!("building the HTTP client: {e}")))?;
        let raw = match &config.credentials {
            Credentials::Basic { username, token } => {
                let pair = format!("{username}:{token}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Credentials::Bearer { token } => format!("Bearer {token}"),
        };
        // The error text must not echo the value: it holds the token.
        let mut auth = HeaderValue::from_str(&raw).map_err(|_| {
            ConfluenceError::Config(
                "the credentials contain characters not allowed in an HTTP header".into(),
            )
        })?;
        auth.set_sensitive(true);
        Ok(Self {
            client,
            origin: config.base_url.origin(),
            deadline: config.request_timeout,
            auth,
            permits: site_permits(
                &config.base_url.origin().ascii_serialization(),
                config.max_concurrency.max(1),
            ),
            max_retries: config.max_retries,
            options,
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// GETs `url` and decodes its JSON body, retrying transient failures.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &url::Url,
    ) -> Result<JsonResponse<T>, HttpFailure> {
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.attempt::<T>(url).await;
            let (error, wait) = match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fatal(f) => return Err(f),
                Attempt::Retry { error, wait } => (error, wait),
            };
            if attempt >= self.max_retries {
                return Err(HttpFailure::Other(error));
            }
            let backoff = self.backoff(attempt);
            // A server-sent Retry-After is a floor; jittered backoff still
            // applies on top so a herd of clients does not return in lockstep.
            let delay = wait.map_or(backoff, |w| {
                w.min(self.options.retry_after_max).max(backoff)
            });
            tracing::debug!(
                path = url.path(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying Confluence request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// [`Http::get_json`] on a task of its own, started now: the answer is
    /// read and decoded on whichever worker thread is free, while the caller
    /// goes on with other answers (listings keep several requests in flight,
    /// and decoding a page of bodies is real CPU work: polled from one task,
    /// every answer was decoded one after another on one thread). It starts
    /// here, not when the answer is first awaited, so a chain of requests
    /// can send its next one before it hands the current answer on, and a
    /// busy consumer does not hold up the chain. Dropping the [`Pending`]
    /// cancels the request.
    pub fn start_json<T: DeserializeOwned + Send + 'static>(&self, url: &url::Url) -> Pending<T> {
        let http = self.clone();
        let url = url.clone();
        Pending(AbortOnDrop(tokio::spawn(async move {
            http.get_json::<T>(&url).await
        })))
    }

    /// Full-jitter exponential backoff: uniform in [0, min(max, base·2^n)].
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.options.backoff_base.as_millis() as u64;
        let cap = self.options.backoff_max.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(20)).min(cap);
        if exp == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(exp / 2..=exp))
    }

    async fn attempt<T: DeserializeOwned>(&self, url: &url::Url) -> Attempt<T> {
        // Paging links come from the server: one pointing at another host
        // would carry the credentials there.
        if url.origin() != self.origin {
            return Attempt::Fatal(HttpFailure::Other(ConfluenceError::Protocol(format!(
                "Confluence pointed a request at another host ({}); not followed, credentials are only sent to {}",
                clip(&url.origin().ascii_serialization()),
                self.origin.ascii_serialization()
            ))));
        }
        // The permit covers the request and the body download, not the
        // backoff sleep, so waiting retries do not starve other requests.
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Fatal(HttpFailure::Other(ConfluenceError::Transient(
                "client is shutting down".into(),
            )));
        };
        // One deadline for the whole exchange: a server that sends headers
        // and then trickles (or never ends) its body must not hold a sync.
        match tokio::time::timeout(self.deadline, self.exchange::<T>(url)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Retry {
                error: ConfluenceError::Transient(format!(
                    "{} timed out: no complete answer within {}s",
                    url.path(),
                    self.deadline.as_secs_f64()
                )),
                wait: None,
            },
        }
    }

    async fn exchange<T: DeserializeOwned>(&self, url: &url::Url) -> Attempt<T> {
        let sent = self
            .client
            .get(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if e.is_redirect() {
                    return Attempt::Fatal(HttpFailure::Other(ConfluenceError::Protocol(format!(
                        "{} answered with a redirect that was not followed ({}); set spec.url to the address Confluence is served at",
                        url.path(),
                        innermost(&e)
                    ))));
                }
                if let Some(problem) = super::tls::certificate_failure(&e) {
                    let host = url.host_str().unwrap_or_default();
                    return Attempt::Fatal(HttpFailure::Other(ConfluenceError::Tls(format!(
                        "the certificate of {host} was not accepted ({problem}); if the site uses a private CA, name its certificate in spec.caBundleRef"
                    ))));
                }
                return Attempt::Retry {
                    error: ConfluenceError::Transient(describe(url, &e)),
                    wait: None,
                };
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        if status.is_success() {
            if let Some(kind) = not_json(&headers) {
                return Attempt::Fatal(HttpFailure::Other(ConfluenceError::Protocol(format!(
                    "{} answered HTTP {} with {kind} instead of JSON (a login page or a proxy in front of Confluence?)",
                    url.path(),
                    status.as_u16()
                ))));
            }
            let bytes = match read_capped(resp, MAX_RESPONSE_BYTES).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => {
                    return Attempt::Fatal(HttpFailure::Other(ConfluenceError::TooLarge {
                        path: url.path().to_string(),
                        limit_mib: MAX_RESPONSE_BYTES / (1024 * 1024),
                    }));
                }
                Err(BodyError::Transfer(e)) => {
                    return Attempt::Retry {
                        error: ConfluenceError::Transient(describe(url, &e)),
                        wait: None,
                    };
                }
            };
            // JSON is UTF-8; stray bytes become U+FFFD rather than failing
            // the whole listing that carries them. Valid text is neither
            // copied nor checked twice: `from_utf8` is the fast check, and
            // the lossy pass only runs when it fails.
            let text = match std::str::from_utf8(&bytes) {
                Ok(valid) => std::borrow::Cow::Borrowed(valid),
                Err(_) => String::from_utf8_lossy(&bytes),
            };
            return match serde_json::from_str::<T>(&text) {
                Ok(body) => Attempt::Done(JsonResponse { body, headers }),
                // A body that does not decode is most often a truncated
                // transfer (proxy reset, dropped connection): retry it.
                Err(e) => Attempt::Retry {
                    error: ConfluenceError::Protocol(format!(
                        "undecodable JSON from {}: {e}",
                        url.path()
                    )),
                    wait: None,
                },
            };
        }
        // Drain (and ignore) a bounded error body so the connection can be
        // reused; an endless one just ends the connection.
        let _ = read_capped(resp, 64 * 1024).await;
        match status {
            StatusCode::UNAUTHORIZED => {
                Attempt::Fatal(HttpFailure::Other(ConfluenceError::Unauthorized))
            }
            StatusCode::FORBIDDEN => Attempt::Fatal(HttpFailure::Other(
                ConfluenceError::Forbidden(url.path().to_string()),
            )),
            StatusCode::NOT_FOUND => Attempt::Fatal(HttpFailure::NotFound),
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                error: ConfluenceError::RateLimited {
                    retries: self.max_retries,
                },
                wait: Some(retry_after(&headers).unwrap_or(self.options.backoff_base)),
            },
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Attempt::Retry {
                error: ConfluenceError::Transient(format!(
                    "HTTP {} from {}",
                    s.as_u16(),
                    url.path()
                )),
                wait: retry_after(&headers),
            },
            s => Attempt::Fatal(HttpFailure::Other(ConfluenceError::Protocol(format!(
                "HTTP {} from {}",
                s.as_u16(),
                url.path()
            )))),
        }
    }
}

/// Follows redirects only within the origin they started from: reqwest
/// would follow one to another host without the `Authorization` header, but
/// an answer from there is not the site's, and a downgrade to http:// or a
/// hop through a foreign host is never what a site's URL means.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if attempt.url().origin() != first.origin() {
            let to = clip(&attempt.url().origin().ascii_serialization());
            return attempt.error(format!("redirect to another host, {to}"));
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        attempt.follow()
    })
}

/// The media type of a success that is not JSON, `None` when it is JSON
/// (or unnamed: the decoder then decides).
fn not_json(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let media = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = media == "application/json" || media.ends_with("+json") || media == "text/json";
    (!json).then(|| clip(&media))
}

enum BodyError {
    TooLarge,
    Transfer(reqwest::Error),
}

/// The body, or `TooLarge` as soon as it exceeds `limit` (announced or
/// streamed), so a huge or endless answer costs at most `limit` bytes.
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(announced as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transfer)? {
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Server-chosen text in messages (a media type, a host) is cut short.
fn clip(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The innermost cause of a reqwest error, as text.
fn innermost(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    let mut detail = e.to_string();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    detail
}

/// The concurrency limit is per site, not per client: the controller may
/// hold one client per synced space, and all of them hit the same server.
/// Clients of one origin with the same limit share one semaphore, kept
/// alive by the clients themselves.
fn site_permits(origin: &str, max: usize) -> Arc<Semaphore> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Semaphore>>>> = OnceLock::new();
    let mut map = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    let key = format!("{origin}#{max}");
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    let permits = Arc::new(Semaphore::new(max));
    map.insert(key, Arc::downgrade(&permits));
    permits
}

enum Attempt<T> {
    Done(JsonResponse<T>),
    Fatal(HttpFailure),
    Retry {
        error: ConfluenceError,
        wait: Option<Duration>,
    },
}

/// A reqwest error without its URL's query (which can be long) and never
/// any header: credentials live only in headers.
fn describe(url: &url::Url, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body transfer failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        format!("{} {kind}", url.path())
    } else {
        format!("{} {kind}: {detail}", url.path())
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let now = jiff::Timestamp::now();
    let span = at.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(span.max(0) as u64))
}

/// The `rel="next"` target of an RFC 8288 `Link` header, if any.
pub(crate) fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let target = target.trim_start_matches('<').trim_end_matches('>');
                return Some(target.to_string());
            }
        }
    }
    None
}

/// A spawned task that is cancelled when its handle is dropped (a listing
/// that stops early must not leave its requests running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

/// A request already on its way (see [`Http::start_json`]).
pub(crate) struct Pending<T>(AbortOnDrop<Result<JsonResponse<T>, HttpFailure>>);

impl<T> Pending<T> {
    /// Its answer (cancel-safe: awaiting it in a `select!` that takes
    /// another branch leaves the request running).
    pub async fn answer(&mut self) -> Result<JsonResponse<T>, HttpFailure> {
        match (&mut self.0.0).await {
            Ok(answer) => answer,
            Err(e) => Err(HttpFailure::Other(ConfluenceError::Transient(format!(
                "a Confluence request's task ended early: {e}"
            )))),
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        // A date in the past means "now".
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&future)
            .unwrap();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&text).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    fn http_for(base: &str) -> Http {
        let config = SiteConfig {
            base_url: url::Url::parse(base).unwrap(),
            flavor: super::super::Flavor::DataCenter,
            credentials: Credentials::Bearer {
                token: "secret-token".into(),
            },
            max_concurrency: 1,
            request_timeout: Duration::from_secs(5),
            max_retries: 0,
            ca_bundle: None,
        };
        Http::new(&config, ClientOptions::default()).unwrap()
    }

    /// A started request is on the wire before anyone awaits its answer (a
    /// listing sends its next request, then hands the current answer on),
    /// and dropping it unanswered closes the connection.
    #[tokio::test]
    async fn a_started_request_goes_out_before_its_answer_is_awaited() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/confluence", listener.local_addr().unwrap());
        let http = http_for(&base);
        let url = url::Url::parse(&format!("{base}/rest/api/content?start=25")).unwrap();
        let read_request = async |sock: &mut tokio::net::TcpStream| {
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };

        let mut pending = http.start_json::<serde_json::Value>(&url);
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the request arrives without being awaited")
            .unwrap();
        let request = read_request(&mut sock).await;
        assert!(
            request.starts_with("GET /confluence/rest/api/content?start=25 "),
            "{request}"
        );
        sock.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"size\": 0}",
        )
        .await
        .unwrap();
        let answer = pending.answer().await.expect("answer");
        assert_eq!(answer.body["size"], 0);

        // Dropped before its answer: the request is cancelled.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/confluence", listener.local_addr().unwrap());
        let http = http_for(&base);
        let url = url::Url::parse(&format!("{base}/rest/api/content")).unwrap();
        let pending = http.start_json::<serde_json::Value>(&url);
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the request arrives")
            .unwrap();
        let _ = read_request(&mut sock).await;
        drop(pending);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut rest))
            .await
            .expect("the connection is closed");
        assert!(closed.is_ok_and(|n| n == 0), "{rest:?}");
    }

    /// A paging link from the server pointing elsewhere is refused before
    /// any connection is made, so the credentials stay with the site.
    #[tokio::test]
    async fn requests_to_another_origin_are_refused() {
        let http = http_for("https://wiki.example.com/confluence");
        for other in [
            "https://evil.example.net/rest/api/content?start=25",
            "http://wiki.example.com/rest/api/content",
            "https://wiki.example.com:8443/rest/api/content",
        ] {
            let url = url::Url::parse(other).unwrap();
            match http.get_json::<serde_json::Value>(&url).await {
                Err(HttpFailure::Other(ConfluenceError::Protocol(m))) => {
                    assert!(m.contains("another host"), "{m}");
                    assert!(!m.contains("secret-token"), "{m}");
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("{other} was requested"),
            }
        }
    }

    #[test]
    fn only_json_media_types_pass() {
        let mut h = HeaderMap::new();
        assert_eq!(not_json(&h), None);
        for ok in [
            "application/json",
            "application/json;charset=UTF-8",
            "application/vnd.api+json",
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ok));
            assert_eq!(not_json(&h), None, "{ok}");
        }
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert_eq!(not_json(&h).as_deref(), Some("text/html"));
        let long = format!("x/{}", "y".repeat(500));
        h.insert(CONTENT_TYPE, HeaderValue::from_str(&long).unwrap());
        assert!(not_json(&h).unwrap().len() < 130);
    }

    #[test]
    fn link_header_next() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "</wiki/api/v2/spaces/1/pages?cursor=abc&limit=2>; rel=\"next\", <https://x>; rel=\"base\"",
            ),
        );
        assert_eq!(
            link_next(&h).as_deref(),
            Some("/wiki/api/v2/spaces/1/pages?cursor=abc&limit=2")
        );
    }
}
