//! The turmoil tier: machines running the real passimd serving path on a simulated LAN.
//!
//! Every machine is a turmoil host running `passim_shell::daemon` as passimd runs it: the real
//! core, the real store and audit log in a temporary directory, hyper and rustls serving over
//! turmoil's TCP (`Options::single_thread`, so file work stays on the host's own thread and the
//! virtual clock cannot run ahead of it). Beside it runs the fwupd-like client of the crate
//! docs, also over real TLS, which publishes through `Daemon::publish`, the call the D-Bus
//! `Publish` method makes (D-Bus itself cannot run inside turmoil). Discovery is [`SimDiscovery`],
//! the three-message stand-in for mDNS over turmoil's UDP multicast. A `cdn` host serves the file
//! over HTTPS.
//!
//! turmoil advances its network on a fixed tick and its cost grows with the cube of the host
//! count, so this tier is for tens of machines and minutes of simulated time. Idle time still
//! costs ticks here, which is why its scenarios use a window of minutes where the core tier
//! uses a day.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{self, Cursor};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use passim_core::config::Config;
use passim_core::{Peer, PublishAttrs, Sha256, Timestamp};
use passim_shell::daemon::{self, Daemon, Discovery, Options};
use passim_shell::paths::Paths;
use passim_shell::{client, http, tls};
use tokio::sync::{Notify, mpsc};

use crate::model::{self, Fetch, Params, Report, Schedule, Source, Trace};

mod scenarios;
pub use scenarios::*;

/// The name every client asks for.
pub const BASENAME: &str = "firmware.xml.zst";
/// turmoil's step: the resolution of the simulated network.
pub const TICK: Duration = Duration::from_millis(10);
/// The mDNS group and port the stand-in uses.
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_PORT: u16 = 5353;
/// The start of simulated time, as a wall clock: 2026-01-01T00:00:00Z.
const EPOCH_SECS: u64 = 1_767_225_600;

/// The machines' names in turmoil: `h0`, `h1`, …
pub fn host_name(h: usize) -> String {
    format!("h{h}")
}

/// Runs the offload scenario: every machine refreshes once, per the schedule.
pub fn offload(params: &Params) -> Result<Report> {
    let mut run = Run::new(params, scheduled(params))?;
    run.until_done(params.window + Duration::from_secs(120))?;
    Ok(run.finish())
}

/// The schedule's refreshes, all of the first version.
pub fn scheduled(params: &Params) -> Vec<Ask> {
    Schedule::new(params)
        .refreshes
        .iter()
        .map(|r| Ask {
            host: r.host,
            at: r.at,
            version: 0,
        })
        .collect()
}

/// A refresh: machine `host` asks for `version` of the file at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The machine.
    pub host: usize,
    /// When.
    pub at: Duration,
    /// Which content ([`model::content`]'s `version`).
    pub version: u64,
}

/// A simulation in progress: the turmoil world, and what its machines report.
pub struct Run<'a> {
    /// The simulation, for scenarios that crash hosts or cut links.
    pub sim: turmoil::Sim<'a>,
    /// What the machines report.
    pub state: Arc<Mutex<State>>,
    /// The number of refreshes that must finish.
    pub expected: usize,
    params: Params,
    _dir: tempfile::TempDir,
}

/// What the machines report, shared by all hosts.
pub struct State {
    /// Finished refreshes, in order.
    pub fetches: Vec<Fetch>,
    /// Full `200` bodies received, by serving machine and hash.
    pub shares: BTreeMap<(usize, Sha256), u32>,
    /// The event trace.
    pub trace: Trace,
    /// Machine index by turmoil address.
    pub by_ip: BTreeMap<IpAddr, usize>,
    /// Refreshes (by index into the plan) that finished, so a restarted machine does not
    /// repeat them.
    pub done: BTreeSet<usize>,
    /// Each machine's daemon while it runs, for scenarios that look inside.
    pub daemons: BTreeMap<usize, Arc<Daemon>>,
    /// The peer each machine's daemon last redirected its client to.
    pub redirected: BTreeMap<usize, usize>,
    /// Discovery queries each machine sent (its daemon looking a hash up on the LAN).
    pub queries: BTreeMap<usize, u64>,
    /// Times each machine's software started.
    pub starts: BTreeMap<usize, u32>,
    /// Times a peer refused a client its daemon had sent there.
    pub peer_refusals: u32,
}

impl State {
    fn record(&mut self, host: usize, what: &str) {
        let at = now();
        if std::env::var_os("PASSIM_SIM_LOG").is_some() {
            eprintln!("{:>12.3} h{host} {what}", at.as_secs_f64());
        }
        self.trace.record(at, host, what);
    }
}

/// One planned refresh.
#[derive(Clone, Debug)]
struct Planned {
    host: usize,
    at: Duration,
    hash: Sha256,
}

impl<'a> Run<'a> {
    /// Builds the LAN for `params`: the CDN, and every machine with its daemon and a client that
    /// makes the refreshes of `asks` that name it.
    pub fn new(params: &Params, asks: Vec<Ask>) -> Result<Self> {
        let schedule = Schedule::new(params);
        let dir = tempfile::tempdir().context("creating the simulation's folder")?;

        // Each version's hash and bytes, hashed once: the clients ask by hash, the CDN serves
        // by it.
        let mut versions: BTreeMap<u64, (Sha256, Bytes)> = BTreeMap::new();
        for version in std::iter::once(0).chain(asks.iter().map(|a| a.version)) {
            versions.entry(version).or_insert_with(|| {
                let bytes = if version == 0 {
                    schedule.content.clone()
                } else {
                    model::content(params.seed, params.item_size, version)
                };
                (model::sha256(&bytes), Bytes::from(bytes))
            });
        }
        let mut plan: Vec<Planned> = asks
            .iter()
            .map(|a| Planned {
                host: a.host,
                at: a.at,
                hash: versions[&a.version].0,
            })
            .collect();
        plan.sort_by_key(|p| (p.at, p.host));
        let plan = Arc::new(plan);

        let mut sim = turmoil::Builder::new()
            .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .rng_seed(params.seed)
            .tick_duration(TICK)
            .min_message_latency(params.net.lan_latency)
            .max_message_latency(params.net.lan_latency)
            .simulation_duration(Duration::from_secs(365 * 24 * 3600))
            .udp_capacity(1 << 16)
            // Only used once a scenario sets a fail rate: a cut link comes back after a few
            // ticks, as a flaky Wi-Fi link does.
            .repair_rate(0.3)
            .tcp_capacity(1 << 12)
            .build();

        let state = Arc::new(Mutex::new(State {
            fetches: Vec::new(),
            shares: BTreeMap::new(),
            trace: Trace::new(),
            by_ip: BTreeMap::new(),
            done: BTreeSet::new(),
            daemons: BTreeMap::new(),
            redirected: BTreeMap::new(),
            queries: BTreeMap::new(),
            starts: BTreeMap::new(),
            peer_refusals: 0,
        }));

        let cdn_files: Arc<BTreeMap<String, Bytes>> = Arc::new(
            versions
                .into_values()
                .map(|(hash, bytes)| (hash.to_string(), bytes))
                .collect(),
        );
        let cdn_dir = dir.path().join("cdn");
        sim.host("cdn", move || cdn(cdn_dir.clone(), cdn_files.clone()));

        for h in 0..params.hosts {
            let host = Host {
                index: h,
                root: dir.path().join(host_name(h)),
                seed: schedule.core_seeds[h],
                liar: schedule.liar[h],
                params: params.clone(),
                plan: plan.clone(),
                state: state.clone(),
            };
            sim.host(host_name(h), move || host.clone().run());
        }
        {
            let mut s = lock(&state);
            for h in 0..params.hosts {
                s.by_ip.insert(sim.lookup(host_name(h)), h);
            }
        }
        for h in 0..params.hosts {
            sim.set_link_latency("cdn", host_name(h), params.net.cdn_latency);
        }
        Ok(Self {
            sim,
            state,
            expected: plan.len(),
            params: params.clone(),
            _dir: dir,
        })
    }

    /// Steps until every planned refresh has finished, failing past `limit` of simulated time:
    /// a client that hangs fails the run.
    pub fn until_done(&mut self, limit: Duration) -> Result<()> {
        let expected = self.expected;
        self.step_until(limit, |s| (s.done.len() >= expected).then_some(()))
            .with_context(|| {
                let s = lock(&self.state);
                format!(
                    "{} of {expected} refreshes unfinished",
                    expected - s.done.len()
                )
            })
    }

    /// Steps until `check` returns something, failing past `limit` of simulated time.
    pub fn step_until<T>(
        &mut self,
        limit: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T> {
        loop {
            if let Some(t) = check(&lock(&self.state)) {
                return Ok(t);
            }
            if self.sim.elapsed() > limit {
                return Err(anyhow!("still waiting after {limit:?} of simulated time"));
            }
            self.step()?;
        }
    }

    /// Steps until `at` of simulated time.
    pub fn run_to(&mut self, at: Duration) -> Result<()> {
        while self.sim.elapsed() < at {
            self.step()?;
        }
        Ok(())
    }

    /// Steps for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) -> Result<()> {
        self.run_to(self.sim.elapsed() + d)
    }

    /// One tick.
    pub fn step(&mut self) -> Result<()> {
        self.sim
            .step()
            .map(|_| ())
            .map_err(|e| anyhow!("simulation failed: {e}"))
    }

    /// The report so far.
    pub fn finish(self) -> Report {
        let mut s = lock(&self.state);
        let trace = std::mem::take(&mut s.trace);
        Report {
            tier: "turmoil",
            hosts: self.params.hosts,
            share_limit: self.params.share_limit,
            fetches: s.fetches.clone(),
            shares: s.shares.clone(),
            trace: trace.finish(),
        }
    }
}

/// One machine: its daemon, its discovery, and its client.
#[derive(Clone)]
struct Host {
    index: usize,
    root: PathBuf,
    seed: u64,
    liar: bool,
    params: Params,
    plan: Arc<Vec<Planned>>,
    state: Arc<Mutex<State>>,
}

impl Host {
    /// The host's software; turmoil runs it again from the start when the host is bounced. The
    /// store lives on in `root`, as a real machine's disk does.
    async fn run(self) -> turmoil::Result {
        let listener =
            turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, model::PORT)).await?;
        let discovery = Arc::new(SimDiscovery::new(self.index, self.state.clone()));
        let options = Options {
            paths: Paths::under(&self.root),
            seed: Some(self.seed),
            clock: Some(Arc::new(clock)),
            discovery: discovery.clone(),
            single_thread: true,
        };
        let running = daemon::start_on(options, vec![SimListener(listener)])
            .await
            .map_err(|e| format!("{e:#}"))?;
        tokio::spawn(discovery.clone().run());
        let daemon = running.daemon.clone();
        {
            let mut s = lock(&self.state);
            s.daemons.insert(self.index, daemon.clone());
            *s.starts.entry(self.index).or_default() += 1;
            s.record(self.index, "started");
        }

        for (i, planned) in self.plan.iter().enumerate() {
            if planned.host != self.index || lock(&self.state).done.contains(&i) {
                continue;
            }
            let now = now();
            if planned.at > now {
                tokio::time::sleep(planned.at - now).await;
            }
            let fetch = self.refresh(&daemon, planned).await;
            let mut s = lock(&self.state);
            s.record(self.index, &format!("done {i} {:?}", fetch.source));
            s.fetches.push(fetch);
            s.done.insert(i);
        }
        // Keep serving; the run ends when every machine's refreshes are done.
        std::future::pending::<()>().await;
        drop(running);
        Ok(())
    }

    /// One refresh, as fwupd does it.
    async fn refresh(&self, daemon: &Daemon, planned: &Planned) -> Fetch {
        let start = now();
        let hash = planned.hash;
        self.record(&format!("refresh {hash}"));
        let mut fetch = Fetch {
            host: self.index,
            start,
            end: start,
            source: None,
            rejected: 0,
            verified: false,
        };

        let local = format!("https://localhost:{}/{BASENAME}?sha256={hash}", model::PORT);
        let answer = get((Ipv4Addr::LOCALHOST, model::PORT).into(), &local, TIMEOUT).await;
        let mut got: Option<(Vec<u8>, Source)> = None;
        match answer {
            Ok(Answer::Body(bytes)) if model::sha256(&bytes) == hash => {
                got = Some((bytes, Source::Local));
            }
            Ok(Answer::Redirect(location)) => {
                self.record(&format!("redirect {location}"));
                got = self.fetch_peer(&location, &hash, &mut fetch).await;
            }
            Ok(other) => self.record(&format!("local {other}")),
            Err(e) => self.record(&format!("local error {e:#}")),
        }
        let (bytes, source) = match got {
            Some(got) => got,
            None => match self.fetch_cdn(&hash).await {
                Some(bytes) => (bytes, Source::Cdn),
                None => {
                    fetch.end = now();
                    return fetch;
                }
            },
        };
        fetch.end = now();
        fetch.verified = model::sha256(&bytes) == hash;
        fetch.source = Some(source);
        self.record(&format!("have {source:?}"));
        if source != Source::Local {
            self.publish(daemon, bytes, &hash).await;
        }
        fetch
    }

    /// Fetches from the peer the daemon named; `None` sends the client to the CDN.
    async fn fetch_peer(
        &self,
        location: &str,
        hash: &Sha256,
        fetch: &mut Fetch,
    ) -> Option<(Vec<u8>, Source)> {
        let uri: hyper::Uri = location.parse().ok()?;
        let ip: IpAddr = uri.host()?.parse().ok()?;
        let port = uri.port_u16().unwrap_or(443);
        let peer = {
            let mut s = lock(&self.state);
            let peer = *s.by_ip.get(&ip)?;
            s.redirected.insert(self.index, peer);
            peer
        };
        let answer = get(
            SocketAddr::new(ip, port),
            location,
            self.params.peer_timeout,
        )
        .await;
        match answer {
            Ok(Answer::Body(bytes)) => {
                *lock(&self.state).shares.entry((peer, *hash)).or_default() += 1;
                if model::sha256(&bytes) == *hash {
                    return Some((bytes, Source::Peer(peer)));
                }
                fetch.rejected += 1;
                self.record(&format!("bad bytes from {peer}"));
            }
            Ok(other) => {
                lock(&self.state).peer_refusals += 1;
                self.record(&format!("peer {peer} {other}"));
            }
            Err(e) => self.record(&format!("peer {peer} error {e:#}")),
        }
        None
    }

    /// Fetches from the CDN, trying again after a failure (a cut link) until it works.
    async fn fetch_cdn(&self, hash: &Sha256) -> Option<Vec<u8>> {
        let addr = SocketAddr::new(turmoil::lookup("cdn"), 443);
        let url = format!("https://cdn/{BASENAME}?v={hash}");
        for attempt in 0..10 {
            match get(addr, &url, TIMEOUT).await {
                Ok(Answer::Body(bytes)) if model::sha256(&bytes) == *hash => {
                    self.record("cdn");
                    return Some(bytes);
                }
                Ok(other) => self.record(&format!("cdn {other}")),
                Err(e) => self.record(&format!("cdn error {e:#}")),
            }
            tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
        }
        None
    }

    /// Publishes verified bytes; a liar then spoils its stored copy in place, so its daemon
    /// serves wrong bytes under the right hash.
    async fn publish(&self, daemon: &Daemon, bytes: Vec<u8>, hash: &Sha256) {
        let attrs = PublishAttrs {
            basename: passim_core::Basename::new(BASENAME).expect("a valid basename"),
            max_age: self.params.max_age,
            share_limit: self.params.share_limit,
            share_count: 0,
            next_reboot: false,
            cmdline: "fwupd".into(),
        };
        let size = bytes.len();
        match daemon.publish(Cursor::new(bytes), attrs).await {
            Ok(_) => self.record("published"),
            Err(e) => {
                self.record(&format!("publish failed {e}"));
                return;
            }
        }
        if self.liar {
            let path = Paths::under(&self.root)
                .default_data_dir()
                .join(format!("{hash}-{BASENAME}"));
            if let Err(e) = spoil(&path, size) {
                self.record(&format!("cannot spoil {e}"));
            }
        }
    }

    fn record(&self, what: &str) {
        lock(&self.state).record(self.index, what);
    }
}

/// How long a client waits for its own daemon or the CDN.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a GET got.
pub(crate) enum Answer {
    Body(Vec<u8>),
    Redirect(String),
    Status(u16),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Body(b) => write!(f, "200 ({} bytes)", b.len()),
            Self::Redirect(l) => write!(f, "302 {l}"),
            Self::Status(s) => write!(f, "{s}"),
        }
    }
}

/// GETs `url` from `addr` over TLS, the whole body within `timeout`.
pub(crate) async fn get(addr: SocketAddr, url: &str, timeout: Duration) -> Result<Answer> {
    let exchange = async {
        let tcp = turmoil::net::TcpStream::connect(addr).await?;
        let response = client::request_over(tcp, "GET", url, &[]).await?;
        read_answer(response).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer within {timeout:?}"))?
}

async fn read_answer(response: hyper::Response<Incoming>) -> Result<Answer> {
    let status = response.status().as_u16();
    if status == 302 {
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("302 without a Location"))?;
        return Ok(Answer::Redirect(location.to_owned()));
    }
    if status != 200 {
        return Ok(Answer::Status(status));
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer::Body(body.to_vec()))
}

/// Overwrites a stored file with different bytes of the same size.
fn spoil(path: &Path, size: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&vec![0x5a; size], 0)
}

/// The CDN: any GET gets the file whose hash is in `?v=` (`by_hash`, keyed by hex), over HTTPS.
async fn cdn(root: PathBuf, by_hash: Arc<BTreeMap<String, Bytes>>) -> turmoil::Result {
    std::fs::create_dir_all(&root)?;
    let (certs, key) = tls::load_or_create(&root.join("key.pem"), &root.join("cert.pem"))
        .map_err(|e| format!("{e:#}"))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(
        tls::server_config(certs, key).map_err(|e| format!("{e:#}"))?,
    );
    let listener = turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 443)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let by_hash = by_hash.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let body = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("v="))
                    .and_then(|v| by_hash.get(v).cloned());
                async move {
                    let mut r = hyper::Response::new(Full::new(body.clone().unwrap_or_default()));
                    if body.is_none() {
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

/// turmoil's TCP listener as the daemon's [`http::Listener`].
struct SimListener(turmoil::net::TcpListener);

impl http::Listener for SimListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The simulated wall clock.
fn clock() -> Timestamp {
    Timestamp::from_micros(EPOCH_SECS * 1_000_000 + now().as_micros() as u64)
}

/// Simulated time since the start.
fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stand-in for mDNS: announcements, goodbyes and queries as single UDP datagrams to the
/// mDNS group, and a table of who holds what built from what is heard.
///
/// `A <name> <port> <hash>` announces a holder (sent when we start sharing a hash, and in answer
/// to a query), `W <name> <hash>` is its goodbye, `Q <hash>` asks holders to announce. A lookup
/// answers from the table, or sends a query and waits for the table to gain a holder.
pub struct SimDiscovery {
    host: usize,
    state: Arc<Mutex<State>>,
    identity: OnceLock<(String, u16)>,
    out: mpsc::UnboundedSender<String>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    shared: Mutex<Table>,
    changed: Notify,
}

#[derive(Default)]
struct Table {
    /// Holders heard of, by hash: name → address.
    holders: BTreeMap<Sha256, BTreeMap<String, SocketAddr>>,
    /// What we advertise.
    ours: BTreeSet<Sha256>,
}

impl SimDiscovery {
    fn new(host: usize, state: Arc<Mutex<State>>) -> Self {
        let (out, rx) = mpsc::unbounded_channel();
        Self {
            host,
            state,
            identity: OnceLock::new(),
            out,
            rx: Mutex::new(Some(rx)),
            shared: Mutex::new(Table::default()),
            changed: Notify::new(),
        }
    }

    /// Sends what the daemon queues and takes in what the LAN says.
    async fn run(self: Arc<Self>) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        let Ok(socket) = turmoil::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, MDNS_PORT)).await
        else {
            return;
        };
        if socket
            .join_multicast_v4(GROUP, Ipv4Addr::UNSPECIFIED)
            .is_err()
        {
            return;
        }
        let mut buf = vec![0; 512];
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    let _ = socket.send_to(msg.as_bytes(), (GROUP, MDNS_PORT)).await;
                }
                got = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = got else { continue };
                    if let Ok(text) = std::str::from_utf8(&buf[..n]) {
                        self.heard(text, from.ip());
                    }
                }
            }
        }
    }

    fn heard(&self, text: &str, from: IpAddr) {
        let Some((name, port)) = self.identity.get() else {
            return;
        };
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["A", who, p, hash] if who != name => {
                let (Ok(p), Ok(hash)) = (p.parse::<u16>(), hash.parse::<Sha256>()) else {
                    return;
                };
                lock(&self.shared)
                    .holders
                    .entry(hash)
                    .or_default()
                    .insert((*who).to_owned(), SocketAddr::new(from, p));
                self.changed.notify_waiters();
            }
            ["W", who, hash] if who != name => {
                let Ok(hash) = hash.parse::<Sha256>() else {
                    return;
                };
                let mut t = lock(&self.shared);
                if let Some(h) = t.holders.get_mut(&hash) {
                    h.remove(*who);
                    if h.is_empty() {
                        t.holders.remove(&hash);
                    }
                }
            }
            ["Q", hash] => {
                let Ok(hash) = hash.parse::<Sha256>() else {
                    return;
                };
                if lock(&self.shared).ours.contains(&hash) {
                    let _ = self.out.send(format!("A {name} {port} {hash}"));
                }
            }
            _ => {}
        }
    }
}

impl Discovery for SimDiscovery {
    fn init(&self, name: &str, port: u16, _config: &Config) {
        let _ = self.identity.set((name.to_owned(), port));
    }

    fn advertise(&self, hash: &Sha256) {
        lock(&self.shared).ours.insert(*hash);
        if let Some((name, port)) = self.identity.get() {
            let _ = self.out.send(format!("A {name} {port} {hash}"));
        }
    }

    fn withdraw(&self, hash: &Sha256) {
        lock(&self.shared).ours.remove(hash);
        if let Some((name, _)) = self.identity.get() {
            let _ = self.out.send(format!("W {name} {hash}"));
        }
    }

    fn lookup<'a>(
        &'a self,
        hash: &'a Sha256,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<Peer>> + Send + 'a>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut asked = false;
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let peers: Vec<Peer> = lock(&self.shared)
                    .holders
                    .get(hash)
                    .map(|h| {
                        h.iter()
                            .map(|(name, addr)| Peer {
                                name: name.clone(),
                                addr: *addr,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !peers.is_empty() {
                    return peers;
                }
                if !asked {
                    asked = true;
                    *lock(&self.state).queries.entry(self.host).or_default() += 1;
                    let _ = self.out.send(format!("Q {hash}"));
                }
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep_until(deadline) => return Vec::new(),
                }
            }
        })
    }
}
