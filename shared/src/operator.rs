//! An operator's early end, authenticated by AWS: the operator starts the
//! stack's operators' runbook (an Automation document) with the request to
//! end and why; the runbook invokes revoke with nothing but its own execution
//! id. revoke reads that execution from Systems Manager and decides here,
//! purely, whether it is an authentic operator's request: the stack's
//! operators' runbook, running now, started (`ExecutedBy`, recorded by
//! Systems Manager, not by the caller) by one of the configured operators.
//! Anyone may invoke revoke with any payload; only such an execution ends
//! anything.

use crate::execution::{Execution, Origin};
use crate::ids::{AccountId, ChangeRequestId, GlobalArn, Principal, RoleName, UserArn};
use crate::request::RawParameters;
use crate::status::Status;
use crate::text::shown;

/// The operators' runbook's parameter naming the request to end.
pub const PARAM_CHANGE_REQUEST_ID: &str = "ChangeRequestId";
/// The operators' runbook's parameter saying why.
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

/// The deployment's operators' runbook and who may run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operators {
    /// The stack's operators' runbook (its name, from template.yaml).
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

/// An operator's request that Systems Manager's record authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEnd {
    /// The request whose access ends.
    pub change_request: ChangeRequestId,
    /// Who started the operators' runbook, as Systems Manager recorded it.
    pub operator: String,
    /// Why, as the operator wrote it (may be empty).
    pub reason: String,
}

/// Why an execution is not an authentic operator's request. Nothing is
/// removed for any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnOperator {
    #[error("Systems Manager has no automation execution {execution}; nothing is removed.")]
    NoSuchExecution { execution: String },
    #[error(
        "Execution {execution} runs {found}, not this deployment's operators' runbook {expected}; only that runbook ends access early, so nothing is removed."
    )]
    NotTheRunbook {
        execution: String,
        found: String,
        expected: String,
    },
    #[error(
        "Execution {execution} of the operators' runbook is {status}, not InProgress; only a running execution ends access (a finished one cannot be replayed), so nothing is removed."
    )]
    NotRunning { execution: String, status: String },
    #[error(
        "Systems Manager does not say who started execution {execution}, so it cannot be an operator's; nothing is removed."
    )]
    StarterUnknown { execution: String },
    #[error(
        "Execution {execution} was started by {by}, who is not one of this deployment's operators (OperatorArns); nothing is removed."
    )]
    NotAnOperator { execution: String, by: String },
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
            Self::NotAnOperator { .. } => "not-an-operator",
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
/// authentic operator's request to end a request's access now, and which.
pub fn authenticate(
    execution: &str,
    exec: Option<&Execution>,
    config: &Operators,
) -> Result<OperatorEnd, NotAnOperator> {
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
    let is_operator =
        Principal::parse(by).is_some_and(|who| config.operators.iter().any(|op| op.covers(&who)));
    if !is_operator {
        return Err(NotAnOperator::NotAnOperator {
            execution,
            by: shown(by),
        });
    }
    let change_request = one(parameters, PARAM_CHANGE_REQUEST_ID)
        .and_then(|raw| ChangeRequestId::parse(raw.trim()).ok())
        .ok_or_else(|| NotAnOperator::NoRequest {
            execution: execution.clone(),
        })?;
    Ok(OperatorEnd {
        change_request,
        operator: by.to_owned(),
        reason: one(parameters, PARAM_REASON).map(shown).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = "changegate-operator-revoke-1234";
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
            Ok(OperatorEnd {
                change_request: ChangeRequestId::parse(REQUEST).unwrap(),
                operator: DAVE.into(),
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
            assert!(
                authenticate(EXECUTION, Some(&exec), &config()).is_ok(),
                "{by}"
            );
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
                "Execution {EXECUTION} runs changegate-access-request, not this deployment's operators' runbook {RUNBOOK}; only that runbook ends access early, so nothing is removed."
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
                    "Execution {EXECUTION} of the operators' runbook is {status}, not InProgress; only a running execution ends access (a finished one cannot be replayed), so nothing is removed."
                )
            );
        }
    }

    #[test]
    fn given_someone_else_started_it_when_authenticated_then_refused_as_not_an_operator() {
        for by in [
            "arn:aws:iam::123456789012:user/mallory",
            "arn:aws:iam::999988887777:user/dave",
            "arn:aws-cn:iam::123456789012:user/dave",
            "arn:aws:sts::123456789012:assumed-role/Admin/dave",
            "arn:aws:sts::999988887777:assumed-role/OnCall/erin",
            "arn:aws:iam::123456789012:role/team/OnCall",
            "dave",
        ] {
            let exec = run(RUNBOOK, Status::InProgress, Some(by));
            assert_eq!(
                refusal(Some(&exec)),
                format!(
                    "Execution {EXECUTION} was started by {by}, who is not one of this deployment's operators (OperatorArns); nothing is removed."
                ),
                "{by}"
            );
        }
        let nobody = Operators {
            operators: vec![],
            ..config()
        };
        let exec = run(RUNBOOK, Status::InProgress, Some(DAVE));
        assert_eq!(
            authenticate(EXECUTION, Some(&exec), &nobody)
                .unwrap_err()
                .code(),
            "not-an-operator"
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
