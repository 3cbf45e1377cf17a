//! `passim-sim`: runs a LAN scenario and prints its figures.
//!
//! ```text
//! cargo run -p passim-sim --release -- offload --hosts 1000 --seed 1
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use passim_sim::model::Params;
use passim_sim::{core_tier, turmoil_tier};

#[derive(Parser)]
#[command(name = "passim-sim", about = "Deterministic LAN simulations of passim")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every machine refreshes one file once at a random time in the window: how often does
    /// the CDN get asked?
    Offload {
        /// Machines on the LAN (turmoil's cost grows with the cube of it: keep that tier to
        /// about a hundred).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        hosts: u32,
        /// The share-limit every machine publishes with.
        #[arg(long, default_value_t = 5)]
        share_limit: u32,
        /// Seed of every random choice; the same seed replays the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Which simulation runs it.
        #[arg(long, value_enum, default_value_t = Tier::Core)]
        tier: Tier,
        /// Fraction of machines that serve wrong bytes under the right hash.
        #[arg(long, default_value_t = 0.0)]
        liars: f64,
        /// Seconds over which the refreshes are spread [default: a day for the core tier,
        /// 120 s for turmoil, whose every tick costs wall time].
        #[arg(long)]
        window: Option<u64>,
        /// One-way trips a TCP connect costs in the core tier: 2 on a real network, 1 to compare
        /// with turmoil, whose connect completes as the SYN arrives.
        #[arg(long, default_value_t = 2)]
        connect_trips: u32,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tier {
    /// The real core alone, thousands of machines.
    Core,
    /// The real shell over turmoil, up to about a hundred machines.
    Turmoil,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Offload {
        hosts,
        share_limit,
        seed,
        tier,
        liars,
        window,
        connect_trips,
    } = cli.command;
    if !(0.0..=1.0).contains(&liars) {
        eprintln!("--liars must be between 0 and 1");
        return ExitCode::FAILURE;
    }
    let mut params = Params::offload(hosts as usize, share_limit, seed);
    params.liars = liars;
    params.net.connect_one_ways = connect_trips;
    params.window = Duration::from_secs(window.unwrap_or(match tier {
        Tier::Core => 24 * 3600,
        Tier::Turmoil => 120,
    }));
    let started = Instant::now();
    let report = match tier {
        Tier::Core => core_tier::offload(&params),
        Tier::Turmoil => match turmoil_tier::offload(&params) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("passim-sim: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    print!("{}", report.table());
    println!(
        "window {} s, seed {seed}, liars {liars}, failed {}, trace {}, {:.1} s wall",
        params.window.as_secs(),
        report.failed(),
        report.trace,
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.line());
    ExitCode::SUCCESS
}
