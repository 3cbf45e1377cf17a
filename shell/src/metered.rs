//! Whether the network is metered, from NetworkManager's `Metered` property on the system bus.
//!
//! While it is, the core advertises nothing and reports `Status` 4; this module only carries
//! NetworkManager's answer to [`Daemon::set_metered`]. No bus or no NetworkManager means not
//! metered, as for the C passim. NetworkManager starting, stopping or changing its mind is
//! followed: its `PropertiesChanged` and the owner of its bus name are watched.

use std::sync::Arc;

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use zbus::Connection;
use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;

use crate::daemon::Daemon;

/// NetworkManager's well-known bus name.
pub const NM_BUS_NAME: &str = "org.freedesktop.NetworkManager";

/// NetworkManager's object path.
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";

/// NetworkManager's main interface, which carries `Metered`.
pub const NM_INTERFACE: &str = "org.freedesktop.NetworkManager";

/// Whether NetworkManager's `NMMetered` value means metered: `YES` (1) and `GUESS_YES` (3).
/// `UNKNOWN` (0), `NO` (2) and `GUESS_NO` (4) do not.
pub fn is_metered(value: u32) -> bool {
    matches!(value, 1 | 3)
}

/// Follows NetworkManager on `conn` and tells `daemon` each time the answer changes, until
/// `shutdown`. Returns at once (not metered) if the bus cannot be watched.
pub async fn watch(daemon: Arc<Daemon>, conn: Connection, shutdown: CancellationToken) {
    let proxy = PropertiesProxy::builder(&conn)
        .destination(NM_BUS_NAME)
        .path(NM_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await;
    let proxy = match proxy {
        Ok(proxy) => proxy,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch NetworkManager: assuming an unmetered network");
            return;
        }
    };
    // Subscribed before the first read, so a change in between is not missed.
    let (mut changes, mut owners) = match tokio::try_join!(
        proxy.receive_properties_changed(),
        proxy.inner().receive_owner_changed()
    ) {
        Ok(streams) => streams,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch NetworkManager: assuming an unmetered network");
            return;
        }
    };

    let mut metered = read(&proxy).await;
    if metered {
        tracing::info!("NetworkManager reports a metered network: not advertising");
        daemon.set_metered(true);
    }
    loop {
        let now = tokio::select! {
            () = shutdown.cancelled() => return,
            signal = changes.next() => {
                let Some(signal) = signal else { return };
                let Ok(args) = signal.args() else { continue };
                if args.interface_name().as_str() != NM_INTERFACE {
                    continue;
                }
                match args.changed_properties().get("Metered") {
                    Some(value) => u32::try_from(value).is_ok_and(is_metered),
                    None => continue,
                }
            }
            owner = owners.next() => {
                let Some(owner) = owner else { return };
                match owner {
                    Some(_) => read(&proxy).await,
                    None => {
                        tracing::info!("NetworkManager left the bus: assuming an unmetered network");
                        false
                    }
                }
            }
        };
        if now != metered {
            metered = now;
            tracing::info!(
                metered,
                "NetworkManager changed the network's metered state"
            );
            daemon.set_metered(metered);
        }
    }
}

/// `Metered` now; not metered when NetworkManager is absent or answers oddly.
async fn read(proxy: &PropertiesProxy<'_>) -> bool {
    let interface = InterfaceName::from_static_str_unchecked(NM_INTERFACE);
    match proxy.get(interface, "Metered").await {
        Ok(value) => u32::try_from(value).is_ok_and(is_metered),
        Err(e) => {
            tracing::debug!(error = %e, "no answer from NetworkManager: not metered");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_and_guess_yes_are_metered() {
        let metered: Vec<u32> = (0..6).filter(|v| is_metered(*v)).collect();
        assert_eq!(metered, vec![1, 3]);
    }
}
