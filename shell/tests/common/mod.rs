//! What the black-box tests of `passimd` and `passim` share: a private `dbus-daemon`, a
//! relocated root for each daemon, the built binaries run against them, and guards that end
//! every process the test started even when an assertion fails.
//!
//! Nothing here touches a real interface: each daemon listens on 127.0.0.1 only (or runs inside a
//! private network namespace), and passimd has no discovery that could send multicast.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::future::Future;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt as _;

use passim_core::{Peer, Sha256};
use passim_shell::client;
use passim_shell::daemon::{self, Discovery, Options, Running};
use passim_shell::dbus::{BUS_NAME, PassimProxy};
use passim_shell::paths::Paths;
use zbus::Connection;

/// How long anything may take to become ready before a test gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The uid the tests run unprivileged clients as (`nobody`).
pub const NOBODY: u32 = 65534;

/// A private `dbus-daemon` with a permissive policy, listening on a socket in its own folder.
/// Dropping it kills the daemon.
pub struct TestBus {
    /// `unix:path=…`, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub address: String,
    /// Not forked into the background: as our child it is killed and reaped by the guard.
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl TestBus {
    /// Starts a bus and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(bus_config)
    }

    /// Starts a bus whose policy is what a distribution's system bus has by default (callers
    /// may only reach the bus itself) plus the policy file `include`.
    pub fn start_system_like(include: &Path) -> Self {
        let include = include.to_owned();
        Self::start_with(move |socket| system_like_config(socket, &include))
    }

    fn start_with(config_text: impl FnOnce(&Path) -> String) -> Self {
        use std::io::BufRead as _;
        let dir = world_readable_tempdir();
        let socket = dir.path().join("bus.sock");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, config_text(&socket)).unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon must be installed (Debian package `dbus`)");
        // The address is printed once the socket listens: reading it is the readiness check.
        let mut line = String::new();
        let read = std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line);
        if read.is_err() || line.trim().is_empty() {
            let _ = child.kill();
            let status = child.wait();
            panic!("dbus-daemon did not start: {status:?}");
        }
        Self {
            address: format!("unix:path={}", socket.display()),
            child: Some(child),
            _dir: dir,
        }
    }

    /// A new client connection.
    pub async fn connect(&self) -> Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .expect("connecting to the test bus")
    }

    /// A proxy for `org.freedesktop.Passim` on a new connection, without property caching so
    /// that every read asks the daemon.
    pub async fn proxy(&self) -> PassimProxy<'static> {
        let conn = self.connect().await;
        PassimProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap()
    }

    /// Kills the bus now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Anyone may connect, own any name and send anything: the tests check passimd's own checks,
/// not the bus policy (the shipped policy is checked by its own test).
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// The defaults of a system bus: nobody may own names or call methods unless a policy file
/// allows it; replies, signals and calls to the bus itself are allowed.
fn system_like_config(socket: &Path, include: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{}</include>
</busconfig>
"#,
        socket.display(),
        include.display()
    )
}

/// A relocated root for one daemon: `etc/passim.conf` with a free port on 127.0.0.1.
pub struct TestRoot {
    /// The port in the config.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TestRoot {
    /// A root whose config has `extra` lines in `[daemon]` besides `Port` and `Listen`.
    pub fn new(extra: &str) -> Self {
        let dir = world_readable_tempdir();
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passim.conf"),
            format!("[daemon]\nPort={port}\nListen=127.0.0.1\n{extra}\n"),
        )
        .unwrap();
        Self { port, dir }
    }

    /// The root folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where published items are stored.
    pub fn data_dir(&self) -> PathBuf {
        Paths::under(self.path()).default_data_dir()
    }

    /// Every name in the data directory, temporary files included, sorted.
    pub fn data_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.data_dir()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// A scratch folder inside the root that anyone can read, for files to publish.
    pub fn scratch(&self) -> PathBuf {
        let dir = self.path().join("scratch");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }
}

/// A `passimd` process on a test bus. Dropping it kills it.
pub struct Passimd {
    child: Option<Child>,
    log: PathBuf,
}

impl Passimd {
    /// Starts the built `passimd` on `bus` with `root` and `args`, and waits until it owns its
    /// name and is running.
    pub async fn start(bus: &TestBus, root: &TestRoot, args: &[&str]) -> Self {
        let mut daemon = Self::spawn(&bus.address, root, args);
        daemon.wait_ready(bus).await;
        daemon
    }

    /// Starts `passimd` with `DBUS_SYSTEM_BUS_ADDRESS=address`, without waiting.
    pub fn spawn(address: &str, root: &TestRoot, args: &[&str]) -> Self {
        Self::spawn_as(address, root, args, None)
    }

    /// [`Passimd::spawn`] as the unprivileged `uid` (with `setpriv`), or as this user.
    pub fn spawn_as(address: &str, root: &TestRoot, args: &[&str], uid: Option<u32>) -> Self {
        let log = root.path().join(format!("passimd-{}.log", unique()));
        let bin = env!("CARGO_BIN_EXE_passimd");
        let mut cmd = match uid {
            // setpriv execs passimd in place, so the child's pid stays the daemon's.
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("--root")
            .arg(root.path())
            .arg("--no-discovery")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", address)
            .env("RUST_LOG", "info")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting passimd");
        Self {
            child: Some(child),
            log,
        }
    }

    /// Waits until the daemon owns `org.freedesktop.Passim` and reports `Running`.
    pub async fn wait_ready(&mut self, bus: &TestBus) {
        let conn = bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let proxy = PassimProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                panic!("passimd exited early ({status}):\n{}", self.log());
            }
            let owned = dbus
                .name_has_owner(BUS_NAME.try_into().unwrap())
                .await
                .unwrap_or(false);
            if owned && proxy.status().await.ok() == Some(3) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "passimd did not become ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Waits up to `timeout` for it to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "passimd did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }
}

impl Drop for Passimd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A daemon running inside the test process, for what only code can trigger (a status change,
/// a peer found on the LAN), served on a test bus.
pub struct InProcess {
    /// The daemon and its tasks.
    pub running: Option<Running>,
    /// Its D-Bus service.
    pub service: Option<passim_shell::dbus::Service>,
}

impl InProcess {
    /// Starts a daemon on `root` whose lookups find `peers`, and serves it on `bus`.
    pub async fn start(bus: &TestBus, root: &TestRoot, peers: Vec<Peer>) -> Self {
        let mut options = Options::new(Paths::under(root.path()));
        options.discovery = Arc::new(FixedPeers(peers));
        let running = daemon::start(options).await.expect("starting the daemon");
        let d = running.daemon.clone();
        poll_until("the daemon to run", || {
            let d = d.clone();
            async move { d.status() == passim_core::Status::Running }
        })
        .await;
        let service =
            passim_shell::dbus::serve_on(running.daemon.clone(), bus.connect().await, false)
                .await
                .expect("serving on the test bus");
        Self {
            running: Some(running),
            service: Some(service),
        }
    }

    /// The daemon.
    pub fn daemon(&self) -> &Arc<daemon::Daemon> {
        &self.running.as_ref().unwrap().daemon
    }

    /// Stops the service and the daemon.
    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// Discovery that always finds the same peers.
pub struct FixedPeers(pub Vec<Peer>);

impl Discovery for FixedPeers {
    fn advertise(&self, _hash: &Sha256) {}

    fn withdraw(&self, _hash: &Sha256) {}

    fn lookup<'a>(
        &'a self,
        _hash: &'a Sha256,
        _timeout: Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = Vec<Peer>> + Send + 'a>> {
        Box::pin(std::future::ready(self.0.clone()))
    }
}

/// Runs the built `passim` with `args` in `cwd` against `bus`, off the async runtime.
pub async fn passim(bus_address: &str, cwd: &Path, args: &[&str]) -> Output {
    passim_as(bus_address, cwd, args, None).await
}

/// Runs `passim` as the unprivileged `uid` (with `setpriv`), or as this user when `None`.
pub async fn passim_as(bus_address: &str, cwd: &Path, args: &[&str], uid: Option<u32>) -> Output {
    let bin = env!("CARGO_BIN_EXE_passim");
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .current_dir(cwd)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("running passim"))
        .await
        .unwrap()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` every 20 ms until it is true; panics after [`READY_TIMEOUT`].
pub async fn poll_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The SHA-256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A temporary folder others may enter: the bus socket and files for unprivileged clients
/// live in such folders.
fn world_readable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("passim-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The D-Bus error name and message of a failed call.
pub fn dbus_error(result: zbus::Result<()>) -> (String, String) {
    match result.expect_err("the call should have failed") {
        zbus::Error::MethodError(name, message, _) => {
            (name.to_string(), message.unwrap_or_default())
        }
        // The standard names arrive already decoded.
        zbus::Error::FDO(e) => {
            use zbus::DBusError as _;
            (
                e.name().to_string(),
                e.description().unwrap_or_default().to_owned(),
            )
        }
        e => panic!("not a method error: {e:?}"),
    }
}

/// A port that was free a moment ago, below the kernel's ephemeral range (32768 and up), so
/// the tests' own outgoing connections cannot take it before the daemon binds it. Each call in
/// a test binary tries the next port of a walk that starts at a point set by the process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ----- passimd over HTTPS alone (daemon.rs, hostile.rs) -----

/// A `passimd` serving HTTPS only: no discovery, and a system bus address that leads nowhere
/// (`--no-dbus` among the arguments skips the bus altogether). Dropping it kills it.
pub struct HttpPassimd {
    child: Child,
    /// The port its config names.
    pub port: u16,
    log: PathBuf,
}

impl HttpPassimd {
    /// Spawns passimd under `root`, whose config listens on `port`, with `args`, and waits up to
    /// `ready_within` until it answers the index page.
    pub async fn start(root: &Path, port: u16, args: &[&str], ready_within: Duration) -> Self {
        let log = root.join(format!("passimd-{}.log", unique()));
        let child = Command::new(env!("CARGO_BIN_EXE_passimd"))
            .arg("--root")
            .arg(root)
            .arg("--no-discovery")
            .args(args)
            // Never reach a real bus from a test, even by accident.
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/passim-test-bus",
            )
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            // The log level is the one `args` asks for.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting passimd");
        let mut daemon = Self { child, port, log };
        let deadline = Instant::now() + ready_within;
        loop {
            daemon.assert_running();
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(5), try_get(&daemon.url("/"))).await
            {
                if r.status == 200 {
                    return daemon;
                }
            }
            assert!(
                Instant::now() < deadline,
                "passimd did not answer:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `https://127.0.0.1:PORT` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("https://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// Panics with the log if it exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("passimd exited ({status}):\n{}", self.log());
        }
    }

    /// Still running, and a good client gets the index page within 10 s.
    pub async fn assert_alive(&mut self) {
        self.assert_running();
        let r = tokio::time::timeout(Duration::from_secs(10), get(&self.url("/")))
            .await
            .unwrap_or_else(|_| panic!("passimd stopped answering:\n{}", self.log()));
        assert_eq!(r.status, 200);
    }

    /// Sends SIGTERM, as systemd does, and returns how it exited.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "passimd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A line of `/proc/PID/status` in kB.
    pub fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {status}"))
    }

    /// Peak resident memory.
    pub fn vm_hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Bytes the daemon has read with read(2) and friends so far.
    pub fn bytes_read(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    /// Descriptors it holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Waits until the daemon holds no more descriptors than `before` (plus one of slack for a
    /// connection being accepted by the liveness check).
    pub async fn assert_fds_return_to(&self, before: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.open_fds();
            if now <= before + 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "descriptors leaked: {before} before, {now} now"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for HttpPassimd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response through the project's own client, body read.
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// A header's value; panics, naming the headers there are, if it is absent.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `url`; panics if the exchange fails.
pub async fn get(url: &str) -> Reply {
    get_from(None, "GET", url, &[]).await
}

/// `method` `url` with `headers`; panics if the exchange fails.
pub async fn get_with(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    get_from(None, method, url, headers).await
}

/// [`get_with`] from the local address `local`, to appear as a LAN peer.
pub async fn get_from(
    local: Option<IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Reply {
    try_request(local, method, url, headers)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e:#}"))
}

/// GET `url`, the error returned.
pub async fn try_get(url: &str) -> anyhow::Result<Reply> {
    try_request(None, "GET", url, &[]).await
}

async fn try_request(
    local: Option<IpAddr>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let r = client::request_from(local, method, url, headers).await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await?.to_bytes().to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Writes a published item as the C version stores it: `<hash>-<name>` with little-endian u32
/// xattrs, and mtime `age` seconds ago as its publish time. Returns its hash.
pub fn put_item(
    data_dir: &Path,
    name: &str,
    content: &[u8],
    max_age: u32,
    share_limit: u32,
    age: u64,
) -> String {
    std::fs::create_dir_all(data_dir).unwrap();
    let hash = sha256_hex(content);
    let path = data_dir.join(format!("{hash}-{name}"));
    std::fs::write(&path, content).unwrap();
    xattr::set(&path, "user.max_age", &max_age.to_le_bytes()).unwrap();
    xattr::set(&path, "user.share_limit", &share_limit.to_le_bytes()).unwrap();
    xattr::set(&path, "user.cmdline", b"fwupd").unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(age))
        .unwrap();
    hash
}

// ----- Private namespaces and mounts (hostile.rs, disk_full.rs) -----

/// Runs `test` again inside private network and mount namespaces, with loopback up, and returns
/// true in the outer process once it passed there; returns false inside. Mounts made inside
/// vanish with the namespace, and nothing there can reach a real interface. Needs root.
pub fn in_namespaces(test: &str) -> bool {
    const INSIDE: &str = "PASSIM_TEST_IN_NAMESPACES";
    if std::env::var_os(INSIDE).is_some() {
        run(Command::new("ip").args(["link", "set", "lo", "up"]));
        return false;
    }
    // util-linux makes the new namespace's mounts private: nothing propagates back.
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .expect("unshare runs (the tests run as root)");
    assert!(
        status.success(),
        "{test} failed inside its namespaces (its output is above)"
    );
    true
}

/// A mount made by a test; lazily unmounted on drop, so declare it after the folder it is in.
pub struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. `size=2m`) on `dir`, creating `dir` if needed.
    pub fn tmpfs(dir: &Path, options: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir));
        Self(dir.to_owned())
    }

    /// Binds the file `source` over the file `target` (created empty if missing).
    pub fn bind(source: &Path, target: &Path) -> Self {
        if !target.exists() {
            std::fs::write(target, b"").unwrap();
        }
        run(Command::new("mount").arg("--bind").arg(source).arg(target));
        Self(target.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Runs `cmd` and panics unless it succeeds.
pub fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}
