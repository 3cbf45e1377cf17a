//! Properties of the state machine under arbitrary sequences of inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use passim_core::request::parse_request;
use passim_core::{
    AttrValue, Basename, Decision, Flags, Item, Origin, Output, Passim, Peer, PublishAttrs,
    Settings, Sha256, Timestamp,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
enum Op {
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

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..6u8, 0..120u32, 0..6u32, 0..3u32, any::<bool>()).prop_map(
            |(n, max_age, limit, count, next_reboot)| Op::Publish {
                n,
                max_age,
                limit,
                count,
                next_reboot
            }
        ),
        4 => (0..4u8, 0..6u8, any::<bool>(), any::<bool>(), proptest::option::of((0..12u64, 0..12u64)))
            .prop_map(|(from, n, head, local, range)| Op::Request { from, n, head, local, range }),
        1 => (0..6u8).prop_map(|n| Op::Unpublish { n }),
        1 => (0..90u64).prop_map(|secs| Op::Advance { secs }),
        1 => any::<bool>().prop_map(Op::Metered),
        1 => proptest::collection::vec(0..6u8, 0..3).prop_map(|ns| Op::Static { ns }),
        1 => (0..6u8, 0..3u8).prop_map(|(n, peers)| Op::Lookup { n, peers }),
    ]
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
fn run(ops: &[Op], seed: u64) -> Vec<String> {
    let settings = Settings {
        cooldown_secs: 30,
        max_item_size: 1000,
        boot_time: Some(7),
        ..Settings::default()
    };
    let mut p = Passim::new(settings, seed);
    let mut now = Timestamp::from_secs(T0);
    let mut trace = Vec::new();
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
                    Err(e) => trace.push(format!("refused {e}")),
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
                trace.push(format!("{decision:?}"));
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
                trace.push(format!("{d:?}"));
            }
        }

        while let Some(output) = p.poll_output() {
            match &output {
                Output::Advertise(h) => assert!(advertised.insert(*h), "advertised twice: {h:?}"),
                Output::Withdraw(h) => assert!(advertised.remove(h), "withdrew unadvertised {h:?}"),
                _ => {}
            }
            trace.push(format!("{output:?}"));
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold(ops in proptest::collection::vec(op(), 1..60), seed in any::<u64>()) {
        run(&ops, seed);
    }

    #[test]
    fn same_inputs_and_seed_give_the_same_outputs(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
    ) {
        prop_assert_eq!(run(&ops, seed), run(&ops, seed));
    }
}
