//! The core tier: thousands of machines, each running the real [`passim_core::Passim`], on a
//! modelled LAN.
//!
//! Nothing here opens a socket or reads a clock. A binary heap of `(time, sequence number,
//! event)` holds everything that will happen; the run pops the earliest, jumps the clock to it,
//! feeds the affected core, drains that core's outputs and schedules their consequences. The
//! sequence number breaks ties in the order events were scheduled, and every random choice comes
//! from one `ChaCha8Rng` seeded from [`Params::seed`], so a seed replays a run exactly.
//!
//! # The model
//!
//! Machine `h` has the address `10.0.0.0 + h + 1`, port [`model::PORT`], and a core seeded with
//! `Schedule::core_seeds[h]`. The client is the one described in the crate documentation. Every
//! HTTPS exchange costs the same round trips, with `RTT` twice the one-way latency of its link
//! in [`model::Net`]: TCP connect (1 RTT; [`model::Net::connect_one_ways`] is 1 instead when the
//! tier is compared with turmoil, whose connect takes one trip) and TLS 1.3 (1 RTT), then the
//! request reaches the
//! server half an RTT later, at 2.5 RTT, where its core decides; the answer (a refusal, a
//! redirect, or the first byte of a body) is back at 3 RTT, and the last byte a body's size over
//! the link's bandwidth after that. So:
//!
//! - its own passimd, over loopback (`loopback_latency`): the core decides at 2.5 RTT; a lookup
//!   it asks for runs from then, and the redirect or `404` it ends in is back half an RTT after
//!   the lookup is answered. Loopback has no bandwidth limit.
//! - a peer, over the LAN: a `Serve` decided at 2.5 RTT has its last byte at
//!   3 RTT + size / `lan_bandwidth`; a refusal arrives at 3 RTT. With probability `net.loss` a
//!   transfer is cut at a uniform point of its body. A peer that crashed, or does not answer,
//!   costs [`Params::peer_timeout`] from the redirect. A liar's bytes fail the hash check.
//! - the CDN: 3 RTT of `2 × cdn_latency` + size / `cdn_bandwidth`, always the right bytes.
//!
//! Publishing the verified bytes to its own passimd (D-Bus) takes no time.
//!
//! Discovery is a global table of who holds what, in which an `Advertise` or `Withdraw` from a
//! core lands [`model::Net::lan_latency`] later (one multicast heard by everyone). A lookup with
//! holders in the table is answered at once with all of them, by machine index. On a miss it
//! queries: if any running machine holds the hash half a round trip later, the answer comes back
//! a full round trip after the lookup; otherwise the first holder to appear in the table within
//! [`LOOKUP_TIMEOUT`] answers it, and after that the core gets an empty list (a `404`).
//!
//! Shares are counted at the serving side, for `200` responses whose last byte reached a client
//! that was still listening; the core itself counts a share when it decides to serve.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use passim_core::request::parse_request;
use passim_core::{
    Basename, Decision, Item, Output, Passim, Peer, PublishAttrs, Settings, Sha256, Timestamp,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::model::{self, Fetch, Params, Report, Schedule, Source, Trace};

// ----- Timing: every constant of the model, in one place -----

/// Where simulated time starts on the wall clock the cores see: 2026-01-01T00:00:00Z. Cores
/// measure max-age from it, so it must be a plausible date, and fixed for replays.
pub const EPOCH: Timestamp = Timestamp::from_secs(1_767_225_600);

/// How long a lookup waits for a holder to appear: the shell's `LookupTimeout`.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// One-way latencies (half round trips) from deciding to connect until the server sees the
/// request: TCP connect ([`model::Net::connect_one_ways`], 2 on a real network), the TLS 1.3
/// handshake (2), the request itself (1). The same for a client's own passimd (over loopback),
/// a peer (over the LAN) and the CDN.
fn request_half_rtts(params: &Params) -> u32 {
    params.net.connect_one_ways + 3
}

/// One-way latencies from deciding to connect until the answer (a refusal, a redirect, or the
/// first byte of a body) is back: the request's and the response's one.
fn answer_half_rtts(params: &Params) -> u32 {
    request_half_rtts(params) + 1
}

/// How long a machine that crashes in the churn scenario stays down.
pub const CHURN_DOWNTIME: Duration = Duration::from_secs(20);

/// Machines that crash while serving, and as many that crash while fetching, in the churn
/// scenario.
pub const CHURN_CRASHES: u32 = 3;

/// Times the churn scenario forces a peer's copy to reach its share-limit between the redirect
/// to it and the request reaching it.
pub const CHURN_RACES: u32 = 2;

/// The share of machines cut off from the rest during the churn scenario's partition, which
/// lasts the middle third of the window.
pub const PARTITION_FRACTION: f64 = 0.25;

/// How often the abusive machine repeats its request.
pub const HAMMER_PERIOD: Duration = Duration::from_millis(100);

/// How many cooldown periods the hammering lasts: fewer than the default share-limit of 5, so a
/// cooldown that works never lets it reach the limit.
pub const HAMMER_COOLDOWNS: f64 = 2.5;

/// What every client asks for and publishes under.
pub const BASENAME: &str = "firmware.xml.zst";

/// Time from a refresh to the answer of the client's own passimd, when it needs no lookup.
pub fn local_answer_time(params: &Params) -> Duration {
    params.net.loopback_latency * answer_half_rtts(params)
}

/// Time from a redirect to holding the bytes from a peer that serves at once.
pub fn peer_fetch_time(params: &Params) -> Duration {
    params.net.lan_latency * answer_half_rtts(params)
        + transfer(params.item_size, params.net.lan_bandwidth)
}

/// Time from deciding on the CDN to holding its bytes.
pub fn cdn_fetch_time(params: &Params) -> Duration {
    params.net.cdn_latency * answer_half_rtts(params)
        + transfer(params.item_size, params.net.cdn_bandwidth)
}

/// The longest one attempt at the file can take when nothing crashes: its own passimd with a
/// lookup that waits its full timeout, a peer that ends in its timeout, then the CDN.
pub fn attempt_bound(params: &Params) -> Duration {
    local_answer_time(params)
        + LOOKUP_TIMEOUT
        + params.peer_timeout.max(peer_fetch_time(params))
        + cdn_fetch_time(params)
}

fn transfer(size: usize, bandwidth: u64) -> Duration {
    let nanos = (size as u128) * 1_000_000_000 / u128::from(bandwidth.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

// ----- Reports -----

/// What happened along the way, beyond the fetches themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lookups answered at once from the table.
    pub lookup_hits: u32,
    /// Lookups that had to query the LAN.
    pub lookup_misses: u32,
    /// Lookups that ended in a `404`.
    pub lookup_404s: u32,
    /// Redirects to a peer.
    pub redirects: u32,
    /// Peer requests refused (any status), cooldowns included.
    pub peer_refusals: u32,
    /// Peer requests that reached a peer which no longer held the item it was redirected for.
    pub gone_after_redirect: u32,
    /// Peers that never answered within the peer timeout.
    pub peer_timeouts: u32,
    /// Transfers cut by loss.
    pub cuts: u32,
    /// Connections refused by the partition.
    pub partition_refusals: u32,
    /// Bytes thrown away because they did not match the hash.
    pub rejections: u32,
    /// Files deleted by the cores (expiry or share-limit).
    pub removals: u32,
    /// Machine crashes.
    pub crashes: u32,
    /// Crashes of a machine while it was sending a file.
    pub crashed_serving: u32,
    /// Crashes of a machine while it was fetching.
    pub crashed_fetching: u32,
    /// Fetches started again after their machine came back.
    pub resumed_fetches: u32,
    /// Items whose share count a restarted core had as before the crash.
    pub share_counts_kept: u32,
    /// Items whose share count a restarted core had lost.
    pub share_counts_lost: u32,
    /// Times a rival took a peer's last share between a redirect and its request.
    pub races_forced: u32,
}

/// The churn scenario's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnReport {
    /// The fetches and shares.
    pub report: Report,
    /// Crashes, partition and races as they happened.
    pub counters: Counters,
}

/// The abuse scenario's outcome: one LAN machine hammering an item on machine 0.
#[derive(Clone, Debug, PartialEq)]
pub struct AbuseReport {
    /// How long the hammering lasted.
    pub duration: Duration,
    /// The cooldown machine 0 ran with.
    pub cooldown: Duration,
    /// Requests for the item.
    pub requests: u32,
    /// Of those, served.
    pub served: u32,
    /// Of those, refused with `403`.
    pub refused_403: u32,
    /// Of those, answered otherwise.
    pub other: u32,
    /// The item's share count on machine 0 at the end.
    pub share_count: u32,
    /// The share-limit it was published with.
    pub share_limit: u32,
    /// Whether machine 0 still holds the item at the end.
    pub held: bool,
    /// Files machine 0 deleted.
    pub removals: u32,
    /// Remote requests for the index page and for a hash machine 0 does not hold.
    pub probes: u32,
    /// Of those, refused with `403`.
    pub probes_refused_403: u32,
    /// Decisions to look a hash up that remote requests caused (must be none).
    pub lookups: u32,
    /// The trace hash.
    pub trace: String,
}

/// The expiry scenario's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpiryReport {
    /// Version 1 spreading.
    pub first: Report,
    /// Version 2 spreading once version 1 is gone everywhere (its `trace` is the whole run's).
    pub second: Report,
    /// When version 1 was checked to be gone.
    pub checked_at: Duration,
    /// Cores still holding version 1 then.
    pub holders_after: usize,
    /// Entries for version 1 still in the discovery table or answering queries then.
    pub advertised_after: usize,
    /// Remote requests for version 1 sent to every machine then.
    pub probes: u32,
    /// Of those, served.
    pub probes_served: u32,
    /// Lookups for version 1 made then.
    pub lookups: u32,
    /// Of those, redirected to somebody.
    pub lookups_found: u32,
}

// ----- Scenarios -----

/// Every machine refreshes once, at its time in the schedule; liars per [`Params::liars`].
pub fn offload(params: &Params) -> Report {
    let mut sim = Sim::new(params, 1);
    sim.schedule_refreshes(0, Duration::ZERO);
    sim.run_until_done();
    let mut report = sim.report(0);
    report.trace = sim.take_trace();
    report
}

/// An offload in which [`CHURN_CRASHES`] machines crash while serving and as many while
/// fetching, each coming back [`CHURN_DOWNTIME`] later; [`PARTITION_FRACTION`] of the machines
/// cannot reach the others during the middle third of the window; and [`CHURN_RACES`] times a
/// rival takes a peer's last share between a redirect to it and the request.
pub fn churn(params: &Params) -> ChurnReport {
    let mut sim = Sim::new(params, 1);
    sim.churn = Some(ChurnPlan {
        stride: (params.hosts / 8).max(2),
        server_crashes: CHURN_CRASHES,
        client_crashes: CHURN_CRASHES,
        races: CHURN_RACES,
        serves: 0,
        refreshes: 0,
    });
    let group = (0..params.hosts)
        .map(|_| sim.uniform() < PARTITION_FRACTION)
        .collect();
    sim.partition = Some(Partition {
        from: params.window / 3,
        until: params.window * 2 / 3,
        group,
    });
    sim.schedule_refreshes(0, Duration::ZERO);
    sim.run_until_done();
    let mut report = sim.report(0);
    report.trace = sim.take_trace();
    ChurnReport {
        report,
        counters: sim.counters,
    }
}

/// Machine 1 requests the item machine 0 holds every [`HAMMER_PERIOD`] for
/// [`HAMMER_COOLDOWNS`] cooldowns, and every machine also asks machine 0 for its index page and
/// for a hash it does not hold. Needs two machines or more.
pub fn abuse(params: &Params) -> AbuseReport {
    assert!(params.hosts >= 2, "the abuse scenario needs two machines");
    let mut sim = Sim::new(params, 2);
    let cooldown = Duration::from_secs(u64::from(sim.settings.cooldown_secs));
    let duration = cooldown.mul_f64(HAMMER_COOLDOWNS);
    sim.publish(0, 0);

    let mut at = Duration::ZERO;
    while at < duration {
        sim.push(
            at,
            Event::Hammer {
                from: 1,
                target: HammerTarget::Item,
            },
        );
        at += HAMMER_PERIOD;
    }
    for from in 1..params.hosts {
        let at = duration * (from as u32) / (params.hosts as u32);
        sim.push(
            at,
            Event::Hammer {
                from,
                target: HammerTarget::Index,
            },
        );
        sim.push(
            at,
            Event::Hammer {
                from,
                target: HammerTarget::Unheld,
            },
        );
    }
    sim.run_until(duration);

    let hash = sim.versions[0];
    let item = sim.cores[0].item(&hash);
    AbuseReport {
        duration,
        cooldown,
        requests: sim.hammer.requests,
        served: sim.hammer.served,
        refused_403: sim.hammer.refused_403,
        other: sim.hammer.other,
        share_count: item.map_or(0, |i| i.share_count),
        share_limit: params.share_limit,
        held: item.is_some(),
        removals: sim.counters.removals,
        probes: sim.hammer.probes,
        probes_refused_403: sim.hammer.probes_refused_403,
        lookups: sim.hammer.lookups,
        trace: sim.take_trace(),
    }
}

/// Version 1 spreads as in [`offload`]; once every copy has reached its max-age, every machine
/// is asked for it and a few look it up; then every machine refreshes version 2 at its
/// scheduled offset after that.
pub fn expiry(params: &Params) -> ExpiryReport {
    let mut sim = Sim::new(params, 2);
    sim.schedule_refreshes(0, Duration::ZERO);
    sim.run_until_done();

    // A copy expires at its publication time in whole seconds plus its max-age; a second
    // covers the rounding and one more the goodbye's way across the LAN.
    let last = sim.fetches.iter().map(|(_, f)| f.end).max();
    let checked_at = last.unwrap_or(Duration::ZERO)
        + Duration::from_secs(u64::from(params.max_age))
        + Duration::from_secs(2);
    sim.run_until(checked_at);
    sim.now = checked_at;

    let hash = sim.versions[0];
    let holders_after = sim
        .cores
        .iter()
        .filter(|core| core.item(&hash).is_some())
        .count();
    let advertised_after = sim.table.get(&hash).map_or(0, |h| h.hosts.len())
        + sim.truth.get(&hash).map_or(0, BTreeSet::len);
    let mut probes_served = 0;
    for h in 0..params.hosts {
        let from = ip((h + 1) % params.hosts);
        if let Decision::Serve(_) = sim.remote_request(h, from, 0) {
            probes_served += 1;
        }
    }
    let lookups = params.hosts.min(10);
    for host in 0..lookups {
        sim.push(checked_at, Event::Probe { host, version: 0 });
    }
    sim.run_until_done();

    sim.schedule_refreshes(1, sim.now + Duration::from_secs(1));
    sim.run_until_done();
    let first = sim.report(0);
    let mut second = sim.report(1);
    second.trace = sim.take_trace();
    ExpiryReport {
        first,
        second,
        checked_at,
        holders_after,
        advertised_after,
        probes: params.hosts as u32,
        probes_served,
        lookups: lookups as u32,
        lookups_found: sim.probes_found,
    }
}

// ----- The simulation -----

/// The address of machine `h`.
fn ip(h: usize) -> IpAddr {
    let h = u32::try_from(h).expect("fewer than 2^24 machines");
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + h + 1))
}

/// The machine at `addr`, if it is one.
fn host_of(addr: IpAddr, hosts: usize) -> Option<usize> {
    let IpAddr::V4(v4) = addr else { return None };
    let h = u32::from(v4).checked_sub(0x0a00_0001)? as usize;
    (h < hosts).then_some(h)
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A laptop visiting the LAN in the churn scenario: not one of the machines.
const RIVAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 255, 254));

/// Salt for the simulation's own random stream, so that it differs from the schedule's, which
/// is drawn from the same seed.
const SIM_RNG_SALT: u64 = 0x636f_7265_5f74_6965;

#[derive(Debug)]
enum Event {
    /// A client starts refreshing `version`.
    Refresh { host: usize, version: usize },
    /// A machine looks `version` up and only records the answer.
    Probe { host: usize, version: usize },
    /// A client's request reaches its own passimd.
    LocalRequest { host: usize, attempt: u64 },
    /// Its own passimd's answer reaches a client.
    LocalAnswer {
        host: usize,
        attempt: u64,
        answer: LocalAnswer,
    },
    /// A core's deadline from `poll_timeout`.
    Timer { host: usize, deadline: Timestamp },
    /// An announcement reaches the LAN.
    TableAdd { host: usize, hash: Sha256 },
    /// A goodbye reaches the LAN.
    TableRemove { host: usize, hash: Sha256 },
    /// A lookup's query reaches the LAN.
    QueryArrives { host: usize, attempt: u64 },
    /// Answers to a query are back.
    LookupAnswer {
        host: usize,
        attempt: u64,
        peers: Vec<Peer>,
    },
    /// A lookup gives up.
    LookupTimeout { host: usize, attempt: u64 },
    /// A client's request reaches the peer it was redirected to.
    PeerRequest {
        host: usize,
        peer: usize,
        attempt: u64,
        location: String,
    },
    /// The last byte from a peer arrives.
    PeerDelivered {
        host: usize,
        peer: usize,
        attempt: u64,
        boot: u32,
    },
    /// A transfer from a peer is cut.
    PeerCut { host: usize, attempt: u64 },
    /// A peer's refusal arrives.
    PeerRefused { host: usize, attempt: u64 },
    /// A client gives up on a peer.
    PeerTimeout { host: usize, attempt: u64 },
    /// The last byte from the CDN arrives.
    CdnDone { host: usize, attempt: u64 },
    /// A machine loses power.
    Crash { host: usize },
    /// A machine is back.
    Restart { host: usize },
    /// The visiting laptop's request reaches a peer.
    Rival { peer: usize, version: usize },
    /// The visiting laptop has the whole file.
    RivalDelivered {
        peer: usize,
        boot: u32,
        hash: Sha256,
    },
    /// A remote request to machine 0 in the abuse scenario.
    Hammer { from: usize, target: HammerTarget },
}

/// What a client's own passimd answered.
#[derive(Debug)]
enum LocalAnswer {
    /// `200`: it holds the file.
    Body,
    /// `302` to a peer.
    Redirect { peer: usize, location: String },
    /// A `404` or any other refusal.
    Refused,
}

#[derive(Clone, Copy, Debug)]
enum HammerTarget {
    /// The item machine 0 holds.
    Item,
    /// `/`.
    Index,
    /// A hash machine 0 does not hold.
    Unheld,
}

/// An event and when it happens; the heap pops the smallest `(at, seq)` first.
#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A refresh in progress.
#[derive(Debug)]
struct Want {
    version: usize,
    start: Duration,
    rejected: u32,
    stage: Stage,
    /// Only look up and record the answer; fetch nothing.
    probe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Talking to its own passimd.
    Local,
    Lookup,
    Peer,
    Cdn,
    /// The machine is down; the refresh starts again when it is back.
    Down,
}

/// Who the LAN heard holds one hash, in machine order, with the peers as lookups return them.
#[derive(Debug, Default)]
struct Holders {
    hosts: Vec<usize>,
    peers: Vec<Peer>,
}

struct ChurnPlan {
    stride: usize,
    server_crashes: u32,
    client_crashes: u32,
    races: u32,
    serves: usize,
    refreshes: usize,
}

struct Partition {
    from: Duration,
    until: Duration,
    /// Machines on the small side.
    group: Vec<bool>,
}

#[derive(Default)]
struct HammerCounts {
    requests: u32,
    served: u32,
    refused_403: u32,
    other: u32,
    probes: u32,
    probes_refused_403: u32,
    lookups: u32,
}

struct Sim {
    params: Params,
    schedule: Schedule,
    settings: Settings,
    /// The hash of each version of the file.
    versions: Vec<Sha256>,
    cores: Vec<Passim>,
    /// Each machine as lookups name it. A restarted core keeps its seed and so its name.
    peers: Vec<Peer>,
    up: Vec<bool>,
    /// Incremented at each crash: a transfer from an earlier boot never completes.
    boot: Vec<u32>,
    /// What each machine has committed to its data directory, share counts as last stored.
    disk: Vec<BTreeMap<Sha256, Item>>,
    /// The deadline each core's pending timer event is for.
    timers: Vec<Option<Timestamp>>,
    wants: Vec<Option<Want>>,
    /// Incremented at each step of a client: events of an older step are stale.
    attempts: Vec<u64>,
    /// Discovery as the LAN heard it.
    table: BTreeMap<Sha256, Holders>,
    /// Who advertises what right now among running machines: who would answer a query.
    truth: BTreeMap<Sha256, BTreeSet<usize>>,
    /// Lookups waiting for a holder to appear.
    waiters: BTreeMap<Sha256, Vec<(usize, u64)>>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    now: Duration,
    rng: ChaCha8Rng,
    trace: Trace,
    fetches: Vec<(usize, Fetch)>,
    shares: BTreeMap<(usize, Sha256), u32>,
    counters: Counters,
    /// Refreshes scheduled or in progress.
    busy: usize,
    churn: Option<ChurnPlan>,
    partition: Option<Partition>,
    /// Share counts of each crashed machine's items as its core had them when it went down.
    before_crash: BTreeMap<usize, Vec<(Sha256, u32)>>,
    hammer: HammerCounts,
    probes_found: u32,
}

impl Sim {
    /// Machines booted and running, holding nothing, with `versions` versions of the file.
    fn new(params: &Params, versions: u64) -> Self {
        let schedule = Schedule::new(params);
        let versions = (0..versions)
            .map(|v| {
                if v == 0 {
                    model::sha256(&schedule.content)
                } else {
                    model::sha256(&model::content(params.seed, params.item_size, v))
                }
            })
            .collect();
        let settings = Settings::default();
        let hosts = params.hosts;
        let mut sim = Self {
            params: params.clone(),
            settings,
            versions,
            cores: Vec::with_capacity(hosts),
            peers: Vec::with_capacity(hosts),
            up: vec![true; hosts],
            boot: vec![0; hosts],
            disk: (0..hosts).map(|_| BTreeMap::new()).collect(),
            timers: vec![None; hosts],
            wants: (0..hosts).map(|_| None).collect(),
            attempts: vec![0; hosts],
            table: BTreeMap::new(),
            truth: BTreeMap::new(),
            waiters: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            rng: ChaCha8Rng::seed_from_u64(params.seed ^ SIM_RNG_SALT),
            trace: Trace::new(),
            fetches: Vec::with_capacity(hosts),
            shares: BTreeMap::new(),
            counters: Counters::default(),
            busy: 0,
            churn: None,
            partition: None,
            before_crash: BTreeMap::new(),
            hammer: HammerCounts::default(),
            probes_found: 0,
            schedule,
        };
        for h in 0..hosts {
            let core = sim.boot_core(h);
            sim.peers.push(Peer {
                name: core.name().to_owned(),
                addr: SocketAddr::new(ip(h), model::PORT),
            });
            sim.cores.push(core);
            sim.drain(h);
            sim.rearm(h);
        }
        sim
    }

    /// A core for machine `h` that has loaded what its disk holds and is running.
    fn boot_core(&self, h: usize) -> Passim {
        let mut core = Passim::new(self.settings.clone(), self.schedule.core_seeds[h]);
        let now = self.timestamp();
        for item in self.disk[h].values() {
            let _ = core.handle_load(item.clone(), now);
        }
        core.handle_loaded(now);
        core
    }

    fn schedule_refreshes(&mut self, version: usize, offset: Duration) {
        let refreshes = self.schedule.refreshes.clone();
        for r in refreshes {
            self.push(
                offset + r.at,
                Event::Refresh {
                    host: r.host,
                    version,
                },
            );
        }
    }

    fn push(&mut self, at: Duration, event: Event) {
        if matches!(event, Event::Refresh { .. } | Event::Probe { .. }) {
            self.busy += 1;
        }
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Runs until every refresh has ended; what is left in the queue is never run.
    fn run_until_done(&mut self) {
        while self.busy > 0 {
            let Some(next) = self.queue.pop() else {
                break;
            };
            self.now = next.at;
            self.dispatch(next.event);
        }
        // Nothing left to drive a refresh that has not ended: it failed.
        for h in 0..self.params.hosts {
            if let Some(want) = self.wants[h].take() {
                self.busy -= 1;
                self.trace.record(self.now, h, "failed");
                self.fetches.push((
                    want.version,
                    Fetch {
                        host: h,
                        start: want.start,
                        end: self.now,
                        source: None,
                        rejected: want.rejected,
                        verified: false,
                    },
                ));
            }
        }
    }

    /// Runs every event up to and including `end`.
    fn run_until(&mut self, end: Duration) {
        while self.queue.peek().is_some_and(|next| next.at <= end) {
            let next = self.queue.pop().expect("peeked");
            self.now = next.at;
            self.dispatch(next.event);
        }
    }

    fn timestamp(&self) -> Timestamp {
        let micros = u64::try_from(self.now.as_micros()).unwrap_or(u64::MAX);
        Timestamp::from_micros(EPOCH.as_micros().saturating_add(micros))
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn version_of(&self, hash: &Sha256) -> usize {
        self.versions
            .iter()
            .position(|v| v == hash)
            .unwrap_or(usize::MAX)
    }

    fn record(&mut self, host: usize, what: &str) {
        self.trace.record(self.now, host, what);
    }

    fn take_trace(&mut self) -> String {
        std::mem::take(&mut self.trace).finish()
    }

    fn report(&self, version: usize) -> Report {
        let hash = self.versions[version];
        Report {
            tier: "core",
            hosts: self.params.hosts,
            share_limit: self.params.share_limit,
            fetches: self
                .fetches
                .iter()
                .filter(|(v, _)| *v == version)
                .map(|(_, f)| f.clone())
                .collect(),
            shares: self
                .shares
                .iter()
                .filter(|((_, h), _)| *h == hash)
                .map(|(k, v)| (*k, *v))
                .collect(),
            trace: String::new(),
        }
    }

    // ----- Feeding the cores -----

    /// Carries out what core `h` asked for.
    fn drain(&mut self, h: usize) {
        let lat = self.params.net.lan_latency;
        while let Some(output) = self.cores[h].poll_output() {
            match output {
                Output::Advertise(hash) => {
                    self.truth.entry(hash).or_default().insert(h);
                    self.push(self.now + lat, Event::TableAdd { host: h, hash });
                    let what = format!("advertise v{}", self.version_of(&hash));
                    self.record(h, &what);
                }
                Output::Withdraw(hash) => {
                    if let Some(set) = self.truth.get_mut(&hash) {
                        set.remove(&h);
                    }
                    self.push(self.now + lat, Event::TableRemove { host: h, hash });
                    let what = format!("withdraw v{}", self.version_of(&hash));
                    self.record(h, &what);
                }
                Output::RemoveFile { hash, .. } => {
                    self.disk[h].remove(&hash);
                    self.counters.removals += 1;
                    let what = format!("remove v{}", self.version_of(&hash));
                    self.record(h, &what);
                }
                Output::StoreShareCount {
                    hash, share_count, ..
                } => {
                    if let Some(item) = self.disk[h].get_mut(&hash) {
                        item.share_count = share_count;
                    }
                }
                // The audit log, D-Bus signals and status have no effect on the LAN.
                Output::Audit(_) | Output::Changed | Output::StatusChanged(_) => {}
            }
        }
    }

    /// Schedules core `h`'s next deadline, if it moved.
    fn rearm(&mut self, h: usize) {
        let next = self.cores[h].poll_timeout().map(|(at, _)| at);
        if next == self.timers[h] {
            return;
        }
        self.timers[h] = next;
        if let Some(deadline) = next {
            let after = deadline.as_micros().saturating_sub(EPOCH.as_micros());
            let at = Duration::from_micros(after).max(self.now);
            self.push(at, Event::Timer { host: h, deadline });
        }
    }

    /// Machine `h`'s client publishes `version`, whose bytes it has verified.
    fn publish(&mut self, h: usize, version: usize) {
        let hash = self.versions[version];
        let attrs = PublishAttrs {
            basename: Basename::new(BASENAME).expect("a valid basename"),
            max_age: self.params.max_age,
            share_limit: self.params.share_limit,
            share_count: 0,
            next_reboot: false,
            cmdline: "fwupd".to_owned(),
        };
        let now = self.timestamp();
        let size = self.params.item_size as u64;
        match self.cores[h].begin_publish(attrs, hash, size, now) {
            Ok(item) => {
                self.disk[h].insert(hash, item.clone());
                self.cores[h].finish_publish(item, now);
                self.record(h, "publish");
            }
            Err(e) => {
                let what = format!("publish refused: {e}");
                self.record(h, &what);
            }
        }
        self.drain(h);
        self.rearm(h);
    }

    /// A request from `from` for `version` reaching machine `h`, as a peer sends it.
    fn remote_request(&mut self, h: usize, from: IpAddr, version: usize) -> Decision {
        let query = format!("sha256={}", self.versions[version]);
        let request = parse_request("GET", &format!("/{BASENAME}"), Some(&query), None)
            .expect("a well-formed request");
        let now = self.timestamp();
        let decision = self.cores[h].handle_request(&request, from, now);
        self.drain(h);
        self.rearm(h);
        decision
    }

    // ----- The event loop -----

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Refresh { host, version } => self.start(host, version, false),
            Event::Probe { host, version } => self.start(host, version, true),
            Event::LocalRequest { host, attempt } => {
                if self.current(host, attempt, Stage::Local) {
                    self.ask_own_passimd(host);
                }
            }
            Event::LocalAnswer {
                host,
                attempt,
                answer,
            } => {
                if self.current(host, attempt, Stage::Local) {
                    self.local_answer(host, answer);
                }
            }
            Event::Timer { host, deadline } => {
                if self.up[host] && self.timers[host] == Some(deadline) {
                    self.timers[host] = None;
                    let now = self.timestamp();
                    self.cores[host].handle_timeout(now);
                    self.drain(host);
                    self.rearm(host);
                }
            }
            Event::TableAdd { host, hash } => self.table_add(host, hash),
            Event::TableRemove { host, hash } => {
                if let Some(holders) = self.table.get_mut(&hash) {
                    if let Ok(i) = holders.hosts.binary_search(&host) {
                        holders.hosts.remove(i);
                        holders.peers.remove(i);
                    }
                }
            }
            Event::QueryArrives { host, attempt } => {
                if !self.current(host, attempt, Stage::Lookup) {
                    return;
                }
                let hash = self.wanted(host);
                let peers: Vec<Peer> = self
                    .truth
                    .get(&hash)
                    .into_iter()
                    .flatten()
                    .filter(|&&p| p != host)
                    .map(|&p| self.peers[p].clone())
                    .collect();
                if !peers.is_empty() {
                    let at = self.now + self.params.net.lan_latency;
                    self.push(
                        at,
                        Event::LookupAnswer {
                            host,
                            attempt,
                            peers,
                        },
                    );
                }
            }
            Event::LookupAnswer {
                host,
                attempt,
                peers,
            } => {
                if self.current(host, attempt, Stage::Lookup) {
                    let hash = self.wanted(host);
                    let decision = self.cores[host].handle_lookup_result(&hash, BASENAME, &peers);
                    self.record(host, "query answered");
                    self.after_lookup(host, decision);
                }
            }
            Event::LookupTimeout { host, attempt } => {
                if self.current(host, attempt, Stage::Lookup) {
                    let hash = self.wanted(host);
                    let decision = self.cores[host].handle_lookup_result(&hash, BASENAME, &[]);
                    self.after_lookup(host, decision);
                }
            }
            Event::PeerRequest {
                host,
                peer,
                attempt,
                location,
            } => self.peer_request(host, peer, attempt, &location),
            Event::PeerDelivered {
                host,
                peer,
                attempt,
                boot,
            } => {
                if !self.current(host, attempt, Stage::Peer) {
                    return;
                }
                if !self.up[peer] || self.boot[peer] != boot {
                    // The peer went down mid-transfer: the client waits for its timeout.
                    return;
                }
                let hash = self.wanted(host);
                *self.shares.entry((peer, hash)).or_default() += 1;
                if self.schedule.liar[peer] {
                    self.counters.rejections += 1;
                    if let Some(want) = self.wants[host].as_mut() {
                        want.rejected += 1;
                    }
                    self.record(host, &format!("rejected bytes from {peer}"));
                    self.cdn(host);
                } else {
                    self.finish(host, Source::Peer(peer));
                }
            }
            Event::PeerCut { host, attempt } => {
                if self.current(host, attempt, Stage::Peer) {
                    self.counters.cuts += 1;
                    self.record(host, "cut");
                    self.cdn(host);
                }
            }
            Event::PeerRefused { host, attempt } => {
                if self.current(host, attempt, Stage::Peer) {
                    self.cdn(host);
                }
            }
            Event::PeerTimeout { host, attempt } => {
                if self.current(host, attempt, Stage::Peer) {
                    self.counters.peer_timeouts += 1;
                    self.record(host, "peer timeout");
                    self.cdn(host);
                }
            }
            Event::CdnDone { host, attempt } => {
                if self.current(host, attempt, Stage::Cdn) {
                    self.finish(host, Source::Cdn);
                }
            }
            Event::Crash { host } => self.crash(host),
            Event::Restart { host } => self.restart(host),
            Event::Rival { peer, version } => {
                if !self.up[peer] {
                    return;
                }
                if let Decision::Serve(serve) = self.remote_request(peer, RIVAL, version) {
                    let boot = self.boot[peer];
                    let at = self.now
                        + self.params.net.lan_latency
                        + transfer(serve.size as usize, self.params.net.lan_bandwidth);
                    self.push(
                        at,
                        Event::RivalDelivered {
                            peer,
                            boot,
                            hash: serve.hash,
                        },
                    );
                    self.record(peer, "served the rival");
                }
            }
            Event::RivalDelivered { peer, boot, hash } => {
                if self.up[peer] && self.boot[peer] == boot {
                    *self.shares.entry((peer, hash)).or_default() += 1;
                }
            }
            Event::Hammer { from, target } => self.hammer(from, target),
        }
    }

    /// Whether an event for `host`'s step `attempt` in `stage` still matters.
    fn current(&self, host: usize, attempt: u64, stage: Stage) -> bool {
        self.attempts[host] == attempt
            && self.wants[host].as_ref().is_some_and(|w| w.stage == stage)
    }

    fn wanted(&self, host: usize) -> Sha256 {
        let version = self.wants[host].as_ref().map_or(0, |w| w.version);
        self.versions[version]
    }

    fn step(&mut self, host: usize, stage: Stage) -> u64 {
        self.attempts[host] += 1;
        if let Some(want) = self.wants[host].as_mut() {
            want.stage = stage;
        }
        self.attempts[host]
    }

    // ----- The client -----

    fn start(&mut self, host: usize, version: usize, probe: bool) {
        self.wants[host] = Some(Want {
            version,
            start: self.now,
            rejected: 0,
            stage: Stage::Lookup,
            probe,
        });
        self.record(host, if probe { "probe" } else { "refresh" });
        if !probe {
            self.maybe_crash_client(host);
        }
        self.connect_own(host);
    }

    /// The client connects to its own passimd; its request arrives after connect and TLS.
    fn connect_own(&mut self, host: usize) {
        if !self.up[host] {
            self.step(host, Stage::Down);
            return;
        }
        let attempt = self.step(host, Stage::Local);
        let at = self.now + self.params.net.loopback_latency * request_half_rtts(&self.params);
        self.push(at, Event::LocalRequest { host, attempt });
    }

    fn ask_own_passimd(&mut self, host: usize) {
        let hash = self.wanted(host);
        let decision = self.remote_request(host, LOOPBACK, self.version_of(&hash));
        match decision {
            Decision::Serve(_) => self.answer_locally(host, LocalAnswer::Body),
            Decision::Lookup { .. } => self.lookup(host, hash),
            other => {
                let what = format!("own passimd: {other:?}");
                self.record(host, &what);
                self.answer_locally(host, LocalAnswer::Refused);
            }
        }
    }

    /// Sends the answer of the client's own passimd back over loopback.
    fn answer_locally(&mut self, host: usize, answer: LocalAnswer) {
        let attempt = self.step(host, Stage::Local);
        let at = self.now + self.params.net.loopback_latency;
        self.push(
            at,
            Event::LocalAnswer {
                host,
                attempt,
                answer,
            },
        );
    }

    fn local_answer(&mut self, host: usize, answer: LocalAnswer) {
        match answer {
            LocalAnswer::Body => self.finish(host, Source::Local),
            LocalAnswer::Refused => self.cdn(host),
            LocalAnswer::Redirect { peer, location } => self.fetch_from_peer(host, peer, location),
        }
    }

    fn lookup(&mut self, host: usize, hash: Sha256) {
        let attempt = self.step(host, Stage::Lookup);
        let known = self
            .table
            .get(&hash)
            .is_some_and(|h| h.hosts.iter().any(|&p| p != host));
        if known {
            self.counters.lookup_hits += 1;
            let peers = self.table.get(&hash).map_or(&[][..], |h| &h.peers[..]);
            let decision = self.cores[host].handle_lookup_result(&hash, BASENAME, peers);
            self.after_lookup(host, decision);
            return;
        }
        self.counters.lookup_misses += 1;
        self.record(host, "lookup miss");
        self.waiters.entry(hash).or_default().push((host, attempt));
        let lat = self.params.net.lan_latency;
        self.push(self.now + lat, Event::QueryArrives { host, attempt });
        self.push(
            self.now + LOOKUP_TIMEOUT,
            Event::LookupTimeout { host, attempt },
        );
    }

    fn table_add(&mut self, host: usize, hash: Sha256) {
        let peer = self.peers[host].clone();
        let holders = self.table.entry(hash).or_default();
        if let Err(i) = holders.hosts.binary_search(&host) {
            holders.hosts.insert(i, host);
            holders.peers.insert(i, peer);
        }
        let Some(waiting) = self.waiters.remove(&hash) else {
            return;
        };
        let mut still = Vec::new();
        for (h, attempt) in waiting {
            if !self.current(h, attempt, Stage::Lookup) {
                continue;
            }
            if h == host {
                still.push((h, attempt));
                continue;
            }
            let peers = self.table.get(&hash).map_or(&[][..], |t| &t.peers[..]);
            let decision = self.cores[h].handle_lookup_result(&hash, BASENAME, peers);
            self.record(h, "holder appeared");
            self.after_lookup(h, decision);
        }
        if !still.is_empty() {
            self.waiters.insert(hash, still);
        }
    }

    fn after_lookup(&mut self, host: usize, decision: Decision) {
        let probe = self.wants[host].as_ref().is_some_and(|w| w.probe);
        if probe {
            if matches!(decision, Decision::Redirect { .. }) {
                self.probes_found += 1;
            }
            self.step(host, Stage::Lookup);
            self.wants[host] = None;
            self.busy -= 1;
            self.record(host, "probe answered");
            return;
        }
        let Decision::Redirect { location } = decision else {
            self.counters.lookup_404s += 1;
            self.record(host, "not found");
            self.answer_locally(host, LocalAnswer::Refused);
            return;
        };
        let Some(peer) = peer_of(&location, self.params.hosts) else {
            self.record(host, "redirect to a stranger");
            self.answer_locally(host, LocalAnswer::Refused);
            return;
        };
        self.counters.redirects += 1;
        let what = format!("redirect {peer}");
        self.record(host, &what);
        self.answer_locally(host, LocalAnswer::Redirect { peer, location });
    }

    /// The client holds a redirect to `peer` and connects to it.
    fn fetch_from_peer(&mut self, host: usize, peer: usize, location: String) {
        let attempt = self.step(host, Stage::Peer);

        if self.partitioned(host, peer) {
            self.counters.partition_refusals += 1;
            self.record(host, "partitioned");
            self.cdn(host);
            return;
        }
        let version = self.wants[host].as_ref().map_or(0, |w| w.version);
        self.maybe_race(peer, version);
        let lat = self.params.net.lan_latency;
        self.push(
            self.now + self.params.peer_timeout,
            Event::PeerTimeout { host, attempt },
        );
        self.push(
            self.now + lat * request_half_rtts(&self.params),
            Event::PeerRequest {
                host,
                peer,
                attempt,
                location,
            },
        );
    }

    fn peer_request(&mut self, host: usize, peer: usize, attempt: u64, location: &str) {
        if !self.current(host, attempt, Stage::Peer) || !self.up[peer] {
            // The client is gone, or the peer is down and stays silent.
            return;
        }
        let hash = self.wanted(host);
        if self.cores[peer].item(&hash).is_none() {
            self.counters.gone_after_redirect += 1;
        }
        let Some(request) = request_of(location) else {
            return;
        };
        let now = self.timestamp();
        let decision = self.cores[peer].handle_request(&request, ip(host), now);
        self.drain(peer);
        self.rearm(peer);
        let lat = self.params.net.lan_latency;
        let Decision::Serve(serve) = decision else {
            self.counters.peer_refusals += 1;
            let what = match &decision {
                Decision::Refuse(r) => format!("refused {host}: {}", r.status),
                other => format!("answered {host}: {other:?}"),
            };
            self.record(peer, &what);
            self.push(self.now + lat, Event::PeerRefused { host, attempt });
            return;
        };
        let what = format!("serve {host}");
        self.record(peer, &what);
        let body = transfer(serve.size as usize, self.params.net.lan_bandwidth);
        let first_byte = self.now + lat;
        let boot = self.boot[peer];
        if self.params.net.loss > 0.0 && self.uniform() < self.params.net.loss {
            let at = first_byte + body.mul_f64(self.uniform());
            self.push(at, Event::PeerCut { host, attempt });
        } else {
            self.push(
                first_byte + body,
                Event::PeerDelivered {
                    host,
                    peer,
                    attempt,
                    boot,
                },
            );
        }
        self.maybe_crash_server(peer, first_byte + body);
    }

    fn cdn(&mut self, host: usize) {
        let attempt = self.step(host, Stage::Cdn);
        let at = self.now + cdn_fetch_time(&self.params);
        self.push(at, Event::CdnDone { host, attempt });
    }

    fn finish(&mut self, host: usize, source: Source) {
        self.attempts[host] += 1;
        let Some(want) = self.wants[host].take() else {
            return;
        };
        self.busy -= 1;
        let what = format!("done {source:?}");
        self.record(host, &what);
        self.fetches.push((
            want.version,
            Fetch {
                host,
                start: want.start,
                end: self.now,
                source: Some(source),
                rejected: want.rejected,
                verified: true,
            },
        ));
        if source != Source::Local {
            self.publish(host, want.version);
        }
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|p| (p.from..p.until).contains(&self.now) && p.group[a] != p.group[b])
    }

    // ----- Churn -----

    /// Crashes a client shortly after it starts, while it looks up or fetches, every `stride`
    /// refreshes while the plan has crashes left.
    fn maybe_crash_client(&mut self, host: usize) {
        let Some(plan) = self.churn.as_mut() else {
            return;
        };
        plan.refreshes += 1;
        if plan.client_crashes == 0 || plan.refreshes % plan.stride != plan.stride / 2 {
            return;
        }
        plan.client_crashes -= 1;
        // One LAN round trip after its own passimd answered: waiting for a peer, for the CDN or
        // for a lookup.
        let at = self.now + local_answer_time(&self.params) + self.params.net.lan_latency * 2;
        self.push(at, Event::Crash { host });
        self.push(at + CHURN_DOWNTIME, Event::Restart { host });
    }

    /// Crashes a peer halfway through sending a file, every `stride` serves while the plan has
    /// crashes left.
    fn maybe_crash_server(&mut self, peer: usize, last_byte: Duration) {
        let Some(plan) = self.churn.as_mut() else {
            return;
        };
        plan.serves += 1;
        if plan.server_crashes == 0 || plan.serves % plan.stride != plan.stride / 2 {
            return;
        }
        plan.server_crashes -= 1;
        self.counters.crashed_serving += 1;
        let at = self.now + (last_byte - self.now) / 2;
        self.push(at, Event::Crash { host: peer });
        self.push(at + CHURN_DOWNTIME, Event::Restart { host: peer });
    }

    /// Sends the visiting laptop to take `peer`'s last share before the client that was just
    /// redirected there asks, while the plan has races left.
    fn maybe_race(&mut self, peer: usize, version: usize) {
        let Some(plan) = self.churn.as_mut() else {
            return;
        };
        if plan.races == 0 {
            return;
        }
        let at_limit = self.cores[peer]
            .item(&self.versions[version])
            .is_some_and(|i| i.has_share_limit() && i.share_count + 1 == i.share_limit);
        if !at_limit {
            return;
        }
        plan.races -= 1;
        self.counters.races_forced += 1;
        // Its request lands one round trip after the redirect, the client's at 2.5.
        let at = self.now + self.params.net.lan_latency * 2;
        self.push(at, Event::Rival { peer, version });
    }

    fn crash(&mut self, host: usize) {
        if !self.up[host] {
            return;
        }
        self.up[host] = false;
        self.boot[host] += 1;
        self.timers[host] = None;
        self.counters.crashes += 1;
        self.record(host, "crash");
        for set in self.truth.values_mut() {
            set.remove(&host);
        }
        let counts = self.cores[host]
            .items()
            .map(|i| (i.hash, i.share_count))
            .collect();
        self.before_crash.insert(host, counts);
        if self.wants[host].is_some() {
            self.counters.crashed_fetching += 1;
            self.step(host, Stage::Down);
        }
    }

    fn restart(&mut self, host: usize) {
        if self.up[host] {
            return;
        }
        self.up[host] = true;
        self.record(host, "restart");
        self.cores[host] = self.boot_core(host);
        self.drain(host);
        self.rearm(host);

        for (hash, count) in self.before_crash.remove(&host).unwrap_or_default() {
            match self.cores[host].item(&hash) {
                Some(item) if item.share_count == count => self.counters.share_counts_kept += 1,
                Some(_) => self.counters.share_counts_lost += 1,
                // Expired while the machine was down.
                None => {}
            }
        }

        // A restarted daemon announces what it holds; what the LAN still remembers of it and it
        // no longer holds is forgotten as mDNS caches would, modelled as an immediate goodbye.
        let shareable = self.cores[host].shareable();
        let stale: Vec<Sha256> = self
            .table
            .iter()
            .filter(|(hash, h)| h.hosts.binary_search(&host).is_ok() && !shareable.contains(hash))
            .map(|(hash, _)| *hash)
            .collect();
        let lat = self.params.net.lan_latency;
        for hash in stale {
            self.push(self.now + lat, Event::TableRemove { host, hash });
        }

        if self.wants[host].is_some() {
            self.counters.resumed_fetches += 1;
            self.connect_own(host);
        }
    }

    // ----- Abuse -----

    fn hammer(&mut self, from: usize, target: HammerTarget) {
        let now = self.timestamp();
        let (path, query) = match target {
            HammerTarget::Item => (
                format!("/{BASENAME}"),
                format!("sha256={}", self.versions[0]),
            ),
            HammerTarget::Index => ("/".to_owned(), String::new()),
            HammerTarget::Unheld => (
                format!("/{BASENAME}"),
                format!("sha256={}", self.versions[1]),
            ),
        };
        let query = (!query.is_empty()).then_some(query.as_str());
        let Ok(request) = parse_request("GET", &path, query, None) else {
            self.hammer.other += 1;
            return;
        };
        let decision = self.cores[0].handle_request(&request, ip(from), now);
        self.drain(0);
        self.rearm(0);
        if matches!(decision, Decision::Lookup { .. }) {
            self.hammer.lookups += 1;
        }
        let refused_403 = matches!(&decision, Decision::Refuse(r) if r.status == 403);
        match target {
            HammerTarget::Item => {
                self.hammer.requests += 1;
                if let Decision::Serve(serve) = decision {
                    self.hammer.served += 1;
                    *self.shares.entry((0, serve.hash)).or_default() += 1;
                    self.record(0, "served the hammer");
                } else if refused_403 {
                    self.hammer.refused_403 += 1;
                } else {
                    self.hammer.other += 1;
                }
            }
            HammerTarget::Index | HammerTarget::Unheld => {
                self.hammer.probes += 1;
                if refused_403 {
                    self.hammer.probes_refused_403 += 1;
                }
                let what = format!("probe {target:?} from {from}: {decision:?}");
                self.record(0, &what);
            }
        }
    }
}

/// The machine a redirect's `https://IP:PORT/…` names.
fn peer_of(location: &str, hosts: usize) -> Option<usize> {
    let rest = location.strip_prefix("https://")?;
    let (authority, _) = rest.split_once('/')?;
    let addr: SocketAddr = authority.parse().ok()?;
    host_of(addr.ip(), hosts)
}

/// The request a client sends to the peer a redirect names.
fn request_of(location: &str) -> Option<passim_core::request::Request> {
    let rest = location.strip_prefix("https://")?;
    let (_, target) = rest.split_once('/')?;
    let (path, query) = target.split_once('?')?;
    parse_request("GET", &format!("/{path}"), Some(query), None).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for h in [0, 1, 254, 255, 256, 9_999] {
            assert_eq!(host_of(ip(h), 10_000), Some(h));
        }
        assert_eq!(host_of(ip(10), 10), None);
        assert_eq!(host_of(RIVAL, 10_000), None);
        assert_eq!(host_of(LOOPBACK, 10_000), None);
    }

    #[test]
    fn redirects_name_their_peer() {
        let location = "https://10.0.1.2:27500/firmware.xml.zst?sha256=\
                        0000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(peer_of(location, 1_000), Some(257));
        assert!(request_of(location).is_some());
        assert_eq!(peer_of("https://example.com/x", 1_000), None);
    }

    #[test]
    fn the_queue_pops_in_time_then_schedule_order() {
        let mut queue = BinaryHeap::new();
        for (at, seq) in [(5, 1), (3, 2), (5, 0), (3, 3)] {
            queue.push(Scheduled {
                at: Duration::from_millis(at),
                seq,
                event: Event::Crash { host: 0 },
            });
        }
        let order: Vec<(u64, u64)> = std::iter::from_fn(|| queue.pop())
            .map(|s| (s.at.as_millis() as u64, s.seq))
            .collect();
        assert_eq!(order, [(3, 2), (3, 3), (5, 0), (5, 1)]);
    }
}
