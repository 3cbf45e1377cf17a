//! `passimd` put together: the core behind a lock, and the tasks that feed it inputs and carry
//! out its outputs.
//!
//! Every change to the core goes through [`Daemon::with_core`], which reads the clock, runs the
//! input, and queues the outputs on one channel while still holding the lock. One effects task
//! carries them out in that order, so the disk, the audit log and the advertisement follow the
//! core's own sequence of events.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use passim_core::config::Config;
use passim_core::request::Request;
use passim_core::{
    Basename, Decision, Item, LoadOutcome, NotFound, Origin, Output, Passim, Peer, PublishAttrs,
    PublishError, Settings, Sha256, Status, Timestamp,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit_log::{self, AuditLog};
use crate::paths::Paths;
use crate::rate::RateLimiter;
use crate::store::{self, IngestError, Store};
use crate::{http, static_dirs, tls};

/// The daemon's version, as `DaemonVersion` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A source of wall-clock time; the simulation passes its own.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Finding peers that hold a hash, and telling peers what we hold.
///
/// [`start`] calls [`Discovery::init`] once, when the daemon's name and port are known and
/// before anything is advertised, and [`Running::shutdown`] calls [`Discovery::shutdown`] after
/// the last effect. Advertise and withdraw are called in order from the effects thread and must
/// not block for long.
pub trait Discovery: Send + Sync + 'static {
    /// Who we are: the daemon's `Name`, the HTTPS port, and the configuration in force (for
    /// `IPv6` and `Listen`). The core picks the name from its seed, so it is only known here.
    fn init(&self, _name: &str, _port: u16, _config: &Config) {}

    /// Start advertising `hash`.
    fn advertise(&self, hash: &Sha256);

    /// Stop advertising `hash`.
    fn withdraw(&self, hash: &Sha256);

    /// Peers that hold `hash`, found within `timeout`.
    fn lookup<'a>(
        &'a self,
        hash: &'a Sha256,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<Peer>> + Send + 'a>>;

    /// Withdraw everything and stop: the daemon is exiting. May block briefly (goodbye packets).
    fn shutdown(&self) {}
}

/// No discovery: nothing is advertised and no peer is ever found.
pub struct NoDiscovery;

impl Discovery for NoDiscovery {
    fn advertise(&self, _hash: &Sha256) {}

    fn withdraw(&self, _hash: &Sha256) {}

    fn lookup<'a>(
        &'a self,
        _hash: &'a Sha256,
        _timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<Peer>> + Send + 'a>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// What D-Bus (or a test) hears about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The item set or status changed.
    Changed,
    /// The status changed.
    StatusChanged(Status),
}

/// How to start the daemon.
pub struct Options {
    /// Where its files are.
    pub paths: Paths,
    /// Seed for the core's random choices; random when `None`.
    pub seed: Option<u64>,
    /// The wall clock; the system's when `None`.
    pub clock: Option<Clock>,
    /// How peers are found and told.
    pub discovery: Arc<dyn Discovery>,
    /// Run blocking file work and the effects on the caller's runtime thread, instead of the
    /// blocking pool and a thread of their own.
    ///
    /// For the turmoil simulation: its virtual clock advances whenever a host's tasks are idle,
    /// so work on another thread would finish at a different virtual time from run to run. Files
    /// over 64 KiB are still read through tokio's blocking pool when served.
    pub single_thread: bool,
}

impl Options {
    /// System paths relocated by the environment, no discovery.
    pub fn new(paths: Paths) -> Self {
        Self {
            paths,
            seed: None,
            clock: None,
            discovery: Arc::new(NoDiscovery),
            single_thread: false,
        }
    }
}

/// Why a publish failed.
#[derive(Debug)]
pub enum PublishFailure {
    /// The core refused it.
    Refused(PublishError),
    /// Reading the data or storing it failed.
    Io(anyhow::Error),
}

impl std::fmt::Display for PublishFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(e) => e.fmt(f),
            Self::Io(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for PublishFailure {}

/// The running daemon's shared state.
pub struct Daemon {
    core: Mutex<Passim>,
    effects: mpsc::UnboundedSender<Effect>,
    timer: Notify,
    rescan: Notify,
    events: broadcast::Sender<Event>,
    store: Arc<Store>,
    paths: Paths,
    config: Config,
    discovery: Arc<dyn Discovery>,
    limiter: Option<Arc<RateLimiter>>,
    clock: Clock,
    port: u16,
    single_thread: bool,
}

/// A started daemon: its state, its listening addresses, and the handle to stop it.
pub struct Running {
    /// The shared state.
    pub daemon: Arc<Daemon>,
    /// Where it listens.
    pub local_addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    effects: Effects,
}

/// Where the effects are carried out.
enum Effects {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl Running {
    /// Stops accepting, lets in-flight transfers finish (for a bounded time), and waits until
    /// every task has ended and every queued effect is carried out.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Only now can no more outputs arrive: the last shares' audit lines are written
        // before the effects thread stops.
        let _ = self.daemon.effects.send(Effect::Stop);
        let single = self.daemon.single_thread;
        match self.effects {
            Effects::Thread(thread) => {
                let _ = blocking(single, move || thread.join()).await;
            }
            Effects::Task(task) => {
                let _ = task.await;
            }
        }
        let discovery = self.daemon.discovery.clone();
        let _ = blocking(single, move || discovery.shutdown()).await;
    }

    /// A token that is cancelled when the daemon stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Reads the configuration, loads the items, binds the listeners and starts every task.
pub async fn start(options: Options) -> Result<Running> {
    let config = read_config(&options.paths)?;
    let listeners = bind(&config).await?;
    start_with(options, config, listeners).await
}

/// Like [`start`], serving on listeners the caller made (the simulation's).
pub async fn start_on<L: http::Listener>(options: Options, listeners: Vec<L>) -> Result<Running> {
    let config = read_config(&options.paths)?;
    start_with(options, config, listeners).await
}

async fn start_with<L: http::Listener>(
    options: Options,
    config: Config,
    listeners: Vec<L>,
) -> Result<Running> {
    let paths = options.paths;
    let single_thread = options.single_thread;
    let clock = options.clock.unwrap_or_else(|| Arc::new(system_now));
    let seed = options.seed.unwrap_or_else(random_seed);

    let data_dir = config
        .path
        .as_ref()
        .map_or_else(|| paths.default_data_dir(), PathBuf::from);
    let store = Arc::new(
        Store::open(&data_dir)
            .with_context(|| format!("opening data dir {}", data_dir.display()))?,
    );
    let (certs, key) = tls::load_or_create(&paths.secret_key(), &paths.cert())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(certs, key)?);
    let audit = AuditLog::open(&paths.audit_log())?;
    let download_saving = audit_log::read_download_saving(&paths.audit_log())?;

    let settings = Settings {
        cooldown_secs: config.cooldown,
        max_item_size: config.max_item_size,
        carbon_cost: config.carbon_cost,
        version: VERSION.to_owned(),
        boot_time: store::boot_time(),
        download_saving,
    };
    let mut core = Passim::new(settings, seed);

    let loaded = {
        let store = store.clone();
        blocking(single_thread, move || store.load())
            .await?
            .with_context(|| format!("reading data dir {}", data_dir.display()))?
    };
    let now = clock();
    let (mut taken, mut expired) = (0usize, 0usize);
    for item in loaded.items {
        match core.handle_load(item, now) {
            LoadOutcome::Loaded => taken += 1,
            LoadOutcome::Expired => expired += 1,
            _ => {}
        }
    }

    let local_addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let port = local_addrs.first().map_or(config.port, SocketAddr::port);
    options.discovery.init(core.name(), port, &config);

    let (effects_tx, effects_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(64);
    let limiter =
        (config.max_upload_rate > 0).then(|| Arc::new(RateLimiter::new(config.max_upload_rate)));
    let connections = Arc::new(Semaphore::new(config.max_connections as usize));
    let daemon = Arc::new(Daemon {
        core: Mutex::new(core),
        effects: effects_tx,
        timer: Notify::new(),
        rescan: Notify::new(),
        events,
        store,
        paths,
        config,
        discovery: options.discovery,
        limiter,
        clock,
        port,
        single_thread,
    });
    // Deletions of expired items found while loading.
    daemon.flush_outputs(&mut daemon.lock());

    tracing::info!(
        name = daemon.lock().name(),
        items = taken,
        expired,
        skipped = loaded.skipped.len(),
        data = %data_dir.display(),
        listen = ?local_addrs,
        "passimd started"
    );

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let effects = {
        let daemon = daemon.clone();
        if single_thread {
            Effects::Task(tokio::spawn(effects_task(daemon, audit, effects_rx)))
        } else {
            Effects::Thread(
                std::thread::Builder::new()
                    .name("passim-effects".into())
                    .spawn(move || effects_thread(&daemon, audit, effects_rx))
                    .context("starting the effects thread")?,
            )
        }
    };
    tasks.spawn(timer_task(daemon.clone(), shutdown.clone()));
    tasks.spawn(static_task(daemon.clone(), shutdown.clone()));
    for listener in listeners {
        tasks.spawn(http::serve(
            listener,
            acceptor.clone(),
            daemon.clone(),
            connections.clone(),
            shutdown.clone(),
        ));
    }
    Ok(Running {
        daemon,
        local_addrs,
        shutdown,
        tasks,
        effects,
    })
}

impl Daemon {
    /// Runs one input on the core at the current time, then queues its outputs.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Passim, Timestamp) -> R) -> R {
        let mut core = self.lock();
        let now = (self.clock)();
        let r = f(&mut core, now);
        self.flush_outputs(&mut core);
        r
    }

    fn lock(&self) -> MutexGuard<'_, Passim> {
        // A panic while holding the lock cannot leave the core half-updated in a way that
        // matters more than stopping the daemon would; carry on with its state.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush_outputs(&self, core: &mut Passim) {
        while let Some(output) = core.poll_output() {
            // The receiver lives as long as the daemon; after shutdown there is nothing to do.
            let _ = self.effects.send(Effect::Output(output));
        }
        self.timer.notify_one();
    }

    /// Decides a request and, when the answer is to serve a file, opens it before the lock is
    /// released: the same decision may have queued the file's deletion (the share that
    /// reaches the limit), which must not win the race against the open.
    pub fn decide(
        &self,
        request: &Request,
        from: IpAddr,
    ) -> (Decision, Option<io::Result<(std::fs::File, u64)>>) {
        let mut core = self.lock();
        let now = (self.clock)();
        let decision = core.handle_request(request, from, now);
        let opened = match &decision {
            Decision::Serve(serve) => Some(store::open_item(&self.item_path(
                &serve.origin,
                &serve.hash,
                &serve.basename,
            ))),
            _ => None,
        };
        self.flush_outputs(&mut core);
        (decision, opened)
    }

    fn item_path(&self, origin: &Origin, hash: &Sha256, basename: &Basename) -> PathBuf {
        match origin {
            Origin::Published => self.store.item_path(hash, basename),
            Origin::Static { path } => path.clone(),
        }
    }

    /// Looks `hash` up on the LAN, bounded by `LookupTimeout`.
    pub async fn lookup(&self, hash: &Sha256) -> Vec<Peer> {
        let bound = Duration::from_millis(u64::from(self.config.lookup_timeout_ms));
        // The bound holds even if a discovery implementation ignores its timeout.
        tokio::time::timeout(
            bound + Duration::from_millis(50),
            self.discovery.lookup(hash, bound),
        )
        .await
        .unwrap_or_default()
    }

    /// Finishes a lookup: redirect or 404.
    pub fn lookup_result(&self, hash: &Sha256, basename: &str, peers: &[Peer]) -> Decision {
        self.with_core(|core, _| core.handle_lookup_result(hash, basename, peers))
    }

    /// Publishes what `reader` yields. The data is streamed to a temporary file while it is
    /// hashed, so at most `MaxItemSize` + one buffer is read and nothing is held in memory.
    pub async fn publish<R>(&self, reader: R, attrs: PublishAttrs) -> Result<Item, PublishFailure>
    where
        R: Read + Send + 'static,
    {
        let attrs = attrs.validated().map_err(PublishFailure::Refused)?;
        let store = self.store.clone();
        let max = self.config.max_item_size;
        let pending = blocking(self.single_thread, move || store.ingest(reader, max))
            .await
            .map_err(|e| PublishFailure::Io(e.into()))?
            .map_err(|e| match e {
                IngestError::TooLarge { .. } => {
                    PublishFailure::Refused(PublishError::TooLarge { limit: max })
                }
                IngestError::Io(e) => {
                    PublishFailure::Io(anyhow::Error::new(e).context("reading the file"))
                }
                IngestError::Store(e) => PublishFailure::Io(
                    anyhow::Error::new(e).context("storing the file in the data directory"),
                ),
            })?;

        let item = self
            .with_core(|core, now| core.begin_publish(attrs, pending.hash(), pending.size(), now))
            .map_err(PublishFailure::Refused)?;

        let store = self.store.clone();
        let stored = item.clone();
        let committed = blocking(self.single_thread, move || store.commit(pending, &stored)).await;
        match committed {
            Ok(Ok(path)) => {
                tracing::info!(
                    hash = %item.hash,
                    basename = %item.basename,
                    size = item.size,
                    path = %path.display(),
                    "published"
                );
                self.with_core(|core, now| core.finish_publish(item.clone(), now));
                self.settle().await;
                Ok(item)
            }
            Ok(Err(e)) => {
                self.with_core(|core, _| core.abort_publish(&item.hash));
                Err(PublishFailure::Io(
                    anyhow::Error::new(e).context("storing the file"),
                ))
            }
            Err(e) => {
                self.with_core(|core, _| core.abort_publish(&item.hash));
                Err(PublishFailure::Io(e.into()))
            }
        }
    }

    /// Removes an item.
    ///
    /// Returns once the file is deleted and the deletion logged, so a crash after the reply
    /// cannot bring the item back.
    pub async fn unpublish(&self, hash: &Sha256) -> Result<(), NotFound> {
        self.with_core(|core, now| core.handle_unpublish(hash, now))?;
        self.settle().await;
        Ok(())
    }

    /// Waits until every output queued so far has been carried out.
    pub async fn settle(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.effects.send(Effect::Barrier(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Every item, as of now.
    pub fn items(&self) -> Vec<Item> {
        self.lock().items().cloned().collect()
    }

    /// `Passim-XXXX`.
    pub fn name(&self) -> String {
        self.lock().name().to_owned()
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.lock().status()
    }

    /// Bytes served to others, all time.
    pub fn download_saving(&self) -> u64 {
        self.lock().download_saving()
    }

    /// kg CO2e saved.
    pub fn carbon_saving(&self) -> f64 {
        self.lock().carbon_saving()
    }

    /// `https://localhost:PORT/`.
    pub fn uri(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }

    /// The port the HTTPS server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The file locations.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The serving cap, if set.
    pub fn limiter(&self) -> Option<Arc<RateLimiter>> {
        self.limiter.clone()
    }

    /// Changes and status updates from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Rescans the static directories soon (something looked stale).
    pub fn rescan_soon(&self) {
        self.rescan.notify_one();
    }

    /// Sets whether the network is metered.
    pub fn set_metered(&self, metered: bool) {
        self.with_core(|core, now| core.handle_metered(metered, now));
    }
}

/// What the effects thread is sent.
enum Effect {
    /// Carry out a core output.
    Output(Output),
    /// Answer once everything sent before is done.
    Barrier(tokio::sync::oneshot::Sender<()>),
    /// Everything is sent: stop.
    Stop,
}

/// Carries out the core's outputs one at a time, in order.
///
/// Every output is a short blocking call (an unlink, an append, a setxattr, a message to the
/// discovery or D-Bus side), so they run on a thread of their own rather than through a
/// `spawn_blocking` round trip each: one audit line per download must not cost a thread hop.
fn effects_thread(daemon: &Daemon, mut audit: AuditLog, mut rx: mpsc::UnboundedReceiver<Effect>) {
    while let Some(effect) = rx.blocking_recv() {
        if !carry_out(daemon, &mut audit, effect, !rx.is_empty()) {
            return;
        }
    }
}

/// [`effects_thread`] as a task of the runtime, for [`Options::single_thread`].
async fn effects_task(
    daemon: Arc<Daemon>,
    mut audit: AuditLog,
    mut rx: mpsc::UnboundedReceiver<Effect>,
) {
    while let Some(effect) = rx.recv().await {
        if !carry_out(&daemon, &mut audit, effect, !rx.is_empty()) {
            return;
        }
    }
}

/// Carries out one effect; `false` once told to stop. Audit lines wait only while `more` work
/// is queued: a burst of downloads costs one write, a lone download is logged at once.
fn carry_out(daemon: &Daemon, audit: &mut AuditLog, effect: Effect, more: bool) -> bool {
    let flush = |audit: &mut AuditLog| {
        if let Err(e) = audit.flush() {
            tracing::warn!(error = %format!("{e:#}"), "cannot write audit log");
        }
    };
    let output = match effect {
        Effect::Output(output) => output,
        Effect::Barrier(done) => {
            flush(audit);
            let _ = done.send(());
            return true;
        }
        Effect::Stop => {
            flush(audit);
            return false;
        }
    };
    match output {
        Output::RemoveFile { hash, basename } => match daemon.store.remove(&hash, &basename) {
            Ok(()) => tracing::info!(%hash, %basename, "deleted item"),
            Err(e) => tracing::warn!(%hash, error = %e, "cannot delete item"),
        },
        Output::Audit(line) => {
            if let Err(e) = audit.append(&line) {
                tracing::warn!(error = %format!("{e:#}"), "cannot write audit log");
            }
        }
        Output::StoreShareCount {
            hash,
            basename,
            share_count,
        } => {
            if let Err(e) = daemon
                .store
                .store_share_count(&hash, &basename, share_count)
            {
                tracing::warn!(%hash, error = %e, "cannot store share-count");
            }
        }
        Output::Advertise(hash) => {
            tracing::debug!(%hash, "advertising");
            daemon.discovery.advertise(&hash);
        }
        Output::Withdraw(hash) => {
            tracing::debug!(%hash, "withdrawing");
            daemon.discovery.withdraw(&hash);
        }
        Output::Changed => {
            let _ = daemon.events.send(Event::Changed);
        }
        Output::StatusChanged(status) => {
            tracing::info!(status = status.describe(), "status changed");
            let _ = daemon.events.send(Event::StatusChanged(status));
        }
    }
    if !more {
        flush(audit);
    }
    true
}

/// Wakes the core at its deadlines: item expiry and the end of cooldowns.
async fn timer_task(daemon: Arc<Daemon>, shutdown: CancellationToken) {
    // A bound on each sleep, so a wall-clock step (suspend, NTP) is noticed within a minute.
    const MAX_SLEEP: Duration = Duration::from_secs(60);
    loop {
        let next = daemon.lock().poll_timeout();
        let wait = next.map_or(MAX_SLEEP, |(at, _)| {
            let now = (daemon.clock)();
            Duration::from_micros(at.as_micros().saturating_sub(now.as_micros())).min(MAX_SLEEP)
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = daemon.timer.notified() => continue,
            () = tokio::time::sleep(wait) => {}
        }
        daemon.with_core(|core, now| core.handle_timeout(now));
    }
}

/// Keeps the static directories' items current: the first scan ends loading, then a cheap
/// fingerprint of `passim.d` and of the directories is compared twice a second and a change
/// triggers a rescan. Polling costs a few `stat` calls and, unlike inotify, needs no watch
/// on folders that may not exist yet.
async fn static_task(daemon: Arc<Daemon>, shutdown: CancellationToken) {
    const INTERVAL: Duration = Duration::from_millis(500);
    let config_dir = daemon.paths.static_config_dir();
    let mut last: Option<u64> = None;
    let mut first = true;
    loop {
        let dir = config_dir.clone();
        let scanned = blocking(daemon.single_thread, move || {
            let dirs = static_dirs::read_configs(&dir);
            let print = static_dirs::fingerprint(&dir, &dirs);
            (dirs, print)
        })
        .await;
        if let Ok((dirs, print)) = scanned {
            if last != Some(print) {
                last = Some(print);
                let scan = blocking(daemon.single_thread, move || static_dirs::scan(&dirs)).await;
                if let Ok(scan) = scan {
                    tracing::info!(
                        files = scan.items.len(),
                        hashed = scan.hashed,
                        cached = scan.cached,
                        "scanned static directories"
                    );
                    daemon.with_core(|core, now| core.handle_static_items(scan.items, now));
                }
            }
        }
        if first {
            first = false;
            daemon.with_core(|core, now| core.handle_loaded(now));
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = daemon.rescan.notified() => last = None,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Runs blocking work on the blocking pool, or right here with [`Options::single_thread`].
async fn blocking<T, F>(single_thread: bool, f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if single_thread {
        Ok(f())
    } else {
        tokio::task::spawn_blocking(f).await
    }
}

fn read_config(paths: &Paths) -> Result<Config> {
    let path = paths.config_file();
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no config file, using defaults");
            String::new()
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (config, warnings) = Config::parse(&text);
    for warning in warnings {
        tracing::warn!(path = %path.display(), "{warning}");
    }
    Ok(config)
}

async fn bind(config: &Config) -> Result<Vec<TcpListener>> {
    let addrs: Vec<IpAddr> = if config.listen.is_empty() {
        // `[::]` takes IPv4 too (as mapped addresses), so it is bound alone.
        vec![if config.ipv6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }]
    } else {
        config.listen.clone()
    };
    let mut listeners = Vec::new();
    for ip in addrs {
        let addr = SocketAddr::new(ip, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn system_now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    Timestamp::from_micros(micros)
}

/// A seed from the OS's entropy, via the standard library's randomly keyed hasher: the core's
/// choices need to differ between machines, not to be secret.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(system_now().as_micros());
    h.finish()
}
