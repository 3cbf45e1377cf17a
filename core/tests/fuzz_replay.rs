//! Replays the fuzz seeds and every input a fuzzer ever crashed on (`fuzz/regressions/`), so a
//! fixed crash stays fixed under plain `cargo test`.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut count = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            check(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(
        count > 0,
        "no inputs found for {target} under {}",
        fuzz.display()
    );
}

#[test]
fn request_inputs() {
    replay("request", passim_core::fuzz::request);
}

#[test]
fn config_inputs() {
    replay("config", passim_core::fuzz::config);
}

#[test]
fn audit_inputs() {
    replay("audit", passim_core::fuzz::audit);
}

#[test]
fn attrs_inputs() {
    replay("attrs", passim_core::fuzz::attrs);
}

#[test]
fn machine_inputs() {
    replay("machine", passim_core::fuzz::machine);
}
