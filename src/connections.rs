//! Connections: the accept loop and the limits every connection is held to, for the shop and the
//! admin listener alike, so no client can hold a connection (and its file descriptor) for free.
//!
//! Each connection runs in its own task, which owns the hyper-util connection and watches it:
//! a service wrapper counts the requests in flight and an I/O wrapper notes when the bytes of a
//! next request head start arriving. From those the task knows its deadline:
//! - a new connection must have sent a complete first request head within the header-read
//!   timeout of being accepted (silent clients included: hyper's own timer only starts at the
//!   first byte, and only for HTTP/1);
//! - between keep-alive requests, an HTTP/1 head must be complete within the header-read timeout
//!   of its first byte (slowloris);
//! - a connection with no request in flight is closed after the idle timeout (HTTP/1 and HTTP/2);
//! - a request in flight is never cut: its time is bounded by the body-read and request timeouts
//!   in [`crate::web`].
//!
//! Closing is graceful first (hyper-util's `graceful_shutdown`: HTTP/1 closes when idle, HTTP/2
//! sends GOAWAY), then forced after [`CLOSE_GRACE`] if nothing is in flight, because a silent
//! HTTP/2 client never answers the GOAWAY's ping.
//!
//! When `accept` fails for lack of file descriptors, the loop closes the oldest idle connections
//! (across the shop and admin listeners, which share one [`ConnectionTable`]) so new ones, probes
//! included, get in; it backs off instead of spinning and logs once per episode. At shutdown it
//! accepts what the kernel has already queued before closing the listener, so those clients are
//! answered (told to close) rather than reset.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, Version};
use futures_util::task::AtomicWaker;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower::util::Oneshot;

use crate::config::WebConfig;

/// Largest request head (request line and headers) accepted; beyond it the answer is 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// How long a connection asked to close may take to do so by itself (send the rest of its last
/// response, or answer HTTP/2's GOAWAY) before it is dropped, counted from the later of the
/// request to close and the end of its last response; never while a request is in flight.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// While draining, how long a connection that has sent no request yet gets to send one (a client
/// whose connection was just accepted from the queue has usually sent it already).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Connections closed per failed `accept` when file descriptors run out.
const EVICT_BATCH: usize = 16;

/// Back-off after a failed `accept`: short when connections were closed to make room, growing up
/// to the maximum while there is nothing to close.
const ACCEPT_RETRY_MIN: Duration = Duration::from_millis(10);
const ACCEPT_RETRY_MAX: Duration = Duration::from_millis(500);

/// A failed `accept` this long after the previous one starts a new episode, logged again.
const EPISODE_GAP: Duration = Duration::from_secs(5);

/// Within an episode, how often it is logged again (with counts).
const EPISODE_REPEAT: Duration = Duration::from_secs(60);

/// The time limits every connection is held to (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn of(config: &WebConfig) -> Limits {
        Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// Every open connection of the process, oldest first, so that running out of file descriptors
/// can close the oldest idle ones whichever listener they came from.
#[derive(Debug, Default)]
pub struct ConnectionTable {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl ConnectionTable {
    /// Connections open right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self, listening: &Arc<Listening>) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, listening.clone()));
        self.lock().insert(id, conn.clone());
        conn
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks up to `at_most` of the oldest connections with no request in flight to close;
    /// returns how many were asked.
    fn evict_oldest_idle(&self, at_most: usize) -> usize {
        let open = self.lock();
        let mut evicted = 0;
        for conn in open.values() {
            if evicted == at_most {
                break;
            }
            if conn.in_flight.load(Ordering::Acquire) == 0
                && !conn.closing.load(Ordering::Acquire)
                && !conn.evict.swap(true, Ordering::AcqRel)
            {
                conn.waker.wake();
                evicted += 1;
            }
        }
        evicted
    }

    /// Wakes every connection of `listening`, so each sees that it is draining.
    fn wake(&self, listening: &Arc<Listening>) {
        for conn in self.lock().values() {
            if Arc::ptr_eq(&conn.listening, listening) {
                conn.waker.wake();
            }
        }
    }
}

/// One listener's shared state: whether (since when) it is draining.
#[derive(Debug, Default)]
struct Listening {
    draining_since: OnceLock<Instant>,
}

/// What a connection's task, its service wrapper and its I/O wrapper share.
#[derive(Debug)]
struct Conn {
    listening: Arc<Listening>,
    accepted: Instant,
    /// Requests whose response has not been sent whole.
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    requests: AtomicU64,
    http2: AtomicBool,
    /// When the last request finished, as a [`Conn::stamp`].
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived, as a [`Conn::stamp`]; zero for none.
    head_started: AtomicU64,
    /// Set by [`ConnectionTable::evict_oldest_idle`].
    evict: AtomicBool,
    /// Set once the task has asked the connection to close.
    closing: AtomicBool,
    /// The connection's task, woken to notice eviction, draining, or an HTTP/2 request finishing
    /// on another task.
    waker: AtomicWaker,
    id: u64,
}

impl Conn {
    fn new(id: u64, listening: Arc<Listening>) -> Conn {
        Conn {
            listening,
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            evict: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            id,
        }
    }

    /// `now` as milliseconds since the connection was accepted, plus one (zero means "never").
    fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.accepted).as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn at(&self, stamp: u64) -> Option<Instant> {
        stamp
            .checked_sub(1)
            .map(|millis| self.accepted + Duration::from_millis(millis))
    }

    fn request_started(&self, version: Version) {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.head_started.store(0, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since
                .store(self.stamp(Instant::now()), Ordering::Release);
            // An HTTP/1 request finishes inside the connection's task, which looks at its
            // deadline right after; an HTTP/2 stream finishes on a task of its own.
            if self.http2.load(Ordering::Relaxed) {
                self.waker.wake();
            }
        }
    }

    /// Bytes arrived: if no request is in flight, they start the next request's head.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && self.requests.load(Ordering::Relaxed) > 0
        {
            self.head_started
                .store(self.stamp(Instant::now()), Ordering::Relaxed);
        }
    }

    /// Whether the drain asks this connection to close now: it has served (or is serving) a
    /// request. One that has sent nothing yet gets [`DRAIN_GRACE`] (see [`Conn::deadline`]).
    fn drain_now(&self) -> bool {
        self.listening.draining_since.get().is_some()
            && (self.requests.load(Ordering::Acquire) > 0
                || self.in_flight.load(Ordering::Acquire) > 0)
    }

    /// When this connection is to be closed (or, once closing, dropped), given what it is doing;
    /// `None` while a request is in flight.
    fn deadline(&self, limits: &Limits, closing: Option<Instant>) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if let Some(since) = closing {
            // Counted from the end of the last response too: its last bytes may still be on
            // their way out when its body is done.
            let idle_since = self.at(self.idle_since.load(Ordering::Acquire));
            return Some(since.max(idle_since.unwrap_or(since)) + CLOSE_GRACE);
        }
        if self.requests.load(Ordering::Acquire) == 0 {
            let deadline = self.accepted + limits.header_read_timeout;
            return Some(match self.listening.draining_since.get() {
                Some(&since) => deadline.min(since.max(self.accepted) + DRAIN_GRACE),
                None => deadline,
            });
        }
        let idle_since = self
            .at(self.idle_since.load(Ordering::Acquire))
            .unwrap_or(self.accepted);
        let idle = idle_since + limits.idle_timeout;
        let head = self
            .at(self.head_started.load(Ordering::Relaxed))
            .filter(|_| !self.http2.load(Ordering::Relaxed));
        Some(match head {
            Some(started) => idle.min(started + limits.header_read_timeout),
            None => idle,
        })
    }
}

/// Serves `app` on every connection `listener` accepts until `stop` resolves; then accepts what
/// the kernel has already queued, closes the listener, asks every connection to finish what it
/// is doing and close, and returns once they have or `finish_timeout` has passed.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    limits: Limits,
    table: Arc<ConnectionTable>,
    stop: impl Future<Output = ()>,
    finish_timeout: Duration,
) -> std::io::Result<()> {
    let builder = Arc::new(builder());
    let listening = Arc::new(Listening::default());
    let tracker = TaskTracker::new();
    let spawn = |stream: TcpStream| {
        let conn = table.open(&listening);
        tracker.spawn(drive(
            builder.clone(),
            stream,
            app.clone(),
            conn,
            limits,
            table.clone(),
        ));
    };

    let mut exhaustion = Exhaustion::default();
    let mut pause = pin!(tokio::time::sleep(Duration::ZERO));
    let mut paused = false;
    let mut stop = pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = &mut pause, if paused => paused = false,
            accepted = listener.accept(), if !paused => match accepted {
                Ok((stream, _peer)) => spawn(stream),
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "a connection went away before it was accepted");
                }
                Err(error) => {
                    let delay = exhaustion.failed(name, &error, &table);
                    pause.as_mut().reset(Instant::now() + delay);
                    paused = true;
                }
            },
        }
    }

    // Draining: connections finish their request and close. Those the kernel has completed but
    // the loop has not accepted yet are accepted now and served the same way: closing the
    // listener with them queued would reset them.
    let _ = listening.draining_since.set(Instant::now());
    let mut queued = 0;
    match listener.into_std() {
        Ok(listener) => loop {
            match listener.accept() {
                Ok((stream, _peer)) => {
                    match stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        Ok(stream) => {
                            spawn(stream);
                            queued += 1;
                        }
                        Err(error) => {
                            tracing::warn!(listener = name, %error, "cannot serve a queued connection");
                        }
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::warn!(listener = name, %error, "cannot accept the queued connections; closing the listener");
                    break;
                }
            }
        },
        Err(error) => {
            tracing::warn!(listener = name, %error, "cannot accept the queued connections")
        }
    }
    tracing::info!(
        listener = name,
        queued,
        open = tracker.len(),
        "listener closed, finishing in-flight requests"
    );
    table.wake(&listening);
    tracker.close();
    if tokio::time::timeout(finish_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            ?finish_timeout,
            open = tracker.len(),
            "in-flight requests did not finish in time; exiting anyway"
        );
    }
    Ok(())
}

/// HTTP/1.1 and HTTP/2 (h2c). hyper's own HTTP/1 header-read timer is off: it only starts at the
/// first byte, and between keep-alive requests it would cut idle connections at the header-read
/// timeout instead of the idle timeout; [`drive`] keeps both limits.
fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// A connection's task: serves it, and closes it when its deadline comes (see the module
/// documentation).
async fn drive(
    builder: Arc<Builder<TokioExecutor>>,
    stream: TcpStream,
    app: Router,
    conn: Arc<Conn>,
    limits: Limits,
    table: Arc<ConnectionTable>,
) {
    struct Listed(Arc<ConnectionTable>, u64);
    impl Drop for Listed {
        fn drop(&mut self) {
            self.0.close(self.1);
        }
    }
    let _listed = Listed(table, conn.id);

    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    let service = Counted {
        app,
        conn: conn.clone(),
    };
    let mut connection = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut armed = conn
        .deadline(&limits, None)
        .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
    let mut timer = pin!(tokio::time::sleep_until(armed));
    let mut closing: Option<Instant> = None;

    let ended = poll_fn(|cx: &mut Context<'_>| {
        // Registered before looking at the flags, so a wake in between is not lost.
        conn.waker.register(cx.waker());
        loop {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            if closing.is_none() && (conn.evict.load(Ordering::Acquire) || conn.drain_now()) {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
                conn.closing.store(true, Ordering::Release);
                continue;
            }
            // Deadlines move later as requests come and go: the timer is only moved earlier
            // here (a head started, a request finished, closing began); a timer that fires too
            // early is re-armed below. That keeps timer updates off the per-request path.
            if let Some(deadline) = conn.deadline(&limits, closing)
                && deadline < armed
            {
                armed = deadline;
                timer.as_mut().reset(armed);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            match conn.deadline(&limits, closing) {
                Some(deadline) if deadline <= now => {
                    if closing.is_some() {
                        // Asked to close and still open with nothing in flight: drop it.
                        return Poll::Ready(None);
                    }
                    tracing::debug!(
                        requests = conn.requests.load(Ordering::Relaxed),
                        "closing a connection: no complete request head in time, or idle"
                    );
                    connection.as_mut().graceful_shutdown();
                    closing = Some(now);
                    conn.closing.store(true, Ordering::Release);
                    armed = now + CLOSE_GRACE;
                }
                Some(deadline) => armed = deadline,
                // A request in flight: look again later (its end moves the timer earlier).
                None => armed = now + limits.idle_timeout,
            }
            timer.as_mut().reset(armed);
        }
    })
    .await;
    if let Some(Err(error)) = ended {
        tracing::debug!(%error, "connection ended with an error");
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// `accept` failing for another reason than a vanished client: out of file descriptors (EMFILE,
/// ENFILE) or memory for sockets. Tracks episodes so that each is logged once when it starts and
/// then at most once a minute, rather than at every failed attempt.
#[derive(Debug, Default)]
struct Exhaustion {
    last_failure: Option<Instant>,
    last_logged: Option<Instant>,
    delay: Duration,
    /// Failed attempts and connections asked to close since the last log line.
    failures: u64,
    evicted: usize,
}

impl Exhaustion {
    /// Makes room by closing the oldest idle connections; returns how long to wait before
    /// accepting again.
    fn failed(
        &mut self,
        name: &'static str,
        error: &std::io::Error,
        table: &ConnectionTable,
    ) -> Duration {
        let now = Instant::now();
        let evicted = table.evict_oldest_idle(EVICT_BATCH);
        let new_episode = self
            .last_failure
            .is_none_or(|at| now.duration_since(at) >= EPISODE_GAP);
        if new_episode {
            self.delay = ACCEPT_RETRY_MIN;
            self.failures = 0;
            self.evicted = 0;
        }
        self.last_failure = Some(now);
        self.failures += 1;
        self.evicted += evicted;
        if new_episode {
            tracing::warn!(
                listener = name,
                %error,
                open_connections = table.len(),
                closing_idle = evicted,
                "cannot accept connections: closing the oldest idle connections to make room \
                 (until this stops, at most one line a minute)"
            );
            self.last_logged = Some(now);
        } else if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= EPISODE_REPEAT)
        {
            tracing::warn!(
                listener = name,
                %error,
                open_connections = table.len(),
                failures = self.failures,
                closed_idle = self.evicted,
                "still cannot accept every connection"
            );
            self.last_logged = Some(now);
            self.failures = 0;
            self.evicted = 0;
        } else {
            tracing::debug!(listener = name, %error, closing_idle = evicted, "cannot accept connections");
        }
        if evicted > 0 {
            ACCEPT_RETRY_MIN
        } else {
            self.delay = (self.delay * 2).clamp(ACCEPT_RETRY_MIN, ACCEPT_RETRY_MAX);
            self.delay
        }
    }
}

/// The socket, noting when the bytes of a next request head start to arrive.
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.conn.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The app as a hyper service that counts the connection's requests in flight: from the parsed
/// head until the response body has been sent (or dropped).
#[derive(Debug)]
struct Counted {
    app: Router,
    conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for Counted {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = CountedFuture;

    fn call(&self, request: Request<Incoming>) -> CountedFuture {
        self.conn.request_started(request.version());
        CountedFuture {
            inner: self.app.clone().oneshot(request),
            guard: Some(InFlight(self.conn.clone())),
        }
    }
}

/// One request in flight on a connection, until dropped.
#[derive(Debug)]
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[derive(Debug)]
struct CountedFuture {
    inner: Oneshot<Router, Request<Incoming>>,
    guard: Option<InFlight>,
}

impl Future for CountedFuture {
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = std::task::ready!(Pin::new(&mut this.inner).poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|body| CountedBody {
            body,
            _in_flight: guard,
        })))
    }
}

/// A response body that holds its request's [`InFlight`] until hyper is done with it.
#[derive(Debug)]
struct CountedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
