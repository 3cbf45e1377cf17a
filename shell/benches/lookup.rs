//! How long a localhost request takes to be answered when the daemon must look the hash up on
//! the LAN: a `302` when a peer advertises the hash, a `404` when nobody does.
//!
//! Two release-built `passimd` with mDNS run in a private network namespace (loopback only, so
//! nothing leaves the machine): A shares a file from a static directory, B is asked for it over
//! one keep-alive TLS connection, as fwupd asks its local daemon. Each figure is the time from
//! sending the request to the end of the response. Needs root (for the namespace):
//!
//! ```text
//! cargo bench -p passim-shell --bench lookup            # 2000 redirects, 10 misses
//! LOOKUP_TIMEOUT_MS=200 cargo bench -p passim-shell --bench lookup
//! ```
//!
//! `-- --test` (as `cargo bench … -- --test` passes it) makes a short run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Digest as _;

fn main() {
    let short = std::env::args().any(|a| a == "--test");
    if std::env::var_os("PASSIM_BENCH_IN_NETNS").is_none() {
        if unsafe { libc::geteuid() } != 0 {
            println!("lookup: skipped, needs root to run inside a private network namespace");
            return;
        }
        let status = Command::new("unshare")
            .args(["--net", "--"])
            .arg(std::env::current_exe().expect("own path"))
            .args(std::env::args().skip(1))
            .env("PASSIM_BENCH_IN_NETNS", "1")
            .status()
            .expect("running unshare");
        std::process::exit(status.code().unwrap_or(1));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(short));
}

async fn bench(short: bool) {
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "set", "lo", "multicast", "on"],
    ] {
        assert!(Command::new("ip").args(args).status().unwrap().success());
    }
    let timeout_ms: u32 = std::env::var("LOOKUP_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let content = b"a file that one machine of the LAN already downloaded\n";
    let hash = hex(&sha2::Sha256::digest(content));
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("firmware.cab"), content).unwrap();

    let (port_a, port_b) = (27611, 27612);
    let _a = Daemon::start(
        &dir.path().join("a"),
        &format!("Port={port_a}\nListen=127.0.0.1\n"),
        Some(&shared),
    );
    let _b = Daemon::start(
        &dir.path().join("b"),
        &format!("Port={port_b}\nListen=127.0.0.1\nLookupTimeout={timeout_ms}\n"),
        None,
    );

    let hit = format!("/firmware.cab?sha256={hash}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        if let Ok(mut conn) = connect(port_b).await {
            if get(&mut conn, &hit).await == 302 {
                break conn;
            }
        }
        assert!(Instant::now() < deadline, "B never redirected to A");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let (warm, n) = if short { (5, 50) } else { (100, 2000) };
    for _ in 0..warm {
        assert_eq!(get(&mut conn, &hit).await, 302);
    }
    // The same connection and request size answered without a lookup, for comparison: what
    // the redirect adds is the difference.
    let malformed = format!("/firmware.cab?sha256={}", &hash[..63]);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(get(&mut conn, &malformed).await, 406);
        times.push(t.elapsed());
    }
    report(
        &format!("406 without a lookup, baseline ({n} requests)"),
        &mut times,
    );

    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(get(&mut conn, &hit).await, 302);
        times.push(t.elapsed());
    }
    report(
        &format!("302 to the peer holding the hash ({n} requests, one keep-alive TLS connection)"),
        &mut times,
    );

    let misses = if short { 2 } else { 10 };
    let mut times = Vec::with_capacity(misses);
    for i in 0..misses {
        let nobody = hex(&sha2::Sha256::digest(format!("nobody holds this {i}")));
        let t = Instant::now();
        assert_eq!(get(&mut conn, &format!("/x?sha256={nobody}")).await, 404);
        times.push(t.elapsed());
    }
    report(
        &format!("404 when nobody holds it ({misses} requests, LookupTimeout={timeout_ms} ms)"),
        &mut times,
    );
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1000.0
    };
    println!(
        "lookup: {what}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// A `passimd --no-dbus` under `root`, killed on drop.
struct Daemon(Child);

impl Daemon {
    fn start(root: &std::path::Path, config: &str, share: Option<&std::path::Path>) -> Self {
        std::fs::create_dir_all(root.join("etc/passim.d")).unwrap();
        std::fs::write(root.join("etc/passim.conf"), format!("[daemon]\n{config}")).unwrap();
        if let Some(dir) = share {
            let text = format!("[passim]\nPath={}\n", dir.display());
            std::fs::write(root.join("etc/passim.d/bench.conf"), text).unwrap();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_passimd"))
            .arg("--root")
            .arg(root)
            .arg("--no-dbus")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("starting passimd");
        Self(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(port: u16) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let config = passim_shell::tls::insecure_client_config()?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET on `conn`; the status, after reading the (small) body so the connection is reused.
async fn get(conn: &mut SendRequest<Empty<Bytes>>, path: &str) -> u16 {
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .unwrap();
    let Ok(response) = conn.send_request(req).await else {
        return 0;
    };
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
