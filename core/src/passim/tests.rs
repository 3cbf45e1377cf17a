//! Unit tests of the state machine: every request case of the contract and every publish
//! refusal.

use super::*;
use crate::request::{RangeSpec, parse_request};

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const PEER_A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
const PEER_B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));
const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn hash(n: u8) -> Sha256 {
    Sha256::from_bytes([n; 32])
}

fn attrs(name: &str, max_age: u32, share_limit: u32) -> PublishAttrs {
    PublishAttrs {
        basename: Basename::new(name).unwrap(),
        max_age,
        share_limit,
        share_count: 0,
        next_reboot: false,
        cmdline: "fwupd".into(),
    }
}

fn running() -> Passim {
    let mut p = Passim::new(Settings::default(), 7);
    p.handle_loaded(T0);
    drain(&mut p);
    p
}

fn drain(p: &mut Passim) -> Vec<Output> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn publish(p: &mut Passim, n: u8, max_age: u32, share_limit: u32, now: Timestamp) -> Item {
    let item = p
        .begin_publish(attrs("file.txt", max_age, share_limit), hash(n), 10, now)
        .unwrap();
    p.finish_publish(item.clone(), now);
    item
}

fn request(p: &mut Passim, from: IpAddr, path: &str, query: &str, now: Timestamp) -> Decision {
    let req = parse_request("GET", path, Some(query), None).unwrap();
    p.handle_request(&req, from, now)
}

fn fetch(p: &mut Passim, from: IpAddr, n: u8, now: Timestamp) -> Decision {
    request(p, from, "/file.txt", &format!("sha256={}", hash(n)), now)
}

fn status_of(d: &Decision) -> u16 {
    match d {
        Decision::Serve(s) if s.range.is_some() => 206,
        Decision::Serve(_) | Decision::Index(_) | Decision::Asset(_) => 200,
        Decision::Redirect { .. } => 302,
        Decision::RangeNotSatisfiable { .. } => 416,
        Decision::Lookup { .. } => 0,
        Decision::Refuse(r) => r.status,
    }
}

#[test]
fn name_comes_from_the_seed() {
    let a = Passim::new(Settings::default(), 1);
    let b = Passim::new(Settings::default(), 1);
    let c = Passim::new(Settings::default(), 2);
    assert_eq!(a.name(), b.name());
    assert_ne!(a.name(), c.name());
    let suffix = a.name().strip_prefix("Passim-").unwrap();
    assert_eq!(suffix.len(), 4);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
}

#[test]
fn status_goes_from_loading_to_running_and_metered() {
    let mut p = Passim::new(Settings::default(), 1);
    assert_eq!(p.status(), Status::Loading);
    p.handle_loaded(T0);
    assert_eq!(p.status(), Status::Running);
    let out = drain(&mut p);
    assert!(out.contains(&Output::StatusChanged(Status::Running)));
    assert!(out.contains(&Output::Changed));

    publish(&mut p, 1, 100, 5, T0);
    drain(&mut p);
    p.handle_metered(true, T0);
    assert_eq!(p.status(), Status::DisabledMetered);
    let out = drain(&mut p);
    assert!(out.contains(&Output::StatusChanged(Status::DisabledMetered)));
    assert!(out.contains(&Output::Withdraw(hash(1))));

    p.handle_metered(false, T0);
    let out = drain(&mut p);
    assert!(out.contains(&Output::Advertise(hash(1))));
}

#[test]
fn index_is_for_loopback_only() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    let req = parse_request("GET", "/", None, None).unwrap();
    match p.handle_request(&req, LOCAL, T0) {
        Decision::Index(html) => assert!(html.contains(&hash(1).to_hex())),
        other => panic!("{other:?}"),
    }
    assert_eq!(status_of(&p.handle_request(&req, PEER_A, T0)), 403);
    let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    assert_eq!(status_of(&p.handle_request(&req, v6, T0)), 200);
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert_eq!(status_of(&p.handle_request(&req, mapped, T0)), 200);

    let css = parse_request("GET", "/style.css", None, None).unwrap();
    assert_eq!(
        p.handle_request(&css, LOCAL, T0),
        Decision::Asset(Asset::StyleCss)
    );
    assert_eq!(status_of(&p.handle_request(&css, PEER_A, T0)), 403);
}

#[test]
fn held_item_is_served_and_accounted() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    drain(&mut p);
    let d = fetch(&mut p, PEER_A, 1, T0);
    let Decision::Serve(serve) = d else {
        panic!("{d:?}")
    };
    assert_eq!(serve.basename.as_str(), "file.txt");
    assert_eq!(serve.range, None);
    assert_eq!(p.item(&hash(1)).unwrap().share_count, 1);
    assert_eq!(p.download_saving(), 10);
    let out = drain(&mut p);
    assert!(
        matches!(&out[0], Output::Audit(AuditLine { event: AuditEvent::Share { size: 10, ipaddr, .. }, .. }) if ipaddr == "10.0.0.2")
    );
    assert!(out.contains(&Output::StoreShareCount {
        hash: hash(1),
        basename: Basename::new("file.txt").unwrap(),
        share_count: 1
    }));
}

#[test]
fn url_basename_is_ignored_for_serving() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    let d = request(
        &mut p,
        LOCAL,
        "/other.bin",
        &format!("sha256={}", hash(1)),
        T0,
    );
    let Decision::Serve(serve) = d else {
        panic!("{d:?}")
    };
    assert_eq!(serve.basename.as_str(), "file.txt");
}

#[test]
fn the_download_that_reaches_the_limit_succeeds_then_the_item_is_deleted() {
    let mut p = running();
    publish(&mut p, 1, 100, 2, T0);
    drain(&mut p);
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0)), 200);
    assert_eq!(status_of(&fetch(&mut p, PEER_B, 1, T0)), 200);
    assert!(p.item(&hash(1)).is_none());
    let out = drain(&mut p);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RemoveFile { hash: h, .. } if *h == hash(1)))
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Audit(AuditLine {
            event: AuditEvent::Delete { .. },
            ..
        })
    )));
    assert!(out.contains(&Output::Changed));
    assert!(out.contains(&Output::Withdraw(hash(1))));
    // A third peer is refused: not held any more.
    let third = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 4));
    assert_eq!(status_of(&fetch(&mut p, third, 1, T0)), 403);
}

#[test]
fn unlimited_share_limits_never_delete() {
    for limit in [0, u32::MAX] {
        let mut p = running();
        publish(&mut p, 1, 100, limit, T0);
        for i in 0..50u8 {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i));
            assert_eq!(status_of(&fetch(&mut p, from, 1, T0)), 200);
        }
        assert_eq!(p.item(&hash(1)).unwrap().share_count, 50);
    }
}

#[test]
fn remote_cooldown_blocks_repeats_and_ends_individually() {
    let settings = Settings {
        cooldown_secs: 60,
        ..Settings::default()
    };
    let mut p = Passim::new(settings, 1);
    p.handle_loaded(T0);
    publish(&mut p, 1, 10_000, 100, T0);
    publish(&mut p, 2, 10_000, 100, T0);

    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0)), 200);
    let again = fetch(&mut p, PEER_A, 1, T0.add_secs(59));
    assert_eq!(status_of(&again), 403);
    let Decision::Refuse(r) = again else {
        unreachable!()
    };
    assert!(r.message.contains("try again"), "{}", r.message);
    // Another hash, another address, and loopback are not affected.
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 2, T0.add_secs(1))), 200);
    assert_eq!(status_of(&fetch(&mut p, PEER_B, 1, T0.add_secs(1))), 200);
    assert_eq!(status_of(&fetch(&mut p, LOCAL, 1, T0.add_secs(1))), 200);
    assert_eq!(status_of(&fetch(&mut p, LOCAL, 1, T0.add_secs(2))), 200);

    // The first entry's deadline is the next timeout, with its reason.
    assert_eq!(
        p.poll_timeout(),
        Some((T0.add_secs(60), TimeoutReason::CooldownEnds(PEER_A)))
    );
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0.add_secs(60))), 200);
    // The (A, 2) entry, made a second later, still holds.
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 2, T0.add_secs(60))), 403);
}

#[test]
fn cooldown_applies_even_when_the_hash_is_not_held() {
    let mut p = running();
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 9, T0)), 403);
    let d = fetch(&mut p, PEER_A, 9, T0.add_secs(1));
    let Decision::Refuse(r) = d else { panic!() };
    assert!(r.message.contains("recently"));
}

#[test]
fn cooldown_of_zero_disables_it() {
    let settings = Settings {
        cooldown_secs: 0,
        ..Settings::default()
    };
    let mut p = Passim::new(settings, 1);
    p.handle_loaded(T0);
    publish(&mut p, 1, 100, 0, T0);
    for _ in 0..3 {
        assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0)), 200);
    }
    assert_eq!(
        p.poll_timeout(),
        Some((T0.add_secs(100), TimeoutReason::Expiry(hash(1))))
    );
}

#[test]
fn disabled_item_is_423() {
    let settings = Settings {
        boot_time: Some(42),
        ..Settings::default()
    };
    let mut p = Passim::new(settings, 1);
    p.handle_loaded(T0);
    let mut a = attrs("next.bin", 100, 5);
    a.next_reboot = true;
    let item = p.begin_publish(a, hash(3), 1, T0).unwrap();
    assert_eq!(item.boot_time, Some(42));
    assert!(item.flags.contains(Flags::DISABLED) && item.flags.contains(Flags::NEXT_REBOOT));
    p.finish_publish(item, T0);
    assert_eq!(status_of(&fetch(&mut p, LOCAL, 3, T0)), 423);
    assert!(p.shareable().is_empty());
}

#[test]
fn next_reboot_items_are_shared_after_a_reboot_only() {
    let item = |boot| Item {
        hash: hash(4),
        basename: Basename::new("x").unwrap(),
        cmdline: String::new(),
        max_age: 1000,
        share_limit: 5,
        share_count: 0,
        size: 1,
        ctime: T0,
        flags: Flags::NONE,
        boot_time: Some(boot),
        origin: Origin::Published,
    };
    let settings = Settings {
        boot_time: Some(42),
        ..Settings::default()
    };

    let mut same_boot = Passim::new(settings.clone(), 1);
    assert_eq!(same_boot.handle_load(item(42), T0), LoadOutcome::Loaded);
    same_boot.handle_loaded(T0);
    assert_eq!(
        same_boot.item(&hash(4)).unwrap().flags,
        Flags::DISABLED.with(Flags::NEXT_REBOOT)
    );
    assert!(same_boot.shareable().is_empty());

    let mut next_boot = Passim::new(settings, 1);
    next_boot.handle_load(item(41), T0);
    next_boot.handle_loaded(T0);
    assert_eq!(next_boot.item(&hash(4)).unwrap().flags, Flags::NONE);
    assert_eq!(next_boot.shareable(), [hash(4)].into());
}

#[test]
fn localhost_false_skips_the_local_copy() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    let q = format!("sha256={}&localhost=false", hash(1));
    assert!(matches!(
        request(&mut p, LOCAL, "/f", &q, T0),
        Decision::Lookup { .. }
    ));
    assert_eq!(status_of(&request(&mut p, PEER_A, "/f", &q, T0)), 403);
    assert_eq!(p.item(&hash(1)).unwrap().share_count, 0);
}

#[test]
fn loopback_lookup_redirects_to_a_random_other_peer_or_404s() {
    let mut p = running();
    let d = request(
        &mut p,
        LOCAL,
        "/a b.xml",
        &format!("sha256={}", hash(5)),
        T0,
    );
    let Decision::Lookup { hash: h, basename } = d else {
        panic!("{d:?}")
    };
    assert_eq!((h, basename.as_str()), (hash(5), "a b.xml"));

    let none = p.handle_lookup_result(&h, &basename, &[]);
    assert_eq!(
        none,
        Decision::Refuse(Refusal::new(
            404,
            format!("failed to find {}", &h.to_hex()[..60])
        ))
    );

    // Only ourselves: still 404.
    let me = Peer {
        name: p.name().to_owned(),
        addr: "10.0.0.1:27500".parse().unwrap(),
    };
    assert_eq!(
        status_of(&p.handle_lookup_result(&h, &basename, std::slice::from_ref(&me))),
        404
    );

    let peers = [
        me,
        Peer {
            name: "Passim-0001".into(),
            addr: "10.0.0.2:27500".parse().unwrap(),
        },
        Peer {
            name: "Passim-0002".into(),
            addr: "[fe80::2]:27501".parse().unwrap(),
        },
    ];
    let mut seen = BTreeSet::new();
    for _ in 0..64 {
        let Decision::Redirect { location } = p.handle_lookup_result(&h, &basename, &peers) else {
            panic!()
        };
        assert!(
            location.ends_with(&format!("/a%20b.xml?sha256={h}")),
            "{location}"
        );
        assert!(!location.contains("10.0.0.1"));
        seen.insert(location);
    }
    assert_eq!(
        seen.len(),
        2,
        "both other peers are chosen sometimes: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("https://[fe80::2]:27501/"))
    );
}

#[test]
fn items_expire_at_their_exact_deadline() {
    let mut p = running();
    publish(&mut p, 1, 60, 5, T0);
    drain(&mut p);
    assert_eq!(
        p.poll_timeout(),
        Some((T0.add_secs(60), TimeoutReason::Expiry(hash(1))))
    );
    p.handle_timeout(T0.add_secs(59));
    assert!(p.item(&hash(1)).is_some());
    // Even if the timer is late, a request at the deadline does not get the item.
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0.add_secs(60))), 403);
    assert!(p.item(&hash(1)).is_none());
    let out = drain(&mut p);
    assert!(out.iter().any(|o| matches!(o, Output::RemoveFile { .. })));
    assert!(out.contains(&Output::Changed));
    assert_eq!(
        p.poll_timeout().map(|t| t.1),
        Some(TimeoutReason::CooldownEnds(PEER_A))
    );
}

#[test]
fn never_expiring_items_have_no_deadline() {
    let mut p = running();
    publish(&mut p, 1, u32::MAX, 5, T0);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn expired_items_are_deleted_at_load() {
    let mut p = Passim::new(Settings::default(), 1);
    let item = Item {
        hash: hash(6),
        basename: Basename::new("old").unwrap(),
        cmdline: String::new(),
        max_age: 10,
        share_limit: 5,
        share_count: 0,
        size: 1,
        ctime: T0,
        flags: Flags::NONE,
        boot_time: None,
        origin: Origin::Published,
    };
    assert_eq!(
        p.handle_load(item.clone(), T0.add_secs(10)),
        LoadOutcome::Expired
    );
    assert!(matches!(p.poll_output(), Some(Output::RemoveFile { .. })));
    assert_eq!(p.handle_load(item.clone(), T0), LoadOutcome::Loaded);
    assert_eq!(p.handle_load(item, T0), LoadOutcome::Duplicate);
}

#[test]
fn publish_refusals() {
    let mut p = running();
    let missing = PublishAttrs::from_pairs([("max-age", AttrValue::U32(1))], String::new());
    assert_eq!(missing, Err(PublishError::MissingBasename));
    for bad in ["a/b", "", "..", "a\u{1}"] {
        let r = PublishAttrs::from_pairs([("filename", AttrValue::Str(bad.into()))], String::new());
        assert!(
            matches!(r, Err(PublishError::InvalidBasename(_))),
            "{bad:?}"
        );
        assert!(r.unwrap_err().is_invalid_args());
    }
    let wrong = PublishAttrs::from_pairs(
        [
            ("filename", AttrValue::Str("a".into())),
            ("max-age", AttrValue::Str("1".into())),
        ],
        String::new(),
    );
    assert_eq!(wrong, Err(PublishError::WrongType("max-age".into())));
    let limit = PublishAttrs::from_pairs(
        [
            ("filename", AttrValue::Str("a".into())),
            ("share-limit", AttrValue::U32(3)),
            ("share-count", AttrValue::U32(3)),
        ],
        String::new(),
    );
    assert_eq!(
        limit,
        Err(PublishError::ShareLimitReached { count: 3, limit: 3 })
    );

    let ok = PublishAttrs::from_pairs(
        [
            ("filename", AttrValue::Str("a.bin".into())),
            ("max-age", AttrValue::U32(60)),
            ("share-limit", AttrValue::U32(3)),
            ("flags", AttrValue::U64(2)),
            ("unknown", AttrValue::Bool(true)),
        ],
        "fwupdmgr".into(),
    )
    .unwrap();
    assert!(ok.next_reboot);
    assert_eq!(
        (ok.max_age, ok.share_limit, ok.cmdline.as_str()),
        (60, 3, "fwupdmgr")
    );

    let too_big = p.begin_publish(ok.clone(), hash(1), 100 * 1024 * 1024 + 1, T0);
    let err = too_big.unwrap_err();
    assert_eq!(err, PublishError::TooLarge { limit: 104_857_600 });
    assert!(err.to_string().starts_with("size limit is "), "{err}");

    let item = p.begin_publish(ok.clone(), hash(1), 5, T0).unwrap();
    // A second publish of the same content while the first is being stored.
    assert_eq!(
        p.begin_publish(ok.clone(), hash(1), 5, T0),
        Err(PublishError::Exists(hash(1)))
    );
    p.finish_publish(item, T0);
    let exists = p.begin_publish(ok.clone(), hash(1), 5, T0).unwrap_err();
    assert_eq!(exists.to_string(), format!("{} already exists", hash(1)));

    // An aborted publish frees the hash.
    let item = p.begin_publish(ok.clone(), hash(2), 5, T0).unwrap();
    p.abort_publish(&item.hash);
    assert!(p.begin_publish(ok, hash(2), 5, T0).is_ok());
}

#[test]
fn publish_outputs_audit_changed_and_advertise() {
    let mut p = running();
    let item = p.begin_publish(attrs("a", 100, 5), hash(1), 3, T0).unwrap();
    assert!(
        drain(&mut p).is_empty(),
        "nothing happens before the item is stored"
    );
    p.finish_publish(item, T0);
    let out = drain(&mut p);
    assert!(
        matches!(&out[0], Output::Audit(AuditLine { event: AuditEvent::Publish { size: 3, cmdline, .. }, .. }) if cmdline == "fwupd")
    );
    assert!(out.contains(&Output::Changed));
    assert!(out.contains(&Output::Advertise(hash(1))));
}

#[test]
fn unpublish_known_and_unknown() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    drain(&mut p);
    assert_eq!(p.handle_unpublish(&hash(2), T0), Err(NotFound(hash(2))));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.handle_unpublish(&hash(1), T0), Ok(()));
    let out = drain(&mut p);
    assert!(out.iter().any(|o| matches!(o, Output::RemoveFile { .. })));
    assert!(out.contains(&Output::Withdraw(hash(1))));
}

#[test]
fn static_items_are_never_deleted_or_expired() {
    let mut p = running();
    let item = Item {
        hash: hash(8),
        basename: Basename::new("mirror.bin").unwrap(),
        cmdline: String::new(),
        max_age: 1,
        share_limit: 1,
        share_count: 0,
        size: 4,
        ctime: T0,
        flags: Flags::NONE,
        boot_time: None,
        origin: Origin::Static {
            path: "/srv/mirror.bin".into(),
        },
    };
    p.handle_static_items(vec![item.clone()], T0);
    drain(&mut p);
    for i in 0..5u8 {
        let from = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, i));
        assert_eq!(
            status_of(&fetch(&mut p, from, 8, T0.add_secs(1_000_000))),
            200
        );
    }
    assert!(drain(&mut p).iter().all(|o| !matches!(
        o,
        Output::RemoveFile { .. } | Output::StoreShareCount { .. }
    )));
    // Unpublishing a static item forgets it without deleting the operator's file.
    p.handle_unpublish(&hash(8), T0).unwrap();
    assert!(
        drain(&mut p)
            .iter()
            .all(|o| !matches!(o, Output::RemoveFile { .. }))
    );
    // A rescan without it keeps it gone; with it, brings it back.
    p.handle_static_items(vec![item], T0);
    assert!(p.item(&hash(8)).is_some());
    p.handle_static_items(vec![], T0);
    assert!(p.item(&hash(8)).is_none());
}

#[test]
fn range_requests() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0); // 10 bytes
    let get = |range: &[u8]| {
        parse_request(
            "GET",
            "/f",
            Some(&format!("sha256={}", hash(1))),
            Some(range),
        )
        .unwrap()
    };
    let Decision::Serve(s) = p.handle_request(&get(b"bytes=0-3"), LOCAL, T0) else {
        panic!()
    };
    assert_eq!(s.range, Some((0, 3)));
    assert_eq!(p.item(&hash(1)).unwrap().share_count, 1);
    assert_eq!(
        p.handle_request(&get(b"bytes=10-"), LOCAL, T0),
        Decision::RangeNotSatisfiable { size: 10 }
    );
    let Decision::Serve(s) = p.handle_request(&get(b"bytes=-4"), LOCAL, T0) else {
        panic!()
    };
    assert_eq!(s.range, Some((6, 9)));
    assert_eq!(RangeSpec::Suffix(4).resolve(10), Some((6, 9)));
}

#[test]
fn a_remote_resume_within_the_cooldown_is_served_but_not_counted() {
    let mut p = running();
    publish(&mut p, 1, 100, 5, T0);
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0)), 200);
    drain(&mut p);
    let q = format!("sha256={}", hash(1));
    let resume = parse_request("GET", "/f", Some(&q), Some(b"bytes=4-")).unwrap();
    let Decision::Serve(s) = p.handle_request(&resume, PEER_A, T0.add_secs(1)) else {
        panic!()
    };
    assert_eq!(s.range, Some((4, 9)));
    assert_eq!(p.item(&hash(1)).unwrap().share_count, 1);
    assert_eq!(p.download_saving(), 16);
    // A range from byte 0 is a new download, and the cooldown applies.
    let restart = parse_request("GET", "/f", Some(&q), Some(b"bytes=0-")).unwrap();
    assert_eq!(
        status_of(&p.handle_request(&restart, PEER_A, T0.add_secs(1))),
        403
    );
}

#[test]
fn head_has_no_side_effects() {
    let mut p = running();
    publish(&mut p, 1, 100, 1, T0);
    drain(&mut p);
    let q = format!("sha256={}", hash(1));
    let head = parse_request("HEAD", "/f", Some(&q), None).unwrap();
    for _ in 0..3 {
        let Decision::Serve(s) = p.handle_request(&head, PEER_A, T0) else {
            panic!()
        };
        assert!(s.head_only);
    }
    assert_eq!(p.item(&hash(1)).unwrap().share_count, 0);
    assert!(drain(&mut p).is_empty());
    assert_eq!(status_of(&fetch(&mut p, PEER_A, 1, T0)), 200);
}

#[test]
fn carbon_saving_follows_download_saving() {
    let settings = Settings {
        download_saving: 1 << 30,
        ..Settings::default()
    };
    let p = Passim::new(settings, 1);
    assert!((p.carbon_saving() - 0.026367).abs() < 1e-9);
}
