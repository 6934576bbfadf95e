//! The statuses changegate acts on, against AWS's own list (the SSM API
//! model as the SDK carries it) and against template.yaml's rules, so that
//! neither can drift from `Status::ends_access`. Here, not in the pure crate,
//! because it needs the SDK's enums.

use std::collections::BTreeSet;

use changegate::status::Status;

/// Every status the SDK's model (AWS's API) names, known here or not.
fn aws_statuses() -> BTreeSet<&'static str> {
    use aws_sdk_ssm::types::{AutomationExecutionStatus, OpsItemStatus};
    AutomationExecutionStatus::values()
        .iter()
        .chain(OpsItemStatus::values())
        .copied()
        .collect()
}

#[test]
fn given_the_apis_automation_statuses_when_parsed_then_each_is_known() {
    for s in aws_sdk_ssm::types::AutomationExecutionStatus::values() {
        assert_ne!(Status::parse(s), Status::Unknown((*s).to_owned()), "{s}");
    }
}

/// The flow list `key: [A, B, ...]` inside the resource `logical_id` of
/// template.yaml (a top-level resource, two spaces in).
fn template_list(logical_id: &str, key: &str) -> BTreeSet<String> {
    const TEMPLATE: &str = include_str!("../../../template.yaml");
    let start = format!("\n  {logical_id}:\n");
    let at = TEMPLATE
        .find(&start)
        .unwrap_or_else(|| panic!("template.yaml has no resource {logical_id}"));
    let body = &TEMPLATE[at + start.len()..];
    let end = body
        .lines()
        .position(|l| {
            l.starts_with("  ") && !l.starts_with("   ") || !l.starts_with(' ') && !l.is_empty()
        })
        .unwrap_or(usize::MAX);
    let line = body
        .lines()
        .take(end)
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: [")))
        .unwrap_or_else(|| panic!("{logical_id} has no one-line list {key}"));
    line.trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect()
}

#[test]
fn given_template_yamls_end_of_request_rules_when_read_then_they_list_exactly_the_statuses_that_end_access()
 {
    let ending: BTreeSet<String> = aws_statuses()
        .into_iter()
        .filter(|s| Status::parse(s).ends_access())
        .map(str::to_owned)
        .collect();
    let automation: BTreeSet<String> = aws_sdk_ssm::types::AutomationExecutionStatus::values()
        .iter()
        .filter(|s| Status::parse(s).ends_access())
        .map(|s| (*s).to_owned())
        .collect();
    assert!(
        ending.contains("Exited") && ending.contains("Revoked"),
        "{ending:?}"
    );
    // A change request's event carries an OpsItem status, but which values
    // it takes is not documented: the rule lists every ending one of both.
    assert_eq!(
        template_list("RevokeChangeRequestEndedRule", "ops-item-status"),
        ending
    );
    // A plain execution's event carries its AutomationExecutionStatus.
    assert_eq!(
        template_list("RevokeRequestEndedRule", "Status"),
        automation
    );
}
