//! LAN discovery over mDNS / DNS-SD with mdns-sd: telling peers which items we share, and
//! finding the peers that share a hash.
//!
//! # On the wire
//!
//! The C passim registers one Avahi instance, `Passim-XXXX._cache._tcp.local.`, with one subtype
//! `_<first 60 hex of the hash>._sub._cache._tcp.local.` per shareable item, and looks a hash up
//! by browsing that subtype and resolving whatever instance answers. mdns-sd holds one subtype
//! per registered instance, so we register one instance per item instead,
//! `Passim-XXXX-<first 16 hex of the hash>`, carrying that item's subtype, all on one host name
//! (`passim-xxxx.local.`) and the HTTPS port. A C peer browsing a subtype resolves our instance
//! like any other, and we find its single instance by browsing the same subtype, so neither side
//! depends on how the other groups its records. Withdrawing an item sends that one instance's
//! goodbye. The cost is an SRV and a TXT record per item besides the PTRs: a few dozen bytes.
//!
//! # Finding
//!
//! A browse of `_cache._tcp.local.` runs as long as the daemon, with unsolicited answers
//! accepted so that every announcement heard lands in mdns-sd's cache, and feeds a table of
//! instances: where each serves and which hashes it is known to hold. A peer of our kind has one
//! hash per instance and announces it, so a lookup answers from the table at once. An Avahi peer
//! has many subtypes on one instance and mdns-sd reports one per instance, so a lookup the table
//! cannot answer starts a browse of the hash's subtype and waits, at most `LookupTimeout`, for
//! it to put a holder in the table; mdns-sd answers from its cache when it heard the
//! announcement, and asks the LAN otherwise.
//!
//! That subtype browse is kept for a while after its last lookup instead of being stopped at
//! once: stopping a browse makes mdns-sd drop the cached SRV, TXT and address records of every
//! instance it found, which would leave the next lookup of another subtype of the same Avahi
//! instance to ask the LAN again (and Avahi holds back an answer for up to a second after it
//! last multicast the record). While it runs it also keeps the table current for that hash,
//! withdrawals included. Lookups of one hash share one browse, since mdns-sd keeps one listener
//! per browsed name. A peer whose address and port are our own is never returned.
//!
//! # Confinement
//!
//! IPv4 only unless `IPv6=true`. With `Listen=` naming addresses, mdns-sd is restricted to the
//! interfaces holding them and only those addresses are advertised. mdns-sd joins the mDNS group
//! on every interface as it starts, before it takes the selection (that join's IGMP/MLD report
//! is the one packet outside it); from then on it sends and answers on the selected interfaces
//! only. Tests therefore run it inside network namespaces, and `passimd --no-discovery` does not
//! start it at all.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use passim_core::config::Config;
use passim_core::{Peer, Sha256};
use tokio::sync::Notify;

use crate::daemon::Discovery;

/// The DNS-SD service type every passim advertises under.
pub const SERVICE_TYPE: &str = "_cache._tcp.local.";

/// Hex digits of the hash in an instance name: unique among one daemon's items in practice
/// (a clash needs two shared files agreeing on 64 bits), and short enough that
/// `Passim-XXXX-` plus the tag stays far below the 63-byte label limit.
const INSTANCE_TAG_LEN: usize = 16;

/// How long a shutdown waits for mdns-sd to send the goodbyes and stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// mdns-sd repeats each goodbye 120 ms after the first; waiting a little longer lets it out.
const GOODBYE_RESEND: Duration = Duration::from_millis(150);

/// How long a subtype browse outlives the last lookup of its hash. mdns-sd re-asks at 1, 2, 4…
/// seconds, so an idle browse costs about eight small queries before it is stopped.
const BROWSE_IDLE: Duration = Duration::from_secs(300);

/// The most subtype browses kept at once; beyond it the least recently used is stopped.
const MAX_BROWSES: usize = 64;

/// The name of the subtype that advertises `prefix` (the first 60 hex digits of a hash).
pub fn subtype_domain(prefix: &str) -> String {
    format!("_{prefix}._sub.{SERVICE_TYPE}")
}

/// Discovery over mDNS with mdns-sd. Inert until [`Discovery::init`] starts it.
///
/// Creating the mdns-sd daemon multicasts at once, so nothing happens before `init`: a test or
/// a daemon run with `--no-discovery` never sends a packet.
#[derive(Default)]
pub struct MdnsDiscovery {
    active: OnceLock<Active>,
}

impl MdnsDiscovery {
    /// Discovery that starts when the daemon calls `init`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Discovery for MdnsDiscovery {
    fn init(&self, name: &str, port: u16, config: &Config) {
        match Active::start(name, port, config) {
            Ok(active) => {
                tracing::info!(
                    name,
                    port,
                    ipv6 = config.ipv6,
                    listen = ?config.listen,
                    "mDNS discovery started"
                );
                let _ = self.active.set(active);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "mDNS is not available: serving without LAN discovery"
            ),
        }
    }

    fn advertise(&self, hash: &Sha256) {
        if let Some(active) = self.active.get() {
            active.send(Op::Advertise(*hash));
        }
    }

    fn withdraw(&self, hash: &Sha256) {
        if let Some(active) = self.active.get() {
            active.send(Op::Withdraw(*hash));
        }
    }

    fn lookup<'a>(
        &'a self,
        hash: &'a Sha256,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<Peer>> + Send + 'a>> {
        Box::pin(async move {
            match self.active.get() {
                Some(active) => active.lookup(hash, timeout).await,
                None => Vec::new(),
            }
        })
    }

    fn shutdown(&self) {
        if let Some(active) = self.active.get() {
            active.shutdown();
        }
    }
}

/// The running mdns-sd daemon and what drives it.
struct Active {
    mdns: ServiceDaemon,
    shared: Arc<Shared>,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// What the registration worker is asked to do, in order.
enum Op {
    Advertise(Sha256),
    Withdraw(Sha256),
}

/// What the browsing threads and the lookups share.
struct Shared {
    /// Our port, to recognise ourselves among the peers.
    port: u16,
    /// Whether IPv6 addresses of peers may be used.
    ipv6: bool,
    peers: Mutex<PeerTable>,
    /// Woken on every change of the table.
    changed: Notify,
    /// The subtype browses running, by hash prefix.
    browses: Mutex<Browses>,
}

/// Subtype browses, each with its generation (so that a stopped browse's task cannot remove its
/// successor) and the time of its last lookup.
#[derive(Default)]
struct Browses {
    running: HashMap<String, (u64, tokio::time::Instant)>,
    generation: u64,
}

/// Who we are on the wire.
struct Identity {
    name: String,
    host: String,
    port: u16,
    /// The addresses to advertise; empty means every address of the selected interfaces,
    /// updated by mdns-sd as they change.
    addresses: Vec<IpAddr>,
}

impl Active {
    fn start(name: &str, port: u16, config: &Config) -> Result<Self, mdns_sd::Error> {
        let mdns = ServiceDaemon::new()?;
        Self::set_up(mdns.clone(), name, port, config).inspect_err(|_| {
            // Half set up is not kept: it would multicast for nothing.
            let _ = mdns.shutdown();
        })
    }

    fn set_up(
        mdns: ServiceDaemon,
        name: &str,
        port: u16,
        config: &Config,
    ) -> Result<Self, mdns_sd::Error> {
        let selection = Selection::from_config(config);
        // The selection is queued before anything that sends, and mdns-sd runs its commands in
        // order, so no query or announcement goes out on an interface outside it.
        selection.apply(&mdns)?;
        mdns.accept_unsolicited(true)?;
        let shared = Arc::new(Shared {
            port,
            ipv6: config.ipv6,
            peers: Mutex::new(PeerTable::default()),
            changed: Notify::new(),
            browses: Mutex::new(Browses::default()),
        });
        let usable = Arc::new(AtomicBool::new(selection.report_interfaces(true)));

        let monitor = mdns.monitor()?;
        spawn_thread("passim-mdns-monitor", move || {
            monitor_thread(&monitor, &selection, &usable);
        });
        let browse = mdns.browse(SERVICE_TYPE)?;
        {
            let shared = shared.clone();
            spawn_thread("passim-mdns-browse", move || {
                while let Ok(event) = browse.recv() {
                    shared.apply(Source::Type, event);
                }
            });
        }

        let identity = Identity {
            name: name.to_owned(),
            host: format!("{}.local.", name.to_ascii_lowercase()),
            port,
            addresses: Selection::from_config(config).advertised(),
        };
        let (ops, rx) = mpsc::channel();
        let worker = {
            let mdns = mdns.clone();
            spawn_thread("passim-mdns-register", move || {
                register_thread(&mdns, &identity, &rx);
            })
        };
        Ok(Self {
            mdns,
            shared,
            ops: Mutex::new(Some(ops)),
            worker: Mutex::new(worker),
        })
    }

    fn send(&self, op: Op) {
        if let Some(ops) = lock(&self.ops).as_ref() {
            let _ = ops.send(op);
        }
    }

    /// Peers holding `hash`: from the table at once if it knows any, else those a browse of the
    /// hash's subtype finds within `timeout`.
    async fn lookup(&self, hash: &Sha256, timeout: Duration) -> Vec<Peer> {
        let prefix = hash.prefix_hex();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the table is read, so a change in between still wakes us.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let peers = lock(&self.shared.peers).holders(&prefix);
            if !peers.is_empty() {
                return peers;
            }
            if tokio::time::Instant::now() >= deadline {
                return Vec::new();
            }
            // mdns-sd's command queue may be full for a moment: try again soon.
            let retry = if self.browse(&prefix) {
                deadline
            } else {
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(10))
            };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(retry) => {}
            }
        }
    }

    /// Makes sure `prefix`'s subtype is being browsed, and marks it used now. Returns false if
    /// mdns-sd could not take the command.
    fn browse(&self, prefix: &str) -> bool {
        let now = tokio::time::Instant::now();
        let mut browses = lock(&self.shared.browses);
        if let Some((_, used)) = browses.running.get_mut(prefix) {
            *used = now;
            return true;
        }
        if browses.running.len() >= MAX_BROWSES {
            let oldest = browses
                .running
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(prefix, _)| prefix.clone());
            if let Some(oldest) = oldest {
                browses.running.remove(&oldest);
                // Its task ends when mdns-sd closes the channel.
                let _ = self.mdns.stop_browse(&subtype_domain(&oldest));
            }
        }
        let events = match self.mdns.browse(&subtype_domain(prefix)) {
            Ok(events) => events,
            Err(mdns_sd::Error::Again) => return false,
            Err(e) => {
                // Nothing better will come of trying again within this lookup.
                tracing::debug!(hash = %prefix, error = %e, "cannot browse the subtype");
                return true;
            }
        };
        browses.generation += 1;
        let generation = browses.generation;
        browses.running.insert(prefix.to_owned(), (generation, now));
        tracing::debug!(hash = %prefix, "browsing the subtype");
        tokio::spawn(follow_subtype(
            self.mdns.clone(),
            self.shared.clone(),
            prefix.to_owned(),
            generation,
            events,
        ));
        true
    }

    /// Withdraws every item and stops mdns-sd, waiting briefly for the goodbyes to go out.
    fn shutdown(&self) {
        // Closing the channel ends the worker once it has done everything queued before.
        drop(lock(&self.ops).take());
        if let Some(worker) = lock(&self.worker).take() {
            let _ = worker.join();
        }
        match self.mdns.shutdown() {
            Ok(done) => {
                let _ = done.recv_timeout(SHUTDOWN_WAIT);
            }
            Err(e) => tracing::debug!(error = %e, "stopping mdns-sd"),
        }
        tracing::info!("mDNS discovery stopped");
    }
}

/// Registers and unregisters our instances, one operation at a time and in order, so the
/// effects thread never waits on mdns-sd's bounded command queue.
fn register_thread(mdns: &ServiceDaemon, me: &Identity, ops: &mpsc::Receiver<Op>) {
    let mut registered: HashMap<Sha256, String> = HashMap::new();
    while let Ok(op) = ops.recv() {
        match op {
            Op::Advertise(hash) => {
                if registered.contains_key(&hash) {
                    continue;
                }
                let info = match service_info(me, &hash) {
                    Ok(info) => info,
                    Err(e) => {
                        tracing::warn!(%hash, error = %e, "cannot describe the mDNS instance");
                        continue;
                    }
                };
                let fullname = info.get_fullname().to_owned();
                match retry(|| mdns.register(info.clone())) {
                    Ok(()) => {
                        tracing::debug!(%hash, instance = %fullname, "mDNS instance registered");
                        registered.insert(hash, fullname);
                    }
                    Err(e) => tracing::warn!(%hash, error = %e, "cannot advertise over mDNS"),
                }
            }
            Op::Withdraw(hash) => {
                if let Some(fullname) = registered.remove(&hash) {
                    match retry(|| mdns.unregister(&fullname)) {
                        Ok(_) => {
                            tracing::debug!(%hash, instance = %fullname, "mDNS instance withdrawn")
                        }
                        Err(e) => tracing::warn!(%hash, error = %e, "cannot withdraw over mDNS"),
                    }
                }
            }
        }
    }

    // The daemon is stopping: say goodbye for everything still advertised.
    let pending: Vec<_> = registered
        .values()
        .filter_map(|fullname| retry(|| mdns.unregister(fullname)).ok())
        .collect();
    let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
    for done in pending {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = done.recv_timeout(left);
    }
    if !registered.is_empty() {
        std::thread::sleep(GOODBYE_RESEND);
    }
}

/// The instance that advertises `hash`.
fn service_info(me: &Identity, hash: &Sha256) -> Result<ServiceInfo, mdns_sd::Error> {
    let hex = hash.to_hex();
    let instance = format!("{}-{}", me.name, &hex[..INSTANCE_TAG_LEN]);
    let info = ServiceInfo::new(
        &subtype_domain(&hash.prefix_hex()),
        &instance,
        &me.host,
        me.addresses.as_slice(),
        me.port,
        None::<HashMap<String, String>>,
    )?;
    Ok(if me.addresses.is_empty() {
        info.enable_addr_auto()
    } else {
        info
    })
}

/// Calls `f` again while mdns-sd's command queue is full, for up to about half a second.
fn retry<T>(mut f: impl FnMut() -> Result<T, mdns_sd::Error>) -> Result<T, mdns_sd::Error> {
    for _ in 0..50 {
        match f() {
            Err(mdns_sd::Error::Again) => std::thread::sleep(Duration::from_millis(10)),
            other => return other,
        }
    }
    f()
}

/// Logs what mdns-sd reports: its first error as a warning, interfaces as they come and go.
fn monitor_thread(
    events: &mdns_sd::Receiver<DaemonEvent>,
    selection: &Selection,
    usable: &AtomicBool,
) {
    let mut warned = false;
    while let Ok(event) = events.recv() {
        match event {
            DaemonEvent::Error(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "mDNS error (further ones are logged at debug level)");
            }
            DaemonEvent::Error(e) => tracing::debug!(error = %e, "mDNS error"),
            DaemonEvent::IpAdd(ip) => {
                tracing::debug!(%ip, "mDNS: address added");
                if !usable.load(Ordering::Relaxed) && selection.report_interfaces(false) {
                    usable.store(true, Ordering::Relaxed);
                }
            }
            DaemonEvent::IpDel(ip) => tracing::debug!(%ip, "mDNS: address removed"),
            DaemonEvent::NameChange(change) => tracing::info!(
                from = %change.original,
                to = %change.new_name,
                "mDNS name conflict: renamed"
            ),
            _ => {}
        }
    }
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    match std::thread::Builder::new().name(name.to_owned()).spawn(f) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(thread = name, error = %e, "cannot start an mDNS thread");
            None
        }
    }
}

/// Which interfaces and addresses mDNS may use, from `IPv6` and `Listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selection {
    ipv6: bool,
    /// The listed addresses of an allowed family, or `None` for every interface.
    listen: Option<Vec<IpAddr>>,
}

impl Selection {
    fn from_config(config: &Config) -> Self {
        let ipv6 = config.ipv6;
        // An unspecified address binds every address (`[::]` takes IPv4 too), so it restricts
        // nothing; neither does an empty list.
        let listen = (!config.listen.is_empty()
            && !config.listen.iter().any(IpAddr::is_unspecified))
        .then(|| {
            config
                .listen
                .iter()
                .copied()
                .filter(|ip| ip.is_ipv4() || ipv6)
                .collect()
        });
        Self { ipv6, listen }
    }

    /// What our instances advertise; empty lets mdns-sd use every address of the selected
    /// interfaces, following them as they change.
    fn advertised(&self) -> Vec<IpAddr> {
        self.listen.clone().unwrap_or_default()
    }

    fn apply(&self, mdns: &ServiceDaemon) -> Result<(), mdns_sd::Error> {
        if let Some(listen) = &self.listen {
            mdns.disable_interface(IfKind::All)?;
            if !listen.is_empty() {
                let kinds: Vec<IfKind> = listen.iter().map(|ip| IfKind::Addr(*ip)).collect();
                mdns.enable_interface(kinds)?;
            }
        }
        // Last, so that it wins over an IPv6 address in `Listen` (only there when IPv6=true).
        if !self.ipv6 {
            mdns.disable_interface(IfKind::IPv6)?;
        }
        Ok(())
    }

    /// Whether an interface that is up and multicast-capable carries an address we may use.
    fn allows(&self, ip: IpAddr) -> bool {
        (ip.is_ipv4() || self.ipv6) && self.listen.as_ref().is_none_or(|l| l.contains(&ip))
    }

    /// Says once whether mDNS has an interface to work on: a warning at start when it has none,
    /// a note when one appears later. Returns whether there is one.
    fn report_interfaces(&self, at_start: bool) -> bool {
        let usable: Vec<String> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.is_oper_up() && is_multicast(&i.name) && self.allows(i.ip()))
            .map(|i| format!("{} ({})", i.name, i.ip()))
            .collect();
        if usable.is_empty() {
            if at_start {
                tracing::warn!(
                    ipv6 = self.ipv6,
                    listen = ?self.listen,
                    "no multicast-capable interface for mDNS: still serving, but peers cannot \
                     find this machine and lookups will find nobody until one comes up"
                );
            }
            false
        } else {
            if at_start {
                tracing::debug!(interfaces = ?usable, "mDNS interfaces");
            } else {
                tracing::info!(interfaces = ?usable, "mDNS has a multicast interface now");
            }
            true
        }
    }
}

/// Whether the kernel marks interface `name` multicast-capable (`IFF_MULTICAST`); unknown
/// counts as yes, so a failed query never silences discovery. Asked with `SIOCGIFFLAGS` rather
/// than read from `/sys/class/net`, which shows the namespace that mounted it, not ours.
fn is_multicast(name: &str) -> bool {
    interface_flags(name).is_none_or(|flags| flags & libc::IFF_MULTICAST != 0)
}

fn interface_flags(name: &str) -> Option<libc::c_int> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    let name = name.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return None;
    }
    // SAFETY: a plain socket() call; the descriptor is owned (and closed) by `sock`.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data for which all zeroes is valid; the name fits with its NUL
    // (checked above); SIOCGIFFLAGS only writes the flags into the union.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return None;
        }
        Some(libc::c_int::from(req.ifr_ifru.ifru_flags))
    }
}

/// Feeds what one subtype browse finds into the table, until it has gone unused for
/// [`BROWSE_IDLE`] (then stops it) or is stopped for another.
async fn follow_subtype(
    mdns: ServiceDaemon,
    shared: Arc<Shared>,
    prefix: String,
    generation: u64,
    events: mdns_sd::Receiver<ServiceEvent>,
) {
    loop {
        let used = match lock(&shared.browses).running.get(&prefix) {
            Some((g, used)) if *g == generation => *used,
            _ => return,
        };
        tokio::select! {
            event = events.recv_async() => match event {
                Ok(event) => shared.apply(Source::Subtype(&prefix), event),
                Err(_) => return,
            },
            () = tokio::time::sleep_until(used + BROWSE_IDLE) => {
                let mut browses = lock(&shared.browses);
                if browses.running.get(&prefix) == Some(&(generation, used)) {
                    browses.running.remove(&prefix);
                    let _ = mdns.stop_browse(&subtype_domain(&prefix));
                    tracing::debug!(hash = %prefix, "stopped browsing the subtype");
                    return;
                }
            }
        }
    }
}

/// Which browse an event came from.
#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    /// The browse of the service type, running all the time.
    Type,
    /// The browse of one hash's subtype.
    Subtype(&'a str),
}

impl Shared {
    /// Records what one browse event says about the LAN.
    fn apply(&self, source: Source<'_>, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let hash = match source {
                    Source::Subtype(prefix) => Some(prefix.to_owned()),
                    Source::Type => service.sub_ty_domain.as_deref().and_then(subtype_prefix),
                };
                let locals = local_addresses();
                let candidates = service.addresses.iter().map(|ip| ip.to_ip_addr());
                let Some(ip) = choose_address(candidates, self.ipv6, &locals) else {
                    tracing::debug!(
                        instance = %service.fullname,
                        addresses = ?service.addresses,
                        "peer has no usable address"
                    );
                    return;
                };
                let addr = SocketAddr::new(ip, service.port);
                let is_self = service.port == self.port && locals.iter().any(|l| l.ip == ip);
                let peer = Peer {
                    name: daemon_name(instance_label(&service.fullname)).to_owned(),
                    addr,
                };
                tracing::debug!(
                    instance = %service.fullname,
                    %addr,
                    hash = hash.as_deref().unwrap_or("-"),
                    is_self,
                    "peer resolved"
                );
                lock(&self.peers).resolved(&service.fullname, peer, is_self, hash);
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                tracing::debug!(instance = %fullname, ?source, "peer removed");
                let mut peers = lock(&self.peers);
                match source {
                    Source::Type => peers.removed(&fullname),
                    Source::Subtype(prefix) => peers.hash_removed(&fullname, prefix),
                }
            }
            _ => return,
        }
        self.changed.notify_waiters();
    }
}

/// The peers heard on the LAN: instances by full name, and the hashes known under each.
#[derive(Default)]
struct PeerTable {
    instances: HashMap<String, Instance>,
    /// Hash prefix → full names of the instances holding it.
    by_hash: HashMap<String, BTreeSet<String>>,
}

struct Instance {
    peer: Peer,
    /// Its address and port are ours.
    is_self: bool,
    hashes: BTreeSet<String>,
}

impl PeerTable {
    fn resolved(&mut self, fullname: &str, peer: Peer, is_self: bool, hash: Option<String>) {
        let key = fullname.to_ascii_lowercase();
        let instance = self
            .instances
            .entry(key.clone())
            .or_insert_with(|| Instance {
                peer: peer.clone(),
                is_self,
                hashes: BTreeSet::new(),
            });
        instance.peer = peer;
        instance.is_self = is_self;
        if let Some(hash) = hash {
            instance.hashes.insert(hash.clone());
            self.by_hash.entry(hash).or_default().insert(key);
        }
    }

    fn removed(&mut self, fullname: &str) {
        let key = fullname.to_ascii_lowercase();
        if let Some(instance) = self.instances.remove(&key) {
            for hash in instance.hashes {
                self.unlink(&hash, &key);
            }
        }
    }

    fn hash_removed(&mut self, fullname: &str, hash: &str) {
        let key = fullname.to_ascii_lowercase();
        if let Some(instance) = self.instances.get_mut(&key) {
            instance.hashes.remove(hash);
        }
        self.unlink(hash, &key);
    }

    fn unlink(&mut self, hash: &str, key: &str) {
        if let Some(holders) = self.by_hash.get_mut(hash) {
            holders.remove(key);
            if holders.is_empty() {
                self.by_hash.remove(hash);
            }
        }
    }

    /// Every other machine known to hold `hash`, one entry per address (a C peer and its
    /// instance per item on the same address count once).
    fn holders(&self, hash: &str) -> Vec<Peer> {
        let Some(keys) = self.by_hash.get(hash) else {
            return Vec::new();
        };
        let mut peers: Vec<Peer> = keys
            .iter()
            .filter_map(|key| self.instances.get(key))
            .filter(|i| !i.is_self)
            .map(|i| i.peer.clone())
            .collect();
        peers.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
        peers.dedup_by(|a, b| a.addr == b.addr);
        peers
    }
}

/// The first 60 hex digits of a hash from its subtype's name, lower-cased.
fn subtype_prefix(subtype: &str) -> Option<String> {
    let label = subtype.strip_prefix('_')?.split_once("._sub.")?.0;
    (label.len() == 60 && label.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| label.to_ascii_lowercase())
}

/// The instance label of a full name such as `Passim-1A2B-0123456789abcdef._cache._tcp.local.`.
fn instance_label(fullname: &str) -> &str {
    let lower = fullname.to_ascii_lowercase();
    match lower.find(&format!(".{SERVICE_TYPE}")) {
        Some(at) => &fullname[..at],
        None => fullname,
    }
}

/// The daemon's `Name` from one of its instance labels: our per-item tag and a rename after a
/// name conflict (` (2)`) are dropped, so that the core recognises its own instances; a C
/// peer's label is its name already.
fn daemon_name(label: &str) -> &str {
    let base = match label.rsplit_once(" (") {
        Some((base, n))
            if n.len() > 1
                && n.ends_with(')')
                && n[..n.len() - 1].bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => label,
    };
    match base.rsplit_once('-') {
        Some((name, tag))
            if tag.len() == INSTANCE_TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            name
        }
        _ => base,
    }
}

/// One address of this machine.
#[derive(Debug, Clone)]
struct LocalAddr {
    ip: IpAddr,
    netmask: IpAddr,
}

fn local_addresses() -> Vec<LocalAddr> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => LocalAddr {
                ip: a.ip.into(),
                netmask: a.netmask.into(),
            },
            if_addrs::IfAddr::V6(a) => LocalAddr {
                ip: a.ip.into(),
                netmask: a.netmask.into(),
            },
        })
        .collect()
}

/// The address to send clients to, among those a peer's host record lists: one on a network
/// this machine is on, else any other routable one, else loopback (a peer on this very host).
/// IPv6 only when enabled, and never link-local: a redirect cannot carry the interface.
fn choose_address(
    candidates: impl Iterator<Item = IpAddr>,
    ipv6: bool,
    locals: &[LocalAddr],
) -> Option<IpAddr> {
    candidates
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
            IpAddr::V6(v6) => {
                ipv6 && !v6.is_unspecified() && !v6.is_multicast() && !v6.is_unicast_link_local()
            }
        })
        .min_by_key(|ip| {
            let on_link = !ip.is_loopback()
                && locals
                    .iter()
                    .any(|l| !l.ip.is_loopback() && same_network(*ip, l.ip, l.netmask));
            (!on_link, ip.is_loopback(), ip.is_ipv6(), *ip)
        })
}

fn same_network(a: IpAddr, b: IpAddr, mask: IpAddr) -> bool {
    match (a, b, mask) {
        (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(m)) => {
            u32::from(a) & u32::from(m) == u32::from(b) & u32::from(m)
        }
        (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(m)) => {
            u128::from(a) & u128::from(m) == u128::from(b) & u128::from(m)
        }
        _ => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded tables stay consistent between statements; a panic elsewhere must not end
    // discovery.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

    fn peer(name: &str, addr: &str) -> Peer {
        Peer {
            name: name.to_owned(),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn names_on_the_wire() {
        assert_eq!(
            subtype_domain(&HEX[..60]),
            format!("_{}._sub._cache._tcp.local.", &HEX[..60])
        );
        assert_eq!(
            subtype_prefix(&subtype_domain(&HEX[..60].to_uppercase())),
            Some(HEX[..60].to_owned())
        );
        assert_eq!(subtype_prefix("_abc._sub._cache._tcp.local."), None);
        assert_eq!(subtype_prefix("_cache._tcp.local."), None);

        assert_eq!(
            instance_label("Passim-1A2B-b94d27b9934d3e08._cache._tcp.local."),
            "Passim-1A2B-b94d27b9934d3e08"
        );
        assert_eq!(
            instance_label("Passim-1A2B._CACHE._tcp.local."),
            "Passim-1A2B"
        );
        assert_eq!(daemon_name("Passim-1A2B-b94d27b9934d3e08"), "Passim-1A2B");
        assert_eq!(
            daemon_name("Passim-1A2B-b94d27b9934d3e08 (2)"),
            "Passim-1A2B"
        );
        assert_eq!(daemon_name("Passim-1A2B"), "Passim-1A2B");
        assert_eq!(daemon_name("Passim-1A2B (3)"), "Passim-1A2B");
        assert_eq!(daemon_name("my (printer)"), "my (printer)");
    }

    #[test]
    fn instance_names_fit_a_label() {
        let me = Identity {
            name: "Passim-1A2B".to_owned(),
            host: "passim-1a2b.local.".to_owned(),
            port: 27500,
            addresses: vec!["10.0.0.1".parse().unwrap()],
        };
        let info = service_info(&me, &HEX.parse().unwrap()).unwrap();
        assert_eq!(
            info.get_fullname(),
            "Passim-1A2B-b94d27b9934d3e08._cache._tcp.local."
        );
        assert_eq!(
            info.get_subtype().as_deref(),
            Some(subtype_domain(&HEX[..60]).as_str())
        );
        assert!(instance_label(info.get_fullname()).len() <= 63);
    }

    #[test]
    fn the_table_follows_instances_and_subtypes() {
        let mut t = PeerTable::default();
        let h = &HEX[..60];
        t.resolved(
            "A-1._cache._tcp.local.",
            peer("A", "10.0.0.1:1"),
            false,
            Some(h.into()),
        );
        t.resolved("B._cache._tcp.local.", peer("B", "10.0.0.2:1"), false, None);
        assert_eq!(t.holders(h), vec![peer("A", "10.0.0.1:1")]);

        // A subtype browse learns that B holds it too; then B withdraws just that subtype.
        t.resolved(
            "B._cache._tcp.local.",
            peer("B", "10.0.0.2:1"),
            false,
            Some(h.into()),
        );
        assert_eq!(t.holders(h).len(), 2);
        t.hash_removed("B._cache._tcp.local.", h);
        assert_eq!(t.holders(h), vec![peer("A", "10.0.0.1:1")]);

        // Our own instance is never a holder; a removed instance takes its hashes with it.
        t.resolved(
            "Me-1._cache._tcp.local.",
            peer("Me", "10.0.0.9:1"),
            true,
            Some(h.into()),
        );
        assert_eq!(t.holders(h), vec![peer("A", "10.0.0.1:1")]);
        t.removed("a-1._CACHE._tcp.local.");
        assert!(t.holders(h).is_empty());
        assert!(!t.by_hash.get(h).unwrap().contains("a-1._cache._tcp.local."));
    }

    #[test]
    fn one_holder_per_address() {
        let mut t = PeerTable::default();
        let h = &HEX[..60];
        t.resolved(
            "C._cache._tcp.local.",
            peer("C", "10.0.0.3:1"),
            false,
            Some(h.into()),
        );
        t.resolved(
            "C-x._cache._tcp.local.",
            peer("C", "10.0.0.3:1"),
            false,
            Some(h.into()),
        );
        assert_eq!(t.holders(h).len(), 1);
    }

    #[test]
    fn addresses_on_our_network_come_first() {
        let locals = vec![
            LocalAddr {
                ip: "127.0.0.1".parse().unwrap(),
                netmask: "255.0.0.0".parse().unwrap(),
            },
            LocalAddr {
                ip: "10.231.0.2".parse().unwrap(),
                netmask: "255.255.255.0".parse().unwrap(),
            },
        ];
        let pick = |addrs: &[&str], ipv6: bool| {
            choose_address(addrs.iter().map(|a| a.parse().unwrap()), ipv6, &locals)
                .map(|ip| ip.to_string())
        };
        assert_eq!(
            pick(&["127.0.0.1", "172.17.0.1", "10.231.0.1"], false).as_deref(),
            Some("10.231.0.1")
        );
        assert_eq!(
            pick(&["127.0.0.1", "172.17.0.1"], false).as_deref(),
            Some("172.17.0.1")
        );
        assert_eq!(pick(&["127.0.0.1"], false).as_deref(), Some("127.0.0.1"));
        assert_eq!(pick(&["fd00::1", "fe80::1"], false), None);
        assert_eq!(pick(&["fe80::1"], true), None);
        assert_eq!(pick(&["fd00::1"], true).as_deref(), Some("fd00::1"));
    }

    #[test]
    fn interface_flags_come_from_our_namespace() {
        let lo = interface_flags("lo").expect("every namespace has lo");
        assert_ne!(lo & libc::IFF_LOOPBACK, 0);
        assert_eq!(interface_flags("no-such-if0"), None);
        assert!(is_multicast("no-such-if0"), "unknown counts as usable");
        assert_eq!(interface_flags("a-name-far-too-long-for-linux"), None);
    }

    #[test]
    fn listen_confines_the_interfaces() {
        let config = |text: &str| Config::parse(&format!("[daemon]\n{text}\n")).0;
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let s = Selection::from_config(&config(""));
        assert_eq!((s.listen, s.ipv6), (None, false));

        let s = Selection::from_config(&config("Listen=127.0.0.1;10.231.0.1;fd00::1"));
        let want = vec![ip("127.0.0.1"), ip("10.231.0.1")];
        assert_eq!(s.listen.as_ref(), Some(&want));
        assert_eq!(s.advertised(), want);
        assert!(s.allows(ip("10.231.0.1")));
        assert!(!s.allows(ip("10.231.0.7")));
        assert!(!s.allows(ip("fd00::1")));

        let s = Selection::from_config(&config("IPv6=true\nListen=fd00::1"));
        assert!(s.allows(ip("fd00::1")));

        let s = Selection::from_config(&config("Listen=0.0.0.0"));
        assert_eq!(s.listen, None, "an unspecified address restricts nothing");
        let s = Selection::from_config(&config("Listen=[::]"));
        assert_eq!(s.listen, None);
        let s = Selection::from_config(&config("Listen=fd00::1"));
        assert_eq!(s.listen, Some(vec![]), "IPv6 is off: no interface at all");
        assert!(!s.allows(ip("10.0.0.1")));
    }
}
