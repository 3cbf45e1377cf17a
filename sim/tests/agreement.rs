//! The two tiers play the same script at 50 machines and must tell the same story: this is what
//! lets the core tier's figures for thousands of machines stand for the real shell's.

use std::time::Duration;

use passim_sim::model::{Params, Report};
use passim_sim::{core_tier, turmoil_tier};

fn both(hosts: usize, share_limit: u32, seed: u64, window: u64) -> (Report, Report) {
    let mut p = Params::offload(hosts, share_limit, seed);
    p.window = Duration::from_secs(window);
    let real = turmoil_tier::offload(&p).expect("the turmoil run finishes");
    // turmoil's TCP connect completes as the SYN arrives; the model is told so, which leaves
    // only what the model itself gets right or wrong to compare.
    p.net.connect_one_ways = 1;
    let model = core_tier::offload(&p);
    eprint!("{}{}", real.table(), model.table());
    (real, model)
}

fn close(a: Duration, b: Duration, tolerance: f64) -> bool {
    let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
    (a - b).abs() <= tolerance * a.max(b)
}

#[test]
fn the_tiers_agree_at_fifty_machines() {
    for (share_limit, seed) in [(5, 1), (50, 2)] {
        let (real, model) = both(50, share_limit, seed, 60);
        assert_eq!(real.fetches.len(), model.fetches.len());
        assert_eq!(real.bad(), 0);
        assert_eq!(model.bad(), 0);
        assert!(
            real.cdn().abs_diff(model.cdn()) <= 1,
            "cdn {} vs {}",
            real.cdn(),
            model.cdn()
        );
        assert!(real.max_shares() <= share_limit && model.max_shares() <= share_limit);
        assert!(
            close(real.percentile(0.5), model.percentile(0.5), 0.05),
            "p50 {:?} vs {:?}",
            real.percentile(0.5),
            model.percentile(0.5)
        );
        // The slowest refresh is the first one: a lookup that finds nobody, then the CDN.
        assert!(
            close(real.percentile(1.0), model.percentile(1.0), 0.05),
            "max {:?} vs {:?}",
            real.percentile(1.0),
            model.percentile(1.0)
        );
    }
}
