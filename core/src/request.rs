//! Parsing HTTP requests into what passim understands, or the exact refusal.
//!
//! The order of checks is part of the contract with clients of the C version: a request with a
//! bad `localhost=` gets 400 even when its hash is malformed too, a duplicate `sha256=` is
//! refused as soon as it is seen, and only a well-formed hash reaches the cooldown and item
//! checks in [`crate::Passim::handle_request`].

use std::fmt;

use crate::Sha256;

/// An HTTP status and the message of its error page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status code.
    pub status: u16,
    /// Why, in words, for the error page.
    pub message: String,
}

impl Refusal {
    /// A refusal with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The reason phrase of the status, for the page title.
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.reason(), self.message)
    }
}

/// The reason phrase of the statuses passim answers with.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        406 => "Not Acceptable",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        423 => "Locked",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The HTTP method, as far as passim cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the only method the C version accepts.
    Get,
    /// `HEAD`: answered like `GET` without a body and without side effects.
    Head,
}

/// A static asset of the index page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    /// `/style.css`.
    StyleCss,
    /// `/favicon.ico`.
    Favicon,
}

impl Asset {
    /// The file name under `$DATADIR/passim/`.
    pub const fn file_name(self) -> &'static str {
        match self {
            Self::StyleCss => "style.css",
            Self::Favicon => "favicon.ico",
        }
    }
}

/// One requested byte range, before it is resolved against the item's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=A-B` (inclusive).
    FromTo(u64, u64),
    /// `bytes=A-`.
    From(u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Resolves the range against a body of `size` bytes into an inclusive `(first, last)`, or
    /// `None` when it is not satisfiable (RFC 9110 §14.1.2).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last_byte = size.checked_sub(1)?;
        match self {
            Self::FromTo(first, last) if first <= last_byte => Some((first, last.min(last_byte))),
            Self::From(first) if first <= last_byte => Some((first, last_byte)),
            Self::Suffix(n) if n > 0 => Some((size - n.min(size), last_byte)),
            _ => None,
        }
    }
}

/// What a request asks for, once parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/`: the index page.
    Index,
    /// `/style.css` or `/favicon.ico`.
    Asset(Asset),
    /// `/<basename>?sha256=<hash>`: an item by hash.
    Fetch(Fetch),
}

/// A request for an item by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The hash asked for.
    pub hash: Sha256,
    /// The basename in the URL, percent-decoded (lossily). Ignored for serving (the stored
    /// name is used) but carried into redirects.
    pub basename: String,
    /// `localhost=false` asks not to be served from this machine's own items, so that a local
    /// client is sent to a peer; `true` or absent allows it.
    pub allow_local: bool,
    /// The `Range` the client asked for, if any.
    pub range: Option<RangeSpec>,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// GET or HEAD.
    pub method: Method,
    /// What is asked for.
    pub target: Target,
}

/// The longest query passim reads; anything longer is refused before parsing.
pub const MAX_QUERY_LEN: usize = 4096;

/// Parses a request line's method, path and query (without the `?`), and the `Range` header if
/// one was sent.
///
/// Returns the refusal COMPAT.md prescribes for each malformed shape, in its order of checks.
pub fn parse_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    range: Option<&[u8]>,
) -> Result<Request, Refusal> {
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        other => {
            return Err(Refusal::new(
                403,
                format!(
                    "method {} is not allowed, only GET and HEAD",
                    printable(other)
                ),
            ));
        }
    };

    match path {
        "/" => {
            return Ok(Request {
                method,
                target: Target::Index,
            });
        }
        "/style.css" | "/favicon.ico" if query.is_none() => {
            let asset = if path == "/style.css" {
                Asset::StyleCss
            } else {
                Asset::Favicon
            };
            return Ok(Request {
                method,
                target: Target::Asset(asset),
            });
        }
        _ => {}
    }

    let Some(query) = query else {
        return Err(Refusal::new(400, "query string required"));
    };
    if query.len() > MAX_QUERY_LEN {
        return Err(Refusal::new(400, "query string is too long"));
    }

    let mut hash_text: Option<Vec<u8>> = None;
    let mut allow_local = true;
    for pair in query.split('&') {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        match key {
            "sha256" => {
                if hash_text.is_some() {
                    return Err(Refusal::new(400, "duplicate sha256= argument"));
                }
                // `sha256` without `=` names no hash, as if it were absent.
                if let Some(v) = value {
                    hash_text = Some(percent_decode(v.as_bytes()));
                }
            }
            "localhost" => {
                allow_local = match value.map(|v| percent_decode(v.as_bytes())).as_deref() {
                    Some(b"true") => true,
                    Some(b"false") => false,
                    _ => return Err(Refusal::new(400, "localhost= must be true or false")),
                };
            }
            _ => {}
        }
    }

    let Some(hash_text) = hash_text else {
        return Err(Refusal::new(400, "sha256= argument required"));
    };
    let hash = std::str::from_utf8(&hash_text)
        .ok()
        .and_then(|s| Sha256::parse_hex(s).ok())
        .ok_or_else(|| Refusal::new(406, "sha256 hash is malformed"))?;

    let basename = path.strip_prefix('/').unwrap_or(path);
    let basename = String::from_utf8_lossy(&percent_decode(basename.as_bytes())).into_owned();

    Ok(Request {
        method,
        target: Target::Fetch(Fetch {
            hash,
            basename,
            allow_local,
            // An unparsable Range header is ignored, as RFC 9110 §14.2 allows: the whole body
            // is served.
            range: range.and_then(parse_range),
        }),
    })
}

/// Parses a `Range` header value holding one byte range. Several ranges, other units or bad
/// syntax give `None`, and the whole body is served instead.
pub fn parse_range(value: &[u8]) -> Option<RangeSpec> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        // `u64::from_str` accepts a leading `+`, which RFC 9110 does not.
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    match (first.is_empty(), last.is_empty()) {
        (true, false) => Some(RangeSpec::Suffix(number(last)?)),
        (false, true) => Some(RangeSpec::From(number(first)?)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(RangeSpec::FromTo(a, b))
        }
        (true, true) => None,
    }
}

/// Decodes `%XX` escapes. A `%` not followed by two hex digits is kept as it is, as GLib's
/// lenient decoding of URIs does; `+` is not a space in a URI query.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A method name shortened and stripped of control characters, so that a hostile method cannot
/// bloat or corrupt an error page or a log line.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    fn get(path: &str, query: Option<&str>) -> Result<Request, Refusal> {
        parse_request("GET", path, query, None)
    }

    fn fetch(r: Result<Request, Refusal>) -> Fetch {
        match r.unwrap().target {
            Target::Fetch(f) => f,
            other => panic!("not a fetch: {other:?}"),
        }
    }

    fn status(r: Result<Request, Refusal>) -> (u16, String) {
        let e = r.unwrap_err();
        (e.status, e.message)
    }

    #[test]
    fn methods_other_than_get_and_head_are_forbidden() {
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            assert_eq!(
                parse_request(m, "/", None, None).unwrap_err().status,
                403,
                "{m}"
            );
        }
        assert_eq!(
            parse_request("HEAD", "/", None, None).unwrap().method,
            Method::Head
        );
    }

    #[test]
    fn index_and_assets() {
        assert_eq!(get("/", None).unwrap().target, Target::Index);
        assert_eq!(
            get("/style.css", None).unwrap().target,
            Target::Asset(Asset::StyleCss)
        );
        assert_eq!(
            get("/favicon.ico", None).unwrap().target,
            Target::Asset(Asset::Favicon)
        );
    }

    #[test]
    fn no_query_is_400() {
        assert_eq!(get("/HELLO.md", None).unwrap_err().status, 400);
    }

    #[test]
    fn duplicate_sha256_is_400() {
        let q = format!("sha256={H}&sha256={H}");
        assert_eq!(
            status(get("/x", Some(&q))),
            (400, "duplicate sha256= argument".into())
        );
    }

    #[test]
    fn missing_sha256_is_400() {
        assert_eq!(
            status(get("/x", Some("localhost=true"))),
            (400, "sha256= argument required".into())
        );
        assert_eq!(status(get("/x", Some(""))).0, 400);
        assert_eq!(status(get("/x", Some("sha256"))).0, 400);
    }

    #[test]
    fn bad_localhost_is_400_before_the_hash_is_checked() {
        assert_eq!(status(get("/x", Some("sha256=zz&localhost=maybe"))).0, 400);
        assert_eq!(status(get("/x", Some("localhost=1&sha256=zz"))).0, 400);
        assert_eq!(
            status(get("/x", Some(&format!("sha256={H}&localhost")))).0,
            400
        );
    }

    #[test]
    fn malformed_hash_is_406() {
        for bad in [
            "abc",
            &H[..63],
            &format!("{H}00"),
            &H.replace('a', "x"),
            "%zz",
        ] {
            let q = format!("sha256={bad}");
            assert_eq!(
                status(get("/x", Some(&q))),
                (406, "sha256 hash is malformed".into())
            );
        }
        // Empty value: present but malformed.
        assert_eq!(status(get("/x", Some("sha256="))).0, 406);
    }

    #[test]
    fn upper_case_hash_is_normalised() {
        let q = format!("sha256={}", H.to_uppercase());
        assert_eq!(fetch(get("/x", Some(&q))).hash.to_hex(), H);
    }

    #[test]
    fn percent_escapes_in_values_are_decoded() {
        let escaped: String = H.bytes().map(|b| format!("%{b:02X}")).collect();
        let f = fetch(get(
            "/a%20b.txt",
            Some(&format!("sha256={escaped}&localhost=f%61lse")),
        ));
        assert_eq!(f.hash.to_hex(), H);
        assert!(!f.allow_local);
        assert_eq!(f.basename, "a b.txt");
    }

    #[test]
    fn localhost_flag_defaults_to_allowed() {
        assert!(fetch(get("/x", Some(&format!("sha256={H}")))).allow_local);
        assert!(fetch(get("/x", Some(&format!("sha256={H}&localhost=true")))).allow_local);
        assert!(fetch(get("/x", Some(&format!("other=1&sha256={H}&x")))).allow_local);
    }

    #[test]
    fn over_long_query_is_refused() {
        let q = format!("sha256={H}&pad={}", "a".repeat(MAX_QUERY_LEN));
        assert_eq!(status(get("/x", Some(&q))).0, 400);
    }

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range(b"bytes=0-9"), Some(RangeSpec::FromTo(0, 9)));
        assert_eq!(parse_range(b"bytes=5-"), Some(RangeSpec::From(5)));
        assert_eq!(parse_range(b"bytes=-3"), Some(RangeSpec::Suffix(3)));
        assert_eq!(parse_range(b"bytes=9-0"), None);
        assert_eq!(parse_range(b"bytes=0-1,3-4"), None);
        assert_eq!(parse_range(b"items=0-1"), None);
        assert_eq!(parse_range(b"bytes=+1-2"), None);
        assert_eq!(parse_range(b"bytes=-"), None);
        assert_eq!(parse_range(b"bytes=99999999999999999999-"), None);
    }

    #[test]
    fn range_resolution() {
        assert_eq!(RangeSpec::FromTo(0, 9).resolve(5), Some((0, 4)));
        assert_eq!(RangeSpec::FromTo(5, 9).resolve(5), None);
        assert_eq!(RangeSpec::From(4).resolve(5), Some((4, 4)));
        assert_eq!(RangeSpec::Suffix(2).resolve(5), Some((3, 4)));
        assert_eq!(RangeSpec::Suffix(10).resolve(5), Some((0, 4)));
        assert_eq!(RangeSpec::Suffix(0).resolve(5), None);
        assert_eq!(RangeSpec::From(0).resolve(0), None);
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode(b"a%2Fb"), b"a/b");
        assert_eq!(percent_decode(b"100%"), b"100%");
        assert_eq!(percent_decode(b"%4"), b"%4");
        assert_eq!(percent_decode(b"%g1"), b"%g1");
        assert_eq!(percent_decode(b"%00"), b"\0");
        assert_eq!(percent_decode(b"a+b"), b"a+b");
    }
}
