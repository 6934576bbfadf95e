//! Times as people type them: `--for 2h`, `--start 18:00`, `--start +30m`.
//! Pure: the local time (`now`, in the person's offset) is an argument.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error(
        "'{0}' is not a length of time: write a number and a unit, e.g. 30m, 2h, 1h30m or 1d (s, m, h, d)"
    )]
    Duration(String),
    #[error("a window of {0} is not allowed: it must be longer than zero")]
    Empty(String),
    #[error(
        "'{0}' is not a start time: write now, +30m (from now), 18:00 (the next 18:00 in your time zone), 2026-12-05 18:00, or 2026-12-05T18:00:00+09:00"
    )]
    Start(String),
}

/// `2h`, `90m`, `1h30m`, `45s`, `1d`: one or more number-unit pairs.
pub fn parse_duration(raw: &str) -> Result<TimeDelta, WhenError> {
    let bad = || WhenError::Duration(raw.to_owned());
    let text = raw.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = TimeDelta::zero();
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let part = match c {
            's' => TimeDelta::try_seconds(n),
            'm' => TimeDelta::try_minutes(n),
            'h' => TimeDelta::try_hours(n),
            'd' => TimeDelta::try_days(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    if total <= TimeDelta::zero() {
        return Err(WhenError::Empty(raw.to_owned()));
    }
    Ok(total)
}

/// When a window starts, from what the person wrote and `now` in their own
/// offset. Whole seconds: Systems Manager's parameters take no fractions.
pub fn parse_start(
    raw: Option<&str>,
    now: DateTime<FixedOffset>,
) -> Result<DateTime<FixedOffset>, WhenError> {
    let now = truncate(now);
    let Some(text) = raw.map(str::trim) else {
        return Ok(now);
    };
    let bad = || WhenError::Start(text.to_owned());
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ahead) = text.strip_prefix('+') {
        let ahead = parse_duration(ahead).map_err(|_| bad())?;
        return Ok(now + ahead);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(truncate(t));
    }
    let offset = *now.offset();
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return local.and_local_timezone(offset).single().ok_or_else(bad);
        }
    }
    for format in ["%H:%M:%S", "%H:%M"] {
        if let Ok(time) = NaiveTime::parse_from_str(text, format) {
            // The next such time: today's if it is still ahead, else tomorrow's.
            let today: NaiveDate = now.date_naive();
            let at = today.and_time(time).and_local_timezone(offset).single();
            let at = at.ok_or_else(bad)?;
            return Ok(if at < now { at + Duration::days(1) } else { at });
        }
    }
    Err(bad())
}

fn truncate(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// A length of time for people: `1h 30m`, `45s`, `2d 3h`.
pub fn human_duration(d: TimeDelta) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jst(raw: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(raw).expect("time")
    }

    #[test]
    fn given_number_unit_pairs_when_parsed_then_they_add_up() {
        assert_eq!(parse_duration("2h"), Ok(TimeDelta::hours(2)));
        assert_eq!(parse_duration("1h30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("45s"), Ok(TimeDelta::seconds(45)));
        assert_eq!(parse_duration("1d"), Ok(TimeDelta::days(1)));
        assert_eq!(parse_duration(" 90m "), Ok(TimeDelta::minutes(90)));
    }

    #[test]
    fn given_no_unit_an_unknown_unit_or_zero_when_parsed_then_it_says_how_to_write_one() {
        for raw in ["2", "h", "2x", "", "1.5h", "-1h", "99999999999999999999h"] {
            let e = parse_duration(raw).expect_err(raw);
            assert!(e.to_string().contains("e.g. 30m, 2h"), "{raw}: {e}");
        }
        assert_eq!(parse_duration("0m"), Err(WhenError::Empty("0m".into())));
    }

    #[test]
    fn given_no_start_or_now_when_parsed_then_it_is_now_in_whole_seconds() {
        let now = jst("2026-12-04T10:00:00.750+09:00");
        assert_eq!(parse_start(None, now), Ok(jst("2026-12-04T10:00:00+09:00")));
        assert_eq!(
            parse_start(Some("now"), now),
            Ok(jst("2026-12-04T10:00:00+09:00"))
        );
    }

    #[test]
    fn given_a_relative_start_when_parsed_then_it_counts_from_now() {
        let now = jst("2026-12-04T10:00:00+09:00");
        assert_eq!(
            parse_start(Some("+30m"), now),
            Ok(jst("2026-12-04T10:30:00+09:00"))
        );
    }

    #[test]
    fn given_a_clock_time_when_parsed_then_it_is_the_next_one_in_the_local_offset() {
        let now = jst("2026-12-04T10:00:00+09:00");
        assert_eq!(
            parse_start(Some("18:00"), now),
            Ok(jst("2026-12-04T18:00:00+09:00"))
        );
        assert_eq!(
            parse_start(Some("09:30"), now),
            Ok(jst("2026-12-05T09:30:00+09:00"))
        );
        assert_eq!(
            parse_start(Some("10:00"), now),
            Ok(jst("2026-12-04T10:00:00+09:00"))
        );
    }

    #[test]
    fn given_a_date_and_time_when_parsed_then_it_is_local_unless_it_has_an_offset() {
        let now = jst("2026-12-04T10:00:00+09:00");
        assert_eq!(
            parse_start(Some("2026-12-05 18:00"), now),
            Ok(jst("2026-12-05T18:00:00+09:00"))
        );
        assert_eq!(
            parse_start(Some("2026-12-05T09:00:00Z"), now),
            Ok(jst("2026-12-05T09:00:00Z"))
        );
    }

    #[test]
    fn given_something_else_when_parsed_then_the_error_shows_every_accepted_form() {
        let now = jst("2026-12-04T10:00:00+09:00");
        let e = parse_start(Some("tomorrow"), now).expect_err("refused");
        assert!(e.to_string().contains("+30m"), "{e}");
        assert!(parse_start(Some("25:00"), now).is_err());
        assert!(parse_start(Some("+soon"), now).is_err());
    }

    #[test]
    fn given_lengths_when_shown_then_only_nonzero_units_appear() {
        assert_eq!(human_duration(TimeDelta::minutes(90)), "1h 30m");
        assert_eq!(human_duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(human_duration(TimeDelta::seconds(-5)), "0s");
        assert_eq!(human_duration(TimeDelta::hours(51)), "2d 3h");
    }
}
