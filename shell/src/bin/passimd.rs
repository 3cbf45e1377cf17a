//! `passimd`: the passim daemon.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Parser};
use passim_shell::daemon::{self, Discovery, NoDiscovery, Options};
use passim_shell::dbus::{self, Bus, ServeError};
use passim_shell::discovery::MdnsDiscovery;
use passim_shell::metered;
use passim_shell::paths::Paths;
use tokio::signal::unix::{SignalKind, signal};

/// Share files downloaded from a CDN with the machines of the local network.
#[derive(Parser, Debug)]
#[command(name = "passimd", version)]
struct Args {
    /// Put every path under DIR (DIR/etc, DIR/var, DIR/share) instead of the system folders or
    /// $SYSCONFDIR, $LOCALSTATEDIR and $DATADIR.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Allow any user, not only root, to publish and unpublish over D-Bus.
    #[arg(long)]
    insecure: bool,

    /// Use the session bus instead of the system bus (for development without root).
    #[arg(long, conflicts_with = "no_dbus")]
    session_bus: bool,

    /// Do not use D-Bus at all: serve HTTPS only (and do not ask NetworkManager whether the
    /// network is metered).
    #[arg(long)]
    no_dbus: bool,

    /// Do not use mDNS: advertise nothing and never redirect to another machine.
    #[arg(long)]
    no_discovery: bool,

    /// More logging (repeat for more); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Write the manual page `passimd.8` into DIR and exit (for packaging).
    #[arg(long, value_name = "DIR", hide = true)]
    generate_man: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.generate_man {
        return match generate_man(dir) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("passimd: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    init_logging(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("passimd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("passimd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let paths = match &args.root {
        Some(root) => Paths::under(root),
        None => Paths::from_env(),
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut options = Options::new(paths);
    options.discovery = if args.no_discovery {
        tracing::info!("mDNS disabled by --no-discovery: not advertising, not looking up");
        Arc::new(NoDiscovery) as Arc<dyn Discovery>
    } else {
        Arc::new(MdnsDiscovery::new())
    };
    let running = daemon::start(options).await?;

    // NetworkManager is on the system bus even when we serve on the session bus.
    if !args.no_dbus {
        let daemon = running.daemon.clone();
        let shutdown = running.shutdown_token();
        tokio::spawn(async move {
            match Bus::System.connect().await {
                Ok(conn) => metered::watch(daemon, conn, shutdown).await,
                Err(e) => tracing::info!(
                    error = %e,
                    "no system bus to ask NetworkManager: assuming an unmetered network"
                ),
            }
        });
    }

    // D-Bus comes up after HTTPS is listening: with `Type=dbus`, systemd counts the daemon as
    // started once the name is taken, so by then it must be ready to serve.
    let bus = if args.session_bus {
        Bus::Session
    } else {
        Bus::System
    };
    let mut service = if args.no_dbus {
        tracing::info!("D-Bus disabled by --no-dbus: serving HTTPS only");
        None
    } else {
        match dbus::serve(running.daemon.clone(), bus, args.insecure).await {
            Ok(service) => Some(service),
            Err(ServeError::Unavailable(e)) => {
                // A container or a demo has no system bus; HTTPS sharing still works.
                tracing::warn!(
                    bus = ?bus,
                    error = %e,
                    "D-Bus is not available; serving HTTPS only (publishing needs D-Bus)"
                );
                None
            }
            Err(e @ ServeError::NameTaken) => {
                running.shutdown().await;
                return Err(e.into());
            }
        }
    };

    let lost = async {
        match service.as_mut() {
            Some(service) => service.lost().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = sigterm.recv() => {
            tracing::info!("SIGTERM: shutting down");
            Ok(())
        }
        _ = sigint.recv() => {
            tracing::info!("SIGINT: shutting down");
            Ok(())
        }
        () = lost => {
            // As the C version: without the name nobody can reach us, and a supervisor
            // restarts a daemon that exits, which takes the name again cleanly. `main` logs it.
            Err(anyhow::anyhow!(
                "lost the D-Bus name {} (or the connection to the bus), exiting",
                dbus::BUS_NAME
            ))
        }
    };
    if let Some(service) = service {
        service.stop().await;
    }
    running.shutdown().await;
    tracing::info!("stopped");
    outcome
}

/// The daemon's page goes in section 8, with the other system daemons.
fn generate_man(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::Man::new(Args::command())
        .section("8")
        .generate_to(dir)
        .with_context(|| format!("writing the manual page into {}", dir.display()))?;
    Ok(())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "info,passim_shell=debug,passim_core=debug",
        _ => "debug,passim_shell=trace,passim_core=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal; journald and log files get plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
