//! Statuses of a change request or Automation execution (and of its steps),
//! as Systems Manager reports them. Anything unrecognised is `Unknown`:
//! logged, never acted on.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    InProgress,
    Waiting,
    Success,
    TimedOut,
    Cancelling,
    Cancelled,
    Failed,
    PendingApproval,
    Approved,
    Rejected,
    Scheduled,
    RunbookInProgress,
    PendingChangeCalendarOverride,
    ChangeCalendarOverrideApproved,
    ChangeCalendarOverrideRejected,
    CompletedWithSuccess,
    CompletedWithFailure,
    Exited,
    Open,
    Resolved,
    Closed,
    Unknown(String),
}

const KNOWN: [(&str, Status); 22] = [
    ("Pending", Status::Pending),
    ("InProgress", Status::InProgress),
    ("Waiting", Status::Waiting),
    ("Success", Status::Success),
    ("TimedOut", Status::TimedOut),
    ("Cancelling", Status::Cancelling),
    ("Cancelled", Status::Cancelled),
    ("Failed", Status::Failed),
    ("PendingApproval", Status::PendingApproval),
    ("Approved", Status::Approved),
    ("Rejected", Status::Rejected),
    ("Scheduled", Status::Scheduled),
    ("RunbookInProgress", Status::RunbookInProgress),
    (
        "PendingChangeCalendarOverride",
        Status::PendingChangeCalendarOverride,
    ),
    (
        "ChangeCalendarOverrideApproved",
        Status::ChangeCalendarOverrideApproved,
    ),
    (
        "ChangeCalendarOverrideRejected",
        Status::ChangeCalendarOverrideRejected,
    ),
    ("CompletedWithSuccess", Status::CompletedWithSuccess),
    ("CompletedWithFailure", Status::CompletedWithFailure),
    ("Exited", Status::Exited),
    ("Open", Status::Open),
    ("Resolved", Status::Resolved),
    ("Closed", Status::Closed),
];

impl Status {
    /// Exact, case-sensitive names as AWS writes them; anything else is `Unknown`.
    pub fn parse(raw: &str) -> Self {
        KNOWN
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| Self::Unknown(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(raw) => raw,
            known => KNOWN
                .iter()
                .find(|(_, s)| s == known)
                .map(|(name, _)| *name)
                .unwrap_or_default(),
        }
    }

    /// A change request that Change Manager documents as approved: approved,
    /// scheduled, its runbook running, or completed. (`InProgress` and
    /// `Success` are Automation statuses, not a change request's approval.)
    pub fn change_request_approved(&self) -> bool {
        matches!(
            self,
            Self::Approved
                | Self::Scheduled
                | Self::RunbookInProgress
                | Self::CompletedWithSuccess
                | Self::ChangeCalendarOverrideApproved
        )
    }

    /// A plain Automation execution past its approval step: running its
    /// later steps, or done. Whether it was approved is read from its steps.
    pub fn automation_past_approval(&self) -> bool {
        matches!(self, Self::InProgress | Self::Success)
    }

    /// Statuses that end a request before its window does: any access granted
    /// for it is removed at once. Every terminal status AWS documents for an
    /// execution or change request other than a success, and the states on the
    /// way there (`Cancelling`):
    /// - `Exited` (an `AutomationExecutionStatus`; what ends an execution in it
    ///   is not documented, and changegate's runbooks only end early when
    ///   someone ends them);
    /// - a stop with `Type=Complete` (StopAutomationExecution documents the type
    ///   but not the status it ends in, *unconfirmed*: the local AWS ends it
    ///   `Exited`, and `Cancelled` or `Failed` end access too; were it to end in
    ///   `Success`/`CompletedWithSuccess`, the grant would still end at EndTime,
    ///   as approved, by its own policy condition, the expiry schedule and the
    ///   sweep);
    /// - `Revoked` (an `OpsItemStatus`, which the enum does not name yet: its
    ///   meaning for change requests is undocumented, and ending access early
    ///   is the safe reading of it).
    ///
    /// `Resolved` is not among them: its meaning for change requests is
    /// undocumented, and it may be how a completed request is closed; the
    /// window's end still removes access. Keep the lists of template.yaml's
    /// end-of-request rules equal to this set (a test below reads them).
    pub fn ends_access(&self) -> bool {
        match self {
            Self::Unknown(raw) => raw == "Revoked",
            known => matches!(
                known,
                Self::Rejected
                    | Self::Cancelling
                    | Self::Cancelled
                    | Self::Closed
                    | Self::Failed
                    | Self::TimedOut
                    | Self::CompletedWithFailure
                    | Self::ChangeCalendarOverrideRejected
                    | Self::Exited
            ),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::shown(self.as_str()))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn given_every_known_status_when_parsed_and_written_back_then_it_round_trips() {
        for (name, status) in KNOWN.iter() {
            assert_eq!(&Status::parse(name), status);
            assert_eq!(status.as_str(), *name);
        }
    }

    #[test]
    fn given_change_request_statuses_when_asked_if_approved_then_only_documented_approvals_count() {
        for s in [
            "Approved",
            "Scheduled",
            "RunbookInProgress",
            "CompletedWithSuccess",
        ] {
            assert!(Status::parse(s).change_request_approved(), "{s}");
        }
        for s in [
            "InProgress",
            "Success",
            "PendingApproval",
            "Open",
            "Rejected",
            "Cancelled",
            "Waiting",
        ] {
            assert!(!Status::parse(s).change_request_approved(), "{s}");
        }
    }

    #[test]
    fn given_an_unknown_or_differently_cased_status_when_parsed_then_it_is_unknown_and_ends_nothing()
     {
        for s in ["approved", "APPROVED", "", "Approved ", "SomethingNew"] {
            let status = Status::parse(s);
            assert_eq!(status, Status::Unknown(s.to_owned()));
            assert!(!status.change_request_approved() && !status.ends_access());
        }
    }

    #[test]
    fn given_early_end_statuses_when_asked_then_cancel_reject_fail_timeout_and_exit_end_access_but_resolved_does_not()
     {
        for s in [
            "Rejected",
            "Cancelled",
            "Cancelling",
            "Closed",
            "Failed",
            "TimedOut",
            "CompletedWithFailure",
            "ChangeCalendarOverrideRejected",
            "Exited",
            "Revoked",
        ] {
            assert!(Status::parse(s).ends_access(), "{s}");
        }
        for s in [
            "Resolved",
            "CompletedWithSuccess",
            "Success",
            "InProgress",
            "Open",
            "Approved",
        ] {
            assert!(!Status::parse(s).ends_access(), "{s}");
        }
    }
}
