//! The audit log: one line per publish, share and delete, appended by the shell.
//!
//! A line reads `<time> <TYPE> <key=value,key=value…>`, where the time is ISO-8601 UTC with six
//! fractional digits and `,`, `=` and `\` inside a key or value are escaped by a leading `\`, as
//! the C version writes them. The C version escapes nothing else, so a newline in a value (say a
//! hostile publisher's program name) would split the entry in two. We also write every ASCII
//! control character as `\xHH` (two lower-case hex digits): the C version never writes `\x`, so
//! its lines still read back unchanged, and ours always stay on one line and round-trip exactly.
//!
//! The daemon reads the log once at start, to restore `DownloadSaving` from the `SHARE` lines
//! (see [`download_saving`]), so the parser is lenient where leniency is safe: unknown keys are
//! ignored and an unknown event type is a distinct error the caller can skip.

use std::fmt::{self, Write as _};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Sha256, Timestamp};

/// One audited event.
///
/// Basenames are kept as plain `String`s rather than [`crate::Basename`]s: the log is only ever
/// read back for its sizes, and a line written by another version (whose rules for names may
/// differ) must still count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// An item was published (`PBLSH`).
    Publish {
        /// The item's hash.
        hash: Sha256,
        /// The name it was published under.
        basename: String,
        /// Its size in bytes.
        size: u64,
        /// Basename of the publishing program.
        cmdline: String,
    },
    /// An item was served to a client (`SHARE`).
    Share {
        /// The item's hash.
        hash: Sha256,
        /// The name it is stored under.
        basename: String,
        /// Bytes served.
        size: u64,
        /// The client's address.
        ipaddr: String,
    },
    /// An item was removed (`DELTE`).
    Delete {
        /// The item's hash.
        hash: Sha256,
        /// The name it was stored under.
        basename: String,
    },
}

/// One line of the audit log: when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// When the event happened.
    pub time: Timestamp,
    /// What happened.
    pub event: AuditEvent,
}

/// Why a line of the audit log could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditParseError {
    /// The line is empty.
    Empty,
    /// The line has no space separating the time from the event type.
    NoEventType,
    /// The time is not an ISO-8601 date and time, or lies before the Unix epoch.
    BadTime(String),
    /// The event type is not one this version knows; a newer version may have written it, so
    /// callers reading a whole log should skip the line.
    UnknownEventType(String),
    /// A field has no `=` between key and value.
    FieldWithoutValue(String),
    /// The line ends in a lone `\`.
    DanglingEscape,
    /// A key appears twice.
    DuplicateKey(String),
    /// A key the event type requires is missing.
    MissingKey {
        /// The event type, e.g. `SHARE`.
        event: &'static str,
        /// The missing key, e.g. `size`.
        key: &'static str,
    },
    /// The `hash` value is not 64 hex characters.
    BadHash(String),
    /// The `size` value is not a decimal number of bytes.
    BadSize(String),
}

impl fmt::Display for AuditParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("audit line is empty"),
            Self::NoEventType => f.write_str("audit line has no event type"),
            Self::BadTime(t) => write!(f, "audit time {t:?} is not an ISO-8601 time after 1970"),
            Self::UnknownEventType(t) => write!(f, "unknown audit event type {t:?}"),
            Self::FieldWithoutValue(k) => write!(f, "audit field {k:?} has no value"),
            Self::DanglingEscape => f.write_str("audit line ends in a lone backslash"),
            Self::DuplicateKey(k) => write!(f, "audit key {k:?} appears twice"),
            Self::MissingKey { event, key } => write!(f, "{event} audit line has no {key}="),
            Self::BadHash(h) => write!(f, "audit hash {h:?} is malformed"),
            Self::BadSize(s) => write!(f, "audit size {s:?} is not a number of bytes"),
        }
    }
}

impl std::error::Error for AuditParseError {}

impl AuditLine {
    /// The line as written to the log, without the trailing newline.
    ///
    /// The time is clamped to 9999-12-31T23:59:59.999999Z, the last instant ISO-8601 can write
    /// with a four-digit year; no real clock gets there.
    pub fn format(&self) -> String {
        let mut out = String::with_capacity(160);
        write_time(&mut out, self.time);
        out.push(' ');
        out.push_str(self.event.tag());
        out.push(' ');

        // Keys are written in the C version's order, for operators comparing the two.
        match &self.event {
            AuditEvent::Publish {
                hash,
                basename,
                size,
                cmdline,
            } => push_fields(
                &mut out,
                &[
                    ("hash", &hash.to_hex()),
                    ("basename", basename),
                    ("size", &size.to_string()),
                    ("cmdline", cmdline),
                ],
            ),
            AuditEvent::Share {
                hash,
                basename,
                size,
                ipaddr,
            } => push_fields(
                &mut out,
                &[
                    ("hash", &hash.to_hex()),
                    ("basename", basename),
                    ("size", &size.to_string()),
                    ("ipaddr", ipaddr),
                ],
            ),
            AuditEvent::Delete { hash, basename } => {
                push_fields(
                    &mut out,
                    &[("hash", &hash.to_hex()), ("basename", basename)],
                );
            }
        }
        out
    }

    /// Reads one line of the log. A trailing `\n` or `\r\n` is ignored; so are unknown keys.
    /// Keys may come in any order.
    pub fn parse(line: &str) -> Result<AuditLine, AuditParseError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(AuditParseError::Empty);
        }

        let (time, rest) = line.split_once(' ').ok_or(AuditParseError::NoEventType)?;
        let time = parse_time(time)?;

        // An event without fields still names its type, so a known type then fails on its first
        // missing key rather than as a malformed line.
        let (tag, fields) = rest.split_once(' ').unwrap_or((rest, ""));
        let tag = match tag {
            "PBLSH" => "PBLSH",
            "SHARE" => "SHARE",
            "DELTE" => "DELTE",
            other => return Err(AuditParseError::UnknownEventType(other.to_owned())),
        };
        let mut fields = Fields::parse(fields)?;

        let hash = fields.take(tag, "hash")?;
        let hash = Sha256::parse_hex(&hash).map_err(|_| AuditParseError::BadHash(hash))?;
        let basename = fields.take(tag, "basename")?;
        let event = match tag {
            "PBLSH" => AuditEvent::Publish {
                hash,
                basename,
                size: fields.take_size(tag)?,
                cmdline: fields.take(tag, "cmdline")?,
            },
            "SHARE" => AuditEvent::Share {
                hash,
                basename,
                size: fields.take_size(tag)?,
                ipaddr: fields.take(tag, "ipaddr")?,
            },
            _ => AuditEvent::Delete { hash, basename },
        };
        Ok(AuditLine { time, event })
    }
}

/// Total bytes served to others according to a log: the sum of `size` over its `SHARE` lines.
///
/// Lines that do not parse are skipped: a log cut short by a crash, or written by a newer
/// version, must not stop the daemon from starting. The sum saturates rather than wraps.
pub fn download_saving<'a>(lines: impl Iterator<Item = &'a str>) -> u64 {
    lines
        .filter_map(|line| match AuditLine::parse(line) {
            Ok(AuditLine {
                event: AuditEvent::Share { size, .. },
                ..
            }) => Some(size),
            _ => None,
        })
        .fold(0, u64::saturating_add)
}

/// The `CarbonSaving` property: kg CO2e saved by serving `bytes` from the LAN rather than the
/// Internet, at `carbon_cost` kg CO2e per GB.
pub fn carbon_saving(bytes: u64, carbon_cost: f64) -> f64 {
    // The C version divides by 2^20 and then by 1024, i.e. counts GiB; keep its figure.
    bytes as f64 / 1_048_576.0 * carbon_cost / 1024.0
}

impl AuditEvent {
    /// The five-letter type as it appears in the log.
    fn tag(&self) -> &'static str {
        match self {
            Self::Publish { .. } => "PBLSH",
            Self::Share { .. } => "SHARE",
            Self::Delete { .. } => "DELTE",
        }
    }
}

/// The last microsecond of year 9999, as microseconds since the epoch.
const MAX_MICROS: u64 = 253_402_300_799_999_999;

fn write_time(out: &mut String, time: Timestamp) {
    let micros = time.as_micros().min(MAX_MICROS);
    let nanos = i128::from(micros) * 1000;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .expect("clamped to year 9999, which `time` always represents");

    // Written by hand rather than through a format description, so that it cannot fail and
    // always has exactly six fractional digits.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond(),
    );
}

/// Accepts any RFC 3339 time, not just what [`write_time`] writes: GLib leaves the fraction out
/// when it is zero, and an offset other than `Z` is still unambiguous.
fn parse_time(s: &str) -> Result<Timestamp, AuditParseError> {
    let bad = || AuditParseError::BadTime(s.to_owned());
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?;
    let micros = u64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).map_err(|_| bad())?;
    Ok(Timestamp::from_micros(micros))
}

fn push_fields(out: &mut String, fields: &[(&str, &str)]) {
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        push_escaped(out, value);
    }
}

fn push_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            ',' | '=' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// The `key=value` fields of a line, unescaped.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(s: &str) -> Result<Self, AuditParseError> {
        let mut fields: Vec<(String, String)> = Vec::new();
        if s.is_empty() {
            return Ok(Self(fields));
        }

        let mut key = String::new();
        let mut value = String::new();
        // Whether the `=` of the current field has been seen: before it we fill `key`, after it
        // `value`. A later unescaped `=` is kept as part of the value.
        let mut in_value = false;
        let mut chars = s.chars();
        loop {
            let c = chars.next();
            match c {
                None | Some(',') => {
                    if !in_value {
                        return Err(AuditParseError::FieldWithoutValue(key));
                    }
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(AuditParseError::DuplicateKey(key));
                    }
                    fields.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                    in_value = false;
                    if c.is_none() {
                        return Ok(Self(fields));
                    }
                }
                Some('=') if !in_value => in_value = true,
                Some('\\') => {
                    let c = unescape(&mut chars)?;
                    if in_value { value.push(c) } else { key.push(c) }
                }
                Some(c) => {
                    if in_value {
                        value.push(c)
                    } else {
                        key.push(c)
                    }
                }
            }
        }
    }

    fn take(&mut self, event: &'static str, key: &'static str) -> Result<String, AuditParseError> {
        let i = self.0.iter().position(|(k, _)| k == key);
        let i = i.ok_or(AuditParseError::MissingKey { event, key })?;
        Ok(self.0.swap_remove(i).1)
    }

    fn take_size(&mut self, event: &'static str) -> Result<u64, AuditParseError> {
        let size = self.take(event, "size")?;
        // `u64::from_str` accepts a leading `+`, which no writer emits; refuse it to stay exact.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuditParseError::BadSize(size));
        }
        size.parse().map_err(|_| AuditParseError::BadSize(size))
    }
}

/// Decodes what follows a `\`: `\xHH` is the ASCII character HH, anything else stands for itself.
fn unescape(chars: &mut std::str::Chars<'_>) -> Result<char, AuditParseError> {
    let c = chars.next().ok_or(AuditParseError::DanglingEscape)?;
    if c == 'x' {
        let s = chars.as_str();
        // `from_str_radix` alone would also take a sign, as in `\x+1`.
        if let Some((hex, rest)) = s.split_at_checked(2) {
            if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                if let Ok(byte @ 0..=0x7f) = u8::from_str_radix(hex, 16) {
                    *chars = rest.chars();
                    return Ok(char::from(byte));
                }
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    fn hello() -> Sha256 {
        HELLO.parse().unwrap()
    }

    /// 2026-01-01T00:00:00Z plus `micros`.
    fn new_year(micros: u64) -> Timestamp {
        Timestamp::from_micros(1_767_225_600_000_000 + micros)
    }

    #[test]
    fn formats_publish() {
        let line = AuditLine {
            time: new_year(123_456),
            event: AuditEvent::Publish {
                hash: hello(),
                basename: r"a,b=c\d.txt".to_owned(),
                size: 13,
                cmdline: r"fw=upd,\x".to_owned(),
            },
        };
        assert_eq!(
            line.format(),
            format!(
                r"2026-01-01T00:00:00.123456Z PBLSH hash={HELLO},basename=a\,b\=c\\d.txt,size=13,cmdline=fw\=upd\,\\x"
            )
        );
    }

    #[test]
    fn formats_share() {
        let line = AuditLine {
            time: new_year(1),
            event: AuditEvent::Share {
                hash: hello(),
                basename: "HELLO.md".to_owned(),
                size: 26,
                ipaddr: "fe80::1".to_owned(),
            },
        };
        assert_eq!(
            line.format(),
            format!(
                "2026-01-01T00:00:00.000001Z SHARE hash={HELLO},basename=HELLO.md,size=26,ipaddr=fe80::1"
            )
        );
    }

    #[test]
    fn formats_delete() {
        let line = AuditLine {
            time: new_year(0),
            event: AuditEvent::Delete {
                hash: hello(),
                basename: "x=y".to_owned(),
            },
        };
        assert_eq!(
            line.format(),
            format!(r"2026-01-01T00:00:00.000000Z DELTE hash={HELLO},basename=x\=y")
        );
    }

    #[test]
    fn formats_epoch_and_the_far_future() {
        let delete = AuditEvent::Delete {
            hash: hello(),
            basename: "a".to_owned(),
        };
        let at = |time| {
            AuditLine {
                time,
                event: delete.clone(),
            }
            .format()
        };
        assert!(at(Timestamp::ZERO).starts_with("1970-01-01T00:00:00.000000Z DELTE "));
        assert!(at(Timestamp::from_micros(999_999)).starts_with("1970-01-01T00:00:00.999999Z "));
        assert!(at(Timestamp::from_micros(u64::MAX)).starts_with("9999-12-31T23:59:59.999999Z "));
    }

    #[test]
    fn control_characters_stay_on_one_line() {
        let line = AuditLine {
            time: new_year(0),
            event: AuditEvent::Publish {
                hash: hello(),
                basename: "a\nb".to_owned(),
                size: 0,
                cmdline: "\r\t\u{7f}é".to_owned(),
            },
        };
        let text = line.format();
        assert!(
            text.ends_with(r"basename=a\x0ab,size=0,cmdline=\x0d\x09\x7fé"),
            "{text}"
        );
        assert_eq!(AuditLine::parse(&text), Ok(line));
    }

    #[test]
    fn parses_escapes_in_any_order_and_ignores_unknown_keys() {
        let text = format!(
            "2026-01-01T00:00:00.123456Z SHARE ipaddr=10.0.0.2,future=x\\,y,size=26,\
             basename=a\\,b\\=c\\\\d,hash={HELLO}\r\n"
        );
        let expected = AuditLine {
            time: new_year(123_456),
            event: AuditEvent::Share {
                hash: hello(),
                basename: r"a,b=c\d".to_owned(),
                size: 26,
                ipaddr: "10.0.0.2".to_owned(),
            },
        };
        assert_eq!(AuditLine::parse(&text), Ok(expected));
    }

    #[test]
    fn parses_times_glib_writes() {
        let text = format!("2026-01-01T00:00:00Z DELTE hash={HELLO},basename=a\n");
        assert_eq!(AuditLine::parse(&text).unwrap().time, new_year(0));
        let text = format!("2026-01-01T01:00:00.5+01:00 DELTE hash={HELLO},basename=a");
        assert_eq!(AuditLine::parse(&text).unwrap().time, new_year(500_000));
    }

    #[test]
    fn rejects_garbage() {
        use AuditParseError as E;
        let parse = AuditLine::parse;
        let t = "2026-01-01T00:00:00.000000Z";
        assert_eq!(parse(""), Err(E::Empty));
        assert_eq!(parse("\n"), Err(E::Empty));
        assert_eq!(parse("garbage"), Err(E::NoEventType));
        assert_eq!(parse("not a time"), Err(E::BadTime("not".to_owned())));
        assert!(matches!(
            parse("1969-12-31T23:59:59Z SHARE"),
            Err(E::BadTime(_))
        ));
        assert_eq!(
            parse(&format!("{t} OTHER a=b")),
            Err(E::UnknownEventType("OTHER".into()))
        );
        assert_eq!(
            parse(&format!("{t} SHARE")),
            Err(E::MissingKey {
                event: "SHARE",
                key: "hash"
            })
        );
        assert_eq!(
            parse(&format!("{t} DELTE hash={HELLO}")),
            Err(E::MissingKey {
                event: "DELTE",
                key: "basename"
            })
        );
        assert_eq!(
            parse(&format!("{t} DELTE hash")),
            Err(E::FieldWithoutValue("hash".into()))
        );
        assert_eq!(
            parse(&format!("{t} DELTE hash={HELLO},basename=a,")),
            Err(E::FieldWithoutValue(String::new()))
        );
        assert_eq!(
            parse(&format!("{t} DELTE basename=a\\")),
            Err(E::DanglingEscape)
        );
        assert_eq!(
            parse(&format!("{t} DELTE hash=ab,basename=a")),
            Err(E::BadHash("ab".into()))
        );
        assert_eq!(
            parse(&format!("{t} DELTE hash={HELLO},basename=a,basename=b")),
            Err(E::DuplicateKey("basename".into()))
        );
        for size in ["", "-1", "+1", "1k", "18446744073709551616"] {
            let text = format!("{t} SHARE hash={HELLO},basename=a,size={size},ipaddr=::1");
            assert_eq!(parse(&text), Err(E::BadSize(size.into())));
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = AuditLine::parse("2026-01-01T00:00:00Z SHARE").unwrap_err();
        assert_eq!(err.to_string(), "SHARE audit line has no hash=");
        let err = AuditLine::parse("2026-01-01T00:00:00Z NOPE").unwrap_err();
        assert_eq!(err.to_string(), "unknown audit event type \"NOPE\"");
    }

    #[test]
    fn download_saving_sums_shares_and_skips_the_rest() {
        let log = format!(
            "2026-01-01T00:00:00.000001Z PBLSH hash={HELLO},basename=a,size=1000,cmdline=fwupd\n\
             2026-01-01T00:00:00.000002Z SHARE hash={HELLO},basename=a,size=13,ipaddr=10.0.0.2\n\
             this line is garbage\n\
             2026-01-01T00:00:00.000003Z SHARE hash={HELLO},basename=a,size=oops,ipaddr=x\n\
             \n\
             2026-01-01T00:00:00.000004Z FUTUR hash={HELLO},size=1000000\n\
             2026-01-01T00:00:00.000005Z SHARE size=13,ipaddr=10.0.0.3,basename=a,hash={HELLO}\n\
             2026-01-01T00:00:00.000006Z DELTE hash={HELLO},basename=a\n\
             2026-01-01T00:00:00.000007Z SHARE hash={HELLO},basename=a,size=7,ipad"
        );
        assert_eq!(download_saving(log.lines()), 26);
        assert_eq!(download_saving(std::iter::empty()), 0);

        let huge = format!(
            "2026-01-01T00:00:00Z SHARE hash={HELLO},basename=a,size={},ipaddr=",
            u64::MAX
        );
        assert_eq!(
            download_saving([huge.as_str(), huge.as_str()].into_iter()),
            u64::MAX
        );
    }

    #[test]
    fn carbon_saving_counts_gibibytes() {
        assert_eq!(carbon_saving(0, 0.026367), 0.0);
        assert!((carbon_saving(1 << 30, 0.026367) - 0.026367).abs() < 1e-12);
        assert!((carbon_saving(1 << 29, 2.0) - 1.0).abs() < 1e-12);
    }

    fn any_event() -> impl Strategy<Value = AuditEvent> {
        let hash = any::<[u8; 32]>().prop_map(Sha256::from_bytes);
        prop_oneof![
            (hash.clone(), any::<String>(), any::<u64>(), any::<String>()).prop_map(
                |(hash, basename, size, cmdline)| AuditEvent::Publish {
                    hash,
                    basename,
                    size,
                    cmdline
                }
            ),
            (hash.clone(), any::<String>(), any::<u64>(), any::<String>()).prop_map(
                |(hash, basename, size, ipaddr)| AuditEvent::Share {
                    hash,
                    basename,
                    size,
                    ipaddr
                }
            ),
            (hash, any::<String>())
                .prop_map(|(hash, basename)| AuditEvent::Delete { hash, basename }),
        ]
    }

    /// Strings biased towards the characters the format treats specially.
    fn tricky_string() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(','),
                Just('='),
                Just('\\'),
                Just('x'),
                Just('\n'),
                Just('\r'),
                Just(' '),
                Just('é'),
                any::<char>(),
            ],
            0..24,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn every_line_round_trips(
            micros in 0..=MAX_MICROS,
            event in any_event(),
            crlf in any::<bool>(),
        ) {
            let line = AuditLine { time: Timestamp::from_micros(micros), event };
            let mut text = line.format();
            prop_assert!(!text.contains(['\n', '\r']));
            text.push_str(if crlf { "\r\n" } else { "\n" });
            prop_assert_eq!(AuditLine::parse(&text), Ok(line));
        }

        #[test]
        fn tricky_values_round_trip(basename in tricky_string(), cmdline in tricky_string()) {
            let line = AuditLine {
                time: Timestamp::ZERO,
                event: AuditEvent::Publish { hash: hello(), basename, size: 1, cmdline },
            };
            prop_assert_eq!(AuditLine::parse(&line.format()), Ok(line));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = AuditLine::parse(&text);
        }
    }
}
