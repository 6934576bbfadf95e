//! Events in and out: Change Manager's status updates, and changegate's own
//! `Access Granted` / `Access Refused` / `Access Revoked` events.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ChangeRequestId, IamUserName, RoleName};
use crate::policy::Grant;
use crate::refusal::Refusal;
use crate::status::Status;
use crate::window::{Window, offset_string, parse_offset, parse_time, utc_string};

pub const SOURCE_SSM: &str = "aws.ssm";
pub const DETAIL_CHANGE_REQUEST: &str = "Change Request Status Update";
pub const DETAIL_AUTOMATION_STEP: &str = "EC2 Automation Step Status-change Notification";
pub const DETAIL_AUTOMATION_EXECUTION: &str = "EC2 Automation Execution Status-change Notification";
pub const SOURCE_CHANGEGATE: &str = "changegate";
pub const DETAIL_GRANTED: &str = "Access Granted";
pub const DETAIL_REFUSED: &str = "Access Refused";
pub const DETAIL_REVOKED: &str = "Access Revoked";

/// The part of a `Change Request Status Update` that changegate reads.
/// It carries no runbook parameters: those come from Systems Manager.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChangeRequestStatus {
    pub change_request_id: String,
    #[serde(default)]
    pub change_request_title: Option<String>,
    #[serde(default)]
    pub ops_item_created_by: Option<String>,
    pub ops_item_status: String,
    #[serde(default)]
    pub approvers: Vec<String>,
}

/// The part of a plain Automation step or execution status event that
/// changegate reads: which execution, and (for steps) which step did what.
/// Like every event, it only wakes a function up; Systems Manager is asked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutomationStatus {
    pub execution_id: String,
    #[serde(default)]
    pub definition: Option<String>,
    pub status: String,
    #[serde(default)]
    pub step_name: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

/// A window as carried on changegate's events: UTC instants plus the offsets
/// the requester wrote, so messages can show both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WindowDetail {
    pub start: String,
    pub end: String,
    pub start_offset: String,
    pub end_offset: String,
}

impl From<&Window> for WindowDetail {
    fn from(w: &Window) -> Self {
        Self {
            start: utc_string(w.start_utc()),
            end: utc_string(w.end_utc()),
            start_offset: offset_string(*w.start().offset()),
            end_offset: offset_string(*w.end().offset()),
        }
    }
}

impl WindowDetail {
    /// The window back in the requester's offsets, if the detail is well formed.
    pub fn to_window(&self) -> Option<Window> {
        Window::new(
            in_offset(&self.start, &self.start_offset)?,
            in_offset(&self.end, &self.end_offset)?,
        )
        .ok()
    }
}

/// A time as events carry it (`time`, RFC 3339) in an offset as they carry
/// it (`offset`: `Z` or `+09:00`); `None` when either is malformed.
pub fn in_offset(time: &str, offset: &str) -> Option<DateTime<FixedOffset>> {
    let utc = parse_time(time).ok()?;
    let offset = if offset == "Z" {
        Utc.fix()
    } else {
        parse_offset(offset).ok()?
    };
    Some(utc.with_timezone(&offset))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessGranted {
    pub change_request_id: ChangeRequestId,
    /// Who receives access.
    pub user: IamUserName,
    /// Who filed the request: the same as `user` unless delegated requests are allowed.
    pub requester: IamUserName,
    /// Who approved (other than the requester), as Systems Manager recorded them.
    pub approvers: Vec<String>,
    pub account: AccountId,
    pub role: RoleName,
    pub role_arn: String,
    pub policy_name: String,
    pub window: WindowDetail,
    /// How it was requested: `change-manager` or `automation`.
    #[serde(default)]
    pub source: Option<String>,
    /// The requester's reason (request runbook only), cleaned for display.
    #[serde(default)]
    pub request_reason: Option<String>,
    /// Whether changegate cuts live sessions at the window's end (the session cut is on).
    #[serde(default)]
    pub sessions_cut: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessRefused {
    pub change_request_id: ChangeRequestId,
    /// The requester's IAM user name, when the request was filed by an IAM user.
    pub user: Option<IamUserName>,
    pub requester_arn: Option<String>,
    pub reason_code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessRevoked {
    pub change_request_id: ChangeRequestId,
    pub user: IamUserName,
    pub account: AccountId,
    pub role: RoleName,
    pub role_arn: String,
    pub policy_name: String,
    pub window: WindowDetail,
    pub revoked_at: String,
    /// Why now: `window-ended`, `operator`, `ended-on-request`,
    /// `no-longer-eligible`, or the request's status when it ended early.
    pub cause: String,
    /// For `window-ended`: milliseconds from the window's end to the removal.
    #[serde(default)]
    pub revocation_lag_ms: Option<i64>,
    /// What happened to live sessions in production, when sessions are cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<String>,
    /// Who ended it through the end runbook, when someone did (as Systems
    /// Manager recorded who started it: an operator, or the request's people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// Their reason (empty when they gave none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

/// The input of a grant's one-time expiry schedule, handed to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryInput {
    #[serde(rename = "changegate-expiry")]
    pub expiry: ExpiryTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExpiryTarget {
    pub change_request_id: String,
    /// The user's name when granted.
    pub user: String,
    /// IAM's unique id of the user when granted: expiry finds a renamed user
    /// by it (absent in schedules written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl AccessRevoked {
    /// The revocation of `grant` at `at`; at a window's end it carries its lag.
    pub fn of(grant: &Grant, at: DateTime<Utc>, cause: &Cause) -> Self {
        Self {
            change_request_id: grant.change_request.clone(),
            // The person as granted (and announced then), whatever IAM calls them now.
            user: grant.session_name.clone(),
            account: grant.account.clone(),
            role: grant.role.clone(),
            role_arn: grant.role_arn(),
            policy_name: grant.policy_name(),
            window: WindowDetail::from(&grant.window),
            revoked_at: utc_string(at),
            cause: cause.as_str().to_owned(),
            revocation_lag_ms: (*cause == Cause::WindowEnded)
                .then(|| (at - grant.window.end_utc()).num_milliseconds()),
            sessions: None,
            ended_by: None,
            end_reason: None,
        }
    }
}

/// Why a grant is removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Its window ended.
    WindowEnded,
    /// Systems Manager reports its request ended before the window did.
    EndedEarly(Status),
    /// An operator revoked it.
    Operator,
    /// The person who filed the request, or the one it is for, ended it
    /// early (the end runbook, whose starter Systems Manager records).
    EndedOnRequest,
    /// Its extension (a later request for the same person, account and
    /// role covering the rest of its window) was granted: the access goes on
    /// under that one, and this grant is retired without cutting sessions.
    Extended,
    /// Its user is no longer eligible for it: the eligibility tag no longer
    /// covers its account and role, or the account left the allowlist.
    NoLongerEligible,
}

/// The `cause` of a revocation at the end of its window.
pub const CAUSE_WINDOW_ENDED: &str = "window-ended";
pub const CAUSE_OPERATOR: &str = "operator";
pub const CAUSE_ENDED_ON_REQUEST: &str = "ended-on-request";
pub const CAUSE_EXTENDED: &str = "extended";
pub const CAUSE_NO_LONGER_ELIGIBLE: &str = "no-longer-eligible";

impl Cause {
    pub fn as_str(&self) -> &str {
        match self {
            Self::WindowEnded => CAUSE_WINDOW_ENDED,
            Self::EndedEarly(status) => status.as_str(),
            Self::Operator => CAUSE_OPERATOR,
            Self::EndedOnRequest => CAUSE_ENDED_ON_REQUEST,
            Self::Extended => CAUSE_EXTENDED,
            Self::NoLongerEligible => CAUSE_NO_LONGER_ELIGIBLE,
        }
    }

    /// Read back from an event or record; an unrecognised cause is an early end with that status.
    pub fn parse(raw: &str) -> Self {
        match raw {
            CAUSE_WINDOW_ENDED => Self::WindowEnded,
            CAUSE_OPERATOR => Self::Operator,
            CAUSE_ENDED_ON_REQUEST => Self::EndedOnRequest,
            CAUSE_EXTENDED => Self::Extended,
            CAUSE_NO_LONGER_ELIGIBLE => Self::NoLongerEligible,
            status => Self::EndedEarly(Status::parse(status)),
        }
    }

    /// In words, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::WindowEnded => "the window ended".to_owned(),
            Self::EndedEarly(status) => format!("the request is {status}"),
            Self::Operator => "an operator revoked it".to_owned(),
            Self::EndedOnRequest => {
                "it was ended early by its requester or the person it is for".to_owned()
            }
            Self::Extended => {
                "its extension was granted: the access goes on under that request".to_owned()
            }
            Self::NoLongerEligible => "the user is no longer eligible for this account and role (the changegate:eligible tag on the IAM user, or the deployment's allowed accounts, no longer include it)".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangegateEvent {
    Granted(AccessGranted),
    Refused(AccessRefused),
    Revoked(AccessRevoked),
}

impl ChangegateEvent {
    pub fn granted(
        grant: &Grant,
        requester: &IamUserName,
        approvers: &[String],
        source: &str,
        reason: Option<String>,
    ) -> Self {
        Self::Granted(AccessGranted {
            change_request_id: grant.change_request.clone(),
            user: grant.user.clone(),
            requester: requester.clone(),
            approvers: approvers.to_vec(),
            account: grant.account.clone(),
            role: grant.role.clone(),
            role_arn: grant.role_arn(),
            policy_name: grant.policy_name(),
            window: WindowDetail::from(&grant.window),
            source: Some(source.to_owned()),
            request_reason: reason,
            sessions_cut: false,
        })
    }

    pub fn refused(
        change_request_id: &ChangeRequestId,
        user: Option<IamUserName>,
        requester_arn: Option<String>,
        refusal: &Refusal,
    ) -> Self {
        Self::Refused(AccessRefused {
            change_request_id: change_request_id.clone(),
            user,
            requester_arn,
            reason_code: refusal.code().to_owned(),
            reason: refusal.to_string(),
        })
    }

    pub fn revoked(grant: &Grant, at: DateTime<Utc>, cause: &Cause) -> Self {
        Self::Revoked(AccessRevoked::of(grant, at, cause))
    }

    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::Granted(_) => DETAIL_GRANTED,
            Self::Refused(_) => DETAIL_REFUSED,
            Self::Revoked(_) => DETAIL_REVOKED,
        }
    }

    pub fn detail_json(&self) -> String {
        let json = match self {
            Self::Granted(d) => serde_json::to_string(d),
            Self::Refused(d) => serde_json::to_string(d),
            Self::Revoked(d) => serde_json::to_string(d),
        };
        json.unwrap_or_else(|_| unreachable!("plain structs serialise"))
    }

    pub fn change_request_id(&self) -> &ChangeRequestId {
        match self {
            Self::Granted(d) => &d.change_request_id,
            Self::Refused(d) => &d.change_request_id,
            Self::Revoked(d) => &d.change_request_id,
        }
    }
}

/// Any event changegate's functions are wired to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    ChangeRequest(ChangeRequestStatus),
    AutomationStep(AutomationStatus),
    AutomationExecution(AutomationStatus),
    Changegate(Box<ChangegateEvent>),
    Scheduled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrecognised {
    #[error("events from source {from:?} with detail-type {detail_type:?} are not handled")]
    Kind { from: String, detail_type: String },
    #[error("the {detail_type:?} detail is malformed: {why}")]
    Detail { detail_type: String, why: String },
}

impl Incoming {
    pub fn parse(event: EventBridgeEvent) -> Result<Self, Unrecognised> {
        let detail_type = event.detail_type;
        let malformed = |e: serde_json::Error| Unrecognised::Detail {
            detail_type: detail_type.clone(),
            why: e.to_string(),
        };
        let detail = event.detail;
        match (event.source.as_str(), detail_type.as_str()) {
            (SOURCE_SSM, DETAIL_CHANGE_REQUEST) => serde_json::from_value(detail)
                .map(Self::ChangeRequest)
                .map_err(malformed),
            (SOURCE_SSM, DETAIL_AUTOMATION_STEP) => serde_json::from_value(detail)
                .map(Self::AutomationStep)
                .map_err(malformed),
            (SOURCE_SSM, DETAIL_AUTOMATION_EXECUTION) => serde_json::from_value(detail)
                .map(Self::AutomationExecution)
                .map_err(malformed),
            (SOURCE_CHANGEGATE, DETAIL_GRANTED) => serde_json::from_value(detail)
                .map(|d| Self::Changegate(Box::new(ChangegateEvent::Granted(d))))
                .map_err(malformed),
            (SOURCE_CHANGEGATE, DETAIL_REFUSED) => serde_json::from_value(detail)
                .map(|d| Self::Changegate(Box::new(ChangegateEvent::Refused(d))))
                .map_err(malformed),
            (SOURCE_CHANGEGATE, DETAIL_REVOKED) => serde_json::from_value(detail)
                .map(|d| Self::Changegate(Box::new(ChangegateEvent::Revoked(d))))
                .map_err(malformed),
            ("aws.events", "Scheduled Event") => Ok(Self::Scheduled),
            (source, _) => Err(Unrecognised::Kind {
                from: source.to_owned(),
                detail_type,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::grant;

    #[test]
    fn given_awss_documented_sample_when_parsed_then_the_status_and_requester_are_read() {
        let event: EventBridgeEvent =
            serde_json::from_str(include_str!("../../events/change-request-aws-sample.json"))
                .unwrap();
        let Incoming::ChangeRequest(cr) = Incoming::parse(event).unwrap() else {
            panic!("not a change request")
        };
        assert_eq!(cr.change_request_id, "d0585556-80f6-4522-8dad-dada6d45b67d");
        assert_eq!(cr.ops_item_status, "InProgress");
        assert_eq!(
            cr.ops_item_created_by.as_deref(),
            Some("arn:aws:iam::123456789012:user/JohnDoe")
        );
        assert_eq!(cr.approvers, vec!["arn:aws:iam::123456789012:user/JaneDoe"]);
    }

    #[test]
    fn given_a_granted_event_when_serialised_and_parsed_back_then_nothing_is_lost() {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let ev = ChangegateEvent::granted(
            &g,
            &g.user,
            &["arn:aws:iam::123456789012:user/bob".to_owned()],
            "automation",
            None,
        );
        let bridge = serde_json::json!({
            "detail-type": ev.detail_type(), "source": SOURCE_CHANGEGATE,
            "detail": serde_json::from_str::<serde_json::Value>(&ev.detail_json()).unwrap(),
        });
        let back = Incoming::parse(serde_json::from_value(bridge).unwrap()).unwrap();
        assert_eq!(back, Incoming::Changegate(Box::new(ev.clone())));
        let ChangegateEvent::Granted(d) = ev else {
            unreachable!()
        };
        assert_eq!(d.window.to_window().unwrap(), g.window);
        assert_eq!(d.window.start, "2026-12-01T09:00:00Z");
        assert_eq!(d.window.start_offset, "+09:00");
    }

    #[test]
    fn given_an_event_from_elsewhere_when_parsed_then_it_is_unrecognised_not_a_panic() {
        let forged = serde_json::json!({"detail-type": DETAIL_GRANTED, "source": SOURCE_CHANGEGATE, "detail": {
            "change-request-id": "x", "user": "alice\"}", "requester": "alice", "approvers": [], "account": "1", "role": "r",
            "role-arn": "", "policy-name": "", "window": {"start": "", "end": "", "start-offset": "", "end-offset": ""}}});
        assert!(
            matches!(
                Incoming::parse(serde_json::from_value(forged).unwrap()),
                Err(Unrecognised::Detail { .. })
            ),
            "untyped values are refused"
        );
        let other = serde_json::json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}});
        assert!(matches!(
            Incoming::parse(serde_json::from_value(other).unwrap()),
            Err(Unrecognised::Kind { .. })
        ));
        let bad = serde_json::json!({"detail-type": DETAIL_CHANGE_REQUEST, "source": SOURCE_SSM, "detail": {"x": 1}});
        assert!(matches!(
            Incoming::parse(serde_json::from_value(bad).unwrap()),
            Err(Unrecognised::Detail { .. })
        ));
    }

    #[test]
    fn given_every_cause_when_written_to_a_record_and_read_back_then_it_is_the_same_cause() {
        for cause in [
            Cause::WindowEnded,
            Cause::Operator,
            Cause::EndedOnRequest,
            Cause::Extended,
            Cause::NoLongerEligible,
            Cause::EndedEarly(Status::Cancelled),
        ] {
            assert_eq!(Cause::parse(cause.as_str()), cause);
        }
        assert!(
            Cause::NoLongerEligible
                .describe()
                .contains("no longer eligible")
        );
    }
}
