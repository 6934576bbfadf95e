//! The sweep's sorting of the grants IAM lists. Pure.

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::ids::IamUserName;
use crate::policy::{Grant, UserPolicy};

/// Sorts the listed policies into grants whose window has ended and the
/// active ones. Pure.
pub fn sort_grants(policies: &[UserPolicy], now: DateTime<Utc>) -> (Vec<Grant>, Vec<Grant>) {
    let (mut ended, mut active) = (Vec::new(), Vec::new());
    for p in policies {
        let grant = IamUserName::parse(&p.user)
            .map_err(|e| e.to_string())
            .and_then(|user| {
                Grant::from_policy(&user, &p.name, &p.document).map_err(|e| e.to_string())
            });
        match grant {
            Ok(g) if g.window.has_ended(now) => ended.push(g),
            Ok(g) => active.push(g),
            Err(why) => {
                warn!(user = %p.user, policy = %p.name, why = %why, "not a changegate grant; left alone")
            }
        }
    }
    (ended, active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::grant;

    fn listed(g: &Grant) -> UserPolicy {
        UserPolicy {
            user: g.user.to_string(),
            name: g.policy_name(),
            document: g.document_json(),
        }
    }

    #[test]
    fn given_grants_around_now_when_sorting_then_only_those_whose_end_has_passed_are_ended() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let ended = grant("2026-12-01T09:00:00Z", "2026-12-01T09:59:59Z");
        let ends_now = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let running = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:01Z");
        let future = grant("2026-12-02T09:00:00Z", "2026-12-02T10:00:00Z");
        let (exp, active) = sort_grants(
            &[
                listed(&ended),
                listed(&ends_now),
                listed(&running),
                listed(&future),
            ],
            now,
        );
        assert_eq!(exp, vec![ended, ends_now]);
        assert_eq!(active, vec![running, future]);
    }

    #[test]
    fn given_a_foreign_policy_with_the_prefix_when_sorting_then_it_is_never_touched() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let mut foreign = listed(&g);
        foreign.document = foreign.document.replace("sts:AssumeRole", "iam:*");
        let (exp, active) = sort_grants(&[foreign], now);
        assert!(exp.is_empty() && active.is_empty());
    }
}
