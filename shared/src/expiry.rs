//! When a grant's expiry schedule fires (EventBridge Scheduler, one-time
//! `at()` schedules with 60-second precision). Pure.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// When a grant's one-time expiry schedule fires: the window's end rounded up
/// to the next whole minute. EventBridge Scheduler fires an `at()` anywhere
/// inside its minute, so a schedule at the exact end could fire before it.
pub fn expiry_at(end: DateTime<Utc>) -> DateTime<Utc> {
    let minute = TimeDelta::minutes(1);
    let floor = end.duration_trunc(minute).unwrap_or(end);
    if floor == end { end } else { floor + minute }
}

/// Whether a grant ending at `end` gets an expiry schedule at `now`: not when
/// its schedule would fall in the current minute (the sweep removes it).
pub fn wants_expiry_schedule(end: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expiry_at(end) > expiry_at(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn given_window_ends_when_scheduling_expiry_then_at_is_rounded_up_to_the_whole_minute() {
        assert_eq!(
            expiry_at(t("2026-12-01T10:00:00Z")),
            t("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            expiry_at(t("2026-12-01T10:00:00.001Z")),
            t("2026-12-01T10:01:00Z")
        );
        assert_eq!(
            expiry_at(t("2026-12-01T10:00:59Z")),
            t("2026-12-01T10:01:00Z")
        );
    }

    #[test]
    fn given_a_window_ending_within_the_current_minute_when_granting_then_no_schedule_is_made() {
        let now = t("2026-12-01T10:00:20Z");
        assert!(!wants_expiry_schedule(t("2026-12-01T10:00:50Z"), now));
        assert!(!wants_expiry_schedule(t("2026-12-01T10:01:00Z"), now));
        assert!(wants_expiry_schedule(t("2026-12-01T10:01:01Z"), now));
    }
}
