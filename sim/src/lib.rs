//! Deterministic LAN simulations of passim.
//!
//! Two tiers play the same scenarios from the same [`model::Schedule`]:
//!
//! - [`turmoil_tier`]: up to about a hundred machines, each running the real passimd serving
//!   path (hyper and rustls over turmoil's simulated TCP, the real core, a store in a temporary
//!   directory), a stand-in for mDNS over turmoil UDP, a CDN host, and on every machine a client
//!   that behaves like fwupd.
//! - [`core_tier`]: thousands of machines as instances of the real `passim_core::Passim` alone,
//!   with the network, the transfers and discovery modelled and time jumped from one event to
//!   the next.
//!
//! # The client both tiers model (fwupd's behaviour)
//!
//! At its refresh time a machine asks its own passimd for
//! `https://localhost:27500/<name>?sha256=<hash>`. A `200` is the file (already held). A `302`
//! names a peer: the client fetches from it and verifies the SHA-256; bytes that do not match
//! are thrown away. Anything else (a `404`, a refused or cut peer, a wrong hash, a peer silent
//! for longer than [`model::Params::peer_timeout`]) sends it to the CDN. Once it holds verified
//! bytes it publishes them to its own passimd with the scenario's max-age and share-limit.
//!
//! # Discovery (the stand-in for mDNS)
//!
//! A daemon that starts sharing a hash multicasts an announcement to the LAN, and a goodbye when
//! it stops; every daemon keeps a table of who holds what from what it heard. A lookup answers
//! from the table at once; on a miss it multicasts a query, which holders answer, and waits at
//! most `LookupTimeout` (500 ms) for a holder to appear. This is what the shell's mdns-sd
//! adapter does with a continuous browse and a subtype browse, reduced to three messages.

pub mod core_tier;
pub mod model;
pub mod turmoil_tier;
