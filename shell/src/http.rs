//! The HTTPS server: hyper over tokio-rustls, translating requests into core decisions and
//! decisions into responses.
//!
//! Files are streamed from disk in bounded chunks, so memory per transfer is a chunk or two,
//! whatever the file's size. Connections are bounded in number and in the time a client may
//! take to finish its TLS handshake or send its headers, so idle or slow clients cannot hold the
//! server.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use passim_core::request::{Asset, Refusal, parse_request, reason_phrase};
use passim_core::{Decision, Serve, index};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;
use crate::rate::RateLimiter;

/// The `Server` header: names passim, as the C version's does.
const SERVER: &str = concat!("passim/", env!("CARGO_PKG_VERSION"));

/// The response body: a small buffer, or a file streamed in chunks.
pub type ResponseBody = UnsyncBoxBody<Bytes, io::Error>;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, and how long an idle keep-alive
/// connection is kept.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request's head may take. hyper answers 431 past it.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How much of a file is read and sent at a time.
const CHUNK: usize = 256 * 1024;
/// Bodies up to this size are read in one call on the request's own task.
const SMALL: u64 = 64 * 1024;
/// How long a client may leave a response unread before its connection is cut: a peer that
/// stops reading must not hold a connection slot (and a file) forever.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight transfers may run on after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where connections come from: a TCP listener, or the simulation's.
pub trait Listener: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address it listens on.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Small responses go out at once rather than waiting for more to fill a segment.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// Accepts connections on `listener` until `shutdown` is cancelled.
pub async fn serve<L: Listener>(
    listener: L,
    acceptor: TlsAcceptor,
    daemon: Arc<Daemon>,
    connections: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached, closing");
            continue;
        };
        tracker.spawn(serve_connection(
            stream,
            peer,
            acceptor.clone(),
            daemon.clone(),
            permit,
            shutdown.clone(),
        ));
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::info!("cut transfers still running after the shutdown grace period");
    }
}

/// Serves one connection: TLS handshake, then HTTP/1.1 with keep-alive. Generic over the
/// transport so the LAN simulation can run it over simulated TCP.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    daemon: Arc<Daemon>,
    permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _permit = permit;
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let from = peer.ip().to_canonical();
    let service = hyper::service::service_fn(move |req| {
        let daemon = daemon.clone();
        async move { Ok::<_, Infallible>(handle(&daemon, from, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(StallGuard::new(tls, WRITE_STALL_TIMEOUT)),
            service,
        );
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Answers one request.
pub async fn handle(
    daemon: &Daemon,
    from: IpAddr,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let range = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.as_bytes().to_vec());
    let parsed = parse_request(&method, &path, query.as_deref(), range.as_deref());
    let response = match parsed {
        Err(refusal) => error_response(&refusal),
        Ok(request) => {
            let (decision, opened) = daemon.decide(&request, from);
            respond(daemon, decision, opened).await
        }
    };
    let mut response = response;
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER));
    tracing::debug!(%from, %method, %path, status = response.status().as_u16(), "request");
    response
}

async fn respond(
    daemon: &Daemon,
    decision: Decision,
    opened: Option<io::Result<(std::fs::File, u64)>>,
) -> Response<ResponseBody> {
    match decision {
        Decision::Index(html) => with_type(full(html), "text/html; charset=utf-8"),
        Decision::Asset(asset) => asset_response(daemon, asset).await,
        Decision::Serve(serve) => match opened {
            Some(Ok((file, size))) if size == serve.size => {
                file_response(&serve, file, daemon.limiter()).await
            }
            Some(Ok(_)) => {
                // The file changed size under us: do not serve bytes that no longer match the
                // hash the client asked for.
                tracing::warn!(hash = %serve.hash, "file changed on disk since it was loaded");
                daemon.rescan_soon();
                error_response(&Refusal::new(
                    404,
                    format!("{} changed on disk", serve.hash),
                ))
            }
            Some(Err(e)) => {
                tracing::warn!(hash = %serve.hash, error = %e, "cannot open item");
                error_response(&Refusal::new(500, format!("cannot open {}", serve.hash)))
            }
            None => error_response(&Refusal::new(500, format!("cannot open {}", serve.hash))),
        },
        Decision::RangeNotSatisfiable { size } => {
            let mut r = error_response(&Refusal::new(416, "range not satisfiable"));
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("digits are ASCII"),
            );
            r
        }
        Decision::Lookup { hash, basename } => {
            let peers = daemon.lookup(&hash).await;
            let decision = daemon.lookup_result(&hash, &basename, &peers);
            Box::pin(respond(daemon, decision, None)).await
        }
        Decision::Redirect { location } => redirect(&location),
        Decision::Refuse(refusal) => error_response(&refusal),
    }
}

/// The small HTML error page of the C version.
pub fn error_response(refusal: &Refusal) -> Response<ResponseBody> {
    let body = index::error_page(
        refusal.status,
        reason_phrase(refusal.status),
        &refusal.message,
    );
    let mut r = with_type(full(body), "text/html");
    *r.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn redirect(location: &str) -> Response<ResponseBody> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return error_response(&Refusal::new(500, "peer address is not a valid URL"));
    };
    let body = index::error_page(302, "Found", &format!("Moved to {location}"));
    let mut r = with_type(full(body), "text/html");
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(header::LOCATION, value);
    r
}

async fn asset_response(daemon: &Daemon, asset: Asset) -> Response<ResponseBody> {
    let (content_type, embedded): (&str, &'static [u8]) = match asset {
        Asset::StyleCss => ("text/css", include_bytes!("../data/style.css")),
        Asset::Favicon => ("image/x-icon", include_bytes!("../data/favicon.ico")),
    };
    // An installed asset wins, so a distribution can restyle the page; a missing one falls
    // back to our own copy, so the page works from a build tree too.
    let body = match tokio::fs::read(daemon.paths().asset(asset.file_name())).await {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => Bytes::from_static(embedded),
    };
    with_type(full(body), content_type)
}

async fn file_response(
    serve: &Serve,
    file: std::fs::File,
    limiter: Option<Arc<RateLimiter>>,
) -> Response<ResponseBody> {
    let (first, last) = serve.range.unwrap_or((0, serve.size.saturating_sub(1)));
    let length = if serve.size == 0 { 0 } else { last - first + 1 };

    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type(serve.basename.as_str()))
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(serve.basename.as_str()),
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", serve.hash))
        .header(header::CONTENT_LENGTH, length);
    if let Some((first, last)) = serve.range {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{}", serve.size),
        );
    }

    let body = if serve.head_only || length == 0 {
        empty()
    } else if length <= SMALL {
        // One read from the page cache costs less than a trip through the blocking pool.
        match read_small(file, first, length) {
            Ok(bytes) => full(bytes),
            Err(e) => {
                tracing::warn!(hash = %serve.hash, error = %e, "cannot read item");
                return error_response(&Refusal::new(500, format!("cannot read {}", serve.hash)));
            }
        }
    } else {
        let mut file = tokio::fs::File::from_std(file);
        // tokio reads through a buffer of its own; keep it to one chunk per transfer.
        file.set_max_buf_size(CHUNK);
        if first > 0 {
            use tokio::io::AsyncSeekExt;
            if let Err(e) = file.seek(io::SeekFrom::Start(first)).await {
                tracing::warn!(hash = %serve.hash, error = %e, "cannot seek item");
                return error_response(&Refusal::new(500, format!("cannot read {}", serve.hash)));
            }
        }
        FileBody {
            file: file.take(length),
            remaining: length,
            buf: BytesMut::new(),
            limiter,
            delay: None,
        }
        .boxed_unsync()
    };
    builder
        .body(body)
        .unwrap_or_else(|_| error_response(&Refusal::new(500, "cannot build response")))
}

fn read_small(file: std::fs::File, first: u64, length: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; usize::try_from(length).map_err(io::Error::other)?];
    file.read_exact_at(&mut buf, first)?;
    Ok(buf)
}

fn content_type(basename: &str) -> String {
    mime_guess::from_path(basename)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

/// `attachment; filename="…"` with `"` and `\` escaped (RFC 6266 quoted-string). The name has
/// no control characters: [`passim_core::Basename`] refuses them.
fn content_disposition(basename: &str) -> HeaderValue {
    let mut value = String::from("attachment; filename=\"");
    for c in basename.chars() {
        if c == '"' || c == '\\' {
            value.push('\\');
        }
        value.push(c);
    }
    value.push('"');
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or(HeaderValue::from_static("attachment"))
}

fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> ResponseBody {
    full(Bytes::new())
}

fn with_type(body: ResponseBody, content_type: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A file (or a range of one) read in [`CHUNK`]s as hyper asks for them, paced by the serving
/// cap if one is set.
struct FileBody {
    file: tokio::io::Take<tokio::fs::File>,
    remaining: u64,
    buf: BytesMut,
    limiter: Option<Arc<RateLimiter>>,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(delay) = this.delay.as_mut() {
            ready!(delay.as_mut().poll(cx));
            this.delay = None;
        }
        let want = CHUNK.min(usize::try_from(this.remaining).unwrap_or(CHUNK));
        if this.buf.capacity() < want {
            this.buf.reserve(want);
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut this.file),
            cx,
            &mut this.buf
        ))?;
        if n == 0 {
            // The file shrank after it was opened: end the response short rather than send
            // anything else; the client sees a truncated body and a hash mismatch.
            return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
        }
        this.remaining -= n as u64;
        if let Some(limiter) = &this.limiter {
            let wait = limiter.reserve(n as u64);
            if !wait.is_zero() {
                this.delay = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// Fails a write that makes no progress for `limit`, so a client that stops reading cannot hold
/// its connection open forever. Reads pass through: hyper's header-read timeout bounds them.
struct StallGuard<S> {
    inner: S,
    limit: Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled_since: None,
        }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled_since = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
