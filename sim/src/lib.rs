//! Deterministic LAN simulations of passim (turmoil hosts running the shell, and the bare core at scale).
