//! What woke a function up, parsed once at the edge. Every trigger only says
//! which request to look at; none is believed (the functions read Systems
//! Manager, IAM and the decision record for the facts).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{ExpiryInput, ExpiryTarget, Incoming};
use crate::status::Status;
use crate::text::shown;

/// The action of an approval step, as Systems Manager names it.
const APPROVE: &str = "aws:approve";

/// The request runbook's own call after its approval step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectInput {
    #[serde(rename = "changegate-request")]
    pub request: DirectRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DirectRequest {
    pub execution_id: String,
}

/// What woke grant up: which request to look at, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Look(String),
    Ignore(String),
}

impl Trigger {
    /// Every trigger only says which request to read; none is believed.
    pub fn parse(input: Value) -> Self {
        if let Ok(DirectInput { request }) = serde_json::from_value::<DirectInput>(input.clone()) {
            return Self::Look(request.execution_id);
        }
        let event = match serde_json::from_value::<EventBridgeEvent>(input) {
            Ok(event) => event,
            Err(e) => return Self::Ignore(format!("not an event changegate handles: {e}")),
        };
        match Incoming::parse(event) {
            Ok(Incoming::ChangeRequest(cr))
                if Status::parse(&cr.ops_item_status).change_request_approved() =>
            {
                Self::Look(cr.change_request_id)
            }
            Ok(Incoming::ChangeRequest(cr)) => Self::Ignore(format!(
                "status {} is not an approval",
                shown(&cr.ops_item_status)
            )),
            Ok(Incoming::AutomationStep(s))
                if s.action.as_deref() == Some(APPROVE)
                    && Status::parse(&s.status) == Status::Success =>
            {
                Self::Look(s.execution_id)
            }
            Ok(Incoming::AutomationStep(_)) => {
                Self::Ignore("not a completed approval step".to_owned())
            }
            Ok(Incoming::AutomationExecution(e))
                if Status::parse(&e.status).automation_past_approval() =>
            {
                Self::Look(e.execution_id)
            }
            Ok(Incoming::AutomationExecution(e)) => Self::Ignore(format!(
                "execution status {} is not past approval",
                shown(&e.status)
            )),
            Ok(_) => Self::Ignore("not a request status update".to_owned()),
            Err(e) => Self::Ignore(e.to_string()),
        }
    }
}

/// The operators' runbook's call: only its own execution id, which revoke
/// reads from Systems Manager ([`crate::operator::authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndInput {
    #[serde(rename = "changegate-end")]
    pub end: EndRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EndRequest {
    pub execution_id: String,
}

/// The bare operator payload of earlier releases, which anyone allowed to
/// invoke revoke could send: recognised only to be refused.
const RETIRED_OPERATOR_PAYLOAD: &str = "changegate-revoke";

/// What revoke was invoked with, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeInput {
    /// A grant's expiry schedule fired.
    Expiry(ExpiryTarget),
    /// The operators' runbook asks to end a request's access now: the id of
    /// its execution, which only says where to look.
    Operator(String),
    /// A payload revoke no longer acts on, and why.
    Refused(String),
    /// A request's status changed: it may have ended early.
    StatusChanged(String),
    /// The one-minute schedule, or anything unrecognised: the sweep, which is always safe.
    Sweep,
}

impl RevokeInput {
    pub fn parse(input: Value) -> Self {
        if let Ok(ExpiryInput { expiry }) = serde_json::from_value::<ExpiryInput>(input.clone()) {
            return Self::Expiry(expiry);
        }
        if let Ok(EndInput { end }) = serde_json::from_value::<EndInput>(input.clone()) {
            return Self::Operator(end.execution_id);
        }
        if input.get(RETIRED_OPERATOR_PAYLOAD).is_some() {
            return Self::Refused(
                "a bare changegate-revoke payload ends nothing: an operator ends access by starting the stack's operators' runbook (output OperatorRunbookName)".to_owned(),
            );
        }
        match serde_json::from_value::<EventBridgeEvent>(input)
            .ok()
            .map(Incoming::parse)
        {
            Some(Ok(Incoming::ChangeRequest(cr))) => Self::StatusChanged(cr.change_request_id),
            Some(Ok(Incoming::AutomationExecution(a))) => Self::StatusChanged(a.execution_id),
            _ => Self::Sweep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_trigger_when_parsed_then_only_approval_signs_name_a_request() {
        let cm: Value =
            serde_json::from_str(include_str!("../../events/change-request-approved.json"))
                .unwrap();
        assert_eq!(
            Trigger::parse(cm),
            Trigger::Look("6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64".into())
        );
        let sample: Value =
            serde_json::from_str(include_str!("../../events/change-request-aws-sample.json"))
                .unwrap();
        assert!(
            matches!(Trigger::parse(sample), Trigger::Ignore(_)),
            "InProgress is not a change request's approval"
        );
        let direct = serde_json::json!({"changegate-request": {"execution-id": "abc-1"}});
        assert_eq!(Trigger::parse(direct), Trigger::Look("abc-1".into()));
        let step = serde_json::json!({"detail-type": "EC2 Automation Step Status-change Notification", "source": "aws.ssm",
            "detail": {"ExecutionId": "abc-2", "Definition": "changegate-access-request", "Status": "Success", "StepName": "Approve", "Action": "aws:approve"}});
        assert_eq!(Trigger::parse(step.clone()), Trigger::Look("abc-2".into()));
        let mut waiting = step;
        waiting["detail"]["Status"] = "Waiting".into();
        assert!(matches!(Trigger::parse(waiting), Trigger::Ignore(_)));
        let scheduled: Value =
            serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap();
        assert!(matches!(Trigger::parse(scheduled), Trigger::Ignore(_)));
    }

    #[test]
    fn given_each_kind_of_input_when_parsed_then_it_is_read_once_into_its_case() {
        let expiry =
            serde_json::json!({"changegate-expiry": {"change-request-id": "abc", "user": "alice"}});
        assert!(matches!(RevokeInput::parse(expiry), RevokeInput::Expiry(t) if t.user == "alice"));
        let op: Value =
            serde_json::from_str(include_str!("../../events/changegate-end.json")).unwrap();
        assert_eq!(
            RevokeInput::parse(op),
            RevokeInput::Operator("0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87".into())
        );
        let bare = serde_json::json!({"changegate-revoke": {"change-request-id": "abc", "reason": "incident over"}});
        assert!(
            matches!(RevokeInput::parse(bare), RevokeInput::Refused(why) if why.contains("operators' runbook")),
            "the old bare payload is no operator's request"
        );
        let cm: Value =
            serde_json::from_str(include_str!("../../events/change-request-approved.json"))
                .unwrap();
        assert_eq!(
            RevokeInput::parse(cm),
            RevokeInput::StatusChanged("6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64".into())
        );
        let scheduled: Value =
            serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap();
        assert_eq!(RevokeInput::parse(scheduled), RevokeInput::Sweep);
        assert_eq!(
            RevokeInput::parse(serde_json::json!({"anything": 1})),
            RevokeInput::Sweep
        );
    }
}
