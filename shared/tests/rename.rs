//! A rename changes nothing: alice is granted, renames herself to alice2
//! during her window (IAM moves her inline policies and tags and keeps her
//! unique id), and the protocol still finds her by that id, removes the
//! grant from alice2, cuts sessions named alice (the only name the grant
//! lets her assume under) and announces the revocation to alice, as granted.

use changegate::approval::{ApproverDecision, Decision};
use changegate::config::GrantConfig;
use changegate::events::{Cause, ChangegateEvent};
use changegate::execution::{ApprovalStep, Execution, Origin, Versions};
use changegate::ids::{ChangeRequestId, Home, IamUserName};
use changegate::memory::{Memory, World, ready};
use changegate::policy::{Grant, policy_name};
use changegate::protocol::grant::{GrantOutcome, GrantRun};
use changegate::protocol::locate::{Locate, Located};
use changegate::protocol::revocation::{Reach, Revocation, Revoked};
use changegate::protocol::{Invocation, run};
use changegate::request::RawParameters;
use changegate::status::Status;
use chrono::{DateTime, TimeDelta, Utc};

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const ID: &str = "d0585556-80f6-4522-8dad-dada6d45b67d";
const ROLE: &str = "111122223333/CM-Prd-role";

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

fn id() -> ChangeRequestId {
    ChangeRequestId::parse(ID).unwrap()
}

fn name(raw: &str) -> IamUserName {
    IamUserName::parse(raw).unwrap()
}

fn config() -> GrantConfig {
    let lookup = move |k: &str| match k {
        "CHANGEGATE_ALLOWED_ACCOUNTS" => Some("111122223333".to_owned()),
        "CHANGEGATE_EVENT_BUS" => Some("changegate".to_owned()),
        "CHANGEGATE_DECISIONS_TABLE" => Some("changegate-decisions".to_owned()),
        "CHANGEGATE_SOURCES" => Some("automation".to_owned()),
        "CHANGEGATE_APPROVERS" => Some(BOB.to_owned()),
        "CHANGEGATE_SESSION_CUTTER_ROLE" => Some("changegate-session-cutter".to_owned()),
        _ => None,
    };
    GrantConfig::from_source(&lookup).unwrap()
}

fn home() -> Home {
    Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap()
}

/// alice asks for 111122223333 from 09:00 to 10:00 UTC; bob approved.
fn approved() -> Execution {
    let params: RawParameters = [
        ("IAMUserName", "alice"),
        ("AWSAccountId", "111122223333"),
        ("StartTime", "2026-12-01T09:00:00Z"),
        ("EndTime", "2026-12-01T10:00:00Z"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
    .collect();
    Execution {
        status: Status::InProgress,
        executed_by: Some(ALICE.into()),
        origin: Origin::Automation {
            document: "changegate-access-request".into(),
            parameters: params,
        },
        approval_steps: vec![ApprovalStep {
            name: "Approve".into(),
            status: Status::Success,
            approval_status: Some("Approved".into()),
            decisions: Some(vec![ApproverDecision {
                approver: BOB.into(),
                decision: Decision::Approve,
            }]),
            approvers: Some(vec![BOB.into()]),
            min_required: Some(1),
        }],
        versions: Versions::current(&[("changegate-access-request", "1")]),
    }
}

fn invocation(name: &str, now: DateTime<Utc>) -> Invocation {
    Invocation {
        id: name.to_owned(),
        lease_until: now + TimeDelta::seconds(160),
        now,
    }
}

/// alice granted at 09:10, then renamed to alice2.
fn granted_then_renamed() -> Memory {
    let mut w = World::default();
    w.executions.insert(ID.to_owned(), approved());
    w.documents
        .insert("changegate-access-request".to_owned(), "1".to_owned());
    w.add_user("alice", Some("111122223333"));
    w.add_user("bob", None);
    w.roles.insert(ROLE.to_owned());
    let ports = Memory::new(w);
    let (config, home) = (config(), home());
    let now = t("2026-12-01T09:10:00Z");
    let mut grant = GrantRun::new(id(), invocation("grant-1", now), &config, &home);
    let outcome = ready(run(&mut grant, &ports, now)).unwrap();
    assert!(
        matches!(outcome, GrantOutcome::Granted { .. }),
        "{outcome:?}"
    );
    ports.world.borrow_mut().rename("alice", "alice2").unwrap();
    ports
}

#[test]
fn given_a_grant_when_decided_then_the_record_binds_it_to_iams_user_id_and_the_policy_names_the_session_literally()
 {
    let ports = granted_then_renamed();
    let w = ports.world.borrow();
    let alice_id = w.user_id("alice2").unwrap();
    let record = w.record(&id()).unwrap();
    let decided = record.grant.unwrap();
    assert_eq!(decided.beneficiary, "alice");
    assert_eq!(
        decided.beneficiary_id.as_deref(),
        Some(alice_id.as_str()),
        "the record holds the id a rename keeps"
    );
    let policy = &w.users["alice2"].policies[&policy_name(&id())];
    assert!(
        policy.contains(r#""StringEquals":{"sts:RoleSessionName":"alice"}"#),
        "{policy}"
    );
    assert!(!policy.contains("${aws:username}"), "{policy}");
}

#[test]
fn given_alice_renamed_herself_when_her_window_ends_then_the_grant_is_found_by_id_removed_from_alice2_her_sessions_cut_and_alice_told()
 {
    let ports = granted_then_renamed();
    let record = ports.world.borrow().record(&id()).unwrap();
    let recorded = record.grant.unwrap().to_removal(&id()).unwrap();
    let end = t("2026-12-01T10:00:01Z");

    // When removal looks for the user as granted
    let located = ready(run(
        &mut Locate::new(recorded.user.clone(), recorded.user_id.clone()),
        &ports,
        end,
    ))
    .unwrap();

    // Then IAM's id finds her under her new name
    assert_eq!(
        located,
        Located::Renamed {
            was: name("alice"),
            now: name("alice2")
        }
    );
    let holder = located.name().unwrap().clone();
    let document = ports.world.borrow().users["alice2"].policies[&policy_name(&id())].clone();
    let grant = Grant {
        user_id: recorded.user_id.clone(),
        ..Grant::from_policy(&holder, &policy_name(&id()), &document).unwrap()
    };

    // And the one removal path removes it there, and announces it to alice
    let reach = Reach {
        cuts: true,
        expiry: false,
    };
    let mut revocation = Revocation::new(
        grant,
        Cause::WindowEnded,
        invocation("revoke-1", end),
        reach,
    );
    let Revoked::Revoked(revoked) = ready(run(&mut revocation, &ports, end)).unwrap() else {
        panic!("not revoked")
    };
    let w = ports.world.borrow();
    assert!(
        w.holders_of(&policy_name(&id())).is_empty(),
        "no policy left"
    );
    assert_eq!(revoked.user.as_str(), "alice");
    let announced: Vec<&str> = w
        .announcements
        .iter()
        .filter_map(|e| match e {
            ChangegateEvent::Revoked(r) => Some(r.user.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec!["alice"]);
    // And the cut names alice's sessions (the only name she could assume
    // under), never alice2's
    let cut = &w.cuts[ROLE];
    assert!(cut.cuts().iter().any(|c| c.is_for(&name("alice"))));
    assert!(!cut.cuts().iter().any(|c| c.is_for(&name("alice2"))));
}
