//! The append-only audit log: one line per publish, share and delete.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use passim_core::audit::{self, AuditLine};

/// The open audit log.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Lines appended but not yet written: under load many lines go out in one `write`.
    pending: Vec<u8>,
}

impl AuditLog {
    /// Opens (creating with mode 0600) the log for appending.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            pending: Vec::new(),
        })
    }

    /// Queues one line; it reaches the file at the next [`AuditLog::flush`], or at once when
    /// 64 KiB are queued.
    pub fn append(&mut self, line: &AuditLine) -> Result<()> {
        self.pending.extend_from_slice(line.format().as_bytes());
        self.pending.push(b'\n');
        if self.pending.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued lines in one `write` (whole lines only, so a reader never sees half
    /// of one from us).
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let end = self.file.metadata().map(|m| m.len());
        let written = self.file.write_all(&self.pending);
        self.pending.clear();
        if written.is_err() {
            // A full disk can take part of the batch: cut it back to the last whole line, or
            // the next line would be glued to half of one and both would be lost to readers.
            if let Ok(end) = end {
                let _ = self.file.set_len(end);
            }
        }
        written.with_context(|| format!("writing audit log {}", self.path.display()))
    }
}

/// Bytes served to others according to the log's `SHARE` lines; 0 if there is no log yet.
///
/// Reads line by line: the log grows forever and must not be held in memory.
pub fn read_download_saving(path: &Path) -> Result<u64> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading audit log {}", path.display())),
    };
    let mut total = 0u64;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        // A line that is not UTF-8 cannot be ours; skip it like any other unparsable line.
        if let Ok(line) = std::str::from_utf8(&buf) {
            total = total.saturating_add(audit::download_saving(std::iter::once(line)));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use passim_core::audit::AuditEvent;
    use passim_core::{Sha256, Timestamp};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn appends_lines_and_sums_shares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/passim/audit.log");
        assert_eq!(read_download_saving(&path).unwrap(), 0);
        let hash = Sha256::from_bytes([1; 32]);
        let share = |size| AuditLine {
            time: Timestamp::from_micros(1_700_000_000_123_456),
            event: AuditEvent::Share {
                hash,
                basename: "a,b".into(),
                size,
                ipaddr: "10.0.0.2".into(),
            },
        };
        let mut log = AuditLog::open(&path).unwrap();
        log.append(&share(26)).unwrap();
        log.append(&AuditLine {
            time: Timestamp::ZERO,
            event: AuditEvent::Delete {
                hash,
                basename: "a,b".into(),
            },
        })
        .unwrap();
        log.flush().unwrap();
        drop(log);
        let mut log = AuditLog::open(&path).unwrap();
        log.append(&share(100)).unwrap();
        assert_eq!(
            read_download_saving(&path).unwrap(),
            26,
            "not written before flush"
        );
        log.flush().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"garbage line\n\xff\xfe\n")
            .unwrap();

        assert_eq!(read_download_saving(&path).unwrap(), 126);
        let text = std::fs::read(&path).unwrap();
        let first = String::from_utf8_lossy(&text)
            .lines()
            .next()
            .unwrap()
            .to_owned();
        assert!(first.contains(" SHARE hash="), "{first}");
        assert!(first.contains("basename=a\\,b"), "{first}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
