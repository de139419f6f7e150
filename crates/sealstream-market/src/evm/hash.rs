//! [`TxHash`]: a transaction hash, and the 32-byte hex words of the JSON-RPC
//! wire format.

use std::fmt;
use std::str::FromStr;

use sealstream_core::error::ValidationError;

/// A 32-byte transaction hash: `0x` and 64 hex digits (any case) in,
/// lower-case hex out.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxHash(pub [u8; 32]);

impl TxHash {
    /// Parses `0x` + 64 hex digits, any case. `field` names the input in
    /// errors.
    pub fn parse(text: &str, field: &str) -> Result<TxHash, ValidationError> {
        parse_word(text, field).map(TxHash)
    }
}

/// Parses `0x` + 64 hex digits (any case) into 32 bytes.
pub(crate) fn parse_word(text: &str, field: &str) -> Result<[u8; 32], ValidationError> {
    let refuse = || ValidationError::new(field, "expected 0x followed by 64 hex digits");
    let body = text.strip_prefix("0x").ok_or_else(refuse)?;
    if body.len() != 64 {
        return Err(refuse());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(body, &mut out).map_err(|_| refuse())?;
    Ok(out)
}

/// `0x` + lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    sealstream_core::keys::hex_with_prefix("0x", bytes)
}

impl FromStr for TxHash {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TxHash::parse(s, "txHash")
    }
}

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_displays_lower_case() {
        let upper = "0x68FC95A06DCBA2C2FD9C9E7C56CE2DBCE329A465425D8D5D1BAEAF8B00550790";
        let hash = TxHash::parse(upper, "txHash").unwrap();
        assert_eq!(hash.to_string(), upper.to_lowercase().replace("0X", "0x"));
        assert_eq!(hash.0[0], 0x68);
        assert_eq!(hash.0[31], 0x90);
        assert_eq!(hash, hash.to_string().parse().unwrap());
        assert!(format!("{hash:?}").starts_with("TxHash(0x68fc"));
    }

    #[test]
    fn refuses_other_shapes_naming_the_field() {
        let good = "68fc95a06dcba2c2fd9c9e7c56ce2dbce329a465425d8d5d1baeaf8b00550790";
        for bad in [
            good.to_string(),
            format!("0X{good}"),
            format!("0x{}", &good[..63]),
            format!("0x{good}0"),
            format!("0x{}g", &good[..63]),
            format!(" 0x{good}"),
            String::new(),
        ] {
            let e = TxHash::parse(&bad, "proof.txHash").unwrap_err();
            assert_eq!(e.field, "proof.txHash", "{bad:?}");
        }
        assert_eq!("0x12".parse::<TxHash>().unwrap_err().field, "txHash");
    }
}
