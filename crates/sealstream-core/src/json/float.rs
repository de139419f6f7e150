//! Float text in Python `repr` form and ECMAScript `Number.prototype.toString` form.
//!
//! Both start from the shortest digit string that round-trips to the same
//! double (Rust's `{:e}` gives it, as Python's `repr` and JavaScript do) and
//! differ only in layout.

/// The shortest decimal digits that round-trip to a double (at most 17),
/// on the stack.
struct Digits {
    buf: [u8; 17],
    len: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

/// Shortest round-trip decimal digits of a finite, non-zero `|value|` and the
/// decimal point position: `value = 0.DIGITS × 10^decpt`.
///
/// The digits are Ryū's (the `ryu` crate), which picks, like Python's `repr`
/// and JavaScript, the shortest digit string that reads back as the same
/// double and, among those, the closest; only its layout is taken apart here.
fn shortest_digits(value: f64) -> (Digits, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value.abs());
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = Digits {
        buf: [0; 17],
        len: 0,
    };
    let mut decpt = int_part.len() as i32 + exponent;
    let mut leading = true;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        if leading && b == b'0' {
            decpt -= 1;
            continue;
        }
        leading = false;
        if digits.len < digits.buf.len() {
            digits.buf[digits.len] = b;
            digits.len += 1;
        }
    }
    while digits.len > 1 && digits.buf[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (digits, decpt)
}

/// Python's `repr(float)` (`float_repr_style = 'short'`) appended to `out`:
/// `1.0`, `1e-07`, `1e+16`, `-0.0`, `0.1`, `123456789.0`.
pub(crate) fn push_python_repr(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return;
    }
    let (digits, decpt) = shortest_digits(value);
    let digits = digits.as_str();
    if value.is_sign_negative() {
        out.push('-');
    }
    let ndigits = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if ndigits > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp = decpt - 1;
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        push_u32(out, abs);
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(digits);
    } else if decpt >= ndigits {
        out.push_str(digits);
        for _ in 0..(decpt - ndigits) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
}

/// `n` in decimal, appended without a temporary string.
fn push_u32(out: &mut String, n: u32) {
    out.push_str(super::decimal(u64::from(n), &mut [0; 20]));
}

/// ECMAScript `Number.prototype.toString()` for a finite double, as RFC 8785
/// requires: `1`, `1e-7`, `1e+21`, `0.000001`, `-0` → `0`.
pub(crate) fn ecmascript_string(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let (digits, n) = shortest_digits(value);
    let digits = digits.as_str();
    let k = digits.len() as i32;
    let mut out = String::with_capacity(digits.len() + 8);
    if value.is_sign_negative() {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in 0..(-n) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.unsigned_abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_repr(value: f64) -> String {
        let mut out = String::new();
        push_python_repr(&mut out, value);
        out
    }

    #[test]
    fn python_repr_matches_cpython() {
        let cases = [
            (1.0, "1.0"),
            (1e-07, "1e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (123456789.0, "123456789.0"),
            (52.520008, "52.520008"),
            (-73.9857, "-73.9857"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_repr(value), expected, "{value:e}");
        }
        // A tie between two 17-digit strings (-1129515015285072.25):
        // CPython rounds to even, as Ryū does; Rust's `{:e}` rounds up.
        assert_eq!(
            python_repr(f64::from_bits(14_055_748_897_457_087_809)),
            "-1129515015285072.2"
        );
    }

    #[test]
    fn ecmascript_matches_v8() {
        let cases = [
            (1.0, "1"),
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (-0.0, "0"),
            (1.5, "1.5"),
            (123e-20, "1.23e-18"),
            (12345678901234567890.0, "12345678901234567000"),
        ];
        for (value, expected) in cases {
            assert_eq!(ecmascript_string(value), expected, "{value:e}");
        }
    }

    /// The digits as Rust's own formatter gives them (`{:e}`, also shortest
    /// and closest): what this module used before Ryū.
    fn fmt_digits(value: f64) -> (String, i32) {
        let text = format!("{:e}", value.abs());
        let (mantissa, exponent) = text.split_once('e').unwrap();
        let exponent: i32 = exponent.parse().unwrap();
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        (digits, exponent + 1)
    }

    proptest::proptest! {
        /// As short as the formatter's, and reading back as the same double;
        /// where the two differ (a tie between two closest 17-digit strings,
        /// which Rust's formatter rounds up and Python and Ryū to even), in
        /// the last digit only.
        #[test]
        fn ryu_digits_are_shortest_and_round_trip(
            value in proptest::num::f64::POSITIVE
                | proptest::num::f64::NEGATIVE
                | proptest::num::f64::NORMAL
                | proptest::num::f64::SUBNORMAL
        ) {
            let (digits, decpt) = shortest_digits(value);
            let digits = digits.as_str().to_string();
            let back: f64 = format!("0.{digits}e{decpt}").parse().unwrap();
            proptest::prop_assert_eq!(back, value.abs());
            let (theirs, their_decpt) = fmt_digits(value);
            proptest::prop_assert_eq!(digits.len(), theirs.len());
            proptest::prop_assert_eq!(decpt, their_decpt);
            proptest::prop_assert_eq!(&digits[..digits.len() - 1], &theirs[..theirs.len() - 1]);
        }

        #[test]
        fn ryu_digits_of_short_decimals(int in -100_000_000i64..100_000_000, scale in 0u32..12) {
            let value = int as f64 / 10f64.powi(scale as i32);
            proptest::prop_assume!(value != 0.0);
            let (digits, decpt) = shortest_digits(value);
            proptest::prop_assert_eq!((digits.as_str().to_string(), decpt), fmt_digits(value));
        }
    }
}
