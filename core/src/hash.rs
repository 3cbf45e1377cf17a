//! SHA-256 digests as passim names items by them.

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest. Parsed from 64 hex characters (either case), shown as lower-case hex.
///
/// Keeping the digest as bytes, not text, means two spellings of one hash can never name two
/// different items: the C version accepted upper-case hex and then never found the item.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

/// Why a string is not a SHA-256 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedHash;

impl fmt::Display for MalformedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256 hash is malformed")
    }
}

impl std::error::Error for MalformedHash {}

impl Sha256 {
    /// Length of the hex form.
    pub const HEX_LEN: usize = 64;

    /// How many hex characters of the hash an mDNS subtype label carries: a DNS label holds at
    /// most 63 bytes and the label is `_` + prefix.
    pub const SUBTYPE_HEX_LEN: usize = 60;

    /// Wraps raw digest bytes, e.g. the output of a hasher.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex characters, accepting upper and lower case.
    pub fn parse_hex(s: &str) -> Result<Self, MalformedHash> {
        let s = s.as_bytes();
        if s.len() != Self::HEX_LEN {
            return Err(MalformedHash);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Ok(Self(out))
    }

    /// The lower-case hex form, 64 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The first [`Self::SUBTYPE_HEX_LEN`] hex characters: what mDNS advertises and what a
    /// failed lookup reports.
    pub fn prefix_hex(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(Self::SUBTYPE_HEX_LEN);
        hex
    }
}

fn hex_value(c: u8) -> Result<u8, MalformedHash> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(MalformedHash),
    }
}

impl FromStr for Sha256 {
    type Err = MalformedHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_hex(s)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    #[test]
    fn round_trips_lower_case() {
        let h: Sha256 = HELLO.parse().unwrap();
        assert_eq!(h.to_hex(), HELLO);
        assert_eq!(h.as_bytes()[0], 0xa9);
    }

    #[test]
    fn upper_case_is_normalised() {
        let h: Sha256 = HELLO.to_uppercase().parse().unwrap();
        assert_eq!(h.to_hex(), HELLO);
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert_eq!(Sha256::parse_hex(&HELLO[..63]), Err(MalformedHash));
        assert_eq!(Sha256::parse_hex(&format!("{HELLO}0")), Err(MalformedHash));
        assert_eq!(
            Sha256::parse_hex(&HELLO.replace('a', "g")),
            Err(MalformedHash)
        );
        assert_eq!(Sha256::parse_hex(""), Err(MalformedHash));
        // A multi-byte character must not be mistaken for two hex digits.
        let odd = format!("é{}", &HELLO[2..]);
        assert_eq!(Sha256::parse_hex(&odd), Err(MalformedHash));
    }

    #[test]
    fn prefix_is_sixty_characters() {
        let h: Sha256 = HELLO.parse().unwrap();
        assert_eq!(h.prefix_hex(), &HELLO[..60]);
    }
}
