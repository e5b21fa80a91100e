//! Instants as Unix seconds: RFC 3339 (the trust root's `validFor`) and
//! X.509 validity, and how they print.

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only, as
/// the trust root writes them); `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let frac_ok = match rest.strip_prefix('.') {
        Some(f) => f
            .strip_suffix('Z')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())),
        None => rest == "Z",
    };
    if !frac_ok
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An X.509 time as Unix seconds.
pub fn of_x509(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// RFC 3339 of Unix seconds (for messages).
pub fn show(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => crate::error::rfc3339_secs(s),
        Err(_) => format!("{secs} (before 1970)"),
    }
}

/// A span of validity; open at either end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: Option<i64>,
    /// Inclusive end.
    pub end: Option<i64>,
}

impl Window {
    /// Whether `t` is inside.
    pub fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |t: Option<i64>| t.map_or("…".to_string(), show);
        write!(f, "{} to {}", side(self.start), side(self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_what_the_trust_root_writes() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2021-03-07T03:20:29Z"), Some(1_615_087_229));
        assert_eq!(
            parse_rfc3339("2022-12-31T23:59:59.999Z"),
            Some(1_672_531_199)
        );
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in [
            "",
            "2021-03-07",
            "2021-03-07T03:20:29",
            "2021-13-07T03:20:29Z",
            "2021-03-07T03:20:29+01:00",
            "2021-03-07T03:20:29.Z",
            "+021-03-07T03:20:29Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_are_inclusive_and_open_ended() {
        let w = Window {
            start: Some(10),
            end: Some(20),
        };
        assert!(w.contains(10) && w.contains(20) && !w.contains(9) && !w.contains(21));
        assert!(Window::default().contains(i64::MIN));
        assert_eq!(show(1_615_087_229), "2021-03-07T03:20:29Z");
    }
}
