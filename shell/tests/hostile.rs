//! Hostile clients and hostile files against the built `passimd`: the cases security reviewers
//! raised against the C version, and more. Each test asserts the outcome an operator relies on:
//! a clean refusal with the right status, the daemon still answering afterwards, no descriptor
//! or memory leaked, and nothing served that was not shared.
//!
//! Every daemon here serves HTTPS only (`--no-dbus --no-discovery`) on 127.0.0.1, so nothing
//! leaves the machine. Tests that mount filesystems or bind files run again inside private
//! network and mount namespaces (`unshare --net --mount`, as root), where their mounts vanish
//! with the namespace.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    FixedPeers, HttpPassimd, Mount, TestRoot, get, get_with, in_namespaces, poll_until, put_item,
    sha256_hex,
};
use http_body_util::BodyExt as _;
use passim_shell::client;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a daemon may take to answer after it is spawned (debug build, busy CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a daemon may hold in memory at its peak in these tests (VmHWM).
const MEMORY_BOUND_KIB: u64 = 64 * 1024;

/// Content of the item most tests fetch.
const WANTED: &[u8] = b"the bytes a good client came for\n";

// ----- The SUSE review cases -----

#[tokio::test]
async fn requests_without_a_query_or_with_a_malformed_one_are_refused() {
    let root = TestRoot::new("");
    let hash = put_item(&root.data_dir(), "wanted.bin", WANTED, 86400, 0, 0);
    let mut d = start_passimd(&root).await;

    // The remote crash of the C version: an item path without a query string.
    let log_before = d.log().len();
    let r = get(&d.url("/wanted.bin")).await;
    assert_eq!(r.status, 400, "no query string");
    assert!(r.text().contains("query string required"), "{}", r.text());
    assert_eq!(get(&d.url("/wanted.bin?")).await.status, 400, "empty query");
    d.assert_alive().await;

    let long_value = "a".repeat(5000);
    let many_pairs = "a=b&".repeat(1000);
    let huge_query = format!("sha256={hash}&pad={}", "p".repeat(64 * 1024));
    let pad = "a".repeat(64 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "query longer than the parser reads",
            request_line(&format!("/x?sha256={hash}&pad={long_value}")),
            400,
        ),
        (
            "a thousand pairs and no sha256",
            request_line(&format!("/x?{many_pairs}")),
            400,
        ),
        (
            "a 64 KiB query in the request line",
            request_line(&format!("/x?{huge_query}")),
            431,
        ),
        (
            "a 64 KiB header",
            format!("GET /x?sha256={hash} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n")
                .into_bytes(),
            431,
        ),
        (
            "a thousand small headers",
            format!(
                "GET /x?sha256={hash} HTTP/1.1\r\nHost: x\r\n{}\r\n",
                "X-A: b\r\n".repeat(1000)
            )
            .into_bytes(),
            431,
        ),
        (
            "NUL in the path",
            raw_request(b"/wan\0ted.bin?sha256=", &hash),
            400,
        ),
        (
            "NUL in the query",
            raw_request(b"/wanted.bin?x=\0&sha256=", &hash),
            400,
        ),
        (
            "invalid UTF-8 in the path",
            raw_request(b"/\xff\xfe\xc0\xaf.bin?sha256=", &hash),
            400,
        ),
        (
            "invalid UTF-8 in the query",
            raw_request(b"/wanted.bin?x=\xff\xfe&sha256=", &hash),
            400,
        ),
        (
            "a control character in the path",
            raw_request(b"/a\x01b?sha256=", &hash),
            400,
        ),
        (
            "percent-encoded NUL and invalid UTF-8 as the hash",
            request_line("/x?sha256=%00%ff%fe"),
            406,
        ),
        (
            "a hash of 63 hex digits and a NUL",
            request_line(&format!("/x?sha256={}%00", &hash[..63])),
            406,
        ),
        (
            "a hash followed by garbage",
            request_line(&format!("/x?sha256={hash}%00garbage")),
            406,
        ),
        (
            "localhost= with a NUL",
            request_line(&format!("/x?sha256={hash}&localhost=true%00")),
            400,
        ),
        (
            "a method that is not GET",
            format!("DELETE /x?sha256={hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            403,
        ),
        (
            "a method 200 characters long",
            format!(
                "{} /x?sha256={hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "M".repeat(200)
            )
            .into_bytes(),
            403,
        ),
        (
            "a body on a GET",
            format!(
                "GET /x?sha256={hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
                 Connection: close\r\n\r\nhello"
            )
            .into_bytes(),
            200,
        ),
        (
            "a negative Content-Length",
            format!("GET /x?sha256={hash} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
                .into_bytes(),
            400,
        ),
        (
            "an unknown HTTP version",
            format!("GET /x?sha256={hash} HTTP/9.9\r\nHost: x\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "a Range beyond u64",
            format!(
                "GET /x?sha256={hash} HTTP/1.1\r\nHost: x\r\n\
                 Range: bytes=99999999999999999999999-\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            200,
        ),
    ];

    for (what, request, expected) in cases {
        let ex = exchange(d.port, &request).await;
        assert!(ex.closed, "{what}: the connection was left open");
        let responses = parse_responses(&ex.raw);
        let Some(first) = responses.first() else {
            panic!(
                "{what}: no HTTP response, got {:?}",
                String::from_utf8_lossy(&ex.raw[..ex.raw.len().min(200)])
            );
        };
        assert_eq!(first.status, expected, "{what}: {}", first.head);
        if expected == 200 {
            assert_eq!(first.body, WANTED, "{what}");
        }
        d.assert_alive().await;
    }

    // Each refusal above was logged at most at debug level: a hostile client cannot fill the
    // journal with warnings.
    let log = d.log();
    assert!(!log[log_before..].contains("WARN"), "{log}");
    assert_memory_bounded(&d);
}

#[tokio::test]
async fn dot_dot_and_encoded_slashes_never_reach_the_filesystem() {
    let root = TestRoot::new("");
    let hash = put_item(&root.data_dir(), "held.txt", WANTED, 86400, 0, 0);
    let outside = b"a file beside the data directory, never shared\n";
    std::fs::write(root.path().join("outside.txt"), outside).unwrap();
    std::fs::write(root.data_dir().join("loose.txt"), outside).unwrap();
    let outside_hash = sha256_hex(outside);
    let passwd_hash = sha256_hex(&std::fs::read("/etc/passwd").unwrap());
    let mut d = start_passimd(&root).await;

    // Serving is by hash only: whatever the path says, an unknown hash is 404 (there is no
    // discovery here) and a known hash is the stored item under its stored name.
    let not_held = [
        format!("/../../../../outside.txt?sha256={outside_hash}"),
        format!("/..%2f..%2f..%2foutside.txt?sha256={outside_hash}"),
        format!("/%2e%2e%2f%2e%2e%2foutside.txt?sha256={outside_hash}"),
        format!("/%2E%2E%2F%2E%2E%2Floose.txt?sha256={outside_hash}"),
        format!("/..%5c..%5coutside.txt?sha256={outside_hash}"),
        format!("//etc/passwd?sha256={passwd_hash}"),
        format!("/..%2F..%2F..%2Fetc%2Fpasswd?sha256={passwd_hash}"),
        format!("/x?sha256={passwd_hash}&localhost=false"),
    ];
    for target in &not_held {
        let ex = exchange(d.port, &request_line(target)).await;
        let r = only_response(&ex, target);
        assert_eq!(r.status, 404, "{target}");
        assert!(!contains(&r.body, outside) && !contains(&r.body, b"root:"));
    }

    let held = [
        format!("/..%2f..%2f..%2fetc%2fpasswd?sha256={hash}"),
        format!("/%2e%2e%2f%2e%2e%2fsecret.key?sha256={hash}"),
        format!("/../../outside.txt?sha256={hash}"),
        format!("/a%2Fb%00c?sha256={hash}"),
        format!("https://127.0.0.1/../../etc/passwd?sha256={hash}"),
    ];
    for target in &held {
        let ex = exchange(d.port, &request_line(target)).await;
        let r = only_response(&ex, target);
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.body, WANTED, "{target}");
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment; filename=\"held.txt\""),
            "{target}"
        );
    }

    // Path-like hashes are malformed hashes, and paths without a query are refused.
    let malformed = [
        ("/x?sha256=../../etc/passwd", 406),
        ("/x?sha256=..%2f..%2fetc%2fpasswd", 406),
        ("/..?sha256=%2e%2e", 406),
        ("/../../../../etc/passwd", 400),
        ("/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
        ("/style.css/../../etc/passwd", 400),
        ("/favicon.ico/..%2f..%2fsecret.key", 400),
    ];
    for (target, status) in malformed {
        let ex = exchange(d.port, &request_line(target)).await;
        assert_eq!(only_response(&ex, target).status, status, "{target}");
    }
    let with_hash = format!("/x?sha256={hash}/../../outside.txt");
    let ex = exchange(d.port, &request_line(&with_hash)).await;
    assert_eq!(only_response(&ex, &with_hash).status, 406);

    // The only item shared is the one published; the stray file is not one.
    let index = get(&d.url("/")).await.text();
    assert!(index.contains(&hash), "{index}");
    assert!(!index.contains(&outside_hash) && !index.contains("loose.txt"));
    d.assert_alive().await;
}

#[tokio::test]
async fn symlinks_to_the_key_and_to_shadow_are_never_served() {
    let root = TestRoot::new("");
    let srv = root.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::create_dir_all(root.path().join("etc/passim.d")).unwrap();
    std::fs::write(
        root.path().join("etc/passim.d/srv.conf"),
        format!("[passim]\nPath={}\n", srv.display()),
    )
    .unwrap();
    // The first start creates the daemon's own key.
    drop(start_passimd(&root).await);
    let key_path = root.path().join("var/lib/passim/secret.key");
    let key = std::fs::read(&key_path).unwrap();
    let shadow = std::fs::read("/etc/shadow").ok();
    let key_hash = sha256_hex(&key);

    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, srv.join(name));
    link(&key_path, "secret.key").unwrap();
    link(Path::new("../var/lib/passim/secret.key"), "relative.key").unwrap();
    link(&root.path().join("var/lib/passim/cert.pem"), "cert.pem").unwrap();
    link(Path::new("/etc/shadow"), "shadow").unwrap();
    link(Path::new("/etc"), "etc").unwrap();
    link(Path::new("/nonexistent/passim"), "dangling").unwrap();
    // In the data directory too, named as items.
    let data = root.data_dir();
    std::os::unix::fs::symlink(&key_path, data.join(format!("{key_hash}-secret.key"))).unwrap();
    if let Some(shadow) = &shadow {
        std::os::unix::fs::symlink(
            "/etc/shadow",
            data.join(format!("{}-shadow", sha256_hex(shadow))),
        )
        .unwrap();
    }
    std::fs::write(srv.join("swap.bin"), WANTED).unwrap();
    let swap_hash = sha256_hex(WANTED);

    let mut d = start_passimd(&root).await;
    let url = |h: &str| d.url(&format!("/x?sha256={h}"));
    poll_until("the static file to be shared", async || {
        get(&url(&swap_hash)).await.status == 200
    })
    .await;

    let mut secrets = vec![("the TLS key", key.clone())];
    secrets.extend(shadow.clone().map(|s| ("/etc/shadow", s)));
    for (what, content) in &secrets {
        let r = get(&url(&sha256_hex(content))).await;
        assert_eq!(r.status, 404, "{what} is served through a symlink");
        assert!(!contains(&r.body, content));
    }
    let index = get(&d.url("/")).await.text();
    for name in [
        "secret.key",
        "relative.key",
        "cert.pem",
        "shadow",
        "dangling",
    ] {
        assert!(!index.contains(name), "{name} is listed");
    }
    assert!(!index.contains(&key_hash));

    // A shared file swapped for a symlink after it was scanned: the request for its old hash
    // must not follow the link, whether or not the rescan has noticed yet.
    let swap = srv.join("swap.new");
    std::os::unix::fs::symlink(&key_path, &swap).unwrap();
    std::fs::rename(&swap, srv.join("swap.bin")).unwrap();
    let r = get(&url(&swap_hash)).await;
    assert!(
        matches!(r.status, 404 | 500),
        "the swapped symlink gave {}",
        r.status
    );
    assert!(!contains(&r.body, b"PRIVATE KEY"));
    poll_until("the swapped file to be withdrawn", async || {
        get(&url(&swap_hash)).await.status == 404
    })
    .await;
    d.assert_alive().await;
}

#[tokio::test]
async fn fifos_and_unreadable_files_block_neither_startup_nor_serving() {
    if in_namespaces("fifos_and_unreadable_files_block_neither_startup_nor_serving") {
        return;
    }
    let root = TestRoot::new("");
    let srv = root.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::create_dir_all(root.path().join("etc/passim.d")).unwrap();
    std::fs::write(
        root.path().join("etc/passim.d/srv.conf"),
        format!("[passim]\nPath={}\n", srv.display()),
    )
    .unwrap();
    let data = root.data_dir();
    let held = put_item(&data, "held.txt", WANTED, 86400, 0, 0);
    let shared = b"a static file beside the traps\n";
    std::fs::write(srv.join("shared.txt"), shared).unwrap();

    // FIFOs without a writer: opening one for reading would block forever.
    mkfifo(&srv.join("pipe"));
    mkfifo(&data.join(format!("{}-pipe", sha256_hex(b"pipe"))));

    // Root reads a mode-000 file anyway, so unreadable files are made with bind mounts of proc
    // files: a write-only sysctl refuses even root's open (EACCES), and another process's
    // memory opens but fails to read at offset 0 (EIO).
    let denied = srv.join("denied.bin");
    let unreadable = srv.join("unreadable.bin");
    let denied_item = data.join(format!("{}-denied.bin", sha256_hex(b"denied")));
    let _mounts = [
        Mount::bind(Path::new("/proc/sys/vm/drop_caches"), &denied),
        Mount::bind(
            Path::new(&format!("/proc/{}/mem", std::process::id())),
            &unreadable,
        ),
        Mount::bind(Path::new("/proc/sys/vm/drop_caches"), &denied_item),
    ];
    assert!(std::fs::File::open(&denied).is_err(), "the EACCES trap");
    let mut trap = std::fs::File::open(&unreadable).unwrap();
    assert!(
        std::io::Read::read(&mut trap, &mut [0; 16]).is_err(),
        "the EIO trap"
    );

    let started = Instant::now();
    let mut d = start_passimd(&root).await;
    let url = |h: &str| d.url(&format!("/x?sha256={h}"));
    assert_eq!(get(&url(&held)).await.body, WANTED);
    poll_until("the static file to be shared", async || {
        get(&url(&sha256_hex(shared))).await.status == 200
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "startup took {:?}",
        started.elapsed()
    );

    let log = d.log();
    for path in [&denied, &unreadable] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains(path.to_str().unwrap())
                && l.contains("cannot read it")),
            "no warning about {}:\n{log}",
            path.display()
        );
    }
    assert!(log.contains("skipping file in data directory"), "{log}");
    let index = get(&d.url("/")).await.text();
    for name in ["pipe", "denied.bin", "unreadable.bin"] {
        assert!(!index.contains(name), "{name} is listed");
    }

    // A published item replaced by a FIFO while the daemon runs: the request is refused at
    // once instead of hanging on the open.
    let item = data.join(format!("{held}-held.txt"));
    std::fs::remove_file(&item).unwrap();
    mkfifo(&item);
    let r = tokio::time::timeout(Duration::from_secs(10), get(&url(&held)))
        .await
        .expect("a request for an item swapped for a FIFO hangs");
    assert!(matches!(r.status, 404 | 500), "{}", r.status);
    // And a FIFO appearing in a static directory later does not stall the rescan.
    mkfifo(&srv.join("late-pipe"));
    std::fs::write(srv.join("late.txt"), b"late").unwrap();
    poll_until("the rescan past a new FIFO", async || {
        get(&url(&sha256_hex(b"late"))).await.status == 200
    })
    .await;
    d.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_sparse_static_file_is_hashed_and_served_in_bounded_memory() {
    if in_namespaces("a_huge_sparse_static_file_is_hashed_and_served_in_bounded_memory") {
        return;
    }
    // 5 GiB of zeros ending in a marker, on a tmpfs: holes are read as zero pages, so neither
    // the disk nor the page cache pays for it.
    const HUGE: u64 = 5 << 30;
    const MARKER: &[u8] = b"END-OF-HUGE-FILE\n";
    // `openssl dgst -sha256` and `sha256sum` of that file.
    const HUGE_HASH: &str = "99d58dd58c164d79ee66846b8e247b59977d9f6364a58b3c31fbf948a1d8345a";

    let root = TestRoot::new("");
    let srv = root.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let _tmpfs = Mount::tmpfs(&srv, "size=16m");
    std::fs::create_dir_all(root.path().join("etc/passim.d")).unwrap();
    std::fs::write(
        root.path().join("etc/passim.d/srv.conf"),
        format!("[passim]\nPath={}\n", srv.display()),
    )
    .unwrap();
    let huge = srv.join("huge.img");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(HUGE).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, MARKER, HUGE - MARKER.len() as u64).unwrap();
    drop(file);
    let held = put_item(&root.data_dir(), "held.txt", WANTED, 86400, 0, 0);

    // First start: the file is hashed in the background. The daemon answers and serves what it
    // holds meanwhile, and its memory does not grow with the file.
    let started = Instant::now();
    let d = start_passimd(&root).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let url = |d: &HttpPassimd, h: &str| d.url(&format!("/x?sha256={h}"));
    let r = tokio::time::timeout(Duration::from_secs(5), get(&url(&d, &held)))
        .await
        .expect("serving is stalled by the hashing");
    assert_eq!(r.body, WANTED);
    let read_before = d.bytes_read();
    let window = Instant::now();
    let mut finished = false;
    while window.elapsed() < Duration::from_secs(4) && !finished {
        assert!(
            d.vm_hwm_kib() < MEMORY_BOUND_KIB,
            "VmHWM {} KiB while hashing",
            d.vm_hwm_kib()
        );
        finished = get(&url(&d, HUGE_HASH)).await.status == 200;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let read = d.bytes_read() - read_before;
    assert!(
        finished || read > 16 << 20,
        "not hashing: {read} bytes read in 4 s"
    );
    eprintln!(
        "hashing: {} MiB read in {:?}, finished: {finished}, VmHWM {} KiB",
        read >> 20,
        window.elapsed(),
        d.vm_hwm_kib()
    );
    assert_memory_bounded(&d);
    drop(d);

    // A debug build hashes 5 GiB far slower than a test may wait, so the rest starts from the
    // hash a finished scan caches beside the file: the checksum, and our stamp of the size and
    // mtime it is valid for (the format documented in static_dirs.rs).
    let meta = std::fs::metadata(&huge).unwrap();
    let stamp = {
        use std::os::unix::fs::MetadataExt as _;
        format!("{}:{}.{:09}", meta.len(), meta.mtime(), meta.mtime_nsec())
    };
    xattr::set(&huge, "user.checksum.sha256", HUGE_HASH.as_bytes()).unwrap();
    xattr::set(&huge, "user.passim.checksum_stamp", stamp.as_bytes()).unwrap();

    let mut d = start_passimd(&root).await;
    let big = url(&d, HUGE_HASH);
    // HEAD: a GET would download all 5 GiB.
    poll_until("the cached hash to be trusted", async || {
        get_with("HEAD", &big, &[]).await.status == 200
    })
    .await;
    let r = get_with("HEAD", &big, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(HUGE.to_string().as_str()));

    // Ranges past 4 GiB: offsets are 64-bit all the way to the file.
    let last = format!("bytes={}-", HUGE - MARKER.len() as u64);
    let r = get_with("GET", &big, &[("range", &last)]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, MARKER));
    let content_range = format!("bytes {}-{}/{HUGE}", HUGE - MARKER.len() as u64, HUGE - 1);
    assert_eq!(r.header("content-range"), Some(content_range.as_str()));
    let r = get_with("GET", &big, &[("range", "bytes=4294967290-4294967305")]).await;
    assert_eq!((r.status, r.body), (206, vec![0; 16]));
    let r = get_with("GET", &big, &[("range", "bytes=-17")]).await;
    assert_eq!(r.body, MARKER);
    let r = get_with("GET", &big, &[("range", &format!("bytes={HUGE}-"))]).await;
    assert_eq!(r.status, 416);

    // A whole download streams: read 64 MiB of it, then hang up.
    let response = client::request("GET", &big, &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = 0usize;
    while got < 64 << 20 {
        let frame = body.frame().await.expect("more body").unwrap();
        if let Some(data) = frame.data_ref() {
            assert!(data.iter().all(|&b| b == 0));
            got += data.len();
        }
    }
    drop(body);
    assert_memory_bounded(&d);
    d.assert_alive().await;
}

#[tokio::test]
async fn an_empty_item_is_served_with_zero_length_and_ranges_are_unsatisfiable() {
    let root = TestRoot::new("");
    let empty = put_item(&root.data_dir(), "empty.bin", b"", 86400, 0, 0);
    assert_eq!(empty, sha256_hex(b""));
    let mut d = start_passimd(&root).await;
    let url = d.url(&format!("/empty.bin?sha256={empty}"));

    let r = get(&url).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = get_with("HEAD", &url, &[]).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=1-2"] {
        let r = get_with("GET", &url, &[("range", range)]).await;
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */0"), "{range}");
    }
    // The C version asserted on empty files; ours still lists and serves it after all that.
    let index = get(&d.url("/")).await.text();
    assert!(index.contains(&empty), "{index}");
    assert_eq!(get(&url).await.status, 200);
    d.assert_alive().await;
}

// ----- Connections -----

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_garbage_after_them_is_refused() {
    let root = TestRoot::new("");
    let hash = put_item(&root.data_dir(), "wanted.bin", WANTED, 86400, 0, 0);
    let mut d = start_passimd(&root).await;

    let one = format!("GET /a?sha256={hash} HTTP/1.1\r\nHost: x\r\n\r\n");
    let index = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut request = format!("{one}{index}{one}").into_bytes();
    request.extend_from_slice(b"\x16\x03\x01\0\x05\xff\xfe\0GARBAGE\r\n\r\n\0\0\0");
    let ex = exchange(d.port, &request).await;
    assert!(ex.closed, "the connection stays open after garbage");
    let responses = parse_responses(&ex.raw);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert!(
        statuses == [200, 200, 200] || statuses == [200, 200, 200, 400],
        "{statuses:?}"
    );
    assert_eq!(responses[0].body, WANTED);
    assert!(String::from_utf8_lossy(&responses[1].body).contains(&hash));
    assert_eq!(responses[2].body, WANTED);

    // Garbage first: refused, and nothing after it on that connection is served.
    let mut request = b"\0\0\0\0 GARBAGE\r\n\r\n".to_vec();
    request.extend_from_slice(one.as_bytes());
    let ex = exchange(d.port, &request).await;
    assert!(ex.closed);
    let statuses: Vec<u16> = parse_responses(&ex.raw).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400]);

    // Exactly the two downloads were counted.
    let audit = root.path().join("var/log/passim/audit.log");
    poll_until("the shares to be logged", async || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .matches(" SHARE ")
            .count()
            == 2
    })
    .await;
    d.assert_alive().await;
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_are_closed() {
    let root = TestRoot::new("");
    let mut d = start_passimd(&root).await;
    let before = d.open_fds();

    let mut junk = vec![0u8; 64 * 1024];
    for (i, b) in junk.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    let inputs: [(&str, &[u8]); 5] = [
        ("plain HTTP", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
        ),
        (
            "a TLS record header claiming 16 MiB",
            b"\x16\x03\x01\xff\xff",
        ),
        (
            "an SSLv2 hello",
            b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10",
        ),
        ("64 KiB of junk", &junk),
    ];
    for (what, bytes) in inputs {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        let _ = tcp.write_all(bytes).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            let mut buf = [0u8; 4096];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{what}: still connected after 15 s");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{what}: cut only after {:?}",
            started.elapsed()
        );
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{what}: answered in plain text"
        );
        assert!(answer.len() < 64, "{what}: {} bytes back", answer.len());
        d.assert_alive().await;
    }
    d.assert_fds_return_to(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_handshakes_and_slow_headers_are_cut_without_blocking_others() {
    let root = TestRoot::new("");
    let hash = put_item(&root.data_dir(), "wanted.bin", WANTED, 86400, 0, 0);
    let mut d = start_passimd(&root).await;
    let before = d.open_fds();
    let port = d.port;

    let mut stalls = tokio::task::JoinSet::new();
    for (stall, count) in [
        (Stall::Silent, 20),
        (Stall::HalfHello, 10),
        (Stall::HelloOnly, 10),
        (Stall::SlowHeaders, 5),
    ] {
        for _ in 0..count {
            stalls.spawn(async move { (stall, stall.run(port).await) });
        }
    }

    // While they hold their connections, a good client is served as usual.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = d.url(&format!("/wanted.bin?sha256={hash}"));
    let mut slowest = Duration::ZERO;
    for _ in 0..12 {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), get(&url))
            .await
            .expect("a good client waited 5 s behind stalled ones");
        assert_eq!((r.status, r.body.as_slice()), (200, WANTED));
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("slowest good request while stalled: {slowest:?}");

    // Each stalled client is cut after the 10 s handshake or header timeout, not before a few
    // seconds (a burst must not look like an attack) and not much after.
    while let Some(joined) = stalls.join_next().await {
        let (stall, outcome) = joined.unwrap();
        let cut_after = outcome.unwrap_or_else(|e| panic!("{stall:?}: {e}"));
        assert!(
            (Duration::from_secs(8)..Duration::from_secs(20)).contains(&cut_after),
            "{stall:?} was cut after {cut_after:?}"
        );
    }
    d.assert_fds_return_to(before).await;
    assert_memory_bounded(&d);
    d.assert_alive().await;
}

// ----- Redirects -----

#[tokio::test]
async fn a_hostile_name_in_the_url_is_encoded_in_the_redirect() {
    use passim_shell::daemon::{Options, start};
    use passim_shell::paths::Paths;

    let root = TestRoot::new("");
    let mut options = Options::new(Paths::under(root.path()));
    options.discovery = Arc::new(FixedPeers(vec![passim_core::Peer {
        name: "Passim-PEER".into(),
        addr: "10.0.0.9:27500".parse().unwrap(),
    }]));
    let running = start(options).await.unwrap();
    let wanted = sha256_hex(b"held by a peer");
    let target = format!(
        "/a%0d%0aSet-Cookie:%20x=1%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E\
         %2F..%2F..%00?sha256={wanted}"
    );
    let ex = exchange(root.port, &request_line(&target)).await;
    let r = only_response(&ex, &target);
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with("https://10.0.0.9:27500/a%0D%0ASet-Cookie%3A%20x%3D1%22%3E%3Cscript"),
        "{location}"
    );
    assert!(
        location.ends_with(&format!("?sha256={wanted}")),
        "{location}"
    );
    assert!(
        location
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"'\\".contains(&b)),
        "{location}"
    );
    assert_eq!(r.header("set-cookie"), None, "a header was injected");
    let body = String::from_utf8_lossy(&r.body);
    assert!(!body.contains("<script"), "{body}");
    running.shutdown().await;
}

// ----- Helpers -----

/// Starts a `passimd` serving HTTPS only (no D-Bus, no discovery) on the root's 127.0.0.1 port.
async fn start_passimd(root: &TestRoot) -> HttpPassimd {
    HttpPassimd::start(root.path(), root.port, &["--no-dbus"], START_TIMEOUT).await
}

fn assert_memory_bounded(d: &HttpPassimd) {
    let peak = d.vm_hwm_kib();
    assert!(peak < MEMORY_BOUND_KIB, "VmHWM is {peak} KiB");
}

/// A way for a client to hold a connection without ever completing a request.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// TCP connect, then nothing.
    Silent,
    /// The first bytes of a ClientHello, then nothing.
    HalfHello,
    /// A whole ClientHello, then nothing: the server's reply is read and never answered.
    HelloOnly,
    /// A finished handshake and a request line, then one header byte a second (slowloris).
    SlowHeaders,
}

impl Stall {
    /// Holds a connection this way until the server closes it; returns how long that took.
    async fn run(self, port: u16) -> Result<Duration, String> {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match self {
            Self::Silent => {}
            Self::HalfHello | Self::HelloOnly => {
                let hello = client_hello();
                let send = match self {
                    Self::HalfHello => &hello[..hello.len() / 2],
                    _ => &hello[..],
                };
                tcp.write_all(send)
                    .await
                    .map_err(|e| format!("send: {e}"))?;
            }
            Self::SlowHeaders => {
                let config = passim_shell::tls::insecure_client_config().unwrap();
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let mut tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                let line = format!("GET /x?sha256={} HTTP/1.1\r\n", "0".repeat(64));
                tls.write_all(line.as_bytes())
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                let mut buf = [0u8; 1024];
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let deadline = tokio::time::sleep(Duration::from_secs(40));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        read = tls.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return Ok(started.elapsed()),
                            Ok(_) => return Err("answered a request never finished".into()),
                        },
                        _ = tick.tick() => {
                            if tls.write_all(b"X").await.is_err() {
                                return Ok(started.elapsed());
                            }
                        }
                        () = &mut deadline => return Err("never cut".into()),
                    }
                }
            }
        }
        let mut buf = [0u8; 16 * 1024];
        let drained = tokio::time::timeout(Duration::from_secs(40), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        drained.map_err(|_| "never cut".to_owned())?;
        Ok(started.elapsed())
    }
}

/// The bytes of a TLS ClientHello as our client sends it.
fn client_hello() -> Vec<u8> {
    let config = passim_shell::tls::insecure_client_config().unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .unwrap()
        .to_owned();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    hello
}

/// What came back on one raw connection.
struct Exchange {
    raw: Vec<u8>,
    /// Whether the server closed the connection (rather than the read timing out).
    closed: bool,
}

/// Sends `request` as raw bytes over TLS and reads until the server closes the connection
/// (bounded at 15 s).
async fn exchange(port: u16, request: &[u8]) -> Exchange {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let config = passim_shell::tls::insecure_client_config().unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    // The server may refuse and close before it has read everything: that is not a failure.
    let _ = tls.write_all(request).await;
    let _ = tls.flush().await;
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    Exchange { raw, closed }
}

/// `GET target HTTP/1.1` with `Connection: close`, `target` sent byte for byte.
fn request_line(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// [`request_line`] for a target that is not text: `prefix` then `hash`.
fn raw_request(prefix: &[u8], hash: &str) -> Vec<u8> {
    let mut r = b"GET ".to_vec();
    r.extend_from_slice(prefix);
    r.extend_from_slice(hash.as_bytes());
    r.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    r
}

/// One HTTP/1.1 response read off the wire.
struct RawResponse {
    status: u16,
    /// The status line and headers, as text.
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Every complete response in `raw`, in order (bodies by `Content-Length`).
fn parse_responses(mut raw: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        let mut r = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        assert!(
            r.header("transfer-encoding").is_none(),
            "chunked: {}",
            r.head
        );
        let length: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
        let body_start = end + 4;
        if raw.len() < body_start + length {
            break;
        }
        r.body = raw[body_start..body_start + length].to_vec();
        raw = &raw[body_start + length..];
        responses.push(r);
    }
    responses
}

/// The one response of an exchange that asked for `Connection: close`.
fn only_response(ex: &Exchange, what: &str) -> RawResponse {
    assert!(ex.closed, "{what}: the connection was left open");
    let mut responses = parse_responses(&ex.raw);
    assert_eq!(responses.len(), 1, "{what}");
    responses.remove(0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}
