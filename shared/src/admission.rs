//! Admission: how many requests one person may hold open at once. Pure.
//!
//! Every open Automation execution takes one of the account's concurrent
//! executions (AWS: 100 by default; more are queued), and a request
//! runbook's stays open through its approval wait (it ends once decided).
//! So one person may hold at most `CHANGEGATE_MAX_OPEN_REQUESTS` open requests; a
//! request beyond that is refused and stopped. Which ones: the person's open
//! executions of the request runbook, oldest first (by start time, then
//! id); those past the limit are refused, so every invocation, whenever it
//! looks, picks the same ones, and an earlier request never loses its place
//! to a later one.

use chrono::{DateTime, Utc};

use crate::ids::UserArn;
use crate::refusal::Refusal;

/// The execution statuses of a runbook still running, or queued to run
/// (`DescribeAutomationExecutions`' `ExecutionStatus` filter takes at most 10).
pub const OPEN_STATUSES: [&str; 4] = ["Pending", "InProgress", "Waiting", "Cancelling"];

/// One open Automation execution, as `DescribeAutomationExecutions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRun {
    pub id: String,
    pub document: String,
    /// `ExecutedBy`: who started it.
    pub executed_by: Option<String>,
    pub started: Option<DateTime<Utc>>,
}

/// Whether execution `this`, of `document` and started by `requester`, is
/// admitted, given the account's open executions `open` (the listing may
/// lag: `this` not in it counts as the newest). Executions of other
/// documents, or started by anyone else, do not count.
pub fn admit(
    this: &str,
    document: &str,
    requester: &UserArn,
    open: &[OpenRun],
    max: usize,
) -> Result<(), Refusal> {
    let mut theirs: Vec<&OpenRun> = open
        .iter()
        .filter(|r| r.document == document)
        .filter(|r| {
            r.executed_by
                .as_deref()
                .and_then(UserArn::parse)
                .is_some_and(|by| by == *requester)
        })
        .collect();
    // Oldest first; an unknown start time sorts last, then by id.
    theirs.sort_by(|a, b| {
        (a.started.is_none(), a.started, &a.id).cmp(&(b.started.is_none(), b.started, &b.id))
    });
    let before: Vec<&str> = theirs
        .iter()
        .map(|r| r.id.as_str())
        .take_while(|id| *id != this)
        .collect();
    if before.len() < max {
        return Ok(());
    }
    Err(Refusal::TooManyOpenRequests {
        requester: requester.user.to_string(),
        open: before.len(),
        older: before.join(", "),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "changegate-access-request";
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    fn run(id: &str, by: &str, minute: u32) -> OpenRun {
        OpenRun {
            id: id.to_owned(),
            document: RUNBOOK.to_owned(),
            executed_by: Some(by.to_owned()),
            started: Some(format!("2026-12-01T09:{minute:02}:00Z").parse().unwrap()),
        }
    }

    fn alice() -> UserArn {
        UserArn::parse(ALICE).unwrap()
    }

    #[test]
    fn given_fewer_older_requests_than_the_limit_when_admitting_then_the_request_is_admitted() {
        let open = [run("a", ALICE, 1), run("b", ALICE, 2), run("c", ALICE, 3)];
        assert_eq!(admit("c", RUNBOOK, &alice(), &open, 3), Ok(()));
        // The last one the limit admits, exactly at it.
        assert_eq!(admit("b", RUNBOOK, &alice(), &open, 2), Ok(()));
    }

    #[test]
    fn given_as_many_older_requests_as_the_limit_when_admitting_then_it_is_refused_naming_them() {
        let open = [run("c", ALICE, 3), run("a", ALICE, 1), run("b", ALICE, 2)];
        let refused = admit("c", RUNBOOK, &alice(), &open, 2).unwrap_err();
        assert_eq!(refused.code(), "too-many-open-requests");
        assert_eq!(
            refused,
            Refusal::TooManyOpenRequests {
                requester: "alice".to_owned(),
                open: 2,
                older: "a, b".to_owned(),
                max: 2,
            }
        );
        assert_eq!(
            refused.to_string(),
            "alice already has 2 open requests (a, b), and at most 2 may be open at once, so \
             this request was stopped. Stop one you no longer need (aws ssm \
             stop-automation-execution --automation-execution-id ID) or wait for one to end, \
             then file again."
        );
        // And the older ones keep their places, whoever looks.
        assert_eq!(admit("a", RUNBOOK, &alice(), &open, 2), Ok(()));
        assert_eq!(admit("b", RUNBOOK, &alice(), &open, 2), Ok(()));
    }

    #[test]
    fn given_a_request_the_listing_does_not_show_yet_when_admitting_then_it_counts_as_the_newest() {
        let open = [run("a", ALICE, 1), run("b", ALICE, 2)];
        assert!(admit("new", RUNBOOK, &alice(), &open, 2).is_err());
        assert_eq!(admit("new", RUNBOOK, &alice(), &open, 3), Ok(()));
    }

    #[test]
    fn given_other_peoples_and_other_documents_runs_when_admitting_then_only_the_requesters_own_count()
     {
        let bob = "arn:aws:iam::123456789012:user/bob";
        let mut other_doc = run("x", ALICE, 0);
        other_doc.document = "AWS-RestartEC2Instance".to_owned();
        let mut prefixed = run("y", ALICE, 0);
        prefixed.document = format!("{RUNBOOK}-staging");
        let role = "arn:aws:sts::123456789012:assumed-role/alice/alice";
        let other_account = "arn:aws:iam::999988887777:user/alice";
        let open = [
            run("b1", bob, 0),
            other_doc,
            prefixed,
            run("r", role, 0),
            run("o", other_account, 0),
            run("mine", ALICE, 5),
        ];
        assert_eq!(admit("mine", RUNBOOK, &alice(), &open, 1), Ok(()));
        // The same user in another case is the same person (IAM names ignore case).
        let shouting = run("a0", "arn:aws:iam::123456789012:user/ALICE", 0);
        assert!(
            admit(
                "mine",
                RUNBOOK,
                &alice(),
                &[shouting, run("mine", ALICE, 5)],
                1
            )
            .is_err()
        );
    }

    #[test]
    fn given_equal_or_unknown_start_times_when_admitting_then_ids_and_known_times_decide_the_order()
    {
        let mut unknown = run("a-unknown", ALICE, 0);
        unknown.started = None;
        let open = [run("b", ALICE, 1), run("a", ALICE, 1), unknown];
        assert_eq!(admit("a", RUNBOOK, &alice(), &open, 1), Ok(()));
        assert!(admit("b", RUNBOOK, &alice(), &open, 1).is_err());
        let refused = admit("a-unknown", RUNBOOK, &alice(), &open, 2).unwrap_err();
        assert!(matches!(
            refused,
            Refusal::TooManyOpenRequests { open: 2, .. }
        ));
    }
}
