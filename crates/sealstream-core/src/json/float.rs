//! Float text in Python `repr` form and ECMAScript `Number.prototype.toString` form.
//!
//! Both start from the shortest digit string that round-trips to the same
//! double (Rust's `{:e}` gives it, as Python's `repr` and JavaScript do) and
//! differ only in layout.

/// Shortest round-trip decimal digits of a finite, non-zero `|value|` and the
/// decimal point position: `value = 0.DIGITS × 10^decpt`.
fn shortest_digits(value: f64) -> (String, i32) {
    let text = format!("{:e}", value.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exponent + 1)
}

/// Python's `repr(float)` (`float_repr_style = 'short'`): `1.0`, `1e-07`,
/// `1e+16`, `-0.0`, `0.1`, `123456789.0`.
pub(crate) fn python_repr(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let (digits, decpt) = shortest_digits(value);
    let mut out = String::with_capacity(digits.len() + 8);
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
        out.push_str(&abs.to_string());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= ndigits {
        out.push_str(&digits);
        for _ in 0..(decpt - ndigits) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

/// ECMAScript `Number.prototype.toString()` for a finite double, as RFC 8785
/// requires: `1`, `1e-7`, `1e+21`, `0.000001`, `-0` → `0`.
pub(crate) fn ecmascript_string(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let (digits, n) = shortest_digits(value);
    let k = digits.len() as i32;
    let mut out = String::with_capacity(digits.len() + 8);
    if value.is_sign_negative() {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
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
        out.push_str(&digits);
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
}
