//! Who approved, from Systems Manager's own record of the `aws:approve` steps
//! (`Outputs.ApproverDecisions`), never from the event (whose `approvers`
//! lists who *may* approve). Decisions are read into types; anything
//! unreadable is no evidence, never approval.
//!
//! And who *may* approve, as identities: [`Approver`] is one IAM user or one
//! IAM role (compared as IAM compares names: "not distinguished by case"),
//! [`StepApprover`] one entry of a step's `Inputs.Approvers` (or of a change
//! template level's `EnhancedApprovals`), read once at the edge.

use serde::Deserialize;

use crate::ids::{AccountId, Home, IamUserName, Principal, RoleName, UserArn};

/// `Outputs.ApprovalStatus` of an `aws:approve` step, as Systems Manager
/// writes it (`Approved`, `Rejected`, `Waiting`); anything else is `Other`,
/// never approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStatus {
    Approved,
    Rejected,
    Waiting,
    Other(String),
}

impl ApprovalStatus {
    /// Exact, case-sensitive names as AWS writes them.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "Approved" => Self::Approved,
            "Rejected" => Self::Rejected,
            "Waiting" => Self::Waiting,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::Waiting => "Waiting",
            Self::Other(raw) => raw,
        }
    }
}

impl From<&str> for ApprovalStatus {
    fn from(raw: &str) -> Self {
        Self::parse(raw)
    }
}

/// One approver identity: an IAM user, or an IAM role (all its sessions).
/// Two are the same only in the same partition and account with the same
/// name, ignoring case as IAM does (its names are unique regardless of case).
#[derive(Debug, Clone, Eq)]
pub enum Approver {
    User(UserArn),
    Role {
        partition: String,
        account: AccountId,
        role: RoleName,
    },
}

impl PartialEq for Approver {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::User(a), Self::User(b)) => a == b,
            (
                Self::Role {
                    partition: pa,
                    account: aa,
                    role: ra,
                },
                Self::Role {
                    partition: pb,
                    account: ab,
                    role: rb,
                },
            ) => pa == pb && aa == ab && ra.as_str().eq_ignore_ascii_case(rb.as_str()),
            _ => false,
        }
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(user) => user.fmt(f),
            Self::Role {
                partition,
                account,
                role,
            } => write!(f, "arn:{partition}:iam::{account}:role/{role}"),
        }
    }
}

impl Approver {
    /// An IAM user or role ARN (`arn:<p>:iam::<account>:user/[path/]<name>`
    /// or `...:role/[path/]<name>`); `None` for anything else.
    pub fn parse_arn(raw: &str) -> Option<Self> {
        if let Some(Principal::User(user)) = Principal::parse(raw) {
            return Some(Self::User(user));
        }
        let rest = raw.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        let rest = rest.strip_prefix("iam::")?;
        let (account, resource) = rest.split_once(':')?;
        let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
        let partition_ok = !partition.is_empty()
            && partition.len() <= 32
            && partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-');
        partition_ok.then_some(())?;
        Some(Self::Role {
            partition: partition.to_owned(),
            account: AccountId::parse(account).ok()?,
            role: RoleName::parse(name).ok()?,
        })
    }

    /// Which approver the signer of a decision acts as: the user itself, or
    /// the role whose session it is (whatever the session's name).
    pub fn signer(principal: &Principal) -> Self {
        match principal {
            Principal::User(user) => Self::User(user.clone()),
            Principal::AssumedRole {
                partition,
                account,
                role,
                ..
            } => Self::Role {
                partition: partition.clone(),
                account: account.clone(),
                role: role.clone(),
            },
        }
    }

    /// Whom a decision counts as, so that one person counts once: a user is
    /// that user; a role session is that one role, whatever its session's
    /// name, unless the deployment binds session names to people
    /// (`sessions_are_people`): then the session is the IAM user of its
    /// account that it is named after (session names and user names share
    /// IAM's characters), so `bob` signing as himself and as a session named
    /// `bob` still counts once.
    pub fn person(principal: &Principal, sessions_are_people: bool) -> Self {
        match principal {
            Principal::AssumedRole {
                partition,
                account,
                session,
                ..
            } if sessions_are_people => match IamUserName::parse(session) {
                Ok(user) => Self::User(UserArn {
                    partition: partition.clone(),
                    account: account.clone(),
                    user,
                }),
                Err(_) => Self::signer(principal),
            },
            other => Self::signer(other),
        }
    }
}

/// One entry of the approvers an `aws:approve` step ran with, as Systems
/// Manager recorded it: an ARN, a name (a runbook's `Approvers` takes user
/// names; a change template's `EnhancedApprovals` names with a type), or
/// anything else (groups, IAM Identity Center, unreadable), which is never
/// one of the deployment's approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepApprover {
    Arn(Approver),
    /// An IAM user by name: this account's.
    UserName(IamUserName),
    /// An IAM role by name (`type: IamRole`): this account's.
    RoleName(RoleName),
    Other(String),
}

impl StepApprover {
    /// An entry of a runbook step's `Approvers`: an IAM user or role ARN, or
    /// a user name.
    pub fn parse(raw: &str) -> Self {
        if let Some(arn) = Approver::parse_arn(raw) {
            return Self::Arn(arn);
        }
        if raw.starts_with("arn:") {
            return Self::Other(raw.to_owned());
        }
        IamUserName::parse(raw)
            .map(Self::UserName)
            .unwrap_or_else(|_| Self::Other(raw.to_owned()))
    }

    /// An entry of a change template level's `EnhancedApprovals.Approvers`:
    /// `{approver, type}` with type `IamUser` or `IamRole` (others, such as
    /// `IamGroup` or `SSOUser`, are `Other`).
    pub fn parse_typed(approver: &str, kind: &str) -> Self {
        if let Some(arn) = Approver::parse_arn(approver) {
            return Self::Arn(arn);
        }
        let other = || Self::Other(format!("{kind}:{approver}"));
        match kind {
            "IamUser" => IamUserName::parse(approver)
                .map(Self::UserName)
                .unwrap_or_else(|_| other()),
            "IamRole" => RoleName::parse(approver)
                .map(Self::RoleName)
                .unwrap_or_else(|_| other()),
            _ => other(),
        }
    }

    /// The identity this entry names, names read as this account's.
    pub fn resolve(&self, home: &Home) -> Option<Approver> {
        match self {
            Self::Arn(a) => Some(a.clone()),
            Self::UserName(user) => Some(Approver::User(home.user(user))),
            Self::RoleName(role) => Some(Approver::Role {
                partition: home.partition.clone(),
                account: home.account.clone(),
                role: role.clone(),
            }),
            Self::Other(_) => None,
        }
    }
}

impl From<&str> for StepApprover {
    fn from(raw: &str) -> Self {
        Self::parse(raw)
    }
}

/// Parses a step's `Inputs.Approvers` (JSON text): a list of names or ARNs,
/// or one; or a change template level's `Inputs.EnhancedApprovals` (JSON
/// text: `{"Approvers": [{"approver", "type", ...}], ...}`). `None` when
/// absent or unreadable.
pub fn parse_step_approvers(
    approvers: Option<&str>,
    enhanced: Option<&str>,
) -> Option<Vec<StepApprover>> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(alias = "Approver")]
        approver: String,
        #[serde(rename = "type", alias = "Type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct Enhanced {
        #[serde(rename = "Approvers")]
        approvers: Vec<Typed>,
    }
    if let Some(raw) = enhanced {
        let e: Enhanced = serde_json::from_str(raw).ok()?;
        return Some(
            e.approvers
                .iter()
                .map(|t| StepApprover::parse_typed(&t.approver, &t.kind))
                .collect(),
        );
    }
    let raw = approvers?;
    let names = serde_json::from_str::<Vec<String>>(raw).ok().or_else(|| {
        serde_json::from_str::<String>(raw)
            .ok()
            .map(|one| vec![one])
    })?;
    Some(names.iter().map(|n| StepApprover::parse(n)).collect())
}

/// A step's minimum number of approvals: `Inputs.MinRequiredApprovals`
/// (JSON text), else the change template level's
/// `EnhancedApprovals.MinRequiredApprovals`; `None` when neither is readable.
pub fn parse_min_required(min: Option<&str>, enhanced: Option<&str>) -> Option<u32> {
    if let Some(n) = min.and_then(|raw| raw.trim_matches('"').parse().ok()) {
        return Some(n);
    }
    #[derive(Deserialize)]
    struct Enhanced {
        #[serde(rename = "MinRequiredApprovals")]
        min: u32,
    }
    serde_json::from_str::<Enhanced>(enhanced?)
        .ok()
        .map(|e| e.min)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Unknown(String),
}

impl Decision {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "Approve" | "Approved" => Self::Approve,
            "Reject" | "Rejected" => Self::Reject,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverDecision {
    /// The approver's ARN as Systems Manager recorded it.
    pub approver: String,
    pub decision: Decision,
}

impl ApproverDecision {
    pub fn approved(&self) -> bool {
        self.decision == Decision::Approve
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Recorded {
    approver: String,
    decision: String,
}

/// Parses the `ApproverDecisions` output values: each a JSON object or a JSON
/// list of objects. `None` when any value is unreadable.
pub fn parse_decisions(values: &[String]) -> Option<Vec<ApproverDecision>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Recorded),
        Many(Vec<Recorded>),
    }
    let mut out = Vec::new();
    for v in values {
        let recorded = match serde_json::from_str::<OneOrMany>(v).ok()? {
            OneOrMany::One(d) => vec![d],
            OneOrMany::Many(ds) => ds,
        };
        out.extend(recorded.into_iter().map(|r| ApproverDecision {
            approver: r.approver,
            decision: Decision::parse(&r.decision),
        }));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";

    #[test]
    fn given_recorded_decisions_when_parsed_then_objects_and_lists_are_both_read() {
        let one = format!(
            r#"{{"Approver":"{BOB}","Decision":"Approve","ApprovalDecisionTime":"2022-04-06T07:22:51.034463Z","Comment":""}}"#
        );
        let many = format!(
            r#"[{{"Approver":"{ALICE}","Decision":"Approve"}},{{"Approver":"{BOB}","Decision":"Reject"}}]"#
        );
        let got = parse_decisions(&[one, many]).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].approver, BOB);
        assert!(got[0].approved());
        assert_eq!(got[2].decision, Decision::Reject);
    }

    #[test]
    fn given_unreadable_decisions_when_parsed_then_there_is_no_evidence() {
        assert_eq!(parse_decisions(&["not json".to_owned()]), None);
        assert_eq!(
            parse_decisions(&[r#"{"Decision":"Approve"}"#.to_owned()]),
            None
        );
    }

    #[test]
    fn given_an_unknown_decision_word_when_parsed_then_it_is_not_an_approval() {
        let d =
            parse_decisions(&[format!(r#"{{"Approver":"{BOB}","Decision":"approve"}}"#)]).unwrap();
        assert!(!d[0].approved());
    }
}
