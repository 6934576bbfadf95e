//! The decision record: one per request, in changegate's own DynamoDB table
//! (nobody else may write it). It says what was decided, by whose approval,
//! whether people were told, and later how the access ended. Conditional
//! writes (see [`crate::aws::Records`]) make each decision happen once.

use chrono::{DateTime, Utc};

use crate::check::Checked;
use crate::events::{Cause, WindowDetail};
use crate::ids::ChangeRequestId;
use crate::policy::Grant;
use crate::refusal::Refusal;
use crate::window::utc_string;

/// Where the decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Claimed: the policy is being attached (or was, by an attempt that stopped).
    Granting,
    Granted,
    Refused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granting => "granting",
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Granting, Self::Granted, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// The grant as decided: enough to rebuild the policy and every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub source: String,
    pub beneficiary: String,
    pub approvers: Vec<String>,
    pub account: String,
    pub role: String,
    pub window: WindowDetail,
    pub request_reason: Option<String>,
    /// Whether the policy requires sessions named after the user.
    pub named_sessions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub at: String,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub at: String,
    pub cause: String,
    pub lag_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    pub id: ChangeRequestId,
    /// `None` for a tombstone alone: the request ended before any decision.
    pub state: Option<State>,
    pub decided_at: Option<String>,
    /// Who filed the request (ARN), when known.
    pub requester: Option<String>,
    /// Whether the decision was announced (put on changegate's bus).
    pub announced: bool,
    pub grant: Option<Decided>,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    /// Set by an early end or an operator: no grant may start (or stay) after it.
    pub ended: Option<Ended>,
    pub revoked: Option<Revoked>,
}

impl DecisionRecord {
    fn new(id: &ChangeRequestId, state: State, now: DateTime<Utc>) -> Self {
        Self {
            id: id.clone(),
            state: Some(state),
            decided_at: Some(utc_string(now)),
            requester: None,
            announced: false,
            grant: None,
            reason_code: None,
            reason: None,
            ended: None,
            revoked: None,
        }
    }

    /// The claim written before the policy is attached.
    pub fn granting(checked: &Checked, grant: &Grant, now: DateTime<Utc>) -> Self {
        Self {
            grant: Some(Decided {
                source: checked.source.as_str().to_owned(),
                beneficiary: grant.user.to_string(),
                approvers: checked.approvers.clone(),
                account: grant.account.to_string(),
                role: grant.role.to_string(),
                window: WindowDetail::from(&grant.window),
                request_reason: checked.request.reason.clone(),
                named_sessions: grant.named_sessions,
            }),
            requester: Some(checked.requester.to_string()),
            ..Self::new(&checked.id, State::Granting, now)
        }
    }

    pub fn refused(
        id: &ChangeRequestId,
        refusal: &Refusal,
        requester: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            reason_code: Some(refusal.code().to_owned()),
            reason: Some(refusal.to_string()),
            requester,
            ..Self::new(id, State::Refused, now)
        }
    }

    /// The grant this record decided, rebuilt from its fields.
    pub fn to_grant(&self) -> Option<Grant> {
        let d = self.grant.as_ref()?;
        Some(Grant {
            change_request: self.id.clone(),
            user: crate::ids::IamUserName::parse(&d.beneficiary).ok()?,
            account: crate::ids::AccountId::parse(&d.account).ok()?,
            role: crate::ids::RoleName::parse(&d.role).ok()?,
            window: d.window.to_window()?,
            named_sessions: d.named_sessions,
        })
    }

    pub fn end_cause(&self) -> Option<Cause> {
        self.ended.as_ref().map(|e| Cause::parse(&e.cause))
    }
}
