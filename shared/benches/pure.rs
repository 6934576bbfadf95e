//! The functions' own time, without any AWS call: `cargo bench -p changegate --bench pure`.
//! Prints one JSON line per measurement (median over samples, in µs per operation).

use std::hint::black_box;
use std::time::Instant;

use changegate::approval::ApproverDecision;
use changegate::aws::{ChangeRequest, UserPolicy, UserRecord};
use changegate::config::{GrantConfig, VAR_ALLOWED_ACCOUNTS};
use changegate::events::{ChangeRequestStatus, ChangegateEvent};
use changegate::grant::{Verdict, check_request, decide};
use changegate::ids::ChangeRequestId;
use changegate::message::render_changegate;
use changegate::revoke::expired;
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
    let config = GrantConfig::from_source(&|k: &str| {
        (k == VAR_ALLOWED_ACCOUNTS).then(|| "111122223333".to_owned())
    })
    .unwrap();
    let id = ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap();
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let event: ChangeRequestStatus = serde_json::from_value(serde_json::json!({
        "change-request-id": id.as_str(), "ops-item-status": "Approved",
        "ops-item-created-by": "arn:aws:iam::123456789012:user/alice",
    }))
    .unwrap();
    let cr = ChangeRequest {
        status: "Approved".into(),
        executed_by: Some("arn:aws:iam::123456789012:user/alice".into()),
        runbooks: vec![
            [
                ("IAMUserName", "alice".to_owned()),
                ("AWSAccountId", "111122223333".to_owned()),
                ("StartTime", fmt(now)),
                ("EndTime", fmt(now + TimeDelta::hours(1))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), vec![v]))
            .collect(),
        ],
        approvals: Some(vec![ApproverDecision {
            approver: "arn:aws:iam::123456789012:user/bob".into(),
            decision: "Approve".into(),
        }]),
    };
    let alice = UserRecord {
        tag: Some("111122223333".into()),
        inline_policies: vec![],
    };

    measure("grant decision and policy", 2000, || {
        let checked =
            check_request(&id, black_box(&event), Some(black_box(&cr)), &config, now).unwrap();
        let Ok(Verdict::Grant(g)) = decide(&checked, &alice, &config) else {
            panic!("not granted")
        };
        black_box(g.document_json());
    });

    let checked = check_request(&id, &event, Some(&cr), &config, now).unwrap();
    let Ok(Verdict::Grant(grant)) = decide(&checked, &alice, &config) else {
        panic!("not granted")
    };
    let granted = ChangegateEvent::granted(&grant, "alice", &checked.approvers);
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
            }
        })
        .collect();
    let later = now + TimeDelta::hours(2);
    measure("sweep sorting of 500 grants", 50, || {
        black_box(expired(black_box(&policies), later));
    });
}
