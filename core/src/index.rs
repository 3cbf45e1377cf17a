//! The HTML the daemon serves: the index of items shown at `/` to loopback clients, and the small
//! error pages every failed request gets.
//!
//! Everything taken from an item is escaped: a basename or program name comes from whoever
//! published it, and the page is opened in the local user's browser, so a name like
//! `<script>…` must show as text and never run.

use std::fmt::Write as _;

use crate::{Item, Timestamp};

/// The index page: a heading with the daemon's `name` and a table with one row per item, in the
/// order given. `now` is the time ages are measured at; `version` goes in the footer.
///
/// Each row shows the file name (linked to where it can be downloaded), hash, publishing
/// program, age/max-age in whole hours, share-count/share-limit (`∞` for unlimited), size and
/// flags.
pub fn render(items: &[&Item], now: Timestamp, name: &str, version: &str) -> String {
    let name = html_escape(name);
    let mut page = String::with_capacity(4096);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(page, "<title>{name}</title>");
    page.push_str("<link rel=\"stylesheet\" href=\"/style.css\">\n");
    page.push_str("<link rel=\"icon\" href=\"/favicon.ico\">\n</head>\n<body>\n");
    let _ = writeln!(page, "<h1>{name}</h1>");

    if items.is_empty() {
        page.push_str("<p>No items are published.</p>\n");
    } else {
        page.push_str("<table>\n<thead><tr>");
        for heading in [
            "Filename", "Hash", "Binary", "Age", "Shared", "Size", "Flags",
        ] {
            let _ = write!(page, "<th>{heading}</th>");
        }
        page.push_str("</tr></thead>\n<tbody>\n");
        for item in items {
            push_row(&mut page, item, now);
        }
        page.push_str("</tbody>\n</table>\n");
    }

    let _ = writeln!(page, "<footer>passim {}</footer>", html_escape(version));
    page.push_str("</body>\n</html>\n");
    page
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities, safe in element text and in quoted
/// attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A size as `passim status` and GLib's `g_format_size` show it: `1 byte`, `999 bytes`, then
/// SI units (powers of 1000) with one decimal, `1.0 kB` up to `EB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];

    match bytes {
        1 => return "1 byte".to_owned(),
        0..1000 => return format!("{bytes} bytes"),
        _ => {}
    }

    // The largest unit that is at most `bytes`, so the number is at least 1.0. Like GLib, a
    // value that rounds up to 1000 stays in the smaller unit (`1000.0 kB`).
    let mut unit = 1000u64;
    let mut i = 0;
    while i + 1 < UNITS.len() && bytes / unit >= 1000 {
        unit *= 1000;
        i += 1;
    }
    format!("{:.1} {}", bytes as f64 / unit as f64, UNITS[i])
}

/// An error page, exactly as the C version words it:
/// `<html><head><title>404 Not Found</title></head><body>MESSAGE</body></html>`.
/// `reason` and `message` are escaped.
pub fn error_page(status: u16, reason: &str, message: &str) -> String {
    format!(
        "<html><head><title>{status} {}</title></head><body>{}</body></html>",
        html_escape(reason),
        html_escape(message)
    )
}

/// `s` percent-encoded for one path segment or query value: every byte except the unreserved
/// `A-Z a-z 0-9 - . _ ~` becomes `%XX` (upper-case hex), so the result is plain ASCII that no
/// URL or HTML parser reads specially.
pub fn percent_encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const INFINITY: &str = "∞";

fn push_row(page: &mut String, item: &Item, now: Timestamp) {
    let basename = item.basename.as_str();
    let age = item.age_secs(now) / 3600;
    let max_age = if item.has_max_age() {
        format!("{}h", item.max_age / 3600)
    } else {
        INFINITY.to_owned()
    };
    let limit = if item.has_share_limit() {
        item.share_limit.to_string()
    } else {
        INFINITY.to_owned()
    };

    let _ = writeln!(
        page,
        "<tr><td><a href=\"/{}?sha256={}\">{}</a></td><td><code>{}</code></td><td>{}</td>\
         <td>{age}h/{max_age}</td><td>{}/{limit}</td><td>{}</td><td>{}</td></tr>",
        percent_encode_component(basename),
        item.hash,
        html_escape(basename),
        item.hash,
        html_escape(&item.cmdline),
        item.share_count,
        format_size(item.size),
        html_escape(&item.flags.describe()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Basename, Flags, Origin, Sha256};

    const HELLO: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    fn item(basename: &str) -> Item {
        Item {
            hash: HELLO.parse::<Sha256>().unwrap(),
            basename: Basename::new(basename).unwrap(),
            cmdline: "fwupd".to_owned(),
            max_age: 86_400,
            share_limit: 5,
            share_count: 2,
            size: 1_500_000,
            ctime: Timestamp::from_secs(1_000_000),
            flags: Flags::NONE,
            boot_time: None,
            origin: Origin::Published,
        }
    }

    #[test]
    fn renders_a_row() {
        let now = Timestamp::from_secs(1_000_000 + 3 * 3600 + 3599);
        let page = render(&[&item("firmware.cab")], now, "Passim-AB12", "0.1.0");
        assert!(page.starts_with("<!DOCTYPE html>\n"));
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/style.css\">"));
        assert!(page.contains("<link rel=\"icon\" href=\"/favicon.ico\">"));
        assert!(page.contains("<h1>Passim-AB12</h1>"));
        assert!(page.contains("<footer>passim 0.1.0</footer>"));
        let row = format!(
            "<tr><td><a href=\"/firmware.cab?sha256={HELLO}\">firmware.cab</a></td>\
             <td><code>{HELLO}</code></td><td>fwupd</td><td>3h/24h</td><td>2/5</td>\
             <td>1.5 MB</td><td></td></tr>\n"
        );
        assert!(page.contains(&row), "{page}");
        assert!(!page.contains("No items"));
    }

    #[test]
    fn escapes_a_malicious_basename_and_cmdline() {
        let mut evil = item("<script>alert('x&y')<script>.cab");
        evil.cmdline = "\"><img src=x>".to_owned();
        let page = render(&[&evil], Timestamp::ZERO, "<b>", "1");
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>"));
        assert!(page.contains(">&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;script&gt;.cab</a>"));
        assert!(page.contains("<td>&quot;&gt;&lt;img src=x&gt;</td>"));
        assert!(
            page.contains("href=\"/%3Cscript%3Ealert%28%27x%26y%27%29%3Cscript%3E.cab?sha256=")
        );
    }

    #[test]
    fn shows_infinity_for_unlimited() {
        let mut forever = item("a");
        forever.max_age = u32::MAX;
        forever.share_limit = 0;
        let mut unlimited = item("b");
        unlimited.share_limit = u32::MAX;
        unlimited.flags = Flags::DISABLED.with(Flags::NEXT_REBOOT);
        let page = render(
            &[&forever, &unlimited],
            Timestamp::from_secs(1_000_000),
            "n",
            "v",
        );
        assert!(page.contains("<td>0h/∞</td><td>2/∞</td>"), "{page}");
        assert!(page.contains("<td>0h/24h</td><td>2/∞</td>"), "{page}");
        assert!(page.contains("<td>Disabled, Next Reboot</td>"));
    }

    #[test]
    fn ages_are_whole_hours() {
        let mut it = item("a");
        it.max_age = 7200 + 1800;
        let at = |secs: u64| render(&[&it], Timestamp::from_secs(1_000_000 + secs), "n", "v");
        assert!(at(3599).contains("<td>0h/2h</td>"));
        assert!(at(3600).contains("<td>1h/2h</td>"));
        assert!(at(100 * 3600).contains("<td>100h/2h</td>"));
        // A clock behind the item's ctime shows age zero rather than wrapping.
        let before = render(&[&it], Timestamp::ZERO, "n", "v");
        assert!(before.contains("<td>0h/2h</td>"));
    }

    #[test]
    fn empty_index_says_so() {
        let page = render(&[], Timestamp::ZERO, "Passim-0000", "0.1.0");
        assert!(page.contains("<p>No items are published.</p>"));
        assert!(!page.contains("<table>"));
        assert!(page.ends_with("</html>\n"));
    }

    #[test]
    fn sizes_read_like_glib() {
        let cases: [(u64, &str); 13] = [
            (0, "0 bytes"),
            (1, "1 byte"),
            (2, "2 bytes"),
            (999, "999 bytes"),
            (1000, "1.0 kB"),
            (1049, "1.0 kB"),
            (1050, "1.1 kB"),
            (999_999, "1000.0 kB"),
            (1_500_000, "1.5 MB"),
            (104_857_600, "104.9 MB"),
            (1_000_000_000, "1.0 GB"),
            (2_500_000_000_000, "2.5 TB"),
            (u64::MAX, "18.4 EB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(format_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn error_page_is_exact() {
        assert_eq!(
            error_page(404, "Not Found", "failed to find <abc>"),
            "<html><head><title>404 Not Found</title></head>\
             <body>failed to find &lt;abc&gt;</body></html>"
        );
    }

    #[test]
    fn percent_encodes_all_but_unreserved() {
        assert_eq!(percent_encode_component("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            percent_encode_component("a b/c?d#e%&"),
            "a%20b%2Fc%3Fd%23e%25%26"
        );
        assert_eq!(percent_encode_component("é"), "%C3%A9");
        assert_eq!(percent_encode_component(""), "");
    }

    #[test]
    fn html_escape_covers_the_five() {
        assert_eq!(html_escape(r#"&<>"'x"#), "&amp;&lt;&gt;&quot;&#39;x");
    }
}
