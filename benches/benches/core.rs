//! Request parsing and request decisions over 100,000 items, in requests per second
//! (criterion's `thrpt` line).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use passim_core::request::parse_request;
use passim_core::{Decision, Passim, PublishAttrs, Settings, Sha256, Timestamp};

const ITEMS: u32 = 100_000;

fn hash(i: u32) -> Sha256 {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    bytes[31] = 0x5a;
    Sha256::from_bytes(bytes)
}

fn loaded_core(now: Timestamp) -> Passim {
    let settings = Settings {
        // No cooldown, so every request from one address reaches the item decision.
        cooldown_secs: 0,
        ..Settings::default()
    };
    let mut p = Passim::new(settings, 1);
    p.handle_loaded(now);
    for i in 0..ITEMS {
        let attrs = PublishAttrs::from_pairs(
            [
                (
                    "filename",
                    passim_core::AttrValue::Str(format!("file-{i}.xml.gz")),
                ),
                ("share-limit", passim_core::AttrValue::U32(0)),
                ("max-age", passim_core::AttrValue::U32(86_400)),
            ],
            "bench".into(),
        )
        .expect("valid attributes");
        let item = p
            .begin_publish(attrs, hash(i), 1024, now)
            .expect("new hash");
        p.finish_publish(item, now);
        while p.poll_output().is_some() {}
    }
    p
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_700_000_000);
    let query = format!("sha256={}&localhost=true", hash(4242));

    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse", |b| {
        b.iter(|| {
            parse_request(
                "GET",
                black_box("/file-4242.xml.gz"),
                Some(black_box(&query)),
                None,
            )
        })
    });

    let mut p = loaded_core(now);
    let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut i = 0u32;
    group.bench_function("decide_serve_100k_items", |b| {
        b.iter(|| {
            i = (i + 7919) % ITEMS;
            let q = format!("sha256={}", hash(i));
            let req = parse_request("GET", "/f", Some(&q), None).expect("well-formed");
            let d = p.handle_request(&req, remote, now);
            debug_assert!(matches!(d, Decision::Serve(_)));
            while let Some(o) = p.poll_output() {
                let _ = black_box(o);
            }
            black_box(d)
        })
    });

    let missing = parse_request(
        "GET",
        "/f",
        Some(&format!("sha256={}", hash(ITEMS + 1))),
        None,
    )
    .expect("well-formed");
    group.bench_function("decide_refuse_remote_100k_items", |b| {
        b.iter(|| p.handle_request(black_box(&missing), remote, now))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
