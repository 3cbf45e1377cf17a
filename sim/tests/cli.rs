//! The `passim-sim` command: its table and its machine-readable last line.

use std::collections::BTreeMap;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_passim-sim"))
        .args(args)
        .output()
        .expect("passim-sim runs")
}

const OFFLOAD: [&str; 7] = [
    "offload",
    "--hosts",
    "300",
    "--share-limit",
    "50",
    "--seed",
    "1",
];

#[test]
fn offload_ends_with_one_machine_readable_line() {
    let out = run(&OFFLOAD);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("tier "),
        "the table comes first: {stdout}"
    );
    let last = stdout.lines().last().unwrap();
    let fields: BTreeMap<&str, &str> = last
        .strip_prefix("offload: ")
        .unwrap_or_else(|| panic!("not the offload line: {last}"))
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let keys: Vec<&str> = fields.keys().copied().collect();
    assert_eq!(
        keys,
        [
            "bad",
            "cdn",
            "hosts",
            "max_shares",
            "p50_ms",
            "p99_ms",
            "reduction",
            "share_limit"
        ]
    );
    assert_eq!(fields["hosts"], "300");
    assert_eq!(fields["share_limit"], "50");
    assert_eq!(fields["bad"], "0");
    let cdn: usize = fields["cdn"].parse().unwrap();
    assert!((1..=2).contains(&cdn), "{last}");
    let reduction: f64 = fields["reduction"].parse().unwrap();
    assert!((reduction - 300.0 / cdn as f64).abs() < 0.1, "{last}");
    let p99: f64 = fields["p99_ms"].parse().unwrap();
    assert!(p99 > 0.0 && p99 < 1000.0, "{last}");

    // The same seed prints the same figures.
    let again = run(&OFFLOAD);
    assert_eq!(
        String::from_utf8(again.stdout).unwrap().lines().last(),
        Some(last)
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = run(&["offload", "--liars", "1.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--liars"));
    let out = run(&["offload", "--hosts", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hosts"));
    let out = run(&["offload", "--tier", "quantum"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tier"));
}
