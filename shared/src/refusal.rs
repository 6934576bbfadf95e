//! Refusals: expected outcomes, each with a stable code and a sentence the
//! requester can act on. A refusal never changes IAM.

use crate::ids::IdError;
use crate::window::TimeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Systems Manager has no change request with this id, so there is nothing to grant.")]
    ChangeRequestNotFound,
    #[error(
        "Systems Manager reports this change request as {status}, not approved. Access is only granted once an approver has approved it."
    )]
    NotApproved { status: String },
    #[error(
        "The change request was filed by {filed_by}, which is not an IAM user. changegate grants access only to the IAM user who files the request; file it while signed in as that user."
    )]
    RequesterNotAUser { filed_by: String },
    #[error(
        "Systems Manager does not say who filed this request, so changegate cannot tell who would receive access."
    )]
    RequesterUnknown,
    #[error(
        "The request was filed by {requester}, an IAM user of another account or partition. changegate grants access only to IAM users of account {home}."
    )]
    ForeignRequester { requester: String, home: String },
    #[error(
        "This changegate deployment does not take requests through {via}. Ask your platform team which way to request access."
    )]
    SourceNotEnabled { via: &'static str },
    #[error(
        "The change request uses the change template {found}. changegate grants only requests filed with its own template, {expected}, whose approvers the deployment chose."
    )]
    WrongChangeTemplate { found: String, expected: String },
    #[error(
        "The request runs the runbook {found}. changegate grants only requests that run {expected}."
    )]
    WrongRunbook { found: String, expected: String },
    #[error(
        "The approval step {step} is {status}, not approved. Every approval level must approve the request before access is granted."
    )]
    ApprovalIncomplete { step: String, status: String },
    #[error(
        "The approval step {step} did not run with the approvers this deployment configured, so its approval does not count. File the request again with the deployment's own runbook or change template."
    )]
    ApproversTampered { step: String },
    #[error(
        "The approval step {step} holds a decision by {approver}, who is not one of this deployment's approvers, so its approval does not count. Only the configured approvers may decide; file the request again."
    )]
    UnexpectedApprover { step: String, approver: String },
    #[error(
        "The approval step {step} has {got} approval(s) from people other than the requester and the person receiving access; {needed} are needed."
    )]
    NotEnoughApprovals {
        step: String,
        got: usize,
        needed: usize,
    },
    #[error(
        "The request asks for access for {user}, but it was filed by {requester}. Each person must file their own request."
    )]
    NotTheRequester { user: String, requester: String },
    #[error(
        "The change request uses {count} runbooks; changegate expects exactly one (the changegate access runbook)."
    )]
    RunbookCount { count: usize },
    #[error(
        "Systems Manager has no record of who approved this change request (auto-approved, or the record is unreadable), so changegate cannot rule out self-approval. Ask an approver to approve it in Change Manager."
    )]
    ApprovalUnknown,
    #[error(
        "The only approval came from {requester}, who filed the request or would receive the access. Someone else must approve it."
    )]
    SelfApproved { requester: String },
    #[error("The parameter {name} is missing. File a new request and fill in {name}.")]
    MissingParameter { name: &'static str },
    #[error("The parameter {name} has {count} values; give exactly one.")]
    MultipleValues { name: &'static str, count: usize },
    #[error(
        "The parameter {name:?} is not one changegate knows. Use only IAMUserName, AWSAccountId, StartTime and EndTime (and Reason and Extends, on the request runbook)."
    )]
    UnknownParameter { name: String },
    #[error("IAMUserName is not a valid IAM user name: {why}.")]
    InvalidUserName { why: IdError },
    #[error(
        "Extends is not a request id: {why}. Leave it empty, or name the request this one extends (changegate extend ID does)."
    )]
    InvalidExtends { why: IdError },
    #[error("The IAM user {user} does not exist in this account.")]
    UserNotFound { user: String },
    #[error("AWSAccountId is not a valid AWS account id: {why}.")]
    InvalidAccountId { why: IdError },
    #[error(
        "Account {account} is not one changegate may grant access to. Accounts allowed: {allowed}."
    )]
    AccountNotAllowed { account: String, allowed: String },
    #[error("{name} {why}.")]
    InvalidTime { name: &'static str, why: TimeError },
    #[error(
        "EndTime ({end}) is not after StartTime ({start}). The window must end after it starts."
    )]
    EndNotAfterStart { start: String, end: String },
    #[error(
        "{user} is not eligible for account {account}. Accounts {user} may ask for: {eligible}. The security team grants eligibility with the changegate:eligible tag on the IAM user."
    )]
    NotEligible {
        user: String,
        account: String,
        eligible: String,
    },
    #[error(
        "The eligibility tag of {user} names the role {role} in account {account}, but this deployment cuts live sessions at each window's end and can cut them only on {target}. Ask the security team to name {target} for this account in your tag, or to deploy changegate for {role}."
    )]
    RoleNotCut {
        user: String,
        account: String,
        role: String,
        target: String,
    },
    #[error(
        "The window starts at {start}, more than {max_days} days from now. Ask for access closer to the time you need it."
    )]
    StartTooFarAhead { start: String, max_days: i64 },
    #[error(
        "{user}'s inline IAM policies already use {used} of the 2048 characters IAM allows per user, and this grant needs {needed} more. Grants still active: {active}. Wait for one to end, or ask for it to be cancelled, then file again."
    )]
    PolicyBudget {
        user: String,
        used: usize,
        needed: usize,
        active: String,
    },
    #[error(
        "The window ended at {end}, before access could be granted. File a new request with a later EndTime."
    )]
    WindowEnded { end: String },
    #[error(
        "The window is {requested_minutes} minutes long; the most allowed is {max_minutes} minutes. Ask for a shorter window, or file two requests."
    )]
    WindowTooLong {
        requested_minutes: i64,
        max_minutes: i64,
    },
    #[error(
        "The request was ended ({cause}) before it was approved, so no access is granted. File a new request if you still need access."
    )]
    EndedBeforeGrant { cause: String },
    #[error(
        "changegate's decision record for this request names another grant ({recorded}) than Systems Manager's record of the request ({requested}); nothing was granted. Operators were alerted."
    )]
    RecordDisagrees { recorded: String, requested: String },
    #[error(
        "This request ran version {ran} of {document}, but the deployment's current version is {current}; only the current version is the deployment's approval path. File a new request."
    )]
    DocumentVersion {
        document: String,
        ran: String,
        current: String,
    },
    #[error(
        "{why}, so changegate cannot tell that this request ran the deployment's current version of {document}. File a new request."
    )]
    DocumentVersionUnknown { document: String, why: String },
    #[error(
        "The IAM user {user} does not have the permissions boundary this deployment requires ({required}), so no access is granted: the boundary caps what any inline policy can give the user. Ask the security team to set it (aws iam put-user-permissions-boundary), then file again."
    )]
    NoPermissionsBoundary { user: String, required: String },
    #[error(
        "{requester} already has {open} open requests ({older}), and at most {max} may be open at once, so this request was stopped. Stop one you no longer need (aws ssm stop-automation-execution --automation-execution-id ID) or wait for one to end, then file again."
    )]
    TooManyOpenRequests {
        requester: String,
        open: usize,
        older: String,
        max: usize,
    },
}

impl Refusal {
    /// Whether the refusal stands for good. "Not found" may change:
    /// Systems Manager can lag behind the event that announced the request,
    /// so that one is announced but not recorded.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::ChangeRequestNotFound)
    }

    /// A stable machine-readable code, for filters, metrics and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ChangeRequestNotFound => "change-request-not-found",
            Self::NotApproved { .. } => "not-approved",
            Self::RequesterNotAUser { .. } => "requester-not-a-user",
            Self::RequesterUnknown => "requester-unknown",
            Self::ForeignRequester { .. } => "foreign-requester",
            Self::SourceNotEnabled { .. } => "source-not-enabled",
            Self::WrongChangeTemplate { .. } => "wrong-change-template",
            Self::WrongRunbook { .. } => "wrong-runbook",
            Self::ApprovalIncomplete { .. } => "approval-incomplete",
            Self::ApproversTampered { .. } | Self::UnexpectedApprover { .. } => {
                "approvers-tampered"
            }
            Self::NotEnoughApprovals { .. } => "not-enough-approvals",
            Self::ApprovalUnknown => "approval-unknown",
            Self::SelfApproved { .. } => "self-approved",
            Self::NotEligible { .. } => "not-eligible",
            Self::RoleNotCut { .. } => "role-not-cut",
            Self::StartTooFarAhead { .. } => "start-too-far-ahead",
            Self::PolicyBudget { .. } => "policy-budget",
            Self::NotTheRequester { .. } => "not-the-requester",
            Self::RunbookCount { .. } => "runbook-count",
            Self::MissingParameter { .. } => "missing-parameter",
            Self::MultipleValues { .. } => "multiple-values",
            Self::UnknownParameter { .. } => "unknown-parameter",
            Self::InvalidUserName { .. } => "invalid-user-name",
            Self::InvalidExtends { .. } => "invalid-extends",
            Self::UserNotFound { .. } => "user-not-found",
            Self::InvalidAccountId { .. } => "invalid-account-id",
            Self::AccountNotAllowed { .. } => "account-not-allowed",
            Self::InvalidTime { .. } => "invalid-time",
            Self::EndNotAfterStart { .. } => "end-not-after-start",
            Self::WindowEnded { .. } => "window-ended",
            Self::WindowTooLong { .. } => "window-too-long",
            Self::EndedBeforeGrant { .. } => "ended-before-grant",
            Self::RecordDisagrees { .. } => "record-disagrees",
            Self::DocumentVersion { .. } => "old-document-version",
            Self::DocumentVersionUnknown { .. } => "document-version-unknown",
            Self::TooManyOpenRequests { .. } => "too-many-open-requests",
            Self::NoPermissionsBoundary { .. } => "no-permissions-boundary",
        }
    }
}
