//! Access windows: strict RFC 3339 parsing with `Z` or a numeric offset, kept in
//! the requester's offset for display and normalised to UTC for IAM.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, Utc};

/// Why a time parameter could not be read. The wording is read by requesters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("is not a date and time of the form 2026-12-01T18:00:00+09:00 or 2026-12-01T09:00:00Z")]
    BadFormat,
    #[error("has no time zone: add Z for UTC (2026-12-01T09:00:00Z) or an offset such as +09:00")]
    MissingOffset,
    #[error("has fractions of a second: give whole seconds, e.g. 2026-12-01T18:00:00+09:00")]
    FractionalSeconds,
    #[error("is not a date that exists (month {month}, day {day} of year {year})")]
    NoSuchDate { year: i32, month: u32, day: u32 },
    #[error("has hour {0}: hours run from 00 to 23 (midnight is 00:00:00 of the next day)")]
    HourOutOfRange(u32),
    #[error("has minute {0}: minutes run from 00 to 59")]
    MinuteOutOfRange(u32),
    #[error("has second {0}: seconds run from 00 to 59 (leap seconds are not accepted)")]
    SecondOutOfRange(u32),
    #[error("has the offset {0}: offsets run from -12:00 to +14:00")]
    OffsetOutOfRange(String),
}

/// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`.
pub fn parse_time(raw: &str) -> Result<DateTime<FixedOffset>, TimeError> {
    let b = raw.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = raw.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let shape_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':';
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return Err(TimeError::BadFormat);
    };
    if !shape_ok {
        return Err(TimeError::BadFormat);
    }
    let offset = match &raw[19..] {
        "" => return Err(TimeError::MissingOffset),
        "Z" => Utc.fix(),
        rest if rest.starts_with('.') => return Err(TimeError::FractionalSeconds),
        rest => parse_offset(rest)?,
    };
    if hour > 23 {
        return Err(TimeError::HourOutOfRange(hour));
    }
    if minute > 59 {
        return Err(TimeError::MinuteOutOfRange(minute));
    }
    if second > 59 {
        return Err(TimeError::SecondOutOfRange(second));
    }
    let year = i32::try_from(year).map_err(|_| TimeError::BadFormat)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(TimeError::NoSuchDate {
        year,
        month,
        day,
    })?;
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or(TimeError::BadFormat)?;
    NaiveDateTime::new(date, time)
        .and_local_timezone(offset)
        .single()
        .ok_or(TimeError::BadFormat)
}

/// Parses `±HH:MM` (from -12:00 to +14:00).
pub fn parse_offset(raw: &str) -> Result<FixedOffset, TimeError> {
    let b = raw.as_bytes();
    if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
        return Err(TimeError::BadFormat);
    }
    let num = |s: &str| -> Result<i32, TimeError> {
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| TimeError::BadFormat)
        } else {
            Err(TimeError::BadFormat)
        }
    };
    let (hours, minutes) = (num(&raw[1..3])?, num(&raw[4..6])?);
    let sign = if b[0] == b'+' { 1 } else { -1 };
    let seconds = sign * (hours * 3600 + minutes * 60);
    if minutes > 59 || !(-12 * 3600..=14 * 3600).contains(&seconds) {
        return Err(TimeError::OffsetOutOfRange(raw.to_owned()));
    }
    FixedOffset::east_opt(seconds).ok_or(TimeError::BadFormat)
}

/// A time window whose end is strictly after its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the end of the window is not after its start")]
pub struct EndNotAfterStart;

impl Window {
    pub fn new(
        start: DateTime<FixedOffset>,
        end: DateTime<FixedOffset>,
    ) -> Result<Self, EndNotAfterStart> {
        if end > start {
            Ok(Self { start, end })
        } else {
            Err(EndNotAfterStart)
        }
    }
    /// The start as the requester wrote it (their offset).
    pub fn start(&self) -> DateTime<FixedOffset> {
        self.start
    }
    pub fn end(&self) -> DateTime<FixedOffset> {
        self.end
    }
    pub fn start_utc(&self) -> DateTime<Utc> {
        self.start.with_timezone(&Utc)
    }
    pub fn end_utc(&self) -> DateTime<Utc> {
        self.end.with_timezone(&Utc)
    }
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }
    /// True from the end onwards: IAM's `DateLessThan` already denies at the end itself.
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        now >= self.end_utc()
    }
}

/// `2026-12-01T09:00:00Z`: the form IAM date conditions take.
pub fn utc_string(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `+09:00`, or `Z` for UTC.
pub fn offset_string(offset: FixedOffset) -> String {
    if offset.local_minus_utc() == 0 {
        "Z".to_owned()
    } else {
        offset.to_string()
    }
}

/// A time for people: `2026-12-01 09:00:00 UTC`, followed by the requester's own
/// offset when they wrote one (`2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)`).
pub fn human_time(t: DateTime<FixedOffset>) -> String {
    let utc = t
        .with_timezone(&Utc)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    if t.offset().local_minus_utc() == 0 {
        utc
    } else {
        format!("{utc} ({})", t.format("%Y-%m-%d %H:%M:%S %:z"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(raw: &str) -> String {
        utc_string(parse_time(raw).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn given_z_or_offset_when_parsing_then_normalised_to_the_same_utc_instant() {
        assert_eq!(utc("2026-12-01T09:00:00Z"), "2026-12-01T09:00:00Z");
        assert_eq!(utc("2026-12-01T18:00:00+09:00"), "2026-12-01T09:00:00Z");
        assert_eq!(utc("2026-12-01T00:30:00+14:00"), "2026-11-30T10:30:00Z");
        assert_eq!(utc("2026-11-30T22:00:00-12:00"), "2026-12-01T10:00:00Z");
        assert_eq!(utc("2026-12-01T09:00:00+00:00"), "2026-12-01T09:00:00Z");
    }

    #[test]
    fn given_malformed_times_when_parsing_then_each_gets_its_own_reason() {
        let cases = [
            ("2026-12-01T09:00:00", TimeError::MissingOffset),
            ("2026-12-01T09:00:00.5Z", TimeError::FractionalSeconds),
            (
                "2026-02-30T09:00:00Z",
                TimeError::NoSuchDate {
                    year: 2026,
                    month: 2,
                    day: 30,
                },
            ),
            ("2026-12-01T24:00:00Z", TimeError::HourOutOfRange(24)),
            ("2026-12-01T09:60:00Z", TimeError::MinuteOutOfRange(60)),
            ("2026-12-31T23:59:60Z", TimeError::SecondOutOfRange(60)),
            (
                "2026-12-01T09:00:00+15:00",
                TimeError::OffsetOutOfRange("+15:00".into()),
            ),
            (
                "2026-12-01T09:00:00-13:00",
                TimeError::OffsetOutOfRange("-13:00".into()),
            ),
            ("2026-12-01 09:00:00Z", TimeError::BadFormat),
            ("2026-12-01T09:00:00z", TimeError::BadFormat),
            ("2026-12-01T09:00:00+0900", TimeError::BadFormat),
            ("tomorrow", TimeError::BadFormat),
            ("", TimeError::BadFormat),
            ("２０２６-12-01T09:00:00Z", TimeError::BadFormat),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_time(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn given_start_and_end_when_building_window_then_end_must_be_strictly_later() {
        let a = parse_time("2026-12-01T18:00:00+09:00").unwrap();
        let same_instant = parse_time("2026-12-01T09:00:00Z").unwrap();
        let later = parse_time("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(Window::new(a, same_instant), Err(EndNotAfterStart));
        assert_eq!(Window::new(later, a), Err(EndNotAfterStart));
        let w = Window::new(a, later).unwrap();
        assert_eq!(w.duration(), TimeDelta::hours(1));
        assert!(
            !w.has_ended(
                parse_time("2026-12-01T09:59:59Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert!(
            w.has_ended(
                parse_time("2026-12-01T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
    }

    #[test]
    fn given_a_non_utc_time_when_shown_to_people_then_both_utc_and_the_written_offset_appear() {
        let t = parse_time("2026-12-01T18:00:00+09:00").unwrap();
        assert_eq!(
            human_time(t),
            "2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)"
        );
        let z = parse_time("2026-12-01T09:00:00Z").unwrap();
        assert_eq!(human_time(z), "2026-12-01 09:00:00 UTC");
        assert_eq!(offset_string(*t.offset()), "+09:00");
        assert_eq!(offset_string(*z.offset()), "Z");
    }
}
