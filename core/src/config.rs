//! The configuration files: `passim.conf` and the static-dir configs in `passim.d`.
//!
//! Both are GLib key files, so this module carries its own small key-file parser ([`KeyFile`])
//! and builds [`Config`] and [`StaticDirConfig`] on it. A bad line or a bad value never stops the
//! daemon: the line is skipped or the setting falls back to its default, and a [`ConfigWarning`]
//! says what was ignored and what is used instead, for the shell to log. The shell reads the
//! files and decodes them as UTF-8; nothing here touches the filesystem.

use std::collections::BTreeMap;
use std::fmt;
use std::mem;
use std::net::IpAddr;
use std::num::IntErrorKind;
use std::ops::RangeInclusive;

/// The group of `passim.conf` that holds the daemon's settings.
pub const DAEMON_GROUP: &str = "daemon";

/// The group of a `passim.d/*.conf` static-dir config.
pub const STATIC_DIR_GROUP: &str = "passim";

/// Default of `Port`: the HTTPS port.
pub const DEFAULT_PORT: u16 = 27500;

/// Default of `IPv6`.
pub const DEFAULT_IPV6: bool = false;

/// Default of `MaxItemSize`: 100 MiB.
pub const DEFAULT_MAX_ITEM_SIZE: u64 = 100 * 1024 * 1024;

/// Default of `CarbonCost`, in kg CO2e per GB.
pub const DEFAULT_CARBON_COST: f64 = 0.026367;

/// The smallest `CarbonCost` taken as given; anything below means the default.
pub const MIN_CARBON_COST: f64 = 0.00001;

/// Default of `Cooldown`, in seconds.
pub const DEFAULT_COOLDOWN: u32 = 3600;

/// Default of `MaxUploadRate`: 0, no limit.
pub const DEFAULT_MAX_UPLOAD_RATE: u64 = 0;

/// Default of `MaxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;

/// Default of `LookupTimeout`, in milliseconds.
pub const DEFAULT_LOOKUP_TIMEOUT_MS: u32 = 500;

/// The smallest `LookupTimeout` in milliseconds; smaller values are raised to it.
pub const MIN_LOOKUP_TIMEOUT_MS: u32 = 1;

/// The largest `LookupTimeout` in milliseconds; larger values are lowered to it. A client waits
/// for the answer, so a lookup must not hold it for long.
pub const MAX_LOOKUP_TIMEOUT_MS: u32 = 10_000;

/// Something in a configuration file that passim ignored or replaced, or, from
/// [`StaticDirConfig::parse`], the reason a static-dir config is unusable.
///
/// Its [`Display`](fmt::Display) form is a line for an operator's log, e.g.
/// `line 3: Port=70000 is out of range 1..65535, using 27500`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The 1-based line the warning is about, when it is about one line.
    pub line: Option<usize>,
    /// The key concerned, e.g. `Port`, when there is one; for structured logging.
    pub key: Option<String>,
    /// What happened and what passim does instead, without the line number.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigWarning {}

/// A parsed GLib key file: named groups of `key=value` entries.
///
/// Group and key names are case-sensitive, as in GLib. Values are stored both as written and
/// with their escapes decoded, so that [`KeyFile::get_list`] can tell an escaped `\;` from a
/// separator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    groups: BTreeMap<String, BTreeMap<String, Entry>>,
}

impl KeyFile {
    /// Parses key-file text, skipping what it cannot understand.
    ///
    /// Blank lines and lines starting with `#` are comments; `[Name]` starts a group, and a
    /// group that appears twice is merged; `key=value` sets a key, the last one winning when a
    /// key repeats. Whitespace around keys and values is dropped; `\s`, `\n`, `\t`, `\r` and
    /// `\\` in values are decoded. Localised keys such as `Name[de]` are ignored. Each other line
    /// that is not understood, and each key before the first group, gives a warning.
    pub fn parse(text: &str) -> (KeyFile, Vec<ConfigWarning>) {
        // Editors on other systems may save a byte-order mark; it would spoil the first line.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut file = KeyFile::default();
        let mut warnings = Vec::new();
        let mut current = Current::BeforeFirstGroup;

        // `lines` splits on `\n` and drops a `\r` before it, so CRLF files read like LF ones.
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = trim(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }

            if line.starts_with('[') {
                match group_name(line) {
                    Some(name) => {
                        file.groups.entry(name.to_owned()).or_default();
                        current = Current::Group(name.to_owned());
                    }
                    None => {
                        // Keys below a broken header were meant for that group, not the one
                        // before it, so they are dropped with it.
                        warnings.push(ConfigWarning {
                            line: Some(number),
                            key: None,
                            message: format!(
                                "{} is not a valid [group] header; it and its keys are skipped",
                                quote(line)
                            ),
                        });
                        current = Current::Invalid;
                    }
                }
                continue;
            }

            let Some((key, raw)) = line.split_once('=') else {
                warnings.push(ConfigWarning {
                    line: Some(number),
                    key: None,
                    message: format!(
                        "{} is not a [group], a key=value pair or a comment; skipped",
                        quote(line)
                    ),
                });
                continue;
            };
            let key = trim(key);
            let raw = trim(raw);

            let group = match &current {
                Current::Group(group) => group,
                Current::Invalid => continue,
                Current::BeforeFirstGroup => {
                    warnings.push(ConfigWarning {
                        line: Some(number),
                        key: (!key.is_empty()).then(|| key.to_owned()),
                        message: format!("{} comes before any [group]; skipped", show(key, raw)),
                    });
                    continue;
                }
            };
            if key.is_empty() {
                warnings.push(ConfigWarning {
                    line: Some(number),
                    key: None,
                    message: format!("{} has no key before the =; skipped", quote(line)),
                });
                continue;
            }
            if key.contains(['[', ']']) {
                // `Name[de]` holds a translation of `Name`; passim has no use for one.
                if !is_localized(key) {
                    warnings.push(ConfigWarning {
                        line: Some(number),
                        key: Some(key.to_owned()),
                        message: format!("{} is not a valid key name; skipped", quote(key)),
                    });
                }
                continue;
            }

            let entry = Entry {
                line: number,
                raw: raw.to_owned(),
                value: unescape(raw),
            };
            file.groups
                .entry(group.clone())
                .or_default()
                .insert(key.to_owned(), entry);
        }

        (file, warnings)
    }

    /// The value of `key` in `group`, escapes decoded; `None` when either is missing.
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.entry(group, key).map(|entry| entry.value.as_str())
    }

    /// The value of `key` in `group` as a GLib list: items separated by `;`, with an optional
    /// trailing `;`, and `\;` for a `;` inside an item. Escapes in each item are decoded;
    /// whitespace inside the list is kept. `None` when the key is missing; an empty value is an
    /// empty list.
    pub fn get_list(&self, group: &str, key: &str) -> Option<Vec<String>> {
        self.entry(group, key).map(|entry| split_list(&entry.raw))
    }

    /// Whether `group` appears in the file, even with no keys.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    fn entry(&self, group: &str, key: &str) -> Option<&Entry> {
        self.groups.get(group)?.get(key)
    }
}

/// The settings of `passim.conf`, group `[daemon]`.
///
/// Every setting is optional; a missing one takes its default, and so does an invalid one, with
/// a warning. Unknown keys and other groups are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The HTTPS port to listen on and advertise. Key `Port`, default [`DEFAULT_PORT`] (27500);
    /// outside 1..=65535 means the default.
    pub port: u16,
    /// Whether to listen and advertise on IPv6 too. Key `IPv6` (`true`, `false`, `1` or `0`),
    /// default [`DEFAULT_IPV6`] (false).
    pub ipv6: bool,
    /// Where published items live. Key `Path`; `None` when absent or empty, and the shell then
    /// uses `$LOCALSTATEDIR/lib/passim/data`.
    pub path: Option<String>,
    /// The largest file `Publish` accepts, in bytes. Key `MaxItemSize`, default
    /// [`DEFAULT_MAX_ITEM_SIZE`] (104857600, 100 MiB).
    pub max_item_size: u64,
    /// kg CO2e per GB transferred, for `CarbonSaving`. Key `CarbonCost`, default
    /// [`DEFAULT_CARBON_COST`] (0.026367); values below [`MIN_CARBON_COST`] mean the default, as
    /// in the C version.
    pub carbon_cost: f64,
    /// Seconds before one remote address may fetch the same hash again. Key `Cooldown`, default
    /// [`DEFAULT_COOLDOWN`] (3600).
    pub cooldown: u32,
    /// Addresses to bind the HTTPS server to, in the order given, without duplicates; empty
    /// means every address. Key `Listen`, a `;`-separated list such as
    /// `192.168.1.2;fd00::2` (an IPv6 address may be written in brackets). Entries that are not
    /// IP addresses are skipped. Default empty.
    pub listen: Vec<IpAddr>,
    /// Bytes per second for all serving together; 0 means no limit. Key `MaxUploadRate`, default
    /// [`DEFAULT_MAX_UPLOAD_RATE`] (0).
    pub max_upload_rate: u64,
    /// The most HTTPS connections served at once. Key `MaxConnections`, default
    /// [`DEFAULT_MAX_CONNECTIONS`] (256); 0 means the default.
    pub max_connections: u32,
    /// Milliseconds a peer lookup may take before the daemon answers 404. Key `LookupTimeout`,
    /// default [`DEFAULT_LOOKUP_TIMEOUT_MS`] (500); values outside
    /// [`MIN_LOOKUP_TIMEOUT_MS`]..=[`MAX_LOOKUP_TIMEOUT_MS`] (1..=10000) are brought inside.
    pub lookup_timeout_ms: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            ipv6: DEFAULT_IPV6,
            path: None,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            carbon_cost: DEFAULT_CARBON_COST,
            cooldown: DEFAULT_COOLDOWN,
            listen: Vec::new(),
            max_upload_rate: DEFAULT_MAX_UPLOAD_RATE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            lookup_timeout_ms: DEFAULT_LOOKUP_TIMEOUT_MS,
        }
    }
}

impl Config {
    /// Parses the text of `passim.conf`. The warnings cover both the key-file syntax and the
    /// values, in line order.
    pub fn parse(text: &str) -> (Config, Vec<ConfigWarning>) {
        let (file, mut warnings) = KeyFile::parse(text);
        let mut daemon = Settings {
            entries: file.groups.get(DAEMON_GROUP),
            warnings: &mut warnings,
        };

        let config = Config {
            port: daemon.integer("Port", 1..=u16::MAX, DEFAULT_PORT, OutOfRange::UseDefault),
            ipv6: daemon.boolean("IPv6", DEFAULT_IPV6),
            path: daemon.string("Path"),
            max_item_size: daemon.integer(
                "MaxItemSize",
                0..=u64::MAX,
                DEFAULT_MAX_ITEM_SIZE,
                OutOfRange::UseDefault,
            ),
            carbon_cost: daemon.carbon_cost("CarbonCost"),
            cooldown: daemon.integer(
                "Cooldown",
                0..=u32::MAX,
                DEFAULT_COOLDOWN,
                OutOfRange::UseDefault,
            ),
            listen: daemon.addresses("Listen"),
            max_upload_rate: daemon.integer(
                "MaxUploadRate",
                0..=u64::MAX,
                DEFAULT_MAX_UPLOAD_RATE,
                OutOfRange::UseDefault,
            ),
            max_connections: daemon.integer(
                "MaxConnections",
                1..=u32::MAX,
                DEFAULT_MAX_CONNECTIONS,
                OutOfRange::UseDefault,
            ),
            lookup_timeout_ms: daemon.integer(
                "LookupTimeout",
                MIN_LOOKUP_TIMEOUT_MS..=MAX_LOOKUP_TIMEOUT_MS,
                DEFAULT_LOOKUP_TIMEOUT_MS,
                OutOfRange::Clamp,
            ),
        };

        // Syntax warnings came first and value warnings in field order; an operator reads the
        // file top to bottom. The sort is stable, so one line's warnings keep their order.
        warnings.sort_by_key(|warning| warning.line);
        (config, warnings)
    }
}

/// A static-dir config from `passim.d/*.conf`: a directory whose regular files are all shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticDirConfig {
    /// The directory to share. Key `Path` in group `[passim]`, required and non-empty.
    pub path: String,
}

impl StaticDirConfig {
    /// Parses the text of one static-dir config.
    ///
    /// The result is the config, or why the file is unusable (no `[passim]` group, no `Path`, an
    /// empty `Path`), for the shell to log before skipping the file. The warnings beside it are
    /// about lines that were skipped either way, and can explain a missing `Path`.
    pub fn parse(text: &str) -> (Result<StaticDirConfig, ConfigWarning>, Vec<ConfigWarning>) {
        let (file, warnings) = KeyFile::parse(text);
        let unusable = |line, key: Option<&str>, message: &str| ConfigWarning {
            line,
            key: key.map(str::to_owned),
            message: format!("{message}, so this file shares nothing"),
        };

        let result = if !file.has_group(STATIC_DIR_GROUP) {
            Err(unusable(None, None, "there is no [passim] group"))
        } else {
            match file.entry(STATIC_DIR_GROUP, "Path") {
                None => Err(unusable(None, Some("Path"), "[passim] has no Path key")),
                Some(entry) if entry.value.is_empty() => {
                    Err(unusable(Some(entry.line), Some("Path"), "Path is empty"))
                }
                Some(entry) => Ok(StaticDirConfig {
                    path: entry.value.clone(),
                }),
            }
        };
        (result, warnings)
    }
}

/// One `key=value` line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The 1-based line it came from, for warnings about its value.
    line: usize,
    /// The value as written, whitespace trimmed, escapes not decoded.
    raw: String,
    /// The value with its escapes decoded.
    value: String,
}

/// Which group the lines being parsed belong to.
enum Current {
    /// No group header yet: keys here belong nowhere.
    BeforeFirstGroup,
    /// Below a header that is not a valid group name.
    Invalid,
    /// Below `[name]`.
    Group(String),
}

/// What to do with an integer setting that is a number but outside its range.
#[derive(Clone, Copy)]
enum OutOfRange {
    /// Use the default, as the C version does for `Port`.
    UseDefault,
    /// Use the nearest end of the range: the operator's intent is clear enough.
    Clamp,
}

/// Reads typed settings from one group, collecting warnings about their values.
struct Settings<'a> {
    entries: Option<&'a BTreeMap<String, Entry>>,
    warnings: &'a mut Vec<ConfigWarning>,
}

impl<'a> Settings<'a> {
    fn entry(&self, key: &str) -> Option<&'a Entry> {
        self.entries?.get(key)
    }

    fn warn(&mut self, entry: &Entry, key: &str, message: String) {
        self.warnings.push(ConfigWarning {
            line: Some(entry.line),
            key: Some(key.to_owned()),
            message,
        });
    }

    /// A whole number in `range`, or `default` when the key is missing or not a whole number.
    fn integer<T>(
        &mut self,
        key: &str,
        range: RangeInclusive<T>,
        default: T,
        out_of_range: OutOfRange,
    ) -> T
    where
        T: Copy + fmt::Display + Into<i128> + TryFrom<i128>,
    {
        let Some(entry) = self.entry(key) else {
            return default;
        };
        let Some(number) = parse_integer(&entry.value) else {
            let message = format!(
                "{} is not a whole number, using {default}",
                show(key, &entry.value)
            );
            self.warn(entry, key, message);
            return default;
        };

        let (min, max) = (*range.start(), *range.end());
        let clamped = number.clamp(min.into(), max.into());
        // `clamped` lies between two values of `T`, so the conversion cannot fail.
        let value = T::try_from(clamped).unwrap_or(default);
        if clamped == number {
            return value;
        }
        let using = match out_of_range {
            OutOfRange::UseDefault => default,
            OutOfRange::Clamp => value,
        };
        let message = format!(
            "{} is out of range {min}..{max}, using {using}",
            show(key, &entry.value)
        );
        self.warn(entry, key, message);
        using
    }

    /// A GLib boolean: exactly `true`, `false`, `1` or `0`.
    fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(entry) = self.entry(key) else {
            return default;
        };
        match entry.value.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                let message = format!(
                    "{} is not true, false, 1 or 0, using {default}",
                    show(key, &entry.value)
                );
                self.warn(entry, key, message);
                default
            }
        }
    }

    /// A string that counts as unset when empty.
    fn string(&mut self, key: &str) -> Option<String> {
        self.entry(key)
            .map(|entry| entry.value.clone())
            .filter(|value| !value.is_empty())
    }

    fn carbon_cost(&mut self, key: &str) -> f64 {
        let Some(entry) = self.entry(key) else {
            return DEFAULT_CARBON_COST;
        };
        let problem = match entry.value.parse::<f64>() {
            // Zero, negative and tiny values silently mean the default, as in the C version.
            Ok(cost) if cost.is_finite() && cost < MIN_CARBON_COST => return DEFAULT_CARBON_COST,
            Ok(cost) if cost.is_finite() => return cost,
            Ok(_) => "is not a finite number",
            Err(_) => "is not a number",
        };
        let message = format!(
            "{} {problem}, using {DEFAULT_CARBON_COST}",
            show(key, &entry.value)
        );
        self.warn(entry, key, message);
        DEFAULT_CARBON_COST
    }

    /// A list of IP addresses, skipping (with a warning) each entry that is not one.
    fn addresses(&mut self, key: &str) -> Vec<IpAddr> {
        let Some(entry) = self.entry(key) else {
            return Vec::new();
        };
        let mut addresses = Vec::new();
        for item in split_list(&entry.raw) {
            // `a; b` reads naturally, and `;;` is a harmless slip.
            let item = trim(&item);
            if item.is_empty() {
                continue;
            }
            let bare = item
                .strip_prefix('[')
                .and_then(|inner| inner.strip_suffix(']'))
                .unwrap_or(item);
            match bare.parse::<IpAddr>() {
                // Binding one address twice would fail, and listing it twice means it once.
                Ok(address) if addresses.contains(&address) => {}
                Ok(address) => addresses.push(address),
                Err(_) => {
                    let message =
                        format!("{key} entry {} is not an IP address; skipped", quote(item));
                    self.warn(entry, key, message);
                }
            }
        }
        addresses
    }
}

/// GLib's whitespace: the ASCII space characters, vertical tab included.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn trim(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// The name in a trimmed `[name]` line, if it is a valid group name: non-empty, without
/// brackets or control characters.
fn group_name(line: &str) -> Option<&str> {
    let name = line.strip_prefix('[')?.strip_suffix(']')?;
    let valid = !name.is_empty() && !name.chars().any(|c| c == '[' || c == ']' || c.is_control());
    valid.then_some(name)
}

/// Whether `key` is a localised key, `name[locale]`.
fn is_localized(key: &str) -> bool {
    let Some((name, rest)) = key.split_once('[') else {
        return false;
    };
    let Some(locale) = rest.strip_suffix(']') else {
        return false;
    };
    !name.is_empty() && !name.contains(']') && !locale.is_empty() && !locale.contains(['[', ']'])
}

/// Decodes the escapes of a value.
fn unescape(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => push_escape(&mut value, chars.next(), false),
            _ => value.push(c),
        }
    }
    value
}

/// Splits a value as written into list items, decoding the escapes of each.
fn split_list(raw: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut item = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            ';' => items.push(mem::take(&mut item)),
            '\\' => push_escape(&mut item, chars.next(), true),
            _ => item.push(c),
        }
    }
    // A trailing `;` ends the last item rather than starting an empty one.
    if !item.is_empty() {
        items.push(item);
    }
    items
}

/// Appends what a backslash followed by `next` stands for.
fn push_escape(out: &mut String, next: Option<char>, in_list: bool) {
    match next {
        Some('s') => out.push(' '),
        Some('n') => out.push('\n'),
        Some('t') => out.push('\t'),
        Some('r') => out.push('\r'),
        Some('\\') => out.push('\\'),
        Some(';') if in_list => out.push(';'),
        // GLib rejects the whole value over an unknown escape or a trailing backslash. Keeping
        // them as written loses nothing and is more likely what the operator meant, e.g. in a
        // path copied from elsewhere.
        Some(other) => {
            out.push('\\');
            out.push(other);
        }
        None => out.push('\\'),
    }
}

/// Parses a decimal whole number, optionally signed. A number too long for `i128` still counts
/// as a number, just a huge one, so that the operator is told "out of range", not "not a whole
/// number".
fn parse_integer(text: &str) -> Option<i128> {
    match text.parse::<i128>() {
        Ok(number) => Some(number),
        Err(error) => match error.kind() {
            IntErrorKind::PosOverflow => Some(i128::MAX),
            IntErrorKind::NegOverflow => Some(i128::MIN),
            _ => None,
        },
    }
}

/// The longest piece of a line or value quoted in a warning, in characters.
const EXCERPT_CHARS: usize = 60;

/// `key=value` as the operator wrote it; the value quoted when a log line would otherwise hide
/// what it holds (nothing, edge whitespace, control characters) or when it is shortened.
fn show(key: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && !value.starts_with(is_space)
        && !value.ends_with(is_space)
        && !value.chars().any(char::is_control)
        && value.chars().count() <= EXCERPT_CHARS;
    // A key holds no line break but may hold other control characters.
    let key = if key.chars().any(char::is_control) {
        quote(key)
    } else {
        key.to_owned()
    };
    if plain {
        format!("{key}={value}")
    } else {
        format!("{key}={}", quote(value))
    }
}

/// `text` in double quotes with control characters escaped, shortened if long, so that a
/// warning stays on one readable log line.
fn quote(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return format!("{text:?}");
    }
    let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    excerpt.push('…');
    format!("{excerpt:?}")
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn parse_daemon(body: &str) -> (Config, Vec<ConfigWarning>) {
        Config::parse(&format!("[daemon]\n{body}\n"))
    }

    /// The config from `[daemon]` + `body`, asserting exactly one warning, which is returned.
    fn one_warning(body: &str) -> (Config, ConfigWarning) {
        let (config, mut warnings) = parse_daemon(body);
        assert_eq!(warnings.len(), 1, "{body:?} gave {warnings:?}");
        (config, warnings.remove(0))
    }

    fn no_warnings(body: &str) -> Config {
        let (config, warnings) = parse_daemon(body);
        assert_eq!(warnings, [], "{body:?}");
        config
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = "# top\n\n   # indented\n[g]\n\t\n  #k=v\nk=v\n";
        let (file, warnings) = KeyFile::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "k"), Some("v"));
        assert_eq!(file.get("g", "#k"), None);
    }

    #[test]
    fn whitespace_around_keys_values_and_headers_is_trimmed() {
        let text = "  [g]  \n  key \t=\t  some value  \nx=  \n";
        let (file, warnings) = KeyFile::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "key"), Some("some value"));
        assert_eq!(file.get("g", "x"), Some(""));
    }

    #[test]
    fn only_the_first_equals_sign_separates() {
        let (file, _) = KeyFile::parse("[g]\nk=a=b==c\n");
        assert_eq!(file.get("g", "k"), Some("a=b==c"));
    }

    #[test]
    fn escapes_are_decoded() {
        let text = "[g]\nall=a\\sb\\nc\\td\\re\\\\f\nedges=\\s padded \\s\n";
        let (file, warnings) = KeyFile::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "all"), Some("a b\nc\td\re\\f"));
        assert_eq!(file.get("g", "edges"), Some("  padded  "));
    }

    #[test]
    fn unknown_escapes_and_a_trailing_backslash_are_kept() {
        let text = "[g]\nunknown=C:\\dir\\x\ntrailing=end\\\nsemicolon=a\\;b\n";
        let (file, warnings) = KeyFile::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "unknown"), Some("C:\\dir\\x"));
        assert_eq!(file.get("g", "trailing"), Some("end\\"));
        assert_eq!(file.get("g", "semicolon"), Some("a\\;b"));
    }

    #[test]
    fn a_later_duplicate_key_wins() {
        let (file, warnings) = KeyFile::parse("[g]\nk=first\nk=second\n");
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "k"), Some("second"));
    }

    #[test]
    fn a_repeated_group_merges() {
        let (file, warnings) = KeyFile::parse("[a]\nx=1\ny=1\n[b]\nz=2\n[a]\ny=3\n");
        assert_eq!(warnings, []);
        assert_eq!(file.get("a", "x"), Some("1"));
        assert_eq!(file.get("a", "y"), Some("3"));
        assert_eq!(file.get("b", "z"), Some("2"));
        assert_eq!(file.get("b", "x"), None);
    }

    #[test]
    fn localized_keys_are_ignored_silently() {
        let (file, warnings) =
            KeyFile::parse("[g]\nName=plain\nName[de]=Deutsch\nName[sr@latin]=x\n");
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "Name"), Some("plain"));
        assert_eq!(file.get("g", "Name[de]"), None);
    }

    #[test]
    fn malformed_bracketed_keys_are_warned_about() {
        let (file, warnings) = KeyFile::parse("[g]\nName[de=x\nNa]me=y\nName[]=z\nok=1\n");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.message.contains("not a valid key name"))
        );
        assert_eq!(
            warnings.iter().map(|w| w.line).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4)]
        );
        assert_eq!(file.get("g", "ok"), Some("1"));
    }

    #[test]
    fn names_are_case_sensitive() {
        let (file, _) = KeyFile::parse("[Daemon]\nport=1\n");
        assert!(file.has_group("Daemon"));
        assert!(!file.has_group("daemon"));
        assert_eq!(file.get("Daemon", "Port"), None);
        assert_eq!(file.get("Daemon", "port"), Some("1"));
    }

    #[test]
    fn keys_before_any_group_are_skipped_with_a_warning() {
        let (file, warnings) = KeyFile::parse("Port=1\n[g]\nk=v\n");
        assert_eq!(file.get("g", "k"), Some("v"));
        assert_eq!(file.get("g", "Port"), None);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, Some(1));
        assert_eq!(warnings[0].key.as_deref(), Some("Port"));
        assert_eq!(
            warnings[0].to_string(),
            "line 1: Port=1 comes before any [group]; skipped"
        );
    }

    #[test]
    fn lines_that_are_not_understood_are_skipped_with_a_warning() {
        let (file, warnings) = KeyFile::parse("[g]\nk=v\njust words\n=novalue\nj=w\n");
        assert_eq!(file.get("g", "k"), Some("v"));
        assert_eq!(file.get("g", "j"), Some("w"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(
            warnings[0].to_string(),
            "line 3: \"just words\" is not a [group], a key=value pair or a comment; skipped"
        );
        assert_eq!(warnings[1].line, Some(4));
        assert!(warnings[1].message.contains("no key"));
    }

    #[test]
    fn a_broken_group_header_drops_its_keys() {
        for header in ["[]", "[a]b", "[a", "[a[b]", "[a]]", "[\u{7}]"] {
            let text = format!("[g]\nk=1\n{header}\nk=2\nother=3\n");
            let (file, warnings) = KeyFile::parse(&text);
            assert_eq!(warnings.len(), 1, "{header}: {warnings:?}");
            assert_eq!(warnings[0].line, Some(3));
            assert!(warnings[0].message.contains("not a valid [group] header"));
            assert_eq!(file.get("g", "k"), Some("1"), "{header}");
            assert_eq!(file.get("g", "other"), None, "{header}");
        }
    }

    #[test]
    fn an_empty_group_is_still_a_group() {
        let (file, warnings) = KeyFile::parse("[empty]\n[other group]\n");
        assert_eq!(warnings, []);
        assert!(file.has_group("empty"));
        assert!(file.has_group("other group"));
        assert_eq!(file.get("empty", "k"), None);
    }

    #[test]
    fn crlf_and_lf_files_parse_the_same() {
        let lf = "# c\n[g]\nk = v \nl=w\n";
        let crlf = lf.replace('\n', "\r\n");
        let (from_lf, lf_warnings) = KeyFile::parse(lf);
        let (from_crlf, crlf_warnings) = KeyFile::parse(&crlf);
        assert_eq!(lf_warnings, []);
        assert_eq!(crlf_warnings, []);
        assert_eq!(from_crlf, from_lf);
        assert_eq!(from_crlf.get("g", "k"), Some("v"));
    }

    #[test]
    fn the_last_line_needs_no_newline() {
        let (file, warnings) = KeyFile::parse("[g]\nk=v");
        assert_eq!(warnings, []);
        assert_eq!(file.get("g", "k"), Some("v"));
    }

    #[test]
    fn an_empty_file_has_no_groups_and_no_warnings() {
        for text in ["", "\n\n", "\u{feff}"] {
            let (file, warnings) = KeyFile::parse(text);
            assert_eq!(warnings, []);
            assert_eq!(file, KeyFile::default());
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let (file, warnings) = KeyFile::parse("\u{feff}[daemon]\nPort=1\n");
        assert_eq!(warnings, []);
        assert_eq!(file.get("daemon", "Port"), Some("1"));
    }

    #[test]
    fn lists_split_on_semicolons() {
        let text = "[g]\n\
                    plain=a;b;c\n\
                    trailing=a;b;\n\
                    escaped=a\\;b;c\n\
                    backslash=a\\\\;b\n\
                    spaced=a; b ;\\sc\n\
                    holes=a;;b\n\
                    empty=\n\
                    lone=;\n";
        let (file, warnings) = KeyFile::parse(text);
        assert_eq!(warnings, []);
        let list = |key| file.get_list("g", key);
        assert_eq!(
            list("plain"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(list("trailing"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(list("escaped"), Some(vec!["a;b".into(), "c".into()]));
        assert_eq!(list("backslash"), Some(vec!["a\\".into(), "b".into()]));
        assert_eq!(
            list("spaced"),
            Some(vec!["a".into(), " b ".into(), " c".into()])
        );
        assert_eq!(
            list("holes"),
            Some(vec!["a".into(), String::new(), "b".into()])
        );
        assert_eq!(list("empty"), Some(vec![]));
        assert_eq!(list("lone"), Some(vec![String::new()]));
        assert_eq!(list("missing"), None);
    }

    #[test]
    fn an_empty_config_is_the_default() {
        for text in ["", "[daemon]\n", "[other]\nPort=1\n", "# nothing\n"] {
            let (config, warnings) = Config::parse(text);
            assert_eq!(warnings, [], "{text:?}");
            assert_eq!(config, Config::default(), "{text:?}");
        }
        let config = Config::default();
        assert_eq!(config.port, 27500);
        assert!(!config.ipv6);
        assert_eq!(config.path, None);
        assert_eq!(config.max_item_size, 104_857_600);
        assert_eq!(config.carbon_cost, 0.026367);
        assert_eq!(config.cooldown, 3600);
        assert!(config.listen.is_empty());
        assert_eq!(config.max_upload_rate, 0);
        assert_eq!(config.max_connections, 256);
        assert_eq!(config.lookup_timeout_ms, 500);
    }

    #[test]
    fn every_key_is_read() {
        let text = "# a full file\n\
                    [daemon]\n\
                    Port=8443\n\
                    IPv6=true\n\
                    Path=/srv/passim\n\
                    MaxItemSize=1024\n\
                    CarbonCost=0.5\n\
                    Cooldown=60\n\
                    Listen=192.168.1.2;fd00::2;\n\
                    MaxUploadRate=1000000\n\
                    MaxConnections=32\n\
                    LookupTimeout=250\n";
        let (config, warnings) = Config::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(
            config,
            Config {
                port: 8443,
                ipv6: true,
                path: Some("/srv/passim".into()),
                max_item_size: 1024,
                carbon_cost: 0.5,
                cooldown: 60,
                listen: vec![
                    IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
                ],
                max_upload_rate: 1_000_000,
                max_connections: 32,
                lookup_timeout_ms: 250,
            }
        );
    }

    #[test]
    fn unknown_keys_and_other_groups_are_ignored_silently() {
        let text = "[daemon]\nColour=blue\nport=1\n[elsewhere]\nPort=1\nIPv6=true\n";
        let (config, warnings) = Config::parse(text);
        assert_eq!(warnings, []);
        assert_eq!(config, Config::default());
    }

    #[test]
    fn port_in_range_is_taken() {
        assert_eq!(no_warnings("Port=1").port, 1);
        assert_eq!(no_warnings("Port=65535").port, 65535);
        assert_eq!(no_warnings("Port = +443 ").port, 443);
    }

    #[test]
    fn port_out_of_range_uses_the_default() {
        let (config, warning) = one_warning("Port=70000");
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(warning.line, Some(2));
        assert_eq!(warning.key.as_deref(), Some("Port"));
        assert_eq!(
            warning.to_string(),
            "line 2: Port=70000 is out of range 1..65535, using 27500"
        );

        for value in ["0", "-1", "99999999999999999999999999999999999999999999"] {
            let (config, warning) = one_warning(&format!("Port={value}"));
            assert_eq!(config.port, DEFAULT_PORT);
            assert!(
                warning.message.contains("out of range 1..65535"),
                "{warning}"
            );
        }
    }

    #[test]
    fn port_that_is_not_a_number_uses_the_default() {
        for value in ["abc", "80.5", "0x50", "80 # https", "\\s80"] {
            let (config, warning) = one_warning(&format!("Port={value}"));
            assert_eq!(config.port, DEFAULT_PORT, "{value}");
            assert!(
                warning
                    .message
                    .contains("is not a whole number, using 27500"),
                "{warning}"
            );
        }
        let (_, warning) = one_warning("Port=");
        assert_eq!(
            warning.to_string(),
            "line 2: Port=\"\" is not a whole number, using 27500"
        );
    }

    #[test]
    fn ipv6_takes_glib_booleans_only() {
        assert!(no_warnings("IPv6=true").ipv6);
        assert!(no_warnings("IPv6=1").ipv6);
        assert!(!no_warnings("IPv6=false").ipv6);
        assert!(!no_warnings("IPv6=0").ipv6);
        for value in ["yes", "True", "TRUE", "on", "2", ""] {
            let (config, warning) = one_warning(&format!("IPv6={value}"));
            assert!(!config.ipv6, "{value}");
            assert!(
                warning
                    .message
                    .contains("is not true, false, 1 or 0, using false"),
                "{warning}"
            );
        }
    }

    #[test]
    fn path_is_none_when_absent_or_empty() {
        assert_eq!(no_warnings("").path, None);
        assert_eq!(no_warnings("Path=").path, None);
        assert_eq!(no_warnings("Path=   ").path, None);
        assert_eq!(
            no_warnings("Path=/var/cache/my\\sitems").path.as_deref(),
            Some("/var/cache/my items")
        );
    }

    #[test]
    fn max_item_size_must_be_a_u64() {
        assert_eq!(no_warnings("MaxItemSize=0").max_item_size, 0);
        assert_eq!(
            no_warnings("MaxItemSize=18446744073709551615").max_item_size,
            u64::MAX
        );
        for value in ["10M", "-1", "18446744073709551616", "1e6"] {
            let (config, warning) = one_warning(&format!("MaxItemSize={value}"));
            assert_eq!(config.max_item_size, DEFAULT_MAX_ITEM_SIZE, "{value}");
            assert!(warning.message.ends_with("using 104857600"), "{warning}");
            assert_eq!(warning.key.as_deref(), Some("MaxItemSize"));
        }
    }

    #[test]
    fn carbon_cost_is_a_positive_finite_number() {
        assert_eq!(no_warnings("CarbonCost=0.5").carbon_cost, 0.5);
        assert_eq!(no_warnings("CarbonCost=1e-3").carbon_cost, 0.001);
        assert_eq!(no_warnings("CarbonCost=0.00001").carbon_cost, 0.00001);
        assert_eq!(no_warnings("CarbonCost=12").carbon_cost, 12.0);
    }

    #[test]
    fn tiny_carbon_cost_silently_means_the_default() {
        for value in ["0", "0.000009", "-1", "-0.5"] {
            let config = no_warnings(&format!("CarbonCost={value}"));
            assert_eq!(config.carbon_cost, DEFAULT_CARBON_COST, "{value}");
        }
    }

    #[test]
    fn unusable_carbon_cost_uses_the_default_with_a_warning() {
        let (config, warning) = one_warning("CarbonCost=lots");
        assert_eq!(config.carbon_cost, DEFAULT_CARBON_COST);
        assert_eq!(
            warning.to_string(),
            "line 2: CarbonCost=lots is not a number, using 0.026367"
        );
        for value in ["inf", "-inf", "NaN", "infinity", "1e999"] {
            let (config, warning) = one_warning(&format!("CarbonCost={value}"));
            assert_eq!(config.carbon_cost, DEFAULT_CARBON_COST, "{value}");
            assert!(warning.message.contains("not a finite number"), "{warning}");
        }
    }

    #[test]
    fn cooldown_is_whole_seconds() {
        assert_eq!(no_warnings("Cooldown=0").cooldown, 0);
        assert_eq!(no_warnings("Cooldown=86400").cooldown, 86400);
        let (config, warning) = one_warning("Cooldown=-1");
        assert_eq!(config.cooldown, DEFAULT_COOLDOWN);
        assert_eq!(
            warning.to_string(),
            "line 2: Cooldown=-1 is out of range 0..4294967295, using 3600"
        );
        let (config, warning) = one_warning("Cooldown=1h");
        assert_eq!(config.cooldown, DEFAULT_COOLDOWN);
        assert!(warning.message.contains("not a whole number"));
        let (config, _) = one_warning("Cooldown=4294967296");
        assert_eq!(config.cooldown, DEFAULT_COOLDOWN);
    }

    #[test]
    fn listen_takes_ipv4_and_ipv6_addresses() {
        let config = no_warnings("Listen=10.0.0.1; ::1 ;[fe80::1];10.0.0.1;;");
        assert_eq!(
            config.listen,
            [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            ]
        );
        assert!(no_warnings("Listen=").listen.is_empty());
        assert_eq!(
            no_warnings("Listen=0.0.0.0").listen,
            [IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        );
    }

    #[test]
    fn listen_skips_entries_that_are_not_addresses() {
        let (config, warnings) =
            parse_daemon("Listen=eth0;192.168.1.300;10.0.0.1;10.0.0.1:27500;fe80::1%eth0");
        assert_eq!(config.listen, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.line == Some(2) && w.key.as_deref() == Some("Listen"))
        );
        assert_eq!(
            warnings[0].to_string(),
            "line 2: Listen entry \"eth0\" is not an IP address; skipped"
        );
        assert!(warnings[3].message.contains("fe80::1%eth0"));
    }

    #[test]
    fn max_upload_rate_is_bytes_per_second() {
        assert_eq!(no_warnings("MaxUploadRate=0").max_upload_rate, 0);
        assert_eq!(
            no_warnings("MaxUploadRate=1048576").max_upload_rate,
            1_048_576
        );
        for value in ["1MB", "-5", "fast"] {
            let (config, warning) = one_warning(&format!("MaxUploadRate={value}"));
            assert_eq!(config.max_upload_rate, DEFAULT_MAX_UPLOAD_RATE, "{value}");
            assert!(warning.message.ends_with("using 0"), "{warning}");
        }
    }

    #[test]
    fn max_connections_must_be_positive() {
        assert_eq!(no_warnings("MaxConnections=1").max_connections, 1);
        assert_eq!(no_warnings("MaxConnections=4096").max_connections, 4096);
        let (config, warning) = one_warning("MaxConnections=0");
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            warning.to_string(),
            "line 2: MaxConnections=0 is out of range 1..4294967295, using 256"
        );
        for value in ["many", "-3", "4294967296"] {
            let (config, _) = one_warning(&format!("MaxConnections={value}"));
            assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS, "{value}");
        }
    }

    #[test]
    fn lookup_timeout_is_clamped() {
        assert_eq!(no_warnings("LookupTimeout=1").lookup_timeout_ms, 1);
        assert_eq!(no_warnings("LookupTimeout=10000").lookup_timeout_ms, 10000);
        assert_eq!(no_warnings("LookupTimeout=750").lookup_timeout_ms, 750);

        let (config, warning) = one_warning("LookupTimeout=0");
        assert_eq!(config.lookup_timeout_ms, 1);
        assert_eq!(
            warning.to_string(),
            "line 2: LookupTimeout=0 is out of range 1..10000, using 1"
        );
        let (config, warning) = one_warning("LookupTimeout=60000");
        assert_eq!(config.lookup_timeout_ms, 10000);
        assert!(warning.message.ends_with("using 10000"));
        let (config, _) = one_warning("LookupTimeout=-20");
        assert_eq!(config.lookup_timeout_ms, 1);
        let (config, _) = one_warning("LookupTimeout=999999999999999999999999999999999999999999");
        assert_eq!(config.lookup_timeout_ms, 10000);
    }

    #[test]
    fn lookup_timeout_that_is_not_a_number_uses_the_default() {
        let (config, warning) = one_warning("LookupTimeout=0.5s");
        assert_eq!(config.lookup_timeout_ms, DEFAULT_LOOKUP_TIMEOUT_MS);
        assert_eq!(
            warning.to_string(),
            "line 2: LookupTimeout=0.5s is not a whole number, using 500"
        );
    }

    #[test]
    fn one_bad_value_does_not_spoil_the_others() {
        let (config, warnings) = parse_daemon("Port=nope\nIPv6=true\nCooldown=10");
        assert_eq!(warnings.len(), 1);
        assert_eq!(config.port, DEFAULT_PORT);
        assert!(config.ipv6);
        assert_eq!(config.cooldown, 10);
    }

    #[test]
    fn warnings_come_in_line_order() {
        let text = "stray\n[daemon]\nLookupTimeout=x\nPort=x\ngarbage\nIPv6=x\n";
        let (_, warnings) = Config::parse(text);
        let lines: Vec<_> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [Some(1), Some(3), Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn the_last_duplicate_decides_and_is_the_one_warned_about() {
        let (config, warning) = one_warning("Port=1\nPort=0\n");
        assert_eq!(config.port, DEFAULT_PORT);
        assert_eq!(warning.line, Some(3));
        assert_eq!(no_warnings("Port=0\nPort=1").port, 1);
    }

    #[test]
    fn long_or_odd_values_are_quoted_and_shortened_in_warnings() {
        let long = "9".repeat(100) + "x";
        let (_, warning) = one_warning(&format!("Port={long}"));
        assert!(
            warning
                .message
                .starts_with(&format!("Port=\"{}…\"", "9".repeat(60))),
            "{warning}"
        );
        let (_, warning) = one_warning("IPv6=\\ttrue");
        assert!(warning.message.starts_with("IPv6=\"\\ttrue\""), "{warning}");
        assert!(!warning.to_string().contains('\t'));
    }

    #[test]
    fn a_warning_without_a_line_shows_just_the_message() {
        let warning = ConfigWarning {
            line: None,
            key: None,
            message: "something".into(),
        };
        assert_eq!(warning.to_string(), "something");
    }

    #[test]
    fn static_dir_config_reads_path() {
        let (result, warnings) = StaticDirConfig::parse("[passim]\nPath=/usr/share/fw\n");
        assert_eq!(warnings, []);
        assert_eq!(
            result,
            Ok(StaticDirConfig {
                path: "/usr/share/fw".into()
            })
        );
    }

    #[test]
    fn static_dir_config_without_the_group_is_unusable() {
        for text in ["", "[daemon]\nPath=/srv\n", "[Passim]\nPath=/srv\n"] {
            let (result, _) = StaticDirConfig::parse(text);
            let error = result.expect_err(text);
            assert_eq!(error.line, None);
            assert_eq!(
                error.to_string(),
                "there is no [passim] group, so this file shares nothing"
            );
        }
    }

    #[test]
    fn static_dir_config_without_path_is_unusable() {
        let (result, _) = StaticDirConfig::parse("[passim]\nDir=/srv\n");
        let error = result.expect_err("no Path");
        assert_eq!(error.key.as_deref(), Some("Path"));
        assert_eq!(
            error.to_string(),
            "[passim] has no Path key, so this file shares nothing"
        );

        let (result, _) = StaticDirConfig::parse("[passim]\n# comment\nPath=\n");
        let error = result.expect_err("empty Path");
        assert_eq!(
            error.to_string(),
            "line 3: Path is empty, so this file shares nothing"
        );
    }

    #[test]
    fn static_dir_config_reports_skipped_lines_beside_the_result() {
        let (result, warnings) = StaticDirConfig::parse("[passim]\nPath /srv/files\n");
        assert!(result.is_err());
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, Some(2));
        assert!(warnings[0].message.contains("Path /srv/files"));

        let (result, warnings) = StaticDirConfig::parse("oops\r\n[passim]\r\nPath=/a\\sb");
        assert_eq!(result.map(|config| config.path), Ok("/a b".to_owned()));
        assert_eq!(warnings.len(), 1);
    }

    /// Writes `value` so that a key file reads it back unchanged.
    fn escape(value: &str) -> String {
        let mut out = String::new();
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                ' ' => out.push_str("\\s"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                _ => out.push(c),
            }
        }
        out
    }

    /// Any printable text, or text made of the characters the parser treats specially.
    const NOISY_TEXT: &str = "\\PC*|[\\[\\]=;#\\\\ a\\r\\n]*";

    proptest! {
        #[test]
        fn parsing_never_panics_and_warnings_point_at_real_lines(text in NOISY_TEXT) {
            let line_count = text.lines().count();
            let (_, warnings) = Config::parse(&text);
            for warning in &warnings {
                let line = warning.line.expect("config warnings are about a line");
                prop_assert!((1..=line_count).contains(&line));
                prop_assert!(!warning.to_string().contains('\n'));
            }
            if let (Err(error), _) = StaticDirConfig::parse(&text) {
                prop_assert!(error.message.ends_with("so this file shares nothing"));
            }
        }

        #[test]
        fn escaped_values_read_back_unchanged(value in "[^\\x0b\\x0c]*") {
            let text = format!("[g]\nk={}\n", escape(&value));
            let (file, warnings) = KeyFile::parse(&text);
            prop_assert_eq!(warnings, []);
            prop_assert_eq!(file.get("g", "k"), Some(value.as_str()));
        }
    }
}
