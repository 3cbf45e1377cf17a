//! Entry points for the fuzz targets in `fuzz/` and for `cargo test`'s replay of their seeds and
//! of every crash they ever found: one definition of what each parser must guarantee.
//!
//! Each function panics when the guarantee is broken, which is how a fuzzer reports a finding.

use crate::audit::AuditLine;
use crate::config::{Config, StaticDirConfig};
use crate::request::{Target, parse_request};

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
