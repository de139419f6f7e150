//! EVM transactions, shared by the CLI (a buyer paying) and the market
//! (its escrow jobs releasing and resolving): [`transaction`] (EIP-155
//! legacy or EIP-1559, signed with a secp256k1 key), RLP-encoded by
//! [`rlp`], with 256-bit values as [`Uint256`]; the escrow contract's
//! call data ([`escrow`]).

pub mod escrow;
pub mod rlp;
pub mod transaction;

use std::fmt;
/// An unsigned 256-bit number (wei, token base units) as 32 big-endian
/// bytes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Uint256(pub [u8; 32]);

impl Uint256 {
    /// A decimal integer (`"250000000000000000"`); `None` when it is not
    /// one or exceeds `2^256 - 1`.
    pub fn from_decimal(text: &str) -> Option<Uint256> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for digit in text.bytes().map(|b| b - b'0') {
            let mut carry = u16::from(digit);
            for byte in out.iter_mut().rev() {
                let wide = u16::from(*byte) * 10 + carry;
                *byte = wide as u8; // the low byte; the rest carries
                carry = wide >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(Uint256(out))
    }

    /// A number that fits 128 bits.
    pub fn from_u128(n: u128) -> Uint256 {
        let mut out = [0u8; 32];
        out[16..].copy_from_slice(&n.to_be_bytes());
        Uint256(out)
    }

    /// The JSON-RPC quantity: `0x` and hex digits without leading zeros
    /// (`0x0` for zero).
    pub fn to_quantity(&self) -> String {
        let hex = hex::encode(self.0);
        let digits = hex.trim_start_matches('0');
        format!("0x{}", if digits.is_empty() { "0" } else { digits })
    }
}

impl fmt::Debug for Uint256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uint256({})", self.to_quantity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_words() {
        assert_eq!(Uint256::from_decimal("0"), Some(Uint256::default()));
        assert_eq!(
            Uint256::from_decimal("1000000000000000000"),
            Some(Uint256::from_u128(1_000_000_000_000_000_000))
        );
        assert_eq!(
            Uint256::from_decimal("1000000000000000000")
                .unwrap()
                .to_quantity(),
            "0xde0b6b3a7640000"
        );
        assert_eq!(Uint256::default().to_quantity(), "0x0");
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(Uint256::from_decimal(max), Some(Uint256([0xff; 32])));
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(Uint256::from_decimal(over), None);
        for bad in ["", "-1", "1.5", "0x10", " 1"] {
            assert_eq!(Uint256::from_decimal(bad), None, "{bad:?}");
        }
    }
}
