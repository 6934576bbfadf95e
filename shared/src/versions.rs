//! Only the deployment's current documents count: a request that ran an
//! older (or any other) version of the stack's change template or runbooks
//! is refused. An upgraded stack keeps every earlier version of its documents
//! (`UpdateMethod: NewVersion`; CloudFormation makes the new version the
//! default), and an earlier request runbook may end in one second, so that
//! cancelling it could no longer end the access.
//!
//! What counts as current is Systems Manager's `DefaultVersion` of the
//! document (`DescribeDocument`), which the adapter reads; the version a
//! request ran is its recorded `DocumentVersion`. Whether Systems Manager
//! ever records `$DEFAULT` or `$LATEST` there instead of a number is not
//! documented: such a version, or none, is refused (fail-safe).

use crate::execution::Versions;
use crate::refusal::Refusal;
use crate::text::shown;

fn is_version_number(raw: &str) -> bool {
    raw.bytes().all(|b| b.is_ascii_digit()) && !raw.is_empty() && !raw.starts_with('0')
}

/// Whether the request ran the deployment's current version of `document`.
pub fn ran_current(versions: &Versions, document: &str) -> Result<(), Refusal> {
    let unknown = |why: String| Refusal::DocumentVersionUnknown {
        document: document.to_owned(),
        why,
    };
    let Some(ran) = versions.ran.get(document) else {
        return Err(unknown(format!(
            "Systems Manager records no version of {document} for this request"
        )));
    };
    if !is_version_number(ran) {
        return Err(unknown(format!(
            "Systems Manager records the version of {document} as {}, not a version number",
            shown(ran)
        )));
    }
    let Some(current) = versions.current.get(document) else {
        return Err(unknown(format!(
            "Systems Manager has no current version of {document}"
        )));
    };
    if ran != current {
        return Err(Refusal::DocumentVersion {
            document: document.to_owned(),
            ran: ran.clone(),
            current: shown(current),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "changegate-access-request";

    fn versions(ran: Option<&str>, current: Option<&str>) -> Versions {
        let mut v = Versions::default();
        if let Some(ran) = ran {
            v.ran.insert(DOC.into(), ran.into());
        }
        if let Some(current) = current {
            v.current.insert(DOC.into(), current.into());
        }
        v
    }

    fn refusal(ran: Option<&str>, current: Option<&str>) -> String {
        ran_current(&versions(ran, current), DOC)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn given_the_current_version_when_checked_then_it_passes() {
        assert_eq!(ran_current(&versions(Some("3"), Some("3")), DOC), Ok(()));
    }

    #[test]
    fn given_an_older_version_when_checked_then_refused_naming_both_versions() {
        let got = ran_current(&versions(Some("1"), Some("3")), DOC).unwrap_err();
        assert_eq!(got.code(), "old-document-version");
        assert_eq!(
            got.to_string(),
            "This request ran version 1 of changegate-access-request, but the deployment's current version is 3; only the current version is the deployment's approval path. File a new request."
        );
        // A newer one than the default is no better
        assert_eq!(
            ran_current(&versions(Some("4"), Some("3")), DOC)
                .unwrap_err()
                .code(),
            "old-document-version"
        );
    }

    #[test]
    fn given_no_recorded_version_when_checked_then_refused_as_unknown() {
        assert_eq!(
            refusal(None, Some("3")),
            "Systems Manager records no version of changegate-access-request for this request, so changegate cannot tell that this request ran the deployment's current version of changegate-access-request. File a new request."
        );
    }

    #[test]
    fn given_a_symbolic_or_odd_version_when_checked_then_refused_as_unknown() {
        for ran in ["$DEFAULT", "$LATEST", "", "01", "3 "] {
            let got = ran_current(&versions(Some(ran), Some("3")), DOC).unwrap_err();
            assert_eq!(got.code(), "document-version-unknown", "{ran:?}");
        }
        assert_eq!(
            refusal(Some("$DEFAULT"), Some("1")),
            "Systems Manager records the version of changegate-access-request as $DEFAULT, not a version number, so changegate cannot tell that this request ran the deployment's current version of changegate-access-request. File a new request."
        );
    }

    #[test]
    fn given_no_current_version_when_checked_then_refused_as_unknown() {
        assert_eq!(
            refusal(Some("1"), None),
            "Systems Manager has no current version of changegate-access-request, so changegate cannot tell that this request ran the deployment's current version of changegate-access-request. File a new request."
        );
    }
}
