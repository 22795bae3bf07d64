//! A lean HTTP/1.1 client: one keep-alive connection per virtual user, on hyper's connection
//! API with no pool, no redirects and no decompression, so that one process can drive a lot of
//! load (measured against wrk and Locust by `scripts/bench-loadgen`).
//!
//! The connection is driven inside the user's own task, next to the request, rather than by a
//! task of its own: that saves two task wake-ups per request. A connection is replaced when the
//! server closes it (a draining replica answers `Connection: close`) and after
//! [`MAX_CONNECTION_AGE`], so that replicas an autoscaler adds get their share of the users.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{SYNTHETIC_BAGGAGE, USER_AGENT};

/// A connection older than this is closed and replaced before the next request. Behind a
/// Kubernetes Service, connections (not requests) are spread over the replicas, so users who
/// kept theirs forever would never reach the replicas added during a surge.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30);

/// The base URL of the shop under load.
#[derive(Clone, Debug)]
pub struct Target {
    url: String,
    host: String,
    port: u16,
    authority: HeaderValue,
}

impl Target {
    /// Accepts `http://HOST[:PORT]` with an optional trailing slash.
    pub fn parse(text: &str) -> Result<Target, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "https targets are not supported: point the load generator at the plain-HTTP \
                     Service or port, e.g. http://doorbuster"
                        .to_owned(),
                );
            }
            _ => return Err(format!("{text:?} is not an http:// URL")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{text:?}: give the shop's base URL, without a path (the journeys know the paths)"
            ));
        }
        // `Uri::host` keeps the brackets of an IPv6 literal; the resolver wants them off.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Target {
            url: format!("http://{authority}"),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|e| format!("{text:?}: bad host: {e}"))?,
        })
    }

    /// The normalised base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The resolved target that every user's client connects to.
#[derive(Debug)]
pub struct Endpoint {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    host: HeaderValue,
    timeout: Duration,
}

impl Endpoint {
    /// Resolves the target's host once; the run then connects to its addresses in turn.
    pub async fn resolve(target: &Target, timeout: Duration) -> std::io::Result<Endpoint> {
        let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
        let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, lookup)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "DNS lookup timed out")
            })??
            .collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host name has no addresses",
            ));
        }
        Ok(Endpoint {
            addrs,
            next: AtomicUsize::new(0),
            host: target.authority.clone(),
            timeout,
        })
    }

    /// Opens one connection (bounded by the request timeout).
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        let addr = self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()];
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out")
            })??;
        // Requests are small and answered at once: do not let Nagle hold them back.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// No connection could be opened.
    ConnectFailed,
    /// No complete answer within `--timeout`.
    TimedOut,
    /// The connection broke, or the answer was not HTTP.
    Broken,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::ConnectFailed, Failure::TimedOut, Failure::Broken];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ConnectFailed => "connect_failed",
            Failure::TimedOut => "timed_out",
            Failure::Broken => "broken_connection",
        }
    }
}

/// A request to make, cheap to clone and to build again for a retry.
#[derive(Clone, Debug)]
pub struct Call {
    method: Method,
    uri: Uri,
    body: Option<(&'static str, Bytes)>,
    header: Option<(HeaderName, HeaderValue)>,
}

impl Call {
    pub fn get(uri: Uri) -> Call {
        Call {
            method: Method::GET,
            uri,
            body: None,
            header: None,
        }
    }

    pub fn post(uri: Uri, content_type: &'static str, body: impl Into<Bytes>) -> Call {
        Call {
            method: Method::POST,
            uri,
            body: Some((content_type, body.into())),
            header: None,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Call {
        self.header = Some((name, value));
        self
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<HeaderValue>,
    /// Only when asked for; otherwise the body is read and dropped.
    pub body: Option<Bytes>,
}

/// A shopper's cookies. The shop sets only `cart`, but the jar keeps whatever it is given, the
/// way a browser would, and forgets a cookie that is set with `Max-Age=0` or an empty value.
#[derive(Clone, Debug, Default)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Applies one `Set-Cookie` header value.
    pub fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        let removed = value.is_empty()
            || parts.any(|attribute| {
                attribute.trim().split_once('=').is_some_and(|(key, age)| {
                    key.trim().eq_ignore_ascii_case("max-age")
                        && age.trim().parse::<i64>().is_ok_and(|age| age <= 0)
                })
            });
        self.cookies.retain(|(n, _)| n != name);
        if !removed {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Cookie` request header, if there is anything to send.
    pub fn header(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&text).ok()
    }

    pub fn clear(&mut self) {
        self.cookies.clear();
    }
}

type Io = TokioIo<TcpStream>;

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Pin<Box<Connection<Io, Full<Bytes>>>>,
    /// The driver has finished: the connection is closed.
    closed: bool,
    opened: Instant,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.closed && !self.sender.is_closed() && self.opened.elapsed() < MAX_CONNECTION_AGE
    }
}

/// How an attempt failed: before the request left (safe to retry on a new connection) or after.
enum AttemptError {
    NotSent,
    Failed,
}

/// One virtual user's HTTP client.
pub struct Client {
    endpoint: Arc<Endpoint>,
    conn: Option<Conn>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Client {
    pub fn new(endpoint: Arc<Endpoint>) -> Client {
        Client {
            endpoint,
            conn: None,
        }
    }

    /// Sends `call` with the jar's cookies and stores the cookies the answer sets. The whole
    /// exchange, connecting and reading the body included, is bounded by the timeout.
    pub async fn send(
        &mut self,
        call: &Call,
        jar: Option<&mut CookieJar>,
        keep_body: bool,
    ) -> Result<Reply, Failure> {
        let cookie = jar.as_deref().and_then(CookieJar::header);
        let timeout = self.endpoint.timeout;
        let exchange = self.exchange(call, cookie, keep_body);
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::TimedOut),
        };
        let (parts, body) = match result {
            Ok(answer) => answer,
            Err(failure) => {
                // The connection's state is unknown after a failure: start the next one afresh.
                self.conn = None;
                return Err(failure);
            }
        };
        if parts
            .headers
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            self.conn = None;
        }
        if let Some(jar) = jar {
            for value in parts.headers.get_all(header::SET_COOKIE) {
                if let Ok(value) = value.to_str() {
                    jar.store(value);
                }
            }
        }
        Ok(Reply {
            status: parts.status,
            location: parts.headers.get(header::LOCATION).cloned(),
            body,
        })
    }

    /// Opens the connection now rather than with the first request (to tell an unreachable
    /// target apart before the run starts).
    pub async fn connect(&mut self) -> std::io::Result<()> {
        let stream = self.endpoint.connect().await?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        self.conn = Some(Conn {
            sender,
            driver: Box::pin(driver),
            closed: false,
            opened: Instant::now(),
        });
        Ok(())
    }

    /// Drops the connection, so the next request opens a new one (a new shopper arriving).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn exchange(
        &mut self,
        call: &Call,
        cookie: Option<HeaderValue>,
        keep_body: bool,
    ) -> Result<(hyper::http::response::Parts, Option<Bytes>), Failure> {
        let mut fresh = false;
        if !self.conn.as_ref().is_some_and(Conn::usable) {
            self.conn = None;
            self.connect().await.map_err(|_| Failure::ConnectFailed)?;
            fresh = true;
        }
        match self.attempt(call, cookie.clone(), keep_body).await {
            Ok(answer) => Ok(answer),
            // A kept-alive connection the server had already closed: the request never left,
            // so it is safe to send again on a new one, as browsers do.
            Err(AttemptError::NotSent) if !fresh => {
                self.connect().await.map_err(|_| Failure::ConnectFailed)?;
                self.attempt(call, cookie, keep_body)
                    .await
                    .map_err(|_| Failure::Broken)
            }
            Err(_) => Err(Failure::Broken),
        }
    }

    async fn attempt(
        &mut self,
        call: &Call,
        cookie: Option<HeaderValue>,
        keep_body: bool,
    ) -> Result<(hyper::http::response::Parts, Option<Bytes>), AttemptError> {
        let request = self.build(call, cookie, !keep_body);
        let Some(conn) = self.conn.as_mut() else {
            return Err(AttemptError::NotSent);
        };
        let Conn {
            sender,
            driver,
            closed,
            ..
        } = conn;
        let work = async {
            sender.ready().await.map_err(|_| AttemptError::NotSent)?;
            let response = sender.send_request(request).await.map_err(|e| {
                if e.is_canceled() {
                    AttemptError::NotSent
                } else {
                    AttemptError::Failed
                }
            })?;
            let (parts, mut body) = response.into_parts();
            let kept = if keep_body {
                let bytes = body.collect().await.map_err(|_| AttemptError::Failed)?;
                Some(bytes.to_bytes())
            } else {
                while let Some(frame) = body.frame().await {
                    frame.map_err(|_| AttemptError::Failed)?;
                }
                None
            };
            Ok((parts, kept))
        };
        if *closed {
            return work.await;
        }
        tokio::pin!(work);
        tokio::select! {
            biased;
            answer = &mut work => answer,
            _ = driver.as_mut() => {
                // The connection ended; whatever it delivered is still waiting in `work`.
                *closed = true;
                work.await
            }
        }
    }

    /// With `compressed`, asks for gzip like a browser, so the shop does the work it would for
    /// shoppers; bodies that are read (discovery) are asked for plain, since nothing here
    /// decompresses.
    fn build(
        &self,
        call: &Call,
        cookie: Option<HeaderValue>,
        compressed: bool,
    ) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::new(Full::new(
            call.body
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
        ));
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = call.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.endpoint.host.clone());
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(
            HeaderName::from_static("baggage"),
            HeaderValue::from_static(SYNTHETIC_BAGGAGE),
        );
        if compressed {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some((content_type, _)) = &call.body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(cookie) = cookie {
            headers.insert(header::COOKIE, cookie);
        }
        if let Some((name, value)) = &call.header {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_plain_http_base_urls() {
        let target = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(target.url(), "http://127.0.0.1:8080");
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8080));
        let service = Target::parse("http://doorbuster").unwrap();
        assert_eq!((service.host.as_str(), service.port), ("doorbuster", 80));
        assert_eq!(service.authority, "doorbuster");
        let v6 = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert!(
            Target::parse("https://shop.example")
                .unwrap_err()
                .contains("https")
        );
        assert!(Target::parse("http://shop/p/x").is_err());
        assert!(Target::parse("shop:8080").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn the_jar_keeps_and_forgets_cookies_like_a_browser() {
        let mut jar = CookieJar::default();
        assert!(jar.header().is_none());
        jar.store("cart=12x1; Path=/; HttpOnly; SameSite=Lax; Max-Age=604800");
        assert_eq!(jar.get("cart"), Some("12x1"));
        jar.store("theme=dark");
        jar.store("cart=12x1-7x2; Path=/");
        assert_eq!(jar.header().unwrap(), "theme=dark; cart=12x1-7x2");
        jar.store("cart=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(jar.get("cart"), None);
        jar.store("theme=dark; max-age=0");
        assert!(jar.header().is_none());
    }
}
