//! What both tiers share: a scenario's parameters, the schedule drawn from its seed, what a
//! run reports, and the trace whose hash proves a replay.
//!
//! The schedule (who refreshes when, who lies) comes from the seed alone, before either tier
//! starts, so the turmoil tier and the core tier play exactly the same script and their figures
//! can be compared line by line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::Digest as _;

/// The port every simulated passimd listens on, as a real one does.
pub const PORT: u16 = 27500;

/// The network both tiers model.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// One-way latency between two machines of the LAN.
    pub lan_latency: Duration,
    /// One-way latency from a machine to itself (the client asking its own passimd).
    pub loopback_latency: Duration,
    /// One-way latency between a machine and the CDN.
    pub cdn_latency: Duration,
    /// Bytes per second on a LAN link.
    pub lan_bandwidth: u64,
    /// Bytes per second from the CDN to one machine.
    pub cdn_bandwidth: u64,
    /// The probability that a transfer between two LAN machines is cut part-way.
    pub loss: f64,
    /// One-way latencies a TCP connect costs before the client can send: 2 on a real network
    /// (SYN, SYN-ACK; the ACK rides with the TLS ClientHello). turmoil's connect completes as
    /// its SYN arrives (the SYN-ACK is an in-memory signal), so the core tier is given 1 when
    /// it is compared with turmoil.
    pub connect_one_ways: u32,
}

impl Default for Net {
    fn default() -> Self {
        Self {
            // Tick-sized: turmoil delivers messages on its 10 ms ticks, so a latency that is a
            // multiple of the tick is modelled exactly by both tiers.
            lan_latency: Duration::from_millis(10),
            // Real loopback takes microseconds; turmoil delivers a loopback segment on its next
            // tick. The tiers model the same so they can be compared; it costs a local request
            // ~50 ms, which makes every time-to-file figure pessimistic by that much.
            loopback_latency: Duration::from_millis(10),
            cdn_latency: Duration::from_millis(40),
            // 1 Gbit/s LAN, 100 Mbit/s to the CDN.
            lan_bandwidth: 125_000_000,
            cdn_bandwidth: 12_500_000,
            loss: 0.0,
            connect_one_ways: 2,
        }
    }
}

/// One scenario run's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Machines on the LAN (the CDN is not one of them).
    pub hosts: usize,
    /// The share-limit each machine publishes with.
    pub share_limit: u32,
    /// The max-age each machine publishes with, in seconds.
    pub max_age: u32,
    /// Every random choice of the run derives from it.
    pub seed: u64,
    /// Each machine refreshes once at a uniform random time in `[0, window)`.
    pub window: Duration,
    /// The fraction of machines that serve wrong bytes under the right hash.
    pub liars: f64,
    /// The file's size in bytes.
    pub item_size: usize,
    /// How long a client waits for a LAN peer before it gives up on it and asks the CDN.
    pub peer_timeout: Duration,
    /// The network.
    pub net: Net,
}

impl Params {
    /// fwupd's defaults for metadata: max-age one day, share-limit 5, refreshes spread over a
    /// day, on a quiet LAN.
    pub fn offload(hosts: usize, share_limit: u32, seed: u64) -> Self {
        Self {
            hosts,
            share_limit,
            max_age: 24 * 3600,
            seed,
            window: Duration::from_secs(24 * 3600),
            liars: 0.0,
            // A compressed metadata file or block list. It is also under the shell's 64 KiB
            // single-read size: larger files are read through tokio's blocking pool, whose
            // threads turmoil's virtual clock does not wait for.
            item_size: 60 * 1024,
            peer_timeout: Duration::from_secs(5),
            net: Net::default(),
        }
    }
}

/// One machine's refresh: when it wants the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refresh {
    /// The machine.
    pub host: usize,
    /// When, from the start of the run.
    pub at: Duration,
}

/// The script of a run, drawn from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Refreshes in time order (ties by host).
    pub refreshes: Vec<Refresh>,
    /// `liar[h]`: machine `h` serves wrong bytes.
    pub liar: Vec<bool>,
    /// The seed for machine `h`'s passim core.
    pub core_seeds: Vec<u64>,
    /// The file's bytes: derived from the seed too, so every run agrees on its hash.
    pub content: Vec<u8>,
}

impl Schedule {
    /// Draws the script for `params`.
    pub fn new(params: &Params) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let window = u64::try_from(params.window.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut refreshes: Vec<Refresh> = (0..params.hosts)
            .map(|host| Refresh {
                host,
                at: Duration::from_micros(rng.next_u64() % window),
            })
            .collect();
        refreshes.sort_by_key(|r| (r.at, r.host));
        // Exactly round(liars × hosts) liars, chosen without replacement.
        let n_liars = ((params.liars.clamp(0.0, 1.0) * params.hosts as f64).round() as usize)
            .min(params.hosts);
        let mut order: Vec<usize> = (0..params.hosts).collect();
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut liar = vec![false; params.hosts];
        for &h in &order[..n_liars] {
            liar[h] = true;
        }
        let core_seeds = (0..params.hosts).map(|_| rng.next_u64()).collect();
        let content = content(params.seed, params.item_size, 0);
        Self {
            refreshes,
            liar,
            core_seeds,
            content,
        }
    }
}

/// A file's bytes for `seed` and `version`: the expiry scenario publishes a second version.
pub fn content(seed: u64, size: usize, version: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (version.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut bytes = vec![0; size];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> passim_core::Sha256 {
    passim_core::Sha256::from_bytes(sha2::Sha256::digest(bytes).into())
}

/// Where a machine's copy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Its own passimd already held it.
    Local,
    /// A LAN peer, by machine index.
    Peer(usize),
    /// The CDN.
    Cdn,
}

/// One refresh's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetch {
    /// The machine.
    pub host: usize,
    /// When it asked.
    pub start: Duration,
    /// When it held verified bytes (or gave up).
    pub end: Duration,
    /// Where the bytes it kept came from; `None` when it got nothing.
    pub source: Option<Source>,
    /// Peers that answered with bytes that did not match the hash (thrown away).
    pub rejected: u32,
    /// Whether the bytes it kept and published hash to what it asked for.
    pub verified: bool,
}

impl Fetch {
    /// Time from asking to holding the file.
    pub fn time_to_file(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// `core` or `turmoil`.
    pub tier: &'static str,
    /// Machines.
    pub hosts: usize,
    /// The share-limit they published with.
    pub share_limit: u32,
    /// Every refresh, in the order they finished.
    pub fetches: Vec<Fetch>,
    /// Shares by serving machine and hash: `200` responses whose whole body reached the client
    /// (counted by the client in the turmoil tier, at the server in the core tier).
    pub shares: BTreeMap<(usize, passim_core::Sha256), u32>,
    /// Hash of the run's event trace.
    pub trace: String,
}

impl Report {
    /// Downloads from the CDN.
    pub fn cdn(&self) -> usize {
        self.fetches
            .iter()
            .filter(|f| f.source == Some(Source::Cdn))
            .count()
    }

    /// Machines per CDN download.
    pub fn reduction(&self) -> f64 {
        self.fetches.len() as f64 / self.cdn().max(1) as f64
    }

    /// The most any machine shared one item.
    pub fn max_shares(&self) -> u32 {
        self.shares.values().copied().max().unwrap_or(0)
    }

    /// Files kept that do not match their hash.
    pub fn bad(&self) -> usize {
        self.fetches
            .iter()
            .filter(|f| f.source.is_some() && !f.verified)
            .count()
    }

    /// Refreshes that ended without the file.
    pub fn failed(&self) -> usize {
        self.fetches.iter().filter(|f| f.source.is_none()).count()
    }

    /// The `q`-quantile (0..=1) of time-to-file, nearest rank.
    pub fn percentile(&self, q: f64) -> Duration {
        let mut times: Vec<Duration> = self.fetches.iter().map(Fetch::time_to_file).collect();
        if times.is_empty() {
            return Duration::ZERO;
        }
        times.sort();
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1]
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:>6} {:>11} {:>4} {:>9} {:>10} {:>8} {:>8} {:>4}",
            "tier",
            "hosts",
            "share-limit",
            "cdn",
            "reduction",
            "max-shares",
            "p50 ms",
            "p99 ms",
            "bad"
        );
        let _ = writeln!(
            s,
            "{:<8} {:>6} {:>11} {:>4} {:>9.1} {:>10} {:>8.1} {:>8.1} {:>4}",
            self.tier,
            self.hosts,
            self.share_limit,
            self.cdn(),
            self.reduction(),
            self.max_shares(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.bad()
        );
        s
    }

    /// The machine-readable line.
    pub fn line(&self) -> String {
        format!(
            "offload: hosts={} share_limit={} cdn={} reduction={:.1} max_shares={} p50_ms={:.1} \
             p99_ms={:.1} bad={}",
            self.hosts,
            self.share_limit,
            self.cdn(),
            self.reduction(),
            self.max_shares(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.bad()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The ordered record of what happened in a run. Only its hash is kept: two runs with the same
/// seed must produce the same one.
pub struct Trace {
    hasher: sha2::Sha256,
    events: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self {
            hasher: sha2::Sha256::new(),
            events: 0,
        }
    }

    /// Appends one event: when, on which machine, what.
    pub fn record(&mut self, at: Duration, host: usize, what: &str) {
        self.hasher
            .update(format!("{} {host} {what}\n", at.as_micros()).as_bytes());
        self.events += 1;
    }

    /// Events recorded.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The hash, hex, with the event count.
    pub fn finish(self) -> String {
        let digest = self.hasher.finalize();
        let mut s = String::with_capacity(80);
        for b in digest {
            let _ = write!(s, "{b:02x}");
        }
        let _ = write!(s, "/{}", self.events);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_function_of_the_seed() {
        let mut p = Params::offload(200, 5, 7);
        p.liars = 0.1;
        let a = Schedule::new(&p);
        assert_eq!(a, Schedule::new(&p));
        assert_eq!(a.liar.iter().filter(|&&l| l).count(), 20);
        assert!(a.refreshes.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.refreshes.iter().all(|r| r.at < p.window));
        p.seed = 8;
        assert_ne!(a.refreshes, Schedule::new(&p).refreshes);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut r = Report::default();
        for i in 1..=100u64 {
            r.fetches.push(Fetch {
                host: i as usize,
                start: Duration::ZERO,
                end: Duration::from_millis(i),
                source: Some(Source::Cdn),
                rejected: 0,
                verified: true,
            });
        }
        assert_eq!(r.percentile(0.5), Duration::from_millis(50));
        assert_eq!(r.percentile(0.99), Duration::from_millis(99));
        assert_eq!(r.cdn(), 100);
        assert!((r.reduction() - 1.0).abs() < 1e-9);
    }
}
