//! The core tier's scenarios, each on a fixed seed: the LAN-wide properties passim promises,
//! checked with the real core on every machine.

use std::collections::BTreeSet;
use std::time::Duration;

use passim_sim::core_tier::{self, CHURN_CRASHES, CHURN_DOWNTIME, CHURN_RACES, LOOKUP_TIMEOUT};
use passim_sim::model::{Params, Report, Schedule, Source};

/// What every run must show: one verified fetch per machine, and no machine sharing an item
/// more often than its share-limit.
fn check_complete(report: &Report, params: &Params) {
    assert_eq!(report.tier, "core");
    assert_eq!(report.fetches.len(), params.hosts, "one fetch per refresh");
    let hosts: BTreeSet<usize> = report.fetches.iter().map(|f| f.host).collect();
    assert_eq!(hosts.len(), params.hosts, "every machine refreshed once");
    assert_eq!(report.failed(), 0, "every refresh got the file");
    assert_eq!(report.bad(), 0, "nobody kept bytes that do not match");
    assert!(report.fetches.iter().all(|f| f.verified));
    for (&(host, _), &shares) in &report.shares {
        assert!(
            shares <= params.share_limit,
            "machine {host} shared {shares} times, limit {}",
            params.share_limit
        );
    }
}

#[test]
fn offload_at_200_hosts_with_share_limit_5() {
    let params = Params::offload(200, 5, 11);
    let report = core_tier::offload(&params);
    check_complete(&report, &params);
    assert!(report.cdn() <= 2, "{}", report.table());
    assert_eq!(
        report.max_shares(),
        5,
        "a limit of 5 is reached: {}",
        report.table()
    );
    // The typical client finds holders in its table at once and fetches from one.
    assert_eq!(
        report.percentile(0.5),
        core_tier::local_answer_time(&params) + core_tier::peer_fetch_time(&params),
        "{}",
        report.table()
    );
}

#[test]
fn offload_at_200_hosts_with_share_limit_50() {
    let params = Params::offload(200, 50, 12);
    let report = core_tier::offload(&params);
    check_complete(&report, &params);
    assert!(report.cdn() <= 2, "{}", report.table());
    // Served by the peers that were there first, far below the limit.
    assert!(report.max_shares() < 50, "{}", report.table());
}

#[test]
fn offload_at_1000_hosts_meets_the_target() {
    let params = Params::offload(1_000, 50, 1);
    let report = core_tier::offload(&params);
    check_complete(&report, &params);
    assert!(report.cdn() <= 2, "{}", report.table());
    assert!(
        report.percentile(0.99) < Duration::from_secs(1),
        "{}",
        report.table()
    );
    assert_eq!(report.bad(), 0);
}

#[test]
fn a_seed_replays_the_run_and_another_seed_does_not() {
    let params = Params::offload(200, 5, 7);
    let a = core_tier::offload(&params);
    let b = core_tier::offload(&params);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a, b);
    let c = core_tier::offload(&Params::offload(200, 5, 8));
    assert_ne!(a.trace, c.trace);
}

#[test]
fn lying_peers_cost_one_bounded_detour_and_no_bad_file() {
    let mut params = Params::offload(200, 5, 21);
    params.liars = 0.2;
    let liar = Schedule::new(&params).liar;
    let report = core_tier::offload(&params);
    check_complete(&report, &params);

    let fooled: Vec<_> = report.fetches.iter().filter(|f| f.rejected > 0).collect();
    assert!(
        !fooled.is_empty(),
        "some client met a liar: {}",
        report.table()
    );
    for f in &report.fetches {
        if let Some(Source::Peer(p)) = f.source {
            assert!(!liar[p], "machine {} kept bytes from liar {p}", f.host);
        }
    }
    // Its own passimd with one lookup, one wasted transfer from the liar, then the CDN.
    let bound = core_tier::local_answer_time(&params)
        + LOOKUP_TIMEOUT
        + core_tier::peer_fetch_time(&params)
        + core_tier::cdn_fetch_time(&params);
    let worst = fooled.iter().map(|f| f.time_to_file()).max().unwrap();
    assert!(worst <= bound, "{worst:?} > {bound:?}");
    assert!(
        fooled
            .iter()
            .all(|f| f.rejected == 1 && f.source == Some(Source::Cdn))
    );
}

#[test]
fn churn_never_leaves_a_client_hanging() {
    let mut params = Params::offload(200, 5, 31);
    // And a lossy LAN: one peer transfer in twenty is cut part-way.
    params.net.loss = 0.05;
    let churn = core_tier::churn(&params);
    let report = &churn.report;
    let c = &churn.counters;
    check_complete(report, &params);

    assert_eq!(c.crashed_serving, CHURN_CRASHES, "{c:?}");
    assert_eq!(c.crashes, 2 * CHURN_CRASHES, "{c:?}");
    assert!(c.crashed_fetching >= 1, "{c:?}");
    assert_eq!(c.resumed_fetches, c.crashed_fetching, "{c:?}");
    // Each client of a peer that died mid-transfer waited for it, then went to the CDN.
    assert!(c.peer_timeouts >= c.crashed_serving, "{c:?}");
    assert!(c.partition_refusals > 0, "{c:?}");
    assert!(c.cuts > 0, "{c:?}");
    assert_eq!(c.races_forced, CHURN_RACES, "{c:?}");
    assert!(c.gone_after_redirect >= CHURN_RACES, "{c:?}");
    assert!(c.share_counts_kept > 0, "{c:?}");
    assert_eq!(c.share_counts_lost, 0, "{c:?}");

    // A client that crashed lost at most one attempt and its downtime.
    let bound = CHURN_DOWNTIME + 2 * core_tier::attempt_bound(&params);
    let worst = report
        .fetches
        .iter()
        .map(|f| f.time_to_file())
        .max()
        .unwrap();
    assert!(worst <= bound, "{worst:?} > {bound:?}");
}

#[test]
fn hammering_one_item_is_held_off_by_the_cooldown() {
    let params = Params::offload(20, 5, 41);
    let abuse = core_tier::abuse(&params);

    assert!(abuse.requests >= 1_000, "{abuse:?}");
    assert!(abuse.served >= 1, "{abuse:?}");
    let periods = (abuse.duration.as_secs() / abuse.cooldown.as_secs()) as u32;
    assert!(abuse.served <= 1 + periods, "{abuse:?}");
    assert!(abuse.share_count <= 1 + periods, "{abuse:?}");
    assert_eq!(abuse.share_count, abuse.served, "{abuse:?}");
    assert_eq!(
        abuse.refused_403,
        abuse.requests - abuse.served,
        "{abuse:?}"
    );
    assert!(abuse.held, "{abuse:?}");
    assert_eq!(abuse.removals, 0, "{abuse:?}");

    assert_eq!(abuse.probes, 2 * (params.hosts as u32 - 1), "{abuse:?}");
    assert_eq!(abuse.probes_refused_403, abuse.probes, "{abuse:?}");
    assert_eq!(abuse.lookups, 0, "{abuse:?}");
}

#[test]
fn an_expired_version_is_gone_everywhere_and_the_next_one_spreads() {
    let mut params = Params::offload(200, 5, 51);
    params.max_age = 3_600;
    params.window = Duration::from_secs(1_800);
    let expiry = core_tier::expiry(&params);

    check_complete(&expiry.first, &params);
    assert_eq!(expiry.holders_after, 0, "{expiry:?}");
    assert_eq!(expiry.advertised_after, 0, "{expiry:?}");
    assert_eq!(expiry.probes, params.hosts as u32);
    assert_eq!(expiry.probes_served, 0, "{expiry:?}");
    assert!(expiry.lookups > 0);
    assert_eq!(expiry.lookups_found, 0, "{expiry:?}");

    check_complete(&expiry.second, &params);
    assert!(
        expiry
            .second
            .fetches
            .iter()
            .all(|f| f.start > expiry.checked_at),
        "version 2 came after version 1 was gone"
    );
    assert!(expiry.second.cdn() <= 2, "{}", expiry.second.table());
}
