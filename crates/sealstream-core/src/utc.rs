//! UTC date-times as sealstream writes and reads them.
//!
//! The formats and the market write whole seconds, `2026-12-04T21:50:11Z`
//! ([`format_seconds`], [`parse_seconds`]); capture times carry a fraction,
//! `2026-11-21T10:00:01.123Z` or `…01.123456789Z` ([`format_nanos`]); sign-in
//! messages carry any RFC 3339 date-time, with a fraction and an offset
//! ([`parse_rfc3339`]). The calendar is the proleptic Gregorian one; there are
//! no leap seconds (days have 86,400 seconds).
//!
//! This is the one place of the workspace that turns dates into seconds and
//! back.

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Seconds since the Unix epoch by the wall clock (0 for a clock set before
/// 1970).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Nanoseconds since the Unix epoch by the wall clock (0 for a clock set
/// before 1970).
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now() -> String {
    format_seconds(now_unix())
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `unix` seconds since the epoch. Years outside
/// 0000–9999 are written with more digits (and a sign before year 0), which
/// [`parse_seconds`] refuses.
pub fn format_seconds(unix: i64) -> String {
    let mut text = [0u8; 20];
    if write_seconds(&mut text, unix) {
        return ascii(&text);
    }
    let (year, month, day) = civil_from_days(unix.div_euclid(DAY));
    let rem = unix.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `unix` into `text`, digit by digit (the agent
/// stamps every message: `format!` showed in its profile); `false`, and
/// `text` unspecified, when the year does not have four digits.
fn write_seconds(text: &mut [u8; 20], unix: i64) -> bool {
    let (year, month, day) = civil_from_days(unix.div_euclid(DAY));
    let Ok(year) = u64::try_from(year) else {
        return false;
    };
    if year > 9999 {
        return false;
    }
    let rem = unix.rem_euclid(DAY).unsigned_abs();
    *text = *b"0000-00-00T00:00:00Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month.unsigned_abs());
    put_digits(&mut text[8..10], day.unsigned_abs());
    put_digits(&mut text[11..13], rem / 3600);
    put_digits(&mut text[14..16], rem % 3600 / 60);
    put_digits(&mut text[17..19], rem % 60);
    true
}

/// `value`'s last `digits.len()` decimal digits into `digits`, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// ASCII bytes as a `String`.
fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How many digits of the second [`format_nanos`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// Three (milliseconds), truncated, not rounded.
    Millis,
    /// Nine (nanoseconds).
    Nanos,
}

/// `unix_nanos` (nanoseconds since the epoch) as
/// `YYYY-MM-DDTHH:MM:SS.fffZ` ([`Fraction::Millis`]) or
/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ` ([`Fraction::Nanos`]).
pub fn format_nanos(unix_nanos: u64, fraction: Fraction) -> String {
    // u64 nanoseconds end in the year 2554: the seconds fit an i64.
    let secs = (unix_nanos / 1_000_000_000) as i64;
    let nanos = unix_nanos % 1_000_000_000;
    let (digits, value) = match fraction {
        Fraction::Nanos => (9, nanos),
        Fraction::Millis => (3, nanos / 1_000_000),
    };
    let mut fraction_text = [0u8; 9];
    put_digits(&mut fraction_text[..digits], value);
    let whole = format_seconds(secs);
    let mut text = String::with_capacity(whole.len() + 1 + digits);
    text.push_str(&whole[..whole.len() - 1]);
    text.push('.');
    text.extend(fraction_text[..digits].iter().map(|&b| char::from(b)));
    text.push('Z');
    text
}

/// Seconds since the epoch of `text` in exactly the form [`format_seconds`]
/// writes, `YYYY-MM-DDTHH:MM:SSZ` (a real date, seconds 00–59); `None` for
/// anything else (other offsets, fractions, lower case, a space).
pub fn parse_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let (days, secs, second) = date_and_time(b)?;
    (second < 60).then_some(days * DAY + secs)
}

/// Seconds since the epoch of an RFC 3339 `date-time`
/// (`2021-09-30T16:25:24Z`, `2021-09-30t16:25:24.123+02:00`), a fraction of
/// a second dropped; `None` when `text` is not one. A leap second (`:60`)
/// counts as the first second of the next minute.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let (days, secs, _) = date_and_time(b)?;
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(days * DAY + secs - offset)
}

/// Days since the epoch, seconds into the day and the second of the first
/// 19 bytes of `b`, `YYYY-MM-DD?HH:MM:SS` (the separator at 10 is the
/// caller's to check). The second may be 60 (RFC 3339's leap second): the
/// caller decides.
fn date_and_time(b: &[u8]) -> Option<(i64, i64, i64)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs = hour * 3600 + minute * 60 + second;
    Some((days_from_civil(year, month, day), secs, second))
}

/// The number written by `ascii` (decimal digits only), or `None`.
fn digits(ascii: &[u8]) -> Option<i64> {
    ascii.iter().try_fold(0i64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants with a
    /// four-digit year.
    const FIRST: i64 = -62_167_219_200;
    const LAST: i64 = 253_402_300_799;

    #[test]
    fn wire_forms() {
        assert_eq!(format_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_seconds(1_795_282_537), "2026-11-21T17:35:37Z");
        assert_eq!(format_seconds(1_796_421_011), "2026-12-04T21:50:11Z");
        assert_eq!(format_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_seconds(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_seconds(FIRST), "0000-01-01T00:00:00Z");
        assert_eq!(format_seconds(LAST), "9999-12-31T23:59:59Z");
        assert_eq!(format_seconds(FIRST - 1), "-001-12-31T23:59:59Z");
        assert_eq!(format_seconds(LAST + 1), "10000-01-01T00:00:00Z");
        let t = 1_795_282_537_123_456_789;
        assert_eq!(
            format_nanos(t, Fraction::Nanos),
            "2026-11-21T17:35:37.123456789Z"
        );
        assert_eq!(
            format_nanos(t, Fraction::Millis),
            "2026-11-21T17:35:37.123Z"
        );
        assert_eq!(
            format_nanos(5, Fraction::Nanos),
            "1970-01-01T00:00:00.000000005Z"
        );
        assert_eq!(
            format_nanos(999_999_999, Fraction::Millis),
            "1970-01-01T00:00:00.999Z"
        );
    }

    #[test]
    fn strict_form_only() {
        assert_eq!(parse_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_seconds("2026-01-02T03:04:05Z"), Some(1_767_323_045));
        assert_eq!(parse_seconds("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T03:04:05.5Z",
            "2026-01-02 03:04:05Z",
            "2026-01-02t03:04:05Z",
            "2026-01-02T03:04:05z",
            "2026-13-02T03:04:05Z",
            "2026-00-02T03:04:05Z",
            "2026-02-29T03:04:05Z",
            "1900-02-29T03:04:05Z",
            "2026-04-31T03:04:05Z",
            "2026-01-00T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:60:00Z",
            "2026-01-02T03:04:60Z",
            "+026-01-02T03:04:05Z",
            "2026-01-02T03:04:0€",
            "1700000000",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_edges() {
        let t = parse_rfc3339;
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("1970-01-01t00:00:00z"), Some(0));
        assert_eq!(t("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(t("1969-12-31T23:00:00-01:00"), Some(0));
        assert_eq!(t("1970-01-01T00:00:00.999999999999Z"), Some(0));
        assert_eq!(t("1970-01-01T00:00:60Z"), Some(60));
        assert_eq!(t("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(t("1900-02-29T00:00:00Z"), None);
        assert_eq!(t("2021-13-01T00:00:00Z"), None);
        assert_eq!(t("2021-01-01T24:00:00Z"), None);
        assert_eq!(t("2021-01-01T00:00:61Z"), None);
        assert_eq!(t("2021-01-01T00:00:00.Z"), None);
        assert_eq!(t("2021-01-01T00:00:00+1:00"), None);
        assert_eq!(t("2021-01-01T00:00:00+24:00"), None);
        assert_eq!(t("2021-01-01T00:00:00+01:60"), None);
        assert_eq!(t("2021-01-01T00:00:00+0100"), None);
        assert_eq!(t("2021-01-01 00:00:00Z"), None);
        assert_eq!(t("2021-01-01T00:00:00"), None);
    }

    /// The date after `(y, m, d)`, counted the long way.
    fn next_day((y, m, d): (i64, i64, i64)) -> (i64, i64, i64) {
        if d < days_in_month(y, m) {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        }
    }

    proptest! {
        #[test]
        fn days_count_one_date_at_a_time(days in -1_000_000i64..3_000_000) {
            let date = civil_from_days(days);
            prop_assert_eq!(days_from_civil(date.0, date.1, date.2), days);
            prop_assert_eq!(civil_from_days(days + 1), next_day(date));
        }

        #[test]
        fn seconds_round_trip(unix in FIRST..=LAST) {
            let text = format_seconds(unix);
            prop_assert_eq!(text.len(), 20);
            prop_assert_eq!(parse_seconds(&text), Some(unix));
            prop_assert_eq!(parse_rfc3339(&text), Some(unix));
        }

        #[test]
        fn strict_text_round_trips(
            year in 0i64..=9999,
            month in 1i64..=12,
            day in 1i64..=31,
            hour in 0i64..24,
            minute in 0i64..60,
            second in 0i64..60,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            match parse_seconds(&text) {
                Some(unix) => prop_assert_eq!(format_seconds(unix), text),
                None => prop_assert!(day > days_in_month(year, month), "{}", text),
            }
        }

        #[test]
        fn fractions_keep_the_second_and_truncate(unix_nanos in any::<u64>()) {
            let secs = (unix_nanos / 1_000_000_000) as i64;
            let whole = format_seconds(secs);
            let nanos = format_nanos(unix_nanos, Fraction::Nanos);
            let millis = format_nanos(unix_nanos, Fraction::Millis);
            prop_assert_eq!(&nanos[..19], &whole[..19]);
            prop_assert_eq!(&millis[..23], &nanos[..23]);
            prop_assert_eq!(nanos.len(), 30);
            prop_assert_eq!(millis.len(), 24);
            prop_assert_eq!(nanos[20..29].parse::<u64>().unwrap(), unix_nanos % 1_000_000_000);
            prop_assert_eq!(parse_rfc3339(&nanos), Some(secs));
            prop_assert_eq!(parse_rfc3339(&millis), Some(secs));
        }

        #[test]
        fn offsets_shift_to_utc(
            unix in 0i64..4_102_444_800,
            plus in any::<bool>(),
            hours in 0i64..24,
            minutes in 0i64..60,
        ) {
            let offset = (hours * 3600 + minutes * 60) * if plus { 1 } else { -1 };
            let local = format_seconds(unix + offset);
            let sign = if plus { '+' } else { '-' };
            let text = format!("{}{sign}{hours:02}:{minutes:02}", &local[..19]);
            prop_assert_eq!(parse_rfc3339(&text), Some(unix));
            prop_assert_eq!(parse_seconds(&text), None);
        }
    }
}
