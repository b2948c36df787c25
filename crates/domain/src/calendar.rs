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
mod tests;
