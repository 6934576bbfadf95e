//! Issue 10's proof against the local AWS with two accounts: changegate runs
//! in 123456789012 (moto's default), the target role `CM-Prd-role` and the
//! cutter role `changegate-session-cutter` live in the production account
//! 111122223333 (made there with credentials moto maps to that account after
//! an `sts:AssumeRole` into it). grant and revoke run in process with
//! `CHANGEGATE_SESSION_CUTTER_ROLE=changegate-session-cutter` and get `now`.
//!
//! What moto does not enforce, and is proven with the evaluator of IAM's
//! documented semantics (`changegate_tests::iam`) instead:
//! - conditions: moto evaluates only `StringEquals`, so the cut's
//!   `StringLike`/`DateLessThan`/`DateGreaterThan` would never deny anything
//!   there. The tests read the document changegate wrote on the role in the
//!   production account, take each session's `aws:userid` from moto's own
//!   `GetCallerIdentity` for that session and its issue time from its
//!   credentials, and evaluate every inline policy of the role at instants
//!   around the cut;
//! - trust policies: moto lets anyone assume any role ARN, even one that does
//!   not exist, so the cutter role's trust (only changegate's functions) and
//!   the target role's (sessions named after their person) are evaluated too;
//! - time: a session cannot be issued in the future, so "a session issued
//!   under a later grant" is the real session's identity with a later issue
//!   time.

use aws_sdk_iam::config::Credentials;
use changegate::config::VAR_SESSION_CUTTER_ROLE;
use changegate::ids::IamUserName;
use changegate::session::{ALL_BEFORE_SID, POLICY_NAME, ROLE_INLINE_POLICY_LIMIT, SessionCut};
use changegate_aws::grant::{GrantOutcome, Grantor};
use changegate_aws::revoke::{RevokeOutcome, Revoker};
use changegate_tests::iam::{self, Decision, Request};
use changegate_tests::operators::{OperatorCall, OperatorRunbook};
use changegate_tests::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};

const CUTTER: &str = "changegate-session-cutter";
const TARGET: &str = "CM-Prd-role";
const MAX_SESSION: i64 = 3600;

/// The deployment's operator (`OperatorArns`): dave, an IAM user.
const OPERATORS: &str = "arn:aws:iam::123456789012:user/dave";

/// revoke's variables for the operators' runbook, as the template sets them
/// (the same in every scene: the name is the local stack's).
static OPERATOR_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn setting(k: &str) -> Option<String> {
    if let Some((_, v)) = OPERATOR_ENV
        .get()
        .into_iter()
        .flatten()
        .find(|(var, _)| var == k)
    {
        return Some(v.clone());
    }
    match k {
        VAR_SESSION_CUTTER_ROLE => Some(CUTTER.to_owned()),
        k => grant_env(k),
    }
}

fn target_arn() -> String {
    format!("arn:aws:iam::{PROD_ACCOUNT}:role/{TARGET}")
}

/// The target role's trust, as templates/production-account.yaml creates it.
fn target_trust() -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Sid":"ChangegateUsersUnderTheirOwnName","Effect":"Allow",
        "Principal":{"AWS":format!("arn:aws:iam::{HOME_ACCOUNT}:root")},"Action":"sts:AssumeRole",
        "Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]})
}

/// The function roles allowed to assume the cutter (the template's parameters).
fn function_role(name: &str) -> String {
    format!("arn:aws:iam::{HOME_ACCOUNT}:role/{name}")
}

/// The cutter role's trust, as templates/production-account.yaml creates it.
fn cutter_trust() -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Sid":"OnlyChangegateFunctions","Effect":"Allow",
        "Principal":{"AWS":format!("arn:aws:iam::{HOME_ACCOUNT}:root")},"Action":"sts:AssumeRole",
        "Condition":{"ArnEquals":{"aws:PrincipalArn":[function_role("changegate-revoke"),function_role("changegate-grant")]},
                     "StringLike":{"sts:RoleSessionName":"changegate-*"}}}]})
}

/// A role session in production: its identity as moto reports it.
#[derive(Debug, Clone)]
struct Session {
    arn: String,
    userid: String,
    issued: DateTime<Utc>,
}

impl Session {
    /// The same identity, issued at another time (a later grant's session).
    fn issued_at(&self, issued: DateTime<Utc>) -> Self {
        Self {
            issued,
            ..self.clone()
        }
    }
}

struct Scene {
    world: World,
    /// An administrator of the production account.
    prod: aws_sdk_iam::Client,
    grantor: Grantor,
    revoker: Revoker,
    ssm_events: String,
    cg_events: String,
    bob: Creds,
    /// template.yaml's operators' runbook, and dave, its operator.
    operators: OperatorRunbook,
    dave: Creds,
}

/// Credentials moto maps to `account`: a session of any role ARN there.
async fn credentials_in(sdk: &aws_config::SdkConfig, account: &str) -> Credentials {
    let out = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/setup"))
        .role_session_name("setup")
        .send()
        .await
        .expect("assume a role in the production account");
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "prod",
    )
}

async fn scene() -> Scene {
    let world = World::new().await;
    let creds = credentials_in(&world.sdk, PROD_ACCOUNT).await;
    let prod = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&world.sdk)
            .credentials_provider(creds)
            .build(),
    );
    prod.create_role()
        .role_name(TARGET)
        .max_session_duration(MAX_SESSION as i32)
        .assume_role_policy_document(target_trust().to_string())
        .send()
        .await
        .expect("target role");
    // What the role may do in production (an inline policy, so that the
    // evaluator reads all the role's permissions back from IAM).
    prod.put_role_policy()
        .role_name(TARGET)
        .policy_name("operations")
        .policy_document(
            json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]})
                .to_string(),
        )
        .send()
        .await
        .expect("target role permissions");
    prod.create_role()
        .role_name(CUTTER)
        .assume_role_policy_document(cutter_trust().to_string())
        .send()
        .await
        .expect("cutter role");
    let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
    let cg_events = world
        .capture("changegate-events", changegate_pattern())
        .await;
    let operators = OperatorRunbook::create(&world, OPERATORS).await;
    let _ = OPERATOR_ENV.set(operators.env());
    let grantor = grantor_with(&world.sdk, &setting);
    let revoker = revoker_with(&world.sdk, &setting);
    let (_, bob) = world.user("bob").await;
    let (_, dave) = world.user("dave").await;
    Scene {
        world,
        prod,
        grantor,
        revoker,
        ssm_events,
        cg_events,
        bob,
        operators,
        dave,
    }
}

/// A whole second `secs` from now, RFC 3339 in UTC.
fn from_now(secs: i64) -> DateTime<Utc> {
    (Utc::now() + TimeDelta::seconds(secs))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A time as changegate's messages write it (UTC).
fn shown_utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

impl Scene {
    /// `creds` (user `user`) asks for `start..end`, bob approves, grant sees
    /// every status event (at the real time). Returns the request id.
    async fn granted(
        &self,
        user: &str,
        creds: &Creds,
        window: (DateTime<Utc>, DateTime<Utc>),
        scheduled: Option<DateTime<Utc>>,
    ) -> String {
        let params = request(user, PROD_ACCOUNT, &rfc(window.0), &rfc(window.1));
        let id = self
            .world
            .try_file(creds, params, scheduled)
            .await
            .expect("file");
        self.world.signal(&self.bob, &id, true).await;
        let mut granted = false;
        for body in self.world.drain(&self.ssm_events).await {
            let outcome = self
                .grantor
                .handle(body, &home(), &invocation(Utc::now()))
                .await
                .expect("grant");
            granted |= matches!(outcome, GrantOutcome::Granted { .. });
        }
        assert!(granted, "{user}'s request {id} was not granted");
        id
    }

    /// The role's inline policies in production, decoded (the cut included).
    async fn role_policies(&self) -> Vec<(String, Value)> {
        let names = self
            .prod
            .list_role_policies()
            .role_name(TARGET)
            .send()
            .await
            .expect("list role policies")
            .policy_names()
            .to_vec();
        let mut all = Vec::new();
        for name in names {
            let doc = self
                .prod
                .get_role_policy()
                .role_name(TARGET)
                .policy_name(&name)
                .send()
                .await
                .expect("get role policy")
                .policy_document()
                .to_owned();
            let doc = percent_encoding::percent_decode_str(&doc).decode_utf8_lossy();
            all.push((name, serde_json::from_str(&doc).expect("JSON policy")));
        }
        all
    }

    /// changegate's session cut on the target role, as written, parsed back.
    async fn cut(&self) -> Option<(Value, SessionCut)> {
        let found = self.role_policies().await;
        let (_, doc) = found.into_iter().find(|(n, _)| n == POLICY_NAME)?;
        let parsed = SessionCut::parse(&doc.to_string()).expect("changegate's shape");
        Some((doc, parsed))
    }

    /// The person's cuts as (run start, cut) pairs.
    async fn cuts_of(&self, who: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let user = IamUserName::parse(who).unwrap();
        self.cut()
            .await
            .map(|(_, c)| {
                c.cuts()
                    .iter()
                    .filter(|c| c.is_for(&user))
                    .map(|c| (c.from, c.at))
                    .collect::<Vec<_>>()
            })
            .map(|mut v| {
                v.sort();
                v
            })
            .unwrap_or_default()
    }

    /// `creds` assumes the target role in production under `name`; the
    /// session's identity is what moto's STS reports for it.
    async fn session(&self, creds: &Creds, name: &str) -> Session {
        let sdk = self.world.aws.sdk_as(creds).await;
        let out = aws_sdk_sts::Client::new(&sdk)
            .assume_role()
            .role_arn(target_arn())
            .role_session_name(name)
            .duration_seconds(MAX_SESSION as i32)
            .send()
            .await
            .expect("assume the target role");
        let c = out.credentials().expect("credentials");
        let expires = DateTime::<Utc>::from_timestamp(c.expiration().secs(), 0).unwrap();
        let session = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "session",
        );
        let me = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .credentials_provider(session)
                .build(),
        )
        .get_caller_identity()
        .send()
        .await
        .expect("who am I");
        let s = Session {
            arn: me.arn().expect("arn").to_owned(),
            userid: me.user_id().expect("userid").to_owned(),
            issued: expires - secs(MAX_SESSION),
        };
        assert_eq!(me.account(), Some(PROD_ACCOUNT), "{s:?}");
        s
    }

    /// IAM's decision (per its documented semantics) on a call by `s` at
    /// `now`, over every inline policy the target role has now.
    async fn decide(&self, s: &Session, now: DateTime<Utc>) -> Decision {
        let policies = self.role_policies().await;
        let docs: Vec<&Value> = policies.iter().map(|(_, d)| d).collect();
        let req = iam::session_call(&s.arn, &s.userid, s.issued, now, "ec2:DescribeInstances");
        iam::evaluate(&docs, &req)
    }

    async fn works(&self, s: &Session, now: DateTime<Utc>) -> bool {
        self.decide(s, now).await == Decision::Allow
    }

    /// The grant `user` holds, as IAM has it.
    async fn grant_document(&self, user: &str, id: &str) -> Value {
        let doc = self
            .world
            .iam
            .get_user_policy()
            .user_name(user)
            .policy_name(format!("changegate-{id}"))
            .send()
            .await
            .expect("grant policy")
            .policy_document()
            .to_owned();
        serde_json::from_str(&percent_encoding::percent_decode_str(&doc).decode_utf8_lossy())
            .expect("JSON")
    }

    /// The Access Revoked events changegate announced since the last call.
    async fn revoked_events(&self) -> Vec<Value> {
        self.world
            .drain(&self.cg_events)
            .await
            .into_iter()
            .filter(|e| e["detail-type"] == "Access Revoked")
            .collect()
    }
}

fn expiry(id: &str, user: &str) -> Value {
    json!({"changegate-expiry": {"change-request-id": id, "user": user}})
}

impl Scene {
    /// dave, an operator, starts the operators' runbook to end request `id`:
    /// its call to revoke, which the test hands to revoke.
    async fn operator(&self, id: &str) -> OperatorCall {
        self.operators
            .start(&self.world, &self.dave, id, "incident over")
            .await
    }
}

#[tokio::test]
async fn given_a_grant_when_its_window_ends_then_the_live_session_is_cut_at_the_end_itself_a_later_grant_works_and_bob_is_never_cut()
 {
    // Given alice granted for the next hour, holding a live session
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s.granted("alice", &alice, (start, end), None).await;
    let live = s.session(&alice, "alice").await;
    assert!(live.userid.ends_with(":alice"), "{live:?}");

    // Then the target role in production carries the cut, written at grant
    // time: alice's sessions issued before the end are denied after it
    let (doc, cut) = s.cut().await.expect("changegate-session-cut on the role");
    assert_eq!(s.cuts_of("alice").await, vec![(start, end)], "{doc}");
    let role_id = s
        .prod
        .get_role()
        .role_name(TARGET)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .role_id()
        .to_owned();
    assert_eq!(live.userid, format!("{role_id}:alice"), "aws:userid");
    assert_eq!(cut.cuts().len(), 1);

    // And the session works up to the end, and is refused from the first
    // instant after it: the lag is zero (the Deny was written ahead)
    assert!(s.works(&live, live.issued + secs(1)).await);
    assert!(s.works(&live, end - secs(1)).await, "end - 1 s");
    assert!(s.works(&live, end).await, "the end itself (strict)");
    let refused = end + TimeDelta::milliseconds(1);
    assert_eq!(s.decide(&live, refused).await, Decision::ExplicitDeny);
    assert_eq!(s.decide(&live, end + secs(1)).await, Decision::ExplicitDeny);
    assert!(!s.works(&live, end + secs(MAX_SESSION - 1)).await);

    // And the grant itself lets alice in only under her own name, in the
    // window (moto ignores the date and session-name conditions)
    let grant = s.grant_document("alice", &id).await;
    let assume = |name: &str, user: Option<&str>, now: DateTime<Utc>| {
        let principal = format!("arn:aws:iam::{HOME_ACCOUNT}:user/{}", user.unwrap_or("x"));
        let mut req = Request::new(&principal, "sts:AssumeRole", &target_arn())
            .with("sts:RoleSessionName", name)
            .with("aws:CurrentTime", iam::iso(now));
        if let Some(u) = user {
            req = req.with("aws:username", u);
        }
        iam::assume_role(&[&grant], &target_trust(), &req)
    };
    let inside = start + secs(60);
    assert_eq!(assume("alice", Some("alice"), inside), Decision::Allow);
    assert_eq!(assume("bob", Some("alice"), inside), Decision::ImplicitDeny);
    assert_eq!(assume("alice", Some("alice"), end), Decision::ImplicitDeny);
    assert_eq!(assume("alice", None, inside), Decision::ImplicitDeny);

    // Given bob's own session, named after him (no grant of his is cut)
    let bob_session = s.session(&s.bob, "bob").await;

    // When revoke removes the grant at the window's end (its expiry schedule)
    let outcome = s
        .revoker
        .handle(expiry(&id, "alice"), &invocation(end + secs(1)), None)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { cause, .. } if cause == "window-ended"),
        "{outcome:?}"
    );

    // Then the cut stays exactly where it was (idempotent), and the
    // announcement says what happened to live sessions
    assert_eq!(s.cuts_of("alice").await, vec![(start, end)]);
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let note = events[0]["detail"]["sessions"].as_str().unwrap();
    assert!(
        note.contains(&format!("issued before {}", shown_utc(end))),
        "{note}"
    );

    // When alice is granted again later (a gap after the first window)
    let (later_start, later_end) = (end + secs(3600), end + secs(7200));
    s.granted("alice", &alice, (later_start, later_end), None)
        .await;

    // Then each run keeps its own cut, a session under the later grant works
    // in its window and is cut at its end; the first session stays cut
    assert_eq!(
        s.cuts_of("alice").await,
        vec![(start, end), (later_start, later_end)]
    );
    let later = live.issued_at(later_start + secs(60));
    assert!(s.works(&later, later_start + secs(120)).await);
    assert!(s.works(&later, later_end).await);
    assert!(!s.works(&later, later_end + secs(1)).await);
    assert!(!s.works(&live, later_start + secs(120)).await);

    // And bob's sessions are never denied, whenever issued and used
    for issued in [bob_session.issued, end - secs(1), later_start + secs(60)] {
        let b = bob_session.issued_at(issued);
        for now in [
            end - secs(1),
            end + secs(1),
            later_end + secs(1),
            later_end + secs(MAX_SESSION),
        ] {
            if now > b.issued {
                assert_eq!(
                    s.decide(&b, now).await,
                    Decision::Allow,
                    "bob {issued} {now}"
                );
            }
        }
    }
}

#[tokio::test]
async fn given_overlapping_and_back_to_back_grants_when_the_first_ends_then_no_session_is_cut_before_the_end_of_the_last()
 {
    // Given alice's three grants: A now..+1h, B (overlapping A) +30m..+1h30,
    // C (back to back with B) +1h30..+2h30, and a session issued in A
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let a = (from_now(-1), from_now(3600));
    let b = (from_now(1800), from_now(5400));
    let c = (b.1, from_now(9000));
    let id_a = s.granted("alice", &alice, a, None).await;
    s.granted("alice", &alice, b, None).await;
    s.granted("alice", &alice, c, None).await;
    let live = s.session(&alice, "alice").await;

    // Then they form one run, cut at the end of the last
    assert_eq!(s.cuts_of("alice").await, vec![(a.0, c.1)]);

    // When revoke removes A at its end
    let outcome = s
        .revoker
        .handle(expiry(&id_a, "alice"), &invocation(a.1 + secs(1)), None)
        .await
        .unwrap();
    assert!(
        matches!(outcome, RevokeOutcome::Revoked { .. }),
        "{outcome:?}"
    );

    // Then the cut has not moved: the session works past A's and B's ends
    // and is refused only after C's
    assert_eq!(s.cuts_of("alice").await, vec![(a.0, c.1)]);
    assert!(s.works(&live, a.1 + secs(1)).await, "past A's end");
    assert!(s.works(&live, b.1 + secs(1)).await, "past B's end");
    assert!(s.works(&live, c.1).await);
    assert!(!s.works(&live, c.1 + secs(1)).await, "past C's end");
}

#[tokio::test]
async fn given_a_live_session_when_the_request_is_cancelled_then_the_cut_moves_to_now() {
    // Given alice granted for the next hour (her change request scheduled to
    // run later, so that it can still be cancelled), holding a live session
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s
        .granted("alice", &alice, (start, end), Some(from_now(3600)))
        .await;
    let live = s.session(&alice, "alice").await;
    s.world.drain(&s.cg_events).await;

    // When alice really cancels it (StopAutomationExecution) and revoke
    // gets the status event
    aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(&alice).await)
        .stop_automation_execution()
        .automation_execution_id(&id)
        .send()
        .await
        .expect("cancel");
    let ended = s
        .world
        .drain(&s.ssm_events)
        .await
        .into_iter()
        .find(|e| e["detail"]["ops-item-status"] == "Cancelled")
        .expect("Cancelled event");
    let now = Utc::now();
    let outcome = s
        .revoker
        .handle(ended, &invocation(now), None)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { cause, .. } if cause == "Cancelled"),
        "{outcome:?}"
    );

    // Then the grant is gone, and a cut at now (the whole second after it)
    // joins the one at the window's end
    assert!(s.world.policies("alice").await.is_empty());
    let cut_at = now.duration_trunc(secs(1)).unwrap() + secs(1);
    assert_eq!(
        s.cuts_of("alice").await,
        vec![(start, end), (cut_at, cut_at)]
    );

    // And the live session, issued before, is refused from then on
    assert!(s.works(&live, now - secs(1)).await);
    assert!(!s.works(&live, cut_at + TimeDelta::milliseconds(1)).await);
    assert!(!s.works(&live, end - secs(1)).await, "not only at the end");
    // (a session issued after the cut, under another grant, is not)
    assert!(
        s.works(&live.issued_at(cut_at + secs(1)), cut_at + secs(2))
            .await
    );

    // And the announcement says so
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let note = events[0]["detail"]["sessions"].as_str().unwrap();
    assert!(
        note.contains(&format!("issued before {}", shown_utc(cut_at))),
        "{note}"
    );
}

#[tokio::test]
async fn given_a_live_session_when_an_operator_revokes_then_the_cut_moves_to_now() {
    // Given alice granted for the next hour, holding a live session
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s.granted("alice", &alice, (start, end), None).await;
    let live = s.session(&alice, "alice").await;

    // When an operator ends it (dave starts the operators' runbook, which
    // invokes revoke with its execution id)
    let call = s.operator(&id).await;
    let now = Utc::now() + secs(5);
    let outcome = s
        .revoker
        .handle(call.payload.clone(), &invocation(now), None)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { cause, .. } if cause == "operator"),
        "{outcome:?}"
    );

    // Then the grant is gone and the live session is refused from now on
    assert!(s.world.policies("alice").await.is_empty());
    let cut_at = now.duration_trunc(secs(1)).unwrap() + secs(1);
    assert!(s.cuts_of("alice").await.contains(&(cut_at, cut_at)));
    assert!(s.works(&live, now - secs(1)).await);
    assert!(!s.works(&live, cut_at + TimeDelta::milliseconds(1)).await);
}

#[tokio::test]
async fn given_a_cut_12_hours_old_when_the_policy_is_next_written_then_it_is_removed_and_not_before()
 {
    // Given alice's grant ending in ten minutes and carol's in two hours
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, carol) = s.world.eligible_user("carol", PROD_ACCOUNT).await;
    let a = (from_now(-1), from_now(600));
    let b = (from_now(-1), from_now(7200));
    let id_a = s.granted("alice", &alice, a, None).await;
    let id_b = s.granted("carol", &carol, b, None).await;
    assert_eq!(s.cuts_of("alice").await, vec![a]);
    assert_eq!(s.cuts_of("carol").await, vec![b]);

    // When alice's grant is removed late, one second before her cut is 12
    // hours old (the role allows 1 h, but a console session lives up to 12 h,
    // and the role may have allowed more when her session was issued)
    const TWELVE_HOURS: i64 = 12 * 3600;
    const _: () = assert!(MAX_SESSION < TWELVE_HOURS);
    s.revoker
        .handle(
            expiry(&id_a, "alice"),
            &invocation(a.1 + secs(TWELVE_HOURS - 1)),
            None,
        )
        .await
        .unwrap();
    // Then her cut stays: a session issued before it could still be alive
    assert_eq!(s.cuts_of("alice").await, vec![a]);

    // When the policy is next written after that (carol's grant is removed, late)
    s.revoker
        .handle(
            expiry(&id_b, "carol"),
            &invocation(a.1 + secs(TWELVE_HOURS + 1)),
            None,
        )
        .await
        .unwrap();

    // Then alice's cut is gone and carol's stays
    assert_eq!(s.cuts_of("alice").await, vec![]);
    assert_eq!(s.cuts_of("carol").await, vec![b]);
    // (no session of alice's could be denied by it any more: all expired)
    let (doc, _) = s.cut().await.unwrap();
    assert_eq!(doc["Statement"].as_array().unwrap().len(), 1, "{doc}");
}

#[tokio::test]
async fn given_the_roles_inline_policies_nearly_full_when_an_early_end_needs_another_cut_then_every_earlier_session_is_denied_and_the_grant_is_still_removed()
 {
    // Given alice granted, alice and bob holding live sessions, and the
    // role's other inline policies filling its 10,240 characters but for
    // a few
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s.granted("alice", &alice, (start, end), None).await;
    let alice_live = s.session(&alice, "alice").await;
    let bob_live = s.session(&s.bob, "bob").await;
    let used: usize = s
        .role_policies()
        .await
        .iter()
        .map(|(_, d)| changegate::budget::counted_chars(&d.to_string()))
        .sum();
    let guardrail = |pad: usize| {
        json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:CreateUser",
            "Resource":format!("arn:aws:iam::{PROD_ACCOUNT}:user/{}", "x".repeat(pad))}]})
        .to_string()
    };
    let spare = 20;
    let pad = ROLE_INLINE_POLICY_LIMIT - used - spare - guardrail(0).len();
    s.prod
        .put_role_policy()
        .role_name(TARGET)
        .policy_name("guardrail")
        .policy_document(guardrail(pad))
        .send()
        .await
        .expect("guardrail");
    s.world.drain(&s.cg_events).await;

    // When an operator ends alice's access: a second cut does not fit
    let call = s.operator(&id).await;
    let now = Utc::now();
    let outcome = s
        .revoker
        .handle(call.payload.clone(), &invocation(now), None)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { .. }),
        "{outcome:?}"
    );

    // Then the grant is still removed
    assert!(s.world.policies("alice").await.is_empty());

    // And IAM's "revoke active sessions" is written: every session issued
    // before now is denied, alice's and bob's alike; later sessions work
    let (doc, cut) = s.cut().await.unwrap();
    let all_before = now.duration_trunc(secs(1)).unwrap() + secs(1);
    assert_eq!(cut.all_before(), Some(all_before), "{doc}");
    assert!(doc.to_string().contains(ALL_BEFORE_SID));
    let total: usize = s
        .role_policies()
        .await
        .iter()
        .map(|(_, d)| changegate::budget::counted_chars(&d.to_string()))
        .sum();
    assert!(total <= ROLE_INLINE_POLICY_LIMIT, "{total}");
    for live in [&alice_live, &bob_live] {
        assert!(!s.works(live, all_before + secs(1)).await, "{live:?}");
        assert!(
            s.works(&live.issued_at(all_before + secs(1)), all_before + secs(2))
                .await
        );
    }

    // And the announcement says so (the SessionCutFallbacks metric line is
    // printed to stdout by the same branch)
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let note = events[0]["detail"]["sessions"].as_str().unwrap();
    assert!(note.contains("budget was full"), "{note}");
    assert!(note.contains("every session of"), "{note}");
}

#[tokio::test]
async fn given_the_production_account_unreachable_when_revoking_then_it_fails_naming_sts_assume_role_and_the_grant_is_still_removed()
 {
    // Given alice granted (the cut at the end written), and revoke reaching
    // AWS through a proxy that fails every sts:AssumeRole
    // (moto lets any role ARN be assumed, even a missing cutter role, so a
    // fault on the call is how the production account becomes unreachable)
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s.granted("alice", &alice, (start, end), None).await;
    let live = s.session(&alice, "alice").await;
    let proxy = s.world.aws.fault_proxy(0.0, 7);
    let revoker = revoker_with(&proxy.sdk().await, &setting);
    proxy.configure(json!({"rate": 1.0, "kinds": ["503"], "only": "Action=AssumeRole"}));

    // When an operator ends alice's access
    let call = s.operator(&id).await;
    let err = revoker
        .handle(call.payload.clone(), &invocation(Utc::now()), None)
        .await
        .expect_err("the production account is out of reach");

    // Then the invocation fails naming the operation (Lambda retries it and
    // the errors alarm fires), and the IAM grant is removed all the same
    assert!(err.to_string().contains("sts:AssumeRole"), "{err}");
    assert!(s.world.policies("alice").await.is_empty());
    let faulted = proxy.faulted_actions();
    assert!(
        faulted.get("sts:AssumeRole").copied().unwrap_or(0) > 0,
        "{faulted:?}"
    );

    // And the cut written at grant time still ends her session at the end
    assert_eq!(s.cuts_of("alice").await, vec![(start, end)]);
    assert!(!s.works(&live, end + secs(1)).await);
}

#[tokio::test]
async fn given_the_cutter_roles_trust_when_evaluated_then_only_changegates_functions_may_assume_it()
{
    // moto does not evaluate a cross-account trust policy; the evaluator
    // reads the one the production account holds
    let s = scene().await;
    let doc = s
        .prod
        .get_role()
        .role_name(CUTTER)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .assume_role_policy_document()
        .unwrap()
        .to_owned();
    let trust: Value =
        serde_json::from_str(&percent_encoding::percent_decode_str(&doc).decode_utf8_lossy())
            .unwrap();
    let cutter = format!("arn:aws:iam::{PROD_ACCOUNT}:role/{CUTTER}");
    let identity = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":&cutter}]});
    let call = |role: &str, session: &str| {
        let req = Request::new(
            &format!("arn:aws:sts::{HOME_ACCOUNT}:assumed-role/{role}/x"),
            "sts:AssumeRole",
            &cutter,
        )
        .with("aws:PrincipalArn", function_role(role))
        .with("sts:RoleSessionName", session);
        iam::assume_role(&[&identity], &trust, &req)
    };
    // Sessions::new names them changegate-<function>
    assert_eq!(
        call("changegate-revoke", "changegate-revoke"),
        Decision::Allow
    );
    assert_eq!(
        call("changegate-grant", "changegate-grant"),
        Decision::Allow
    );
    assert_eq!(call("changegate-revoke", "alice"), Decision::ImplicitDeny);
    assert_eq!(call("Admin", "changegate-revoke"), Decision::ImplicitDeny);
    let alice = Request::new(
        &format!("arn:aws:iam::{HOME_ACCOUNT}:user/alice"),
        "sts:AssumeRole",
        &cutter,
    )
    .with(
        "aws:PrincipalArn",
        format!("arn:aws:iam::{HOME_ACCOUNT}:user/alice"),
    )
    .with("sts:RoleSessionName", "changegate-revoke");
    assert_eq!(
        iam::assume_role(&[&identity], &trust, &alice),
        Decision::ImplicitDeny
    );
}

#[tokio::test]
async fn given_the_production_account_unreachable_during_an_early_end_when_revoke_is_retried_then_the_cut_moves_to_now_and_the_revocation_is_announced()
 {
    // Given alice granted, and an operator's revocation that failed on
    // sts:AssumeRole after removing the grant
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s.granted("alice", &alice, (start, end), None).await;
    let live = s.session(&alice, "alice").await;
    s.world.drain(&s.cg_events).await;
    let call = s.operator(&id).await;
    let proxy = s.world.aws.fault_proxy(0.0, 7);
    let revoker = revoker_with(&proxy.sdk().await, &setting);
    proxy.configure(json!({"rate": 1.0, "kinds": ["503"], "only": "Action=AssumeRole"}));
    let now = Utc::now();
    let first = invocation(now);
    revoker
        .handle(call.payload.clone(), &first, None)
        .await
        .expect_err("unreachable");
    assert!(s.world.policies("alice").await.is_empty());

    // When the production account is back and Lambda retries the invocation
    // (with the same request id, as Lambda does)
    proxy.configure(json!({"rate": 0.0}));
    let retry = revoker
        .handle(call.payload.clone(), &retry_of(&first, now + secs(2)), None)
        .await;

    // Then the cut moves to now all the same, and the revocation is announced once
    assert!(retry.is_ok(), "{retry:?}");
    let cut_at = now.duration_trunc(secs(1)).unwrap() + secs(1);
    let cuts = s.cuts_of("alice").await;
    assert!(
        cuts.iter().any(|(_, at)| *at < end),
        "sessions live on until the window's end: {cuts:?}"
    );
    assert!(!s.works(&live, cut_at + secs(3)).await);
    assert_eq!(s.revoked_events().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/benchmarks.md, not a check: cargo test -p changegate-tests --test integration sessions::measure -- --ignored --nocapture"]
async fn measure_from_revokes_invocation_to_the_cut_written_on_an_early_end() {
    // Given alice granted again and again; for each grant an operator's
    // revocation, while another task reads the role's cut until it changes
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let runs = 9;
    let (mut to_cut, mut whole, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let id = s
            .granted("alice", &alice, (from_now(-1), from_now(3600)), None)
            .await;
        let before = s.cut().await.map(|(d, _)| d);
        let call = s.operator(&id).await;
        let prod = s.prod.clone();
        let started = std::time::Instant::now();
        let watch = tokio::spawn(async move {
            loop {
                let now = prod
                    .get_role_policy()
                    .role_name(TARGET)
                    .policy_name(POLICY_NAME)
                    .send()
                    .await
                    .ok()
                    .map(|o| o.policy_document().to_owned())
                    .map(|d| {
                        serde_json::from_str::<Value>(
                            &percent_encoding::percent_decode_str(&d).decode_utf8_lossy(),
                        )
                        .unwrap()
                    });
                if now != before {
                    return started.elapsed();
                }
                assert!(started.elapsed() < std::time::Duration::from_secs(10));
            }
        });
        // (each run's `now` a different second: a cut at the same second is the same statement)
        let now = Utc::now() + secs(10 * run);
        let outcome = s
            .revoker
            .handle(call.payload.clone(), &invocation(now), None)
            .await
            .unwrap();
        whole.push(started.elapsed());
        let written = watch.await.unwrap();
        to_cut.push(written);
        // A live session is refused from the later of the cut (the whole
        // second after `now`) and the moment the cut is in IAM.
        let cut_at = now.duration_trunc(secs(1)).unwrap() + secs(1);
        let in_iam = now + TimeDelta::from_std(written).unwrap();
        refused.push((cut_at.max(in_iam) - now).num_milliseconds());
        assert!(matches!(outcome, RevokeOutcome::Revoked { .. }));
    }
    to_cut.sort();
    whole.sort();
    refused.sort();
    eprintln!("runs {runs}");
    eprintln!(
        "invocation -> cut visible in IAM (ms): {:?}",
        to_cut.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    eprintln!(
        "whole revoke invocation (ms): {:?}",
        whole.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    eprintln!("invocation -> first refused call of a live session (ms): {refused:?}");
    eprintln!(
        "median: to cut {} ms, whole {} ms, to refused {} ms",
        to_cut[runs as usize / 2].as_millis(),
        whole[runs as usize / 2].as_millis(),
        refused[runs as usize / 2]
    );
}

/// alice granted for the next hour (her request scheduled to run later, so
/// that it can still be cancelled) with a live session under her name, then
/// renamed by herself to alice2 (IAM moves her inline policies and tags and
/// keeps her unique id). Returns the request id, her credentials, her live
/// session and her unique id.
async fn granted_then_renamed(s: &Scene) -> (String, Creds, Session, String, DateTime<Utc>) {
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (start, end) = (from_now(-1), from_now(3600));
    let id = s
        .granted("alice", &alice, (start, end), Some(from_now(3600)))
        .await;
    let live = s.session(&alice, "alice").await;
    let user_id = s
        .world
        .iam
        .get_user()
        .user_name("alice")
        .send()
        .await
        .expect("alice")
        .user()
        .expect("user")
        .user_id()
        .to_owned();
    aws_sdk_iam::Client::new(&s.world.aws.sdk_as(&alice).await)
        .update_user()
        .user_name("alice")
        .new_user_name("alice2")
        .send()
        .await
        .expect("alice renames herself");
    assert_eq!(
        s.world.policies("alice2").await,
        vec![format!("changegate-{id}")],
        "the grant moved with her"
    );
    s.world.drain(&s.cg_events).await;
    (id, alice, live, user_id, end)
}

#[tokio::test]
async fn given_alice_renamed_herself_during_her_window_then_she_cannot_assume_under_either_name_and_at_the_end_expiry_removes_the_grant_from_alice2_and_tells_alice()
 {
    let s = scene().await;
    let (id, _, live, user_id, end) = granted_then_renamed(&s).await;

    // Then the grant still names alice as the session name, literally
    // (moto evaluates no condition: the document is evaluated by IAM's
    // documented semantics instead)
    let grant = s.grant_document("alice2", &id).await;
    assert_eq!(
        grant["Statement"][0]["Condition"]["StringEquals"]["sts:RoleSessionName"], "alice",
        "{grant}"
    );
    let assume = |session: &str, now: DateTime<Utc>| {
        let principal = format!("arn:aws:iam::{HOME_ACCOUNT}:user/alice2");
        let req = Request::new(&principal, "sts:AssumeRole", &target_arn())
            .with("sts:RoleSessionName", session)
            .with("aws:username", "alice2")
            .with("aws:CurrentTime", iam::iso(now));
        iam::assume_role(&[&grant], &target_trust(), &req)
    };
    // her new name is refused by the grant, her old one by the role's trust
    let inside = Utc::now() + secs(60);
    assert_eq!(assume("alice2", inside), Decision::ImplicitDeny);
    assert_eq!(assume("alice", inside), Decision::ImplicitDeny);
    // and her session from before the rename is still cut at the end
    assert!(s.works(&live, end - secs(1)).await);
    assert_eq!(
        s.decide(&live, end + TimeDelta::milliseconds(1)).await,
        Decision::ExplicitDeny
    );

    // When her expiry schedule fires at the end (its input as grant writes it)
    let input = json!({"changegate-expiry": {"change-request-id": id, "user": "alice", "user-id": user_id}});
    let outcome = s
        .revoker
        .handle(input, &invocation(end + secs(1)), None)
        .await
        .unwrap();

    // Then the grant is removed from alice2, found by her unique id
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { user, cause, .. } if user == "alice2" && cause == "window-ended"),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice2").await.is_empty());
    // And the revocation is announced once, to alice as granted
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["user"], "alice");
    // And the cut still names alice's sessions, and none named alice2
    assert_eq!(s.cuts_of("alice2").await, vec![]);
    assert_eq!(s.cuts_of("alice").await.len(), 1);
}

#[tokio::test]
async fn given_alice_renamed_herself_when_her_request_is_cancelled_then_the_grant_is_removed_from_alice2_and_her_sessions_cut_now()
 {
    let s = scene().await;
    let (id, alice, live, _, end) = granted_then_renamed(&s).await;

    // When alice2 cancels the request (her keys moved with her)
    aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(&alice).await)
        .stop_automation_execution()
        .automation_execution_id(&id)
        .send()
        .await
        .expect("cancel");
    let ended = s
        .world
        .drain(&s.ssm_events)
        .await
        .into_iter()
        .find(|e| e["detail"]["ops-item-status"] == "Cancelled")
        .expect("Cancelled event");
    let now = Utc::now();
    let outcome = s
        .revoker
        .handle(ended, &invocation(now), None)
        .await
        .unwrap();

    // Then the grant is gone from alice2 (the record's unique id found her)
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { user, cause, .. } if user == "alice2" && cause == "Cancelled"),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice2").await.is_empty());
    // And sessions named alice are cut now, not only at the end
    let cut_at = now.duration_trunc(secs(1)).unwrap() + secs(1);
    assert!(!s.works(&live, cut_at + TimeDelta::milliseconds(1)).await);
    assert!(!s.works(&live, end - secs(1)).await);
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["user"], "alice");
}

#[tokio::test]
async fn given_alice_renamed_herself_when_the_sweep_finds_her_ended_grant_then_it_is_removed_from_alice2_and_alice_is_told()
 {
    let s = scene().await;
    let (_, _, live, _, end) = granted_then_renamed(&s).await;

    // When the sweep runs after the end (the expiry schedule missed)
    let outcome = s
        .revoker
        .handle(scheduled_event(), &invocation(end + secs(30)), None)
        .await
        .unwrap();

    // Then it removes the grant from alice2, and announces it to alice
    let RevokeOutcome::Swept(report) = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.revoked.len(), 1, "{report:?}");
    assert!(s.world.policies("alice2").await.is_empty());
    let events = s.revoked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["user"], "alice");
    // And the cut stays on alice's sessions; none is written for alice2
    assert_eq!(s.cuts_of("alice2").await, vec![]);
    assert!(!s.works(&live, end + secs(1)).await);
}
