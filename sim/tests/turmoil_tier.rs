//! The turmoil tier's scenarios: the real passimd serving path (hyper, rustls, the core, the
//! store) on a simulated LAN. Each scenario runs with a fixed seed on a dozen machines over a
//! window of seconds, so `cargo test` stays quick; `passim-sim offload --tier turmoil` runs the
//! full-sized ones.

use std::time::Duration;

use passim_sim::model::{Params, Source};
use passim_sim::turmoil_tier;

fn small(hosts: usize, share_limit: u32, seed: u64) -> Params {
    let mut p = Params::offload(hosts, share_limit, seed);
    p.window = Duration::from_secs(20);
    p
}

/// What must hold after any run: every refresh ended with verified bytes, and no machine shared
/// an item more often than its share-limit.
fn assert_sound(report: &passim_sim::model::Report, share_limit: u32) {
    assert!(
        report
            .fetches
            .iter()
            .all(|f| f.verified && f.source.is_some()),
        "{:#?}",
        report.fetches
    );
    assert_eq!(report.bad(), 0);
    assert!(
        report.shares.values().all(|&n| n <= share_limit),
        "a share-limit of {share_limit} was exceeded: {:?}",
        report.shares
    );
}

#[test]
fn offload_asks_the_cdn_once_and_respects_share_limits() {
    let p = small(12, 3, 1);
    let report = turmoil_tier::offload(&p).expect("the run finishes");
    eprint!("{}", report.table());
    assert_eq!(report.fetches.len(), 12);
    assert_sound(&report, 3);
    assert_eq!(report.cdn(), 1, "{:#?}", report.fetches);
    assert_eq!(report.max_shares(), 3, "the first holders are used up");
    // Everyone but the first found a peer: well under the 500 ms lookup timeout.
    assert!(report.percentile(0.5) < Duration::from_millis(200));
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let p = small(10, 2, 7);
    let a = turmoil_tier::offload(&p).expect("the run finishes");
    let b = turmoil_tier::offload(&p).expect("the run finishes");
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.fetches, b.fetches);
    let c = turmoil_tier::offload(&small(10, 2, 8)).expect("the run finishes");
    assert_ne!(a.trace, c.trace);
}

#[test]
fn lying_peers_cost_a_bounded_detour_and_nobody_keeps_their_bytes() {
    let mut p = small(12, 5, 3);
    p.liars = 0.25;
    let report = turmoil_tier::offload(&p).expect("the run finishes");
    eprint!("{}", report.table());
    assert_sound(&report, 5);
    let detoured: Vec<_> = report.fetches.iter().filter(|f| f.rejected > 0).collect();
    assert!(
        !detoured.is_empty(),
        "no client met a liar: {:#?}",
        report.fetches
    );
    for f in &detoured {
        // Local request, a peer's wrong bytes, then the CDN: well under two seconds.
        assert_eq!(f.source, Some(Source::Cdn));
        assert!(f.time_to_file() < Duration::from_secs(2), "{f:?}");
    }
}

#[test]
fn churn_crashes_partitions_and_races_end_with_everyone_served() {
    let p = small(12, 2, 5);
    let churn = turmoil_tier::churn(&p).expect("nobody hangs");
    eprint!("{}", churn.report.table());
    eprintln!("{churn:#?}");
    assert_sound(&churn.report, 2);
    assert_eq!(churn.report.fetches.len(), 12);
    assert!(
        churn.refused_after_redirect >= 1,
        "no copy ran out between redirect and request"
    );
    assert!(churn.server_kept_item, "a crash lost a committed item");
    assert_eq!(churn.crashed_client_starts, 2);
    assert_eq!(churn.partitioned_source, Some(Source::Cdn));
    let slowest = churn
        .report
        .fetches
        .iter()
        .map(|f| f.time_to_file())
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(60),
        "a client took {slowest:?}"
    );
}

#[test]
fn abuse_cannot_drain_an_item_list_it_or_trigger_lookups() {
    let p = small(3, 5, 9);
    let abuse = turmoil_tier::abuse(&p).expect("the run finishes");
    let served = abuse.hammer.iter().filter(|p| p.status == 200).count();
    let refused = abuse.hammer.iter().filter(|p| p.status == 403).count();
    assert_eq!(served, 1, "{:?}", abuse.hammer);
    assert_eq!(refused, abuse.hammer.len() - 1);
    assert!(abuse.victim_kept_item);
    assert_eq!(abuse.index.status, 403);
    assert_eq!(abuse.unknown.status, 403);
    assert!(
        abuse.unknown.answered - abuse.unknown.at < Duration::from_millis(300),
        "the refusal waited for something: {:?}",
        abuse.unknown
    );
    assert_eq!(abuse.victim_queries, 0);
    assert_eq!(abuse.later_source, Some(Source::Peer(0)));
}

#[test]
fn expired_items_are_served_by_nobody_and_a_new_version_spreads() {
    let p = small(10, 5, 11);
    let expiry = turmoil_tier::expiry(&p).expect("the run finishes");
    eprint!("{}", expiry.report.table());
    assert_sound(&expiry.report, 5);
    assert!(
        expiry.still_holding.is_empty(),
        "{:?}",
        expiry.still_holding
    );
    assert_eq!(expiry.old_probes.len(), 10);
    assert!(
        expiry.old_probes.iter().all(|p| p.status == 403),
        "{:?}",
        expiry.old_probes
    );
    assert_eq!(expiry.late_source, Some(Source::Cdn));
    assert_eq!(expiry.new_cdn, 1);
}
