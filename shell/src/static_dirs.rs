//! Static directories: operator-owned folders, named in `passim.d/*.conf`, whose regular files
//! are all shared with no max-age and no share-limit.
//!
//! Hashing a large folder on every start is slow, so each file's SHA-256 is cached in the xattr
//! `user.checksum.sha256`, which the C version also writes and reads. The C version trusts that
//! xattr forever, so a file edited in place is served under its old hash. We trust it only when
//! our own `user.passim.checksum_stamp` still matches the file's size and mtime; otherwise the
//! file is hashed again and both xattrs are rewritten.
//!
//! Everything here is blocking std IO: the daemon calls it from `spawn_blocking`.

use std::collections::BTreeSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use passim_core::config::StaticDirConfig;
use passim_core::{Basename, Flags, Item, Origin, Sha256};
use sha2::Digest as _;
use tracing::{debug, warn};
use xattr::FileExt as _;

use crate::store::{IO_BUFFER, SkipReason, Skipped, mtime, open_entry, sorted_entries, trim_text};

/// The cached hash: lower-case hex, as the C version writes it.
const XATTR_CHECKSUM: &str = "user.checksum.sha256";
/// Ours: `<size>:<mtime seconds>.<mtime nanoseconds>` of the file when the hash was cached.
const XATTR_STAMP: &str = "user.passim.checksum_stamp";

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The shared files, directory by directory, each ordered by name.
    pub items: Vec<Item>,
    /// Entries that are not shared, and why. Invalid names and unreadable files were logged as
    /// warnings, other kinds of file (subdirectories, symlinks, …) at debug level.
    pub skipped: Vec<Skipped>,
    /// How many files were hashed, because they had no valid cached hash.
    pub hashed: usize,
    /// How many files' hashes came from the cache.
    pub cached: usize,
}

/// Reads the static-dir configs: every `*.conf` file in `passim_d`, in name order, and returns
/// the directories they name, each once.
///
/// A missing folder means no static directories. A config that cannot be read or names no
/// directory is logged and skipped.
pub fn read_configs(passim_d: &Path) -> Vec<PathBuf> {
    let entries = match sorted_entries(passim_d) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            debug!(dir = %passim_d.display(), "no static-dir config folder");
            return Vec::new();
        }
        Err(e) => {
            warn!(dir = %passim_d.display(), error = %e, "cannot read static-dir config folder");
            return Vec::new();
        }
    };

    let mut seen = BTreeSet::new();
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "conf") {
            continue;
        }
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                warn!(
                    config = %path.display(),
                    error = %e,
                    "cannot read static-dir config, skipping it"
                );
                continue;
            }
        };
        let (config, warnings) = StaticDirConfig::parse(&text);
        for warning in warnings {
            warn!(
                config = %path.display(),
                warning = %warning,
                "ignoring part of static-dir config"
            );
        }
        match config {
            Ok(config) => {
                let dir = PathBuf::from(config.path);
                tracing::trace!(
                    config = %path.display(),
                    dir = %dir.display(),
                    "static directory configured"
                );
                if seen.insert(dir.clone()) {
                    dirs.push(dir);
                }
            }
            Err(reason) => {
                warn!(config = %path.display(), reason = %reason, "skipping static-dir config");
            }
        }
    }
    dirs
}

/// A cheap summary of everything a rescan depends on: the names, sizes and modification times
/// of the configs in `passim_d` and of the entries of each static directory (`lstat` only,
/// nothing is opened or read). Two equal fingerprints mean a rescan would find the same files.
pub fn fingerprint(passim_d: &Path, dirs: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};

    // Stable within one process, which is all a change detector needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for dir in std::iter::once(passim_d).chain(dirs.iter().map(PathBuf::as_path)) {
        dir.hash(&mut h);
        let Ok(entries) = fs::read_dir(dir) else {
            0xdead_u32.hash(&mut h);
            continue;
        };
        let mut seen: Vec<(std::ffi::OsString, u64, i64, i64, u32)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let m = fs::symlink_metadata(e.path()).ok()?;
                Some((e.file_name(), m.size(), m.mtime(), m.mtime_nsec(), m.mode()))
            })
            .collect();
        seen.sort();
        seen.hash(&mut h);
    }
    h.finish()
}

/// Hashes (or takes from the cache) every regular file directly in each of `dirs`.
///
/// Not recursive. A missing directory is skipped. Symlinks, FIFOs, sockets, devices and
/// subdirectories are never opened as files, and a file whose name is not a valid basename is
/// skipped: nothing here is fatal.
pub fn scan(dirs: &[PathBuf]) -> Scan {
    let mut scan = Scan::default();
    for dir in dirs {
        let entries = match sorted_entries(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                debug!(dir = %dir.display(), "static directory does not exist, skipping it");
                continue;
            }
            Err(e) => {
                warn!(
                    dir = %dir.display(),
                    error = %e,
                    "cannot read static directory, skipping it"
                );
                continue;
            }
        };
        for entry in entries {
            let path = entry.path();
            match scan_entry(&path, &entry, &mut scan) {
                Ok(item) => scan.items.push(item),
                Err(reason) => {
                    if matches!(reason, SkipReason::NotRegularFile(_)) {
                        // Subdirectories and symlinks are ordinary in a shared folder.
                        debug!(path = %path.display(), reason = %reason, "not sharing static file");
                    } else {
                        warn!(path = %path.display(), reason = %reason, "not sharing static file");
                    }
                    scan.skipped.push(Skipped { path, reason });
                }
            }
        }
    }
    scan
}

fn scan_entry(path: &Path, entry: &fs::DirEntry, scan: &mut Scan) -> Result<Item, SkipReason> {
    let name = entry.file_name();
    let name = name.to_str().ok_or(SkipReason::NameNotUtf8)?;
    let basename = Basename::new(name).map_err(SkipReason::BadBasename)?;
    let (file, meta) = open_entry(path, entry)?;

    let stamp = stamp(&meta);
    let hash = match cached_hash(&file, &stamp) {
        Some(hash) => {
            scan.cached += 1;
            hash
        }
        None => {
            let hash = hash_file(&file).map_err(SkipReason::Unreadable)?;
            let after = file.metadata().map_err(SkipReason::Unreadable)?;
            if self::stamp(&after) != stamp {
                // Being written right now; the next scan sees the finished file.
                return Err(SkipReason::ChangedWhileHashing);
            }
            scan.hashed += 1;
            save_hash(&file, path, &hash, &stamp);
            hash
        }
    };

    Ok(Item {
        hash,
        basename,
        cmdline: String::new(),
        max_age: u32::MAX,
        share_limit: 0,
        share_count: 0,
        size: meta.len(),
        ctime: mtime(&meta),
        flags: Flags::NONE,
        boot_time: None,
        origin: Origin::Static {
            path: path.to_owned(),
        },
    })
}

/// What the cached hash is valid for. An in-place edit changes the mtime (and usually the size)
/// but keeps the xattrs, so this tells a stale hash from a current one.
///
/// Not caught: a same-size edit that lands within one mtime tick of the write before it (the
/// kernel's timestamps are coarser than nanoseconds, e.g. a few milliseconds on ext4, two seconds
/// on FAT), after that earlier version was hashed. The stale hash is then advertised; that is
/// safe, because every client checks the SHA-256 of what it downloads and discards a mismatch.
fn stamp(meta: &Metadata) -> String {
    format!("{}:{}.{:09}", meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// The cached hash, if its stamp matches `stamp`.
fn cached_hash(file: &File, stamp: &str) -> Option<Sha256> {
    let stored = file.get_xattr(XATTR_STAMP).ok()??;
    if trim_text(&stored) != stamp.as_bytes() {
        return None;
    }
    let hex = file.get_xattr(XATTR_CHECKSUM).ok()??;
    Sha256::parse_hex(std::str::from_utf8(trim_text(&hex)).ok()?).ok()
}

fn hash_file(mut file: &File) -> io::Result<Sha256> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; IO_BUFFER];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Sha256::from_bytes(hasher.finalize().into()))
}

/// Caches `hash` for the file as it is at `stamp`, if the file lets us. The checksum goes first:
/// a crash between the two writes leaves an old stamp, which no longer matches, so the file is
/// only hashed again.
fn save_hash(file: &File, path: &Path, hash: &Sha256, stamp: &str) {
    let result = file
        .set_xattr(XATTR_CHECKSUM, hash.to_hex().as_bytes())
        .and_then(|()| file.set_xattr(XATTR_STAMP, stamp.as_bytes()));
    if let Err(e) = result {
        // A read-only folder, a file we do not own, a filesystem without xattrs: the cache is
        // an optimisation, and the file is simply hashed again next time.
        debug!(path = %path.display(), error = %e, "cannot cache hash of static file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, UNIX_EPOCH};

    use passim_core::Timestamp;

    /// SHA-256 of `hello`.
    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    /// SHA-256 of `HELLO`.
    const HELLO_UPPER: &str = "3733cd977ff8eb18b987357e22ced99f46097f31ecb239e878ae63760e83e4d5";

    fn hash_of(bytes: &[u8]) -> String {
        hex(&sha2::Sha256::digest(bytes))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    fn only_hash(scan: &Scan) -> String {
        let [item] = scan.items.as_slice() else {
            panic!("{scan:?}")
        };
        item.hash.to_hex()
    }

    #[test]
    fn known_hashes_are_right() {
        assert_eq!(hash_of(b"hello"), HELLO);
        assert_eq!(hash_of(b"HELLO"), HELLO_UPPER);
    }

    #[test]
    fn missing_config_folder_means_no_directories() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_configs(&tmp.path().join("passim.d")).is_empty());
    }

    #[test]
    fn configs_are_read_in_name_order_and_bad_ones_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("b.conf"), "[passim]\nPath=/srv/b\n").unwrap();
        fs::write(d.join("a.conf"), "[passim]\nPath=/srv/a\n").unwrap();
        fs::write(d.join("bad.conf"), "[daemon]\nPort=1\n").unwrap();
        fs::write(d.join("c.conf"), "[passim]\nPath=/srv/a\n").unwrap();
        fs::write(d.join("d.conf.bak"), "[passim]\nPath=/srv/bak\n").unwrap();
        fs::write(d.join("e.conf"), [0xff, 0xfe, b'\n']).unwrap();
        fs::create_dir(d.join("f.conf")).unwrap();

        assert_eq!(
            read_configs(d),
            vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
    }

    #[test]
    fn scan_shares_regular_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("firmware.bin"), b"hello").unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, b"secret").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("link")).unwrap();
        mkfifo(&dir.join("fifo"));
        fs::create_dir(dir.join("subdir")).unwrap();
        fs::write(dir.join("subdir/nested"), b"nested").unwrap();
        fs::write(dir.join("bad\u{1}name"), b"x").unwrap();

        let missing = tmp.path().join("missing");
        let scan = scan(&[missing, dir.clone()]);

        let [item] = scan.items.as_slice() else {
            panic!("{scan:?}")
        };
        let meta = fs::metadata(dir.join("firmware.bin")).unwrap();
        assert_eq!(item.hash.to_hex(), HELLO);
        assert_eq!(item.basename.as_str(), "firmware.bin");
        assert_eq!(item.size, 5);
        assert_eq!(item.ctime, mtime(&meta));
        assert_eq!(item.cmdline, "");
        assert_eq!(item.max_age, u32::MAX);
        assert_eq!(item.share_limit, 0);
        assert_eq!(item.share_count, 0);
        assert_eq!(item.flags, Flags::NONE);
        assert_eq!(item.boot_time, None);
        assert_eq!(
            item.origin,
            Origin::Static {
                path: dir.join("firmware.bin")
            }
        );

        let mut skipped: Vec<_> = scan
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.file_name().unwrap().to_string_lossy().into_owned(),
                    s.reason.to_string(),
                )
            })
            .collect();
        skipped.sort();
        assert_eq!(
            skipped,
            vec![
                (
                    "bad\u{1}name".into(),
                    "invalid basename: basename cannot contain control characters".into()
                ),
                ("fifo".into(), "not a regular file but a FIFO".into()),
                ("link".into(), "not a regular file but a symlink".into()),
                ("subdir".into(), "not a regular file but a directory".into()),
            ]
        );
        assert_eq!((scan.hashed, scan.cached), (1, 0));
    }

    #[test]
    fn hash_is_cached_and_trusted_on_the_next_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.txt");
        fs::write(&file, b"hello").unwrap();
        let dirs = [tmp.path().to_owned()];

        let first = scan(&dirs);
        assert_eq!((first.hashed, first.cached), (1, 0));
        assert_eq!(
            xattr::get(&file, XATTR_CHECKSUM).unwrap().unwrap(),
            HELLO.as_bytes()
        );
        assert!(xattr::get(&file, XATTR_STAMP).unwrap().is_some());

        let second = scan(&dirs);
        assert_eq!((second.hashed, second.cached), (0, 1));
        assert_eq!(only_hash(&second), HELLO);
        assert_eq!(second.items, first.items);
    }

    #[test]
    fn a_file_edited_in_place_is_hashed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.txt");
        fs::write(&path, b"hello").unwrap();
        let dirs = [tmp.path().to_owned()];
        assert_eq!(only_hash(&scan(&dirs)), HELLO);

        // Another size. `fs::write` truncates the same inode, so the old xattrs stay.
        fs::write(&path, b"hello, world").unwrap();
        let grown = scan(&dirs);
        assert_eq!((grown.hashed, grown.cached), (1, 0));
        assert_eq!(only_hash(&grown), hash_of(b"hello, world"));

        // The same size, a new mtime. The mtime is set explicitly so the test does not depend
        // on the clock ticking between the two writes.
        fs::write(&path, b"HELLO, WORLD").unwrap();
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::new(1_600_000_000, 5))
            .unwrap();
        drop(file);
        let edited = scan(&dirs);
        assert_eq!((edited.hashed, edited.cached), (1, 0));
        assert_eq!(only_hash(&edited), hash_of(b"HELLO, WORLD"));
        assert_eq!(
            edited.items[0].ctime,
            Timestamp::from_secs(1_600_000_000),
            "nanoseconds below a microsecond are dropped"
        );

        let again = scan(&dirs);
        assert_eq!((again.hashed, again.cached), (0, 1));
    }

    #[test]
    fn a_checksum_without_our_stamp_is_verified_once() {
        let tmp = tempfile::tempdir().unwrap();
        let right = tmp.path().join("right.txt");
        let wrong = tmp.path().join("wrong.txt");
        fs::write(&right, b"hello").unwrap();
        fs::write(&wrong, b"HELLO").unwrap();
        // As the C version would have left them, one of them stale.
        xattr::set(&right, XATTR_CHECKSUM, HELLO.as_bytes()).unwrap();
        xattr::set(&wrong, XATTR_CHECKSUM, HELLO.as_bytes()).unwrap();
        let dirs = [tmp.path().to_owned()];

        let first = scan(&dirs);
        assert_eq!((first.hashed, first.cached), (2, 0));
        let hashes: Vec<_> = first.items.iter().map(|i| i.hash.to_hex()).collect();
        assert_eq!(hashes, vec![HELLO, HELLO_UPPER]);
        assert_eq!(
            xattr::get(&wrong, XATTR_CHECKSUM).unwrap().unwrap(),
            HELLO_UPPER.as_bytes()
        );

        let second = scan(&dirs);
        assert_eq!((second.hashed, second.cached), (0, 2));
        assert_eq!(second.items, first.items);
    }

    #[test]
    fn a_read_only_file_is_still_shared() {
        // Root writes xattrs on any file, so this only exercises the failure path when the
        // tests run unprivileged; as root it checks that the scan works either way.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ro.txt");
        fs::write(&path, b"hello").unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
        let scan = scan(&[tmp.path().to_owned()]);
        assert_eq!(only_hash(&scan), HELLO);
    }
}
