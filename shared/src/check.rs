//! The grant decision, pure: every check on a request as Systems Manager holds
//! it ([`check_request`]), then on IAM's record of the user ([`decide`]).
//! The handler in [`crate::grant`] reads AWS and calls these.

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::approval::{ApprovalStatus, Approver, ApproverDecision};
use crate::budget;
use crate::config::GrantConfig;
use crate::eligibility::Eligibility;
use crate::execution::{ApprovalStep, Execution, Origin, Source};
use crate::ids::{ChangeRequestId, Home, IamUserId, IamUserName, Principal, UserArn};
use crate::policy::{Grant, policy_name};
use crate::refusal::Refusal;
use crate::request::{AccessRequest, parse_parameters};
use crate::text::shown;
use crate::versions;
use crate::window::human_time;

/// What IAM holds about the user who would receive access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's name as IAM stores it (`${aws:username}` in policies).
    pub name: Option<IamUserName>,
    /// IAM's unique id of the user (GetUser's `UserId`), which a rename keeps.
    pub id: Option<IamUserId>,
    /// The value of the eligibility tag, if set.
    pub tag: Option<String>,
    /// The ARN of the user's permissions boundary, if one is set.
    pub boundary: Option<String>,
    /// Every inline policy of the user: name and decoded document.
    pub inline_policies: Vec<(String, String)>,
}

/// A request that passed every check that needs only Systems Manager's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub id: ChangeRequestId,
    pub source: Source,
    pub request: AccessRequest,
    /// Who filed the request.
    pub requester: UserArn,
    /// Who receives access (the requester unless delegation is on).
    pub beneficiary: UserArn,
    /// Independent approvers, as Systems Manager recorded them, without repeats.
    pub approvers: Vec<String>,
}

/// The request's own runbook parameters, if it is changegate's: the
/// deployment's change template and runbook, or its request runbook.
fn own_parameters<'a>(
    exec: &'a Execution,
    config: &GrantConfig,
) -> Result<&'a crate::request::RawParameters, Refusal> {
    match &exec.origin {
        Origin::ChangeRequest { template, runbooks } => {
            let cm = config
                .change_manager
                .as_ref()
                .ok_or(Refusal::SourceNotEnabled {
                    via: "Change Manager",
                })?;
            if *template != cm.template {
                return Err(Refusal::WrongChangeTemplate {
                    found: shown(template),
                    expected: cm.template.clone(),
                });
            }
            versions::ran_current(&exec.versions, template)?;
            let [runbook] = runbooks.as_slice() else {
                return Err(Refusal::RunbookCount {
                    count: runbooks.len(),
                });
            };
            if runbook.document != cm.runbook {
                return Err(Refusal::WrongRunbook {
                    found: shown(&runbook.document),
                    expected: cm.runbook.clone(),
                });
            }
            versions::ran_current(&exec.versions, &runbook.document)?;
            Ok(&runbook.parameters)
        }
        Origin::Automation {
            document,
            parameters,
        } => {
            let auto = config
                .automation
                .as_ref()
                .ok_or(Refusal::SourceNotEnabled {
                    via: "Automation runbooks",
                })?;
            if *document != auto.runbook {
                return Err(Refusal::WrongRunbook {
                    found: shown(document),
                    expected: auto.runbook.clone(),
                });
            }
            versions::ran_current(&exec.versions, document)?;
            Ok(parameters)
        }
    }
}

/// Whether the request as a whole has reached approval.
fn approved_status(exec: &Execution) -> bool {
    match exec.source() {
        Source::ChangeManager => exec.status.change_request_approved(),
        Source::Automation => exec.status.automation_past_approval(),
    }
}

/// Who filed the request: an IAM user of this deployment's account, named by Systems Manager.
fn requester(exec: &Execution, home: &Home) -> Result<UserArn, Refusal> {
    let raw = exec
        .executed_by
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(Refusal::RequesterUnknown)?;
    let user = match Principal::parse(raw) {
        Some(Principal::User(user)) => user,
        _ => {
            return Err(Refusal::RequesterNotAUser {
                filed_by: shown(raw),
            });
        }
    };
    if !user.is_in(home) {
        return Err(Refusal::ForeignRequester {
            requester: shown(raw),
            home: home.account.to_string(),
        });
    }
    Ok(user)
}

/// Every `aws:approve` step approved, each by enough people who are neither
/// the requester nor the beneficiary, counted once per person; every step ran
/// with exactly the deployment's approvers and at least its minimum (the
/// request runbook with all of them, the change template's level with the
/// first five), and holds decisions by those approvers only. Returns the
/// independent approvers as Systems Manager recorded them.
fn approvals(
    exec: &Execution,
    requester: &UserArn,
    beneficiary: &UserArn,
    config: &GrantConfig,
    home: &Home,
) -> Result<Vec<String>, Refusal> {
    if exec.approval_steps.is_empty() {
        return Err(Refusal::ApprovalUnknown);
    }
    let rules = &config.approvals;
    let expected = match exec.origin {
        Origin::Automation { .. } => rules.approvers.as_slice(),
        Origin::ChangeRequest { .. } => rules.change_manager_level(),
    };
    let mut all: Vec<(Approver, String)> = Vec::new();
    for step in &exec.approval_steps {
        // Who decided, read once; a decision by anyone the deployment did not
        // configure, approving or rejecting, means the step is not ours.
        let signed = match step.decisions.as_deref() {
            Some(decisions) => signers(step, decisions, expected)?,
            None => Vec::new(),
        };
        if !step.approved() {
            let status = step
                .approval_status
                .as_ref()
                .map_or(step.status.as_str(), ApprovalStatus::as_str);
            return Err(Refusal::ApprovalIncomplete {
                step: shown(&step.name),
                status: shown(status),
            });
        }
        if !ran_with(step, expected, rules.min_approvals, home) {
            return Err(Refusal::ApproversTampered {
                step: shown(&step.name),
            });
        }
        if step.decisions.is_none() {
            return Err(Refusal::ApprovalUnknown);
        }
        let approving = || signed.iter().filter(|(d, _)| d.approved());
        let mut independent: Vec<(Approver, String)> = Vec::new();
        for (d, p) in approving() {
            if p.may_be(requester) || p.may_be(beneficiary) {
                continue;
            }
            let person = Approver::person(p, rules.sessions_are_people);
            if !independent.iter().any(|(q, _)| *q == person) {
                independent.push((person, d.approver.clone()));
            }
        }
        if independent.is_empty() {
            // Approvals by the requester or the beneficiary are self-approval.
            return Err(match approving().next() {
                Some((d, _)) => Refusal::SelfApproved {
                    requester: shown(&d.approver),
                },
                None => Refusal::ApprovalUnknown,
            });
        }
        if independent.len() < rules.min_approvals {
            return Err(Refusal::NotEnoughApprovals {
                step: shown(&step.name),
                got: independent.len(),
                needed: rules.min_approvals,
            });
        }
        for (person, raw) in independent {
            if !all.iter().any(|(q, _)| *q == person) {
                all.push((person, raw));
            }
        }
    }
    Ok(all.into_iter().map(|(_, raw)| raw).collect())
}

/// Every decision of `step` with who signed it. A signer that cannot be
/// read is no evidence (nothing can rule out a stranger or self-approval);
/// one that is not among the step's expected approvers is tampering.
fn signers<'a>(
    step: &ApprovalStep,
    decisions: &'a [ApproverDecision],
    expected: &[Approver],
) -> Result<Vec<(&'a ApproverDecision, Principal)>, Refusal> {
    decisions
        .iter()
        .map(|d| {
            let p = Principal::parse(&d.approver).ok_or(Refusal::ApprovalUnknown)?;
            if !expected.contains(&Approver::signer(&p)) {
                return Err(Refusal::UnexpectedApprover {
                    step: shown(&step.name),
                    approver: shown(&d.approver),
                });
            }
            Ok((d, p))
        })
        .collect()
}

/// The step ran with exactly the expected approvers, as identities (no
/// more, no fewer, nothing unreadable), and at least the configured minimum.
fn ran_with(step: &ApprovalStep, expected: &[Approver], min: usize, home: &Home) -> bool {
    let Some(ran) = &step.approvers else {
        return false;
    };
    let Some(ran) = ran
        .iter()
        .map(|a| a.resolve(home))
        .collect::<Option<Vec<Approver>>>()
    else {
        return false;
    };
    ran.iter().all(|a| expected.contains(a))
        && expected.iter().all(|a| ran.contains(a))
        && usize::try_from(step.min_required.unwrap_or(1)).unwrap_or(0) >= min
}

/// Whether the request is still waiting for approval (not refused: later
/// events will bring it back), as opposed to checked or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checking {
    Checked(Box<Checked>),
    /// Not approved yet, and not ended: nothing to decide now.
    Waiting(String),
}

/// Every check on the request itself, as Systems Manager holds it. Pure.
pub fn check_request(
    id: &ChangeRequestId,
    exec: Option<&Execution>,
    config: &GrantConfig,
    home: &Home,
    now: DateTime<Utc>,
) -> Result<Checking, Refusal> {
    let exec = exec.ok_or(Refusal::ChangeRequestNotFound)?;
    let params = own_parameters(exec, config)?;
    if !approved_status(exec) {
        if exec.status.ends_access() {
            return Err(Refusal::NotApproved {
                status: exec.status.to_string(),
            });
        }
        return Ok(Checking::Waiting(format!(
            "Systems Manager reports {}",
            exec.status
        )));
    }
    let requester = requester(exec, home)?;
    let request = parse_parameters(params, exec.source() == Source::Automation)?;
    let beneficiary = home.user(&request.user);
    if beneficiary != requester && !config.allow_delegated {
        return Err(Refusal::NotTheRequester {
            user: request.user.to_string(),
            requester: requester.user.to_string(),
        });
    }
    // An approval step not yet decided (pending, running, waiting) is not a
    // refusal: later events bring the request back. Only a rejected, failed,
    // cancelled or timed-out step refuses.
    let undecided = |s: &&ApprovalStep| !s.approved() && !s.status.ends_access() && !s.rejected();
    if let Some(step) = exec.approval_steps.iter().find(undecided) {
        return Ok(Checking::Waiting(format!(
            "approval step {} is {}",
            shown(&step.name),
            step.status
        )));
    }
    let approvers = approvals(exec, &requester, &beneficiary, config, home)?;
    request_rules(&request, config, now)?;
    Ok(Checking::Checked(Box::new(Checked {
        id: id.clone(),
        source: exec.source(),
        request,
        requester,
        beneficiary,
        approvers,
    })))
}

/// The deployment's rules on what was asked, as grant applies them once a
/// request is approved: the account is allowlisted, and the window has not
/// ended, is no longer than the maximum and starts no further ahead than
/// allowed. The `changegate` command's `--dry-run` applies the same. Pure.
pub fn request_rules(
    request: &AccessRequest,
    config: &GrantConfig,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if !config.allowed_accounts.contains(&request.account) {
        return Err(Refusal::AccountNotAllowed {
            account: request.account.to_string(),
            allowed: config.allowed_accounts_list(),
        });
    }
    if request.window.has_ended(now) {
        return Err(Refusal::WindowEnded {
            end: human_time(request.window.end()),
        });
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
    Ok(())
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
pub fn decide(
    checked: &Checked,
    user: &UserRecord,
    config: &GrantConfig,
) -> Result<Verdict, Refusal> {
    let request = &checked.request;
    let name = policy_name(&checked.id);
    // This request's policy is already on the user: an earlier attempt passed
    // every check and attached it, then stopped before announcing. Announcing
    // is what is left; refusing now would leave a granted-but-refused state.
    if let Some((_, document)) = user.inline_policies.iter().find(|(n, _)| *n == name) {
        if let Ok(grant) = Grant::from_policy(&request.user, &name, document) {
            let user_id = user.id.clone();
            return Ok(Verdict::AlreadyGranted(Grant { user_id, ..grant }));
        }
    }
    let (eligibility, ignored) = Eligibility::parse(user.tag.as_deref());
    if !ignored.is_empty() {
        warn!(user = %request.user, ignored = ?ignored, "malformed entries in the eligibility tag were ignored");
    }
    let role = eligibility
        .role_for(&request.account, &config.target_role)
        .ok_or_else(|| Refusal::NotEligible {
            user: request.user.to_string(),
            account: request.account.to_string(),
            eligible: eligibility.describe(),
        })?;
    // The session cut's role in each production account may write only on
    // the deployment's target role: a grant on another role could not be cut.
    if config.session_cutter.is_some() && role != config.target_role {
        return Err(Refusal::RoleNotCut {
            user: request.user.to_string(),
            account: request.account.to_string(),
            role: role.to_string(),
            target: config.target_role.to_string(),
        });
    }
    // With a boundary required, grant's role may write inline policies only
    // on users who have it (iam:PermissionsBoundary): refused here, said why.
    if let Some(required) = &config.requester_boundary {
        if user.boundary.as_deref() != Some(required.as_str()) {
            return Err(Refusal::NoPermissionsBoundary {
                user: request.user.to_string(),
                required: required.clone(),
            });
        }
    }
    // The name as IAM stores it: what `${aws:username}` and a session cut match.
    let stored = user.name.clone().filter(|n| n.same_name(&request.user));
    let stored = stored.unwrap_or_else(|| request.user.clone());
    let grant = Grant {
        change_request: checked.id.clone(),
        user: stored.clone(),
        session_name: stored,
        user_id: user.id.clone(),
        account: request.account.clone(),
        role,
        window: request.window.clone(),
        named_sessions: config.require_session_name,
    };
    let document = grant.document_json();
    let (used, fits) = budget::fits(
        user.inline_policies.iter().map(|(_, d)| d.as_str()),
        &document,
    );
    if !fits {
        let active: Vec<String> = user
            .inline_policies
            .iter()
            .filter_map(|(n, d)| Grant::from_policy(&request.user, n, d).ok())
            .map(|g| {
                format!(
                    "{} ({}/{} until {})",
                    g.change_request,
                    g.account,
                    g.role,
                    human_time(g.window.end())
                )
            })
            .collect();
        return Err(Refusal::PolicyBudget {
            user: request.user.to_string(),
            used,
            needed: budget::counted_chars(&document),
            active: if active.is_empty() {
                "none (other inline policies use the space)".to_owned()
            } else {
                active.join("; ")
            },
        });
    }
    Ok(Verdict::Grant(grant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{Decision, StepApprover};
    use crate::config::{
        VAR_ALLOW_DELEGATED, VAR_ALLOWED_ACCOUNTS, VAR_APPROVER_SESSIONS_ARE_PEOPLE, VAR_APPROVERS,
        VAR_DECISIONS_TABLE, VAR_EVENT_BUS, VAR_MIN_APPROVALS, VAR_SOURCES,
    };
    use crate::execution::{RunbookRun, Versions};
    use crate::policy::tests::grant;
    use crate::request::params;
    use crate::status::Status;

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";
    const CAROL: &str = "arn:aws:iam::123456789012:user/carol";
    const DAVE: &str = "arn:aws:iam::123456789012:user/dave";
    const MALLORY: &str = "arn:aws:iam::123456789012:user/mallory";
    const APPROVERS_ROLE: &str = "arn:aws:iam::123456789012:role/Approvers";
    /// The deployment's approvers in these tests (`CHANGEGATE_APPROVERS`).
    const CONFIGURED: [&str; 4] = [BOB, CAROL, ALICE, APPROVERS_ROLE];

    pub(crate) fn config_from(extra: &'static [(&'static str, &'static str)]) -> GrantConfig {
        let lookup = move |k: &str| {
            if let Some((_, v)) = extra.iter().find(|(n, _)| *n == k) {
                return Some((*v).to_owned());
            }
            match k {
                VAR_ALLOWED_ACCOUNTS => Some("111122223333".to_owned()),
                VAR_EVENT_BUS => Some("changegate".to_owned()),
                VAR_DECISIONS_TABLE => Some("changegate-decisions".to_owned()),
                VAR_SOURCES => Some("automation,change-manager".to_owned()),
                VAR_APPROVERS => Some(CONFIGURED.join(",")),
                _ => None,
            }
        };
        GrantConfig::from_source(&lookup).unwrap()
    }

    fn config() -> GrantConfig {
        config_from(&[])
    }

    fn home() -> Home {
        Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap()
    }

    fn step(name: &str, approvers: &[&str]) -> ApprovalStep {
        ApprovalStep {
            name: name.into(),
            status: Status::Success,
            approval_status: Some(ApprovalStatus::Approved),
            decisions: Some(
                approvers
                    .iter()
                    .map(|a| ApproverDecision {
                        approver: (*a).into(),
                        decision: Decision::Approve,
                    })
                    .collect(),
            ),
            approvers: Some(CONFIGURED.iter().map(|a| StepApprover::parse(a)).collect()),
            min_required: Some(1),
        }
    }

    fn cm(status: &str, user: &str, account: &str, start: &str, end: &str) -> Execution {
        Execution {
            status: Status::parse(status),
            executed_by: Some(ALICE.into()),
            origin: Origin::ChangeRequest {
                template: "changegate-access".into(),
                runbooks: vec![RunbookRun {
                    document: "changegate-access-runbook".into(),
                    parameters: params(&[
                        ("IAMUserName", user),
                        ("AWSAccountId", account),
                        ("StartTime", start),
                        ("EndTime", end),
                    ]),
                }],
            },
            approval_steps: vec![step("Level1", &[BOB])],
            versions: Versions::current(&[
                ("changegate-access", "1"),
                ("changegate-access-runbook", "1"),
            ]),
        }
    }

    fn automation(status: &str) -> Execution {
        let mut p = params(&[
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", "2026-12-01T09:00:00Z"),
            ("EndTime", "2026-12-01T10:00:00Z"),
        ]);
        p.insert("Reason".into(), vec!["incident 4711".into()]);
        Execution {
            status: Status::parse(status),
            executed_by: Some(ALICE.into()),
            origin: Origin::Automation {
                document: "changegate-access-request".into(),
                parameters: p,
            },
            approval_steps: vec![step("Approve", &[BOB])],
            versions: Versions::current(&[("changegate-access-request", "1")]),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T08:30:00Z".parse().unwrap()
    }

    fn id() -> ChangeRequestId {
        ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap()
    }

    fn ok_request() -> Execution {
        cm(
            "Approved",
            "alice",
            "111122223333",
            "2026-12-01T18:00:00+09:00",
            "2026-12-01T19:00:00+09:00",
        )
    }

    fn check(exec: &Execution, config: &GrantConfig) -> Result<Checked, Refusal> {
        match check_request(&id(), Some(exec), config, &home(), now())? {
            Checking::Checked(c) => Ok(*c),
            Checking::Waiting(why) => panic!("waiting: {why}"),
        }
    }

    const ALICE_ID: &str = "AIDACKCEVSQ6C2EXAMPLE";

    fn eligible(tag: &str) -> UserRecord {
        UserRecord {
            name: None,
            id: Some(IamUserId::parse(ALICE_ID).unwrap()),
            tag: Some(tag.to_owned()),
            boundary: None,
            inline_policies: vec![],
        }
    }

    #[test]
    fn given_an_approved_valid_request_when_checked_then_the_requester_and_independent_approver_are_recorded()
     {
        let checked = check(&ok_request(), &config()).unwrap();
        assert_eq!(checked.requester.user.as_str(), "alice");
        assert_eq!(checked.approvers, vec![BOB.to_owned()]);
        assert_eq!(
            checked.request.window.start_utc().to_rfc3339(),
            "2026-12-01T09:00:00+00:00"
        );
        assert_eq!(checked.source, Source::ChangeManager);
    }

    #[test]
    fn given_each_failed_check_when_checking_then_the_refusal_says_which() {
        let ok = (
            "alice",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        let with = |f: &dyn Fn(&mut Execution)| {
            let mut e = cm("Approved", ok.0, ok.1, ok.2, ok.3);
            f(&mut e);
            e
        };
        let cases: Vec<(Execution, Refusal)> = vec![
            (
                cm("Rejected", ok.0, ok.1, ok.2, ok.3),
                Refusal::NotApproved {
                    status: "Rejected".into(),
                },
            ),
            (
                cm("Cancelled", ok.0, ok.1, ok.2, ok.3),
                Refusal::NotApproved {
                    status: "Cancelled".into(),
                },
            ),
            (
                with(&|e| {
                    e.executed_by =
                        Some("arn:aws:sts::123456789012:assumed-role/Admin/alice".into())
                }),
                Refusal::RequesterNotAUser {
                    filed_by: "arn:aws:sts::123456789012:assumed-role/Admin/alice".into(),
                },
            ),
            (with(&|e| e.executed_by = None), Refusal::RequesterUnknown),
            (
                with(&|e| e.executed_by = Some("arn:aws:iam::999988887777:user/alice".into())),
                Refusal::ForeignRequester {
                    requester: "arn:aws:iam::999988887777:user/alice".into(),
                    home: "123456789012".into(),
                },
            ),
            (
                with(&|e| e.executed_by = Some("arn:aws-cn:iam::123456789012:user/alice".into())),
                Refusal::ForeignRequester {
                    requester: "arn:aws-cn:iam::123456789012:user/alice".into(),
                    home: "123456789012".into(),
                },
            ),
            (
                with(&|e| e.approval_steps = vec![step("Level1", &[ALICE])]),
                Refusal::SelfApproved {
                    requester: ALICE.into(),
                },
            ),
            (
                with(&|e| {
                    e.approval_steps = vec![step(
                        "Level1",
                        &["arn:aws:sts::123456789012:assumed-role/Approvers/Alice"],
                    )]
                }),
                Refusal::SelfApproved {
                    requester: "arn:aws:sts::123456789012:assumed-role/Approvers/Alice".into(),
                },
            ),
            (
                with(&|e| e.approval_steps = vec![step("Level1", &["bob"])]),
                Refusal::ApprovalUnknown,
            ),
            (
                with(&|e| e.approval_steps[0].decisions = None),
                Refusal::ApprovalUnknown,
            ),
            (
                with(&|e| e.approval_steps.clear()),
                Refusal::ApprovalUnknown,
            ),
            (
                with(&|e| {
                    let mut second = step("Level2", &[CAROL]);
                    second.status = Status::Failed;
                    second.approval_status = Some(ApprovalStatus::Rejected);
                    e.approval_steps.push(second);
                }),
                Refusal::ApprovalIncomplete {
                    step: "Level2".into(),
                    status: "Rejected".into(),
                },
            ),
            (
                cm("Approved", "bob", ok.1, ok.2, ok.3),
                Refusal::NotTheRequester {
                    user: "bob".into(),
                    requester: "alice".into(),
                },
            ),
            (
                cm("Approved", ok.0, "444455556666", ok.2, ok.3),
                Refusal::AccountNotAllowed {
                    account: "444455556666".into(),
                    allowed: "111122223333".into(),
                },
            ),
            (
                cm(
                    "Approved",
                    ok.0,
                    ok.1,
                    "2026-12-01T07:00:00Z",
                    "2026-12-01T08:30:00Z",
                ),
                Refusal::WindowEnded {
                    end: "2026-12-01 08:30:00 UTC".into(),
                },
            ),
            (
                cm(
                    "Approved",
                    ok.0,
                    ok.1,
                    "2026-12-01T09:00:00Z",
                    "2026-12-01T17:00:01Z",
                ),
                Refusal::WindowTooLong {
                    requested_minutes: 481,
                    max_minutes: 480,
                },
            ),
            (
                cm(
                    "Approved",
                    ok.0,
                    ok.1,
                    "2027-01-01T09:00:00Z",
                    "2027-01-01T10:00:00Z",
                ),
                Refusal::StartTooFarAhead {
                    start: "2027-01-01 09:00:00 UTC".into(),
                    max_days: 30,
                },
            ),
            (
                with(&|e| {
                    e.origin = Origin::ChangeRequest {
                        template: "sandbox-template".into(),
                        runbooks: vec![],
                    }
                }),
                Refusal::WrongChangeTemplate {
                    found: "sandbox-template".into(),
                    expected: "changegate-access".into(),
                },
            ),
            (
                with(&|e| {
                    if let Origin::ChangeRequest { runbooks, .. } = &mut e.origin {
                        runbooks[0].document = "seed-runbook".into();
                    }
                }),
                Refusal::WrongRunbook {
                    found: "seed-runbook".into(),
                    expected: "changegate-access-runbook".into(),
                },
            ),
        ];
        for (exec, want) in cases {
            assert_eq!(check(&exec, &config()), Err(want));
        }
        assert_eq!(
            check_request(&id(), None, &config(), &home(), now()),
            Err(Refusal::ChangeRequestNotFound)
        );
    }

    #[test]
    fn given_a_request_still_waiting_for_approval_when_checked_then_it_waits_and_is_not_refused() {
        for exec in [
            cm(
                "PendingApproval",
                "alice",
                "111122223333",
                "2026-12-01T09:00:00Z",
                "2026-12-01T10:00:00Z",
            ),
            automation("Waiting"),
        ] {
            assert!(matches!(
                check_request(&id(), Some(&exec), &config(), &home(), now()),
                Ok(Checking::Waiting(_))
            ));
        }
        let mut two_levels = automation("InProgress");
        let mut second = step("Approve2", &[]);
        second.status = Status::Waiting;
        second.approval_status = Some(ApprovalStatus::Waiting);
        two_levels.approval_steps.push(second);
        assert!(matches!(
            check_request(&id(), Some(&two_levels), &config(), &home(), now()),
            Ok(Checking::Waiting(_))
        ));
        // Just started: the execution is InProgress and its approval step has not run yet.
        let mut started = automation("InProgress");
        started.approval_steps[0] = ApprovalStep {
            status: Status::Pending,
            approval_status: None,
            decisions: None,
            ..step("Approve", &[])
        };
        assert!(matches!(
            check_request(&id(), Some(&started), &config(), &home(), now()),
            Ok(Checking::Waiting(_))
        ));
    }

    #[test]
    fn given_the_request_runbook_when_checked_then_approvers_must_be_the_configured_ones_and_independent()
     {
        let checked = check(&automation("InProgress"), &config()).unwrap();
        assert_eq!(checked.source, Source::Automation);
        assert_eq!(checked.request.reason.as_deref(), Some("incident 4711"));
        let mut tampered = automation("InProgress");
        tampered.approval_steps[0].approvers = Some(vec![StepApprover::parse(BOB)]);
        assert_eq!(
            check(&tampered, &config()),
            Err(Refusal::ApproversTampered {
                step: "Approve".into()
            })
        );
        let mut lowered = automation("InProgress");
        let two = config_from(&[(VAR_MIN_APPROVALS, "2")]);
        lowered.approval_steps[0].min_required = Some(1);
        assert_eq!(
            check(&lowered, &two),
            Err(Refusal::ApproversTampered {
                step: "Approve".into()
            })
        );
        let mut self_and_bob = automation("InProgress");
        self_and_bob.approval_steps[0] = ApprovalStep {
            min_required: Some(2),
            ..step("Approve", &[ALICE, BOB])
        };
        assert_eq!(
            check(&self_and_bob, &two),
            Err(Refusal::NotEnoughApprovals {
                step: "Approve".into(),
                got: 1,
                needed: 2
            })
        );
        let mut look_alike = automation("InProgress");
        look_alike.origin = Origin::Automation {
            document: "changegate-access-request-copy".into(),
            parameters: Default::default(),
        };
        assert_eq!(
            check(&look_alike, &config()),
            Err(Refusal::WrongRunbook {
                found: "changegate-access-request-copy".into(),
                expected: "changegate-access-request".into()
            })
        );
        assert_eq!(
            check(
                &automation("InProgress"),
                &config_from(&[(VAR_SOURCES, "change-manager")])
            ),
            Err(Refusal::SourceNotEnabled {
                via: "Automation runbooks"
            })
        );
        assert_eq!(
            check(&ok_request(), &config_from(&[(VAR_SOURCES, "automation")])),
            Err(Refusal::SourceNotEnabled {
                via: "Change Manager"
            })
        );
    }

    /// A step approved by `decisions` (signer, decision), with the configured
    /// approvers and `min` as its recorded inputs.
    fn decided(name: &str, decisions: &[(&str, Decision)], min: u32) -> ApprovalStep {
        ApprovalStep {
            decisions: Some(
                decisions
                    .iter()
                    .map(|(a, d)| ApproverDecision {
                        approver: (*a).into(),
                        decision: d.clone(),
                    })
                    .collect(),
            ),
            min_required: Some(min),
            ..step(name, &[])
        }
    }

    fn approvals_of(
        mut exec: Execution,
        steps: Vec<ApprovalStep>,
        config: &GrantConfig,
    ) -> Result<Vec<String>, Refusal> {
        exec.approval_steps = steps;
        check(&exec, config).map(|c| c.approvers)
    }

    #[test]
    fn given_a_decision_by_someone_not_configured_when_checked_then_it_is_tampered_and_names_them()
    {
        use Decision::{Approve, Reject};
        let stranger = Refusal::UnexpectedApprover {
            step: "Level1".into(),
            approver: MALLORY.into(),
        };
        assert_eq!(
            stranger.to_string(),
            "The approval step Level1 holds a decision by arn:aws:iam::123456789012:user/mallory, who is not one of this deployment's approvers, so its approval does not count. Only the configured approvers may decide; file the request again."
        );
        assert_eq!(stranger.code(), "approvers-tampered");
        for decisions in [
            vec![(BOB, Approve), (MALLORY, Approve)],
            vec![(MALLORY, Approve)],
            vec![(BOB, Approve), (MALLORY, Reject)],
            vec![
                (MALLORY, Decision::Unknown("Abstain".into())),
                (BOB, Approve),
            ],
        ] {
            for exec in [ok_request(), automation("InProgress")] {
                let name = exec.approval_steps[0].name.clone();
                assert_eq!(
                    approvals_of(exec, vec![decided(&name, &decisions, 1)], &config()),
                    Err(Refusal::UnexpectedApprover {
                        step: name.clone(),
                        approver: MALLORY.into()
                    }),
                    "{decisions:?}"
                );
            }
        }
        // A session of a role nobody configured is a stranger too, whatever its name.
        let other_role = "arn:aws:sts::123456789012:assumed-role/Admin/bob";
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided("Level1", &[(other_role, Approve)], 1)],
                &config()
            ),
            Err(Refusal::UnexpectedApprover {
                step: "Level1".into(),
                approver: other_role.into()
            })
        );
        // A rejection by a stranger is tampering, not just a rejection.
        let mut rejected = decided("Level2", &[(MALLORY, Reject)], 1);
        rejected.status = Status::Failed;
        rejected.approval_status = Some(ApprovalStatus::Rejected);
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![step("Level1", &[BOB]), rejected],
                &config()
            ),
            Err(Refusal::UnexpectedApprover {
                step: "Level2".into(),
                approver: MALLORY.into()
            })
        );
        // An unreadable signer beside a real approval is no evidence.
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided(
                    "Level1",
                    &[(BOB, Approve), ("someone", Approve)],
                    1
                )],
                &config()
            ),
            Err(Refusal::ApprovalUnknown)
        );
        // The same user in another case or under a path is the configured one.
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided(
                    "Level1",
                    &[("arn:aws:iam::123456789012:user/ops/Bob", Approve)],
                    1
                )],
                &config()
            ),
            Ok(vec!["arn:aws:iam::123456789012:user/ops/Bob".to_owned()])
        );
    }

    #[test]
    fn given_a_step_that_ran_with_other_approvers_than_configured_when_checked_then_it_is_tampered()
    {
        let tampered = |name: &str| {
            Err(Refusal::ApproversTampered {
                step: name.to_owned(),
            })
        };
        assert_eq!(
            tampered("Approve").unwrap_err().to_string(),
            "The approval step Approve did not run with the approvers this deployment configured, so its approval does not count. File the request again with the deployment's own runbook or change template."
        );
        let with_approvers = |name: &str, entries: Vec<StepApprover>| ApprovalStep {
            approvers: Some(entries),
            ..step(name, &[BOB])
        };
        let configured = || {
            CONFIGURED
                .iter()
                .map(|a| StepApprover::parse(a))
                .collect::<Vec<_>>()
        };
        let superset = {
            let mut all = configured();
            all.push(StepApprover::parse(DAVE));
            all
        };
        let subset = configured()[..3].to_vec();
        let group = {
            let mut all = configured();
            all.push(StepApprover::parse_typed("prod-approvers", "IamGroup"));
            all
        };
        for exec in [ok_request(), automation("InProgress")] {
            let name = exec.approval_steps[0].name.clone();
            for entries in [superset.clone(), subset.clone(), group.clone(), vec![]] {
                assert_eq!(
                    approvals_of(
                        exec.clone(),
                        vec![with_approvers(&name, entries.clone())],
                        &config()
                    ),
                    tampered(&name),
                    "{entries:?}"
                );
            }
            let mut unreadable = step(&name, &[BOB]);
            unreadable.approvers = None;
            assert_eq!(
                approvals_of(exec.clone(), vec![unreadable], &config()),
                tampered(&name)
            );
            // The same identities, written as names, in another case or order, pass.
            let same = vec![
                StepApprover::parse_typed("Approvers", "IamRole"),
                StepApprover::parse("alice"),
                StepApprover::parse_typed("CAROL", "IamUser"),
                StepApprover::parse("arn:aws:iam::123456789012:user/Bob"),
            ];
            assert_eq!(
                approvals_of(exec, vec![with_approvers(&name, same)], &config()),
                Ok(vec![BOB.to_owned()])
            );
        }
        // Another account's user of the same name is not the configured one.
        let mut foreign = configured();
        foreign[0] = StepApprover::parse("arn:aws:iam::999988887777:user/bob");
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![with_approvers("Level1", foreign)],
                &config()
            ),
            tampered("Level1")
        );
    }

    #[test]
    fn given_one_person_approving_twice_when_a_minimum_of_two_is_needed_then_it_counts_once() {
        use Decision::Approve;
        let two = config_from(&[(VAR_MIN_APPROVALS, "2")]);
        let not_enough = |name: &str| {
            Err(Refusal::NotEnoughApprovals {
                step: name.to_owned(),
                got: 1,
                needed: 2,
            })
        };
        assert_eq!(
            not_enough("Level1").unwrap_err().to_string(),
            "The approval step Level1 has 1 approval(s) from people other than the requester and the person receiving access; 2 are needed."
        );
        for twice in [
            [BOB, BOB],
            [BOB, "arn:aws:iam::123456789012:user/BOB"],
            [BOB, "arn:aws:iam::123456789012:user/team/Bob"],
        ] {
            for exec in [ok_request(), automation("InProgress")] {
                let name = exec.approval_steps[0].name.clone();
                let decisions = [(twice[0], Approve), (twice[1], Approve)];
                assert_eq!(
                    approvals_of(exec, vec![decided(&name, &decisions, 2)], &two),
                    not_enough(&name),
                    "{twice:?}"
                );
            }
        }
        // Two people do meet it.
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided("Level1", &[(BOB, Approve), (CAROL, Approve)], 2)],
                &two
            ),
            Ok(vec![BOB.to_owned(), CAROL.to_owned()])
        );
        // Counted once across levels too.
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![
                    decided("Level1", &[(BOB, Approve)], 1),
                    decided(
                        "Level2",
                        &[("arn:aws:iam::123456789012:user/Bob", Approve)],
                        1
                    ),
                ],
                &config()
            ),
            Ok(vec![BOB.to_owned()])
        );
    }

    #[test]
    fn given_two_sessions_of_one_role_when_counted_then_they_are_one_approver_unless_sessions_are_people()
     {
        use Decision::Approve;
        let dave = "arn:aws:sts::123456789012:assumed-role/Approvers/dave";
        let erin = "arn:aws:sts::123456789012:assumed-role/Approvers/erin";
        let sessions = [(dave, Approve), (erin, Approve)];
        let two = config_from(&[(VAR_MIN_APPROVALS, "2")]);
        assert_eq!(
            approvals_of(ok_request(), vec![decided("Level1", &sessions, 2)], &two),
            Err(Refusal::NotEnoughApprovals {
                step: "Level1".into(),
                got: 1,
                needed: 2
            })
        );
        let people = config_from(&[
            (VAR_MIN_APPROVALS, "2"),
            (VAR_APPROVER_SESSIONS_ARE_PEOPLE, "true"),
        ]);
        assert_eq!(
            approvals_of(ok_request(), vec![decided("Level1", &sessions, 2)], &people),
            Ok(vec![dave.to_owned(), erin.to_owned()])
        );
        // With sessions bound to people, bob as himself and as a session named
        // after him is still one person.
        let bob_session = "arn:aws:sts::123456789012:assumed-role/Approvers/Bob";
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided(
                    "Level1",
                    &[(BOB, Approve), (bob_session, Approve)],
                    2
                )],
                &people
            ),
            Err(Refusal::NotEnoughApprovals {
                step: "Level1".into(),
                got: 1,
                needed: 2
            })
        );
        // Without, they are two approvers: the user bob and the role.
        assert_eq!(
            approvals_of(
                ok_request(),
                vec![decided(
                    "Level1",
                    &[(BOB, Approve), (bob_session, Approve)],
                    2
                )],
                &two
            ),
            Ok(vec![BOB.to_owned(), bob_session.to_owned()])
        );
        // A session named after the requester never counts, flag or not.
        for config in [&two, &people] {
            assert_eq!(
                approvals_of(
                    ok_request(),
                    vec![decided(
                        "Level1",
                        &[
                            (
                                "arn:aws:sts::123456789012:assumed-role/Approvers/ALICE",
                                Approve
                            ),
                            (dave, Approve)
                        ],
                        2
                    )],
                    config
                ),
                Err(Refusal::NotEnoughApprovals {
                    step: "Level1".into(),
                    got: 1,
                    needed: 2
                })
            );
        }
    }

    #[test]
    fn given_a_change_template_level_with_other_approvers_or_a_lower_minimum_when_checked_then_it_is_tampered()
     {
        let tampered = Err(Refusal::ApproversTampered {
            step: "Level1".into(),
        });
        let level = |entries: &[(&str, &str)], min: u32| {
            let mut exec = ok_request();
            exec.approval_steps[0].approvers = Some(
                entries
                    .iter()
                    .map(|(name, kind)| StepApprover::parse_typed(name, kind))
                    .collect(),
            );
            exec.approval_steps[0].min_required = Some(min);
            exec
        };
        let stack = [
            ("bob", "IamUser"),
            ("carol", "IamUser"),
            ("alice", "IamUser"),
            ("Approvers", "IamRole"),
        ];
        assert_eq!(
            check(&level(&stack, 1), &config()).map(|c| c.approvers),
            Ok(vec![BOB.to_owned()])
        );
        let mut extra = stack.to_vec();
        extra.push(("mallory", "IamUser"));
        assert_eq!(check(&level(&extra, 1), &config()), tampered);
        // A role of the same name as a configured user is not that user.
        let mut retyped = stack.to_vec();
        retyped[0] = ("bob", "IamRole");
        assert_eq!(check(&level(&retyped, 1), &config()), tampered);
        let two = config_from(&[(VAR_MIN_APPROVALS, "2")]);
        assert_eq!(check(&level(&stack, 1), &two), tampered);
        let mut twice = level(&stack, 2);
        twice.approval_steps[0] = ApprovalStep {
            approvers: twice.approval_steps[0].approvers.clone(),
            ..decided(
                "Level1",
                &[(BOB, Decision::Approve), (CAROL, Decision::Approve)],
                2,
            )
        };
        assert!(check(&twice, &two).is_ok());
        // Six configured: the change template's level lists the first five only.
        let six = config_from(&[(
            VAR_APPROVERS,
            "arn:aws:iam::123456789012:user/bob,arn:aws:iam::123456789012:user/carol,arn:aws:iam::123456789012:user/alice,arn:aws:iam::123456789012:role/Approvers,arn:aws:iam::123456789012:user/dave,arn:aws:iam::123456789012:user/erin",
        )]);
        let five = [
            ("bob", "IamUser"),
            ("carol", "IamUser"),
            ("alice", "IamUser"),
            ("Approvers", "IamRole"),
            ("dave", "IamUser"),
        ];
        assert!(check(&level(&five, 1), &six).is_ok());
        let mut all_six = five.to_vec();
        all_six.push(("erin", "IamUser"));
        assert_eq!(check(&level(&all_six, 1), &six), tampered);
        // The request runbook runs with all six.
        let mut runbook = automation("InProgress");
        runbook.approval_steps[0].approvers = Some(
            five.iter()
                .map(|(n, k)| StepApprover::parse_typed(n, k))
                .collect(),
        );
        assert_eq!(
            check(&runbook, &six),
            Err(Refusal::ApproversTampered {
                step: "Approve".into()
            })
        );
    }

    #[test]
    fn given_delegation_when_the_beneficiary_approves_their_own_access_then_it_does_not_count() {
        let delegated = config_from(&[(VAR_ALLOW_DELEGATED, "true")]);
        let mut for_bob = cm(
            "Approved",
            "bob",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        assert_eq!(
            check(&for_bob, &delegated),
            Err(Refusal::SelfApproved {
                requester: BOB.into()
            })
        );
        for_bob.approval_steps = vec![step("Level1", &[BOB, CAROL])];
        let checked = check(&for_bob, &delegated).unwrap();
        assert_eq!(checked.approvers, vec![CAROL.to_owned()]);
        assert_eq!(checked.beneficiary.user.as_str(), "bob");
        assert_eq!(checked.requester.user.as_str(), "alice");
    }

    #[test]
    fn given_the_same_user_in_another_case_when_checked_then_it_is_the_requester_not_a_delegation()
    {
        let checked = check(
            &cm(
                "Approved",
                "Alice",
                "111122223333",
                "2026-12-01T09:00:00Z",
                "2026-12-01T10:00:00Z",
            ),
            &config(),
        )
        .unwrap();
        assert_eq!(checked.request.user.as_str(), "Alice");
    }

    #[test]
    fn given_exactly_the_maximum_window_when_checking_then_it_passes() {
        assert!(
            check(
                &cm(
                    "Approved",
                    "alice",
                    "111122223333",
                    "2026-12-01T09:00:00Z",
                    "2026-12-01T17:00:00Z"
                ),
                &config()
            )
            .is_ok()
        );
    }

    #[test]
    fn given_eligibility_tags_when_deciding_then_only_tagged_accounts_grant_and_the_tag_picks_the_role()
     {
        let checked = check(&ok_request(), &config()).unwrap();
        let Ok(Verdict::Grant(g)) = decide(&checked, &eligible("111122223333"), &config()) else {
            panic!("not granted")
        };
        assert_eq!(g.role_arn(), "arn:aws:iam::111122223333:role/CM-Prd-role");
        let Ok(Verdict::Grant(g)) =
            decide(&checked, &eligible("111122223333/ReadOnlyProd"), &config())
        else {
            panic!()
        };
        assert_eq!(g.role_arn(), "arn:aws:iam::111122223333:role/ReadOnlyProd");
        for record in [
            UserRecord::default(),
            eligible("444455556666"),
            eligible("*"),
        ] {
            assert!(
                matches!(
                    decide(&checked, &record, &config()),
                    Err(Refusal::NotEligible { .. })
                ),
                "{record:?}"
            );
        }
    }

    #[test]
    fn given_a_required_permissions_boundary_when_deciding_then_only_users_with_exactly_it_are_granted()
     {
        const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/changegate-requester-boundary";
        let bounded = config_from(&[(crate::config::VAR_REQUESTER_BOUNDARY, BOUNDARY)]);
        let checked = check(&ok_request(), &bounded).unwrap();
        // Given no boundary, or another one: refused, naming the one required.
        for boundary in [None, Some("arn:aws:iam::123456789012:policy/other")] {
            let user = UserRecord {
                boundary: boundary.map(str::to_owned),
                ..eligible("111122223333")
            };
            let refused = decide(&checked, &user, &bounded).unwrap_err();
            assert_eq!(refused.code(), "no-permissions-boundary", "{boundary:?}");
            assert_eq!(
                refused.to_string(),
                "The IAM user alice does not have the permissions boundary this deployment \
                 requires (arn:aws:iam::123456789012:policy/changegate-requester-boundary), so \
                 no access is granted: the boundary caps what any inline policy can give the \
                 user. Ask the security team to set it (aws iam put-user-permissions-boundary), \
                 then file again."
            );
        }
        // Given exactly it: granted.
        let user = UserRecord {
            boundary: Some(BOUNDARY.to_owned()),
            ..eligible("111122223333")
        };
        assert!(matches!(
            decide(&checked, &user, &bounded),
            Ok(Verdict::Grant(_))
        ));
        // And without a required boundary, a user without one is granted.
        assert!(matches!(
            decide(&checked, &eligible("111122223333"), &config()),
            Ok(Verdict::Grant(_))
        ));
        // An ineligible user is refused as ineligible first, boundary or not.
        assert_eq!(
            decide(&checked, &eligible("444455556666"), &bounded).map_err(|r| r.code()),
            Err("not-eligible")
        );
    }

    #[test]
    fn given_the_session_cut_on_when_the_tag_names_another_role_then_it_is_refused_with_its_own_code()
     {
        let cut = config_from(&[(
            crate::config::VAR_SESSION_CUTTER_ROLE,
            "changegate-session-cutter",
        )]);
        let checked = check(&ok_request(), &cut).unwrap();
        let refused = decide(&checked, &eligible("111122223333/ReadOnlyProd"), &cut).unwrap_err();
        assert_eq!(refused.code(), "role-not-cut");
        assert_eq!(
            refused.to_string(),
            "The eligibility tag of alice names the role ReadOnlyProd in account 111122223333, \
             but this deployment cuts live sessions at each window's end and can cut them only \
             on CM-Prd-role. Ask the security team to name CM-Prd-role for this account in your \
             tag, or to deploy changegate for ReadOnlyProd."
        );
        // The deployment's own role, named or by default, in any case, is
        // still granted, as the deployment spells it.
        for tag in [
            "111122223333",
            "111122223333/CM-Prd-role",
            "111122223333/cm-prd-role",
        ] {
            let Ok(Verdict::Grant(g)) = decide(&checked, &eligible(tag), &cut) else {
                panic!("{tag} not granted")
            };
            assert_eq!(g.role.as_str(), "CM-Prd-role", "{tag}");
        }
        // Without the cut, another role is granted as before.
        let uncut = check(&ok_request(), &config()).unwrap();
        assert!(matches!(
            decide(&uncut, &eligible("111122223333/ReadOnlyProd"), &config()),
            Ok(Verdict::Grant(_))
        ));
    }

    #[test]
    fn given_an_eligible_user_when_deciding_then_the_grant_is_bound_to_iams_user_id_and_names_sessions_by_the_stored_name()
     {
        let checked = check(&ok_request(), &config()).unwrap();
        let user = UserRecord {
            name: Some(IamUserName::parse("Alice").unwrap()),
            ..eligible("111122223333")
        };
        let Ok(Verdict::Grant(g)) = decide(&checked, &user, &config()) else {
            panic!("not granted")
        };
        assert_eq!(g.user_id.as_ref().map(IamUserId::as_str), Some(ALICE_ID));
        assert_eq!(
            (g.user.as_str(), g.session_name.as_str()),
            ("Alice", "Alice")
        );
        assert!(
            g.document_json()
                .contains(r#""sts:RoleSessionName":"Alice""#),
            "{}",
            g.document_json()
        );
    }

    #[test]
    fn given_the_grant_is_already_on_the_user_when_deciding_then_it_is_announced_even_if_eligibility_went_since()
     {
        let checked = check(&ok_request(), &config()).unwrap();
        let Ok(Verdict::Grant(g)) = decide(&checked, &eligible("111122223333"), &config()) else {
            panic!()
        };
        let attached = UserRecord {
            name: None,
            id: Some(IamUserId::parse(ALICE_ID).unwrap()),
            tag: None,
            boundary: None,
            inline_policies: vec![(g.policy_name(), g.document_json())],
        };
        assert_eq!(
            decide(&checked, &attached, &config()),
            Ok(Verdict::AlreadyGranted(g))
        );
    }

    #[test]
    fn given_a_full_inline_policy_budget_when_deciding_then_refused_listing_the_active_grants() {
        let checked = check(&ok_request(), &config()).unwrap();
        let mut record = eligible("111122223333");
        let other = grant("2026-12-01T09:00:00Z", "2026-12-01T12:00:00Z");
        let other = Grant {
            change_request: ChangeRequestId::parse("11111111-2222-3333-4444-555555555555").unwrap(),
            ..other
        };
        record
            .inline_policies
            .push((other.policy_name(), other.document_json()));
        record.inline_policies.push((
            "team-tools".into(),
            format!(r#"{{"Statement":"{}"}}"#, "x".repeat(1500)),
        ));
        let refusal = decide(&checked, &record, &config()).unwrap_err();
        let Refusal::PolicyBudget { used, active, .. } = &refusal else {
            panic!("{refusal:?}")
        };
        assert!(*used > 1500, "{used}");
        assert_eq!(
            active,
            "11111111-2222-3333-4444-555555555555 (111122223333/CM-Prd-role until 2026-12-01 12:00:00 UTC)"
        );
        assert!(
            refusal
                .to_string()
                .contains("Grants still active: 11111111"),
            "{refusal}"
        );
    }

    #[test]
    fn given_an_older_request_runbook_version_when_checked_then_refused_as_old_document_version() {
        let mut exec = automation("InProgress");
        exec.versions
            .current
            .insert("changegate-access-request".into(), "3".into());
        let refusal = check(&exec, &config()).unwrap_err();
        assert_eq!(refusal.code(), "old-document-version");
        assert_eq!(
            refusal.to_string(),
            "This request ran version 1 of changegate-access-request, but the deployment's current version is 3; only the current version is the deployment's approval path. File a new request."
        );
    }

    #[test]
    fn given_an_older_change_template_version_when_checked_then_refused_as_old_document_version() {
        let mut exec = ok_request();
        exec.versions
            .current
            .insert("changegate-access".into(), "2".into());
        assert_eq!(
            check(&exec, &config()).unwrap_err().to_string(),
            "This request ran version 1 of changegate-access, but the deployment's current version is 2; only the current version is the deployment's approval path. File a new request."
        );
    }

    #[test]
    fn given_an_older_access_runbook_version_when_checked_then_refused_as_old_document_version() {
        let mut exec = ok_request();
        exec.versions
            .ran
            .insert("changegate-access-runbook".into(), "1".into());
        exec.versions
            .current
            .insert("changegate-access-runbook".into(), "4".into());
        assert_eq!(
            check(&exec, &config()).unwrap_err().to_string(),
            "This request ran version 1 of changegate-access-runbook, but the deployment's current version is 4; only the current version is the deployment's approval path. File a new request."
        );
    }

    #[test]
    fn given_a_request_whose_runbook_version_is_unrecorded_when_checked_then_refused_as_unknown() {
        let mut exec = ok_request();
        exec.versions.ran.remove("changegate-access-runbook");
        let refusal = check(&exec, &config()).unwrap_err();
        assert_eq!(refusal.code(), "document-version-unknown");
        assert_eq!(
            refusal.to_string(),
            "Systems Manager records no version of changegate-access-runbook for this request, so changegate cannot tell that this request ran the deployment's current version of changegate-access-runbook. File a new request."
        );
    }
}
