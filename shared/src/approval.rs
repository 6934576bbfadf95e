//! Who approved a change request, from Systems Manager's own record of its
//! `aws:approve` steps (`Outputs.ApproverDecisions`), never from the event
//! (whose `approvers` lists who *may* approve).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApproverDecision {
    pub approver: String,
    pub decision: String,
}

impl ApproverDecision {
    pub fn approved(&self) -> bool {
        self.decision == "Approve" || self.decision == "Approved"
    }
}

/// Parses the `ApproverDecisions` output values: each a JSON object or a JSON
/// list of objects. `None` when any value is unreadable: missing evidence is
/// treated as no evidence, never as approval.
pub fn parse_decisions(values: &[String]) -> Option<Vec<ApproverDecision>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(ApproverDecision),
        Many(Vec<ApproverDecision>),
    }
    let mut out = Vec::new();
    for v in values {
        match serde_json::from_str::<OneOrMany>(v).ok()? {
            OneOrMany::One(d) => out.push(d),
            OneOrMany::Many(ds) => out.extend(ds),
        }
    }
    Some(out)
}

/// The approvers who approved and are not the requester, in order, without repeats.
pub fn independent_approvers(decisions: &[ApproverDecision], requester_arn: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in decisions.iter().filter(|d| d.approved() && d.approver != requester_arn) {
        if !out.contains(&d.approver) {
            out.push(d.approver.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";

    #[test]
    fn given_recorded_decisions_when_parsed_then_objects_and_lists_are_both_read() {
        let one = format!(r#"{{"Approver":"{BOB}","Decision":"Approve","ApprovalDecisionTime":"2022-04-06T07:22:51.034463Z","Comment":""}}"#);
        let many = format!(r#"[{{"Approver":"{ALICE}","Decision":"Approve"}},{{"Approver":"{BOB}","Decision":"Reject"}}]"#);
        let got = parse_decisions(&[one, many]).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].approver, BOB);
        assert!(!got[2].approved());
    }

    #[test]
    fn given_unreadable_decisions_when_parsed_then_there_is_no_evidence() {
        assert_eq!(parse_decisions(&["not json".to_owned()]), None);
        assert_eq!(parse_decisions(&[r#"{"Decision":"Approve"}"#.to_owned()]), None);
    }

    #[test]
    fn given_the_requester_approved_alone_when_counting_then_no_independent_approver_remains() {
        let mine = vec![ApproverDecision { approver: ALICE.into(), decision: "Approve".into() }];
        assert!(independent_approvers(&mine, ALICE).is_empty());
        let with_bob = vec![
            ApproverDecision { approver: ALICE.into(), decision: "Approve".into() },
            ApproverDecision { approver: BOB.into(), decision: "Approve".into() },
            ApproverDecision { approver: BOB.into(), decision: "Approve".into() },
        ];
        assert_eq!(independent_approvers(&with_bob, ALICE), vec![BOB.to_owned()]);
        let bob_rejected = vec![ApproverDecision { approver: BOB.into(), decision: "Reject".into() }];
        assert!(independent_approvers(&bob_rejected, ALICE).is_empty());
    }
}
