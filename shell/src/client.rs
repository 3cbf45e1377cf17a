//! The client side of passim's HTTP API: fetch by hash from a daemon, follow its redirect to a
//! peer, and verify what arrives.
//!
//! A peer is not trusted: the certificate is not checked (every passimd's is self-signed), the
//! SHA-256 of the body is. Bytes go to a temporary file beside the destination while they are
//! hashed, and only a body whose hash matches is renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use passim_core::Sha256;
use rustls::pki_types::ServerName;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How many redirects a download follows: the daemon sends one, to a peer.
const MAX_REDIRECTS: usize = 5;
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may go silent mid-download.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A refusal by the server, with what it said.
#[derive(Debug)]
pub struct HttpError {
    /// The URL that answered.
    pub url: String,
    /// Its status.
    pub status: hyper::StatusCode,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let authority = self
            .url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.authority().map(ToString::to_string))
            .unwrap_or_else(|| self.url.clone());
        write!(
            f,
            "{}: {}",
            authority,
            self.status.canonical_reason().unwrap_or("error")
        )
    }
}

impl std::error::Error for HttpError {}

/// What [`download`] saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub size: u64,
    /// The server's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The URL the bytes came from, after redirects.
    pub url: String,
}

/// Sends one request and returns the response, body unread. `method` is `GET` or `HEAD`;
/// `headers` are added as given.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>> {
    request_from(None, method, url, headers).await
}

/// [`request`] from a chosen local address (tests use it to appear as a LAN peer).
pub async fn request_from(
    local: Option<std::net::IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>> {
    let (uri, host, port) = parse_url(url)?;
    let connect = async {
        let tcp = match local {
            None => TcpStream::connect((host.as_str(), port)).await,
            Some(local) => connect_from(local, &host, port).await,
        }
        .with_context(|| format!("connecting to {host}:{port}"))?;
        tcp.set_nodelay(true)?;
        Ok::<_, anyhow::Error>(tcp)
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("connecting to {host}:{port} timed out"))??;
    send(tcp, &uri, &host, port, method, headers).await
}

/// Sends one request over `stream`, a connection already open to `url`'s host: TLS, then
/// HTTP/1.1. The simulation uses it over its own TCP.
pub async fn request_over<S>(
    stream: S,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (uri, host, port) = parse_url(url)?;
    send(stream, &uri, &host, port, method, headers).await
}

/// The URL, its host (brackets stripped) and its port.
fn parse_url(url: &str) -> Result<(Uri, String, u16)> {
    let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("https"),
        "only https:// URLs are supported: {url}"
    );
    let host = uri.host().ok_or_else(|| anyhow!("no host in {url}"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    Ok((uri, host, port))
}

async fn send<S>(
    stream: S,
    uri: &Uri,
    host: &str,
    port: u16,
    method: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| anyhow!("invalid host name {host}"))?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TlsConnector::from(client_config()?).connect(name, stream),
    )
    .await
    .map_err(|_| anyhow!("TLS with {host}:{port} timed out"))?
    .with_context(|| format!("TLS with {host}:{port}"))?;

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        // The connection ends with the response; errors surface through the body.
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.to_owned(), ToString::to_string);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("passim/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let response = tokio::time::timeout(READ_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| anyhow!("{uri} did not answer in time"))??;
    Ok(response)
}

/// Downloads `url`, following redirects, into `dest`, verifying that the body hashes to
/// `expected`. Nothing is left at `dest` unless the whole body arrived and matched.
///
/// `progress` is called with (bytes so far, total if known) after each chunk.
pub async fn download(
    url: &str,
    expected: &Sha256,
    dest: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Downloaded> {
    let mut url = url.to_owned();
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        let r = request("GET", &url, &[]).await?;
        if r.status().is_redirection() {
            let location = r
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| anyhow!("{url} redirected without a Location"))?;
            tracing::debug!(from = %url, to = location, "following redirect");
            url = location.to_owned();
            continue;
        }
        response = Some(r);
        break;
    }
    let response = response.ok_or_else(|| anyhow!("too many redirects from {url}"))?;
    if !response.status().is_success() {
        return Err(HttpError {
            url,
            status: response.status(),
        }
        .into());
    }
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let total = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());

    let tmp = TempFile::create(dest)?;
    let mut file = std::io::BufWriter::with_capacity(256 * 1024, tmp.file()?);
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut body = response.into_body();
    loop {
        let frame = tokio::time::timeout(READ_TIMEOUT, body.frame())
            .await
            .map_err(|_| anyhow!("{url} stopped sending"))?;
        let Some(frame) = frame else { break };
        let frame = frame.with_context(|| format!("reading from {url}"))?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            file.write_all(&data)
                .with_context(|| format!("writing {}", tmp.path.display()))?;
            size += data.len() as u64;
            progress(size, total);
        }
    }
    let got = Sha256::from_bytes(hasher.finalize().into());
    if got != *expected {
        bail!("hash mismatch from {url}: expected {expected}, got {got}; nothing was saved");
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    tmp.persist(dest)?;
    Ok(Downloaded {
        size,
        content_type,
        url,
    })
}

async fn connect_from(
    local: std::net::IpAddr,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    let remote = tokio::net::lookup_host((host, port))
        .await?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| std::io::Error::other(format!("no address of {host} for {local}")))?;
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(local, 0))?;
    socket.connect(remote).await
}

fn client_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let c = crate::tls::insecure_client_config()?;
    Ok(CONFIG.get_or_init(|| c).clone())
}

/// A file beside the destination that is removed unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(dest: &Path) -> Result<Self> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(".{name}.{}.part", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    fn file(&self) -> Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))
    }

    fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest).with_context(|| format!("writing {}", dest.display()))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
