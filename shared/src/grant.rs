//! grant: on an approval-or-later change request event, check the request as
//! Systems Manager holds it and attach one windowed policy for it.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::approval::independent_approvers;
use crate::aws::{Bus, ChangeRequest, Fault, Iam, Put, Schedules, Ssm, UserRecord};
use crate::metrics;
use crate::budget;
use crate::eligibility::{ELIGIBILITY_TAG, Eligibility};
use crate::config::GrantConfig;
use crate::events::{ChangeRequestStatus, ChangegateEvent, Incoming};
use crate::ids::{ChangeRequestId, UserArn};
use crate::policy::{Grant, policy_name};
use crate::refusal::Refusal;
use crate::request::{AccessRequest, parse_parameters, shown};
use crate::status::{StatusClass, classify};
use crate::window::{human_time, utc_string};

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

/// A request that passed every check that needs only the change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub id: ChangeRequestId,
    pub request: AccessRequest,
    pub requester: UserArn,
    /// Who approved, other than the requester (ARNs as Systems Manager recorded them).
    pub approvers: Vec<String>,
}

/// Every check on the change request itself, as Systems Manager holds it. Pure.
pub fn check_request(
    id: &ChangeRequestId,
    event: &ChangeRequestStatus,
    ssm: Option<&ChangeRequest>,
    config: &GrantConfig,
    now: DateTime<Utc>,
) -> Result<Checked, Refusal> {
    let ssm = ssm.ok_or(Refusal::ChangeRequestNotFound)?;
    if classify(&ssm.status) != StatusClass::ApprovedOrLater {
        return Err(Refusal::NotApproved { status: shown(&ssm.status) });
    }
    let requester = requester(event, ssm)?;
    let filed_by = event.ops_item_created_by.as_deref().unwrap_or_default();
    let decisions = ssm.approvals.as_deref().ok_or(Refusal::ApprovalUnknown)?;
    let approvers = independent_approvers(decisions, filed_by);
    if approvers.is_empty() {
        return Err(if decisions.iter().any(|d| d.approved()) {
            Refusal::SelfApproved { requester: requester.user.to_string() }
        } else {
            Refusal::ApprovalUnknown
        });
    }
    let [params] = ssm.runbooks.as_slice() else {
        return Err(Refusal::RunbookCount { count: ssm.runbooks.len() });
    };
    let request = parse_parameters(params)?;
    if request.user != requester.user && !config.allow_delegated {
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
    if request.window.start_utc() - now > config.max_start_ahead {
        return Err(Refusal::StartTooFarAhead {
            start: human_time(request.window.start()),
            max_days: config.max_start_ahead.num_days(),
        });
    }
    Ok(Checked { id: id.clone(), request, requester, approvers })
}

/// The verdict once IAM's facts about the user are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Grant(Grant),
    /// This change request's policy is already on the user: nothing to do.
    AlreadyGranted(Grant),
}

/// Eligibility, idempotency and the inline-policy budget, on IAM's record of
/// the user who would receive access. Pure.
pub fn decide(checked: &Checked, user: &UserRecord, config: &GrantConfig) -> Result<Verdict, Refusal> {
    let request = &checked.request;
    let name = policy_name(&checked.id);
    // This request's policy is already on the user: an earlier attempt passed
    // every check and attached it, then stopped before announcing. Announcing
    // is what is left; refusing now would leave a granted-but-refused state.
    if let Some((_, document)) = user.inline_policies.iter().find(|(n, _)| *n == name) {
        if let Ok(grant) = Grant::from_policy(&request.user, &name, document) {
            return Ok(Verdict::AlreadyGranted(grant));
        }
    }
    let (eligibility, ignored) = Eligibility::parse(user.tag.as_deref());
    if !ignored.is_empty() {
        warn!(user = %request.user, ignored = ?ignored, "malformed entries in the eligibility tag were ignored");
    }
    let role = eligibility.role_for(&request.account, &config.target_role).ok_or_else(|| Refusal::NotEligible {
        user: request.user.to_string(),
        account: request.account.to_string(),
        eligible: eligibility.describe(),
    })?;
    let grant = Grant {
        change_request: checked.id.clone(),
        user: request.user.clone(),
        account: request.account.clone(),
        role,
        window: request.window.clone(),
    };
    let document = grant.document_json();
    let (used, fits) = budget::fits(user.inline_policies.iter().map(|(_, d)| d.as_str()), &document);
    if !fits {
        let active: Vec<String> = user
            .inline_policies
            .iter()
            .filter_map(|(n, d)| Grant::from_policy(&request.user, n, d).ok())
            .map(|g| format!("{} ({}/{} until {})", g.change_request, g.account, g.role, human_time(g.window.end())))
            .collect();
        return Err(Refusal::PolicyBudget {
            user: request.user.to_string(),
            used,
            needed: budget::counted_chars(&document),
            active: if active.is_empty() { "none (other inline policies use the space)".to_owned() } else { active.join("; ") },
        });
    }
    Ok(Verdict::Grant(grant))
}

/// The tag on the change request (its Automation execution) where grant
/// records its decision once announced: `granted` or `refused:<code>`. Later
/// deliveries of the request's events see it and change nothing.
pub const OUTCOME_TAG: &str = "changegate:outcome";
pub const OUTCOME_GRANTED: &str = "granted";

/// What one invocation did; returned to Lambda as the invocation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GrantOutcome {
    Granted { change_request_id: String, user: String, policy_name: String },
    /// The policy was already attached but never announced (an earlier
    /// attempt stopped in between): announced now.
    AlreadyGranted { change_request_id: String, user: String, policy_name: String },
    Refused { change_request_id: String, reason_code: String, reason: String },
    /// An earlier delivery decided and announced; nothing to do.
    AlreadyDecided { change_request_id: String, decision: String },
    Ignored { reason: String },
}

pub struct Grantor {
    pub config: GrantConfig,
    pub ssm: Ssm,
    pub iam: Iam,
    pub bus: Bus,
    pub schedules: Schedules,
}

/// The one log record of a decision: what an auditor needs, no credentials, no event body.
fn audit(cr: &ChangeRequestStatus, checked: Option<&Checked>, grant: Option<&Grant>, outcome: &str, refusal: Option<&Refusal>) {
    let requester = cr.ops_item_created_by.as_deref().map(shown).unwrap_or_else(|| "-".to_owned());
    let approvers = checked.map(|c| c.approvers.join(" ")).unwrap_or_else(|| "-".to_owned());
    let request = checked.map(|c| &c.request);
    info!(
        change_request_id = %shown(&cr.change_request_id),
        requester = %requester,
        approvers = %approvers,
        user = %request.map(|r| r.user.to_string()).unwrap_or_else(|| "-".to_owned()),
        account = %request.map(|r| r.account.to_string()).unwrap_or_else(|| "-".to_owned()),
        role = %grant.map(|g| g.role.to_string()).unwrap_or_else(|| "-".to_owned()),
        start = %request.map(|r| utc_string(r.window.start_utc())).unwrap_or_else(|| "-".to_owned()),
        end = %request.map(|r| utc_string(r.window.end_utc())).unwrap_or_else(|| "-".to_owned()),
        outcome,
        reason_code = refusal.map(Refusal::code).unwrap_or("-"),
        reason = %refusal.map(ToString::to_string).unwrap_or_else(|| "-".to_owned()),
        "grant decision"
    );
}

impl Grantor {
    pub fn new(config: GrantConfig, sdk: &aws_config::SdkConfig) -> Self {
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(sdk), config.event_bus.clone());
        Self {
            config,
            ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)),
            iam: Iam::new(aws_sdk_iam::Client::new(sdk)),
            bus,
            schedules: Schedules::new(aws_sdk_scheduler::Client::new(sdk)),
        }
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
        if let Some(decision) = self.ssm.tag(id.as_str(), OUTCOME_TAG).await? {
            info!(change_request_id = %id, decision = %shown(&decision), outcome = "already-decided", "decided earlier; nothing to do");
            return Ok(GrantOutcome::AlreadyDecided { change_request_id: id.to_string(), decision: shown(&decision) });
        }
        let ssm = self.ssm.change_request(id.as_str()).await?;
        let checked = match check_request(&id, &cr, ssm.as_ref(), &self.config, now) {
            Ok(checked) => checked,
            Err(refusal) => return self.refuse(&cr, None, refusal).await,
        };
        let user = checked.request.user.as_str();
        let Some(record) = self.iam.user_record(user, ELIGIBILITY_TAG).await? else {
            return self.refuse(&cr, Some(&checked), Refusal::UserNotFound { user: user.to_owned() }).await;
        };
        let (grant, attached_before) = match decide(&checked, &record, &self.config) {
            Ok(Verdict::Grant(grant)) => (grant, false),
            Ok(Verdict::AlreadyGranted(grant)) => (grant, true),
            Err(refusal) => return self.refuse(&cr, Some(&checked), refusal).await,
        };
        let name = grant.policy_name();
        if !attached_before {
            // Written ahead: every policy in IAM has a record, even if this invocation dies next.
            audit(&cr, Some(&checked), Some(&grant), "attaching", None);
            if self.iam.put_user_policy(user, &name, &grant.document_json()).await? == Put::NoSuchUser {
                return self.refuse(&cr, Some(&checked), Refusal::UserNotFound { user: user.to_owned() }).await;
            }
        }
        if let Some(expiry) = &self.config.expiry {
            // A window about to end is left to the sweep: a schedule in the past would be refused.
            if grant.window.end_utc() > now + chrono::TimeDelta::seconds(5) {
                self.schedules.create_expiry(expiry, &grant).await?;
            }
        }
        audit(&cr, Some(&checked), Some(&grant), if attached_before { "granted-earlier-announced-now" } else { "granted" }, None);
        metrics::count("grant", "Grants", None);
        let event = ChangegateEvent::granted(&grant, checked.requester.user.as_str(), &checked.approvers);
        self.bus.put(&event).await?;
        self.ssm.set_tag(id.as_str(), OUTCOME_TAG, OUTCOME_GRANTED).await?;
        let (change_request_id, user, policy_name) = (id.to_string(), user.to_owned(), name);
        Ok(if attached_before {
            GrantOutcome::AlreadyGranted { change_request_id, user, policy_name }
        } else {
            GrantOutcome::Granted { change_request_id, user, policy_name }
        })
    }

    async fn refuse(&self, cr: &ChangeRequestStatus, checked: Option<&Checked>, refusal: Refusal) -> Result<GrantOutcome, Fault> {
        audit(cr, checked, None, "refused", Some(&refusal));
        metrics::count("grant", "Refusals", Some(("Reason", refusal.code())));
        let user = cr.ops_item_created_by.as_deref().and_then(UserArn::parse).map(|r| r.user.to_string());
        let arn = cr.ops_item_created_by.as_deref().map(shown);
        self.bus.put(&ChangegateEvent::refused(&cr.change_request_id, user, arn, &refusal)).await?;
        if refusal.is_final() {
            self.ssm.set_tag(&cr.change_request_id, OUTCOME_TAG, &format!("refused:{}", refusal.code())).await?;
        }
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
    use crate::approval::ApproverDecision;
    use crate::config::{VAR_ALLOW_DELEGATED, VAR_ALLOWED_ACCOUNTS};
    use crate::policy::tests::grant;
    use crate::request::params;

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";

    fn config_with(delegated: bool) -> GrantConfig {
        let lookup = move |k: &str| match k {
            VAR_ALLOWED_ACCOUNTS => Some("111122223333".to_owned()),
            VAR_ALLOW_DELEGATED => Some(delegated.to_string()),
            _ => None,
        };
        GrantConfig::from_source(&lookup).unwrap()
    }

    fn config() -> GrantConfig {
        config_with(false)
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

    fn approved_by(approvers: &[&str]) -> Option<Vec<ApproverDecision>> {
        Some(approvers.iter().map(|a| ApproverDecision { approver: (*a).into(), decision: "Approve".into() }).collect())
    }

    fn ssm(status: &str, user: &str, account: &str, start: &str, end: &str) -> ChangeRequest {
        ChangeRequest {
            status: status.into(),
            executed_by: Some(ALICE.into()),
            runbooks: vec![params(&[("IAMUserName", user), ("AWSAccountId", account), ("StartTime", start), ("EndTime", end)])],
            approvals: approved_by(&[BOB]),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T08:30:00Z".parse().unwrap()
    }

    fn id() -> ChangeRequestId {
        ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap()
    }

    fn ok_request() -> ChangeRequest {
        ssm("Approved", "alice", "111122223333", "2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00")
    }

    fn eligible(tag: &str) -> UserRecord {
        UserRecord { tag: Some(tag.to_owned()), inline_policies: vec![] }
    }

    #[test]
    fn given_an_approved_valid_request_when_checked_then_the_requester_and_independent_approver_are_recorded() {
        let checked = check_request(&id(), &event(ALICE), Some(&ok_request()), &config(), now()).unwrap();
        assert_eq!(checked.requester.user.as_str(), "alice");
        assert_eq!(checked.approvers, vec![BOB.to_owned()]);
        assert_eq!(checked.request.window.start_utc().to_rfc3339(), "2026-12-01T09:00:00+00:00");
    }

    #[test]
    fn given_each_failed_check_when_checking_then_the_refusal_says_which() {
        let ok = ("alice", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let with = |f: &dyn Fn(&mut ChangeRequest)| {
            let mut cr = ssm("Approved", ok.0, ok.1, ok.2, ok.3);
            f(&mut cr);
            cr
        };
        let cases: Vec<(ChangeRequest, &str, Refusal)> = vec![
            (ssm("PendingApproval", ok.0, ok.1, ok.2, ok.3), ALICE, Refusal::NotApproved { status: "PendingApproval".into() }),
            (ssm("Rejected", ok.0, ok.1, ok.2, ok.3), ALICE, Refusal::NotApproved { status: "Rejected".into() }),
            (
                ssm("Approved", ok.0, ok.1, ok.2, ok.3),
                "arn:aws:sts::123456789012:assumed-role/Admin/alice",
                Refusal::RequesterNotAUser { filed_by: "arn:aws:sts::123456789012:assumed-role/Admin/alice".into() },
            ),
            (with(&|cr| cr.approvals = approved_by(&[ALICE])), ALICE, Refusal::SelfApproved { requester: "alice".into() }),
            (with(&|cr| cr.approvals = None), ALICE, Refusal::ApprovalUnknown),
            (with(&|cr| cr.approvals = Some(vec![])), ALICE, Refusal::ApprovalUnknown),
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
            (
                ssm("Approved", ok.0, ok.1, "2027-01-01T09:00:00Z", "2027-01-01T10:00:00Z"),
                ALICE,
                Refusal::StartTooFarAhead { start: "2027-01-01 09:00:00 UTC".into(), max_days: 30 },
            ),
        ];
        for (cr, by, want) in cases {
            assert_eq!(check_request(&id(), &event(by), Some(&cr), &config(), now()), Err(want));
        }
        assert_eq!(check_request(&id(), &event(ALICE), None, &config(), now()), Err(Refusal::ChangeRequestNotFound));
    }

    #[test]
    fn given_exactly_the_maximum_window_when_checking_then_it_passes() {
        let cr = ssm("Approved", "alice", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T17:00:00Z");
        assert!(check_request(&id(), &event(ALICE), Some(&cr), &config(), now()).is_ok());
    }

    #[test]
    fn given_ssm_and_event_disagree_on_the_requester_when_checking_then_refused() {
        let mut cr = ok_request();
        cr.executed_by = Some("arn:aws:iam::123456789012:user/mallory".into());
        assert!(matches!(check_request(&id(), &event(ALICE), Some(&cr), &config(), now()), Err(Refusal::RequesterMismatch { .. })));
        cr.runbooks.push(cr.runbooks[0].clone());
        cr.executed_by = None;
        assert_eq!(check_request(&id(), &event(ALICE), Some(&cr), &config(), now()), Err(Refusal::RunbookCount { count: 2 }));
    }

    #[test]
    fn given_delegation_is_allowed_when_someone_asks_for_a_colleague_then_it_passes_naming_both() {
        let cr = ssm("Approved", "carol", "111122223333", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let checked = check_request(&id(), &event(ALICE), Some(&cr), &config_with(true), now()).unwrap();
        assert_eq!(checked.request.user.as_str(), "carol");
        assert_eq!(checked.requester.user.as_str(), "alice");
    }

    #[test]
    fn given_eligibility_tags_when_deciding_then_only_tagged_accounts_grant_and_the_tag_picks_the_role() {
        let checked = check_request(&id(), &event(ALICE), Some(&ok_request()), &config(), now()).unwrap();
        let Ok(Verdict::Grant(g)) = decide(&checked, &eligible("111122223333"), &config()) else { panic!("not granted") };
        assert_eq!(g.role_arn(), "arn:aws:iam::111122223333:role/CM-Prd-role");
        let Ok(Verdict::Grant(g)) = decide(&checked, &eligible("111122223333/ReadOnlyProd"), &config()) else { panic!() };
        assert_eq!(g.role_arn(), "arn:aws:iam::111122223333:role/ReadOnlyProd");
        for record in [UserRecord::default(), eligible("444455556666"), eligible("*")] {
            assert!(matches!(decide(&checked, &record, &config()), Err(Refusal::NotEligible { .. })), "{record:?}");
        }
    }

    #[test]
    fn given_the_grant_is_already_on_the_user_when_deciding_then_it_is_announced_even_if_eligibility_went_since() {
        let checked = check_request(&id(), &event(ALICE), Some(&ok_request()), &config(), now()).unwrap();
        let Ok(Verdict::Grant(g)) = decide(&checked, &eligible("111122223333"), &config()) else { panic!() };
        let attached = UserRecord { tag: None, inline_policies: vec![(g.policy_name(), g.document_json())] };
        assert_eq!(decide(&checked, &attached, &config()), Ok(Verdict::AlreadyGranted(g)));
    }

    #[test]
    fn given_a_full_inline_policy_budget_when_deciding_then_refused_listing_the_active_grants() {
        let checked = check_request(&id(), &event(ALICE), Some(&ok_request()), &config(), now()).unwrap();
        let mut record = eligible("111122223333");
        let other = grant("2026-12-01T09:00:00Z", "2026-12-01T12:00:00Z");
        let other = Grant { change_request: ChangeRequestId::parse("11111111-2222-3333-4444-555555555555").unwrap(), ..other };
        record.inline_policies.push((other.policy_name(), other.document_json()));
        record.inline_policies.push(("team-tools".into(), format!(r#"{{"Statement":"{}"}}"#, "x".repeat(1500))));
        let refusal = decide(&checked, &record, &config()).unwrap_err();
        let Refusal::PolicyBudget { used, active, .. } = &refusal else { panic!("{refusal:?}") };
        assert!(*used > 1500, "{used}");
        assert_eq!(active, "11111111-2222-3333-4444-555555555555 (111122223333/CM-Prd-role until 2026-12-01 12:00:00 UTC)");
        assert!(refusal.to_string().contains("Grants still active: 11111111"), "{refusal}");
    }
}
