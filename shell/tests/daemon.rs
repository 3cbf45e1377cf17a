//! Black-box tests of `passimd`: the built binary on a free port with relocated paths, spoken to
//! over real TLS, with items on a real filesystem with xattrs.
//!
//! passimd has no discovery in these runs, so nothing is multicast. The tests of what LAN peers
//! see run the daemon inside private namespaces (`unshare --net --mount`), where a
//! non-loopback address on `lo` lets the client appear as a peer.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use passim_shell::client;

use common::{
    HttpPassimd, free_port, get, get_from, in_namespaces, poll_until, put_item, sha256_hex,
};

/// Starts passimd under `root` with `extra` lines in `[daemon]` (on every address, so that the
/// tests inside a network namespace reach it as a peer) and waits until it answers.
async fn start(root: &Path, extra: &str) -> HttpPassimd {
    let port = free_port();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passim.conf"),
        format!("[daemon]\nPort={port}\n{extra}\n"),
    )
    .unwrap();
    HttpPassimd::start(root, port, &["-v"], Duration::from_secs(20)).await
}

#[tokio::test]
async fn every_loopback_case_of_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let content = b"hello world\n";
    let hash = put_item(
        &root.join("var/lib/passim/data"),
        "HELLO.md",
        content,
        86400,
        100,
        0,
    );
    let d = start(root, "").await;

    // 200 with the stored basename, a MIME type from it, and passim in Server.
    let r = get(&d.url(&format!("/ignored.bin?sha256={hash}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, content);
    assert_eq!(
        r.expect_header("content-disposition"),
        "attachment; filename=\"HELLO.md\""
    );
    assert_eq!(r.expect_header("content-type"), "text/markdown");
    assert_eq!(r.expect_header("content-length"), "12");
    assert!(r.expect_header("server").contains("passim"));

    // Upper-case hex names the same item.
    let r = get(&d.url(&format!("/HELLO.md?sha256={}", hash.to_uppercase()))).await;
    assert_eq!(r.status, 200);

    // The refusals, with the C version's page shape and messages.
    let r = get(&d.url("/HELLO.md")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .starts_with("<html><head><title>400 Bad Request</title></head><body>")
    );
    let r = get(&d.url(&format!("/x?sha256={hash}&sha256={hash}"))).await;
    assert_eq!(
        (r.status, r.text().contains("duplicate sha256= argument")),
        (400, true)
    );
    let r = get(&d.url("/x?localhost=true")).await;
    assert_eq!(
        (r.status, r.text().contains("sha256= argument required")),
        (400, true)
    );
    let r = get(&d.url("/x?sha256=nothex&localhost=perhaps")).await;
    assert_eq!(r.status, 400, "localhost= is checked before the hash");
    let r = get(&d.url("/x?sha256=abcd")).await;
    assert_eq!(
        r.text(),
        "<html><head><title>406 Not Acceptable</title></head><body>sha256 hash is malformed</body></html>"
    );
    let r = get_from(None, "POST", &d.url(&format!("/x?sha256={hash}")), &[]).await;
    assert_eq!(r.status, 403);

    // Nobody on the LAN has it (there is no discovery here): 404 naming 60 hex digits.
    let other = sha256_hex(b"not here");
    let r = get(&d.url(&format!("/x?sha256={other}"))).await;
    assert_eq!(r.status, 404);
    assert!(
        r.text()
            .contains(&format!("failed to find {}</body>", &other[..60])),
        "{}",
        r.text()
    );
    // localhost=false skips our own copy and looks on the LAN.
    let r = get(&d.url(&format!("/x?sha256={hash}&localhost=false"))).await;
    assert_eq!(r.status, 404);

    // The index and its assets.
    let r = get(&d.url("/")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains(&hash) && r.text().contains("HELLO.md"));
    assert_eq!(get(&d.url("/style.css")).await.status, 200);
    let icon = get(&d.url("/favicon.ico")).await;
    assert_eq!((icon.status, &icon.body[..4]), (200, &[0u8, 0, 1, 0][..]));

    // Beyond the C version: Range and HEAD.
    let url = d.url(&format!("/x?sha256={hash}"));
    let r = get_from(None, "GET", &url, &[("range", "bytes=6-10")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &b"world"[..]));
    assert_eq!(r.expect_header("content-range"), "bytes 6-10/12");
    let r = get_from(None, "GET", &url, &[("range", "bytes=12-")]).await;
    assert_eq!(
        (r.status, r.expect_header("content-range")),
        (416, "bytes */12")
    );
    let r = get_from(None, "HEAD", &url, &[]).await;
    assert_eq!(
        (r.status, r.expect_header("content-length"), r.body.len()),
        (200, "12", 0)
    );

    assert!(d.stop().success(), "SIGTERM ends passimd cleanly");
}

#[tokio::test]
async fn share_limit_deletes_after_the_last_share_and_counts_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("var/lib/passim/data");
    let hash = put_item(&data, "limited.bin", b"0123456789", 86400, 3, 0);
    let url = |d: &HttpPassimd| d.url(&format!("/limited.bin?sha256={hash}"));

    let d = start(root, "").await;
    assert_eq!(get(&url(&d)).await.status, 200);
    assert!(d.stop().success());

    // The count is kept across the restart: two more shares reach the limit of 3.
    let d = start(root, "").await;
    assert!(
        get(&d.url("/")).await.text().contains("1/3"),
        "share-count persisted"
    );
    assert_eq!(get(&url(&d)).await.status, 200);
    let last = get(&url(&d)).await;
    assert_eq!(
        (last.status, last.body.as_slice()),
        (200, &b"0123456789"[..]),
        "the share that reaches the limit is served"
    );
    poll_until("the file to be deleted", async || {
        !data.join(format!("{hash}-limited.bin")).exists()
    })
    .await;
    assert_eq!(
        get(&url(&d)).await.status,
        404,
        "gone, and nobody else has it"
    );

    let audit = std::fs::read_to_string(root.join("var/log/passim/audit.log")).unwrap();
    assert_eq!(audit.matches(" SHARE ").count(), 3, "{audit}");
    assert_eq!(audit.matches(" DELTE ").count(), 1, "{audit}");
    for line in audit.lines() {
        // 2026-01-01T00:00:00.123456Z: microseconds and UTC.
        let time = line.split(' ').next().unwrap();
        assert_eq!(
            (time.len(), &time[19..20], time.ends_with('Z')),
            (27, ".", true),
            "{line}"
        );
    }
    assert!(d.stop().success());
}

#[tokio::test]
async fn download_saving_is_rebuilt_from_the_audit_log() {
    use passim_shell::daemon::{Options, start};
    use passim_shell::paths::Paths;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hash = put_item(
        &root.join("var/lib/passim/data"),
        "a.txt",
        b"twenty-six bytes of text!\n",
        86400,
        0,
        0,
    );
    let port = free_port();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passim.conf"),
        format!("[daemon]\nPort={port}\nListen=127.0.0.1\n"),
    )
    .unwrap();

    let running = start(Options::new(Paths::under(root))).await.unwrap();
    assert_eq!(running.daemon.download_saving(), 0);
    let r = get(&format!("https://127.0.0.1:{port}/a.txt?sha256={hash}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(running.daemon.download_saving(), 26);
    running.shutdown().await;

    let running = start(Options::new(Paths::under(root))).await.unwrap();
    assert_eq!(
        running.daemon.download_saving(),
        26,
        "restored from SHARE lines"
    );
    assert!(running.daemon.carbon_saving() > 0.0);
    running.shutdown().await;
}

#[tokio::test]
async fn expired_items_are_deleted_at_start_and_at_their_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("var/lib/passim/data");
    let old = put_item(&data, "old.xml", b"yesterday", 60, 5, 3600);
    let soon = put_item(&data, "soon.xml", b"today", 3, 5, 0);
    let d = start(root, "").await;

    assert!(
        !data.join(format!("{old}-old.xml")).exists(),
        "expired at load"
    );
    assert_eq!(get(&d.url(&format!("/x?sha256={old}"))).await.status, 404);
    assert_eq!(get(&d.url(&format!("/x?sha256={soon}"))).await.status, 200);
    poll_until("the item to expire", async || {
        !data.join(format!("{soon}-soon.xml")).exists()
    })
    .await;
    assert_eq!(get(&d.url(&format!("/x?sha256={soon}"))).await.status, 404);
    let audit = std::fs::read_to_string(root.join("var/log/passim/audit.log")).unwrap();
    assert_eq!(audit.matches(" DELTE ").count(), 2, "{audit}");
}

#[tokio::test]
async fn stray_files_in_the_data_dir_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("var/lib/passim/data");
    let good = put_item(&data, "good.txt", b"good", 86400, 5, 0);
    std::fs::write(data.join("README"), b"no dash").unwrap();
    std::fs::write(data.join(format!("{}-x", "z".repeat(64))), b"bad hash").unwrap();
    std::fs::create_dir(data.join(format!("{}-dir", sha256_hex(b"dir")))).unwrap();
    std::os::unix::fs::symlink(
        "/etc/passwd",
        data.join(format!("{}-passwd", sha256_hex(b"p"))),
    )
    .unwrap();
    let fifo = data.join(format!("{}-fifo", sha256_hex(b"fifo")));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);

    let d = start(root, "").await;
    assert_eq!(get(&d.url(&format!("/x?sha256={good}"))).await.status, 200);
    assert_eq!(
        get(&d.url(&format!("/x?sha256={}", sha256_hex(b"p"))))
            .await
            .status,
        404
    );
    let log = d.log();
    assert!(
        log.contains("README"),
        "the stray file is named in a warning: {log}"
    );
}

#[tokio::test]
async fn static_directories_are_shared_and_revalidated_when_edited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let srv = root.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::create_dir_all(root.join("etc/passim.d")).unwrap();
    std::fs::write(srv.join("firmware.cab"), b"version 1").unwrap();
    std::fs::write(root.join("secret.key"), b"do not share").unwrap();
    std::os::unix::fs::symlink(root.join("secret.key"), srv.join("link.key")).unwrap();
    std::fs::write(
        root.join("etc/passim.d/mirror.conf"),
        format!("[passim]\nPath={}\n", srv.display()),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/passim.d/missing.conf"),
        "[passim]\nPath=/nonexistent/passim-test\n",
    )
    .unwrap();

    let d = start(root, "").await;
    let v1 = sha256_hex(b"version 1");
    poll_until("the static file to be shared", async || {
        get(&d.url(&format!("/f?sha256={v1}"))).await.status == 200
    })
    .await;
    assert_eq!(
        get(&d.url(&format!("/f?sha256={}", sha256_hex(b"do not share"))))
            .await
            .status,
        404,
        "a symlink in a static directory is never followed"
    );
    assert_eq!(
        xattr::get(srv.join("firmware.cab"), "user.checksum.sha256")
            .unwrap()
            .unwrap(),
        v1.as_bytes(),
        "the hash is cached beside the file"
    );

    // Edited in place: the new content is served under its own hash, never under the old one.
    std::fs::write(srv.join("firmware.cab"), b"version 2, longer").unwrap();
    let v2 = sha256_hex(b"version 2, longer");
    poll_until("the edit to be noticed", async || {
        get(&d.url(&format!("/f?sha256={v2}"))).await.status == 200
    })
    .await;
    assert_eq!(get(&d.url(&format!("/f?sha256={v1}"))).await.status, 404);

    // A new config is picked up while running; removing it withdraws its files.
    let extra = root.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("new.txt"), b"new").unwrap();
    std::fs::write(
        root.join("etc/passim.d/extra.conf"),
        format!("[passim]\nPath={}\n", extra.display()),
    )
    .unwrap();
    let new = sha256_hex(b"new");
    poll_until("the new directory", async || {
        get(&d.url(&format!("/f?sha256={new}"))).await.status == 200
    })
    .await;
    std::fs::remove_file(root.join("etc/passim.d/extra.conf")).unwrap();
    poll_until("the directory to be withdrawn", async || {
        get(&d.url(&format!("/f?sha256={new}"))).await.status == 404
    })
    .await;
    assert!(
        extra.join("new.txt").exists(),
        "static files are never deleted"
    );
}

#[tokio::test]
async fn lan_peers_get_items_but_not_the_index_and_wait_out_the_cooldown() {
    if in_namespaces("lan_peers_get_items_but_not_the_index_and_wait_out_the_cooldown") {
        return;
    }
    let peer: IpAddr = "10.77.0.1".parse().unwrap();
    let ok = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    ok(&["addr", "add", "10.77.0.1/32", "dev", "lo"]);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("var/lib/passim/data");
    let a = put_item(&data, "a.txt", b"aaa", 86400, 2, 0);
    let b = put_item(&data, "b.txt", b"bbb", 86400, 5, 0);
    let c = put_item(&data, "c.txt", b"ccc", 86400, 5, 0);
    let d = start(root, "Cooldown=2").await;
    let url = |q: &str| format!("https://10.77.0.1:{}{q}", d.port);
    let from_peer = async |q: &str| get_from(Some(peer), "GET", &url(q), &[]).await;

    assert_eq!(
        from_peer("/").await.status,
        403,
        "the index is for this machine only"
    );
    assert_eq!(from_peer("/style.css").await.status, 403);
    assert_eq!(
        from_peer(&format!("/x?sha256={}", sha256_hex(b"?")))
            .await
            .status,
        403,
        "no lookups for peers"
    );
    assert_eq!(
        from_peer(&format!("/x?sha256={c}&localhost=false"))
            .await
            .status,
        403
    );

    let first = from_peer(&format!("/a.txt?sha256={a}")).await;
    assert_eq!((first.status, first.body.as_slice()), (200, &b"aaa"[..]));
    let again = from_peer(&format!("/a.txt?sha256={a}")).await;
    assert_eq!(
        again.status, 403,
        "the same peer must wait out the cooldown"
    );
    // Loopback is exempt, and counts toward the share-limit of 2: the item is then deleted.
    assert_eq!(get(&d.url(&format!("/a.txt?sha256={a}"))).await.status, 200);
    poll_until("the item to reach its limit", async || {
        !data.join(format!("{a}-a.txt")).exists()
    })
    .await;

    // After the cooldown, the peer may fetch again (another item, since `a` is gone).
    let b1 = from_peer(&format!("/b.txt?sha256={b}")).await;
    assert_eq!(b1.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(from_peer(&format!("/b.txt?sha256={b}")).await.status, 200);
    let audit = std::fs::read_to_string(root.join("var/log/passim/audit.log")).unwrap();
    assert!(audit.contains("ipaddr=10.77.0.1"), "{audit}");
}

/// A TLS connection to passimd that sends nothing of its own.
async fn raw_tls(
    port: u16,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let config = passim_shell::tls::insecure_client_config().unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

#[tokio::test]
async fn connections_are_bounded_and_huge_headers_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "MaxConnections=2").await;

    // Two connections hold both slots; a third is closed without a handshake.
    let a = raw_tls(d.port).await.expect("first connection");
    let b = raw_tls(d.port).await.expect("second connection");
    assert!(
        raw_tls(d.port).await.is_err(),
        "a third connection is refused"
    );
    drop((a, b));
    // Until the server has seen both closes, a new connection may still be turned away.
    poll_until("a slot to free up", async || {
        client::request("GET", &d.url("/"), &[])
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // A request head larger than the server takes is answered 431 and does not grow memory.
    let mut tls = raw_tls(d.port).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = tls.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_silent_client_is_disconnected() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "").await;
    // Handshake done, then nothing: the server must not keep the slot forever.
    let mut tls = raw_tls(d.port).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await;
    assert!(read.is_ok(), "still connected after 30 s of silence");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "cut too early: {:?}",
        started.elapsed()
    );
}
