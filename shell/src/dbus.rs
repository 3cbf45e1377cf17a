//! The D-Bus face of `passimd`: the `org.freedesktop.Passim` interface that fwupd and the
//! `passim` CLI call, and the proxy the CLI and the tests call it through.
//!
//! The service translates and nothing more. A method call becomes one call on [`Daemon`]; a
//! [`Event`] from the daemon becomes a `Changed` or `PropertiesChanged` signal. Who may call
//! what is decided here because only the bus knows the caller: `Publish` and `Unpublish` ask the
//! bus for the caller's UID (root only, unless `--insecure`) and PID (whose
//! `/proc/PID/cmdline` names the publishing program).
//!
//! The interface matches the C passim's: the same member names and signatures, so fwupd and
//! scripts written against it work unchanged. Errors carry stable names: the standard
//! `org.freedesktop.DBus.Error.InvalidArgs` for bad arguments, and
//! `org.freedesktop.Passim.Error.*` for what only passim can say.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt as _;
use passim_core::{AttrValue, Item, PublishAttrs, PublishError, Sha256};
use tokio::sync::broadcast;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::{Header, Message};
use zbus::names::{BusName, ErrorName};
use zbus::object_server::SignalEmitter;
use zbus::{Connection, DBusError, OwnedVariant, Str, Variant};

use crate::daemon::{self, Daemon, Event, PublishFailure};

/// The well-known name `passimd` owns.
pub const BUS_NAME: &str = "org.freedesktop.Passim";

/// The object path of the one object.
pub const OBJECT_PATH: &str = "/";

/// The interface name.
pub const INTERFACE: &str = "org.freedesktop.Passim";

/// Which bus to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, or the standard socket), as in production.
    System,
    /// The user's session bus, for development without root.
    Session,
}

impl Bus {
    /// A connection builder for this bus.
    fn builder(self) -> zbus::connection::Builder<'static> {
        match self {
            Self::System => zbus::connection::Builder::system(),
            Self::Session => zbus::connection::Builder::session(),
        }
    }

    /// Connects as a client.
    pub async fn connect(self) -> zbus::Result<Connection> {
        self.builder().build().await
    }
}

/// Why [`serve`] did not start the service.
#[derive(Debug)]
pub enum ServeError {
    /// The bus cannot be reached or will not let us own the name; the daemon can go on serving
    /// HTTPS without D-Bus.
    Unavailable(zbus::Error),
    /// Another process owns `org.freedesktop.Passim`: most likely another `passimd`.
    NameTaken,
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "D-Bus is not available: {e}"),
            Self::NameTaken => write!(f, "another process already owns {BUS_NAME}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The running service: the bus connection and the task that forwards the daemon's events.
pub struct Service {
    conn: Connection,
    name_lost: Option<zbus::fdo::NameLostStream>,
    forward: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Resolves when the well-known name is lost or the bus connection closes; the daemon then
    /// exits, as the C version does, so that a supervisor restarts it in a consistent state.
    pub async fn lost(&mut self) {
        let conn = self.conn.clone();
        let name_lost = async {
            let Some(stream) = self.name_lost.as_mut() else {
                return std::future::pending().await;
            };
            while let Some(signal) = stream.next().await {
                if signal.args().is_ok_and(|a| a.name.as_str() == BUS_NAME) {
                    return;
                }
            }
            // The stream ends when the connection does.
        };
        tokio::select! {
            () = name_lost => {}
            () = conn.closed() => {}
        }
    }

    /// Releases the name and closes the connection.
    pub async fn stop(self) {
        self.forward.abort();
        let _ = self.conn.release_name(BUS_NAME).await;
        let _ = self.conn.close().await;
    }
}

/// Connects to `bus`, exports the interface at `/` and takes the name `org.freedesktop.Passim`.
/// With `insecure`, any user may publish and unpublish.
pub async fn serve(daemon: Arc<Daemon>, bus: Bus, insecure: bool) -> Result<Service, ServeError> {
    let conn = bus.connect().await.map_err(ServeError::Unavailable)?;
    tracing::debug!(bus = ?bus, "connected to D-Bus");
    serve_on(daemon, conn, insecure).await
}

/// [`serve`] on a connection made elsewhere (a private bus in the tests).
///
/// The interface is exported before the name is requested, so no call that arrives because of
/// the name finds nothing to answer it.
pub async fn serve_on(
    daemon: Arc<Daemon>,
    conn: Connection,
    insecure: bool,
) -> Result<Service, ServeError> {
    // Subscribed before anything is exported, so no change after a client first looks is lost.
    let events = daemon.subscribe();
    let iface = PassimInterface { daemon, insecure };
    conn.object_server()
        .at(OBJECT_PATH, iface)
        .await
        .map_err(ServeError::Unavailable)?;
    // Listening before the name is taken, so that no loss can slip between the two. Without
    // the stream only a closed connection is noticed, which is the usual way to lose the name.
    let name_lost = match DBusProxy::new(&conn).await {
        Ok(bus) => bus.receive_name_lost().await.ok(),
        Err(_) => None,
    };
    let reply = conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DO_NOT_QUEUE)
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => ServeError::NameTaken,
            e => ServeError::Unavailable(e),
        })?;
    match reply {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => {}
        RequestNameReply::Exists | RequestNameReply::InQueue => return Err(ServeError::NameTaken),
    }
    tracing::info!(
        name = BUS_NAME,
        unique = %conn.unique_name().map(ToString::to_string).unwrap_or_default(),
        insecure,
        "D-Bus service ready"
    );
    let forward = tokio::spawn(forward_events(conn.clone(), events));
    Ok(Service {
        conn,
        name_lost,
        forward,
    })
}

/// Emits a signal for each event of the daemon, in order.
async fn forward_events(conn: Connection, mut events: broadcast::Receiver<Event>) {
    let iface = match conn
        .object_server()
        .interface::<_, PassimInterface>(OBJECT_PATH)
        .await
    {
        Ok(iface) => iface,
        Err(e) => {
            tracing::warn!(error = %e, "cannot emit D-Bus signals");
            return;
        }
    };
    let emitter = iface.signal_emitter().clone();
    loop {
        let event = match events.recv().await {
            Ok(event) => Some(event),
            // Signals were dropped: clients learn that something changed, and the status
            // is re-announced in case its change was among them.
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "D-Bus signal forwarding fell behind");
                None
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let emitted = match event {
            Some(Event::Changed) => PassimInterface::changed(&emitter).await,
            Some(Event::StatusChanged(_)) => iface.get().await.status_changed(&emitter).await,
            None => {
                let status = iface.get().await.status_changed(&emitter).await;
                status.and(PassimInterface::changed(&emitter).await)
            }
        };
        if let Err(e) = emitted {
            tracing::debug!(error = %e, "cannot emit D-Bus signal");
        }
    }
}

/// The `org.freedesktop.Passim` interface, exported at `/`.
struct PassimInterface {
    daemon: Arc<Daemon>,
    insecure: bool,
}

/// Who called a method, as the bus tells it.
struct Caller {
    uid: u32,
    pid: Option<u32>,
}

#[zbus::interface(name = "org.freedesktop.Passim", introspection_docs = false)]
impl PassimInterface {
    /// Every item, one `a{sv}` each; keys whose value is zero or empty are left out.
    #[zbus(out_args("items"))]
    async fn get_items(&self) -> Vec<HashMap<String, OwnedVariant>> {
        self.daemon.items().iter().map(item_to_dict).collect()
    }

    /// Reads a file from `handle` and publishes it with `attrs`.
    async fn publish(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        handle: zbus::OwnedFd,
        attrs: HashMap<String, OwnedVariant>,
    ) -> Result<(), Error> {
        // The body names fd index 0, but a caller may have attached more; the C version
        // refuses anything but exactly one, and extra descriptors would only be leaked here.
        let fds = header.unix_fds().unwrap_or(0);
        if fds != 1 {
            return Err(Error::InvalidArgs(format!(
                "expected exactly one file descriptor, got {fds}"
            )));
        }
        let caller = self.caller(&header, conn).await?;
        self.authorize(&caller, "publish")?;
        let cmdline = caller.pid.map(cmdline_basename).unwrap_or_default();

        let pairs = attrs_to_pairs(&attrs)?;
        let attrs =
            PublishAttrs::from_pairs(pairs.iter().map(|(k, v)| (*k, v.clone())), cmdline.clone())
                .map_err(refusal)?;
        let basename = attrs.basename.clone();

        // The daemon reads the fd on a blocking thread as a stream, capped at MaxItemSize.
        let file = File::from(std::os::fd::OwnedFd::from(handle));
        match self.daemon.publish(file, attrs).await {
            Ok(item) => {
                tracing::info!(
                    hash = %item.hash,
                    %basename,
                    size = item.size,
                    uid = caller.uid,
                    pid = ?caller.pid,
                    %cmdline,
                    "published over D-Bus"
                );
                Ok(())
            }
            Err(PublishFailure::Refused(e)) => {
                tracing::info!(%basename, uid = caller.uid, reason = %e, "publish refused");
                Err(refusal(e))
            }
            Err(PublishFailure::Io(e)) => {
                tracing::warn!(%basename, error = %format!("{e:#}"), "publish failed");
                Err(Error::Failed(format!("{e:#}")))
            }
        }
    }

    /// Removes the item with this hash.
    async fn unpublish(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        hash: &str,
    ) -> Result<(), Error> {
        let caller = self.caller(&header, conn).await?;
        self.authorize(&caller, "unpublish")?;
        let parsed = Sha256::parse_hex(hash)
            .map_err(|e| Error::InvalidArgs(format!("invalid hash {hash:?}: {e}")))?;
        self.daemon
            .unpublish(&parsed)
            .await
            .map_err(|e| Error::NotFound(e.to_string()))?;
        tracing::info!(hash = %parsed, uid = caller.uid, "unpublished over D-Bus");
        Ok(())
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"), name = "DaemonVersion")]
    fn daemon_version(&self) -> String {
        daemon::VERSION.to_owned()
    }

    /// `https://localhost:PORT/`.
    #[zbus(property(emits_changed_signal = "const"), name = "Uri")]
    fn uri(&self) -> String {
        self.daemon.uri()
    }

    /// `Passim-XXXX`, the mDNS instance name.
    #[zbus(property(emits_changed_signal = "const"), name = "Name")]
    fn name(&self) -> String {
        self.daemon.name()
    }

    /// 0 unknown, 1 starting, 2 loading, 3 running, 4 disabled (metered network).
    #[zbus(property, name = "Status")]
    fn status(&self) -> u32 {
        self.daemon.status().as_u32()
    }

    /// Bytes served to others, all time.
    #[zbus(property(emits_changed_signal = "false"), name = "DownloadSaving")]
    fn download_saving(&self) -> u64 {
        self.daemon.download_saving()
    }

    /// kg CO2e saved by serving locally.
    #[zbus(property(emits_changed_signal = "false"), name = "CarbonSaving")]
    fn carbon_saving(&self) -> f64 {
        self.daemon.carbon_saving()
    }

    /// Something on the interface changed: the items or the status.
    #[zbus(signal)]
    async fn changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

impl PassimInterface {
    /// Asks the bus who sent `header`'s message: the bus, unlike the message, cannot lie.
    async fn caller(&self, header: &Header<'_>, conn: &Connection) -> Result<Caller, Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::PermissionDenied("the caller is unknown".to_owned()))?;
        let bus = DBusProxy::new(conn)
            .await
            .map_err(|e| Error::Failed(format!("asking the bus about the caller: {e}")))?;
        let creds = bus
            .get_connection_credentials(BusName::Unique(sender.clone()))
            .await
            .map_err(|e| Error::Failed(format!("asking the bus about the caller: {e}")))?;
        let uid = creds
            .unix_user_id()
            .ok_or_else(|| Error::PermissionDenied("the caller's user is unknown".to_owned()))?;
        Ok(Caller {
            uid,
            pid: creds.process_id(),
        })
    }

    fn authorize(&self, caller: &Caller, what: &str) -> Result<(), Error> {
        if caller.uid == 0 || self.insecure {
            return Ok(());
        }
        tracing::info!(uid = caller.uid, pid = ?caller.pid, what, "refused a caller that is not root");
        Err(Error::PermissionDenied(format!(
            "only root may {what} (caller is uid {})",
            caller.uid
        )))
    }
}

/// An item as the `a{sv}` of `GetItems`, leaving out what is zero or empty as the C version does.
fn item_to_dict(item: &Item) -> HashMap<String, OwnedVariant> {
    let mut dict = HashMap::new();
    let mut put = |key: &str, value: OwnedVariant| {
        dict.insert(key.to_owned(), value);
    };
    put("hash", OwnedVariant::from(Str::from(item.hash.to_hex())));
    put(
        "filename",
        OwnedVariant::from(Str::from(item.basename.as_str().to_owned())),
    );
    if !item.cmdline.is_empty() {
        put(
            "cmdline",
            OwnedVariant::from(Str::from(item.cmdline.clone())),
        );
    }
    if item.max_age != 0 {
        put("max-age", OwnedVariant::from(item.max_age));
    }
    if item.share_limit != 0 {
        put("share-limit", OwnedVariant::from(item.share_limit));
    }
    if item.share_count != 0 {
        put("share-count", OwnedVariant::from(item.share_count));
    }
    if item.size != 0 {
        put("size", OwnedVariant::from(item.size));
    }
    let ctime = i64::try_from(item.ctime.as_secs()).unwrap_or(i64::MAX);
    if ctime != 0 {
        put("ctime", OwnedVariant::from(ctime));
    }
    if !item.flags.is_empty() {
        put("flags", OwnedVariant::from(item.flags.bits()));
    }
    dict
}

/// The publish attributes as the core takes them. A known key with a type the core has no
/// [`AttrValue`] for is refused here; unknown keys are passed on and ignored there.
fn attrs_to_pairs(attrs: &HashMap<String, OwnedVariant>) -> Result<Vec<(&str, AttrValue)>, Error> {
    let mut pairs = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        let value = match &**value {
            Variant::Str(s) => AttrValue::Str(s.as_str().to_owned()),
            Variant::U32(v) => AttrValue::U32(*v),
            Variant::U64(v) => AttrValue::U64(*v),
            Variant::I64(v) => AttrValue::I64(*v),
            Variant::Bool(v) => AttrValue::Bool(*v),
            _ if is_known_attr(key) => {
                return Err(refusal(PublishError::WrongType(key.clone())));
            }
            _ => continue,
        };
        pairs.push((key.as_str(), value));
    }
    Ok(pairs)
}

fn is_known_attr(key: &str) -> bool {
    matches!(
        key,
        "filename" | "max-age" | "share-limit" | "share-count" | "flags"
    )
}

/// The basename of the first element of `/proc/PID/cmdline`, or empty when the process is gone
/// or hidden. It only labels the item (audit log, index page), so a best effort is enough.
fn cmdline_basename(pid: u32) -> String {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return String::new();
    };
    let first = raw.split(|b| *b == 0).next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    Path::new(first.as_ref())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A refusal from the core as the D-Bus error a caller can act on.
fn refusal(e: PublishError) -> Error {
    let message = e.to_string();
    match e {
        PublishError::Exists(_) => Error::Exists(message),
        PublishError::TooLarge { .. } => Error::TooLarge(message),
        e if e.is_invalid_args() => Error::InvalidArgs(message),
        _ => Error::Failed(message),
    }
}

/// An error a method call fails with; each variant is one stable D-Bus error name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `org.freedesktop.DBus.Error.InvalidArgs`: a bad basename, hash, type or fd list.
    InvalidArgs(String),
    /// `org.freedesktop.Passim.Error.Exists`: the content is already published.
    Exists(String),
    /// `org.freedesktop.Passim.Error.NotFound`: no item has that hash.
    NotFound(String),
    /// `org.freedesktop.Passim.Error.TooLarge`: the content is larger than `MaxItemSize`.
    TooLarge(String),
    /// `org.freedesktop.Passim.Error.PermissionDenied`: the caller is not root.
    PermissionDenied(String),
    /// `org.freedesktop.Passim.Error.Failed`: reading or storing failed.
    Failed(String),
}

impl Error {
    /// The D-Bus error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            Self::InvalidArgs(_) => "org.freedesktop.DBus.Error.InvalidArgs",
            Self::Exists(_) => "org.freedesktop.Passim.Error.Exists",
            Self::NotFound(_) => "org.freedesktop.Passim.Error.NotFound",
            Self::TooLarge(_) => "org.freedesktop.Passim.Error.TooLarge",
            Self::PermissionDenied(_) => "org.freedesktop.Passim.Error.PermissionDenied",
            Self::Failed(_) => "org.freedesktop.Passim.Error.Failed",
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidArgs(m)
            | Self::Exists(m)
            | Self::NotFound(m)
            | Self::TooLarge(m)
            | Self::PermissionDenied(m)
            | Self::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl DBusError for Error {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name()).build(&(self.message(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(self.error_name())
    }

    fn description(&self) -> Option<&str> {
        Some(self.message())
    }
}

/// The client side of `org.freedesktop.Passim`, as the `passim` CLI and the tests use it.
#[zbus::proxy(
    interface = "org.freedesktop.Passim",
    default_service = "org.freedesktop.Passim",
    default_path = "/"
)]
pub trait Passim {
    /// Every item held, one `a{sv}` each.
    fn get_items(&self) -> zbus::Result<Vec<HashMap<String, OwnedVariant>>>;

    /// Publishes the file open at `handle`.
    fn publish(&self, handle: zbus::Fd<'_>, attrs: HashMap<&str, Variant<'_>>) -> zbus::Result<()>;

    /// Removes the item with `hash`.
    fn unpublish(&self, hash: &str) -> zbus::Result<()>;

    /// The daemon's version.
    #[zbus(property)]
    fn daemon_version(&self) -> zbus::Result<String>;

    /// `https://localhost:PORT/`.
    #[zbus(property)]
    fn uri(&self) -> zbus::Result<String>;

    /// `Passim-XXXX`.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    /// The status number.
    #[zbus(property)]
    fn status(&self) -> zbus::Result<u32>;

    /// Bytes served to others, all time.
    #[zbus(property)]
    fn download_saving(&self) -> zbus::Result<u64>;

    /// kg CO2e saved.
    #[zbus(property)]
    fn carbon_saving(&self) -> zbus::Result<f64>;

    /// The items or the status changed.
    #[zbus(signal)]
    fn changed(&self) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    use passim_core::{Basename, Flags, Origin, Timestamp};

    use super::*;

    fn item() -> Item {
        Item {
            hash: Sha256::parse_hex(&"ab".repeat(32)).unwrap(),
            basename: Basename::new("fw.cab").unwrap(),
            cmdline: String::new(),
            max_age: 86_400,
            share_limit: 0,
            share_count: 0,
            size: 12,
            ctime: Timestamp::from_secs(1_700_000_000),
            flags: Flags::NONE,
            boot_time: None,
            origin: Origin::Published,
        }
    }

    #[test]
    fn zero_and_empty_values_are_left_out() {
        let dict = item_to_dict(&item());
        let mut keys: Vec<_> = dict.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["ctime", "filename", "hash", "max-age", "size"]);
        assert_eq!(dict["max-age"].value_signature(), "u");
        assert_eq!(dict["size"].value_signature(), "t");
        assert_eq!(dict["ctime"].value_signature(), "x");
    }

    #[test]
    fn known_attribute_of_an_unsupported_type_is_invalid_args() {
        let mut attrs = HashMap::new();
        attrs.insert("max-age".to_owned(), OwnedVariant::from(1.5f64));
        let err = attrs_to_pairs(&attrs).unwrap_err();
        assert_eq!(err.error_name(), "org.freedesktop.DBus.Error.InvalidArgs");

        let mut attrs = HashMap::new();
        attrs.insert("something-new".to_owned(), OwnedVariant::from(1.5f64));
        assert!(attrs_to_pairs(&attrs).unwrap().is_empty());
    }

    #[test]
    fn refusals_map_to_stable_names() {
        let hash = Sha256::parse_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(
            refusal(PublishError::Exists(hash)).error_name(),
            "org.freedesktop.Passim.Error.Exists"
        );
        assert_eq!(
            refusal(PublishError::TooLarge { limit: 10 }).error_name(),
            "org.freedesktop.Passim.Error.TooLarge"
        );
        assert_eq!(
            refusal(PublishError::MissingBasename).error_name(),
            "org.freedesktop.DBus.Error.InvalidArgs"
        );
    }

    #[test]
    fn cmdline_of_this_process_is_its_basename() {
        let name = cmdline_basename(std::process::id());
        assert!(!name.is_empty());
        assert!(!name.contains('/'));
        assert_eq!(cmdline_basename(u32::MAX), "");
    }
}
