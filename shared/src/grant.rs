//! grant: on an approval-or-later change request event, check the request as
//! Systems Manager holds it and attach one windowed policy for it.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use crate::aws::{Bus, ChangeRequest, Fault, Iam, Put, Ssm};
use crate::config::GrantConfig;
use crate::events::{ChangeRequestStatus, ChangegateEvent, Incoming};
use crate::ids::{ChangeRequestId, UserArn};
use crate::policy::Grant;
use crate::refusal::Refusal;
use crate::request::{parse_parameters, shown};
use crate::status::{StatusClass, classify};
use crate::window::human_time;

/// Who filed the request, according to the event and to Systems Manager.
fn requester(event: &ChangeRequestStatus, ssm: &ChangeRequest) -> Result<UserArn, Refusal> {
    let filed_by = event.ops_item_created_by.as_deref().unwrap_or_default();
    let arn = UserArn::parse(filed_by).ok_or_else(|| Refusal::RequesterNotAUser {
        filed_by: if filed_by.is_empty() { "nobody named in the event".to_owned() } else { shown(filed_by) },
    })?;
    match ssm.executed_by.as_deref() {
        Some(by) if by != filed_by => Err(Refusal::RequesterMismatch { event: shown(filed_by), ssm: shown(by) }),
        _ => Ok(arn),
    }
}

/// Every check before a grant, on data already read. Pure.
pub fn decide(
    id: &ChangeRequestId,
    event: &ChangeRequestStatus,
    ssm: Option<&ChangeRequest>,
    config: &GrantConfig,
    now: DateTime<Utc>,
) -> Result<Grant, Refusal> {
    let ssm = ssm.ok_or(Refusal::ChangeRequestNotFound)?;
    if classify(&ssm.status) != StatusClass::ApprovedOrLater {
        return Err(Refusal::NotApproved { status: shown(&ssm.status) });
    }
    let requester = requester(event, ssm)?;
    let [params] = ssm.runbooks.as_slice() else {
        return Err(Refusal::RunbookCount { count: ssm.runbooks.len() });
    };
    let request = parse_parameters(params)?;
    if request.user != requester.user {
        return Err(Refusal::NotTheRequester { user: request.user.to_string(), requester: requester.user.to_string() });
    }
    if !config.allowed_accounts.contains(&request.account) {
        return Err(Refusal::AccountNotAllowed {
            account: request.account.to_string(),
            allowed: config.allowed_accounts_list(),
        });
    }
    if request.window.has_ended(now) {
        return Err(Refusal::WindowEnded { end: human_time(request.window.end()) });
    }
    if request.window.duration() > config.max_duration {
        return Err(Refusal::WindowTooLong {
            // Rounded up: a window one second over the limit must not read as equal to it.
            requested_minutes: (request.window.duration().num_seconds() + 59) / 60,
            max_minutes: config.max_duration.num_minutes(),
        });
    }
    Ok(Grant {
        change_request: id.clone(),
        user: request.user,
        account: request.account,
        role: config.target_role.clone(),
        window: request.window,
    })
}

/// What one invocation did; returned to Lambda as the invocation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GrantOutcome {
    Granted { change_request_id: String, user: String, policy_name: String },
    AlreadyGranted { change_request_id: String, user: String, policy_name: String },
    Refused { change_request_id: String, reason_code: String, reason: String },
    Ignored { reason: String },
}

pub struct Grantor {
    pub config: GrantConfig,
    pub ssm: Ssm,
    pub iam: Iam,
    pub bus: Bus,
}

impl Grantor {
    pub fn new(config: GrantConfig, sdk: &aws_config::SdkConfig) -> Self {
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(sdk), config.event_bus.clone());
        Self { config, ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)), iam: Iam::new(aws_sdk_iam::Client::new(sdk)), bus }
    }

    pub async fn handle(&self, event: EventBridgeEvent, now: DateTime<Utc>) -> Result<GrantOutcome, Fault> {
        let cr = match Incoming::parse(event) {
            Ok(Incoming::ChangeRequest(cr)) => cr,
            Ok(_) => return Ok(ignored("not a change request status update".into())),
            Err(e) => return Ok(ignored(e.to_string())),
        };
        if classify(&cr.ops_item_status) != StatusClass::ApprovedOrLater {
            return Ok(ignored(format!("status {} is not an approval", shown(&cr.ops_item_status))));
        }
        let Ok(id) = ChangeRequestId::parse(&cr.change_request_id) else {
            return Ok(ignored(format!("{:?} is not a change request id", shown(&cr.change_request_id))));
        };
        let ssm = self.ssm.change_request(id.as_str()).await?;
        let grant = match decide(&id, &cr, ssm.as_ref(), &self.config, now) {
            Ok(grant) => grant,
            Err(refusal) => return self.refuse(&cr, refusal).await,
        };
        let name = grant.policy_name();
        let outcome = |already: bool| {
            let (change_request_id, user, policy_name) = (id.to_string(), grant.user.to_string(), name.clone());
            if already {
                GrantOutcome::AlreadyGranted { change_request_id, user, policy_name }
            } else {
                GrantOutcome::Granted { change_request_id, user, policy_name }
            }
        };
        if self.iam.user_policy(grant.user.as_str(), &name).await?.is_some() {
            info!(change_request_id = %id, user = %grant.user, outcome = "already-granted", "grant already attached; nothing to do");
            return Ok(outcome(true));
        }
        match self.iam.put_user_policy(grant.user.as_str(), &name, &grant.document_json()).await? {
            Put::NoSuchUser => return self.refuse(&cr, Refusal::UserNotFound { user: grant.user.to_string() }).await,
            Put::Done => {}
        }
        info!(
            change_request_id = %id,
            user = %grant.user,
            account = %grant.account,
            role = %grant.role,
            start = %grant.window.start_utc(),
            end = %grant.window.end_utc(),
            outcome = "granted",
            "access granted"
        );
        self.bus.put(&ChangegateEvent::granted(&grant)).await?;
        Ok(outcome(false))
    }

    async fn refuse(&self, cr: &ChangeRequestStatus, refusal: Refusal) -> Result<GrantOutcome, Fault> {
        let requester = cr.ops_item_created_by.as_deref().and_then(UserArn::parse);
        let user = requester.map(|r| r.user.to_string());
        info!(
            change_request_id = %shown(&cr.change_request_id),
            requester = user.as_deref().unwrap_or("-"),
            outcome = "refused",
            reason_code = refusal.code(),
            reason = %refusal,
            "access refused"
        );
        let arn = cr.ops_item_created_by.as_deref().map(shown);
        self.bus.put(&ChangegateEvent::refused(&cr.change_request_id, user, arn, &refusal)).await?;
        Ok(GrantOutcome::Refused {
            change_request_id: cr.change_request_id.clone(),
            reason_code: refusal.code().to_owned(),
            reason: refusal.to_string(),
        })
    }
}

fn ignored(reason: String) -> GrantOutcome {
    info!(outcome = "ignored", reason = %reason, "event ignored");
    GrantOutcome::Ignored { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::policy_name;
    use crate::request::params;

    fn config() -> GrantConfig {
        let lookup = |k: &str| (k == crate::config::VAR_ALLOWED_ACCOUNTS).then(|| "111122223333".to_owned());
        GrantConfig::from_source(&lookup).unwrap()
    }

    fn event(created_by: &str) -> ChangeRequestStatus {
        ChangeRequestStatus {
            change_request_id: "d0585556-80f6-4522-8dad-dada6d45b67d".into(),
            change_request_title: None,
            ops_item_created_by: Some(created_by.into()),
            ops_item_status: "Approved".into(),
            approvers: vec![],
        }
    }

    fn ssm(status: &str, user: &str, account: &str, start: &str, end: &str) -> ChangeRequest {
        ChangeRequest {
            status: status.into(),
            executed_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            runbooks: vec![params(&[("IAMUserName", user), ("AWSAccountId", account), ("StartTime", start), ("EndTime", end)])],
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T08:30:00Z".parse().unwrap()
    }

    fn id() -> ChangeRequestId {
        ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap()
    }

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    #[test]
    fn given_an_approved_valid_request_when_deciding_then_the_grant_is_for_the_requester_in_the_window() {
        let cr = ssm("Approved", "alice", "111122223333", "2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let g = decide(&id(), &event(ALICE), Some(&cr), &config(), now()).unwrap();
        assert_eq!(g.user.as_str(), "alice");
        assert_eq!(g.role_arn(), "arn:aws:iam::111122223333:role/CM-Prd-role");
        assert_eq!(g.window.start_utc().to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!(policy_name(&id()), g.policy_name());
    }

    #[test]
    fn given_each_failed_check_when_deciding_then_the_refusal_says_which() {
        let ok = ("alice", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let cases: Vec<(ChangeRequest, &str, Refusal)> = vec![
            (ssm("PendingApproval", ok.0, ok.1, ok.2, ok.3), ALICE, Refusal::NotApproved { status: "PendingApproval".into() }),
            (ssm("Rejected", ok.0, ok.1, ok.2, ok.3), ALICE, Refusal::NotApproved { status: "Rejected".into() }),
            (
                ssm("Approved", ok.0, ok.1, ok.2, ok.3),
                "arn:aws:sts::123456789012:assumed-role/Admin/alice",
                Refusal::RequesterNotAUser { filed_by: "arn:aws:sts::123456789012:assumed-role/Admin/alice".into() },
            ),
            (
                ssm("Approved", "bob", ok.1, ok.2, ok.3),
                ALICE,
                Refusal::NotTheRequester { user: "bob".into(), requester: "alice".into() },
            ),
            (
                ssm("Approved", ok.0, "444455556666", ok.2, ok.3),
                ALICE,
                Refusal::AccountNotAllowed { account: "444455556666".into(), allowed: "111122223333".into() },
            ),
            (
                ssm("Approved", ok.0, ok.1, "2026-12-01T07:00:00Z", "2026-12-01T08:30:00Z"),
                ALICE,
                Refusal::WindowEnded { end: "2026-12-01 08:30:00 UTC".into() },
            ),
            (
                ssm("Approved", ok.0, ok.1, "2026-12-01T09:00:00Z", "2026-12-01T17:00:01Z"),
                ALICE,
                Refusal::WindowTooLong { requested_minutes: 481, max_minutes: 480 },
            ),
        ];
        for (cr, by, want) in cases {
            assert_eq!(decide(&id(), &event(by), Some(&cr), &config(), now()), Err(want));
        }
        assert_eq!(decide(&id(), &event(ALICE), None, &config(), now()), Err(Refusal::ChangeRequestNotFound));
    }

    #[test]
    fn given_exactly_the_maximum_window_when_deciding_then_it_is_granted() {
        let cr = ssm("Approved", "alice", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T17:00:00Z");
        assert!(decide(&id(), &event(ALICE), Some(&cr), &config(), now()).is_ok());
    }

    #[test]
    fn given_ssm_and_event_disagree_on_the_requester_when_deciding_then_refused() {
        let mut cr = ssm("Approved", "alice", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        cr.executed_by = Some("arn:aws:iam::123456789012:user/mallory".into());
        assert!(matches!(
            decide(&id(), &event(ALICE), Some(&cr), &config(), now()),
            Err(Refusal::RequesterMismatch { .. })
        ));
        cr.runbooks.push(cr.runbooks[0].clone());
        cr.executed_by = None;
        assert_eq!(decide(&id(), &event(ALICE), Some(&cr), &config(), now()), Err(Refusal::RunbookCount { count: 2 }));
    }
}
