//! UTC times as the API writes them: `YYYY-MM-DDTHH:MM:SSZ`.

/// Unix seconds of `text`, an RFC 3339 UTC time with whole seconds
/// (`2026-01-02T03:04:05Z`); `None` for any other form.
pub fn parse_utc_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if !text.is_ascii()
        || b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = &text[from..to];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds (the epoch for negative ones).
pub fn format_utc(secs: i64) -> String {
    sealstream_core::chunk::format_utc_seconds(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_core_formatter() {
        for secs in [
            0i64,
            59,
            86_399,
            86_400,
            951_782_400,   // 2000-02-29
            1_709_164_800, // 2024-02-29
            1_767_323_045,
            4_102_444_799, // 2099-12-31T23:59:59Z
        ] {
            let text = format_utc(secs);
            assert_eq!(parse_utc_seconds(&text), Some(secs), "{text}");
        }
        assert_eq!(parse_utc_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc_seconds("2026-01-02T03:04:05Z"),
            Some(1_767_323_045)
        );
    }

    #[test]
    fn refuses_other_forms_and_impossible_dates() {
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02T03:04:05.5Z",
            "2026-01-02 03:04:05Z",
            "2026-13-02T03:04:05Z",
            "2026-02-29T03:04:05Z",
            "2026-04-31T03:04:05Z",
            "2026-01-00T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:60:00Z",
            "2026-01-02T03:04:60Z",
            "+026-01-02T03:04:05Z",
            "2026-01-02T03:04:0€",
        ] {
            assert_eq!(parse_utc_seconds(bad), None, "{bad}");
        }
    }
}
