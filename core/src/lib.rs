//! The sans-IO core of passim.
//!
//! Everything passim decides lives here: which items it holds, when they expire, how often they
//! may be shared, who may fetch what, and the answer to every HTTP request. Nothing here touches
//! a socket, a file, a clock or an entropy source: the shell passes the time and a seed in, and
//! carries the outputs out. See [`Passim`] for the driving loop.

pub mod audit;
mod basename;
pub mod config;
#[doc(hidden)]
pub mod fuzz;
mod hash;
pub mod index;
mod item;
mod passim;
pub mod request;

pub use basename::{Basename, InvalidBasename};
pub use hash::{MalformedHash, Sha256};
pub use item::{DEFAULT_MAX_AGE, DEFAULT_SHARE_LIMIT, Flags, Item, Origin, Status, Timestamp};
pub use passim::*;
