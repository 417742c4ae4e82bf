//! Cron schedules as CronJobs write them (the standard five fields, as robfig/cron's
//! `ParseStandard` reads them for Kubernetes): `minute hour day-of-month month day-of-week`,
//! each a comma-separated list of `*`/`?`, values, ranges `a-b` and steps (`*/5`, `1-30/2`,
//! `5/15` = `5-max/15`), month and weekday names (`JAN`, `mon`), day-of-week 7 as Sunday;
//! the macros `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`.
//!
//! Days match as in robfig/cron: when day-of-month or day-of-week is unrestricted (`*`,
//! `?`, or `*/1`), both must match; when both are restricted, either does.
//!
//! Times are evaluated in the CronJob's `spec.timeZone` (an IANA name, [`time_zone`]; UTC
//! when unset), from the tz database built into the binary. Across a daylight-saving change
//! a scheduled local time that does not exist (the skipped hour) does not run, and one
//! that occurs twice (the repeated hour) runs at both, as robfig/cron runs it.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Set in a field's bits when it was written `*` or `?` (robfig/cron's `starBit`).
const STAR: u64 = 1 << 63;
/// How far [`Schedule::next_after`] and [`Schedule::latest_at_or_before`] look.
const YEARS: i32 = 5;

/// A schedule that cannot be parsed (the message is what the API returns).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty spec string")]
    Empty,
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TimeZoneInSchedule,
    #[error("failed to parse int from {0}")]
    NotANumber(String),
    #[error("too many hyphens: {0}")]
    Hyphens(String),
    #[error("too many slashes: {0}")]
    Slashes(String),
    #[error("step of range should be a positive number: {0}")]
    Step(String),
    #[error("beginning of range ({0}) below minimum ({1}): {2}")]
    BelowMin(u32, u32, String),
    #[error("end of range ({0}) above maximum ({1}): {2}")]
    AboveMax(u32, u32, String),
    #[error("beginning of range ({0}) beyond end of range ({1}): {2}")]
    Reversed(u32, u32, String),
}

/// A `spec.timeZone` that names no zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    #[error("timeZone must be nil or non-empty string")]
    Empty,
    #[error("unknown time zone {0}")]
    Unknown(String),
}

/// The zone a `spec.timeZone` names (an IANA name such as `Europe/Paris`, or `UTC`).
pub fn time_zone(tz: &str) -> Result<Tz, TimeZoneError> {
    if tz.is_empty() {
        return Err(TimeZoneError::Empty);
    }
    // Kubernetes refuses `Local` (the controller's own zone) and names with spaces.
    if tz == "Local" || tz.contains(' ') {
        return Err(TimeZoneError::Unknown(tz.to_string()));
    }
    tz.parse()
        .map_err(|_| TimeZoneError::Unknown(tz.to_string()))
}

/// The allowed values of one field.
struct Bounds {
    min: u32,
    max: u32,
    /// Where `*` and `N/step` end: `max`, but 6 for day-of-week, whose 7 (Sunday again)
    /// may only be named.
    open_max: u32,
    names: &'static [&'static str],
}

impl Bounds {
    const fn new(min: u32, max: u32, names: &'static [&'static str]) -> Self {
        Self {
            min,
            max,
            open_max: max,
            names,
        }
    }
}

const MINUTE: Bounds = Bounds::new(0, 59, &[]);
const HOUR: Bounds = Bounds::new(0, 23, &[]);
const DOM: Bounds = Bounds::new(1, 31, &[]);
/// Names start at the minimum: `jan` is 1.
const MONTH: Bounds = Bounds::new(
    1,
    12,
    &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
);
/// 7 is Sunday as well as 0.
const DOW: Bounds = Bounds {
    min: 0,
    max: 7,
    open_max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// A parsed schedule: one bit per allowed value of each field (plus [`STAR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    zone: Tz,
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(spec: &str) -> Result<Self, ScheduleError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            return Err(ScheduleError::TimeZoneInSchedule);
        }
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            d if d.starts_with('@') => return Err(ScheduleError::Descriptor(d.to_string())),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            let list = format!("[{}]", fields.join(" "));
            return Err(ScheduleError::FieldCount(fields.len(), list));
        };
        let mut dow = field(dow, &DOW)?;
        if dow & (1 << 7) != 0 {
            dow = (dow & !(1 << 7)) | 1;
        }
        Ok(Self {
            minute: field(minute, &MINUTE)?,
            hour: field(hour, &HOUR)?,
            dom: field(dom, &DOM)?,
            month: field(month, &MONTH)?,
            dow,
            zone: Tz::UTC,
        })
    }
}

/// The bits of a comma-separated field.
fn field(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    expr.split(',')
        .try_fold(0, |bits, part| Ok(bits | range(part, b)?))
}

fn value(s: &str, b: &Bounds) -> Result<u32, ScheduleError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.min + i as u32);
    }
    let digits = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    digits
        .then(|| s.parse().ok())
        .flatten()
        .ok_or_else(|| ScheduleError::NotANumber(s.to_string()))
}

/// The bits of one `*`, `v`, `a-b`, with an optional `/step`.
fn range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let err_expr = || expr.to_string();
    let mut parts = expr.split('/');
    let span = parts.next().unwrap_or_default();
    let step = parts.next();
    if parts.next().is_some() {
        return Err(ScheduleError::Slashes(err_expr()));
    }
    let ends: Vec<&str> = span.split('-').collect();
    let (start, mut end, mut star) = match ends[..] {
        ["*" | "?"] => (b.min, b.open_max, true),
        [v] => {
            let v = value(v, b)?;
            (v, v, false)
        }
        [lo, hi] => (value(lo, b)?, value(hi, b)?, false),
        _ => return Err(ScheduleError::Hyphens(err_expr())),
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let n: u32 = s
                .parse()
                .map_err(|_| ScheduleError::NotANumber(s.to_string()))?;
            if n == 0 {
                return Err(ScheduleError::Step(err_expr()));
            }
            // `N/step` means `N-max/step`.
            if ends.len() == 1 && !star {
                end = b.open_max;
            }
            star &= n == 1;
            n
        }
    };
    if start < b.min {
        return Err(ScheduleError::BelowMin(start, b.min, err_expr()));
    }
    if end > b.max {
        return Err(ScheduleError::AboveMax(end, b.max, err_expr()));
    }
    if start > end {
        return Err(ScheduleError::Reversed(start, end, err_expr()));
    }
    let bits = (start..=end)
        .step_by(step as usize)
        .fold(0u64, |bits, v| bits | 1 << v);
    Ok(if star { bits | STAR } else { bits })
}

fn has(bits: u64, v: u32) -> bool {
    bits & (1 << v) != 0
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_hms_opt(0, 0, 0).expect("midnight exists")
}

fn start_of_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0).and_then(|t| t.with_second(0)).unwrap_or(t)
}

fn first_of_month(t: NaiveDateTime) -> NaiveDateTime {
    midnight(t.date().with_day(1).expect("day 1 exists"))
}

fn first_of_next_month(t: NaiveDateTime) -> NaiveDateTime {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    midnight(NaiveDate::from_ymd_opt(y, m, 1).expect("day 1 exists"))
}

fn truncate_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

impl Schedule {
    /// The same schedule read in `zone`.
    pub fn in_zone(self, zone: Tz) -> Self {
        Self { zone, ..self }
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        truncate_to_minute(t.with_timezone(&self.zone).naive_local())
    }

    /// The instants a scheduled local minute runs at, in order: none in a skipped hour,
    /// both in a repeated one (as robfig/cron runs it).
    fn instants(&self, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                vec![a.min(b), a.max(b)]
            }
            LocalResult::None => Vec::new(),
        }
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = has(self.dom, d.day());
        let dow = has(self.dow, d.weekday().num_days_from_sunday());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the minute starting at `t` is scheduled.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.matches_local(self.local(t))
    }

    fn matches_local(&self, t: NaiveDateTime) -> bool {
        has(self.month, t.month())
            && self.day_matches(t.date())
            && has(self.hour, t.hour())
            && has(self.minute, t.minute())
    }

    /// The first scheduled time strictly after `t` (`None`: none in the next 5 years, as
    /// for `0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // From the minute before: in a repeated hour `t`'s local minute may come again.
        let mut local = self.local(t) - Duration::hours(1);
        loop {
            let cand = self.next_local_after(local)?;
            if let Some(at) = self.instants(cand).into_iter().find(|at| *at > t) {
                return Some(at);
            }
            local = cand;
        }
    }

    /// The last scheduled time at or before `t` (`None`: none in the 5 years before).
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // From an hour on: in a repeated hour a later local minute may be an earlier instant.
        let mut local = self.local(t) + Duration::hours(1);
        loop {
            let cand = self.latest_local_at_or_before(local)?;
            if let Some(at) = self.instants(cand).into_iter().rev().find(|at| *at <= t) {
                return Some(at);
            }
            local = cand - Duration::minutes(1);
        }
    }

    /// The first scheduled local minute strictly after `t`.
    fn next_local_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = t + Duration::minutes(1);
        let limit = t.year() + YEARS;
        while t.year() <= limit {
            if !has(self.month, t.month()) {
                t = first_of_next_month(t);
            } else if !self.day_matches(t.date()) {
                t = midnight(t.date().succ_opt()?);
            } else if !has(self.hour, t.hour()) {
                t = start_of_hour(t) + Duration::hours(1);
            } else if !has(self.minute, t.minute()) {
                t += Duration::minutes(1);
            } else {
                return Some(t);
            }
        }
        None
    }

    /// The last scheduled local minute at or before `t`.
    fn latest_local_at_or_before(&self, mut t: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = t.year() - YEARS;
        let minute = Duration::minutes(1);
        while t.year() >= limit {
            if !has(self.month, t.month()) {
                t = first_of_month(t) - minute;
            } else if !self.day_matches(t.date()) {
                t = midnight(t.date()) - minute;
            } else if !has(self.hour, t.hour()) {
                t = start_of_hour(t) - minute;
            } else if !has(self.minute, t.minute()) {
                t -= minute;
            } else {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(s: &str) -> Schedule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The times after `from` are `want` (RFC 3339 to the minute).
    fn check(s: &str, from: &str, want: &[&str]) {
        let sched = sched(s);
        let mut t = at(from);
        let got: Vec<String> = want
            .iter()
            .map(|_| {
                t = sched.next_after(t).unwrap();
                t.format("%Y-%m-%dT%H:%M").to_string()
            })
            .collect();
        assert_eq!(got, want, "{s} after {from}");
    }

    #[test]
    fn steps_ranges_and_lists() {
        check(
            "*/5 * * * *",
            "2026-01-01T10:02:30Z",
            &["2026-01-01T10:05", "2026-01-01T10:10", "2026-01-01T10:15"],
        );
        // Strictly after: a time on the schedule yields the next one.
        check(
            "*/1 * * * *",
            "2026-01-01T10:00:00Z",
            &["2026-01-01T10:01", "2026-01-01T10:02"],
        );
        check(
            "5/15 * * * *",
            "2026-01-01T10:00:00Z",
            &[
                "2026-01-01T10:05",
                "2026-01-01T10:20",
                "2026-01-01T10:35",
                "2026-01-01T10:50",
            ],
        );
        // Day-of-week steps end at Saturday: 7 (Sunday) is never stepped onto.
        check(
            "0 0 * * 1/2",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-02T00:00",
                "2026-01-05T00:00",
                "2026-01-07T00:00",
                "2026-01-09T00:00",
            ],
        );
        check(
            "0 1-23/10 * * *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T01:00",
                "2026-01-01T11:00",
                "2026-01-01T21:00",
                "2026-01-02T01:00",
            ],
        );
        check(
            "15,45 9,17 * * *",
            "2026-01-01T10:00:00Z",
            &["2026-01-01T17:15", "2026-01-01T17:45", "2026-01-02T09:15"],
        );
    }

    #[test]
    fn names_and_sunday_as_seven() {
        // 2026-01-01 is a Thursday.
        check(
            "0 9 * * MON-fri",
            "2026-01-02T10:00:00Z",
            &["2026-01-05T09:00", "2026-01-06T09:00"],
        );
        assert_eq!(sched("0 0 * * 7"), sched("0 0 * * 0"));
        assert_eq!(sched("0 0 * * sun"), sched("0 0 * * 0"));
        assert_eq!(sched("0 0 * * 5-7"), sched("0 0 * * 0,5,6"));
        check(
            "0 0 1 jan,Jul *",
            "2026-02-01T00:00:00Z",
            &["2026-07-01T00:00", "2027-01-01T00:00"],
        );
    }

    #[test]
    fn macros() {
        let same = [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ];
        for (m, s) in same {
            assert_eq!(sched(m), sched(s), "{m}");
        }
        check("@weekly", "2026-01-01T00:00:00Z", &["2026-01-04T00:00"]);
    }

    #[test]
    fn month_ends_and_leap_days() {
        // Only months with 31 days.
        check(
            "0 0 31 * *",
            "2026-01-31T00:00:00Z",
            &["2026-03-31T00:00", "2026-05-31T00:00", "2026-07-31T00:00"],
        );
        check(
            "0 0 29 2 *",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00", "2032-02-29T00:00"],
        );
        // The year turns over.
        check(
            "59 23 31 12 *",
            "2026-12-31T23:59:00Z",
            &["2027-12-31T23:59"],
        );
        // Never: no time in the next five years.
        assert_eq!(
            sched("0 0 30 2 *").next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: either matches (the 13th, or any Friday).
        check(
            "0 0 13 * 5",
            "2026-01-01T00:00:00Z",
            &["2026-01-02T00:00", "2026-01-09T00:00", "2026-01-13T00:00"],
        );
        // One is `*` (or `?`): both must match, so only the restricted one counts.
        check("0 0 13 * *", "2026-01-01T00:00:00Z", &["2026-01-13T00:00"]);
        check("0 0 ? * 5", "2026-01-01T00:00:00Z", &["2026-01-02T00:00"]);
        // `*/2` is a restriction (robfig/cron clears the star for steps above 1).
        check(
            "0 0 */2 * 5",
            "2026-01-01T00:00:00Z",
            &["2026-01-02T00:00", "2026-01-03T00:00", "2026-01-05T00:00"],
        );
    }

    #[test]
    fn latest_at_or_before() {
        let s = sched("*/15 * * * *");
        let t = s.latest_at_or_before(at("2026-01-01T10:44:59Z")).unwrap();
        assert_eq!(t, at("2026-01-01T10:30:00Z"));
        let t = s.latest_at_or_before(at("2026-01-01T10:45:00Z")).unwrap();
        assert_eq!(t, at("2026-01-01T10:45:00Z"));
        let s = sched("0 0 31 * *");
        let t = s.latest_at_or_before(at("2026-05-01T00:00:00Z")).unwrap();
        assert_eq!(t, at("2026-03-31T00:00:00Z"));
        let s = sched("0 12 29 2 *");
        let t = s.latest_at_or_before(at("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(t, at("2024-02-29T12:00:00Z"));
        assert!(s.matches(t) && !s.matches(at("2024-02-29T12:01:00Z")));
    }

    #[test]
    fn invalid_schedules() {
        let err = |s: &str| s.parse::<Schedule>().unwrap_err();
        assert_eq!(err(""), ScheduleError::Empty);
        assert_eq!(
            err("* * * *").to_string(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert!(matches!(
            err("0 0 0 * * *"),
            ScheduleError::FieldCount(6, _)
        ));
        assert!(matches!(err("@every 5m"), ScheduleError::Descriptor(_)));
        assert!(matches!(err("@often"), ScheduleError::Descriptor(_)));
        assert_eq!(err("TZ=UTC 0 * * * *"), ScheduleError::TimeZoneInSchedule);
        assert_eq!(
            err("60 * * * *").to_string(),
            "end of range (60) above maximum (59): 60"
        );
        assert!(matches!(
            err("* 24 * * *"),
            ScheduleError::AboveMax(24, 23, _)
        ));
        assert!(matches!(err("* * 0 * *"), ScheduleError::BelowMin(0, 1, _)));
        assert!(matches!(
            err("* * * 13 *"),
            ScheduleError::AboveMax(13, 12, _)
        ));
        assert!(matches!(err("* * * * 8"), ScheduleError::AboveMax(8, 7, _)));
        assert!(matches!(
            err("30-10 * * * *"),
            ScheduleError::Reversed(30, 10, _)
        ));
        assert!(matches!(err("*/0 * * * *"), ScheduleError::Step(_)));
        assert!(matches!(err("*/x * * * *"), ScheduleError::NotANumber(_)));
        assert!(matches!(err("1-2-3 * * * *"), ScheduleError::Hyphens(_)));
        assert!(matches!(err("1/2/3 * * * *"), ScheduleError::Slashes(_)));
        assert!(matches!(err("a * * * *"), ScheduleError::NotANumber(_)));
        assert!(matches!(
            err("* * * * MONDAY"),
            ScheduleError::NotANumber(_)
        ));
        assert!(matches!(err("-1 * * * *"), ScheduleError::NotANumber(_)));
        assert!(matches!(err("1,,2 * * * *"), ScheduleError::NotANumber(_)));
    }

    #[test]
    fn time_zones() {
        assert_eq!(time_zone("UTC"), Ok(Tz::UTC));
        assert_eq!(time_zone("Etc/UTC"), Ok(Tz::Etc__UTC));
        assert_eq!(time_zone("Europe/Paris"), Ok(Tz::Europe__Paris));
        assert_eq!(time_zone(""), Err(TimeZoneError::Empty));
        assert_eq!(
            time_zone("Europe/Pariss"),
            Err(TimeZoneError::Unknown("Europe/Pariss".into()))
        );
    }

    fn zoned(s: &str, zone: &str) -> Schedule {
        sched(s).in_zone(time_zone(zone).unwrap())
    }

    fn next_times(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                t.format("%Y-%m-%dT%H:%M").to_string()
            })
            .collect()
    }

    #[test]
    fn times_are_read_in_the_zone() {
        let nine = zoned("0 9 * * *", "Europe/Paris");
        // CET is UTC+1 in winter, CEST UTC+2 in summer.
        assert_eq!(
            next_times(&nine, "2026-01-01T00:00:00Z", 1),
            ["2026-01-01T08:00"]
        );
        assert_eq!(
            next_times(&nine, "2026-07-01T00:00:00Z", 1),
            ["2026-07-01T07:00"]
        );
        assert_eq!(
            nine.latest_at_or_before(at("2026-07-01T07:30:00Z")),
            Some(at("2026-07-01T07:00:00Z"))
        );
        assert!(nine.matches(at("2026-01-01T08:00:30Z")));
        assert!(!nine.matches(at("2026-01-01T09:00:00Z")));
        assert!(time_zone("Mars/Olympus_Mons").is_err());
        assert!(time_zone("Local").is_err());
    }

    #[test]
    fn daylight_saving_skips_the_missing_hour_and_repeats_the_repeated_one() {
        // New York, 2026: clocks go 02:00 → 03:00 on 8 March, 02:00 → 01:00 on 1 November.
        let two_thirty = zoned("30 2 * * *", "America/New_York");
        assert_eq!(
            next_times(&two_thirty, "2026-03-07T12:00:00Z", 2),
            ["2026-03-09T06:30", "2026-03-10T06:30"]
        );
        let one_thirty = zoned("30 1 * * *", "America/New_York");
        assert_eq!(
            next_times(&one_thirty, "2026-10-31T12:00:00Z", 3),
            ["2026-11-01T05:30", "2026-11-01T06:30", "2026-11-02T06:30"]
        );
        assert_eq!(
            one_thirty.latest_at_or_before(at("2026-11-01T07:00:00Z")),
            Some(at("2026-11-01T06:30:00Z"))
        );
        assert_eq!(
            one_thirty.latest_at_or_before(at("2026-11-01T06:00:00Z")),
            Some(at("2026-11-01T05:30:00Z"))
        );
        // Every 15 minutes through the repeated hour: both passes.
        let quarter = zoned("*/15 1 * * *", "America/New_York");
        assert_eq!(
            next_times(&quarter, "2026-11-01T05:50:00Z", 3),
            ["2026-11-01T06:00", "2026-11-01T06:15", "2026-11-01T06:30"]
        );
    }
}
