//! [`Amount`]: an unsigned 256-bit number of base units (wei, or a token's
//! smallest unit), the range of Solidity's `uint256`.

use std::fmt;
use std::str::FromStr;

use sealstream_core::error::ValidationError;

/// An amount in base units, `0 ..= 2^256 - 1`.
///
/// Parsed from a decimal string ([`Amount::parse_decimal`], also
/// [`FromStr`]) or a JSON-RPC hex quantity ([`Amount::parse_quantity`]);
/// displayed in decimal. Ordered numerically.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Amount([u64; 4]); // most significant limb first, so the derived order is numeric

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount([0; 4]);
    /// `2^256 - 1`.
    pub const MAX: Amount = Amount([u64::MAX; 4]);

    /// The amount of a 32-byte big-endian word (an ABI-encoded `uint256`).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Amount {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            *limb = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Amount(limbs)
    }

    /// The 32-byte big-endian word of this amount.
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self == Amount::ZERO
    }

    /// `self + other`, or `None` past `2^256 - 1`.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in (0..4).rev() {
            let (sum, c1) = self.0[i].overflowing_add(other.0[i]);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            out[i] = sum;
            carry = c1 || c2;
        }
        (!carry).then_some(Amount(out))
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        if other > self {
            return None;
        }
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in (0..4).rev() {
            let (d, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            out[i] = d;
            borrow = b1 || b2;
        }
        Some(Amount(out))
    }

    /// `self + other`, capped at `2^256 - 1`.
    pub fn saturating_add(self, other: Amount) -> Amount {
        self.checked_add(other).unwrap_or(Amount::MAX)
    }

    /// `self * 10 + digit`, or `None` past `2^256 - 1`.
    fn times_ten_plus(self, digit: u8) -> Option<Amount> {
        let mut out = [0u64; 4];
        let mut carry = u128::from(digit);
        for i in (0..4).rev() {
            let wide = u128::from(self.0[i]) * 10 + carry;
            out[i] = wide as u64; // the low 64 bits; the rest carries
            carry = wide >> 64;
        }
        (carry == 0).then_some(Amount(out))
    }

    /// `(self / divisor, self % divisor)` for a non-zero 64-bit divisor.
    fn div_rem_small(self, divisor: u64) -> (Amount, u64) {
        let mut out = [0u64; 4];
        let mut rem: u128 = 0;
        for (i, limb) in self.0.iter().enumerate() {
            let wide = (rem << 64) | u128::from(*limb);
            out[i] = (wide / u128::from(divisor)) as u64; // < 2^64 since rem < divisor
            rem = wide % u128::from(divisor);
        }
        (Amount(out), rem as u64)
    }

    /// Parses a decimal string of digits only (no sign, no spaces, no
    /// exponent), at most `2^256 - 1`. `field` names the input in errors.
    pub fn parse_decimal(text: &str, field: &str) -> Result<Amount, ValidationError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new(
                field,
                "expected a whole number of base units in decimal digits",
            ));
        }
        text.bytes()
            .try_fold(Amount::ZERO, |acc, b| acc.times_ten_plus(b - b'0'))
            .ok_or_else(|| ValidationError::new(field, "larger than 2^256 - 1"))
    }

    /// Parses a JSON-RPC quantity: `0x` and 1 to 64 significant hex digits
    /// (any case; leading zeros tolerated). `field` names the input in errors.
    pub fn parse_quantity(text: &str, field: &str) -> Result<Amount, ValidationError> {
        let digits = text
            .strip_prefix("0x")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ValidationError::new(field, "expected a hex quantity 0x…"))?;
        let significant = digits.trim_start_matches('0');
        if significant.len() > 64 {
            return Err(ValidationError::new(field, "larger than 2^256 - 1"));
        }
        let mut word = [0u8; 32];
        let padded = format!("{significant:0>64}");
        hex::decode_to_slice(padded, &mut word).expect("64 hex digits checked above");
        Ok(Amount::from_be_bytes(word))
    }
}

impl From<u64> for Amount {
    fn from(v: u64) -> Self {
        Amount([0, 0, 0, v])
    }
}

impl From<u128> for Amount {
    fn from(v: u128) -> Self {
        Amount([0, 0, (v >> 64) as u64, v as u64])
    }
}

impl FromStr for Amount {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse_decimal(s, "amount")
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Peel off 19 decimal digits at a time (10^19 is the largest power of
        // ten below 2^64): at most 5 groups for 78 digits.
        const TEN_19: u64 = 10_000_000_000_000_000_000;
        let mut groups = Vec::with_capacity(5);
        let mut rest = *self;
        loop {
            let (quotient, rem) = rest.div_rem_small(TEN_19);
            groups.push(rem);
            if quotient.is_zero() {
                break;
            }
            rest = quotient;
        }
        let mut out = String::with_capacity(groups.len() * 19);
        let mut iter = groups.iter().rev();
        if let Some(first) = iter.next() {
            out.push_str(&first.to_string());
        }
        for group in iter {
            out.push_str(&format!("{group:019}"));
        }
        f.pad(&out)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_borrows_across_limbs() {
        let big = Amount::parse_decimal("18446744073709551616", "a").unwrap(); // 2^64
        let one = Amount::from(1u64);
        assert_eq!(
            big.checked_sub(one).unwrap().to_string(),
            "18446744073709551615"
        );
        assert_eq!(one.checked_sub(big), None);
        assert_eq!(big.checked_sub(big), Some(Amount::ZERO));
    }

    const MAX_DECIMAL: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639935";

    #[test]
    fn decimal_round_trips_across_the_range() {
        for text in [
            "0",
            "1",
            "9",
            "10",
            "18446744073709551615",
            "18446744073709551616",
            "10000000000000000000",
            "9999999999999999999",
            "340282366920938463463374607431768211456",
            "1000000000000000000000000000000000000000000000000000000000000000000000000000",
            MAX_DECIMAL,
        ] {
            let amount = Amount::parse_decimal(text, "amount").unwrap();
            assert_eq!(amount.to_string(), text);
        }
        assert_eq!(
            Amount::parse_decimal(MAX_DECIMAL, "a").unwrap(),
            Amount::MAX
        );
        assert_eq!(
            Amount::parse_decimal("18446744073709551616", "a").unwrap(),
            Amount([0, 0, 1, 0])
        );
        assert_eq!(Amount::parse_decimal("007", "a").unwrap().to_string(), "7");
    }

    #[test]
    fn decimal_overflow_and_junk_are_refused_naming_the_field() {
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        let e = Amount::parse_decimal(over, "price.amount").unwrap_err();
        assert_eq!(e.field, "price.amount");
        assert!(e.constraint.contains("2^256"), "{e}");
        let far_over = format!("{MAX_DECIMAL}0");
        assert!(Amount::parse_decimal(&far_over, "a").is_err());
        for junk in ["", "-1", "+1", "1.5", "1e18", " 1", "1 ", "0x10", "١"] {
            let e = Amount::parse_decimal(junk, "amount").unwrap_err();
            assert_eq!(e.field, "amount", "{junk:?}");
        }
        assert!("12".parse::<Amount>().is_ok());
        assert_eq!("x".parse::<Amount>().unwrap_err().field, "amount");
    }

    #[test]
    fn quantities_parse_strictly() {
        assert_eq!(Amount::parse_quantity("0x0", "v").unwrap(), Amount::ZERO);
        assert_eq!(
            Amount::parse_quantity("0x1000", "v").unwrap(),
            Amount::from(4096u64)
        );
        assert_eq!(
            Amount::parse_quantity("0xDE0B6B3A7640000", "v")
                .unwrap()
                .to_string(),
            "1000000000000000000"
        );
        let max = format!("0x{}", "f".repeat(64));
        assert_eq!(Amount::parse_quantity(&max, "v").unwrap(), Amount::MAX);
        let padded = format!("0x000{}", "f".repeat(64));
        assert_eq!(Amount::parse_quantity(&padded, "v").unwrap(), Amount::MAX);
        let over = format!("0x1{}", "0".repeat(64));
        assert!(Amount::parse_quantity(&over, "v")
            .unwrap_err()
            .constraint
            .contains("2^256"));
        for junk in ["", "0x", "1000", "0X10", "0xg", "0x 1", "-0x1"] {
            assert_eq!(
                Amount::parse_quantity(junk, "tx.value").unwrap_err().field,
                "tx.value",
                "{junk:?}"
            );
        }
    }

    #[test]
    fn order_is_numeric() {
        let small = Amount::from(u64::MAX);
        let big = Amount::from(u128::from(u64::MAX) + 1);
        assert!(small < big);
        assert!(Amount::ZERO < small);
        assert!(big < Amount::MAX);
        let a = Amount::parse_decimal("500000", "a").unwrap();
        let b = Amount::parse_decimal("499999", "a").unwrap();
        assert!(b < a);
        assert_eq!(a.max(b), a);
    }

    #[test]
    fn addition_carries_and_detects_overflow() {
        let a = Amount::from(u64::MAX);
        assert_eq!(
            a.checked_add(Amount::from(1u64)).unwrap(),
            Amount([0, 0, 1, 0])
        );
        assert_eq!(Amount::MAX.checked_add(Amount::from(1u64)), None);
        assert_eq!(Amount::MAX.saturating_add(Amount::MAX), Amount::MAX);
        assert_eq!(Amount::MAX.checked_add(Amount::ZERO), Some(Amount::MAX));
    }

    #[test]
    fn be_bytes_round_trip() {
        let mut word = [0u8; 32];
        word[31] = 0x40;
        word[0] = 0x01;
        let amount = Amount::from_be_bytes(word);
        assert_eq!(amount.to_be_bytes(), word);
        assert_eq!(Amount::from(0x1234u64).to_be_bytes()[30..], [0x12, 0x34]);
    }

    #[test]
    fn display_pads_like_a_string() {
        assert_eq!(format!("{:>5}", Amount::from(42u64)), "   42");
        assert_eq!(format!("{:?}", Amount::from(42u64)), "Amount(42)");
    }
}
