//! The shell of passim: tokio adapters that carry the core's decisions into the world.
//!
//! Each module translates between one outside thing and [`passim_core::Passim`]; none of them
//! holds policy. `daemon` wires them together into `passimd`.

pub mod audit_log;
pub mod client;
pub mod daemon;
pub mod dbus;
pub mod discovery;
pub mod http;
pub mod metered;
pub mod paths;
pub mod rate;
pub mod static_dirs;
pub mod store;
pub mod tls;
