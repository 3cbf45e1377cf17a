//! The data directory: published items as files, their attributes as xattrs.
//!
//! A published item is the file `<dir>/<sha256hex>-<basename>`. Its max-age, share-limit,
//! publishing program and (for next-reboot items) boot time live in `user.*` xattrs laid out as
//! the C version lays them out, so either daemon reads the other's directory. We add
//! `user.passim.share_count` so that a restart keeps the share-count, and keep the item's ctime
//! as the file's mtime: the inode's own ctime moves whenever an xattr is written.
//!
//! Publishing is crash-safe. [`Store::ingest`] streams the bytes into a temporary file in the
//! same directory while hashing them; [`Store::commit`] writes the xattrs, sets the mtime, syncs,
//! and renames the file into place. A crash at any moment leaves either the whole item or a
//! temporary file that the next [`Store::open`] removes.
//!
//! Everything here is blocking std IO: the daemon calls it from `spawn_blocking`.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use passim_core::{
    Basename, DEFAULT_MAX_AGE, DEFAULT_SHARE_LIMIT, Flags, InvalidBasename, Item, Origin, Sha256,
    Timestamp,
};
use sha2::Digest as _;
use tracing::{info, warn};
use xattr::FileExt as _;

/// Max-age in seconds, a 4-byte little-endian u32 (as the C version writes it).
pub(crate) const XATTR_MAX_AGE: &str = "user.max_age";
/// Share-limit, a 4-byte little-endian u32 (as the C version writes it).
pub(crate) const XATTR_SHARE_LIMIT: &str = "user.share_limit";
/// Basename of the publishing program, text without a terminating NUL.
pub(crate) const XATTR_CMDLINE: &str = "user.cmdline";
/// `btime` of `/proc/stat` at publish, decimal text; only on next-reboot items.
pub(crate) const XATTR_BOOT_TIME: &str = "user.boot_time";
/// Ours, not the C version's: the share-count, a 4-byte little-endian u32.
pub(crate) const XATTR_SHARE_COUNT: &str = "user.passim.share_count";

/// Every temporary file of an unfinished publish starts with this. A final name starts with 64
/// hex characters, so the two can never be confused.
const TEMP_PREFIX: &str = ".passim-tmp-";

/// How much of a file is read or copied at once: large enough that syscalls do not dominate,
/// small enough that many concurrent publishes stay cheap.
pub(crate) const IO_BUFFER: usize = 256 * 1024;

/// The data directory of published items.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// What [`Store::load`] found: the items, and every entry it skipped and why.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The published items, ordered by file name.
    pub items: Vec<Item>,
    /// Entries that are not items. Each was also logged as a warning.
    pub skipped: Vec<Skipped>,
}

/// A directory entry that was not loaded.
#[derive(Debug)]
pub struct Skipped {
    /// The entry's full path.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why a file in the data directory or a static directory is not an item.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// The file name is not UTF-8, so it cannot be a basename.
    NameNotUtf8,
    /// The name has no `-` between hash and basename.
    NoDash,
    /// The part before the first `-` is not 64 lower-case hex characters.
    BadHash,
    /// The basename part is not a valid basename.
    BadBasename(InvalidBasename),
    /// Not a regular file; the kind is named (`symlink`, `directory`, `FIFO`, …).
    NotRegularFile(&'static str),
    /// The file could not be opened, stat'ed or read.
    Unreadable(io::Error),
    /// The file changed while it was being hashed, so the hash may describe no version of it.
    ChangedWhileHashing,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NameNotUtf8 => f.write_str("name is not UTF-8"),
            Self::NoDash => f.write_str("name is not <sha256>-<basename>: no '-'"),
            Self::BadHash => f.write_str("name does not start with 64 lower-case hex characters"),
            Self::BadBasename(e) => write!(f, "invalid basename: {e}"),
            Self::NotRegularFile(kind) => write!(f, "not a regular file but a {kind}"),
            Self::Unreadable(e) => write!(f, "cannot read it: {e}"),
            Self::ChangedWhileHashing => f.write_str("it changed while being hashed"),
        }
    }
}

/// Why [`Store::ingest`] failed. The temporary file is gone either way.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// More than `max_size` bytes arrived.
    TooLarge {
        /// The limit that was exceeded.
        max_size: u64,
    },
    /// Reading the source failed.
    Io(io::Error),
    /// Writing the temporary file in the data directory failed (disk full, no inodes, …): the
    /// daemon's problem, not the caller's file's.
    Store(io::Error),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { max_size } => write!(f, "size limit is {max_size} bytes"),
            Self::Io(e) => write!(f, "cannot read the file: {e}"),
            Self::Store(e) => write!(f, "cannot store the file: {e}"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooLarge { .. } => None,
            Self::Io(e) | Self::Store(e) => Some(e),
        }
    }
}

impl From<io::Error> for IngestError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Bytes received and hashed but not yet published: a temporary file in the data directory.
///
/// Hand it to [`Store::commit`] or [`Store::discard`]. Dropped otherwise, it removes its
/// temporary file.
#[derive(Debug)]
pub struct Pending {
    file: File,
    temp_path: PathBuf,
    hash: Sha256,
    size: u64,
    /// Whether dropping this removes `temp_path`. Cleared once the file is renamed away, or
    /// when a test simulates a crash.
    armed: bool,
}

impl Pending {
    /// SHA-256 of the bytes received.
    pub fn hash(&self) -> Sha256 {
        self.hash
    }

    /// Number of bytes received.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed {
            remove_temp(&self.temp_path);
        }
    }
}

/// The steps of [`Store::commit`], in order. A test stops after any one of them to stand for a
/// crash there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitStep {
    WriteXattrs,
    SetMtime,
    SyncFile,
    Rename,
    SyncDir,
}

impl CommitStep {
    const ALL: [Self; 5] = [
        Self::WriteXattrs,
        Self::SetMtime,
        Self::SyncFile,
        Self::Rename,
        Self::SyncDir,
    ];
}

impl Store {
    /// Opens the data directory, creating it (mode 0700, with missing parents) if needed, and
    /// removes the temporary files an interrupted publish left behind.
    ///
    /// Only one `Store` may be open on a directory at a time: opening a second one removes the
    /// first one's publishes in progress.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let store = Self { dir };
        store.remove_leftovers()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the item `hash`/`basename` lives: `<dir>/<hash>-<basename>`.
    pub fn item_path(&self, hash: &Sha256, basename: &Basename) -> PathBuf {
        self.dir.join(format!("{hash}-{basename}"))
    }

    /// Reads every published item in the directory.
    ///
    /// No single entry is fatal: anything that is not a readable regular file named
    /// `<lower-case sha256 hex>-<basename>` is skipped, logged as a warning and listed in
    /// [`Loaded::skipped`]. Missing xattrs take their defaults (max-age 86400, share-limit 5,
    /// share-count 0). The hash is taken from the name, not recomputed: this is our own
    /// directory. Flags are left empty; the core derives them from `boot_time`.
    ///
    /// Fails only if the directory itself cannot be read.
    pub fn load(&self) -> io::Result<Loaded> {
        let mut loaded = Loaded::default();
        for entry in sorted_entries(&self.dir)? {
            let name = entry.file_name();
            if name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                // A publish in progress, or a leftover the next `open` removes.
                continue;
            }
            let path = entry.path();
            match load_entry(&path, &name, &entry) {
                Ok(item) => loaded.items.push(item),
                Err(reason) => {
                    warn!(
                        path = %path.display(),
                        reason = %reason,
                        "skipping file in data directory"
                    );
                    loaded.skipped.push(Skipped { path, reason });
                }
            }
        }
        Ok(loaded)
    }

    /// Receives a file to publish: copies `reader` into a new temporary file in the data
    /// directory while hashing it, never holding more than one buffer in memory.
    ///
    /// Stops as soon as more than `max_size` bytes arrive. On any error the temporary file is
    /// removed.
    pub fn ingest(&self, mut reader: impl Read, max_size: u64) -> Result<Pending, IngestError> {
        let mut pending = self.create_temp().map_err(IngestError::Store)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; IO_BUFFER];

        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(IngestError::Io(e)),
            };
            pending.size = pending.size.saturating_add(n as u64);
            if pending.size > max_size {
                return Err(IngestError::TooLarge { max_size });
            }
            hasher.update(&buf[..n]);
            pending
                .file
                .write_all(&buf[..n])
                .map_err(IngestError::Store)?;
        }

        pending.hash = Sha256::from_bytes(hasher.finalize().into());
        Ok(pending)
    }

    /// Publishes `pending` as `item`: writes the xattrs, sets the mtime to `item.ctime`, syncs
    /// the file, renames it to [`Store::item_path`] and syncs the directory. Returns the final
    /// path.
    ///
    /// `item.hash` must be `pending.hash()`. An existing file of the same name is replaced; the
    /// caller refuses duplicate hashes before it gets here. On error nothing is left behind.
    pub fn commit(&self, pending: Pending, item: &Item) -> io::Result<PathBuf> {
        self.commit_steps(pending, item, None)
    }

    /// Drops a received file without publishing it.
    pub fn discard(&self, mut pending: Pending) -> io::Result<()> {
        pending.armed = false;
        match fs::remove_file(&pending.temp_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes an item's file. A file that is already gone is not an error.
    ///
    /// The directory is not synced: an item that comes back after a crash is expired or
    /// limited again by the core, so durability is not worth an fsync here.
    pub fn remove(&self, hash: &Sha256, basename: &Basename) -> io::Result<()> {
        match fs::remove_file(self.item_path(hash, basename)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Records an item's share-count in its xattr, so a restart keeps it.
    ///
    /// Not synced: after a crash the count may be a little low, which shares an item a few
    /// times more than its limit, as the C version always did after a restart.
    pub fn store_share_count(
        &self,
        hash: &Sha256,
        basename: &Basename,
        count: u32,
    ) -> io::Result<()> {
        let (file, _) = open_item(&self.item_path(hash, basename))?;
        file.set_xattr(XATTR_SHARE_COUNT, &count.to_le_bytes())
    }

    /// [`Store::commit`], stopping after `stop_after` as if the process died there: the file is
    /// left exactly as it is, and the returned path is wherever it is at that moment.
    #[cfg(test)]
    fn commit_until(
        &self,
        pending: Pending,
        item: &Item,
        stop_after: CommitStep,
    ) -> io::Result<PathBuf> {
        self.commit_steps(pending, item, Some(stop_after))
    }

    fn commit_steps(
        &self,
        mut pending: Pending,
        item: &Item,
        stop_after: Option<CommitStep>,
    ) -> io::Result<PathBuf> {
        if item.hash != pending.hash {
            // Storing the bytes under another hash would serve wrong content under that name.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "item hash {} does not match the received {}",
                    item.hash, pending.hash
                ),
            ));
        }
        let final_path = self.item_path(&item.hash, &item.basename);
        let mut current = pending.temp_path.clone();

        // Every `?` below drops `pending`, which removes the temporary file while it is armed.
        for step in CommitStep::ALL {
            match step {
                CommitStep::WriteXattrs => write_xattrs(&pending.file, item)?,
                // After the xattrs, so no later write moves it; mtime, because writing an xattr
                // changes the inode's ctime.
                CommitStep::SetMtime => pending.file.set_modified(system_time(item.ctime))?,
                CommitStep::SyncFile => pending.file.sync_all()?,
                CommitStep::Rename => {
                    fs::rename(&pending.temp_path, &final_path)?;
                    pending.armed = false;
                    current.clone_from(&final_path);
                }
                CommitStep::SyncDir => {
                    if let Err(e) = sync_dir(&self.dir) {
                        // The caller will report a failed publish, so the item must not appear
                        // on the next start either.
                        let _ = fs::remove_file(&final_path);
                        return Err(e);
                    }
                }
            }
            if stop_after == Some(step) {
                pending.armed = false;
                return Ok(current);
            }
        }

        info!(path = %final_path.display(), size = pending.size, "stored published item");
        Ok(final_path)
    }

    /// Creates a new, empty temporary file: exclusive, mode 0644 whatever the umask.
    fn create_temp(&self) -> io::Result<Pending> {
        static NEXT: AtomicU64 = AtomicU64::new(0);

        // The pid separates daemons that share a directory by mistake; the counter separates
        // publishes within one. A clash with a leftover is retried, not reused.
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let temp_path = self
                .dir
                .join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&temp_path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let pending = Pending {
                file,
                temp_path,
                hash: Sha256::from_bytes([0; 32]),
                size: 0,
                armed: true,
            };
            // The daemon may run with umask 077; peers and tools expect 0644 as from the C
            // version.
            pending
                .file
                .set_permissions(fs::Permissions::from_mode(0o644))?;
            return Ok(pending);
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary file name in the data directory",
        ))
    }

    fn remove_leftovers(&self) -> io::Result<()> {
        for entry in sorted_entries(&self.dir)? {
            if !entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
            {
                continue;
            }
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => {
                    info!(path = %path.display(), "removed leftover of an interrupted publish")
                }
                Err(e) => {
                    warn!(
                        path = %path.display(),
                        error = %e,
                        "cannot remove leftover of an interrupted publish"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Opens a file to serve it: without following a symlink, and only if it is a regular file.
/// Returns the file and its size, both from the one open file, so nothing can be swapped in
/// between.
pub fn open_item(path: &Path) -> io::Result<(File, u64)> {
    let (file, meta) = open_nofollow(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a {}, not a regular file",
                path.display(),
                file_kind(meta.file_type())
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// This boot's identity: the `btime` line of `/proc/stat`, seconds since the epoch.
pub fn boot_time() -> Option<u64> {
    parse_btime(&fs::read_to_string("/proc/stat").ok()?)
}

/// Opens `path` read-only, without following a symlink and without blocking on a FIFO, and
/// stats the open file. Regular-file checks must use this metadata, never a separate `stat`.
pub(crate) fn open_nofollow(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Opens a directory entry that should be a regular file, for a loader to read.
///
/// The entry's type from `readdir` rules out symlinks, devices and the like before anything is
/// opened (opening a device can have effects); the open file's `fstat` is what decides, in case
/// the entry was swapped since.
pub(crate) fn open_entry(
    path: &Path,
    entry: &fs::DirEntry,
) -> Result<(File, Metadata), SkipReason> {
    match entry.file_type() {
        Ok(file_type) if !file_type.is_file() => {
            return Err(SkipReason::NotRegularFile(file_kind(file_type)));
        }
        _ => {}
    }
    let (file, meta) = open_nofollow(path).map_err(|e| match e.raw_os_error() {
        // O_NOFOLLOW met a symlink, or a socket cannot be opened.
        Some(libc::ELOOP) => SkipReason::NotRegularFile("symlink"),
        Some(libc::ENXIO) => SkipReason::NotRegularFile("socket"),
        _ => SkipReason::Unreadable(e),
    })?;
    if !meta.is_file() {
        return Err(SkipReason::NotRegularFile(file_kind(meta.file_type())));
    }
    Ok((file, meta))
}

/// The entries of `dir`, ordered by name so that loading is deterministic. An entry that
/// cannot be read is logged and left out.
pub(crate) fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        match entry {
            Ok(entry) => entries.push(entry),
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot read a directory entry"),
        }
    }
    entries.sort_by_key(fs::DirEntry::file_name);
    Ok(entries)
}

/// The file's mtime as a timestamp; times before the epoch become the epoch.
pub(crate) fn mtime(meta: &Metadata) -> Timestamp {
    let secs = u64::try_from(meta.mtime()).unwrap_or(0);
    let micros = u64::try_from(meta.mtime_nsec()).unwrap_or(0) / 1000;
    Timestamp::from_micros(secs.saturating_mul(1_000_000).saturating_add(micros))
}

/// A text xattr as the C version writes it (no terminating NUL), tolerating one anyway.
pub(crate) fn trim_text(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &value[..end]
}

/// A name for the kind of a non-regular file, for logs.
pub(crate) fn file_kind(file_type: fs::FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn load_entry(path: &Path, name: &OsStr, entry: &fs::DirEntry) -> Result<Item, SkipReason> {
    let name = name.to_str().ok_or(SkipReason::NameNotUtf8)?;
    let (hex, basename) = name.split_once('-').ok_or(SkipReason::NoDash)?;
    // Lower case only: `item_path` writes lower case, so an upper-case name could be loaded but
    // never removed.
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SkipReason::BadHash);
    }
    let hash = Sha256::parse_hex(hex).map_err(|_| SkipReason::BadHash)?;
    let basename = Basename::new(basename).map_err(SkipReason::BadBasename)?;
    let (file, meta) = open_entry(path, entry)?;

    let cmdline = read_xattr(&file, path, XATTR_CMDLINE)
        .map(|v| String::from_utf8_lossy(trim_text(&v)).into_owned())
        .unwrap_or_default();
    let boot_time = read_xattr(&file, path, XATTR_BOOT_TIME).and_then(|v| {
        let parsed = std::str::from_utf8(trim_text(&v))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if parsed.is_none() {
            warn!(
                path = %path.display(),
                xattr = XATTR_BOOT_TIME,
                "ignoring a boot time that is not a number"
            );
        }
        parsed
    });

    Ok(Item {
        hash,
        basename,
        cmdline,
        max_age: read_u32(&file, path, XATTR_MAX_AGE, DEFAULT_MAX_AGE),
        share_limit: read_u32(&file, path, XATTR_SHARE_LIMIT, DEFAULT_SHARE_LIMIT),
        share_count: read_u32(&file, path, XATTR_SHARE_COUNT, 0),
        size: meta.len(),
        ctime: mtime(&meta),
        flags: Flags::NONE,
        boot_time,
        origin: Origin::Published,
    })
}

/// An xattr's value; `None` if it is missing or cannot be read (the latter logged).
fn read_xattr(file: &File, path: &Path, name: &str) -> Option<Vec<u8>> {
    match file.get_xattr(name) {
        Ok(value) => value,
        // A filesystem without xattrs: every item takes the defaults, as if none were set.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => None,
        Err(e) => {
            warn!(
                path = %path.display(),
                xattr = name,
                error = %e,
                "cannot read xattr, using the default"
            );
            None
        }
    }
}

/// A 4-byte little-endian u32 xattr, or `default` if it is missing or the wrong size.
fn read_u32(file: &File, path: &Path, name: &str, default: u32) -> u32 {
    let Some(value) = read_xattr(file, path, name) else {
        return default;
    };
    match <[u8; 4]>::try_from(value.as_slice()) {
        Ok(bytes) => u32::from_le_bytes(bytes),
        Err(_) => {
            warn!(
                path = %path.display(),
                xattr = name,
                len = value.len(),
                default,
                "xattr is not a 4-byte integer, using the default"
            );
            default
        }
    }
}

fn write_xattrs(file: &File, item: &Item) -> io::Result<()> {
    file.set_xattr(XATTR_MAX_AGE, &item.max_age.to_le_bytes())?;
    file.set_xattr(XATTR_SHARE_LIMIT, &item.share_limit.to_le_bytes())?;
    file.set_xattr(XATTR_SHARE_COUNT, &item.share_count.to_le_bytes())?;
    file.set_xattr(XATTR_CMDLINE, item.cmdline.as_bytes())?;
    if let Some(boot_time) = item.boot_time {
        file.set_xattr(XATTR_BOOT_TIME, boot_time.to_string().as_bytes())?;
    }
    Ok(())
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(t.as_micros())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_temp(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            warn!(path = %path.display(), error = %e, "cannot remove temporary file");
        }
        _ => {}
    }
}

fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    /// SHA-256 of `hello`.
    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn item(hash: Sha256, name: &str, size: u64) -> Item {
        Item {
            hash,
            basename: Basename::new(name).unwrap(),
            cmdline: "fwupd".into(),
            max_age: 3600,
            share_limit: 7,
            share_count: 2,
            size,
            ctime: Timestamp::from_micros(1_700_000_000_123_456),
            flags: Flags::NONE,
            boot_time: Some(1_699_999_000),
            origin: Origin::Published,
        }
    }

    fn publish(store: &Store, bytes: &[u8], name: &str) -> (Item, PathBuf) {
        let pending = store.ingest(bytes, 1 << 20).unwrap();
        let item = item(pending.hash(), name, pending.size());
        let path = store.commit(pending, &item).unwrap();
        (item, path)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn publish_then_load_round_trips_every_attribute() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lib/passim/data");
        let store = Store::open(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);

        let (item, path) = publish(&store, b"hello", "HELLO.md");
        assert_eq!(item.hash.to_hex(), HELLO);
        assert_eq!(path, dir.join(format!("{HELLO}-HELLO.md")));
        assert_eq!(path, store.item_path(&item.hash, &item.basename));
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);

        let loaded = store.load().unwrap();
        assert!(loaded.skipped.is_empty());
        assert_eq!(loaded.items, vec![item]);
    }

    #[test]
    fn xattrs_have_the_c_versions_byte_format() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (_, path) = publish(&store, b"hello", "HELLO.md");

        let raw = |name| xattr::get(&path, name).unwrap().unwrap();
        assert_eq!(raw(XATTR_MAX_AGE), vec![0x10, 0x0e, 0, 0]);
        assert_eq!(raw(XATTR_SHARE_LIMIT), vec![7, 0, 0, 0]);
        assert_eq!(raw(XATTR_SHARE_COUNT), vec![2, 0, 0, 0]);
        assert_eq!(raw(XATTR_CMDLINE), b"fwupd");
        assert_eq!(raw(XATTR_BOOT_TIME), b"1699999000");
    }

    #[test]
    fn items_without_boot_time_have_no_boot_time_xattr() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let pending = store.ingest(&b"hello"[..], 5).unwrap();
        let item = Item {
            boot_time: None,
            ..item(pending.hash(), "a", 5)
        };
        let path = store.commit(pending, &item).unwrap();
        assert_eq!(xattr::get(&path, XATTR_BOOT_TIME).unwrap(), None);
        assert_eq!(store.load().unwrap().items, vec![item]);
    }

    #[test]
    fn missing_or_wrongly_sized_xattrs_take_the_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let path = tmp.path().join(format!("{HELLO}-c-written.txt"));
        fs::write(&path, b"hello").unwrap();
        // Text instead of 4 bytes, as a careless tool might write it. (Four digits of text would
        // be taken as a number: the format cannot tell them apart.)
        xattr::set(&path, XATTR_MAX_AGE, b"36000").unwrap();
        xattr::set(&path, XATTR_SHARE_COUNT, &[1, 0]).unwrap();

        let loaded = store.load().unwrap();
        assert!(loaded.skipped.is_empty());
        let [item] = loaded.items.as_slice() else {
            panic!("{loaded:?}")
        };
        assert_eq!(item.basename.as_str(), "c-written.txt");
        assert_eq!(item.max_age, DEFAULT_MAX_AGE);
        assert_eq!(item.share_limit, DEFAULT_SHARE_LIMIT);
        assert_eq!(item.share_count, 0);
        assert_eq!(item.cmdline, "");
        assert_eq!(item.boot_time, None);
        assert_eq!(item.size, 5);
    }

    #[test]
    fn share_count_persists() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (item, _) = publish(&store, b"hello", "HELLO.md");
        store
            .store_share_count(&item.hash, &item.basename, 4)
            .unwrap();
        drop(store);

        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.load().unwrap().items[0].share_count, 4);
    }

    #[test]
    fn stray_entries_are_skipped_and_loading_continues() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let dir = tmp.path();
        let (good, _) = publish(&store, b"hello", "HELLO.md");

        let other = "b".repeat(64);
        fs::write(dir.join("README"), b"no dash").unwrap();
        fs::write(dir.join("zz-not-hex"), b"").unwrap();
        fs::write(dir.join(format!("{}-upper", HELLO.to_uppercase())), b"").unwrap();
        fs::write(dir.join(format!("{other}-")), b"").unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, b"secret").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join(format!("{other}-link"))).unwrap();
        mkfifo(&dir.join(format!("{other}-fifo")));
        fs::create_dir(dir.join(format!("{other}-dir"))).unwrap();
        fs::write(dir.join(format!("{other}-\u{1}")), b"").unwrap();

        let loaded = store.load().unwrap();
        assert_eq!(loaded.items, vec![good]);
        let reasons: Vec<_> = loaded
            .skipped
            .iter()
            .map(|s| {
                let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
                (name, s.reason.to_string())
            })
            .collect();
        let expect = |name: String, reason: SkipReason| (name, reason.to_string());
        assert_eq!(
            reasons,
            vec![
                expect(
                    format!("{}-upper", HELLO.to_uppercase()),
                    SkipReason::BadHash
                ),
                expect("README".into(), SkipReason::NoDash),
                expect(
                    format!("{other}-"),
                    SkipReason::BadBasename(InvalidBasename::Empty)
                ),
                expect(
                    format!("{other}-\u{1}"),
                    SkipReason::BadBasename(InvalidBasename::Control)
                ),
                expect(
                    format!("{other}-dir"),
                    SkipReason::NotRegularFile("directory")
                ),
                expect(format!("{other}-fifo"), SkipReason::NotRegularFile("FIFO")),
                expect(
                    format!("{other}-link"),
                    SkipReason::NotRegularFile("symlink")
                ),
                expect("zz-not-hex".into(), SkipReason::BadHash),
            ]
        );
    }

    #[test]
    fn unreadable_file_is_skipped() {
        // Root reads a mode-000 file anyway, so the case cannot be built when the tests run as
        // root (as they do in the CI container); it is covered wherever they run unprivileged.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (good, _) = publish(&store, b"hello", "HELLO.md");
        let locked = tmp.path().join(format!("{}-locked", "c".repeat(64)));
        fs::write(&locked, b"x").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();

        let loaded = store.load().unwrap();
        assert_eq!(loaded.items, vec![good]);
        assert!(matches!(
            loaded.skipped[..],
            [Skipped {
                reason: SkipReason::Unreadable(_),
                ..
            }]
        ));
    }

    #[test]
    fn exactly_max_size_is_accepted_and_one_more_byte_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();

        let pending = store.ingest(&b"0123456789"[..], 10).unwrap();
        assert_eq!(pending.size(), 10);
        store.discard(pending).unwrap();
        assert!(names(tmp.path()).is_empty());

        let err = store.ingest(&b"0123456789a"[..], 10).unwrap_err();
        assert!(
            matches!(err, IngestError::TooLarge { max_size: 10 }),
            "{err}"
        );
        assert_eq!(err.to_string(), "size limit is 10 bytes");
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn large_input_is_streamed_in_chunks_and_hashed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let data: Vec<u8> = (0..3 * IO_BUFFER + 17).map(|i| (i % 251) as u8).collect();

        let pending = store.ingest(data.as_slice(), data.len() as u64).unwrap();
        let expected: [u8; 32] = sha2::Sha256::digest(&data).into();
        assert_eq!(pending.hash(), Sha256::from_bytes(expected));
        let item = item(pending.hash(), "big.bin", pending.size());
        let path = store.commit(pending, &item).unwrap();
        assert_eq!(fs::read(path).unwrap(), data);

        let err = store
            .ingest(data.as_slice(), data.len() as u64 - 1)
            .unwrap_err();
        assert!(matches!(err, IngestError::TooLarge { .. }));
        assert_eq!(names(tmp.path()).len(), 1);
    }

    #[test]
    fn reader_error_leaves_no_file() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("peer went away"));
                }
                self.0 -= 1;
                buf[0] = b'x';
                Ok(1)
            }
        }

        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let err = store.ingest(Failing(3), 100).unwrap_err();
        assert!(matches!(err, IngestError::Io(_)), "{err}");
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn dropped_pending_removes_its_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let pending = store.ingest(&b"hello"[..], 5).unwrap();
        assert_eq!(names(tmp.path()).len(), 1);
        drop(pending);
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn commit_with_another_hash_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let pending = store.ingest(&b"hello"[..], 5).unwrap();
        let wrong = item(Sha256::from_bytes([1; 32]), "a", 5);
        assert!(store.commit(pending, &wrong).is_err());
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn a_crash_after_any_commit_step_leaves_nothing_or_the_whole_item() {
        for step in CommitStep::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let store = Store::open(tmp.path()).unwrap();
            let pending = store.ingest(&b"hello"[..], 5).unwrap();
            let item = item(pending.hash(), "HELLO.md", 5);
            let left = store.commit_until(pending, &item, step).unwrap();
            assert!(
                left.exists(),
                "{step:?}: the simulated crash keeps the file"
            );
            drop(store);

            let store = Store::open(tmp.path()).unwrap();
            let loaded = store.load().unwrap();
            assert!(loaded.skipped.is_empty(), "{step:?}: {:?}", loaded.skipped);
            if step == CommitStep::Rename || step == CommitStep::SyncDir {
                assert_eq!(loaded.items, vec![item], "{step:?}");
                assert_eq!(names(tmp.path()), vec![format!("{HELLO}-HELLO.md")]);
            } else {
                assert!(loaded.items.is_empty(), "{step:?}");
                assert!(
                    names(tmp.path()).is_empty(),
                    "{step:?}: {:?}",
                    names(tmp.path())
                );
            }
        }
    }

    #[test]
    fn remove_deletes_and_a_missing_file_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (item, path) = publish(&store, b"hello", "HELLO.md");
        store.remove(&item.hash, &item.basename).unwrap();
        assert!(!path.exists());
        store.remove(&item.hash, &item.basename).unwrap();
    }

    #[test]
    fn open_item_serves_only_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"hello").unwrap();
        let (mut f, size) = open_item(&file).unwrap();
        assert_eq!(size, 5);
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_item(&link).is_err());
        assert!(open_item(tmp.path()).is_err());
        let fifo = tmp.path().join("fifo");
        mkfifo(&fifo);
        assert!(
            open_item(&fifo).is_err(),
            "and does not block on a FIFO without a writer"
        );
    }

    #[test]
    fn boot_time_comes_from_the_btime_line() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
        assert_eq!(parse_btime("btime x\n"), None);
        assert!(boot_time().is_some_and(|t| t > 0));
    }
}
