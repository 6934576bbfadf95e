//! A request as a person wants to see it: waiting (and who may approve),
//! approved and not started, granted (time left), refused (why), ended
//! (why). Pure: from Systems Manager's record, changegate's decision record
//! and `now`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use changegate::execution::Execution;
use changegate::record::{DecisionRecord, State};
use changegate::request::parse_parameters;
use changegate::status::Status;
use changegate::window::human_time;

use crate::error::Exit;
use crate::when::human_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Waiting,
    Approved,
    Granted,
    Refused,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub id: String,
    pub phase: Phase,
    /// One line: where the request stands, in words.
    pub summary: String,
    pub filed_by: Option<String>,
    pub user: Option<String>,
    pub account: Option<String>,
    pub role: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// The refusal's code, when refused.
    pub refusal: Option<String>,
    /// The command that comes next.
    pub next: String,
    /// Whether changegate granted it (the policy is on the user, or was
    /// until the window ended): true from approval of a later window on.
    pub granted: bool,
}

impl View {
    /// The exit code `status` ends with for this request.
    pub fn exit(&self) -> Exit {
        match self.phase {
            Phase::Granted | Phase::Ended => Exit::Ok,
            Phase::Waiting | Phase::Approved => Exit::Waiting,
            Phase::Refused => Exit::Refused,
        }
    }
}

/// The view of request `id`. `approvers`: who may approve (the deployment's).
pub fn view(
    id: &str,
    exec: &Execution,
    record: Option<&DecisionRecord>,
    approvers: &[String],
    role: &str,
    now: DateTime<Utc>,
) -> View {
    let params = exec
        .parameters()
        .and_then(|p| parse_parameters(p, true).ok());
    let window = params.as_ref().map(|p| p.window.clone());
    let mut v = View {
        id: id.to_owned(),
        phase: Phase::Waiting,
        summary: String::new(),
        filed_by: exec.executed_by.clone(),
        user: params.as_ref().map(|p| p.user.to_string()),
        account: params.as_ref().map(|p| p.account.to_string()),
        role: Some(role.to_owned()),
        start: window.as_ref().map(|w| w.start_utc()),
        end: window.as_ref().map(|w| w.end_utc()),
        reason: params.as_ref().and_then(|p| p.reason.clone()),
        refusal: None,
        next: format!("changegate status {id}"),
        granted: record.is_some_and(|r| r.state == Some(State::Granted)),
    };
    if let Some(g) = record.and_then(|r| r.grant.as_ref()) {
        v.role = Some(g.role.clone());
    }
    let (phase, summary, next) = match record {
        Some(r) if r.revoked.is_some() || r.ended.is_some() => {
            let (at, cause) = match (&r.revoked, &r.ended) {
                (Some(rv), _) => (rv.at, rv.cause.describe()),
                (None, Some(e)) => (e.at, e.cause.describe()),
                (None, None) => unreachable!("matched above"),
            };
            let by = r
                .ended
                .as_ref()
                .and_then(|e| e.by.as_ref())
                .map(|b| {
                    if b.reason.is_empty() {
                        format!(" (by {})", b.who)
                    } else {
                        format!(" (by {}: {})", b.who, b.reason)
                    }
                })
                .unwrap_or_default();
            (
                Phase::Ended,
                format!("ended at {}: {cause}{by}", human_time(at.fixed_offset())),
                "changegate request ACCOUNT --for 1h  (to ask again)".to_owned(),
            )
        }
        Some(r) if r.state == Some(State::Refused) => {
            v.refusal = r.reason_code.clone();
            (
                Phase::Refused,
                format!(
                    "refused: {}",
                    r.reason.as_deref().unwrap_or("no reason recorded")
                ),
                "fix what the reason says, then changegate request again".to_owned(),
            )
        }
        Some(r) if r.state == Some(State::Granted) => match &window {
            Some(w) if w.has_ended(now) => (
                Phase::Ended,
                format!(
                    "the window ended at {}; the policy is removed within a minute",
                    human_time(w.end())
                ),
                "changegate request ACCOUNT --for 1h  (to ask again)".to_owned(),
            ),
            Some(w) if now < w.start_utc() => (
                Phase::Approved,
                format!(
                    "approved; access from {} (in {}) until {}",
                    human_time(w.start()),
                    human_duration(w.start_utc() - now),
                    human_time(w.end())
                ),
                format!("changegate assume {id}  (from the start of the window)"),
            ),
            Some(w) => (
                Phase::Granted,
                format!(
                    "granted until {} ({} left)",
                    human_time(w.end()),
                    human_duration(w.end_utc() - now)
                ),
                format!("changegate assume {id}   or   changegate end {id}"),
            ),
            None => (
                Phase::Granted,
                "granted".to_owned(),
                format!("changegate assume {id}"),
            ),
        },
        Some(_) => (
            Phase::Approved,
            "approved; changegate is attaching the access now".to_owned(),
            format!("changegate status {id}"),
        ),
        None if exec.status.ends_access() => (
            Phase::Ended,
            format!(
                "ended before any decision: Systems Manager reports {}",
                exec.status
            ),
            "changegate request ACCOUNT --for 1h  (to ask again)".to_owned(),
        ),
        // Queued: the account runs as many automations as its quota allows
        // (100 by default; AWS queues the rest), so the approvers have not
        // been asked yet.
        None if exec.status == Status::Pending => (
            Phase::Waiting,
            "queued by Systems Manager: the account already runs its maximum of concurrent automations (100 by default), so your approvers are not asked yet; it starts by itself when one ends".to_owned(),
            format!("changegate status {id}  (or ask your AWS admins to raise the quota)"),
        ),
        None if exec.status == Status::Waiting => (
            Phase::Waiting,
            format!(
                "waiting for approval by {}",
                if approvers.is_empty() {
                    "the deployment's approvers".to_owned()
                } else {
                    approvers.join(", ")
                }
            ),
            format!("an approver runs: changegate approve {id}"),
        ),
        None => (
            Phase::Approved,
            format!(
                "approved; Systems Manager reports {}, changegate has not decided yet",
                exec.status
            ),
            format!("changegate status {id}"),
        ),
    };
    v.phase = phase;
    v.summary = summary;
    v.next = next;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use changegate::execution::{Origin, Versions};
    use changegate::ids::ChangeRequestId;
    use changegate::request::RawParameters;

    const ID: &str = "d0585556-80f6-4522-8dad-dada6d45b67d";

    fn exec(status: Status) -> Execution {
        let params: RawParameters = [
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", "2026-12-04T18:00:00+09:00"),
            ("EndTime", "2026-12-04T20:00:00+09:00"),
            ("Reason", "INC-4711"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
        .collect();
        Execution {
            status,
            executed_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            origin: Origin::Automation {
                document: "runbook".into(),
                parameters: params,
            },
            approval_steps: Vec::new(),
            versions: Versions::default(),
        }
    }

    fn record(state: State) -> DecisionRecord {
        let mut item = changegate::record::Item::new();
        item.insert(
            changegate::record::attr::STATE.into(),
            changegate::record::Value::S(state.as_str().into()),
        );
        let mut r = DecisionRecord::from_item(&ChangeRequestId::parse(ID).expect("id"), &item);
        r.reason_code = Some("not-eligible".into());
        r.reason = Some("alice is not eligible for account 111122223333.".into());
        r
    }

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).expect("time").to_utc()
    }

    #[test]
    fn given_no_decision_and_a_waiting_execution_when_viewed_then_it_waits_for_the_approvers() {
        let v = view(
            ID,
            &exec(Status::Waiting),
            None,
            &["bob".into()],
            "CM-Prd-role",
            at("2026-12-04T08:00:00Z"),
        );
        assert_eq!(v.phase, Phase::Waiting);
        assert!(!v.granted);
        assert!(v.summary.contains("bob"), "{}", v.summary);
        assert_eq!(v.exit(), Exit::Waiting);
        assert_eq!(v.reason.as_deref(), Some("INC-4711"));
    }

    #[test]
    fn given_a_request_queued_by_systems_manager_when_shown_then_it_waits_and_says_why() {
        // Given a request over the account's concurrent-automation quota
        let v = view(
            ID,
            &exec(Status::Pending),
            None,
            &["bob".into()],
            "CM-Prd-role",
            at("2026-12-04T08:00:00Z"),
        );
        // Then it waits, and says it is queued and why
        assert_eq!(v.phase, Phase::Waiting);
        assert_eq!(v.exit(), Exit::Waiting);
        assert!(
            v.summary.starts_with("queued by Systems Manager"),
            "{}",
            v.summary
        );
        assert!(
            v.summary.contains("concurrent automations"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn given_a_refusal_when_viewed_then_its_reason_is_shown_in_words() {
        let r = record(State::Refused);
        let v = view(
            ID,
            &exec(Status::InProgress),
            Some(&r),
            &[],
            "CM-Prd-role",
            at("2026-12-04T08:00:00Z"),
        );
        assert_eq!(v.phase, Phase::Refused);
        assert!(v.summary.contains("not eligible"), "{}", v.summary);
        assert_eq!(v.refusal.as_deref(), Some("not-eligible"));
        assert_eq!(v.exit(), Exit::Refused);
    }

    #[test]
    fn given_a_grant_when_viewed_before_in_and_after_its_window_then_approved_granted_ended() {
        let r = record(State::Granted);
        let e = exec(Status::InProgress);
        let before = view(
            ID,
            &e,
            Some(&r),
            &[],
            "CM-Prd-role",
            at("2026-12-04T08:30:00Z"),
        );
        assert_eq!(before.phase, Phase::Approved);
        assert!(before.granted, "a later window is granted already");
        assert!(before.summary.contains("in 30m"), "{}", before.summary);
        let inside = view(
            ID,
            &e,
            Some(&r),
            &[],
            "CM-Prd-role",
            at("2026-12-04T10:00:00Z"),
        );
        assert_eq!(inside.phase, Phase::Granted);
        assert!(inside.summary.contains("1h left"), "{}", inside.summary);
        assert!(inside.next.contains("changegate assume"), "{}", inside.next);
        let after = view(
            ID,
            &e,
            Some(&r),
            &[],
            "CM-Prd-role",
            at("2026-12-04T11:00:00Z"),
        );
        assert_eq!(after.phase, Phase::Ended);
    }

    #[test]
    fn given_a_request_stopped_before_any_decision_when_viewed_then_it_ended_with_the_status() {
        let v = view(
            ID,
            &exec(Status::Cancelled),
            None,
            &[],
            "CM-Prd-role",
            at("2026-12-04T08:00:00Z"),
        );
        assert_eq!(v.phase, Phase::Ended);
        assert!(v.summary.contains("Cancelled"), "{}", v.summary);
    }
}
