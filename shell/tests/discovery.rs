//! LAN discovery between real processes: `passimd` with mDNS in network namespaces joined by a
//! veth pair, each machine with its own private D-Bus, and Avahi from Debian's packages standing
//! in for the C passim.
//!
//! Nothing here reaches a real interface: every daemon that multicasts runs inside a namespace
//! made for the test (created with `ip netns`, its end of the pair created inside it), and the
//! namespaces, with their links and processes, are removed when the test ends, also when it
//! fails. The tests need root, `ip` (iproute2), `unshare` and `mount` (util-linux), and
//! `dbus-daemon`; the Avahi test fetches `avahi-daemon` and friends with `apt-get download` into
//! the target folder the first time (or uses `$PASSIM_TEST_AVAHI_ROOT`, an unpacked tree).

mod common;

use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{TestBus, TestRoot, passim, sha256_hex, stderr, stdout};
use passim_shell::client;

/// How long the LAN may take to settle (probing, announcements) before a test gives up.
const SETTLE: Duration = Duration::from_secs(15);

/// Two peers find each other, `passim download` follows the redirect and verifies, the
/// share-limit and a metered network withdraw the advertisement, and nobody redirects to
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_over_mdns() {
    let lan = Lan::new("d", 1);
    let (a_ip, b_ip) = (lan.ip(0), lan.ip(1));
    let (bus_a, bus_b) = (TestBus::start(), TestBus::start());
    let root_a = TestRoot::new(&format!("Listen=127.0.0.1;{a_ip}"));
    let root_b = TestRoot::new(&format!("Listen=127.0.0.1;{b_ip}"));
    let a = lan.passimd(0, &bus_a, &root_a).await;
    lan.passimd(1, &bus_b, &root_b).await;

    // A file published on A, which may be shared twice.
    let scratch_a = root_a.scratch();
    std::fs::write(scratch_a.join("hello.txt"), b"hello from A\n").unwrap();
    let hash = sha256_hex(b"hello from A\n");
    ok(&passim(
        &bus_a.address,
        &scratch_a,
        &["publish", "hello.txt", "86400", "2"],
    )
    .await);

    // B redirects a local request to A...
    let url = |q: &str| format!("https://localhost:{}/hello.txt?sha256={q}", root_b.port);
    let to_a = format!("https://{a_ip}:{}/hello.txt?sha256={hash}", root_a.port);
    let location = lan.eventually_redirected(1, &url(&hash)).await;
    assert_eq!(location, to_a);

    // ...and `passim download` on B follows it and verifies what A sends.
    let dl = root_b.path().join("dl");
    std::fs::create_dir(&dl).unwrap();
    let out = lan
        .passim(1, &bus_b, &dl, &["download", "hello.txt", &hash])
        .await;
    assert_eq!(ok(&out), "Saved hello.txt (13 bytes of text/plain)\n");
    assert_eq!(
        std::fs::read(dl.join("hello.txt")).unwrap(),
        b"hello from A\n"
    );

    // The second share (from A's own loopback, which has no cooldown) reaches A's limit: A
    // deletes the item and withdraws it, and B stops sending clients there.
    let on_a = format!("https://localhost:{}/hello.txt?sha256={hash}", root_a.port);
    assert_eq!(lan.get(0, &on_a).await, (200, None));
    lan.eventually_status(1, &url(&hash), 404, "B to forget A's deleted item")
        .await;
    assert!(root_a.data_files().is_empty(), "{:?}", root_a.data_files());

    // Never to itself: an item only B holds, asked for with localhost=false, is not found.
    let scratch_b = root_b.scratch();
    std::fs::write(scratch_b.join("mine.txt"), b"only on B\n").unwrap();
    let mine = sha256_hex(b"only on B\n");
    ok(&passim(&bus_b.address, &scratch_b, &["publish", "mine.txt"]).await);
    let own = format!(
        "https://localhost:{}/mine.txt?sha256={mine}&localhost=false",
        root_b.port
    );
    let (status, location) = lan.get(1, &own).await;
    assert_eq!((status, location), (404, None), "B redirected to itself");

    // Metered: A advertises nothing and reports Status 4 while NetworkManager says so.
    std::fs::write(scratch_a.join("more.txt"), b"more from A\n").unwrap();
    let more = sha256_hex(b"more from A\n");
    ok(&passim(&bus_a.address, &scratch_a, &["publish", "more.txt"]).await);
    let more_url = format!("https://localhost:{}/more.txt?sha256={more}", root_b.port);
    lan.eventually_redirected(1, &more_url).await;
    let nm = FakeNetworkManager::start(&bus_a, 1).await;
    wait_status(&bus_a, 4).await;
    lan.eventually_status(1, &more_url, 404, "B to forget a metered A")
        .await;
    nm.set_metered(2).await;
    wait_status(&bus_a, 3).await;
    let location = lan.eventually_redirected(1, &more_url).await;
    assert!(
        location.starts_with(&format!("https://{a_ip}:")),
        "{location}"
    );

    // A stopping says goodbye: B forgets it at once rather than when the records expire.
    lan.terminate(a);
    lan.eventually_status(1, &more_url, 404, "B to forget a stopped A")
        .await;
}

/// Avahi, as C passim peers use it, sees our instance under every item's subtype, and a service
/// published through Avahi with several subtypes on one instance is found and redirected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avahi_peers_and_ours_find_each_other() {
    let avahi = avahi_root();
    let lan = Lan::new("v", 2);
    let (c_ip, b_ip) = (lan.ip(0), lan.ip(1));
    let (bus_c, bus_b) = (TestBus::start(), TestBus::start());
    lan.avahi_daemon(0, &avahi, &bus_c).await;

    // Our daemon on B shares two items.
    let root_b = TestRoot::new(&format!("Listen=127.0.0.1;{b_ip}"));
    lan.passimd(1, &bus_b, &root_b).await;
    let scratch_b = root_b.scratch();
    let mut ours = Vec::new();
    for (name, content) in [("one.txt", "first item\n"), ("two.txt", "second item\n")] {
        std::fs::write(scratch_b.join(name), content).unwrap();
        ours.push(sha256_hex(content.as_bytes()));
        ok(&passim(&bus_b.address, &scratch_b, &["publish", name]).await);
    }

    // Avahi on C resolves our instance under each subtype, at B's address and port.
    let ours_at = format!(";{b_ip};{};", root_b.port);
    for hash in &ours {
        let subtype = format!("_{}._sub._cache._tcp", &hash[..60]);
        let found = eventually(SETTLE, || {
            let out = lan.avahi_tool(0, &avahi, &bus_c, "avahi-browse", &["-rtp", &subtype]);
            let text = stdout(&out);
            text.lines()
                .any(|l| l.starts_with("=;") && l.contains(&ours_at) && l.contains(";Passim-"))
                .then_some(text)
        })
        .await;
        assert!(found.contains(&format!("-{}", &hash[..16])), "{found}");
    }
    let all = stdout(&lan.avahi_tool(0, &avahi, &bus_c, "avahi-browse", &["-rtp", "_cache._tcp"]));
    assert!(
        all.lines()
            .filter(|l| l.starts_with("=;") && l.contains(&ours_at))
            .count()
            >= 2
    );

    // A C passim stand-in on C: a passimd without mDNS serving a file, advertised by Avahi as
    // one instance with that file's subtype and another one.
    let root_c = TestRoot::new(&format!("Listen={c_ip}"));
    lan.passimd_without_mdns(0, &bus_c, &root_c).await;
    let scratch_c = root_c.scratch();
    std::fs::write(scratch_c.join("fw.cab"), b"firmware from C\n").unwrap();
    let theirs = sha256_hex(b"firmware from C\n");
    ok(&passim(&bus_c.address, &scratch_c, &["publish", "fw.cab"]).await);
    let other = sha256_hex(b"something else C holds");
    let subtypes = [&theirs, &other].map(|h| format!("--subtype=_{}._sub._cache._tcp", &h[..60]));
    let port = root_c.port.to_string();
    let publisher = lan.avahi_publish(
        0,
        &avahi,
        &bus_c,
        &[
            &subtypes[0],
            &subtypes[1],
            "Passim-C0DE",
            "_cache._tcp",
            &port,
        ],
    );

    let url = |h: &str| format!("https://localhost:{}/fw.cab?sha256={h}", root_b.port);
    let location = lan.eventually_redirected(1, &url(&theirs)).await;
    assert_eq!(
        location,
        format!("https://{c_ip}:{port}/fw.cab?sha256={theirs}")
    );
    let location = lan.eventually_redirected(1, &url(&other)).await;
    assert!(
        location.starts_with(&format!("https://{c_ip}:{port}/")),
        "{location}"
    );

    let dl = root_b.path().join("dl");
    std::fs::create_dir(&dl).unwrap();
    let out = lan
        .passim(1, &bus_b, &dl, &["download", "fw.cab", &theirs])
        .await;
    assert!(
        ok(&out).starts_with("Saved fw.cab (16 bytes"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(dl.join("fw.cab")).unwrap(),
        b"firmware from C\n"
    );

    // The C peer withdraws its service: B stops redirecting there.
    lan.kill(publisher);
    lan.eventually_status(1, &url(&theirs), 404, "B to forget the withdrawn service")
        .await;
}

/// Network namespaces joined by one veth pair, with the processes started in them. Dropping it
/// kills the processes and deletes the namespaces (which removes the pair).
struct Lan {
    namespaces: [String; 2],
    subnet: u8,
    processes: Mutex<Vec<(Child, PathBuf, String)>>,
    logs: tempfile::TempDir,
}

impl Lan {
    /// Two namespaces named after this process and `tag`, on `10.231.<subnet>.0/24`.
    fn new(tag: &str, subnet: u8) -> Self {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the discovery tests create network namespaces: run them as root"
        );
        remove_stale_namespaces();
        let pid = std::process::id();
        let lan = Self {
            namespaces: [
                format!("passim-t{pid}-{tag}0"),
                format!("passim-t{pid}-{tag}1"),
            ],
            subnet,
            processes: Mutex::new(Vec::new()),
            logs: tempfile::tempdir().unwrap(),
        };
        let [a, b] = &lan.namespaces;
        must(&["ip", "netns", "add", a]);
        must(&["ip", "netns", "add", b]);
        // Each end is created inside its namespace, so no interface ever appears on the host.
        must(&[
            "ip", "link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth0",
            "netns", b,
        ]);
        for (i, ns) in lan.namespaces.iter().enumerate() {
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "multicast", "on"]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", lan.ip(i)),
                "dev",
                "veth0",
            ]);
            must(&["ip", "-n", ns, "link", "set", "veth0", "up"]);
        }
        // mdns-sd takes the interfaces that are up when it starts and looks for new ones only
        // every few seconds: start the daemons once both ends have a carrier.
        let deadline = Instant::now() + SETTLE;
        while !lan.namespaces.iter().all(|ns| {
            let out = Command::new("ip")
                .args(["-n", ns, "-o", "link", "show", "veth0"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("state UP")
        }) {
            assert!(Instant::now() < deadline, "the veth pair did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        lan
    }

    /// The address of host `i` (0 or 1).
    fn ip(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    /// Starts `program args` in host `i`'s namespace with the system bus at `bus`.
    fn spawn(&self, i: usize, bus: &TestBus, name: &str, program: &str, args: &[&str]) -> usize {
        self.spawn_env(i, bus, name, program, args, &[])
    }

    fn spawn_env(
        &self,
        i: usize,
        bus: &TestBus,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let mut processes = self.processes.lock().unwrap();
        let log = self
            .logs
            .path()
            .join(format!("{i}-{name}-{}.log", processes.len()));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i], program])
            .args(args)
            .envs(env.iter().copied())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        processes.push((child, log, format!("{name} on host {i}")));
        processes.len() - 1
    }

    /// Kills process `id` (from [`Lan::spawn`]) and reaps it.
    fn kill(&self, id: usize) {
        let mut processes = self.processes.lock().unwrap();
        let child = &mut processes[id].0;
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM to process `id` and waits until it exits (as systemd stops passimd).
    fn terminate(&self, id: usize) {
        let mut processes = self.processes.lock().unwrap();
        let child = &mut processes[id].0;
        let pid = i32::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + SETTLE;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "process {id} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts passimd with mDNS on host `i` and waits until it runs; returns its process id.
    async fn passimd(&self, i: usize, bus: &TestBus, root: &TestRoot) -> usize {
        let root = root.path().to_str().unwrap();
        let id = self.spawn_env(
            i,
            bus,
            "passimd",
            env!("CARGO_BIN_EXE_passimd"),
            &["--root", root],
            &[("RUST_LOG", "info,passim_shell=debug")],
        );
        wait_status(bus, 3).await;
        id
    }

    /// Starts passimd without mDNS on host `i` (a file server for Avahi to advertise).
    async fn passimd_without_mdns(&self, i: usize, bus: &TestBus, root: &TestRoot) {
        let root = root.path().to_str().unwrap();
        let args = ["--root", root, "--no-discovery"];
        self.spawn(
            i,
            bus,
            "passimd-plain",
            env!("CARGO_BIN_EXE_passimd"),
            &args,
        );
        wait_status(bus, 3).await;
    }

    /// Runs the built `passim` in host `i`'s namespace, in `cwd`.
    async fn passim(&self, i: usize, bus: &TestBus, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.namespaces[i],
            env!("CARGO_BIN_EXE_passim"),
        ])
        .args(args)
        .current_dir(cwd)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// A GET from inside host `i`'s namespace: the status and the `Location` header.
    async fn get(&self, i: usize, url: &str) -> (u16, Option<String>) {
        let netns = PathBuf::from("/run/netns").join(&self.namespaces[i]);
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || {
            // A thread of our own enters the namespace, so its sockets are made there; the
            // other threads of the test stay where they are.
            std::thread::spawn(move || {
                let ns = std::fs::File::open(&netns).unwrap();
                assert_eq!(
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let reply = rt.block_on(client::request("GET", &url, &[])).unwrap();
                let location = reply
                    .headers()
                    .get("location")
                    .map(|v| v.to_str().unwrap().to_owned());
                (reply.status().as_u16(), location)
            })
            .join()
            .unwrap()
        })
        .await
        .unwrap()
    }

    /// Polls `url` from host `i` until it redirects; returns where to.
    async fn eventually_redirected(&self, i: usize, url: &str) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, location) = self.get(i, url).await;
            if status == 302 {
                return location.expect("a 302 has a Location");
            }
            if Instant::now() > deadline {
                panic!(
                    "{url} still answers {status}, not a redirect\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `url` from host `i` until it answers `want`.
    async fn eventually_status(&self, i: usize, url: &str, want: u16, what: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, location) = self.get(i, url).await;
            if status == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: {status} {location:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts avahi-daemon on host `i`, confined to its namespace and its veth, with a private
    /// `/run`, an `avahi` user of its own, and `bus` as its system bus; waits until it runs.
    async fn avahi_daemon(&self, i: usize, avahi: &Path, bus: &TestBus) {
        let dir = self.logs.path().join(format!("avahi-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("avahi-daemon.conf"),
            format!(
                "[server]\nhost-name=avahi-host-{i}\nuse-ipv4=yes\nuse-ipv6=no\n\
                 allow-interfaces=veth0\nenable-dbus=yes\n[wide-area]\nenable-wide-area=no\n\
                 [publish]\npublish-hinfo=no\npublish-workstation=no\n"
            ),
        )
        .unwrap();
        // avahi-daemon looks its user up even when it keeps root; the host may have none.
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        passwd.push_str("avahi:x:0:0:avahi:/nonexistent:/usr/sbin/nologin\n");
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        group.push_str("avahi:x:0:\n");
        std::fs::write(dir.join("group"), group).unwrap();

        let script = format!(
            "mount -t tmpfs tmpfs /run && mount --bind {d}/passwd /etc/passwd && \
             mount --bind {d}/group /etc/group && exec {a}/usr/sbin/avahi-daemon \
             -f {d}/avahi-daemon.conf --no-drop-root --no-chroot --no-rlimits --no-proc-title",
            d = dir.display(),
            a = avahi.display(),
        );
        let lib = avahi_lib_path(avahi);
        let id = self.spawn_env(
            i,
            bus,
            "avahi-daemon",
            "unshare",
            &["--mount", "--propagation", "private", "sh", "-c", &script],
            &[("LD_LIBRARY_PATH", &lib)],
        );
        let log = self.processes.lock().unwrap()[id].1.with_extension("err");
        let started = eventually(SETTLE, || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("Server startup complete"))
        })
        .await;
        assert!(started.contains("veth0"), "{started}");
    }

    /// Runs an Avahi client tool on host `i` and returns its output.
    fn avahi_tool(
        &self,
        i: usize,
        avahi: &Path,
        bus: &TestBus,
        tool: &str,
        args: &[&str],
    ) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(avahi.join("usr/bin").join(tool))
            .args(args)
            .env("LD_LIBRARY_PATH", avahi_lib_path(avahi))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts `avahi-publish -s ARGS` on host `i`; it advertises until killed.
    fn avahi_publish(&self, i: usize, avahi: &Path, bus: &TestBus, args: &[&str]) -> usize {
        let tool = avahi.join("usr/bin/avahi-publish");
        let mut all = vec!["-s"];
        all.extend_from_slice(args);
        let lib = avahi_lib_path(avahi);
        let env = [("LD_LIBRARY_PATH", lib.as_str())];
        self.spawn_env(i, bus, "avahi-publish", tool.to_str().unwrap(), &all, &env)
    }

    /// Everything the processes wrote, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for (_, log, what) in self.processes.lock().unwrap().iter() {
            for path in [log.clone(), log.with_extension("err")] {
                let body = std::fs::read_to_string(&path).unwrap_or_default();
                if !body.is_empty() {
                    text.push_str(&format!("----- {what} ({})\n{body}\n", path.display()));
                }
            }
        }
        text
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        for (child, _, _) in processes.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(processes);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Deletes namespaces left by an earlier run of these tests that was killed before cleaning up.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("passim-t") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new("/proc").join(&pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A stand-in for NetworkManager on a test bus: its `Metered` property, changeable.
struct FakeNetworkManager {
    conn: zbus::Connection,
}

struct NetworkManagerState {
    metered: u32,
}

#[zbus::interface(name = "org.freedesktop.NetworkManager")]
impl NetworkManagerState {
    #[zbus(property)]
    fn metered(&self) -> u32 {
        self.metered
    }
}

impl FakeNetworkManager {
    async fn start(bus: &TestBus, metered: u32) -> Self {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .name("org.freedesktop.NetworkManager")
            .serve_at(
                "/org/freedesktop/NetworkManager",
                NetworkManagerState { metered },
            )
            .build()
            .await
            .unwrap();
        Self { conn }
    }

    async fn set_metered(&self, metered: u32) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, NetworkManagerState>("/org/freedesktop/NetworkManager")
            .await
            .unwrap();
        iface.get_mut().await.metered = metered;
        iface
            .get()
            .await
            .metered_changed(iface.signal_emitter())
            .await
            .unwrap();
    }
}

/// Waits until the passimd on `bus` reports `status`.
async fn wait_status(bus: &TestBus, status: u32) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let conn = bus.connect().await;
        let proxy = passim_shell::dbus::PassimProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        if proxy.status().await.ok() == Some(status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "passimd never reached status {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it gives a value, for at most `timeout`.
async fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The unpacked Avahi packages: `$PASSIM_TEST_AVAHI_ROOT`, or fetched once into the target
/// folder with `apt-get download` and `dpkg -x` (never installed: Debian's install script would
/// start the daemon on the host's interfaces).
fn avahi_root() -> PathBuf {
    if let Some(root) = std::env::var_os("PASSIM_TEST_AVAHI_ROOT") {
        return PathBuf::from(root);
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("avahi");
    if root.join("usr/sbin/avahi-daemon").exists() {
        return root;
    }
    let debs = root.with_extension("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let packages = [
        "avahi-daemon",
        "avahi-utils",
        "libavahi-core7",
        "libavahi-common3",
        "libavahi-common-data",
        "libavahi-client3",
        "libdaemon0",
    ];
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(packages)
            .current_dir(&debs)
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine has no package lists yet.
    if !download() {
        assert!(
            run(&["apt-get", "update", "-qq"]) && download(),
            "cannot fetch Avahi with apt-get download; set PASSIM_TEST_AVAHI_ROOT to an unpacked tree"
        );
    }
    let partial = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    for deb in std::fs::read_dir(&debs).unwrap() {
        let deb = deb.unwrap().path();
        if deb.extension().is_some_and(|e| e == "deb") {
            must(&[
                "dpkg",
                "-x",
                deb.to_str().unwrap(),
                partial.to_str().unwrap(),
            ]);
        }
    }
    std::fs::rename(&partial, &root).unwrap();
    root
}

fn avahi_lib_path(avahi: &Path) -> String {
    let mut dirs: Vec<String> = std::fs::read_dir(avahi.join("usr/lib"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    dirs.push(avahi.join("usr/lib").display().to_string());
    dirs.join(":")
}

/// stdout of a command that must have succeeded.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(run(args), "{args:?} failed");
}
