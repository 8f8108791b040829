//! A Schedule trigger's dates: its cron expression read as Kestra reads it
//! (`Schedule.CRON_DEFINITION_BUILDER`: five fields, six `withSeconds`,
//! day of week 0-7 with 0 and 7 Sunday, the `@hourly`-style nicknames), in
//! its time zone.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Kestra's nicknames; croner knows all but `@midnight`.
const NICKNAMES: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// When a Schedule fires: each date its cron matches, in its zone.
#[derive(Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// `cron` as Kestra reads it (six fields when `with_seconds`), in the
    /// IANA zone `timezone` (UTC when `None`); why not, if not.
    pub fn parse(cron: &str, with_seconds: bool, timezone: Option<&str>) -> Result<Self, String> {
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| format!("`{name}` is not an IANA time zone (e.g. Europe/Paris)"))?,
        };
        let text = cron.trim();
        let text = if text.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            text
        };
        if text.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(text)) {
                return Err(format!(
                    "unknown nickname (one of {})",
                    NICKNAMES.join(", ")
                ));
            }
        } else {
            let fields = text.split_whitespace().count();
            let expected = if with_seconds { 6 } else { 5 };
            if fields != expected {
                let hint = if fields == 6 && !with_seconds {
                    " (six fields need `withSeconds: true`)"
                } else {
                    ""
                };
                return Err(format!("expected {expected} fields, found {fields}{hint}"));
            }
        }
        let seconds = if with_seconds {
            Seconds::Required
        } else {
            Seconds::Disallowed
        };
        let cron = CronParser::builder()
            .seconds(seconds)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| e.to_string())?;
        Ok(Self { cron, zone })
    }

    /// The zone its dates are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first date it matches strictly after `t`, if any (within the
    /// years croner searches).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last date it matches strictly before `t`, if any.
    pub fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last date it matches at `t` or before.
    pub fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// `t` as Kestra writes a schedule date in the trigger's variables: ISO
    /// 8601 in the trigger's zone, with its offset.
    pub fn format(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
            .replace("+00:00", "Z")
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("cron", &self.cron.pattern.to_string())
            .field("zone", &self.zone)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn five_fields_by_default_six_with_seconds_and_the_nicknames() {
        let every_15 = CronSchedule::parse("*/15 * * * *", false, None).unwrap();
        assert_eq!(
            every_15.next_after(at("2026-12-03T10:07:30Z")),
            Some(at("2026-12-03T10:15:00Z"))
        );
        assert_eq!(
            every_15.next_after(at("2026-12-03T10:15:00Z")),
            Some(at("2026-12-03T10:30:00Z")),
            "strictly after"
        );
        assert_eq!(
            every_15.previous_before(at("2026-12-03T10:15:00Z")),
            Some(at("2026-12-03T10:00:00Z"))
        );
        assert_eq!(
            every_15.at_or_before(at("2026-12-03T10:15:00Z")),
            Some(at("2026-12-03T10:15:00Z"))
        );
        let every_2s = CronSchedule::parse("*/2 * * * * *", true, None).unwrap();
        assert_eq!(
            every_2s.next_after(at("2026-12-03T10:00:01Z")),
            Some(at("2026-12-03T10:00:02Z"))
        );
        for (nickname, after, next) in [
            ("@hourly", "2026-12-03T10:07:00Z", "2026-12-03T11:00:00Z"),
            ("@midnight", "2026-12-03T10:07:00Z", "2026-12-04T00:00:00Z"),
            ("@daily", "2026-12-03T10:07:00Z", "2026-12-04T00:00:00Z"),
            ("@monthly", "2026-12-03T10:07:00Z", "2027-01-01T00:00:00Z"),
            // 2026-12-06 is a Sunday.
            ("@weekly", "2026-12-03T10:07:00Z", "2026-12-06T00:00:00Z"),
            ("@yearly", "2026-12-03T10:07:00Z", "2027-01-01T00:00:00Z"),
        ] {
            let s = CronSchedule::parse(nickname, false, None).unwrap();
            assert_eq!(s.next_after(at(after)), Some(at(next)), "{nickname}");
        }
    }

    #[test]
    fn day_of_week_zero_and_seven_are_sunday_one_is_monday() {
        let after = at("2026-12-03T10:00:00Z"); // a Thursday
        for (dow, next) in [
            ("0", "2026-12-06T09:00:00Z"),
            ("7", "2026-12-06T09:00:00Z"),
            ("1", "2026-12-07T09:00:00Z"),
            ("MON", "2026-12-07T09:00:00Z"),
        ] {
            let s = CronSchedule::parse(&format!("0 9 * * {dow}"), false, None).unwrap();
            assert_eq!(s.next_after(after), Some(at(next)), "{dow}");
        }
    }

    #[test]
    fn dates_are_read_in_the_zone_and_written_with_its_offset() {
        let paris = CronSchedule::parse("0 9 * * *", false, Some("Europe/Paris")).unwrap();
        let next = paris.next_after(at("2026-12-03T10:00:00Z")).unwrap();
        assert_eq!(next, at("2026-12-04T08:00:00Z"));
        assert_eq!(paris.format(next), "2026-12-04T09:00:00+01:00");
        let utc = CronSchedule::parse("0 9 * * *", false, None).unwrap();
        assert_eq!(
            utc.format(at("2026-12-04T09:00:00Z")),
            "2026-12-04T09:00:00Z"
        );
    }

    #[test]
    fn what_kestra_would_not_read_is_refused_saying_why() {
        for (cron, seconds, zone, why) in [
            ("* * * *", false, None, "expected 5 fields, found 4"),
            ("*/2 * * * * *", false, None, "withSeconds"),
            ("* * * * *", true, None, "expected 6 fields"),
            ("@sometimes", false, None, "unknown nickname"),
            ("61 * * * *", false, None, ""),
            ("* * * * *", false, Some("Mars/Olympus"), "IANA"),
        ] {
            let e = CronSchedule::parse(cron, seconds, zone).unwrap_err();
            assert!(e.contains(why), "{cron}: {e}");
        }
    }
}
