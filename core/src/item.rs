//! Items: what passim holds and shares, and the small types that describe them.

use std::fmt;
use std::path::PathBuf;

use crate::{Basename, Sha256};

/// A point in wall-clock time: microseconds since the Unix epoch, UTC.
///
/// The core never reads a clock; every input carries the time the shell read. Wall-clock time,
/// not a monotonic instant, because max-age is measured from a `ctime` stored on disk and must
/// survive restarts and reboots, as in the C version.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Self = Self(0);

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self + secs` seconds, saturating rather than wrapping.
    pub const fn add_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    /// Whole seconds from `earlier` to `self`, 0 if `earlier` is later.
    pub const fn secs_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0) / 1_000_000
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Item flags, as the `flags` bit field of the D-Bus API.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u64);

impl Flags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// The item is held but not shared (bit 0).
    pub const DISABLED: Self = Self(1);
    /// The item was published to be shared only after the next reboot (bit 1).
    pub const NEXT_REBOOT: Self = Self(2);

    /// From the D-Bus bit field; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & 3)
    }

    /// The D-Bus bit field.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with `other`'s bits set.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` with `other`'s bits cleared.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Flags {
    /// Human-readable names, as `passim status` prints them: `Disabled, Next Reboot`.
    pub fn describe(self) -> String {
        let mut names = Vec::new();
        if self.contains(Self::DISABLED) {
            names.push("Disabled");
        }
        if self.contains(Self::NEXT_REBOOT) {
            names.push("Next Reboot");
        }
        names.join(", ")
    }
}

/// The daemon's status, as the `Status` D-Bus property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u32)]
pub enum Status {
    /// Not yet known (0).
    #[default]
    Unknown = 0,
    /// Starting up (1).
    Starting = 1,
    /// Loading items from disk (2).
    Loading = 2,
    /// Serving and advertising (3).
    Running = 3,
    /// On a metered connection: nothing is advertised (4).
    DisabledMetered = 4,
}

impl Status {
    /// The D-Bus value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// From the D-Bus value; unknown numbers are [`Status::Unknown`].
    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Loading,
            3 => Self::Running,
            4 => Self::DisabledMetered,
            _ => Self::Unknown,
        }
    }

    /// How `passim status` shows it.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Starting => "Starting",
            Self::Loading => "Loading…",
            Self::Running => "Running",
            Self::DisabledMetered => "Disabled (metered network)",
        }
    }
}

/// Where an item's bytes live, which decides what removing it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Published through the API and owned by passim: `<data dir>/<hash>-<basename>`. Removing
    /// the item deletes the file.
    Published,
    /// A file in a static directory from `passim.d`, owned by the operator: never deleted,
    /// never expired, never limited.
    Static {
        /// The file's full path.
        path: PathBuf,
    },
}

/// Default max-age of an item whose `user.max_age` is missing: one day.
pub const DEFAULT_MAX_AGE: u32 = 86_400;

/// Default share-limit of an item whose `user.share_limit` is missing.
pub const DEFAULT_SHARE_LIMIT: u32 = 5;

/// A file passim holds and may share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// SHA-256 of the content, computed by the daemon.
    pub hash: Sha256,
    /// The name it was published under.
    pub basename: Basename,
    /// Basename of the publishing program, empty if unknown.
    pub cmdline: String,
    /// Seconds the item lives after `ctime`; `u32::MAX` never expires.
    pub max_age: u32,
    /// Times the item may be served; 0 and `u32::MAX` mean unlimited.
    pub share_limit: u32,
    /// Times the item has been served.
    pub share_count: u32,
    /// Bytes.
    pub size: u64,
    /// When it was published.
    pub ctime: Timestamp,
    /// Disabled / next-reboot.
    pub flags: Flags,
    /// The boot (`btime` of `/proc/stat`) it was published in, for next-reboot items.
    pub boot_time: Option<u64>,
    /// Where its bytes live.
    pub origin: Origin,
}

impl Item {
    /// Whether the share-limit bounds this item (0 and `u32::MAX` mean unlimited).
    pub const fn has_share_limit(&self) -> bool {
        self.share_limit != 0 && self.share_limit != u32::MAX
    }

    /// Whether this item ever expires.
    pub const fn has_max_age(&self) -> bool {
        self.max_age != u32::MAX
    }

    /// When the item expires, if ever: `ctime + max_age`. An item is expired from this instant
    /// on.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.has_max_age()
            .then(|| self.ctime.add_secs(u64::from(self.max_age)))
    }

    /// Whether the item is disabled (held, not shared).
    pub const fn is_disabled(&self) -> bool {
        self.flags.contains(Flags::DISABLED)
    }

    /// Whether serving it once more reaches its share-limit.
    pub const fn is_limit_reached(&self) -> bool {
        self.has_share_limit() && self.share_count >= self.share_limit
    }

    /// Age in whole seconds at `now`.
    pub const fn age_secs(&self, now: Timestamp) -> u64 {
        now.secs_since(self.ctime)
    }

    /// The file name in the data directory: `<hash>-<basename>`.
    pub fn stored_name(&self) -> String {
        format!("{}-{}", self.hash, self.basename)
    }
}
