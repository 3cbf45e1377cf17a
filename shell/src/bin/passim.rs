//! `passim`: the command-line client of `passimd`.
//!
//! It speaks D-Bus to the local daemon (`status`, `publish`, `unpublish`, `--version`) and HTTPS
//! to it for `download`. Output and exit codes follow the C `passim`, so scripts written for it
//! keep working: results on stdout, one line per error on stderr, exit 1 on any failure.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{CommandFactory as _, Parser, Subcommand};
use passim_core::index::{format_size, percent_encode_component};
use passim_core::{Basename, DEFAULT_MAX_AGE, DEFAULT_SHARE_LIMIT, Flags, Sha256, Status};
use passim_shell::client::{self, HttpError};
use passim_shell::dbus::{Bus, PassimProxy};
use sha2::Digest as _;
use zbus::{OwnedVariant, Variant};

/// The column at which `status` starts each value (1-based), as the C version lays it out.
const VALUE_COLUMN: usize = 21;

/// Files smaller than this download without a progress bar: it would only flicker.
const PROGRESS_MIN_SIZE: u64 = 1024 * 1024;

/// Talk to the local passim daemon, which shares files with the machines of the local network.
#[derive(Parser, Debug)]
#[command(
    name = "passim",
    long_about = "Talk to the local passimd, which shares files downloaded from the Internet \
                  with the other machines of the local network.\n\nWithout a command, shows the \
                  status.",
    disable_version_flag = true,
    allow_external_subcommands = true
)]
struct Cli {
    /// Print the versions of this client and of the running daemon.
    #[arg(long)]
    version: bool,

    /// Print the status as JSON (for scripts).
    #[arg(long)]
    json: bool,

    /// Talk to a daemon on the session bus instead of the system bus.
    #[arg(long, global = true)]
    session_bus: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the daemon's status and every item it shares (the default).
    #[command(visible_alias = "dump")]
    Status {
        /// Print it as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },

    /// Share a file: the daemon reads it and serves it under its SHA-256.
    Publish {
        /// The file to share; it is published under its basename.
        file: PathBuf,
        /// Seconds until the item expires.
        #[arg(value_name = "MAX-AGE", default_value_t = DEFAULT_MAX_AGE)]
        max_age: u32,
        /// How many times it may be served before it is removed (0 for no limit).
        #[arg(value_name = "SHARE-LIMIT", default_value_t = DEFAULT_SHARE_LIMIT)]
        share_limit: u32,
        /// Share it only after the next reboot.
        #[arg(long)]
        next_reboot: bool,
    },

    /// Stop sharing an item and delete it.
    Unpublish {
        /// The item's SHA-256.
        hash: String,
    },

    /// Fetch a file by hash from another machine of the local network.
    ///
    /// The local daemon finds a machine that holds it; the file is saved in the current folder
    /// under BASENAME. Its SHA-256 is checked while it arrives, and nothing is written unless it
    /// matches.
    Download {
        /// The name to save it as, in the current folder.
        basename: String,
        /// Its SHA-256.
        hash: String,
    },

    /// Write the manual pages into DIR.
    #[command(hide = true)]
    GenerateMan {
        /// The folder to write `passim.1` and the pages of the commands into.
        dir: PathBuf,
    },

    /// Print the completion script for SHELL.
    #[command(hide = true)]
    GenerateCompletions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },

    /// Anything else is refused with the C version's words.
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help goes to stdout with success; a usage error becomes one line on stderr and exit 1.
fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap spreads one error over several lines (the message, the offending value, usage);
    // its first paragraph is the message.
    let rendered = e.render().to_string();
    let line: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    eprintln!("{}", line.join(" "));
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<()> {
    let bus = if cli.session_bus {
        Bus::Session
    } else {
        Bus::System
    };
    if cli.version {
        println!("client version: {}", env!("CARGO_PKG_VERSION"));
        let proxy = connect(bus).await?;
        let version = proxy.daemon_version().await.map_err(unreachable)?;
        println!("daemon version: {version}");
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Status { json: false }) {
        Command::Status { json } => status(&connect(bus).await?, json || cli.json).await,
        Command::Publish {
            file,
            max_age,
            share_limit,
            next_reboot,
        } => {
            publish(
                &connect(bus).await?,
                &file,
                max_age,
                share_limit,
                next_reboot,
            )
            .await
        }
        Command::Unpublish { hash } => unpublish(&connect(bus).await?, &hash).await,
        Command::Download { basename, hash } => {
            download(&connect(bus).await?, &basename, &hash).await
        }
        Command::GenerateMan { dir } => generate_man(&dir),
        Command::GenerateCompletions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "passim", &mut std::io::stdout());
            Ok(())
        }
        // The C version's words, whatever the command was: scripts may match on them.
        Command::Unknown(_words) => bail!("Command not found"),
    }
}

async fn connect(bus: Bus) -> Result<PassimProxy<'static>> {
    let name = match bus {
        Bus::System => "system",
        Bus::Session => "session",
    };
    let conn = bus
        .connect()
        .await
        .map_err(|e| anyhow!("cannot connect to the {name} bus: {e}"))?;
    PassimProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| anyhow!("cannot reach passimd: {}", describe(&e)))
}

/// The name and message of an error the other side sent, if it is one.
fn remote_error(e: &zbus::Error) -> Option<(String, String)> {
    use zbus::DBusError as _;
    match e {
        zbus::Error::MethodError(name, message, _) => {
            Some((name.to_string(), message.clone().unwrap_or_default()))
        }
        // zbus decodes the standard `org.freedesktop.DBus.Error.*` names itself.
        zbus::Error::FDO(e) => Some((
            e.name().to_string(),
            e.description().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

/// The part of a D-Bus error a person needs: the other side's own words, without the name.
fn describe(e: &zbus::Error) -> String {
    match remote_error(e) {
        Some((name, message)) if message.is_empty() => name,
        Some((_, message)) => message,
        None => e.to_string(),
    }
}

/// Errors that mean nobody is there to answer.
fn unreachable(e: zbus::Error) -> anyhow::Error {
    anyhow!("cannot reach passimd: {}", describe(&e))
}

/// A call's error: the daemon's refusal as it worded it, the bus policy's refusal, or why the
/// daemon could not be asked.
fn refused(e: zbus::Error) -> anyhow::Error {
    match remote_error(&e) {
        Some((name, message))
            if name.starts_with("org.freedesktop.Passim.Error.")
                || name == "org.freedesktop.DBus.Error.InvalidArgs" =>
        {
            anyhow!(message)
        }
        Some((name, message)) if name == "org.freedesktop.DBus.Error.AccessDenied" => {
            anyhow!("permission denied by the D-Bus policy: {message}")
        }
        _ => unreachable(e),
    }
}

/// What the status shows, read once from the daemon.
struct Snapshot {
    version: String,
    name: String,
    status: u32,
    uri: String,
    download_saving: u64,
    carbon_saving: f64,
    items: Vec<HashMap<String, OwnedVariant>>,
}

async fn status(proxy: &PassimProxy<'_>, json: bool) -> Result<()> {
    // Items first: if the daemon is not there, this is the call that says so.
    let items = proxy.get_items().await.map_err(unreachable)?;
    let snapshot = Snapshot {
        version: proxy.daemon_version().await.map_err(unreachable)?,
        name: proxy.name().await.map_err(unreachable)?,
        status: proxy.status().await.map_err(unreachable)?,
        uri: proxy.uri().await.map_err(unreachable)?,
        download_saving: proxy.download_saving().await.map_err(unreachable)?,
        carbon_saving: proxy.carbon_saving().await.map_err(unreachable)?,
        items,
    };
    let text = if json {
        status_json(&snapshot)
    } else {
        status_text(&snapshot, unix_now())
    };
    print!("{text}");
    Ok(())
}

/// The C version's layout: header lines, then each item as a small tree, values in column 21.
fn status_text(s: &Snapshot, now: i64) -> String {
    let mut out = String::new();
    push_kv(&mut out, "Name:", &s.name);
    push_kv(&mut out, "Status:", Status::from_u32(s.status).describe());
    if s.download_saving > 0 {
        push_kv(&mut out, "Network Saving:", &format_size(s.download_saving));
    }
    if s.carbon_saving > 0.001 {
        push_kv(
            &mut out,
            "Carbon Saving:",
            &format!("{:.2} kg CO₂e", s.carbon_saving),
        );
    }
    push_kv(&mut out, "URI:", &s.uri);

    for item in &s.items {
        let mut rows: Vec<(&str, String)> = Vec::new();
        rows.push(("Filename:", get_str(item, "filename")));
        let flags = Flags::from_bits_truncate(get_u64(item, "flags"));
        if !flags.is_empty() {
            rows.push(("Flags:", flags.describe()));
        }
        let cmdline = get_str(item, "cmdline");
        if !cmdline.is_empty() {
            rows.push(("Command Line:", cmdline));
        }
        let max_age = get_u32(item, "max-age");
        if max_age != u32::MAX {
            let age = now.saturating_sub(get_i64(item, "ctime")).max(0) / 3600;
            rows.push(("Age:", format!("{age}/{}h", max_age / 3600)));
        }
        let share_limit = get_u32(item, "share-limit");
        if share_limit != 0 && share_limit != u32::MAX {
            let count = get_u32(item, "share-count");
            rows.push(("Share Limit:", format!("{count}/{share_limit}")));
        }
        let size = get_u64(item, "size");
        if size > 0 {
            rows.push(("Size:", format_size(size)));
        }

        out.push('\n');
        out.push_str(&get_str(item, "hash"));
        out.push('\n');
        let last = rows.len().saturating_sub(1);
        for (i, (label, value)) in rows.iter().enumerate() {
            let branch = if i == last { '└' } else { '├' };
            push_kv(&mut out, &format!("{branch} {label}"), value);
        }
    }
    out
}

/// `label` padded with spaces so that `value` starts in [`VALUE_COLUMN`]; counted in characters,
/// since the tree's branches are several bytes each.
fn push_kv(out: &mut String, label: &str, value: &str) {
    let width = VALUE_COLUMN - 1;
    let _ = writeln!(
        out,
        "{label}{:pad$}{value}",
        "",
        pad = width.saturating_sub(label.chars().count()).max(1)
    );
}

/// The status as one JSON object, with the D-Bus names for keys and every item field present.
fn status_json(s: &Snapshot) -> String {
    let items: Vec<serde_json::Value> = s
        .items
        .iter()
        .map(|item| {
            let flags = Flags::from_bits_truncate(get_u64(item, "flags"));
            serde_json::json!({
                "hash": get_str(item, "hash"),
                "filename": get_str(item, "filename"),
                "cmdline": get_str(item, "cmdline"),
                "max-age": get_u32(item, "max-age"),
                "share-limit": get_u32(item, "share-limit"),
                "share-count": get_u32(item, "share-count"),
                "size": get_u64(item, "size"),
                "ctime": get_i64(item, "ctime"),
                "flags": flags.bits(),
                "disabled": flags.contains(Flags::DISABLED),
                "next-reboot": flags.contains(Flags::NEXT_REBOOT),
            })
        })
        .collect();
    let status = serde_json::json!({
        "daemon-version": s.version,
        "name": s.name,
        "status": s.status,
        "status-text": Status::from_u32(s.status).describe(),
        "uri": s.uri,
        "download-saving": s.download_saving,
        // JSON has no NaN or infinity: serde_json writes them as null.
        "carbon-saving": s.carbon_saving,
        "items": items,
    });
    format!("{status}\n")
}

fn get_str(item: &HashMap<String, OwnedVariant>, key: &str) -> String {
    item.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_owned()
}

fn get_u32(item: &HashMap<String, OwnedVariant>, key: &str) -> u32 {
    item.get(key)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

fn get_u64(item: &HashMap<String, OwnedVariant>, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

fn get_i64(item: &HashMap<String, OwnedVariant>, key: &str) -> i64 {
    item.get(key)
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn publish(
    proxy: &PassimProxy<'_>,
    path: &Path,
    max_age: u32,
    share_limit: u32,
    next_reboot: bool,
) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let basename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let basename =
        Basename::new(basename).map_err(|e| anyhow!("cannot publish {}: {e}", path.display()))?;

    // The daemon hashes what it reads too; hashing here only names the item in the output,
    // as Publish returns nothing.
    let (file, hash) = tokio::task::spawn_blocking(move || hash_file(file)).await??;

    let mut attrs: HashMap<&str, Variant<'_>> = HashMap::new();
    attrs.insert("filename", Variant::from(basename.as_str()));
    attrs.insert("max-age", Variant::from(max_age));
    attrs.insert("share-limit", Variant::from(share_limit));
    if next_reboot {
        attrs.insert("flags", Variant::from(Flags::NEXT_REBOOT.bits()));
    }
    proxy
        .publish(zbus::Fd::from(file.as_fd()), attrs)
        .await
        .map_err(refused)?;
    println!("Published: {hash} {basename} (max-age: {max_age}, share-limit: {share_limit})");
    Ok(())
}

/// Hashes `file` from its start and rewinds it, so the daemon reads it from the start too.
fn hash_file(mut file: std::fs::File) -> Result<(std::fs::File, Sha256)> {
    use std::io::Seek as _;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).context("reading the file")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.rewind().context("reading the file")?;
    Ok((file, Sha256::from_bytes(hasher.finalize().into())))
}

async fn unpublish(proxy: &PassimProxy<'_>, hash: &str) -> Result<()> {
    let parsed = Sha256::parse_hex(hash).map_err(|e| anyhow!("invalid hash {hash}: {e}"))?;
    proxy.unpublish(&parsed.to_hex()).await.map_err(refused)?;
    println!("Unpublished: {parsed}");
    Ok(())
}

async fn download(proxy: &PassimProxy<'_>, basename: &str, hash: &str) -> Result<()> {
    let name = Basename::new(basename).map_err(|e| anyhow!("invalid basename {basename}: {e}"))?;
    let hash = Sha256::parse_hex(hash).map_err(|e| anyhow!("invalid hash {hash}: {e}"))?;
    let uri = proxy.uri().await.map_err(unreachable)?;
    let port = uri
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.port_u16())
        .ok_or_else(|| anyhow!("passimd reported an invalid URI {uri}"))?;
    // `localhost=false`: the local daemon must not answer from its own store but look the hash
    // up on the LAN and redirect there; what we already hold needs no download.
    let url = format!(
        "https://localhost:{port}/{}?sha256={hash}&localhost=false",
        percent_encode_component(name.as_str())
    );

    let mut progress = Progress::new(name.as_str());
    let result = client::download(&url, &hash, Path::new(name.as_str()), |done, total| {
        progress.update(done, total);
    })
    .await;
    progress.finish();
    match result {
        Ok(saved) => {
            let mime = saved
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            println!("Saved {name} ({} of {mime})", format_size(saved.size));
            Ok(())
        }
        Err(e) => match e.downcast_ref::<HttpError>() {
            Some(http) => Err(anyhow!("Failed to download {name} from {http}")),
            None => Err(anyhow!("Failed to download {name}: {e:#}")),
        },
    }
}

/// A one-line progress bar on stderr, drawn only on a terminal and only for large files.
struct Progress<'a> {
    name: &'a str,
    enabled: bool,
    drawn: bool,
    last: Option<Instant>,
}

impl<'a> Progress<'a> {
    fn new(name: &'a str) -> Self {
        Self {
            name,
            enabled: std::io::stderr().is_terminal(),
            drawn: false,
            last: None,
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        const WIDTH: u64 = 30;
        let Some(total) = total.filter(|t| self.enabled && *t >= PROGRESS_MIN_SIZE) else {
            return;
        };
        // Redrawing costs a write per chunk; ten times a second reads as smooth.
        if done < total
            && self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let filled = (done.min(total) * WIDTH / total.max(1)) as usize;
        let percent = done.min(total) * 100 / total.max(1);
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled)
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{} [{bar}] {percent:>3}% {} of {}",
            self.name,
            format_size(done),
            format_size(total)
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}

fn generate_man(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing manual pages into {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(items: Vec<HashMap<String, OwnedVariant>>) -> Snapshot {
        Snapshot {
            version: "0.1.0".to_owned(),
            name: "Passim-ABCD".to_owned(),
            status: 3,
            uri: "https://localhost:27500/".to_owned(),
            download_saving: 26,
            carbon_saving: 0.0,
            items,
        }
    }

    fn item(pairs: &[(&str, OwnedVariant)]) -> HashMap<String, OwnedVariant> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.try_clone().unwrap()))
            .collect()
    }

    #[test]
    fn values_start_in_column_21() {
        let text = status_text(&snapshot(Vec::new()), 0);
        assert_eq!(
            text,
            "Name:               Passim-ABCD\n\
             Status:             Running\n\
             Network Saving:     26 bytes\n\
             URI:                https://localhost:27500/\n"
        );
    }

    #[test]
    fn items_are_trees_without_unlimited_or_empty_rows() {
        let hash = "ab".repeat(32);
        let it = item(&[
            ("hash", OwnedVariant::from(zbus::Str::from(hash.clone()))),
            ("filename", OwnedVariant::from(zbus::Str::from("fw.cab"))),
            ("max-age", OwnedVariant::from(u32::MAX)),
            ("share-limit", OwnedVariant::from(5u32)),
            ("share-count", OwnedVariant::from(2u32)),
            ("flags", OwnedVariant::from(3u64)),
        ]);
        let text = status_text(&snapshot(vec![it]), 0);
        let tail = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            tail,
            format!(
                "{hash}\n\
                 ├ Filename:         fw.cab\n\
                 ├ Flags:            Disabled, Next Reboot\n\
                 └ Share Limit:      2/5\n"
            )
        );
    }

    #[test]
    fn json_escapes_and_stays_one_object() {
        let it = item(&[(
            "filename",
            OwnedVariant::from(zbus::Str::from("a\"b\\c\u{1}")),
        )]);
        let json = status_json(&snapshot(vec![it]));
        assert!(json.contains(r#""filename":"a\"b\\c\u0001""#), "{json}");
        assert!(json.starts_with('{') && json.ends_with("}\n"));
    }
}
