//! The functions' own time, without any AWS call: `cargo bench -p changegate --bench pure`.
//! Prints one JSON line per measurement (median over samples, in µs per operation).

use std::hint::black_box;
use std::time::Instant;

use changegate::approval::{ApproverDecision, Decision};
use changegate::check::{Checking, UserRecord, Verdict, check_request, decide};
use changegate::config::{
    GrantConfig, VAR_ALLOWED_ACCOUNTS, VAR_APPROVERS, VAR_DECISIONS_TABLE, VAR_EVENT_BUS,
    VAR_SOURCES,
};
use changegate::eligibility::Scope;
use changegate::events::ChangegateEvent;
use changegate::execution::{ApprovalStep, Execution, Origin, RunbookRun, Versions};
use changegate::ids::{ChangeRequestId, Home};
use changegate::message::render_changegate;
use changegate::policy::UserPolicy;
use changegate::status::Status;
use changegate::sweep::sort_grants;
use chrono::{TimeDelta, Utc};

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    const SAMPLES: usize = 15;
    let mut per_op = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for _ in 0..iterations {
            f();
        }
        per_op.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations));
    }
    per_op.sort_by(f64::total_cmp);
    println!(
        r#"{{"name":"{name}","median_us":{:.3},"runs":{SAMPLES}}}"#,
        per_op[SAMPLES / 2]
    );
}

fn main() {
    let now = Utc::now();
    let config = GrantConfig::from_source(&|k: &str| match k {
        VAR_ALLOWED_ACCOUNTS => Some("111122223333".to_owned()),
        VAR_EVENT_BUS => Some("changegate".to_owned()),
        VAR_DECISIONS_TABLE => Some("changegate-decisions".to_owned()),
        VAR_SOURCES => Some("change-manager".to_owned()),
        VAR_APPROVERS => Some("arn:aws:iam::123456789012:user/bob".to_owned()),
        _ => None,
    })
    .unwrap();
    let home =
        Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap();
    let id = ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap();
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let parameters = [
        ("IAMUserName", "alice".to_owned()),
        ("AWSAccountId", "111122223333".to_owned()),
        ("StartTime", fmt(now)),
        ("EndTime", fmt(now + TimeDelta::hours(1))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), vec![v]))
    .collect();
    let cr = Execution {
        status: Status::Approved,
        executed_by: Some("arn:aws:iam::123456789012:user/alice".into()),
        origin: Origin::ChangeRequest {
            template: "changegate-access".into(),
            runbooks: vec![RunbookRun {
                document: "changegate-access-runbook".into(),
                parameters,
            }],
        },
        approval_steps: vec![ApprovalStep {
            name: "Level1".into(),
            status: Status::Success,
            approval_status: Some("Approved".into()),
            decisions: Some(vec![ApproverDecision {
                approver: "arn:aws:iam::123456789012:user/bob".into(),
                decision: Decision::Approve,
            }]),
            approvers: Some(vec!["bob".into()]),
            min_required: None,
        }],
        versions: Versions::current(&[
            ("changegate-access", "1"),
            ("changegate-access-runbook", "1"),
        ]),
    };
    let alice = UserRecord {
        name: None,
        id: None,
        tag: Some("111122223333".into()),
        boundary: None,
        inline_policies: vec![],
    };

    measure("grant decision and policy", 2000, || {
        let Ok(Checking::Checked(checked)) =
            check_request(&id, Some(black_box(&cr)), &config, &home, now)
        else {
            panic!("not checked")
        };
        let Ok(Verdict::Grant(g)) = decide(&checked, &alice, &config) else {
            panic!("not granted")
        };
        black_box(g.document_json());
    });

    let Ok(Checking::Checked(checked)) = check_request(&id, Some(&cr), &config, &home, now) else {
        panic!("not checked")
    };
    let Ok(Verdict::Grant(grant)) = decide(&checked, &alice, &config) else {
        panic!("not granted")
    };
    let granted = ChangegateEvent::granted(
        &grant,
        &grant.user,
        &checked.approvers,
        "change-manager",
        None,
    );
    measure("notification (email + card)", 2000, || {
        black_box(render_changegate(black_box(&granted)).sns_message());
    });

    let policies: Vec<UserPolicy> = (0..500)
        .map(|i| {
            let mut g = grant.clone();
            g.change_request =
                ChangeRequestId::parse(&format!("d0585556-80f6-4522-8dad-{i:012}")).unwrap();
            UserPolicy {
                user: format!("user{i}"),
                name: g.policy_name(),
                document: g.document_json(),
                eligibility: Some(g.account.to_string()),
            }
        })
        .collect();
    let later = now + TimeDelta::hours(2);
    let scope = Scope {
        target_role: grant.role.clone(),
        allowed_accounts: [grant.account.clone()].into(),
    };
    measure("sweep sorting of 500 grants", 50, || {
        black_box(sort_grants(black_box(&policies), later, Some(&scope)));
    });
}
