//! An early end, authenticated by AWS: an operator, or the person who filed
//! a request or the one it is for, starts the stack's end runbook (once
//! called the operators' runbook; an Automation document) with the request to end and
//! why; the runbook invokes revoke with nothing but its own execution id.
//! revoke reads that execution from Systems Manager and decides here, purely,
//! whether it is an authentic request to end: the stack's runbook, running
//! now, started (`ExecutedBy`, recorded by Systems Manager, not by the
//! caller) by one of the configured operators ([`authenticate`]), or by the
//! request's filer or beneficiary as Systems Manager records *the request*
//! ([`may_end`]; the decision record is never asked who may end it). Anyone
//! may invoke revoke with any payload; only such an execution ends anything.

use crate::events::Cause;
use crate::execution::{Execution, Origin};
use crate::ids::{
    AccountId, ChangeRequestId, GlobalArn, IamUserName, Principal, RoleName, UserArn,
};
use crate::request::{PARAM_USER, RawParameters};
use crate::status::Status;
use crate::text::shown;

/// The end runbook's parameter naming the request to end.
pub const PARAM_CHANGE_REQUEST_ID: &str = "ChangeRequestId";
/// The end runbook's parameter saying why.
pub const PARAM_REASON: &str = "Reason";

/// One configured operator: an IAM user, or an IAM role whose every session
/// counts as that role (as for approvers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    User(UserArn),
    Role {
        partition: String,
        account: AccountId,
        role: RoleName,
    },
}

impl Operator {
    /// An IAM user or role ARN of any partition (a path is allowed; IAM
    /// names a session by the role's name alone); `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        if let Some(user) = UserArn::parse(raw) {
            return Some(Self::User(user));
        }
        let arn = GlobalArn::parse(raw).filter(|a| a.service == "iam")?;
        let name = arn.resource.strip_prefix("role/")?.rsplit('/').next()?;
        Some(Self::Role {
            partition: arn.partition.to_owned(),
            account: arn.account,
            role: RoleName::parse(name).ok()?,
        })
    }

    /// Whether `who` (an `ExecutedBy`) is this operator: the same IAM user
    /// (partition, account, name ignoring case), or a session of this role.
    pub fn covers(&self, who: &Principal) -> bool {
        match (self, who) {
            (Self::User(op), Principal::User(user)) => op == user,
            (
                Self::Role {
                    partition,
                    account,
                    role,
                },
                Principal::AssumedRole {
                    partition: p,
                    account: a,
                    role: r,
                    ..
                },
            ) => partition == p && account == a && role.as_str().eq_ignore_ascii_case(r.as_str()),
            _ => false,
        }
    }
}

/// The deployment's end runbook and its operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operators {
    /// The stack's end runbook (its name, from template.yaml).
    pub runbook: String,
    /// Who may end access early; empty: nobody.
    pub operators: Vec<Operator>,
}

impl Operators {
    /// Parses a comma-separated list of IAM user or role ARNs; `Err` names
    /// the first entry that is neither.
    pub fn parse_list(list: &str) -> Result<Vec<Operator>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| Operator::parse(a).ok_or_else(|| a.to_owned()))
            .collect()
    }
}

/// A request to end access that Systems Manager's record of the end
/// runbook's execution authenticates: who started it, for which request.
/// Whether that person may end that request is [`may_end`]'s to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    /// The request whose access ends.
    pub change_request: ChangeRequestId,
    /// Who started the runbook, as Systems Manager recorded it.
    pub by: String,
    /// Whether `by` is one of the deployment's operators (who may end any request).
    pub by_operator: bool,
    /// Why, as they wrote it (may be empty).
    pub reason: String,
}

/// Why an execution is not an authentic request to end access. Nothing is
/// removed for any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnOperator {
    #[error("Systems Manager has no automation execution {execution}; nothing is removed.")]
    NoSuchExecution { execution: String },
    #[error(
        "Execution {execution} runs {found}, not this deployment's end runbook {expected}; only that runbook ends access early, so nothing is removed."
    )]
    NotTheRunbook {
        execution: String,
        found: String,
        expected: String,
    },
    #[error(
        "Execution {execution} of the end runbook is {status}, not InProgress; only a running execution ends access (a finished one cannot be replayed), so nothing is removed."
    )]
    NotRunning { execution: String, status: String },
    #[error(
        "Systems Manager does not say who started execution {execution}, so it cannot be an operator's; nothing is removed."
    )]
    StarterUnknown { execution: String },
    #[error(
        "Execution {execution} was started by {by}, who is neither one of this deployment's operators (OperatorArns) nor the person who filed request {request} or the one it is for; nothing is removed."
    )]
    MayNotEnd {
        execution: String,
        by: String,
        request: String,
    },
    #[error(
        "Execution {execution} names request {request}, which Systems Manager does not have; nothing is removed."
    )]
    NoSuchRequest { execution: String, request: String },
    #[error(
        "Execution {execution} names no valid change request id in {PARAM_CHANGE_REQUEST_ID}; nothing is removed."
    )]
    NoRequest { execution: String },
}

impl NotAnOperator {
    /// A stable code, for logs and the answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchExecution { .. } => "no-such-execution",
            Self::NotTheRunbook { .. } => "not-the-operators-runbook",
            Self::NotRunning { .. } => "operators-runbook-not-running",
            Self::StarterUnknown { .. } => "starter-unknown",
            Self::MayNotEnd { .. } => "may-not-end",
            Self::NoSuchRequest { .. } => "no-such-request",
            Self::NoRequest { .. } => "no-change-request-id",
        }
    }
}

fn one<'a>(parameters: &'a RawParameters, name: &str) -> Option<&'a str> {
    match parameters.get(name).map(Vec::as_slice) {
        Some([value]) => Some(value.as_str()),
        _ => None,
    }
}

/// Whether execution `execution`, as Systems Manager holds it (`exec`), is an
/// authentic request to end a request's access now: the stack's end runbook,
/// running, with a recorded starter and a request id. Whether its starter may
/// end that request is [`may_end`]'s to say.
pub fn authenticate(
    execution: &str,
    exec: Option<&Execution>,
    config: &Operators,
) -> Result<EndRequest, NotAnOperator> {
    let execution = shown(execution);
    let Some(exec) = exec else {
        return Err(NotAnOperator::NoSuchExecution { execution });
    };
    let parameters = match &exec.origin {
        Origin::Automation {
            document,
            parameters,
            ..
        } if *document == config.runbook => parameters,
        Origin::Automation { document, .. } => {
            return Err(NotAnOperator::NotTheRunbook {
                execution,
                found: shown(document),
                expected: config.runbook.clone(),
            });
        }
        Origin::ChangeRequest { template, .. } => {
            return Err(NotAnOperator::NotTheRunbook {
                execution,
                found: format!("the change template {}", shown(template)),
                expected: config.runbook.clone(),
            });
        }
    };
    if exec.status != Status::InProgress {
        return Err(NotAnOperator::NotRunning {
            execution,
            status: exec.status.to_string(),
        });
    }
    let by = exec
        .executed_by
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| NotAnOperator::StarterUnknown {
            execution: execution.clone(),
        })?;
    let change_request = one(parameters, PARAM_CHANGE_REQUEST_ID)
        .and_then(|raw| ChangeRequestId::parse(raw.trim()).ok())
        .ok_or_else(|| NotAnOperator::NoRequest {
            execution: execution.clone(),
        })?;
    let by_operator =
        Principal::parse(by).is_some_and(|who| config.operators.iter().any(|op| op.covers(&who)));
    Ok(EndRequest {
        change_request,
        by: by.to_owned(),
        by_operator,
        reason: one(parameters, PARAM_REASON).map(shown).unwrap_or_default(),
    })
}

/// Whether `end`'s starter may end its request, and the cause to record: an
/// operator ends any request ([`Cause::Operator`]); anyone else only a
/// request that Systems Manager (`request`, its record of the request, never
/// the decision table) says they filed (`ExecutedBy`) or is for them (its
/// `IAMUserName`, in the filer's account) ([`Cause::EndedOnRequest`]). An IAM
/// user is the same person whatever the case of the name; a role's session
/// is never a requester (changegate refuses requests filed by one).
pub fn may_end(
    execution: &str,
    end: &EndRequest,
    request: Option<&Execution>,
) -> Result<Cause, NotAnOperator> {
    if end.by_operator {
        return Ok(Cause::Operator);
    }
    let execution = shown(execution);
    let Some(request) = request else {
        return Err(NotAnOperator::NoSuchRequest {
            execution,
            request: end.change_request.to_string(),
        });
    };
    let filer = request
        .executed_by
        .as_deref()
        .and_then(Principal::parse)
        .and_then(|p| match p {
            Principal::User(user) => Some(user),
            _ => None,
        });
    let beneficiary = filer.as_ref().and_then(|filer| {
        let name = one(request.parameters()?, PARAM_USER)?;
        Some(UserArn {
            user: IamUserName::parse(name.trim()).ok()?,
            ..filer.clone()
        })
    });
    let them = match Principal::parse(&end.by) {
        Some(Principal::User(who)) => {
            filer.as_ref() == Some(&who) || beneficiary.as_ref() == Some(&who)
        }
        _ => false,
    };
    if them {
        Ok(Cause::EndedOnRequest)
    } else {
        Err(NotAnOperator::MayNotEnd {
            execution,
            by: shown(&end.by),
            request: end.change_request.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "changegate-end-access-1234";
    const EXECUTION: &str = "0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87";
    const REQUEST: &str = "d0585556-80f6-4522-8dad-dada6d45b67d";
    const DAVE: &str = "arn:aws:iam::123456789012:user/dave";
    const ONCALL: &str = "arn:aws:iam::123456789012:role/team/OnCall";

    fn config() -> Operators {
        Operators {
            runbook: RUNBOOK.into(),
            operators: Operators::parse_list(&format!("{DAVE}, {ONCALL}")).unwrap(),
        }
    }

    fn run(document: &str, status: Status, by: Option<&str>) -> Execution {
        let mut parameters = RawParameters::new();
        parameters.insert(PARAM_CHANGE_REQUEST_ID.into(), vec![REQUEST.into()]);
        parameters.insert(PARAM_REASON.into(), vec!["incident over".into()]);
        Execution {
            status,
            executed_by: by.map(str::to_owned),
            origin: Origin::Automation {
                document: document.into(),
                parameters,
            },
            approval_steps: vec![],
            versions: Default::default(),
        }
    }

    fn refusal(exec: Option<&Execution>) -> String {
        authenticate(EXECUTION, exec, &config())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn given_the_runbook_running_started_by_an_operator_when_authenticated_then_it_names_the_request_who_and_why()
     {
        let exec = run(RUNBOOK, Status::InProgress, Some(DAVE));
        assert_eq!(
            authenticate(EXECUTION, Some(&exec), &config()),
            Ok(EndRequest {
                change_request: ChangeRequestId::parse(REQUEST).unwrap(),
                by: DAVE.into(),
                by_operator: true,
                reason: "incident over".into(),
            })
        );
        // An IAM user's name ignores case; a role's session counts as the role
        for by in [
            "arn:aws:iam::123456789012:user/DAVE",
            "arn:aws:sts::123456789012:assumed-role/OnCall/erin",
            "arn:aws:sts::123456789012:assumed-role/oncall/frank",
        ] {
            let exec = run(RUNBOOK, Status::InProgress, Some(by));
            let end = authenticate(EXECUTION, Some(&exec), &config()).unwrap();
            assert!(end.by_operator, "{by}");
            // Then an operator may end any request, even one Systems Manager lacks
            assert_eq!(may_end(EXECUTION, &end, None), Ok(Cause::Operator));
        }
    }

    #[test]
    fn given_no_such_execution_when_authenticated_then_refused_saying_so() {
        assert_eq!(
            refusal(None),
            format!("Systems Manager has no automation execution {EXECUTION}; nothing is removed.")
        );
    }

    #[test]
    fn given_another_document_when_authenticated_then_refused_as_not_the_runbook() {
        let exec = run("changegate-access-request", Status::InProgress, Some(DAVE));
        assert_eq!(
            refusal(Some(&exec)),
            format!(
                "Execution {EXECUTION} runs changegate-access-request, not this deployment's end runbook {RUNBOOK}; only that runbook ends access early, so nothing is removed."
            )
        );
        let cr = Execution {
            origin: Origin::ChangeRequest {
                template: RUNBOOK.into(),
                runbooks: vec![],
            },
            ..exec
        };
        assert_eq!(
            authenticate(EXECUTION, Some(&cr), &config())
                .unwrap_err()
                .code(),
            "not-the-operators-runbook"
        );
    }

    #[test]
    fn given_a_finished_execution_when_authenticated_then_refused_as_not_running() {
        for status in [Status::Success, Status::Failed, Status::Waiting] {
            let exec = run(RUNBOOK, status.clone(), Some(DAVE));
            assert_eq!(
                refusal(Some(&exec)),
                format!(
                    "Execution {EXECUTION} of the end runbook is {status}, not InProgress; only a running execution ends access (a finished one cannot be replayed), so nothing is removed."
                )
            );
        }
    }

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    /// A request as Systems Manager records it: filed by `filer`, for `user`.
    fn request(filer: &str, user: &str) -> Execution {
        let mut parameters = RawParameters::new();
        parameters.insert(PARAM_USER.into(), vec![user.into()]);
        Execution {
            status: Status::Success,
            executed_by: Some(filer.into()),
            origin: Origin::Automation {
                document: "changegate-access-request".into(),
                parameters,
            },
            approval_steps: vec![],
            versions: Default::default(),
        }
    }

    fn ends(by: &str, request: Option<&Execution>) -> Result<Cause, NotAnOperator> {
        let end = authenticate(
            EXECUTION,
            Some(&run(RUNBOOK, Status::InProgress, Some(by))),
            &config(),
        )?;
        may_end(EXECUTION, &end, request)
    }

    #[test]
    fn given_the_requests_filer_or_beneficiary_when_they_end_it_then_it_ends_on_their_request() {
        // Given alice filed a request for herself, and one for bob (delegated)
        let own = request(ALICE, "alice");
        let for_bob = request(ALICE, "bob");
        // Then alice may end both, bob the one for him, names ignoring case
        assert_eq!(ends(ALICE, Some(&own)), Ok(Cause::EndedOnRequest));
        assert_eq!(ends(ALICE, Some(&for_bob)), Ok(Cause::EndedOnRequest));
        for bob in [
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::123456789012:user/BOB",
        ] {
            assert_eq!(
                ends(bob, Some(&for_bob)),
                Ok(Cause::EndedOnRequest),
                "{bob}"
            );
        }
    }

    #[test]
    fn given_someone_else_started_it_when_authenticated_then_they_may_not_end_the_request() {
        let own = request(ALICE, "alice");
        for by in [
            "arn:aws:iam::123456789012:user/mallory",
            "arn:aws:iam::999988887777:user/alice",
            "arn:aws-cn:iam::123456789012:user/alice",
            "arn:aws:iam::999988887777:user/dave",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "arn:aws:sts::999988887777:assumed-role/OnCall/erin",
            "arn:aws:iam::123456789012:role/team/OnCall",
            "alice",
        ] {
            let end = authenticate(
                EXECUTION,
                Some(&run(RUNBOOK, Status::InProgress, Some(by))),
                &config(),
            )
            .unwrap();
            assert!(!end.by_operator, "{by}");
            let refused = may_end(EXECUTION, &end, Some(&own)).unwrap_err();
            assert_eq!(
                refused.to_string(),
                format!(
                    "Execution {EXECUTION} was started by {by}, who is neither one of this deployment's operators (OperatorArns) nor the person who filed request {REQUEST} or the one it is for; nothing is removed."
                ),
                "{by}"
            );
            assert_eq!(refused.code(), "may-not-end");
        }
        // A request whose filer Systems Manager does not name (or names as a
        // role session) has nobody but the operators to end it
        for filer in [
            None,
            Some("arn:aws:sts::123456789012:assumed-role/Admin/alice"),
        ] {
            let mut odd = request(ALICE, "alice");
            odd.executed_by = filer.map(str::to_owned);
            assert_eq!(
                ends(ALICE, Some(&odd)).unwrap_err().code(),
                "may-not-end",
                "{filer:?}"
            );
        }
        // And with no operators configured, dave is nobody special
        let nobody = Operators {
            operators: vec![],
            ..config()
        };
        let exec = run(RUNBOOK, Status::InProgress, Some(DAVE));
        let end = authenticate(EXECUTION, Some(&exec), &nobody).unwrap();
        assert_eq!(
            may_end(EXECUTION, &end, Some(&own)).unwrap_err().code(),
            "may-not-end"
        );
    }

    #[test]
    fn given_a_request_systems_manager_lacks_when_a_person_ends_it_then_refused_saying_so() {
        assert_eq!(
            ends(ALICE, None).unwrap_err().to_string(),
            format!(
                "Execution {EXECUTION} names request {REQUEST}, which Systems Manager does not have; nothing is removed."
            )
        );
    }

    #[test]
    fn given_no_starter_or_no_request_id_when_authenticated_then_refused_saying_which() {
        let exec = run(RUNBOOK, Status::InProgress, None);
        assert_eq!(
            refusal(Some(&exec)),
            format!(
                "Systems Manager does not say who started execution {EXECUTION}, so it cannot be an operator's; nothing is removed."
            )
        );
        let mut exec = run(RUNBOOK, Status::InProgress, Some(DAVE));
        if let Origin::Automation { parameters, .. } = &mut exec.origin {
            parameters.insert(PARAM_CHANGE_REQUEST_ID.into(), vec!["not an id".into()]);
        }
        assert_eq!(
            refusal(Some(&exec)),
            format!(
                "Execution {EXECUTION} names no valid change request id in ChangeRequestId; nothing is removed."
            )
        );
    }

    #[test]
    fn given_operator_arns_when_parsed_then_users_and_roles_of_any_partition_are_accepted_and_junk_named()
     {
        assert_eq!(
            Operators::parse_list(
                "arn:aws-us-gov:iam::123456789012:user/dave,arn:aws-cn:iam::123456789012:role/OnCall"
            )
            .map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            Operators::parse_list(&format!(
                "{DAVE},arn:aws:sts::123456789012:assumed-role/OnCall/erin"
            )),
            Err("arn:aws:sts::123456789012:assumed-role/OnCall/erin".into())
        );
        assert_eq!(Operators::parse_list(""), Ok(vec![]));
    }

    #[test]
    fn given_a_role_arn_wrong_in_any_one_part_when_parsed_then_it_is_no_operator() {
        // Given a valid role ARN, then the same ARN wrong in exactly one part
        let valid = "arn:aws:iam::123456789012:role/OnCall";
        assert!(Operator::parse(valid).is_some());
        for wrong in [
            "arx:aws:iam::123456789012:role/OnCall",
            ":iam::123456789012:role/OnCall",
            "arn::iam::123456789012:role/OnCall",
            "arn:AWS:iam::123456789012:role/OnCall",
            "arn:aws_cn:iam::123456789012:role/OnCall",
            "arn:aws-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:iam::123456789012:role/OnCall",
            "arn:aws:sts::123456789012:role/OnCall",
            "arn:aws:iam:us-east-1:123456789012:role/OnCall",
            "arn:aws:iam::12345678901:role/OnCall",
            "arn:aws:iam::123456789012:group/OnCall",
        ] {
            // When parsed, then it is refused
            assert_eq!(Operator::parse(wrong), None, "{wrong}");
        }
    }
}
