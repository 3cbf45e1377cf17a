//! The passim state machine: what it holds, and what it does about each input.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::audit::{AuditEvent, AuditLine};
use crate::request::{Asset, Method, Refusal, Request, Target};
use crate::{Basename, Flags, InvalidBasename, Item, Origin, Sha256, Status, Timestamp, index};

/// What the core needs to know from the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Seconds one remote address must wait before fetching the same hash again.
    pub cooldown_secs: u32,
    /// The largest item `Publish` accepts, in bytes.
    pub max_item_size: u64,
    /// kg CO2e per GB transferred, for [`Passim::carbon_saving`].
    pub carbon_cost: f64,
    /// The daemon's version, shown on the index page.
    pub version: String,
    /// This boot's `btime` from `/proc/stat`, if known: items published with the next-reboot
    /// flag in this boot stay disabled.
    pub boot_time: Option<u64>,
    /// Bytes served to others before this start, summed from the audit log.
    pub download_saving: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cooldown_secs: crate::config::DEFAULT_COOLDOWN,
            max_item_size: crate::config::DEFAULT_MAX_ITEM_SIZE,
            carbon_cost: crate::config::DEFAULT_CARBON_COST,
            version: String::new(),
            boot_time: None,
            download_saving: 0,
        }
    }
}

/// An effect for the shell to carry out, in order.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Output {
    /// Delete a published item's file (`<data dir>/<hash>-<basename>`). Static files are never
    /// named here.
    RemoveFile {
        /// The item's hash.
        hash: Sha256,
        /// The item's basename.
        basename: Basename,
    },
    /// Append a line to the audit log.
    Audit(AuditLine),
    /// Store a published item's new share-count, so that a restart keeps it.
    StoreShareCount {
        /// The item's hash.
        hash: Sha256,
        /// The item's basename.
        basename: Basename,
        /// The count to store.
        share_count: u32,
    },
    /// Start advertising a hash over mDNS: the item became shareable.
    Advertise(Sha256),
    /// Stop advertising a hash: the item is gone, disabled, or sharing is off.
    Withdraw(Sha256),
    /// Emit the D-Bus `Changed` signal: the item set or the status changed.
    Changed,
    /// The `Status` property changed: emit `PropertiesChanged`.
    StatusChanged(Status),
}

/// Why [`Passim::poll_timeout`] wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutReason {
    /// An item reaches its max-age.
    Expiry(Sha256),
    /// A cooldown entry for a remote address ends.
    CooldownEnds(IpAddr),
}

/// What to answer an HTTP request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The HTML index page.
    Index(String),
    /// A static asset of the index page, from the data directory.
    Asset(Asset),
    /// Serve an item's bytes. Accounting is already done.
    Serve(Serve),
    /// `416` for a range past the end; the shell adds `Content-Range: bytes */size`.
    RangeNotSatisfiable {
        /// The item's size.
        size: u64,
    },
    /// Look the hash up on the LAN, then call [`Passim::handle_lookup_result`].
    Lookup {
        /// The hash to look up.
        hash: Sha256,
        /// The basename from the request, for the redirect.
        basename: String,
    },
    /// `302` to another machine that holds the hash.
    Redirect {
        /// The `Location` header.
        location: String,
    },
    /// An error page.
    Refuse(Refusal),
}

/// An item to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    /// The item's hash.
    pub hash: Sha256,
    /// The stored basename, for `Content-Disposition`.
    pub basename: Basename,
    /// Where the bytes live.
    pub origin: Origin,
    /// The whole item's size.
    pub size: u64,
    /// The inclusive byte range to send, for a `206`; `None` sends everything with `200`.
    pub range: Option<(u64, u64)>,
    /// HEAD: headers only.
    pub head_only: bool,
}

/// A machine found on the LAN holding a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its instance name (`Passim-XXXX`), to recognise ourselves.
    pub name: String,
    /// Where its HTTPS server listens.
    pub addr: SocketAddr,
}

/// Publish attributes as they arrive from a caller, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// A string (`s`).
    Str(String),
    /// An unsigned 32-bit integer (`u`).
    U32(u32),
    /// An unsigned 64-bit integer (`t`).
    U64(u64),
    /// A signed 64-bit integer (`x`).
    I64(i64),
    /// A boolean (`b`).
    Bool(bool),
}

/// Validated publish attributes: everything about a new item except what the daemon measures
/// (hash, size, time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishAttrs {
    /// The file name to publish under.
    pub basename: Basename,
    /// Seconds until it expires; `u32::MAX` never.
    pub max_age: u32,
    /// Times it may be served; 0 or `u32::MAX` unlimited.
    pub share_limit: u32,
    /// Times it was already served elsewhere.
    pub share_count: u32,
    /// Share only after the next reboot.
    pub next_reboot: bool,
    /// Basename of the publishing program.
    pub cmdline: String,
}

impl PublishAttrs {
    /// Validates attributes from a D-Bus `a{sv}` (keys `filename`, `max-age`, `share-limit`,
    /// `share-count`, `flags`). Unknown keys are ignored; `cmdline` is the caller's, measured
    /// by the daemon, never taken from the dictionary.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, AttrValue)>,
        cmdline: String,
    ) -> Result<Self, PublishError> {
        let mut basename = None;
        let mut max_age = crate::DEFAULT_MAX_AGE;
        let mut share_limit = crate::DEFAULT_SHARE_LIMIT;
        let mut share_count = 0;
        let mut flags = Flags::NONE;
        for (key, value) in pairs {
            match (key, value) {
                ("filename", AttrValue::Str(s)) => basename = Some(s),
                ("max-age", AttrValue::U32(v)) => max_age = v,
                ("share-limit", AttrValue::U32(v)) => share_limit = v,
                ("share-count", AttrValue::U32(v)) => share_count = v,
                ("flags", AttrValue::U64(v)) => flags = Flags::from_bits_truncate(v),
                ("filename" | "max-age" | "share-limit" | "share-count" | "flags", _) => {
                    return Err(PublishError::WrongType(key.to_owned()));
                }
                _ => {}
            }
        }
        let basename = Basename::new(basename.ok_or(PublishError::MissingBasename)?)
            .map_err(PublishError::InvalidBasename)?;
        Self {
            basename,
            max_age,
            share_limit,
            share_count,
            next_reboot: flags.contains(Flags::NEXT_REBOOT),
            cmdline,
        }
        .validated()
    }

    /// Checks what can be checked before any byte is read.
    pub fn validated(self) -> Result<Self, PublishError> {
        let limited = self.share_limit != 0 && self.share_limit != u32::MAX;
        if limited && self.share_count >= self.share_limit {
            return Err(PublishError::ShareLimitReached {
                count: self.share_count,
                limit: self.share_limit,
            });
        }
        Ok(self)
    }
}

/// Why a publish is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// No `filename` attribute.
    MissingBasename,
    /// The `filename` is not a valid basename.
    InvalidBasename(InvalidBasename),
    /// A known attribute has the wrong D-Bus type.
    WrongType(String),
    /// `share-count` is already at or over `share-limit`.
    ShareLimitReached {
        /// The given share-count.
        count: u32,
        /// The given share-limit.
        limit: u32,
    },
    /// The content is larger than `MaxItemSize`.
    TooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// An item with this hash is already held (or being published).
    Exists(Sha256),
}

impl PublishError {
    /// Whether the caller passed bad arguments (D-Bus `InvalidArgs`), rather than content the
    /// daemon cannot take.
    pub fn is_invalid_args(&self) -> bool {
        matches!(
            self,
            Self::MissingBasename
                | Self::InvalidBasename(_)
                | Self::WrongType(_)
                | Self::ShareLimitReached { .. }
        )
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingBasename => f.write_str("basename missing"),
            Self::InvalidBasename(e) => write!(f, "invalid basename: {e}"),
            Self::WrongType(key) => write!(f, "attribute {key} has the wrong type"),
            Self::ShareLimitReached { count, limit } => {
                write!(f, "share-count {count} is not below share-limit {limit}")
            }
            Self::TooLarge { limit } => {
                write!(f, "size limit is {}", index::format_size(*limit))
            }
            Self::Exists(hash) => write!(f, "{hash} already exists"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Why an item loaded from disk was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadOutcome {
    /// Taken.
    Loaded,
    /// It had outlived its max-age: the outputs delete it.
    Expired,
    /// Another item already has this hash; the file is left alone.
    Duplicate,
}

/// `Unpublish` of a hash that is not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotFound(pub Sha256);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not found", self.0)
    }
}

impl std::error::Error for NotFound {}

/// The passim state machine.
///
/// # Driving it
///
/// The shell owns one `Passim` and, for its whole life, repeats:
///
/// 1. Feed an input: a request (`handle_request`, then `handle_lookup_result` if it asked for a
///    lookup), a publish (`begin_publish`, store the file, `finish_publish` or
///    `abort_publish`), `handle_unpublish`, `handle_load`, `handle_static_items`,
///    `handle_metered`, or `handle_timeout` when the deadline from `poll_timeout` passes. Every
///    input carries `now`, read from the wall clock by the shell.
/// 2. Drain `poll_output` until it returns `None`, carrying out each [`Output`] in order.
/// 3. Sleep until `poll_timeout`'s deadline or the next input, whichever is first.
///
/// Every input first expires what is due at `now`, so an item past its max-age is never served
/// even if the shell's timer fires late. All choices that look random (the daemon's name, the
/// peer to redirect to) come from the seed given to [`Passim::new`]: one seed and one sequence
/// of inputs give one sequence of outputs.
pub struct Passim {
    settings: Settings,
    name: String,
    rng: ChaCha8Rng,
    status: Status,
    metered: bool,
    items: BTreeMap<Sha256, Item>,
    /// Hashes between `begin_publish` and `finish_publish`/`abort_publish`.
    pending: BTreeSet<Sha256>,
    /// Published items with a finite max-age, by deadline.
    expiries: BTreeSet<(Timestamp, Sha256)>,
    /// When each (remote address, hash) may fetch again.
    cooldowns: BTreeMap<(IpAddr, Sha256), Timestamp>,
    /// The same entries, by deadline.
    cooldown_deadlines: BTreeSet<(Timestamp, IpAddr, Sha256)>,
    download_saving: u64,
    /// What the shell advertises now, to emit [`Output::Advertise`] only on a change.
    advertised: BTreeSet<Sha256>,
    outputs: VecDeque<Output>,
}

impl Passim {
    /// A daemon that is starting: status [`Status::Loading`], no items. `seed` drives every
    /// random choice.
    pub fn new(settings: Settings, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let name = format!("Passim-{:04X}", rng.next_u32() & 0xffff);
        let download_saving = settings.download_saving;
        Self {
            settings,
            name,
            rng,
            status: Status::Loading,
            metered: false,
            items: BTreeMap::new(),
            pending: BTreeSet::new(),
            expiries: BTreeSet::new(),
            cooldowns: BTreeMap::new(),
            cooldown_deadlines: BTreeSet::new(),
            download_saving,
            advertised: BTreeSet::new(),
            outputs: VecDeque::new(),
        }
    }

    // ----- Reading state -----

    /// The instance name, `Passim-XXXX`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Bytes served to others, all time.
    pub fn download_saving(&self) -> u64 {
        self.download_saving
    }

    /// kg CO2e saved: `DownloadSaving` / 2^20 × CarbonCost / 1024.
    pub fn carbon_saving(&self) -> f64 {
        crate::audit::carbon_saving(self.download_saving, self.settings.carbon_cost)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// All items, by hash.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// One item.
    pub fn item(&self, hash: &Sha256) -> Option<&Item> {
        self.items.get(hash)
    }

    /// The hashes that should be advertised now: every item not disabled, none while metered
    /// or not yet running.
    pub fn shareable(&self) -> BTreeSet<Sha256> {
        if self.status != Status::Running {
            return BTreeSet::new();
        }
        self.items
            .values()
            .filter(|i| !i.is_disabled())
            .map(|i| i.hash)
            .collect()
    }

    // ----- Outputs -----

    /// The next effect to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Passim::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Timestamp, TimeoutReason)> {
        let expiry = self
            .expiries
            .first()
            .map(|&(at, hash)| (at, TimeoutReason::Expiry(hash)));
        let cooldown = self
            .cooldown_deadlines
            .first()
            .map(|&(at, ip, _)| (at, TimeoutReason::CooldownEnds(ip)));
        match (expiry, cooldown) {
            (Some(e), Some(c)) => Some(if c.0 < e.0 { c } else { e }),
            (e, c) => e.or(c),
        }
    }

    // ----- Inputs -----

    /// Expires items and cooldowns whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&(at, ip, hash)) = self.cooldown_deadlines.first() {
            if at > now {
                break;
            }
            self.cooldown_deadlines.pop_first();
            self.cooldowns.remove(&(ip, hash));
        }

        let mut expired = Vec::new();
        while let Some(&(at, hash)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.remove_item(&hash, now);
            expired.push(hash);
        }
        if !expired.is_empty() {
            self.items_changed(&expired);
        }
    }

    /// Takes an item found in the data directory at start.
    ///
    /// A next-reboot item published in this boot comes back disabled; one from an earlier boot
    /// is shared. An item past its max-age is deleted.
    pub fn handle_load(&mut self, mut item: Item, now: Timestamp) -> LoadOutcome {
        self.handle_timeout(now);
        if self.items.contains_key(&item.hash) || self.pending.contains(&item.hash) {
            return LoadOutcome::Duplicate;
        }

        let this_boot = item.boot_time.is_some() && item.boot_time == self.settings.boot_time;
        item.flags = if this_boot {
            Flags::DISABLED.with(Flags::NEXT_REBOOT)
        } else {
            Flags::NONE
        };

        if item.expires_at().is_some_and(|at| at <= now) && item.origin == Origin::Published {
            self.delete_output(&item, now);
            return LoadOutcome::Expired;
        }
        let hash = item.hash;
        self.insert_item(item);
        self.items_changed(&[hash]);
        LoadOutcome::Loaded
    }

    /// Loading has finished: start running (or stay disabled if metered).
    pub fn handle_loaded(&mut self, now: Timestamp) {
        self.handle_timeout(now);
        self.update_status();
    }

    /// The network became metered (or stopped being): while metered nothing is advertised.
    pub fn handle_metered(&mut self, metered: bool, now: Timestamp) {
        self.handle_timeout(now);
        self.metered = metered;
        if self.status != Status::Loading {
            self.update_status();
        }
    }

    /// Replaces every item from the static directories with `items` (a rescan). Static items
    /// never expire and have no share-limit, whatever `items` say; one whose hash is already
    /// held by a published item is left out.
    pub fn handle_static_items(&mut self, items: Vec<Item>, now: Timestamp) {
        self.handle_timeout(now);
        self.items
            .retain(|_, item| !matches!(item.origin, Origin::Static { .. }));
        for mut item in items {
            if self.items.contains_key(&item.hash) || self.pending.contains(&item.hash) {
                continue;
            }
            item.max_age = u32::MAX;
            item.share_limit = 0;
            item.flags = Flags::NONE;
            self.insert_item(item);
        }
        // The C version signals every rescan, whether or not anything changed.
        if self.status != Status::Loading {
            self.outputs.push_back(Output::Changed);
            self.refresh_advertisement();
        }
    }

    /// Starts publishing content of `size` bytes hashing to `hash`: refuses what is too large
    /// or already held, reserves the hash, and returns the item to store. Follow with
    /// [`Passim::finish_publish`] once it is stored, or [`Passim::abort_publish`].
    pub fn begin_publish(
        &mut self,
        attrs: PublishAttrs,
        hash: Sha256,
        size: u64,
        now: Timestamp,
    ) -> Result<Item, PublishError> {
        self.handle_timeout(now);
        let attrs = attrs.validated()?;
        if size > self.settings.max_item_size {
            return Err(PublishError::TooLarge {
                limit: self.settings.max_item_size,
            });
        }
        if self.items.contains_key(&hash) || !self.pending.insert(hash) {
            return Err(PublishError::Exists(hash));
        }
        let flags = if attrs.next_reboot {
            Flags::DISABLED.with(Flags::NEXT_REBOOT)
        } else {
            Flags::NONE
        };
        Ok(Item {
            hash,
            basename: attrs.basename,
            cmdline: attrs.cmdline,
            max_age: attrs.max_age,
            share_limit: attrs.share_limit,
            share_count: attrs.share_count,
            size,
            ctime: Timestamp::from_secs(now.as_secs()),
            flags,
            boot_time: if attrs.next_reboot {
                self.settings.boot_time
            } else {
                None
            },
            origin: Origin::Published,
        })
    }

    /// The item from [`Passim::begin_publish`] is stored: hold and share it.
    pub fn finish_publish(&mut self, item: Item, now: Timestamp) {
        self.pending.remove(&item.hash);
        self.outputs.push_back(Output::Audit(AuditLine {
            time: now,
            event: AuditEvent::Publish {
                hash: item.hash,
                basename: item.basename.to_string(),
                size: item.size,
                cmdline: item.cmdline.clone(),
            },
        }));
        let hash = item.hash;
        self.insert_item(item);
        self.items_changed(&[hash]);
        // An item published with a max-age of 0 is gone at once.
        self.handle_timeout(now);
    }

    /// Storing the item from [`Passim::begin_publish`] failed: release the hash.
    pub fn abort_publish(&mut self, hash: &Sha256) {
        self.pending.remove(hash);
    }

    /// Removes an item. A published item's file is deleted; a static file is only forgotten
    /// until the next rescan.
    pub fn handle_unpublish(&mut self, hash: &Sha256, now: Timestamp) -> Result<(), NotFound> {
        self.handle_timeout(now);
        if !self.items.contains_key(hash) {
            return Err(NotFound(*hash));
        }
        self.remove_item(hash, now);
        self.items_changed(&[*hash]);
        Ok(())
    }

    /// Decides the answer to a request from `from` at `now`, accounting for it.
    pub fn handle_request(&mut self, request: &Request, from: IpAddr, now: Timestamp) -> Decision {
        self.handle_timeout(now);
        let loopback = is_loopback(from);
        let fetch = match &request.target {
            Target::Index if loopback => {
                let items: Vec<&Item> = self.items.values().collect();
                return Decision::Index(index::render(
                    &items,
                    now,
                    &self.name,
                    &self.settings.version,
                ));
            }
            Target::Asset(asset) if loopback => return Decision::Asset(*asset),
            Target::Index | Target::Asset(_) => {
                return Decision::Refuse(Refusal::new(403, "only available to localhost"));
            }
            Target::Fetch(fetch) => fetch,
        };
        let head = request.method == Method::Head;
        let hash = fetch.hash;

        let held = self.items.get(&hash).filter(|_| fetch.allow_local);
        let resume = held.is_some_and(|item| {
            fetch
                .range
                .and_then(|r| r.resolve(item.size))
                .is_some_and(|(first, _)| first > 0)
        });

        // The cooldown stops one LAN peer from draining an item's share-limit (and so evicting
        // it everywhere) by repeating a request. Resuming a transfer that was cut is not a new
        // share, so it is neither blocked nor counted.
        if !loopback && !resume {
            if let Some(&until) = self.cooldowns.get(&(from, hash)) {
                let wait = until.secs_since(now).max(1);
                return Decision::Refuse(Refusal::new(
                    403,
                    format!("{hash} was requested from {from} recently, try again in {wait}s"),
                ));
            }
            if !head && self.settings.cooldown_secs > 0 {
                let until = now.add_secs(u64::from(self.settings.cooldown_secs));
                self.cooldowns.insert((from, hash), until);
                self.cooldown_deadlines.insert((until, from, hash));
            }
        }

        let Some(item) = held else {
            if !loopback {
                return Decision::Refuse(Refusal::new(403, format!("{hash} is not shared here")));
            }
            return Decision::Lookup {
                hash,
                basename: fetch.basename.clone(),
            };
        };
        if item.is_disabled() {
            return Decision::Refuse(Refusal::new(423, format!("{hash} is disabled")));
        }

        let range = match fetch.range {
            None => None,
            Some(spec) => match spec.resolve(item.size) {
                Some(range) => Some(range),
                None => return Decision::RangeNotSatisfiable { size: item.size },
            },
        };
        let serve = Serve {
            hash,
            basename: item.basename.clone(),
            origin: item.origin.clone(),
            size: item.size,
            range,
            head_only: head,
        };
        if !head {
            self.account_share(&serve, from, resume, now);
        }
        Decision::Serve(serve)
    }

    /// Finishes a [`Decision::Lookup`]: redirects to one of `peers` chosen at random (never
    /// this daemon), or 404 when there is none.
    pub fn handle_lookup_result(
        &mut self,
        hash: &Sha256,
        basename: &str,
        peers: &[Peer],
    ) -> Decision {
        let others: Vec<&Peer> = peers.iter().filter(|p| p.name != self.name).collect();
        if others.is_empty() {
            return Decision::Refuse(Refusal::new(
                404,
                format!("failed to find {}", hash.prefix_hex()),
            ));
        }
        // Modulo bias is at most n / 2^64: irrelevant for a handful of peers.
        let pick = others[(self.rng.next_u64() % others.len() as u64) as usize];
        let name = if basename.is_empty() {
            hash.to_hex()
        } else {
            index::percent_encode_component(basename)
        };
        Decision::Redirect {
            location: format!("https://{}/{name}?sha256={hash}", pick.addr),
        }
    }

    // ----- Helpers -----

    fn account_share(&mut self, serve: &Serve, from: IpAddr, resume: bool, now: Timestamp) {
        let sent = serve.range.map_or(serve.size, |(a, b)| b - a + 1);
        self.download_saving = self.download_saving.saturating_add(sent);
        self.outputs.push_back(Output::Audit(AuditLine {
            time: now,
            event: AuditEvent::Share {
                hash: serve.hash,
                basename: serve.basename.to_string(),
                size: sent,
                ipaddr: from.to_string(),
            },
        }));
        if resume {
            return;
        }

        let Some(item) = self.items.get_mut(&serve.hash) else {
            return;
        };
        item.share_count = item.share_count.saturating_add(1);
        if item.is_limit_reached() {
            // The download that reaches the limit is still served: the shell opened the file
            // before it carries out the removal.
            let hash = item.hash;
            self.remove_item(&hash, now);
            self.items_changed(&[hash]);
        } else if item.origin == Origin::Published {
            self.outputs.push_back(Output::StoreShareCount {
                hash: item.hash,
                basename: item.basename.clone(),
                share_count: item.share_count,
            });
        }
    }

    fn insert_item(&mut self, item: Item) {
        if item.origin == Origin::Published {
            if let Some(at) = item.expires_at() {
                self.expiries.insert((at, item.hash));
            }
        }
        self.items.insert(item.hash, item);
    }

    /// Removes an item and queues its deletion; the caller reports the change.
    fn remove_item(&mut self, hash: &Sha256, now: Timestamp) {
        let Some(item) = self.items.remove(hash) else {
            return;
        };
        if let Some(at) = item.expires_at() {
            self.expiries.remove(&(at, item.hash));
        }
        if item.origin == Origin::Published {
            self.delete_output(&item, now);
        }
    }

    fn delete_output(&mut self, item: &Item, now: Timestamp) {
        self.outputs.push_back(Output::RemoveFile {
            hash: item.hash,
            basename: item.basename.clone(),
        });
        self.outputs.push_back(Output::Audit(AuditLine {
            time: now,
            event: AuditEvent::Delete {
                hash: item.hash,
                basename: item.basename.to_string(),
            },
        }));
    }

    /// Reports that the items `hashes` were added or removed.
    fn items_changed(&mut self, hashes: &[Sha256]) {
        if self.status == Status::Loading {
            // One Changed when loading completes, not one per file.
            return;
        }
        self.outputs.push_back(Output::Changed);
        for hash in hashes {
            self.sync_advertisement(*hash);
        }
    }

    /// Advertises or withdraws one hash so that it matches [`Passim::shareable`], in O(log n):
    /// a change to one item must not cost a pass over 100,000.
    fn sync_advertisement(&mut self, hash: Sha256) {
        let want = self.status == Status::Running
            && self
                .items
                .get(&hash)
                .is_some_and(|item| !item.is_disabled());
        if want && self.advertised.insert(hash) {
            self.outputs.push_back(Output::Advertise(hash));
        } else if !want && self.advertised.remove(&hash) {
            self.outputs.push_back(Output::Withdraw(hash));
        }
    }

    fn update_status(&mut self) {
        let status = if self.metered {
            Status::DisabledMetered
        } else {
            Status::Running
        };
        if status != self.status {
            self.status = status;
            self.outputs.push_back(Output::StatusChanged(status));
            self.outputs.push_back(Output::Changed);
        }
        self.refresh_advertisement();
    }

    /// Brings the whole advertisement in line with [`Passim::shareable`], for changes that
    /// touch every item (status, a static rescan).
    fn refresh_advertisement(&mut self) {
        let shareable = self.shareable();
        for gone in self.advertised.difference(&shareable) {
            self.outputs.push_back(Output::Withdraw(*gone));
        }
        for new in shareable.difference(&self.advertised) {
            self.outputs.push_back(Output::Advertise(*new));
        }
        self.advertised = shareable;
    }
}

/// Whether `ip` is this machine: 127.0.0.0/8, `::1`, or either mapped into IPv6.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests;
