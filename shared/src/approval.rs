//! Who approved, from Systems Manager's own record of the `aws:approve` steps
//! (`Outputs.ApproverDecisions`), never from the event (whose `approvers`
//! lists who *may* approve). Decisions are read into types; anything
//! unreadable is no evidence, never approval.

use serde::Deserialize;

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
