//! ISO-8601 durations as Kestra (Java's `Duration.parse`) writes them:
//! `PT1S`, `PT0.250S`, `PT15M`, `P1DT2H`, `pt1m` (case-insensitive).
//!
//! Days are 24 hours. Years, months and weeks are rejected, as Java rejects
//! them. Negative durations are rejected: no flow property needs one.

use std::time::Duration;

/// Parses an ISO-8601 duration; `None` when the text is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut nanos: u128 = 0;
    if !date.is_empty() {
        let days = date.strip_suffix('D')?;
        nanos += parse_whole(days)? * 86_400 * 1_000_000_000;
    }
    if let Some(mut t) = time {
        // Units must come in order H, M, S, each at most once.
        for (unit, scale) in [('H', 3_600u128), ('M', 60), ('S', 1)] {
            let Some(idx) = t.find(unit) else { continue };
            let number = &t[..idx];
            t = &t[idx + 1..];
            nanos += if unit == 'S' {
                parse_seconds(number)?
            } else {
                parse_whole(number)? * scale * 1_000_000_000
            };
        }
        if !t.is_empty() {
            return None;
        }
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(secs, sub))
}

fn parse_whole(digits: &str) -> Option<u128> {
    let digits = digits.strip_prefix('+').unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 18 {
        return None;
    }
    digits.parse().ok()
}

/// Seconds with up to nine fraction digits, in nanoseconds.
fn parse_seconds(text: &str) -> Option<u128> {
    let (whole, fraction) = match text.split_once(['.', ',']) {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let secs = parse_whole(whole)?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_nanos: u128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(secs * 1_000_000_000 + frac_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kestra_spellings() {
        assert_eq!(parse_duration("PT1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("PT0.250S"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("PT0.100S"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("PT60M"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("P1DT1S"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_duration("P2D"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("pt1m"), Some(Duration::from_secs(60)));
    }

    #[test]
    fn rejects_non_durations() {
        for bad in [
            "",
            "P",
            "PT",
            "1S",
            "PT1",
            "PT1X",
            "P1M",
            "P1W",
            "PT1S1M",
            "PT-1S",
            "PT1.5M",
            "PT1.1234567891S",
            "PTS",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
