//! The sweep's sorting of the grants IAM lists. Pure.

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::eligibility::Scope;
use crate::ids::IamUserName;
use crate::policy::{Grant, UserPolicy};

/// The listed grants, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Their window has ended.
    pub ended: Vec<Grant>,
    /// Their window has not ended, but their user may no longer hold them, and why.
    pub lost: Vec<(Grant, String)>,
    /// The rest: their request may still have ended (the sweep asks).
    pub active: Vec<Grant>,
}

/// Sorts the listed policies into grants whose window has ended, grants
/// their user is no longer eligible for (held to `scope`, when the
/// deployment gives one), and the active ones. Pure.
pub fn sort_grants(policies: &[UserPolicy], now: DateTime<Utc>, scope: Option<&Scope>) -> Sorted {
    let mut sorted = Sorted::default();
    for p in policies {
        let grant = IamUserName::parse(&p.user)
            .map_err(|e| e.to_string())
            .and_then(|user| {
                Grant::from_policy(&user, &p.name, &p.document).map_err(|e| e.to_string())
            });
        let g = match grant {
            Ok(g) => g,
            Err(why) => {
                warn!(user = %p.user, policy = %p.name, why = %why, "not a changegate grant; left alone");
                continue;
            }
        };
        if g.window.has_ended(now) {
            sorted.ended.push(g);
            continue;
        }
        let lost =
            scope.and_then(|s| s.lost(&g.user, p.eligibility.as_deref(), &g.account, &g.role));
        match lost {
            Some(why) => sorted.lost.push((g, why)),
            None => sorted.active.push(g),
        }
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;
    use crate::policy::tests::grant;

    fn listed(g: &Grant) -> UserPolicy {
        UserPolicy {
            user: g.user.to_string(),
            name: g.policy_name(),
            document: g.document_json(),
            eligibility: Some(g.account.to_string()),
        }
    }

    fn scope(g: &Grant) -> Scope {
        Scope {
            target_role: g.role.clone(),
            allowed_accounts: [g.account.clone()].into(),
        }
    }

    #[test]
    fn given_grants_around_now_when_sorting_then_only_those_whose_end_has_passed_are_ended() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let ended = grant("2026-12-01T09:00:00Z", "2026-12-01T09:59:59Z");
        let ends_now = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let running = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:01Z");
        let future = grant("2026-12-02T09:00:00Z", "2026-12-02T10:00:00Z");
        let sorted = sort_grants(
            &[
                listed(&ended),
                listed(&ends_now),
                listed(&running),
                listed(&future),
            ],
            now,
            Some(&scope(&ended)),
        );
        assert_eq!(sorted.ended, vec![ended, ends_now]);
        assert_eq!(sorted.active, vec![running, future]);
        assert!(sorted.lost.is_empty());
    }

    #[test]
    fn given_a_foreign_policy_with_the_prefix_when_sorting_then_it_is_never_touched() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let mut foreign = listed(&g);
        foreign.document = foreign.document.replace("sts:AssumeRole", "iam:*");
        assert_eq!(sort_grants(&[foreign], now, None), Sorted::default());
    }

    #[test]
    fn given_users_who_lost_eligibility_when_sorting_then_their_unended_grants_are_lost_with_why() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let running = grant("2026-12-01T09:00:00Z", "2026-12-01T11:00:00Z");
        let scope = scope(&running);
        // Given the tag gone, the tag naming another role, and the account off the allowlist.
        let mut untagged = listed(&running);
        untagged.eligibility = None;
        let mut other_role = listed(&running);
        other_role.eligibility = Some(format!("{}/ReadOnlyProd", running.account));
        let mut off_list = running.clone();
        off_list.account = AccountId::parse("999988887777").unwrap();
        let mut off_listed = listed(&off_list);
        off_listed.eligibility = Some("999988887777".to_owned());
        let sorted = sort_grants(&[untagged, other_role, off_listed], now, Some(&scope));
        assert!(sorted.active.is_empty() && sorted.ended.is_empty());
        let whys: Vec<&str> = sorted.lost.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(whys.len(), 3);
        assert!(whys[0].contains("no longer lists account"), "{}", whys[0]);
        assert!(
            whys[1].contains("now names role ReadOnlyProd"),
            "{}",
            whys[1]
        );
        assert!(whys[2].contains("allowed accounts"), "{}", whys[2]);
        assert_eq!(sorted.lost[2].0, off_list);
        // Without a scope, eligibility is not re-checked.
        let mut untagged = listed(&running);
        untagged.eligibility = None;
        assert_eq!(
            sort_grants(&[untagged], now, None).active,
            vec![running.clone()]
        );
        // An ended window goes as ended, whatever the tag says.
        let ended = grant("2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z");
        let mut gone = listed(&ended);
        gone.eligibility = None;
        assert_eq!(sort_grants(&[gone], now, Some(&scope)).ended, vec![ended]);
    }
}
