//! Black-box tests of passimd's D-Bus service: the built `passimd` on a private `dbus-daemon`,
//! called the way fwupd and the CLI call it.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{NOBODY, Passimd, TestBus, TestRoot, dbus_error, passim_as, poll_until, sha256_hex};
use futures_util::StreamExt as _;
use passim_shell::dbus::PassimProxy;
use zbus::{OwnedVariant, Variant};

/// Publishes `data` as `filename` through a temporary file's fd, as fwupd does.
async fn publish_bytes(
    proxy: &PassimProxy<'_>,
    data: &[u8],
    attrs: HashMap<&str, Variant<'_>>,
) -> zbus::Result<()> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    use std::io::Seek as _;
    file.rewind().unwrap();
    proxy.publish(zbus::Fd::from(file.as_fd()), attrs).await
}

fn attrs(filename: &str) -> HashMap<&str, Variant<'_>> {
    let mut a = HashMap::new();
    a.insert("filename", Variant::from(filename));
    a
}

fn signature(item: &HashMap<String, OwnedVariant>, key: &str) -> String {
    item[key].value_signature().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_items_has_the_c_versions_keys_and_types() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    assert!(proxy.get_items().await.unwrap().is_empty());

    let data = b"firmware payload\n";
    let mut a = attrs("fw.cab");
    a.insert("max-age", Variant::from(3600u32));
    a.insert("share-limit", Variant::from(7u32));
    // Keys the daemon measures itself or does not know are ignored, not trusted.
    a.insert("size", Variant::from(999u64));
    a.insert("cmdline", Variant::from("liar"));
    a.insert("x-unknown", Variant::from(1.5f64));
    publish_bytes(&proxy, data, a).await.unwrap();

    let items = proxy.get_items().await.unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // share-count and flags are zero, so they are left out.
    assert_eq!(
        keys,
        [
            "cmdline",
            "ctime",
            "filename",
            "hash",
            "max-age",
            "share-limit",
            "size"
        ]
    );
    for (key, sig) in [
        ("hash", "s"),
        ("filename", "s"),
        ("cmdline", "s"),
        ("max-age", "u"),
        ("share-limit", "u"),
        ("size", "t"),
        ("ctime", "x"),
    ] {
        assert_eq!(signature(item, key), sig, "type of {key}");
    }
    assert_eq!(<&str>::try_from(&item["hash"]).unwrap(), sha256_hex(data));
    assert_eq!(<&str>::try_from(&item["filename"]).unwrap(), "fw.cab");
    // The test binary published it: the daemon named the caller from /proc, not the dict.
    let cmdline = <&str>::try_from(&item["cmdline"]).unwrap();
    assert_ne!(cmdline, "liar");
    assert!(!cmdline.is_empty() && !cmdline.contains('/'));
    assert_eq!(u32::try_from(&item["max-age"]).unwrap(), 3600);
    assert_eq!(u32::try_from(&item["share-limit"]).unwrap(), 7);
    assert_eq!(u64::try_from(&item["size"]).unwrap(), data.len() as u64);
    let ctime = i64::try_from(&item["ctime"]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ctime).abs() < 60, "ctime {ctime} is not now ({now})");

    // A next-reboot item is held disabled until the next boot: both bits are set.
    let mut a = attrs("later.cab");
    a.insert("flags", Variant::from(2u64));
    publish_bytes(&proxy, b"after reboot", a).await.unwrap();
    let items = proxy.get_items().await.unwrap();
    let later = items
        .iter()
        .find(|i| <&str>::try_from(&i["filename"]).unwrap() == "later.cab")
        .unwrap();
    assert_eq!(signature(later, "flags"), "t");
    assert_eq!(u64::try_from(&later["flags"]).unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_property_reads_with_its_type() {
    let bus = TestBus::start();
    let root = TestRoot::new("CarbonCost=1.0");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;

    assert_eq!(
        proxy.daemon_version().await.unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        proxy.uri().await.unwrap(),
        format!("https://localhost:{}/", root.port)
    );
    let name = proxy.name().await.unwrap();
    assert!(
        name.len() == 11
            && name.starts_with("Passim-")
            && name[7..]
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        "{name}"
    );
    assert_eq!(proxy.status().await.unwrap(), 3);
    assert_eq!(proxy.download_saving().await.unwrap(), 0);
    assert_eq!(proxy.carbon_saving().await.unwrap(), 0.0);

    // Serving the item once counts as a saving.
    let data = vec![7u8; 4096];
    publish_bytes(&proxy, &data, attrs("blob.bin"))
        .await
        .unwrap();
    let hash = sha256_hex(&data);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://127.0.0.1:{}/blob.bin?sha256={hash}", root.port);
    let expected = passim_core::Sha256::parse_hex(&hash).unwrap();
    passim_shell::client::download(&url, &expected, &dir.path().join("blob.bin"), |_, _| {})
        .await
        .unwrap();
    assert_eq!(proxy.download_saving().await.unwrap(), 4096);
    let carbon = proxy.carbon_saving().await.unwrap();
    let want = 4096.0 / 1048576.0 * 1.0 / 1024.0;
    assert!((carbon - want).abs() < 1e-12, "{carbon} != {want}");

    // The standard GetAll has every property with the right types.
    let conn = bus.connect().await;
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination("org.freedesktop.Passim")
        .path("/")
        .build()
        .await
        .unwrap();
    let all = props
        .get_all("org.freedesktop.Passim".try_into().unwrap())
        .await
        .unwrap();
    let mut sigs: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (k.clone(), v.value_signature().to_string()))
        .collect();
    sigs.sort();
    let want: Vec<(String, String)> = [
        ("CarbonSaving", "d"),
        ("DaemonVersion", "s"),
        ("DownloadSaving", "t"),
        ("Name", "s"),
        ("Status", "u"),
        ("Uri", "s"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(sigs, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_matches_the_c_interface() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let conn = bus.connect().await;
    let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination("org.freedesktop.Passim")
        .path("/")
        .build()
        .await
        .unwrap();
    let xml = intro.introspect().await.unwrap();
    let iface = xml
        .split("<interface name=\"org.freedesktop.Passim\">")
        .nth(1)
        .expect("the interface is exported")
        .split("</interface>")
        .next()
        .unwrap();
    for needle in [
        "<method name=\"GetItems\">",
        "type=\"aa{sv}\" direction=\"out\"",
        "<method name=\"Publish\">",
        "<arg name=\"handle\" type=\"h\" direction=\"in\"/>",
        "<arg name=\"attrs\" type=\"a{sv}\" direction=\"in\"/>",
        "<method name=\"Unpublish\">",
        "<arg name=\"hash\" type=\"s\" direction=\"in\"/>",
        "<signal name=\"Changed\">",
        "<property name=\"DaemonVersion\" type=\"s\" access=\"read\"",
        "<property name=\"Uri\" type=\"s\" access=\"read\"",
        "<property name=\"Name\" type=\"s\" access=\"read\"",
        "<property name=\"Status\" type=\"u\" access=\"read\"",
        "<property name=\"DownloadSaving\" type=\"t\" access=\"read\"",
        "<property name=\"CarbonSaving\" type=\"d\" access=\"read\"",
    ] {
        assert!(iface.contains(needle), "missing {needle} in:\n{iface}");
    }
    assert_eq!(iface.matches("<method ").count(), 3, "{iface}");
    assert_eq!(iface.matches("<property ").count(), 6, "{iface}");
    assert_eq!(iface.matches("<signal ").count(), 1, "{iface}");
}

/// One refused publish: what it is, its attributes and data, the error name and a part of the
/// message.
type Refusal<'a> = (
    &'a str,
    HashMap<&'a str, Variant<'a>>,
    &'a [u8],
    &'a str,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publish_refusal_leaves_no_file() {
    let bus = TestBus::start();
    let root = TestRoot::new("MaxItemSize=16");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    let small = b"0123456789abcdef"; // exactly MaxItemSize: accepted
    publish_bytes(&proxy, small, attrs("ok.bin")).await.unwrap();
    let held = root.data_files();
    assert_eq!(held, [format!("{}-ok.bin", sha256_hex(small))]);

    let invalid = "org.freedesktop.DBus.Error.InvalidArgs";
    let cases: Vec<Refusal> = vec![
        (
            "no basename",
            HashMap::new(),
            b"x",
            invalid,
            "basename missing",
        ),
        ("slash", attrs("a/b"), b"x", invalid, "invalid basename"),
        ("dot-dot", attrs(".."), b"x", invalid, "invalid basename"),
        (
            "control",
            attrs("a\u{7}b"),
            b"x",
            invalid,
            "invalid basename",
        ),
        ("empty", attrs(""), b"x", invalid, "invalid basename"),
        (
            "count at limit",
            {
                let mut a = attrs("c.bin");
                a.insert("share-limit", Variant::from(3u32));
                a.insert("share-count", Variant::from(3u32));
                a
            },
            b"x",
            invalid,
            "share-count 3 is not below share-limit 3",
        ),
        (
            "wrong type",
            {
                let mut a = attrs("t.bin");
                a.insert("max-age", Variant::from("soon"));
                a
            },
            b"x",
            invalid,
            "max-age",
        ),
        (
            "too large",
            attrs("big.bin"),
            b"0123456789abcdefg",
            "org.freedesktop.Passim.Error.TooLarge",
            "size limit is 16 bytes",
        ),
        (
            "exists",
            attrs("again.bin"),
            small,
            "org.freedesktop.Passim.Error.Exists",
            "already exists",
        ),
    ];
    for (what, a, data, name, message) in cases {
        let (got_name, got_message) = dbus_error(publish_bytes(&proxy, data, a).await);
        assert_eq!(got_name, name, "{what}: {got_message}");
        assert!(
            got_message.contains(message),
            "{what}: {got_message:?} lacks {message:?}"
        );
        assert_eq!(root.data_files(), held, "{what} left a file behind");
    }
    let (_, exists) = dbus_error(publish_bytes(&proxy, small, attrs("again.bin")).await);
    assert_eq!(exists, format!("{} already exists", sha256_hex(small)));

    // Two descriptors: one hidden in the dict, which still makes the fd list two long.
    let file = tempfile::tempfile().unwrap();
    let extra = tempfile::tempfile().unwrap();
    let mut a = attrs("two.bin");
    a.insert("x-extra", Variant::from(zbus::Fd::from(extra.as_fd())));
    let (name, message) = dbus_error(proxy.publish(zbus::Fd::from(file.as_fd()), a).await);
    assert_eq!(name, invalid, "{message}");
    assert!(message.contains("exactly one file descriptor"), "{message}");

    // No descriptor at all: a raw body whose `h` names index 0 of an empty fd list.
    let conn = bus.connect().await;
    let body = [0u8; 8]; // h = 0, then an empty a{sv}
    // SAFETY: the bytes are a valid `ha{sv}` body; only the fd it names is missing.
    let msg = unsafe {
        zbus::Message::method_call("/", "Publish")
            .destination("org.freedesktop.Passim")
            .interface("org.freedesktop.Passim")
            .build_raw_body(&body, "ha{sv}", Vec::new())
            .unwrap()
    };
    let mut replies = zbus::MessageStream::from(&conn);
    let serial = msg.primary_header().serial_num();
    conn.send(&msg).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = replies.next().await {
            if m.header().reply_serial() == Some(serial) {
                return m;
            }
        }
        panic!("the connection closed before a reply");
    })
    .await
    .expect("a reply to a publish without an fd");
    assert_eq!(
        reply.header().error_name().map(|n| n.as_str()),
        Some(invalid),
        "a publish without an fd was not refused as invalid"
    );
    assert_eq!(
        root.data_files(),
        held,
        "a publish without an fd left a file"
    );
    assert_eq!(proxy.get_items().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_removes_known_and_refuses_unknown() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    publish_bytes(&proxy, b"keep", attrs("keep.txt"))
        .await
        .unwrap();
    publish_bytes(&proxy, b"drop", attrs("drop.txt"))
        .await
        .unwrap();
    let drop_hash = sha256_hex(b"drop");

    // Upper case is the same hash.
    proxy.unpublish(&drop_hash.to_uppercase()).await.unwrap();
    let items = proxy.get_items().await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(<&str>::try_from(&items[0]["filename"]).unwrap(), "keep.txt");
    poll_until("the file to be deleted", || async {
        root.data_files() == [format!("{}-keep.txt", sha256_hex(b"keep"))]
    })
    .await;

    let (name, message) = dbus_error(proxy.unpublish(&drop_hash).await);
    assert_eq!(name, "org.freedesktop.Passim.Error.NotFound");
    assert_eq!(message, format!("{drop_hash} not found"));

    let (name, _) = dbus_error(proxy.unpublish("not-a-hash").await);
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_is_emitted_for_every_change_of_the_items() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    let mut changed = proxy.receive_changed().await.unwrap();

    publish_bytes(&proxy, b"signal me", attrs("s.txt"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), changed.next())
        .await
        .expect("Changed after Publish")
        .unwrap();

    proxy.unpublish(&sha256_hex(b"signal me")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), changed.next())
        .await
        .expect("Changed after Unpublish")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_emit_properties_changed() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let daemon = common::InProcess::start(&bus, &root, Vec::new()).await;
    let conn = bus.connect().await;
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination("org.freedesktop.Passim")
        .path("/")
        .build()
        .await
        .unwrap();
    let mut props_changed = props.receive_properties_changed().await.unwrap();
    let proxy = bus.proxy().await;
    let mut changed = proxy.receive_changed().await.unwrap();

    // What NetworkManager would report: the daemon stops advertising and says so.
    daemon.daemon().set_metered(true);
    let signal = tokio::time::timeout(Duration::from_secs(5), props_changed.next())
        .await
        .expect("PropertiesChanged after a status change")
        .unwrap();
    let args = signal.args().unwrap();
    assert_eq!(args.interface_name.as_str(), "org.freedesktop.Passim");
    assert_eq!(
        u32::try_from(&args.changed_properties["Status"]).unwrap(),
        4
    );
    tokio::time::timeout(Duration::from_secs(5), changed.next())
        .await
        .expect("Changed after a status change")
        .unwrap();
    assert_eq!(proxy.status().await.unwrap(), 4);

    daemon.daemon().set_metered(false);
    let signal = tokio::time::timeout(Duration::from_secs(5), props_changed.next())
        .await
        .expect("PropertiesChanged back to running")
        .unwrap();
    assert_eq!(
        u32::try_from(&signal.args().unwrap().changed_properties["Status"]).unwrap(),
        3
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_callers_are_refused_unless_insecure() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let mut daemon = Passimd::start(&bus, &root, &[]).await;
    let scratch = root.scratch();
    std::fs::write(scratch.join("mine.txt"), b"from nobody\n").unwrap();
    let hash = sha256_hex(b"from nobody\n");

    let out = passim_as(
        &bus.address,
        &scratch,
        &["publish", "mine.txt"],
        Some(NOBODY),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        common::stderr(&out),
        format!("only root may publish (caller is uid {NOBODY})\n")
    );
    assert!(root.data_files().is_empty());

    // Reading stays open to everyone.
    let out = passim_as(&bus.address, &scratch, &["status"], Some(NOBODY)).await;
    assert!(out.status.success(), "{out:?}");

    // Root publishes; nobody may not take it away.
    let out = common::passim(&bus.address, &scratch, &["publish", "mine.txt"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = passim_as(&bus.address, &scratch, &["unpublish", &hash], Some(NOBODY)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(common::stderr(&out).starts_with("only root may unpublish"));
    assert_eq!(bus.proxy().await.get_items().await.unwrap().len(), 1);
    let out = common::passim(&bus.address, &scratch, &["unpublish", &hash]).await;
    assert!(out.status.success(), "{out:?}");

    // The reply to Unpublish comes before the file is deleted; a kill in between would bring
    // the item back on the next start.
    poll_until("the file to be deleted", || async {
        root.data_files().is_empty()
    })
    .await;

    // With --insecure, anyone may, and the item names the program that published it.
    daemon.kill9();
    let _daemon = Passimd::start(&bus, &root, &["--insecure"]).await;
    let out = passim_as(
        &bus.address,
        &scratch,
        &["publish", "mine.txt"],
        Some(NOBODY),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let items = bus.proxy().await.get_items().await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(<&str>::try_from(&items[0]["cmdline"]).unwrap(), "passim");
    let out = passim_as(&bus.address, &scratch, &["unpublish", &hash], Some(NOBODY)).await;
    assert!(out.status.success(), "{out:?}");
}

/// A pipe whose write end does not block, so the writer can stop once the daemon is gone.
fn pipe() -> (OwnedFd, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFL on a descriptor we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    (read, std::fs::File::from(write))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_a_large_publish_leaves_no_partial_item() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let mut daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;

    // The daemon reads from a pipe the test feeds, so the kill lands while it copies.
    let (read, mut write) = pipe();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk = vec![0x5au8; 64 * 1024];
            let mut sent = 0u64;
            // Stays below MaxItemSize (100 MiB), so only the kill can end the publish.
            while !stop.load(Ordering::Relaxed) && sent < 90 * 1024 * 1024 {
                match write.write(&chunk) {
                    Ok(n) => sent += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
            sent
        })
    };
    let call = tokio::spawn(async move {
        let proxy = proxy;
        let result = proxy.publish(zbus::Fd::from(read), attrs("huge.bin")).await;
        result.is_ok()
    });

    poll_until("a partial temporary file", || async {
        std::fs::read_dir(root.data_dir())
            .map(|entries| {
                entries.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with('.')
                        && e.metadata().is_ok_and(|m| m.len() >= 1024 * 1024)
                })
            })
            .unwrap_or(false)
    })
    .await;
    // A publish in progress holds no lock that other callers wait on.
    let items = tokio::time::timeout(Duration::from_secs(5), bus.proxy().await.get_items())
        .await
        .expect("GetItems answers while a publish is copying")
        .unwrap();
    assert!(items.is_empty());
    daemon.kill9();
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().unwrap();
    assert!(
        sent < 90 * 1024 * 1024,
        "the whole file went through before the kill"
    );
    let published = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the Publish call ends when the daemon dies")
        .unwrap();
    assert!(!published, "a killed publish reported success");

    // The next start removes what the interrupted publish left and holds nothing.
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    assert!(bus.proxy().await.get_items().await.unwrap().is_empty());
    assert!(root.data_files().is_empty(), "{:?}", root.data_files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bus_passimd_warns_once_and_serves_https() {
    let root = TestRoot::new("");
    let missing = root.path().join("no-bus.sock");
    let mut daemon = Passimd::spawn(&format!("unix:path={}", missing.display()), &root, &[]);
    let url = format!("https://127.0.0.1:{}/", root.port);
    let deadline = std::time::Instant::now() + common::READY_TIMEOUT;
    loop {
        assert!(
            daemon.try_wait().is_none(),
            "passimd exited:\n{}",
            daemon.log()
        );
        let answered = passim_shell::client::request("GET", &url, &[])
            .await
            .is_ok_and(|r| r.status() == 200);
        if answered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "HTTPS never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = daemon.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("D-Bus is not available"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_bus_ends_the_daemon() {
    let mut bus = TestBus::start();
    let root = TestRoot::new("");
    let mut daemon = Passimd::start(&bus, &root, &[]).await;
    bus.kill();
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "{status}");
    assert!(
        daemon.log().contains("lost the D-Bus name"),
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_bus_exits() {
    let bus = TestBus::start();
    let first_root = TestRoot::new("");
    let _first = Passimd::start(&bus, &first_root, &[]).await;
    let second_root = TestRoot::new("");
    let mut second = Passimd::spawn(&bus.address, &second_root, &[]);
    let status = second.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        second
            .log()
            .contains("another process already owns org.freedesktop.Passim"),
        "{}",
        second.log()
    );
}
