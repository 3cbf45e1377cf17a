//! The file name an item is published and downloaded under.

use std::fmt;

/// A validated file name: non-empty, not `.` or `..`, no `/`, no control characters, at most
/// [`Basename::MAX_LEN`] bytes.
///
/// The store names a published file `<hash>-<basename>`, so the bound keeps that under the usual
/// 255-byte file-name limit (64 + 1 + 180 = 245).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Basename(String);

/// Why a string is not a usable basename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidBasename {
    /// The name is empty.
    Empty,
    /// The name is `.` or `..`.
    Dots,
    /// The name contains `/`.
    Slash,
    /// The name contains a control character (including NUL).
    Control,
    /// The name is longer than [`Basename::MAX_LEN`] bytes.
    TooLong,
}

impl fmt::Display for InvalidBasename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "basename is empty",
            Self::Dots => "basename cannot be . or ..",
            Self::Slash => "basename cannot contain /",
            Self::Control => "basename cannot contain control characters",
            Self::TooLong => "basename is longer than 180 bytes",
        })
    }
}

impl std::error::Error for InvalidBasename {}

impl Basename {
    /// The longest accepted name, in bytes.
    pub const MAX_LEN: usize = 180;

    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidBasename> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidBasename::Empty);
        }
        if name == "." || name == ".." {
            return Err(InvalidBasename::Dots);
        }
        if name.contains('/') {
            return Err(InvalidBasename::Slash);
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidBasename::Control);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidBasename::TooLong);
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Basename {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Basename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Basename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "firmware.xml.gz",
            "HELLO.md",
            "a b",
            "ünïcode",
            ".hidden",
            "...",
            "a-b",
        ] {
            assert_eq!(Basename::new(ok).unwrap().as_str(), ok);
        }
        assert!(Basename::new("x".repeat(180)).is_ok());
    }

    #[test]
    fn refuses_each_bad_shape() {
        assert_eq!(Basename::new(""), Err(InvalidBasename::Empty));
        assert_eq!(Basename::new("."), Err(InvalidBasename::Dots));
        assert_eq!(Basename::new(".."), Err(InvalidBasename::Dots));
        assert_eq!(Basename::new("a/b"), Err(InvalidBasename::Slash));
        assert_eq!(Basename::new("/"), Err(InvalidBasename::Slash));
        assert_eq!(Basename::new("a\nb"), Err(InvalidBasename::Control));
        assert_eq!(Basename::new("a\0"), Err(InvalidBasename::Control));
        assert_eq!(Basename::new("a\u{7f}"), Err(InvalidBasename::Control));
        assert_eq!(
            Basename::new("x".repeat(181)),
            Err(InvalidBasename::TooLong)
        );
    }
}
