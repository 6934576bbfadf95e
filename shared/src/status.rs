//! Change request statuses, as Change Manager events and Systems Manager report them.
//!
//! AWS does not document which statuses a change request passes through between
//! approval and completion, so every status is sorted into one of four classes
//! and anything unrecognised is `Unknown`: logged, never acted on.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Approved, or past approval on the way to completion: access may be granted.
    ApprovedOrLater,
    /// Filed but not (yet) approved.
    AwaitingApproval,
    /// Rejected, cancelled, failed or closed: no access.
    Ended,
    /// A status changegate does not know.
    Unknown,
}

pub fn classify(status: &str) -> StatusClass {
    match status {
        "Approved" | "Scheduled" | "RunbookInProgress" | "InProgress" | "Success"
        | "CompletedWithSuccess" | "ChangeCalendarOverrideApproved" => StatusClass::ApprovedOrLater,
        "Open" | "Pending" | "PendingApproval" | "PendingChangeCalendarOverride" | "Waiting" => {
            StatusClass::AwaitingApproval
        }
        "Rejected" | "Cancelled" | "Cancelling" | "Failed" | "TimedOut" | "CompletedWithFailure"
        | "Closed" | "Resolved" | "ChangeCalendarOverrideRejected" | "Exited" => StatusClass::Ended,
        _ => StatusClass::Unknown,
    }
}

/// Statuses that end a change request before its window does: any access
/// granted for it is removed at once. (`Resolved` is not among them: its
/// meaning for change requests is undocumented; the sweep still removes the
/// grant when its window ends.)
pub fn ends_access(status: &str) -> bool {
    matches!(
        status,
        "Rejected" | "Cancelled" | "Closed" | "Failed" | "TimedOut" | "CompletedWithFailure" | "ChangeCalendarOverrideRejected"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_documented_statuses_when_classified_then_only_approval_or_later_may_grant() {
        for s in ["Approved", "Scheduled", "RunbookInProgress", "InProgress", "CompletedWithSuccess"] {
            assert_eq!(classify(s), StatusClass::ApprovedOrLater, "{s}");
        }
        for s in ["PendingApproval", "Open", "Rejected", "Cancelled", "Failed", "CompletedWithFailure", "Closed"] {
            assert_ne!(classify(s), StatusClass::ApprovedOrLater, "{s}");
        }
    }

    #[test]
    fn given_an_unknown_or_differently_cased_status_when_classified_then_it_is_unknown() {
        for s in ["approved", "APPROVED", "", "Approved ", "SomethingNew"] {
            assert_eq!(classify(s), StatusClass::Unknown, "{s:?}");
        }
    }
}
