//! Working-time calendar and SLA time limits.
//!
//! Most case-handling limits in grid governance are counted in working time: "3 working days"
//! excludes evenings, weekends and statutory holidays (法定节假日) but includes the weekend days
//! the State Council moves work onto (调休). Emergencies and utility outages run on the natural
//! (wall) clock instead. Both kinds are expressed as a [`TimeLimit`].
//!
//! China observes UTC+8 all year without daylight saving, so a fixed offset is exact; the offset
//! is still configurable so that tests and any future deployment elsewhere are not hard-wired.
//!
//! All arithmetic is done in integer nanoseconds and skips whole weeks wherever the calendar is
//! regular (outside the span of listed holidays and make-up days), so even limits of years cost
//! a handful of iterations.

use chrono::{
    DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    Timelike, Utc, Weekday,
};
use serde::{Deserialize, Serialize};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_MIN: i128 = 60 * NANOS_PER_SEC;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SEC;

/// Real-world offsets span UTC−12 to UTC+14.
const MAX_OFFSET_MINUTES: i32 = 14 * 60;
/// How many consecutive days without working time [`WorkCalendar::add_working_minutes`] will
/// walk before concluding the calendar is broken. Real holiday runs last days, not years.
const MAX_IDLE_DAYS: u32 = 3 * 366;
/// Upper bound for a [`TimeLimit`]: anything longer is a configuration mistake, not a deadline.
const MAX_LIMIT_MINUTES: i64 = 366 * 24 * 60;
/// Week skipping never needs more than this; chrono's whole date range is about 27 million
/// weeks, so larger jumps can only end in saturation.
const MAX_SKIP_WEEKS: i128 = 30_000_000;

/// The value returned when a deadline cannot be reached: a calendar without working time, or a
/// result beyond chrono's representable range. Callers see "never due" rather than a panic.
const SATURATED: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;

/// Default offset: China Standard Time, UTC+8.
const DEFAULT_UTC_OFFSET_MINUTES: i32 = 480;

fn default_offset() -> i32 {
    DEFAULT_UTC_OFFSET_MINUTES
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid constant time of day")
}

fn default_periods() -> Vec<WorkPeriod> {
    // The usual civil-service day: 08:30–12:00 and 14:00–17:30, seven hours.
    vec![
        WorkPeriod {
            start: hm(8, 30),
            end: hm(12, 0),
        },
        WorkPeriod {
            start: hm(14, 0),
            end: hm(17, 30),
        },
    ]
}

/// One working interval within a day, `[start, end)` in local time.
///
/// Serialised as `"HH:MM:SS"` (with a fraction only if one is present); input may also be
/// written as `"HH:MM"`. A period cannot run past midnight: the latest possible end is
/// `23:59:59.999999999`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkPeriod {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Which local days and hours count as working time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkCalendar {
    /// Offset of local time from UTC in minutes (480 = UTC+8).
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// Working intervals of a working day, sorted and non-overlapping.
    #[serde(default = "default_periods")]
    pub periods: Vec<WorkPeriod>,
    /// Public holidays: not worked even when they fall on a weekday.
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Make-up working days: weekend days that are worked.
    #[serde(default)]
    pub makeup_workdays: Vec<NaiveDate>,
}

impl Default for WorkCalendar {
    fn default() -> Self {
        Self {
            utc_offset_minutes: DEFAULT_UTC_OFFSET_MINUTES,
            periods: default_periods(),
            holidays: Vec::new(),
            makeup_workdays: Vec::new(),
        }
    }
}

/// Why a calendar or time limit was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("working calendar has no working periods")]
    NoPeriods,
    #[error("working period {start}-{end} is empty or reversed: start must be before end")]
    EmptyPeriod { start: NaiveTime, end: NaiveTime },
    #[error(
        "working periods {first_start}-{first_end} and {second_start}-{second_end} overlap or are out of order"
    )]
    PeriodsOverlap {
        first_start: NaiveTime,
        first_end: NaiveTime,
        second_start: NaiveTime,
        second_end: NaiveTime,
    },
    #[error("UTC offset of {0} minutes is outside the range of ±14 hours")]
    OffsetOutOfRange(i32),
    #[error("{0} is listed both as a holiday and as a make-up working day")]
    HolidayAndMakeupDay(NaiveDate),
    #[error("time limit must be positive, got {0} minutes")]
    NonPositiveLimit(i64),
    #[error(
        "time limit of {0} minutes exceeds the maximum of 366 days ({MAX_LIMIT_MINUTES} minutes)"
    )]
    LimitTooLong(i64),
}

impl WorkCalendar {
    /// Checks the invariants the arithmetic relies on. The arithmetic itself never panics on an
    /// invalid calendar (periods are sorted and merged, the offset clamped), but the answers
    /// would not be what the policy author meant, so policies are validated on load.
    pub fn validate(&self) -> Result<(), CalendarError> {
        if !(-MAX_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&self.utc_offset_minutes) {
            return Err(CalendarError::OffsetOutOfRange(self.utc_offset_minutes));
        }
        if self.periods.is_empty() {
            return Err(CalendarError::NoPeriods);
        }
        if let Some(p) = self.periods.iter().find(|p| p.start >= p.end) {
            return Err(CalendarError::EmptyPeriod {
                start: p.start,
                end: p.end,
            });
        }
        if let Some(w) = self.periods.windows(2).find(|w| w[1].start < w[0].end) {
            return Err(CalendarError::PeriodsOverlap {
                first_start: w[0].start,
                first_end: w[0].end,
                second_start: w[1].start,
                second_end: w[1].end,
            });
        }
        if let Some(d) = self
            .holidays
            .iter()
            .find(|d| self.makeup_workdays.contains(d))
        {
            return Err(CalendarError::HolidayAndMakeupDay(*d));
        }
        Ok(())
    }

    /// The local offset. An out-of-range value (which `validate` rejects) is clamped to ±14 h
    /// so the arithmetic stays total.
    pub fn offset(&self) -> FixedOffset {
        let minutes = self
            .utc_offset_minutes
            .clamp(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES);
        FixedOffset::east_opt(minutes * 60).expect("offset clamped to ±14 h is valid")
    }

    /// Whether `d` (a local date) is a working day: make-up days are, holidays are not,
    /// otherwise Monday to Friday.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.makeup_workdays.contains(&d) {
            return true;
        }
        if self.holidays.contains(&d) {
            return false;
        }
        is_weekday(d)
    }

    /// Length of a working day in whole minutes.
    pub fn working_minutes_per_day(&self) -> i64 {
        nanos_to_minutes(Rules::new(self).per_day)
    }

    /// The instant `minutes` working minutes after `start`.
    ///
    /// If `start` is outside working time, counting begins at the next working moment. A limit
    /// that is used up exactly at the end of a period is due at that period end (12:00), not at
    /// the start of the next one (14:00). `minutes <= 0` returns `start` unchanged, even at
    /// night: a zero limit is already due. An unreachable answer (no working time in the
    /// calendar, or beyond chrono's range) saturates to `DateTime::<Utc>::MAX_UTC`.
    pub fn add_working_minutes(&self, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        Rules::new(self).add(start, i128::from(minutes) * NANOS_PER_MIN)
    }

    /// Whole working minutes in `[a, b)`, rounded down; 0 if `b <= a`.
    pub fn working_minutes_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        nanos_to_minutes(Rules::new(self).between(a, b))
    }
}

fn is_weekday(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn nanos_to_minutes(nanos: i128) -> i64 {
    i64::try_from(nanos / NANOS_PER_MIN).unwrap_or(i64::MAX)
}

/// Nanoseconds since local midnight. A leap-second representation (nanosecond field ≥ 1e9) is
/// folded into the last nanosecond of its second so every value stays below one day.
fn time_of_day_nanos(t: NaiveTime) -> i128 {
    i128::from(t.num_seconds_from_midnight()) * NANOS_PER_SEC
        + i128::from(t.nanosecond().min(999_999_999))
}

/// A calendar preprocessed for arithmetic: periods as sorted, merged nanosecond ranges and the
/// date lists sorted for binary search.
struct Rules {
    offset: FixedOffset,
    periods: Vec<(i128, i128)>,
    per_day: i128,
    holidays: Vec<NaiveDate>,
    makeup: Vec<NaiveDate>,
    /// First and last date on either list; outside this span every week has exactly five
    /// working days, which is what makes week skipping valid.
    listed: Option<(NaiveDate, NaiveDate)>,
}

impl Rules {
    fn new(cal: &WorkCalendar) -> Self {
        let mut raw: Vec<(i128, i128)> = cal
            .periods
            .iter()
            .map(|p| (time_of_day_nanos(p.start), time_of_day_nanos(p.end)))
            .filter(|(s, e)| s < e)
            .collect();
        raw.sort_unstable();
        let mut periods: Vec<(i128, i128)> = Vec::with_capacity(raw.len());
        for (s, e) in raw {
            match periods.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => periods.push((s, e)),
            }
        }
        let per_day = periods.iter().map(|(s, e)| e - s).sum();

        let mut holidays = cal.holidays.clone();
        holidays.sort_unstable();
        holidays.dedup();
        let mut makeup = cal.makeup_workdays.clone();
        makeup.sort_unstable();
        makeup.dedup();
        let lo = holidays.first().into_iter().chain(makeup.first()).min();
        let hi = holidays.last().into_iter().chain(makeup.last()).max();
        let listed = lo.zip(hi).map(|(lo, hi)| (*lo, *hi));

        Self {
            offset: cal.offset(),
            periods,
            per_day,
            holidays,
            makeup,
            listed,
        }
    }

    fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.makeup.binary_search(&d).is_ok() {
            return true;
        }
        if self.holidays.binary_search(&d).is_ok() {
            return false;
        }
        is_weekday(d)
    }

    /// Working nanoseconds of day `d` within `[from, to)` (times of day).
    fn work_in_day(&self, d: NaiveDate, from: i128, to: i128) -> i128 {
        if from >= to || !self.is_working_day(d) {
            return 0;
        }
        self.periods
            .iter()
            .map(|&(s, e)| (e.min(to) - s.max(from)).max(0))
            .sum()
    }

    /// Number of whole weeks starting at `d` that contain no listed date (`i128::MAX` when
    /// unbounded).
    fn regular_weeks_from(&self, d: NaiveDate) -> i128 {
        match self.listed {
            None => i128::MAX,
            Some((_, hi)) if d > hi => i128::MAX,
            Some((lo, _)) => i128::from((lo - d).num_days().max(0) / 7),
        }
    }

    /// Local date and nanoseconds since local midnight. Instants whose local time falls outside
    /// chrono's range (within hours of its limits) are clamped to that range.
    fn to_local(&self, t: DateTime<Utc>) -> (NaiveDate, i128) {
        let local = t.naive_utc().checked_add_offset(self.offset).unwrap_or(
            if self.offset.local_minus_utc() > 0 {
                NaiveDateTime::MAX
            } else {
                NaiveDateTime::MIN
            },
        );
        (local.date(), time_of_day_nanos(local.time()))
    }

    fn to_utc(&self, d: NaiveDate, tod: i128) -> Option<DateTime<Utc>> {
        let secs = u32::try_from(tod / NANOS_PER_SEC).ok()?;
        let nanos = u32::try_from(tod % NANOS_PER_SEC).ok()?;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?;
        let utc = NaiveDateTime::new(d, time).checked_sub_offset(self.offset)?;
        Some(utc.and_utc())
    }

    fn add(&self, start: DateTime<Utc>, nanos: i128) -> DateTime<Utc> {
        if nanos <= 0 {
            return start;
        }
        if self.per_day == 0 {
            return SATURATED;
        }
        let week_work = 5 * self.per_day;
        let (mut date, mut tod) = self.to_local(start);
        let mut remaining = nanos;
        let mut idle_days = 0u32;
        loop {
            if tod == 0 {
                // Jump over whole regular weeks, leaving a positive remainder so the final
                // instant is still located by the per-day scan below.
                let weeks = self
                    .regular_weeks_from(date)
                    .min((remaining - 1) / week_work);
                if weeks > 0 {
                    if weeks > MAX_SKIP_WEEKS {
                        return SATURATED;
                    }
                    let days = u64::try_from(weeks * 7).expect("bounded by MAX_SKIP_WEEKS");
                    let Some(d) = date.checked_add_days(Days::new(days)) else {
                        return SATURATED;
                    };
                    date = d;
                    remaining -= weeks * week_work;
                    idle_days = 0;
                }
            }
            if self.is_working_day(date) {
                idle_days = 0;
                for &(s, e) in &self.periods {
                    if e <= tod {
                        continue;
                    }
                    let from = s.max(tod);
                    let available = e - from;
                    if remaining <= available {
                        return self.to_utc(date, from + remaining).unwrap_or(SATURATED);
                    }
                    remaining -= available;
                }
            } else {
                idle_days += 1;
                if idle_days > MAX_IDLE_DAYS {
                    return SATURATED;
                }
            }
            let Some(next) = date.succ_opt() else {
                return SATURATED;
            };
            date = next;
            tod = 0;
        }
    }

    fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i128 {
        if b <= a || self.per_day == 0 {
            return 0;
        }
        let week_work = 5 * self.per_day;
        let (mut date, mut tod) = self.to_local(a);
        let (end_date, end_tod) = self.to_local(b);
        let mut total = 0;
        while date < end_date {
            total += self.work_in_day(date, tod, NANOS_PER_DAY);
            date = date.succ_opt().expect("date is before end_date");
            tod = 0;
            let weeks = self
                .regular_weeks_from(date)
                .min(i128::from((end_date - date).num_days() / 7));
            if weeks > 0 {
                total += weeks * week_work;
                let days = u64::try_from(weeks * 7).expect("bounded by the span to end_date");
                date = date
                    .checked_add_days(Days::new(days))
                    .expect("not past end_date");
            }
        }
        total + self.work_in_day(date, tod, end_tod)
    }
}

/// Which clock a time limit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Clock {
    /// Only working time counts (ordinary cases: "3 working days").
    Working,
    /// Wall-clock time, holidays included (emergencies: 2 h; utilities: 24 h).
    Natural,
}

/// An SLA time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeLimit {
    pub minutes: i64,
    pub clock: Clock,
}

impl TimeLimit {
    pub fn working(minutes: i64) -> Self {
        Self {
            minutes,
            clock: Clock::Working,
        }
    }

    pub fn natural(minutes: i64) -> Self {
        Self {
            minutes,
            clock: Clock::Natural,
        }
    }

    /// The deadline for a case whose clock started at `start`.
    pub fn due_at(&self, cal: &WorkCalendar, start: DateTime<Utc>) -> DateTime<Utc> {
        self.elapsed_at(cal, start, 100)
    }

    /// When `percent` (e.g. 80) of the limit has elapsed — the yellow-warning instant.
    /// Percentages above 100 are allowed and land after the deadline.
    pub fn warn_at(&self, cal: &WorkCalendar, start: DateTime<Utc>, percent: u8) -> DateTime<Utc> {
        self.elapsed_at(cal, start, percent)
    }

    /// Limits must be positive and at most 366 days of wall-clock minutes (527 040), whichever
    /// clock they run on.
    pub fn validate(&self) -> Result<(), CalendarError> {
        if self.minutes <= 0 {
            return Err(CalendarError::NonPositiveLimit(self.minutes));
        }
        if self.minutes > MAX_LIMIT_MINUTES {
            return Err(CalendarError::LimitTooLong(self.minutes));
        }
        Ok(())
    }

    /// The instant at which `percent` % of the limit has elapsed, to the nanosecond (80 % of
    /// seven minutes is 5 min 36 s, not 5 or 6 minutes).
    fn elapsed_at(&self, cal: &WorkCalendar, start: DateTime<Utc>, percent: u8) -> DateTime<Utc> {
        let nanos = i128::from(self.minutes) * NANOS_PER_MIN * i128::from(percent) / 100;
        if nanos <= 0 {
            return start;
        }
        match self.clock {
            Clock::Working => Rules::new(cal).add(start, nanos),
            Clock::Natural => {
                let secs = i64::try_from(nanos / NANOS_PER_SEC).ok();
                let sub = u32::try_from(nanos % NANOS_PER_SEC).ok();
                secs.zip(sub)
                    .and_then(|(secs, sub)| TimeDelta::new(secs, sub))
                    .and_then(|delta| start.checked_add_signed(delta))
                    .unwrap_or(SATURATED)
            }
        }
    }
}

/// Traffic-light status of a running limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Warning {
    /// Less than 80 % of the limit has elapsed.
    Green,
    /// Between 80 % and 100 % (inclusive: a case is not late at the deadline instant).
    Yellow,
    /// The deadline has passed.
    Red,
}

/// Share of the limit that turns a case yellow.
const YELLOW_PERCENT: u8 = 80;

/// Status at `now` of a limit started at `start`.
///
/// Decided by comparing `now` with the warning and due instants rather than by counting elapsed
/// working time: a case due Friday 17:30 is red on Saturday even though no working time has
/// passed since the deadline.
pub fn warning_level(
    cal: &WorkCalendar,
    limit: TimeLimit,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Warning {
    if now > limit.due_at(cal, start) {
        Warning::Red
    } else if now >= limit.warn_at(cal, start, YELLOW_PERCENT) {
        Warning::Yellow
    } else {
        Warning::Green
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A local (UTC+8) wall-clock instant.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        at_s(y, mo, d, h, mi, 0)
    }

    fn at_s(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn period(sh: u32, sm: u32, eh: u32, em: u32) -> WorkPeriod {
        WorkPeriod {
            start: hm(sh, sm),
            end: hm(eh, em),
        }
    }

    /// The State Council's 2026 Spring Festival arrangement: nine days off from Sunday 15 Feb
    /// to Monday 23 Feb, with Saturdays 14 Feb and 28 Feb worked in exchange.
    fn spring_festival_2026() -> WorkCalendar {
        WorkCalendar {
            holidays: (15..=23).map(|d| date(2026, 2, d)).collect(),
            makeup_workdays: vec![date(2026, 2, 14), date(2026, 2, 28)],
            ..WorkCalendar::default()
        }
    }

    const HOUR: i64 = 60;
    const DAY: i64 = 7 * HOUR;

    #[test]
    fn defaults() {
        let cal = WorkCalendar::default();
        assert_eq!(cal.utc_offset_minutes, 480);
        assert_eq!(
            cal.periods,
            vec![period(8, 30, 12, 0), period(14, 0, 17, 30)]
        );
        assert_eq!(cal.working_minutes_per_day(), 420);
        assert_eq!(cal.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(cal.validate(), Ok(()));
        assert_eq!(spring_festival_2026().validate(), Ok(()));
    }

    #[test]
    fn working_days_in_spring_festival_2026() {
        let cal = spring_festival_2026();
        assert_eq!(date(2026, 2, 13).weekday(), Weekday::Fri);
        assert!(cal.is_working_day(date(2026, 2, 13)));
        assert!(cal.is_working_day(date(2026, 2, 14))); // Saturday, make-up day
        for d in 15..=23 {
            assert!(!cal.is_working_day(date(2026, 2, d)), "Feb {d}");
        }
        assert!(cal.is_working_day(date(2026, 2, 24)));
        assert!(cal.is_working_day(date(2026, 2, 28))); // Saturday, make-up day
        assert!(!cal.is_working_day(date(2026, 3, 1))); // ordinary Sunday
        assert!(!cal.is_working_day(date(2026, 3, 7))); // ordinary Saturday
        // The make-up list wins if a date were on both (validate forbids that).
        let both = WorkCalendar {
            holidays: vec![date(2026, 3, 7)],
            makeup_workdays: vec![date(2026, 3, 7)],
            ..WorkCalendar::default()
        };
        assert!(both.is_working_day(date(2026, 3, 7)));
    }

    #[test]
    fn eight_hours_from_friday_afternoon_runs_into_makeup_saturday() {
        let cal = spring_festival_2026();
        // Fri 16:00–17:30 = 90 min, Sat 08:30–12:00 = 210 min, then 180 min from 14:00.
        let due = TimeLimit::working(8 * HOUR).due_at(&cal, at(2026, 2, 13, 16, 0));
        assert_eq!(due, at(2026, 2, 14, 17, 0));
        // Without the holiday arrangement the same case is due on Monday.
        let plain = WorkCalendar::default();
        assert_eq!(
            plain.add_working_minutes(at(2026, 2, 13, 16, 0), 8 * HOUR),
            at(2026, 2, 16, 17, 0)
        );
    }

    #[test]
    fn three_working_days_span_the_spring_festival() {
        let cal = spring_festival_2026();
        let limit = TimeLimit::working(3 * DAY);
        // Fri 90 + Sat 420 + Tue 420 = 930; the last 330 are Wed 210 + 120 after 14:00.
        assert_eq!(
            limit.due_at(&cal, at(2026, 2, 13, 16, 0)),
            at(2026, 2, 25, 16, 0)
        );
        // From Friday's opening: Fri, Sat and Tue are the three days, due at Tuesday's close.
        assert_eq!(
            limit.due_at(&cal, at(2026, 2, 13, 8, 30)),
            at(2026, 2, 24, 17, 30)
        );
        // Reported during the holiday: counting starts Tue 24 08:30; Tue, Wed, Thu.
        assert_eq!(
            limit.due_at(&cal, at(2026, 2, 18, 10, 0)),
            at(2026, 2, 26, 17, 30)
        );
        // Reported Thu 26 at 10:00: Thu 330 (rest of day) + Fri 420 + Sat 28 (make-up) 420
        // = 1170, then 90 on Monday 2 March.
        assert_eq!(
            limit.due_at(&cal, at(2026, 2, 26, 10, 0)),
            at(2026, 3, 2, 10, 0)
        );
        assert_eq!(
            cal.working_minutes_between(at(2026, 2, 13, 16, 0), at(2026, 2, 25, 16, 0)),
            3 * DAY
        );
    }

    #[test]
    fn natural_clock_ignores_holidays_and_hours() {
        let cal = spring_festival_2026();
        let start = at(2026, 2, 14, 10, 0);
        assert_eq!(
            TimeLimit::natural(24 * HOUR).due_at(&cal, start),
            at(2026, 2, 15, 10, 0)
        );
        assert_eq!(
            TimeLimit::natural(2 * HOUR).due_at(&cal, at(2026, 2, 17, 23, 30)),
            at(2026, 2, 18, 1, 30)
        );
        assert_eq!(
            TimeLimit::natural(2 * HOUR).warn_at(&cal, at(2026, 2, 17, 10, 0), 80),
            at(2026, 2, 17, 11, 36)
        );
    }

    #[test]
    fn start_outside_working_time() {
        let cal = WorkCalendar::default();
        assert_eq!(date(2026, 3, 2).weekday(), Weekday::Mon);
        // Lunch break: counting starts at 14:00.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 12, 30), 60),
            at(2026, 3, 2, 15, 0)
        );
        // Before opening.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 7, 0), 30),
            at(2026, 3, 2, 9, 0)
        );
        // At night: next morning.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 22, 0), 60),
            at(2026, 3, 3, 9, 30)
        );
        // Just after midnight.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 3, 0, 5), 60),
            at(2026, 3, 3, 9, 30)
        );
        // Weekend: Monday morning.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 7, 10, 0), 30),
            at(2026, 3, 9, 9, 0)
        );
        // Friday night to Monday.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 6, 20, 0), 240),
            at(2026, 3, 9, 14, 30)
        );
    }

    #[test]
    fn period_boundaries() {
        let cal = WorkCalendar::default();
        // Used up exactly at the end of the morning: due 12:00, not 14:00.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 8, 30), 210),
            at(2026, 3, 2, 12, 0)
        );
        // A whole day ends at 17:30 the same day.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 8, 30), DAY),
            at(2026, 3, 2, 17, 30)
        );
        // Starting exactly at a period end counts from the next period.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 12, 0), 30),
            at(2026, 3, 2, 14, 30)
        );
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 17, 30), 1),
            at(2026, 3, 3, 8, 31)
        );
        // One minute past the morning's end.
        assert_eq!(
            cal.add_working_minutes(at(2026, 3, 2, 8, 30), 211),
            at(2026, 3, 2, 14, 1)
        );
        // Seconds in the start instant are carried through.
        assert_eq!(
            cal.add_working_minutes(at_s(2026, 3, 2, 9, 0, 30), 60),
            at_s(2026, 3, 2, 10, 0, 30)
        );
        assert_eq!(
            cal.add_working_minutes(at_s(2026, 3, 2, 11, 59, 30), 1),
            at_s(2026, 3, 2, 14, 0, 30)
        );
    }

    #[test]
    fn zero_and_negative_minutes_return_start() {
        let cal = WorkCalendar::default();
        for start in [
            at(2026, 3, 2, 10, 0),
            at(2026, 3, 2, 23, 0),
            at(2026, 3, 7, 10, 0),
        ] {
            assert_eq!(cal.add_working_minutes(start, 0), start);
            assert_eq!(cal.add_working_minutes(start, -30), start);
        }
    }

    #[test]
    fn working_minutes_between_cases() {
        let cal = WorkCalendar::default();
        let mon = |h, m| at(2026, 3, 2, h, m);
        assert_eq!(cal.working_minutes_between(mon(8, 0), mon(18, 0)), 420);
        assert_eq!(
            cal.working_minutes_between(mon(10, 0), mon(15, 0)),
            120 + 60
        );
        assert_eq!(cal.working_minutes_between(mon(12, 0), mon(14, 0)), 0);
        assert_eq!(cal.working_minutes_between(mon(15, 0), mon(10, 0)), 0);
        assert_eq!(cal.working_minutes_between(mon(10, 0), mon(10, 0)), 0);
        // Friday 16:00 to Monday 09:00 over a weekend.
        assert_eq!(
            cal.working_minutes_between(at(2026, 3, 6, 16, 0), at(2026, 3, 9, 9, 0)),
            90 + 30
        );
        // Partial minutes round down.
        assert_eq!(
            cal.working_minutes_between(mon(9, 0), at_s(2026, 3, 2, 9, 1, 59)),
            1
        );
        // Four ordinary weeks.
        assert_eq!(
            cal.working_minutes_between(mon(0, 0), at(2026, 3, 30, 0, 0)),
            20 * DAY
        );
    }

    /// Reference implementation: step one minute at a time. Only meaningful for starts on a
    /// whole minute, which is all the comparison uses.
    fn add_by_stepping(cal: &WorkCalendar, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        let offset = cal.offset();
        let mut t = start;
        let mut counted = 0;
        while counted < minutes {
            let local = t.with_timezone(&offset);
            let tod = local.time();
            let working = cal.is_working_day(local.date_naive())
                && cal.periods.iter().any(|p| p.start <= tod && tod < p.end);
            if working {
                counted += 1;
            }
            t += TimeDelta::minutes(1);
        }
        t
    }

    #[test]
    fn add_matches_minute_stepping_reference() {
        let cal = spring_festival_2026();
        let mut start = at(2026, 2, 12, 7, 13);
        while start < at(2026, 2, 27, 0, 0) {
            for m in [1, 29, 210, 211, 419, 420, 421, 900, 2000] {
                assert_eq!(
                    cal.add_working_minutes(start, m),
                    add_by_stepping(&cal, start, m),
                    "start {start}, {m} min"
                );
            }
            start += TimeDelta::minutes(97);
        }
    }

    #[test]
    fn between_inverts_add_over_many_starts() {
        let cal = spring_festival_2026();
        let minutes = [
            1, 7, 59, 209, 210, 211, 420, 480, 1260, 5000, 20_000, 100_000,
        ];
        let mut start = at_s(2026, 2, 9, 0, 0, 17);
        let mut checked = 0;
        while start < at(2026, 3, 3, 0, 0) {
            for m in minutes {
                let due = cal.add_working_minutes(start, m);
                assert!(due > start);
                assert_eq!(
                    cal.working_minutes_between(start, due),
                    m,
                    "start {start}, {m} min, due {due}"
                );
                // One second earlier the limit has not yet been used up.
                assert_eq!(
                    cal.working_minutes_between(start, due - TimeDelta::seconds(1)),
                    m - 1
                );
                checked += 1;
            }
            start += TimeDelta::minutes(37);
        }
        assert!(checked > 9000);
    }

    /// Reference for `between`: sum whole days one by one without week skipping.
    fn between_by_days(cal: &WorkCalendar, from: NaiveDate, to: NaiveDate) -> i64 {
        from.iter_days()
            .take_while(|d| *d < to)
            .filter(|d| cal.is_working_day(*d))
            .count() as i64
            * cal.working_minutes_per_day()
    }

    #[test]
    fn long_spans_agree_with_day_by_day_counting() {
        let cal = spring_festival_2026();
        let local_midnight = |d: NaiveDate| at(d.year(), d.month(), d.day(), 0, 0);
        // Spans entirely before, across and after the listed dates, with every start weekday.
        for (from, to) in [
            (date(2023, 1, 1), date(2025, 6, 1)),
            (date(2024, 11, 3), date(2027, 2, 9)),
            (date(2026, 2, 20), date(2026, 2, 25)),
            (date(2026, 3, 1), date(2031, 7, 4)),
        ] {
            for shift in 0..7 {
                let from = from + Days::new(shift);
                assert_eq!(
                    cal.working_minutes_between(local_midnight(from), local_midnight(to)),
                    between_by_days(&cal, from, to),
                    "{from}..{to}"
                );
            }
        }
    }

    #[test]
    fn large_limits_skip_whole_weeks() {
        let cal = WorkCalendar::default();
        // 100 weeks of work from Monday's opening ends at the close of the 100th Friday.
        let start = at(2026, 3, 2, 8, 30);
        let end_date = date(2026, 3, 2) + Days::new(99 * 7 + 4);
        assert_eq!(end_date.weekday(), Weekday::Fri);
        assert_eq!(
            cal.add_working_minutes(start, 100 * 5 * DAY),
            at(end_date.year(), end_date.month(), end_date.day(), 17, 30)
        );
        // Across the Spring Festival: the nine-day break takes six weekdays and the two
        // make-up Saturdays give two back: four working days net.
        let sf = spring_festival_2026();
        let from = at(2025, 6, 2, 8, 30);
        let due = sf.add_working_minutes(from, 100 * 5 * DAY);
        assert_eq!(sf.working_minutes_between(from, due), 100 * 5 * DAY);
        let plain_due = cal.add_working_minutes(from, 100 * 5 * DAY);
        assert_eq!(cal.working_minutes_between(plain_due, due), 4 * DAY);
    }

    #[test]
    fn degenerate_calendars_saturate_instead_of_looping() {
        let start = at(2026, 1, 5, 9, 0);
        let no_periods = WorkCalendar {
            periods: Vec::new(),
            ..WorkCalendar::default()
        };
        assert_eq!(
            no_periods.add_working_minutes(start, 60),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            no_periods.working_minutes_between(start, start + TimeDelta::days(30)),
            0
        );

        // Four years of holidays: beyond the idle-day cap.
        let closed = WorkCalendar {
            holidays: date(2026, 1, 1).iter_days().take(4 * 366).collect(),
            ..WorkCalendar::default()
        };
        assert_eq!(
            closed.add_working_minutes(start, 60),
            DateTime::<Utc>::MAX_UTC
        );
        // Two years of holidays is odd but reachable.
        let long_closure = WorkCalendar {
            holidays: date(2026, 1, 1).iter_days().take(2 * 366).collect(),
            ..WorkCalendar::default()
        };
        let due = long_closure.add_working_minutes(start, 60);
        assert_eq!(due, at(2028, 1, 3, 9, 30));

        // Absurd inputs neither panic nor hang.
        let cal = WorkCalendar::default();
        assert_eq!(
            cal.add_working_minutes(start, i64::MAX),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            cal.add_working_minutes(DateTime::<Utc>::MAX_UTC, 60),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            TimeLimit::natural(i64::MAX).due_at(&cal, start),
            DateTime::<Utc>::MAX_UTC
        );
        let all = cal.working_minutes_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert!(all > 0);
        let _ = cal.add_working_minutes(DateTime::<Utc>::MIN_UTC, 60);
    }

    #[test]
    fn other_offsets_and_unsorted_periods() {
        let utc = WorkCalendar {
            utc_offset_minutes: 0,
            ..WorkCalendar::default()
        };
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 30, 0).unwrap();
        assert_eq!(
            utc.add_working_minutes(start, 30),
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
        );
        // An unsorted, overlapping list (rejected by validate) is still handled sanely.
        let messy = WorkCalendar {
            periods: vec![
                period(14, 0, 17, 30),
                period(8, 30, 12, 0),
                period(9, 0, 10, 0),
            ],
            ..WorkCalendar::default()
        };
        assert!(messy.validate().is_err());
        assert_eq!(messy.working_minutes_per_day(), 420);
        assert_eq!(
            messy.add_working_minutes(at(2026, 3, 2, 8, 30), 211),
            at(2026, 3, 2, 14, 1)
        );
    }

    #[test]
    fn warn_at_eighty_percent() {
        let cal = WorkCalendar::default();
        let start = at(2026, 3, 2, 8, 30);
        let limit = TimeLimit::working(8 * HOUR);
        // 80 % of 480 = 384 min: 210 in the morning, 174 after 14:00.
        assert_eq!(limit.warn_at(&cal, start, 80), at(2026, 3, 2, 16, 54));
        assert_eq!(limit.warn_at(&cal, start, 100), limit.due_at(&cal, start));
        assert_eq!(limit.due_at(&cal, start), at(2026, 3, 3, 9, 30));
        assert_eq!(limit.warn_at(&cal, start, 0), start);
        // 150 % = 720 min: Mon 420, Tue 210 + 90.
        assert_eq!(limit.warn_at(&cal, start, 150), at(2026, 3, 3, 15, 30));
        // Sub-minute precision: 80 % of 7 minutes is 5 min 36 s.
        assert_eq!(
            TimeLimit::working(7).warn_at(&cal, start, 80),
            at_s(2026, 3, 2, 8, 35, 36)
        );
        // Across the holiday on the working clock.
        let sf = spring_festival_2026();
        assert_eq!(
            TimeLimit::working(3 * DAY).warn_at(&sf, at(2026, 2, 13, 16, 0), 80),
            // 80 % of 1260 = 1008: Fri 90, Sat 420, Tue 420 -> 78 left on Wed morning.
            at(2026, 2, 25, 9, 48)
        );
    }

    #[test]
    fn warning_levels() {
        let cal = WorkCalendar::default();
        let start = at(2026, 3, 2, 8, 30);
        let limit = TimeLimit::working(8 * HOUR);
        let level = |now| warning_level(&cal, limit, start, now);
        assert_eq!(level(start), Warning::Green);
        assert_eq!(level(at(2026, 3, 2, 16, 53)), Warning::Green);
        assert_eq!(level(at(2026, 3, 2, 16, 54)), Warning::Yellow);
        assert_eq!(level(at(2026, 3, 2, 22, 0)), Warning::Yellow);
        assert_eq!(level(at(2026, 3, 3, 9, 30)), Warning::Yellow);
        assert_eq!(level(at_s(2026, 3, 3, 9, 30, 1)), Warning::Red);

        // Due at Friday's close; on Saturday it is overdue although no working time passed.
        let friday = at(2026, 3, 6, 8, 30);
        let day = TimeLimit::working(DAY);
        assert_eq!(
            warning_level(&cal, day, friday, at(2026, 3, 6, 17, 30)),
            Warning::Yellow
        );
        assert_eq!(
            warning_level(&cal, day, friday, at(2026, 3, 7, 10, 0)),
            Warning::Red
        );

        let emergency = TimeLimit::natural(2 * HOUR);
        let s = at(2026, 2, 17, 22, 0);
        assert_eq!(
            warning_level(&cal, emergency, s, at(2026, 2, 17, 23, 35)),
            Warning::Green
        );
        assert_eq!(
            warning_level(&cal, emergency, s, at(2026, 2, 17, 23, 36)),
            Warning::Yellow
        );
        assert_eq!(
            warning_level(&cal, emergency, s, at(2026, 2, 18, 0, 1)),
            Warning::Red
        );
    }

    #[test]
    fn calendar_validation_errors() {
        let base = WorkCalendar::default();
        let with_periods = |periods| WorkCalendar {
            periods,
            ..WorkCalendar::default()
        };
        assert_eq!(
            with_periods(vec![]).validate(),
            Err(CalendarError::NoPeriods)
        );
        assert_eq!(
            with_periods(vec![period(9, 0, 9, 0)]).validate(),
            Err(CalendarError::EmptyPeriod {
                start: hm(9, 0),
                end: hm(9, 0)
            })
        );
        assert_eq!(
            with_periods(vec![period(12, 0, 8, 30)]).validate(),
            Err(CalendarError::EmptyPeriod {
                start: hm(12, 0),
                end: hm(8, 30)
            })
        );
        let overlap = CalendarError::PeriodsOverlap {
            first_start: hm(8, 30),
            first_end: hm(12, 0),
            second_start: hm(11, 0),
            second_end: hm(17, 0),
        };
        assert_eq!(
            with_periods(vec![period(8, 30, 12, 0), period(11, 0, 17, 0)]).validate(),
            Err(overlap)
        );
        assert!(matches!(
            with_periods(vec![period(14, 0, 17, 30), period(8, 30, 12, 0)]).validate(),
            Err(CalendarError::PeriodsOverlap { .. })
        ));
        // Touching periods are fine.
        assert_eq!(
            with_periods(vec![period(8, 0, 12, 0), period(12, 0, 16, 0)]).validate(),
            Ok(())
        );
        for bad in [-14 * 60 - 1, 14 * 60 + 1, i32::MAX] {
            let cal = WorkCalendar {
                utc_offset_minutes: bad,
                ..base.clone()
            };
            assert_eq!(cal.validate(), Err(CalendarError::OffsetOutOfRange(bad)));
        }
        let both = WorkCalendar {
            holidays: vec![date(2026, 2, 14)],
            ..spring_festival_2026()
        };
        assert_eq!(
            both.validate(),
            Err(CalendarError::HolidayAndMakeupDay(date(2026, 2, 14)))
        );
        assert_eq!(
            CalendarError::HolidayAndMakeupDay(date(2026, 2, 14)).to_string(),
            "2026-02-14 is listed both as a holiday and as a make-up working day"
        );
        assert_eq!(
            CalendarError::EmptyPeriod {
                start: hm(12, 0),
                end: hm(8, 30)
            }
            .to_string(),
            "working period 12:00:00-08:30:00 is empty or reversed: start must be before end"
        );
    }

    #[test]
    fn time_limit_validation() {
        assert_eq!(TimeLimit::working(1).validate(), Ok(()));
        assert_eq!(TimeLimit::natural(527_040).validate(), Ok(()));
        assert_eq!(
            TimeLimit::working(0).validate(),
            Err(CalendarError::NonPositiveLimit(0))
        );
        assert_eq!(
            TimeLimit::natural(-5).validate(),
            Err(CalendarError::NonPositiveLimit(-5))
        );
        assert_eq!(
            TimeLimit::working(527_041).validate(),
            Err(CalendarError::LimitTooLong(527_041))
        );
    }

    #[test]
    fn json_round_trip_and_field_names() {
        let cal = spring_festival_2026();
        let json = serde_json::to_value(&cal).unwrap();
        assert_eq!(json["utc_offset_minutes"], 480);
        assert_eq!(json["periods"][0]["start"], "08:30:00");
        assert_eq!(json["periods"][1]["end"], "17:30:00");
        assert_eq!(json["holidays"][0], "2026-02-15");
        assert_eq!(json["makeup_workdays"][1], "2026-02-28");
        let back: WorkCalendar = serde_json::from_value(json).unwrap();
        assert_eq!(back, cal);

        // Everything is optional; short "HH:MM" times are accepted.
        let empty: WorkCalendar = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, WorkCalendar::default());
        let policy: WorkCalendar = serde_json::from_str(
            r#"{"periods":[{"start":"09:00","end":"17:00:00"}],"holidays":["2026-10-01"]}"#,
        )
        .unwrap();
        assert_eq!(policy.periods, vec![period(9, 0, 17, 0)]);
        assert_eq!(policy.utc_offset_minutes, 480);
        assert_eq!(policy.holidays, vec![date(2026, 10, 1)]);
        assert!(serde_json::from_str::<WorkPeriod>(r#"{"start":"9h","end":"17:00"}"#).is_err());

        let limit = TimeLimit::natural(120);
        let json = serde_json::to_string(&limit).unwrap();
        assert_eq!(json, r#"{"minutes":120,"clock":"NATURAL"}"#);
        assert_eq!(serde_json::from_str::<TimeLimit>(&json).unwrap(), limit);
        assert_eq!(
            serde_json::to_string(&TimeLimit::working(1260)).unwrap(),
            r#"{"minutes":1260,"clock":"WORKING"}"#
        );
        assert_eq!(
            serde_json::to_string(&Warning::Yellow).unwrap(),
            "\"YELLOW\""
        );
        assert_eq!(
            serde_json::from_str::<Warning>("\"RED\"").unwrap(),
            Warning::Red
        );
    }
}
