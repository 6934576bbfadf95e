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

impl StepApprover {
    /// The IAM user name this entry names, if it names a user (for per-person
    /// message filters); `None` for a role or anything else.
    pub fn user_name(&self) -> Option<&IamUserName> {
        match self {
            Self::Arn(Approver::User(user)) => Some(&user.user),
            Self::UserName(name) => Some(name),
            _ => None,
        }
    }
}

/// As a person reads the entry: the ARN, the user name, `role NAME`, or the
/// entry as recorded (made printable).
impl std::fmt::Display for StepApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Arn(arn) => write!(f, "{arn}"),
            Self::UserName(name) => write!(f, "{name}"),
            Self::RoleName(role) => write!(f, "role {role}"),
            Self::Other(raw) => f.write_str(&crate::text::shown(raw)),
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

    fn user(arn: &str) -> Approver {
        Approver::parse_arn(arn).unwrap()
    }

    fn home() -> Home {
        Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap()
    }

    #[test]
    fn given_approval_statuses_when_parsed_then_only_exact_names_are_known_and_they_round_trip() {
        for (raw, want) in [
            ("Approved", ApprovalStatus::Approved),
            ("Rejected", ApprovalStatus::Rejected),
            ("Waiting", ApprovalStatus::Waiting),
            ("approved", ApprovalStatus::Other("approved".into())),
            ("", ApprovalStatus::Other(String::new())),
        ] {
            assert_eq!(ApprovalStatus::parse(raw), want, "{raw:?}");
            assert_eq!(ApprovalStatus::from(raw).as_str(), raw);
        }
    }

    #[test]
    fn given_approver_arns_when_parsed_then_users_and_roles_are_identities_compared_as_iam_does() {
        assert_eq!(user(BOB), user("arn:aws:iam::123456789012:user/ops/BOB"));
        assert_ne!(user(BOB), user("arn:aws:iam::999988887777:user/bob"));
        assert_ne!(user(BOB), user("arn:aws-cn:iam::123456789012:user/bob"));
        let role = user("arn:aws:iam::123456789012:role/team/Approvers");
        assert_eq!(role.to_string(), "arn:aws:iam::123456789012:role/Approvers");
        assert_eq!(role, user("arn:aws:iam::123456789012:role/approvers"));
        assert_ne!(role, user("arn:aws:iam::999988887777:role/Approvers"));
        assert_ne!(
            role,
            user("arn:aws-us-gov:iam::123456789012:role/Approvers")
        );
        assert_ne!(user("arn:aws:iam::123456789012:role/bob"), user(BOB));
        assert_ne!(user(BOB), user("arn:aws:iam::123456789012:role/bob"));
        assert_eq!(user(BOB).to_string(), BOB);
        for bad in [
            "bob",
            "arn:aws:iam::123456789012:group/approvers",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam:us-east-1:123456789012:role/Approvers",
            "arn:aws:iam::12345:role/Approvers",
            "arn:AWS:iam::123456789012:role/Approvers",
            "arn::iam::123456789012:role/Approvers",
            "arn:aws:sts::123456789012:assumed-role/Approvers/bob",
            "arn:aws:s3::123456789012:role/Approvers",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert_eq!(Approver::parse_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn given_a_signer_when_counted_then_a_session_is_its_role_unless_sessions_are_people() {
        let session = |name: &str| {
            Principal::parse(&format!(
                "arn:aws:sts::123456789012:assumed-role/Approvers/{name}"
            ))
            .unwrap()
        };
        let role = user("arn:aws:iam::123456789012:role/Approvers");
        assert_eq!(Approver::signer(&session("dave")), role);
        assert_eq!(Approver::person(&session("dave"), false), role);
        assert_eq!(Approver::person(&session("erin"), false), role);
        assert_eq!(
            Approver::person(&session("Bob"), true),
            user(BOB),
            "a session named after bob is bob"
        );
        assert_eq!(Approver::signer(&session("Bob")), role);
        let bob = Principal::parse(BOB).unwrap();
        assert_eq!(Approver::person(&bob, true), user(BOB));
        assert_eq!(Approver::person(&bob, false), user(BOB));
    }

    #[test]
    fn given_recorded_step_approvers_when_parsed_then_runbook_lists_and_change_template_levels_are_read()
     {
        let got = parse_step_approvers(
            Some(&format!(r#"["{BOB}", "carol", "arn:aws:iam::123456789012:role/Ops", "arn:aws:sns:us-east-1:123456789012:t", "a b"]"#)),
            None,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                StepApprover::Arn(user(BOB)),
                StepApprover::UserName(IamUserName::parse("carol").unwrap()),
                StepApprover::Arn(user("arn:aws:iam::123456789012:role/Ops")),
                StepApprover::Other("arn:aws:sns:us-east-1:123456789012:t".into()),
                StepApprover::Other("a b".into()),
            ]
        );
        assert_eq!(
            parse_step_approvers(Some(&format!(r#""{BOB}""#)), None),
            Some(vec![StepApprover::from(BOB)])
        );
        let level = r#"{"Approvers": [{"approver": "bob", "type": "IamUser", "minRequiredApprovals": 0}, {"approver": "Ops", "type": "IamRole"}, {"approver": "ops", "type": "IamGroup"}, {"Approver": "arn:aws:iam::123456789012:user/carol", "Type": "IamUser"}, {"approver": "a b", "type": "IamUser"}, {"approver": "a b", "type": "IamRole"}]}"#;
        let got = parse_step_approvers(Some(r#"["x"]"#), Some(level)).unwrap();
        assert_eq!(
            got,
            vec![
                StepApprover::UserName(IamUserName::parse("bob").unwrap()),
                StepApprover::RoleName(RoleName::parse("Ops").unwrap()),
                StepApprover::Other("IamGroup:ops".into()),
                StepApprover::Arn(user("arn:aws:iam::123456789012:user/carol")),
                StepApprover::Other("IamUser:a b".into()),
                StepApprover::Other("IamRole:a b".into()),
            ]
        );
        let resolved: Vec<Option<Approver>> = got.iter().map(|a| a.resolve(&home())).collect();
        assert_eq!(
            resolved,
            vec![
                Some(user(BOB)),
                Some(user("arn:aws:iam::123456789012:role/Ops")),
                None,
                Some(user("arn:aws:iam::123456789012:user/carol")),
                None,
                None,
            ]
        );
        for (approvers, enhanced) in [
            (None, None),
            (Some("not json"), None),
            (Some("[1]"), None),
            (None, Some(r#"{"Approvers": "bob"}"#)),
            (Some(r#"["bob"]"#), Some("{}")),
        ] {
            assert_eq!(
                parse_step_approvers(approvers, enhanced),
                None,
                "{approvers:?} {enhanced:?}"
            );
        }
    }

    #[test]
    fn given_recorded_minimums_when_parsed_then_the_inputs_win_and_a_level_falls_back_to_its_enhanced_approvals()
     {
        let level = Some(r#"{"Approvers": [], "MinRequiredApprovals": 2}"#);
        assert_eq!(parse_min_required(Some("3"), None), Some(3));
        assert_eq!(parse_min_required(Some(r#""4""#), level), Some(4));
        assert_eq!(parse_min_required(None, level), Some(2));
        assert_eq!(parse_min_required(Some("x"), level), Some(2));
        assert_eq!(parse_min_required(Some("x"), None), None);
        assert_eq!(parse_min_required(None, Some(r#"{"Approvers": []}"#)), None);
        assert_eq!(parse_min_required(None, None), None);
    }

    #[test]
    fn given_an_unknown_decision_word_when_parsed_then_it_is_not_an_approval() {
        let d =
            parse_decisions(&[format!(r#"{{"Approver":"{BOB}","Decision":"approve"}}"#)]).unwrap();
        assert!(!d[0].approved());
    }
}
