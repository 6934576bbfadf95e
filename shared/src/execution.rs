//! An access request as Systems Manager holds it: a Change Manager change
//! request, or a plain Automation execution of changegate's request runbook.
//! The adapter in [`crate::aws`] reads it; the checks in [`crate::check`]
//! decide on it. Nothing here calls AWS.

use std::collections::BTreeMap;

use crate::approval::{ApprovalStatus, ApproverDecision, StepApprover};
use crate::refusal::Refusal;
use crate::request::{AccessRequest, RawParameters, parse_parameters};
use crate::status::Status;

/// Where the request came from, with what identifies changegate's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `AutomationSubtype: ChangeRequest`: a change template and its runbooks.
    ChangeRequest {
        template: String,
        runbooks: Vec<RunbookRun>,
    },
    /// A plain Automation execution of a runbook, with its parameters.
    Automation {
        document: String,
        parameters: RawParameters,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookRun {
    pub document: String,
    pub parameters: RawParameters,
}

/// One `aws:approve` step as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStep {
    pub name: String,
    pub status: Status,
    /// `Outputs.ApprovalStatus`: `Approved`, `Rejected`, `Waiting`.
    pub approval_status: Option<ApprovalStatus>,
    /// `Outputs.ApproverDecisions`; `None` when absent or unreadable.
    pub decisions: Option<Vec<ApproverDecision>>,
    /// `Inputs.Approvers` (a change template level's
    /// `Inputs.EnhancedApprovals.Approvers`) as the step ran; `None` when
    /// absent or unreadable.
    pub approvers: Option<Vec<StepApprover>>,
    /// `Inputs.MinRequiredApprovals` as the step ran (1 when absent, as AWS defaults).
    pub min_required: Option<u32>,
}

impl ApprovalStep {
    pub fn approved(&self) -> bool {
        self.status == Status::Success && self.approval_status == Some(ApprovalStatus::Approved)
    }

    /// Rejected by an approver (`ApprovalStatus: Rejected`).
    pub fn rejected(&self) -> bool {
        self.approval_status == Some(ApprovalStatus::Rejected)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub status: Status,
    /// Who started it (`ExecutedBy`); `None` when Systems Manager does not say.
    pub executed_by: Option<String>,
    pub origin: Origin,
    /// Every `aws:approve` step, all pages read.
    pub approval_steps: Vec<ApprovalStep>,
    /// Which version of each of its documents it ran, and the deployment's
    /// current one.
    pub versions: Versions,
}

/// The versions of a request's documents: as it ran them and as the
/// deployment holds them now, by document name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// As Systems Manager recorded them: the execution's `DocumentVersion`
    /// (a change request's: its change template's) and each runbook's
    /// `Runbooks[].DocumentVersion`. A document with no recorded version is
    /// missing.
    pub ran: BTreeMap<String, String>,
    /// The current (default) version of each of those documents
    /// (`DescribeDocument`'s `DefaultVersion`, filled in by the adapter); a
    /// document Systems Manager does not have is missing.
    pub current: BTreeMap<String, String>,
}

impl Versions {
    /// Documents run at the given versions, each its deployment's current one.
    pub fn current(documents: &[(&str, &str)]) -> Self {
        let map: BTreeMap<String, String> = documents
            .iter()
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect();
        Self {
            ran: map.clone(),
            current: map,
        }
    }
}

impl Execution {
    pub fn source(&self) -> Source {
        match self.origin {
            Origin::ChangeRequest { .. } => Source::ChangeManager,
            Origin::Automation { .. } => Source::Automation,
        }
    }

    /// The parameters naming who gets access, as the requester wrote them
    /// (the first runbook's, for a change request).
    pub fn parameters(&self) -> Option<&RawParameters> {
        match &self.origin {
            Origin::ChangeRequest { runbooks, .. } => runbooks.first().map(|r| &r.parameters),
            Origin::Automation { parameters, .. } => Some(parameters),
        }
    }

    /// Those parameters parsed as a request (with the request runbook's own
    /// `Reason` and `Extends` when it is one); `None` when it names none.
    /// Not a check that it is changegate's request: [`crate::check`] does that.
    pub fn access_request(&self) -> Option<Result<AccessRequest, Refusal>> {
        self.parameters()
            .map(|p| parse_parameters(p, self.source() == Source::Automation))
    }
}

/// The two ways to ask for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    ChangeManager,
    Automation,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChangeManager => "change-manager",
            Self::Automation => "automation",
        }
    }
}
