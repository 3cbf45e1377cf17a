//! A full disk under the built `passimd`: the data directory and the audit log's folder on
//! small tmpfs mounts, inside private network and mount namespaces (`unshare --net --mount`, as
//! root) so the mounts vanish with the test. Publishing goes through a private D-Bus daemon, as
//! fwupd publishes; downloads go over HTTPS on 127.0.0.1.
//!
//! What must hold: a publish that does not fit fails with a clear D-Bus error and leaves nothing
//! behind (no item, no temporary file, no space held); the daemon keeps serving what it has; a
//! full log folder costs audit lines and a warning, never a download or a corrupted log.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::time::Duration;

use common::{
    Mount, Passimd, TestBus, TestRoot, dbus_error, in_namespaces, poll_until, sha256_hex,
};
use http_body_util::BodyExt as _;
use passim_shell::client;
use passim_shell::dbus::PassimProxy;
use zbus::Variant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_larger_than_the_free_space_fails_cleanly_and_leaves_nothing() {
    if in_namespaces("a_publish_larger_than_the_free_space_fails_cleanly_and_leaves_nothing") {
        return;
    }
    let bus = TestBus::start();
    let root = TestRoot::new("");
    // 2 MiB: 512 pages of 4 KiB.
    let _data = Mount::tmpfs(&root.data_dir(), "size=2m,mode=0700");
    let daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;

    let small = b"a small item that fits\n".to_vec();
    let large = pattern(1536 * 1024, 1);
    let too_big = pattern(1024 * 1024, 2);
    publish(&proxy, &small, "small.txt").await.unwrap();
    publish(&proxy, &large, "large.bin").await.unwrap();
    let kept = vec![
        format!("{}-large.bin", sha256_hex(&large)),
        format!("{}-small.txt", sha256_hex(&small)),
    ];
    assert_eq!(root.data_files(), kept);

    // 1 MiB into the 0.5 MiB left, and 8 MiB: refused while receiving, by the disk.
    let mut messages = Vec::new();
    for data in [&too_big, &pattern(8 << 20, 3)] {
        let (name, message) = dbus_error(publish(&proxy, data, "too-big.bin").await);
        assert_disk_full_error(&name, &message);
        assert_eq!(root.data_files(), kept, "something was left behind");
        messages.push(message);
    }
    let items = proxy.get_items().await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");

    // What was there is still served, whole.
    for data in [&small, &large] {
        assert_eq!(
            download(root.port, &sha256_hex(data)).await,
            (200, data.clone())
        );
    }
    let audit = read_audit(root.path());
    assert_eq!(audit.matches(" PBLSH ").count(), 2, "{audit}");
    assert!(!audit.contains(&sha256_hex(&too_big)), "{audit}");

    // The failed publishes hold no space: once the large item is gone, the same 1 MiB fits.
    proxy.unpublish(&sha256_hex(&large)).await.unwrap();
    publish(&proxy, &too_big, "too-big.bin").await.unwrap();
    assert_eq!(
        download(root.port, &sha256_hex(&too_big)).await,
        (200, too_big.clone())
    );
    let log = daemon.log();
    assert!(
        log.contains("publish failed"),
        "the operator is told: {log}"
    );

    // The daemon read the caller's file fine; writing its own copy failed. The error must not
    // send the caller looking at the wrong disk.
    for message in messages {
        assert!(
            !message.starts_with("reading the file"),
            "the error blames reading the caller's file for the daemon's full disk: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_with_no_inode_left_fails_cleanly() {
    if in_namespaces("a_publish_with_no_inode_left_fails_cleanly") {
        return;
    }
    let bus = TestBus::start();
    let root = TestRoot::new("");
    // The root folder and two more inodes; newer kernels also charge xattrs to that space.
    let _data = Mount::tmpfs(&root.data_dir(), "size=2m,nr_inodes=3,mode=0700");
    let daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;

    let mut published = Vec::new();
    let mut refused = None;
    for n in 0..4 {
        let data = format!("item {n}\n").into_bytes();
        match publish(&proxy, &data, &format!("item-{n}.txt")).await {
            Ok(()) => published.push(data),
            Err(e) => {
                refused = Some(dbus_error(Err(e)));
                break;
            }
        }
    }
    let (name, message) = refused.expect("four items fitted into three inodes");
    assert_disk_full_error(&name, &message);
    assert!(!published.is_empty(), "not even one item fitted");
    let mut expected: Vec<String> = published
        .iter()
        .enumerate()
        .map(|(n, data)| format!("{}-item-{n}.txt", sha256_hex(data)))
        .collect();
    expected.sort();
    assert_eq!(root.data_files(), expected, "something was left behind");
    for data in &published {
        assert_eq!(
            download(root.port, &sha256_hex(data)).await,
            (200, data.clone())
        );
    }
    let log = daemon.log();
    assert!(
        log.contains("publish failed"),
        "the operator is told: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_folder_stops_neither_downloads_nor_publishes_and_corrupts_no_line() {
    if in_namespaces("a_full_log_folder_stops_neither_downloads_nor_publishes_and_corrupts_no_line")
    {
        return;
    }
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let log_dir = root.path().join("var/log/passim");
    let _log = Mount::tmpfs(&log_dir, "size=64k");
    let daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    let wanted = b"served whatever happens to the log\n".to_vec();
    let hash = sha256_hex(&wanted);
    publish(&proxy, &wanted, "wanted.bin").await.unwrap();
    assert_eq!(download(root.port, &hash).await, (200, wanted.clone()));
    let audit = log_dir.join("audit.log");
    poll_until("the share to be logged", || {
        let audit = audit.clone();
        async move { read_file(&audit).contains(" SHARE ") }
    })
    .await;

    // Leave 40 bytes in the log's last page and take every other page, so that the next line
    // fits only in part: a short write, then ENOSPC.
    let len = std::fs::metadata(&audit).unwrap().len() as usize;
    let mut pad = 4096 - len % 4096 - 40;
    if pad < 2 {
        pad += 4096;
    }
    let padding = format!("{}\n", "#".repeat(pad - 1));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap()
        .write_all(padding.as_bytes())
        .unwrap();
    let filler = log_dir.join("filler");
    fill(&filler);

    // Downloads go on, and so does publishing; the operator is told.
    for _ in 0..3 {
        assert_eq!(download(root.port, &hash).await, (200, wanted.clone()));
    }
    let late = b"published while the log is full\n".to_vec();
    publish(&proxy, &late, "late.bin").await.unwrap();
    assert_eq!(
        download(root.port, &sha256_hex(&late)).await,
        (200, late.clone())
    );
    let log = daemon.log();
    assert!(log.contains("cannot write audit log"), "{log}");
    assert!(
        log.contains("No space left on device"),
        "the warning says why: {log}"
    );

    // Space again: logging resumes, and no line is half of one glued to the next.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(download(root.port, &hash).await, (200, wanted.clone()));
    poll_until("logging to resume", || {
        let audit = audit.clone();
        let padding = padding.clone();
        async move {
            let text = read_file(&audit);
            let after = text.split_once(&padding).map_or("", |(_, after)| after);
            after.contains("ipaddr=") && after.ends_with('\n')
        }
    })
    .await;
    let text = read_file(&audit);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(is_audit_line(line), "a corrupted audit line: {line:?}");
    }
    assert!(text.ends_with('\n'));
}

/// A publish refused by the disk fails with `Error.Failed` and says the disk is full.
fn assert_disk_full_error(name: &str, message: &str) {
    assert_eq!(name, "org.freedesktop.Passim.Error.Failed", "{message}");
    assert!(message.contains("No space left on device"), "{message}");
}

/// Whether `line` is one whole audit line: a time like `2026-01-01T00:00:00.123456Z`, one
/// event type, then `key=value` pairs, and nothing of another line inside it.
fn is_audit_line(line: &str) -> bool {
    let mut parts = line.splitn(3, ' ');
    let (Some(time), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let time_ok = time.len() == 27
        && time.ends_with('Z')
        && time.as_bytes()[10] == b'T'
        && time.as_bytes()[19] == b'.';
    let one_event = ["PBLSH", "SHARE", "DELTE"]
        .iter()
        .map(|k| line.matches(&format!(" {k} ")).count())
        .sum::<usize>()
        == 1;
    time_ok && ["PBLSH", "SHARE", "DELTE"].contains(&kind) && rest.starts_with("hash=") && one_event
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = [0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
}

/// Publishes `data` as `filename` through a temporary file's fd, as fwupd does.
async fn publish(proxy: &PassimProxy<'_>, data: &[u8], filename: &str) -> zbus::Result<()> {
    use std::io::Seek as _;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    file.rewind().unwrap();
    let mut attrs = HashMap::new();
    attrs.insert("filename", Variant::from(filename));
    proxy.publish(zbus::Fd::from(file.as_fd()), attrs).await
}

/// GETs the item `hash` from the daemon on `port`: status and body.
async fn download(port: u16, hash: &str) -> (u16, Vec<u8>) {
    let url = format!("https://127.0.0.1:{port}/x?sha256={hash}");
    let r = tokio::time::timeout(Duration::from_secs(10), client::request("GET", &url, &[]))
        .await
        .expect("the download hangs")
        .unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, body)
}

/// `len` bytes that differ from those of another `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_audit(root: &Path) -> String {
    read_file(&root.join("var/log/passim/audit.log"))
}

fn read_file(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
