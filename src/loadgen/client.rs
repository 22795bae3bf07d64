//! A lean HTTP/1.1 client: one keep-alive connection per virtual user, no pool, no redirects,
//! no decompression, so that one process can drive a lot of load.
//!
//! It writes each request with one `write` and parses answers in place with `httparse`
//! (Content-Length, chunked, or until close), inside the user's own task. The first version used
//! hyper's client connection; `scripts/bench-loadgen` measured it at about 0.6× the requests per
//! CPU-second of `wrk -t1`, the cost being the request and body channels between caller and
//! connection task, which a client that sends one request at a time does not need.
//!
//! A connection is replaced when the server closes it (a draining replica answers
//! `Connection: close`) and after [`MAX_CONNECTION_AGE`], so that replicas an autoscaler adds get
//! their share of the users. A request on a kept-alive connection that the server had closed
//! meanwhile (no byte of answer came back) is sent once more on a new connection, as browsers do;
//! the shop's checkouts carry idempotency keys, so even a POST is safe to repeat.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    method: &'static str,
    uri: Uri,
    body: Option<(&'static str, Bytes)>,
    header: Option<(HeaderName, HeaderValue)>,
}

impl Call {
    pub fn get(uri: Uri) -> Call {
        Call {
            method: "GET",
            uri,
            body: None,
            header: None,
        }
    }

    pub fn post(uri: Uri, content_type: &'static str, body: impl Into<Bytes>) -> Call {
        Call {
            method: "POST",
            uri,
            body: Some((content_type, body.into())),
            header: None,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Call {
        self.header = Some((name, value));
        self
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

/// Longest accepted response head (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers read; the shop sends about a dozen.
const MAX_HEADERS: usize = 64;
/// How much room each read asks for.
const READ_SIZE: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    opened: Instant,
    /// Whether a request has been answered on it (only then is a silent close a stale
    /// keep-alive rather than a refusal).
    reused: bool,
}

impl Conn {
    fn usable(&self) -> bool {
        self.opened.elapsed() < MAX_CONNECTION_AGE
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes; an end of stream is an error, since an answer was still expected.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.reserve(READ_SIZE);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Reads `length` body bytes, keeping them in `out` if given.
    async fn body(
        &mut self,
        mut length: usize,
        mut out: Option<&mut Vec<u8>>,
    ) -> std::io::Result<()> {
        while length > 0 {
            if self.pos == self.buf.len() {
                self.fill().await?;
            }
            let take = self.available().len().min(length);
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&self.available()[..take]);
            }
            self.pos += take;
            length -= take;
        }
        Ok(())
    }

    /// One CRLF-terminated line (without the CRLF), consumed.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.available().windows(2).position(|w| w == b"\r\n") {
                let line = self.available()[..end].to_vec();
                self.pos += end + 2;
                return Ok(line);
            }
            if self.available().len() > MAX_HEAD_BYTES {
                return Err(std::io::Error::other("a chunk line is too long"));
            }
            self.fill().await?;
        }
    }

    /// A chunked body (RFC 9112 §7.1), trailers skipped.
    async fn chunked(&mut self, mut out: Option<&mut Vec<u8>>) -> std::io::Result<()> {
        loop {
            let line = self.line().await?;
            let size = line.split(|b| *b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| std::io::Error::other("a bad chunk size"))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            self.body(size, out.as_deref_mut()).await?;
            if !self.line().await?.is_empty() {
                return Err(std::io::Error::other("a chunk without its CRLF"));
            }
        }
    }

    /// Everything until the server closes the connection.
    async fn until_close(&mut self, mut out: Option<&mut Vec<u8>>) -> std::io::Result<()> {
        loop {
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(self.available());
            }
            self.pos = self.buf.len();
            match self.fill().await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// How the body of an answer is delimited.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// The parts of an answer the journeys use.
struct Head {
    status: u16,
    location: Option<HeaderValue>,
    set_cookies: Vec<String>,
    close: bool,
    framing: Framing,
}

/// Parses the head at the start of `bytes`: its length and contents, or `None` if incomplete.
fn parse_head(bytes: &[u8], method: &str) -> Result<Option<(usize, Head)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = response.code.ok_or(())?;
    let mut head = Head {
        status,
        location: None,
        set_cookies: Vec::new(),
        close: response.version == Some(0),
        framing: Framing::UntilClose,
    };
    let mut content_length = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).map_err(|_| ())?;
            content_length = Some(text.trim().parse::<usize>().map_err(|_| ())?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header.value.to_ascii_lowercase().ends_with(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = header.value.to_ascii_lowercase();
            head.close |= value.windows(5).any(|w| w == b"close");
        } else if name.eq_ignore_ascii_case("location") {
            head.location = HeaderValue::from_bytes(header.value).ok();
        } else if name.eq_ignore_ascii_case("set-cookie")
            && let Ok(value) = std::str::from_utf8(header.value)
        {
            head.set_cookies.push(value.to_owned());
        }
    }
    head.framing =
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(length) = content_length {
            Framing::Length(length)
        } else {
            head.close = true;
            Framing::UntilClose
        };
    Ok(Some((length, head)))
}

/// How an attempt failed: before any answer came back on a kept-alive connection (safe to
/// send again on a new one), or otherwise.
enum AttemptError {
    Stale,
    Failed,
}

/// One virtual user's HTTP client.
pub struct Client {
    endpoint: Arc<Endpoint>,
    conn: Option<Conn>,
    /// The request being written, reused to spare an allocation per request.
    out: Vec<u8>,
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
            out: Vec::with_capacity(1024),
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
        self.build(call, cookie.as_ref(), !keep_body);
        let timeout = self.endpoint.timeout;
        let result =
            match tokio::time::timeout(timeout, self.exchange(call.method, keep_body)).await {
                Ok(result) => result,
                Err(_) => Err(Failure::TimedOut),
            };
        let (head, body) = match result {
            Ok(answer) => answer,
            Err(failure) => {
                // The connection's state is unknown after a failure: start the next one afresh.
                self.conn = None;
                return Err(failure);
            }
        };
        if head.close {
            self.conn = None;
        }
        if let Some(jar) = jar {
            for value in &head.set_cookies {
                jar.store(value);
            }
        }
        Ok(Reply {
            status: StatusCode::from_u16(head.status).map_err(|_| Failure::Broken)?,
            location: head.location,
            body,
        })
    }

    /// Opens the connection now rather than with the first request (to tell an unreachable
    /// target apart before the run starts).
    pub async fn connect(&mut self) -> std::io::Result<()> {
        let stream = self.endpoint.connect().await?;
        self.conn = Some(Conn {
            stream,
            buf: Vec::with_capacity(READ_SIZE),
            pos: 0,
            opened: Instant::now(),
            reused: false,
        });
        Ok(())
    }

    async fn exchange(
        &mut self,
        method: &str,
        keep_body: bool,
    ) -> Result<(Head, Option<Bytes>), Failure> {
        if !self.conn.as_ref().is_some_and(Conn::usable) {
            self.connect().await.map_err(|_| Failure::ConnectFailed)?;
        }
        match self.attempt(method, keep_body).await {
            Ok(answer) => Ok(answer),
            Err(AttemptError::Stale) => {
                self.connect().await.map_err(|_| Failure::ConnectFailed)?;
                self.attempt(method, keep_body)
                    .await
                    .map_err(|_| Failure::Broken)
            }
            Err(AttemptError::Failed) => Err(Failure::Broken),
        }
    }

    async fn attempt(
        &mut self,
        method: &str,
        keep_body: bool,
    ) -> Result<(Head, Option<Bytes>), AttemptError> {
        let conn = self.conn.as_mut().ok_or(AttemptError::Failed)?;
        let reused = conn.reused;
        // A stale keep-alive shows as a failed write or as an end of stream before any answer.
        let stale = |answered: bool| {
            if reused && !answered {
                AttemptError::Stale
            } else {
                AttemptError::Failed
            }
        };
        conn.stream
            .write_all(&self.out)
            .await
            .map_err(|_| stale(false))?;
        let (length, head) = loop {
            match parse_head(conn.available(), method) {
                Ok(Some(parsed)) => {
                    if (100..200).contains(&parsed.1.status) {
                        // An interim answer (100 Continue): the real one follows.
                        conn.pos += parsed.0;
                        continue;
                    }
                    break parsed;
                }
                Ok(None) if conn.available().len() > MAX_HEAD_BYTES => {
                    return Err(AttemptError::Failed);
                }
                Ok(None) => {
                    let answered = conn.pos < conn.buf.len();
                    conn.fill().await.map_err(|_| stale(answered))?;
                }
                Err(()) => return Err(AttemptError::Failed),
            }
        };
        conn.pos += length;
        let mut kept = keep_body.then(Vec::new);
        let read = match head.framing {
            Framing::None => Ok(()),
            Framing::Length(length) => conn.body(length, kept.as_mut()).await,
            Framing::Chunked => conn.chunked(kept.as_mut()).await,
            Framing::UntilClose => conn.until_close(kept.as_mut()).await,
        };
        read.map_err(|_| AttemptError::Failed)?;
        // Nothing should follow an answer (requests are not pipelined); keep whatever did.
        if conn.pos == conn.buf.len() {
            conn.buf.clear();
        } else {
            conn.buf.drain(..conn.pos);
        }
        conn.pos = 0;
        conn.reused = true;
        Ok((head, kept.map(Bytes::from)))
    }

    /// Writes the request into `self.out`. With `compressed`, asks for gzip like a browser, so
    /// the shop does the work it would for shoppers; bodies that are read (discovery) are asked
    /// for plain, since nothing here decompresses.
    fn build(&mut self, call: &Call, cookie: Option<&HeaderValue>, compressed: bool) {
        let out = &mut self.out;
        out.clear();
        let path = call.uri.path_and_query().map_or("/", |p| p.as_str());
        for part in [call.method, " ", path, " HTTP/1.1\r\nhost: "] {
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(self.endpoint.host.as_bytes());
        for part in [
            "\r\nuser-agent: ",
            USER_AGENT,
            "\r\nbaggage: ",
            SYNTHETIC_BAGGAGE,
            "\r\n",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        if compressed {
            out.extend_from_slice(b"accept-encoding: gzip\r\n");
        }
        if let Some(cookie) = cookie {
            out.extend_from_slice(b"cookie: ");
            out.extend_from_slice(cookie.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some((name, value)) = &call.header {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some((content_type, body)) = &call.body {
            out.extend_from_slice(b"content-type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
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
    fn heads_say_how_the_body_is_framed() {
        let head = |text: &str| parse_head(text.as_bytes(), "GET").unwrap().unwrap().1;
        let redirect = head(
            "HTTP/1.1 303 See Other\r\nlocation: /cart?added=x\r\nset-cookie: cart=1x1; Path=/\r\n\
             set-cookie: b=2\r\ncontent-length: 0\r\n\r\n",
        );
        assert_eq!(redirect.status, 303);
        assert_eq!(redirect.location.unwrap(), "/cart?added=x");
        assert_eq!(redirect.set_cookies, ["cart=1x1; Path=/", "b=2"]);
        assert!(matches!(redirect.framing, Framing::Length(0)) && !redirect.close);
        let page =
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert!(matches!(page.framing, Framing::Chunked) && page.close);
        let old = head("HTTP/1.0 200 OK\r\n\r\n");
        assert!(matches!(old.framing, Framing::UntilClose) && old.close);
        assert!(matches!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::None
        ));
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", "GET")
                .unwrap()
                .is_none()
        );
        assert!(parse_head(b"SMTP ready\r\n\r\n", "GET").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", "GET").is_err());
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
