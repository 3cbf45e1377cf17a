//! Where passim keeps its files, relocatable as the C version's are.

use std::path::{Path, PathBuf};

/// The folders passim uses, before the config's `Path` is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// `$SYSCONFDIR`, default `/etc`: `passim.conf` and `passim.d/`.
    pub sysconfdir: PathBuf,
    /// `$LOCALSTATEDIR`, default `/var`: data, TLS key and certificate, audit log.
    pub localstatedir: PathBuf,
    /// `$DATADIR`, default `/usr/share`: the index page's stylesheet and icon.
    pub datadir: PathBuf,
}

impl Paths {
    /// The system locations, relocated by the `SYSCONFDIR`, `LOCALSTATEDIR` and `DATADIR`
    /// environment variables.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self {
            sysconfdir: var("SYSCONFDIR", "/etc"),
            localstatedir: var("LOCALSTATEDIR", "/var"),
            datadir: var("DATADIR", "/usr/share"),
        }
    }

    /// Everything under one folder: `ROOT/etc`, `ROOT/var`, `ROOT/share`.
    pub fn under(root: &Path) -> Self {
        Self {
            sysconfdir: root.join("etc"),
            localstatedir: root.join("var"),
            datadir: root.join("share"),
        }
    }

    /// `passim.conf`.
    pub fn config_file(&self) -> PathBuf {
        self.sysconfdir.join("passim.conf")
    }

    /// The folder of static-directory configs.
    pub fn static_config_dir(&self) -> PathBuf {
        self.sysconfdir.join("passim.d")
    }

    /// The state folder: `$LOCALSTATEDIR/lib/passim`.
    pub fn state_dir(&self) -> PathBuf {
        self.localstatedir.join("lib/passim")
    }

    /// Where published items live unless the config's `Path` says otherwise.
    pub fn default_data_dir(&self) -> PathBuf {
        self.state_dir().join("data")
    }

    /// The TLS private key.
    pub fn secret_key(&self) -> PathBuf {
        self.state_dir().join("secret.key")
    }

    /// The TLS certificate.
    pub fn cert(&self) -> PathBuf {
        self.state_dir().join("cert.pem")
    }

    /// The audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.localstatedir.join("log/passim/audit.log")
    }

    /// A web asset (`style.css`, `favicon.ico`).
    pub fn asset(&self, name: &str) -> PathBuf {
        self.datadir.join("passim").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_puts_everything_under_one_folder() {
        let p = Paths::under(Path::new("/tmp/r"));
        assert_eq!(p.config_file(), Path::new("/tmp/r/etc/passim.conf"));
        assert_eq!(p.static_config_dir(), Path::new("/tmp/r/etc/passim.d"));
        assert_eq!(
            p.default_data_dir(),
            Path::new("/tmp/r/var/lib/passim/data")
        );
        assert_eq!(
            p.secret_key(),
            Path::new("/tmp/r/var/lib/passim/secret.key")
        );
        assert_eq!(p.cert(), Path::new("/tmp/r/var/lib/passim/cert.pem"));
        assert_eq!(p.audit_log(), Path::new("/tmp/r/var/log/passim/audit.log"));
        assert_eq!(
            p.asset("style.css"),
            Path::new("/tmp/r/share/passim/style.css")
        );
    }
}
