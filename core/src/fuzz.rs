//! Entry points for the fuzz targets in `fuzz/` and for `cargo test`'s replay of their seeds and
//! of every crash they ever found: one definition of what each parser must guarantee.
//!
//! Each function panics when the guarantee is broken, which is how a fuzzer reports a finding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::audit::AuditLine;
use crate::config::{Config, StaticDirConfig};
use crate::request::{Target, parse_request};
use crate::{
    AttrValue, Basename, Decision, Flags, Item, Origin, Output, Passim, Peer, PublishAttrs,
    Settings, Sha256, Timestamp,
};

/// Request line, query and `Range`: never panics; a parsed hash prints as 64 lower-case hex
/// digits; a refusal is a 400, 403 or 406 with a message.
///
/// The input is split at `0xff` bytes into method, path, query and Range header, so a fuzzer
/// steers each field on its own.
pub fn request(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0xff);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().map(String::from_utf8_lossy);
    let range = parts.next();
    match parse_request(&method, &path, query.as_deref(), range) {
        Ok(request) => {
            if let Target::Fetch(fetch) = request.target {
                let hex = fetch.hash.to_hex();
                assert_eq!(hex.len(), 64);
                assert!(
                    hex.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                );
            }
        }
        Err(refusal) => {
            assert!(matches!(refusal.status, 400 | 403 | 406), "{refusal:?}");
            assert!(!refusal.message.is_empty());
        }
    }
}

/// `passim.conf` and `passim.d/*.conf`: never panics, and every value is usable.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (config, _warnings) = Config::parse(&text);
    assert!(config.port >= 1);
    assert!(config.carbon_cost.is_finite() && config.carbon_cost >= 0.00001);
    assert!(config.max_connections >= 1);
    let (static_dir, _) = StaticDirConfig::parse(&text);
    if let Ok(dir) = static_dir {
        assert!(!dir.path.is_empty());
    }
}

/// Audit-log lines: never panics, and a parsed line formats to a line that parses to the same
/// event.
pub fn audit(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(line) = AuditLine::parse(text) {
        let again = AuditLine::parse(&line.format()).expect("a formatted line parses");
        assert_eq!(again.event, line.event);
    }
}

/// Publish attributes as a D-Bus caller may send them: never panics, and whatever is accepted
/// is a valid item description.
///
/// Each pair takes a key byte (one of the known keys, or an unknown one), a type byte and a
/// value; a string value runs to the next 0xff byte.
pub fn attrs(data: &[u8]) {
    const KEYS: [&str; 7] = [
        "filename",
        "max-age",
        "share-limit",
        "share-count",
        "flags",
        "cmdline",
        "other",
    ];
    let mut pairs = Vec::new();
    let mut rest = data;
    while let [key, kind, tail @ ..] = rest {
        let key = KEYS[usize::from(*key) % KEYS.len()];
        let (value, tail) = match kind % 5 {
            0 => {
                let end = tail.iter().position(|&b| b == 0xff).unwrap_or(tail.len());
                let text = String::from_utf8_lossy(&tail[..end]).into_owned();
                (
                    AttrValue::Str(text),
                    tail.get(end + 1..).unwrap_or_default(),
                )
            }
            1 => (
                AttrValue::U32(u32::from_le_bytes(take::<4>(tail))),
                skip(tail, 4),
            ),
            2 => (
                AttrValue::U64(u64::from_le_bytes(take::<8>(tail))),
                skip(tail, 8),
            ),
            3 => (
                AttrValue::I64(i64::from_le_bytes(take::<8>(tail))),
                skip(tail, 8),
            ),
            _ => (
                AttrValue::Bool(tail.first().is_some_and(|b| b & 1 == 1)),
                skip(tail, 1),
            ),
        };
        pairs.push((key, value));
        rest = tail;
    }
    if let Ok(attrs) = PublishAttrs::from_pairs(pairs, "fuzz".into()) {
        let name = attrs.basename.as_str();
        assert!(!name.is_empty() && name != "." && name != "..");
        assert!(!name.contains('/') && !name.chars().any(char::is_control));
        assert!(name.len() <= Basename::MAX_LEN);
        if attrs.share_limit != 0 && attrs.share_limit != u32::MAX {
            assert!(attrs.share_count < attrs.share_limit);
        }
    }
}

fn take<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    out
}

fn skip(data: &[u8], n: usize) -> &[u8] {
    data.get(n..).unwrap_or_default()
}

/// The whole state machine under a sequence of inputs decoded from bytes, with every invariant
/// of [`run`] checked after each step.
pub fn machine(data: &[u8]) {
    let Some((seed, mut rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let mut ops = Vec::new();
    while let Some((&[tag, a, b, c, d], tail)) = rest.split_first_chunk::<5>() {
        rest = tail;
        ops.push(match tag % 7 {
            0 => Op::Publish {
                n: a % 6,
                max_age: u32::from(b) % 120,
                limit: u32::from(c) % 6,
                count: u32::from(d) % 3,
                next_reboot: d & 0x80 != 0,
            },
            1 => Op::Request {
                from: a % 4,
                n: b % 6,
                head: c & 1 != 0,
                local: c & 2 != 0,
                range: (c & 4 != 0).then_some((u64::from(d >> 4), u64::from(d & 15))),
            },
            2 => Op::Unpublish { n: a % 6 },
            3 => Op::Advance {
                secs: u64::from(a) % 90,
            },
            4 => Op::Metered(a & 1 != 0),
            5 => Op::Static {
                ns: [a, b, c]
                    .iter()
                    .take(usize::from(d % 4))
                    .map(|n| n % 6)
                    .collect(),
            },
            _ => Op::Lookup {
                n: a % 6,
                peers: b % 3,
            },
        });
        if ops.len() >= 64 {
            break;
        }
    }
    run_with(&ops, u64::from_le_bytes(*seed), false);
}

/// One input to the state machine, in a form both proptest and a fuzzer can generate.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Op {
    Publish {
        n: u8,
        max_age: u32,
        limit: u32,
        count: u32,
        next_reboot: bool,
    },
    Request {
        from: u8,
        n: u8,
        head: bool,
        local: bool,
        range: Option<(u64, u64)>,
    },
    Unpublish {
        n: u8,
    },
    Advance {
        secs: u64,
    },
    Metered(bool),
    Static {
        ns: Vec<u8>,
    },
    Lookup {
        n: u8,
        peers: u8,
    },
}

fn hash(n: u8) -> Sha256 {
    Sha256::from_bytes([n; 32])
}

fn addr(from: u8) -> IpAddr {
    if from == 0 {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, from))
    }
}

/// Runs `ops`, checking the invariants after every step, and returns a trace of everything the
/// core said.
pub fn run(ops: &[Op], seed: u64) -> Vec<String> {
    run_with(ops, seed, true)
}

/// [`run`], optionally without recording the trace: formatting every output costs a fuzzer
/// most of its speed and checks nothing.
fn run_with(ops: &[Op], seed: u64, record: bool) -> Vec<String> {
    let settings = Settings {
        cooldown_secs: 30,
        max_item_size: 1000,
        boot_time: Some(7),
        ..Settings::default()
    };
    let mut p = Passim::new(settings, seed);
    // Any fixed start works; this one is recent, so ages and deadlines look realistic.
    let mut now = Timestamp::from_secs(1_700_000_000);
    let mut trace = Vec::new();
    let mut note = |line: &dyn Fn() -> String| {
        if record {
            trace.push(line());
        }
    };
    let mut advertised = BTreeSet::new();
    p.handle_loaded(now);

    for op in ops {
        // What was held, and until when, before this input: a served item must be in it.
        let before: BTreeMap<Sha256, Item> = p.items().map(|i| (i.hash, i.clone())).collect();
        match op {
            Op::Publish {
                n,
                max_age,
                limit,
                count,
                next_reboot,
            } => {
                let attrs = PublishAttrs::from_pairs(
                    [
                        ("filename", AttrValue::Str(format!("f{n}"))),
                        ("max-age", AttrValue::U32(*max_age)),
                        ("share-limit", AttrValue::U32(*limit)),
                        ("share-count", AttrValue::U32(*count)),
                        ("flags", AttrValue::U64(if *next_reboot { 2 } else { 0 })),
                    ],
                    "test".into(),
                );
                let result = attrs.and_then(|a| p.begin_publish(a, hash(*n), u64::from(*n), now));
                match result {
                    Ok(item) => p.finish_publish(item, now),
                    Err(e) => note(&|| format!("refused {e}")),
                }
            }
            Op::Request {
                from,
                n,
                head,
                local,
                range,
            } => {
                let query = format!("sha256={}&localhost={local}", hash(*n));
                let range = range.map(|(a, b)| format!("bytes={a}-{b}"));
                let method = if *head { "HEAD" } else { "GET" };
                let Ok(req) = parse_request(
                    method,
                    "/f",
                    Some(&query),
                    range.as_deref().map(str::as_bytes),
                ) else {
                    unreachable!("the query is well-formed")
                };
                let decision = p.handle_request(&req, addr(*from), now);
                if let Decision::Serve(serve) = &decision {
                    let item = before
                        .get(&serve.hash)
                        .expect("served an item that was not held");
                    assert!(
                        item.expires_at().is_none_or(|at| at > now),
                        "served an expired item"
                    );
                    assert!(
                        !item.flags.contains(Flags::DISABLED),
                        "served a disabled item"
                    );
                    assert!(*local, "served locally despite localhost=false");
                }
                note(&|| format!("{decision:?}"));
            }
            Op::Unpublish { n } => {
                let r = p.handle_unpublish(&hash(*n), now);
                assert_eq!(r.is_ok(), before.contains_key(&hash(*n)));
                assert!(p.item(&hash(*n)).is_none());
            }
            Op::Advance { secs } => {
                now = now.add_secs(*secs);
                p.handle_timeout(now);
            }
            Op::Metered(m) => p.handle_metered(*m, now),
            Op::Static { ns } => {
                let items = ns
                    .iter()
                    .map(|&n| Item {
                        hash: hash(n + 100),
                        basename: Basename::new(format!("s{n}")).unwrap(),
                        cmdline: String::new(),
                        max_age: 1,
                        share_limit: 1,
                        share_count: 0,
                        size: 3,
                        ctime: now,
                        flags: Flags::NONE,
                        boot_time: None,
                        origin: Origin::Static {
                            path: format!("/srv/s{n}").into(),
                        },
                    })
                    .collect();
                p.handle_static_items(items, now);
            }
            Op::Lookup { n, peers } => {
                let peers: Vec<Peer> = (0..*peers)
                    .map(|i| Peer {
                        name: format!("Passim-{i:04X}"),
                        addr: format!("10.1.0.{i}:27500").parse().unwrap(),
                    })
                    .collect();
                let d = p.handle_lookup_result(&hash(*n), "f", &peers);
                note(&|| format!("{d:?}"));
            }
        }

        while let Some(output) = p.poll_output() {
            match &output {
                Output::Advertise(h) => assert!(advertised.insert(*h), "advertised twice: {h:?}"),
                Output::Withdraw(h) => assert!(advertised.remove(h), "withdrew unadvertised {h:?}"),
                _ => {}
            }
            note(&|| format!("{output:?}"));
        }
        assert_eq!(
            advertised,
            p.shareable(),
            "the advertised set is the shareable set"
        );
        for item in p.items() {
            if item.has_share_limit() {
                assert!(
                    item.share_count < item.share_limit,
                    "{item:?} is over its share-limit"
                );
            }
            if let Some(at) = item.expires_at() {
                assert!(at > now, "{item:?} outlived its max-age");
            }
        }
        if let Some((at, _)) = p.poll_timeout() {
            assert!(at > now, "a deadline in the past was left unhandled");
        }
    }
    trace
}
