//! Properties of the state machine under arbitrary sequences of inputs.

use passim_core::fuzz::{Op, run};
use proptest::prelude::*;

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
