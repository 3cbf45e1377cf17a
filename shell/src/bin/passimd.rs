//! `passimd`: the passim daemon.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use passim_shell::daemon::{self, Options};
use passim_shell::paths::Paths;
use tokio::signal::unix::{SignalKind, signal};

/// Share files downloaded from a CDN with the machines of the local network.
#[derive(Parser, Debug)]
#[command(name = "passimd", version, about)]
struct Args {
    /// Put every path under DIR (DIR/etc, DIR/var, DIR/share) instead of the system folders or
    /// $SYSCONFDIR, $LOCALSTATEDIR and $DATADIR.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Allow any user, not only root, to publish and unpublish.
    #[arg(long)]
    insecure: bool,

    /// More logging (repeat for more); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
    let _ = args.insecure;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let running = daemon::start(Options::new(paths)).await?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    running.shutdown().await;
    tracing::info!("stopped");
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
