//! Notifications for people: a plain-text email and a Slack card (the Amazon Q
//! Developer in chat applications custom-notification form), one per event.

use serde::Serialize;

use crate::events::{
    AccessGranted, AccessRefused, AccessRevoked, Cause, ChangeRequestStatus, ChangegateEvent,
    WindowDetail,
};
use crate::ids::UserArn;
use crate::policy::role_arn;
use crate::status::Status;
use crate::text::{printable, shown, slack, subject};
use crate::window::human_time;

/// What the `kind` message attribute says; subscription filters can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    AccessGranted,
    AccessRefused,
    AccessRevoked,
    RequestPendingApproval,
    RequestApproved,
    RequestRejected,
    RequestEnded,
    /// A request runbook execution waits at its approval step: changegate's
    /// own card for its approvers.
    ApprovalRequested,
    /// A request runbook execution waits in Systems Manager's queue (the
    /// account runs its maximum of concurrent automations): its filer is told.
    RequestQueued,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessGranted => "access-granted",
            Self::AccessRefused => "access-refused",
            Self::AccessRevoked => "access-revoked",
            Self::RequestPendingApproval => "request-pending-approval",
            Self::RequestApproved => "request-approved",
            Self::RequestRejected => "request-rejected",
            Self::RequestEnded => "request-ended",
            Self::ApprovalRequested => "approval-requested",
            Self::RequestQueued => "request-queued",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: Kind,
    pub change_request_id: String,
    /// The IAM user names of the people concerned (who receives access, and who
    /// asked when that is someone else), for per-person subscription filters.
    pub people: Vec<String>,
    pub account: Option<String>,
    pub subject: String,
    pub text: String,
    pub card: Card,
}

/// Amazon Q Developer in chat applications: custom notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    pub version: &'static str,
    pub source: &'static str,
    pub content: CardContent,
    pub metadata: CardMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardContent {
    pub text_type: &'static str,
    pub title: String,
    pub description: String,
    pub next_steps: Vec<String>,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardMetadata {
    pub thread_id: String,
    pub summary: String,
    pub event_type: String,
}

impl Notification {
    /// The SNS message for `MessageStructure=json`: email subscribers get the
    /// text, HTTPS subscribers (Amazon Q Developer) the card, others the text.
    pub fn sns_message(&self) -> String {
        let card = serde_json::to_string(&self.card)
            .unwrap_or_else(|_| unreachable!("plain structs serialise"));
        serde_json::json!({ "default": self.text, "email": self.text, "https": card }).to_string()
    }
}

/// A moment (`raw`, RFC 3339, as events carry it) written as the window's
/// times are: UTC, and in the requester's offset (`offset`) when not UTC.
fn moment(raw: &str, offset: &str) -> String {
    crate::events::in_offset(raw, offset).map_or_else(|| shown(raw), human_time)
}

/// Who a recorded ARN (`raw`, e.g. `ExecutedBy`) is, for people: the IAM
/// user it names and their name, else the ARN as shown, else `unknown`.
fn who_is(raw: Option<&str>, unknown: &str) -> (Option<UserArn>, String) {
    let user = raw.and_then(UserArn::parse);
    let name = match (&user, raw) {
        (Some(arn), _) => arn.user.to_string(),
        (None, Some(raw)) => shown(raw),
        (None, None) => unknown.to_owned(),
    };
    (user, name)
}

/// The `changegate` commands a person runs next, as a message's last step.
fn commands(what: &str, lines: &[String]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| format!("`{l}`")).collect();
    format!("{what}: {}", lines.join(" or "))
}

fn window_lines(w: &WindowDetail) -> (String, String) {
    match w.to_window() {
        Some(win) => (human_time(win.start()), human_time(win.end())),
        None => (shown(&w.start), shown(&w.end)),
    }
}

struct Parts {
    kind: Kind,
    id: String,
    people: Vec<String>,
    account: Option<String>,
    headline: String,
    facts: Vec<(&'static str, String)>,
    next: Vec<String>,
}

fn assemble(p: Parts) -> Notification {
    let width = p.facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut text = format!("{}\n\n", p.headline);
    for (k, v) in &p.facts {
        text.push_str(&format!("{:<width$}{v}\n", format!("{k}:")));
    }
    text.push_str("\nWhat happens next:\n");
    for n in &p.next {
        text.push_str(&format!("- {n}\n"));
    }
    text.push_str("\n-- changegate (just-in-time production access)\n");
    let description = p
        .facts
        .iter()
        .map(|(k, v)| format!("*{k}:* {}", slack(v)))
        .collect::<Vec<_>>()
        .join("\n");
    let mut keywords = vec!["changegate".to_owned(), p.kind.as_str().to_owned()];
    keywords.extend(p.account.clone());
    Notification {
        kind: p.kind,
        subject: subject(&format!("[changegate] {}", p.headline)),
        card: Card {
            version: "1.0",
            source: "custom",
            content: CardContent {
                text_type: "client-markdown",
                title: slack(&p.headline),
                description,
                next_steps: p.next.iter().map(|n| slack(n)).collect(),
                keywords,
            },
            metadata: CardMetadata {
                thread_id: format!("changegate-{}", p.id),
                summary: printable(&p.headline),
                event_type: p.kind.as_str().to_owned(),
            },
        },
        change_request_id: p.id,
        people: p.people,
        account: p.account,
        text,
    }
}

fn granted(d: &AccessGranted) -> Notification {
    let (from, until) = window_lines(&d.window);
    let (user, role_arn) = (d.user.to_string(), role_arn(&d.account, &d.role));
    let delegated = !d.requester.same_name(&d.user);
    let mut facts = vec![("Who", user.clone())];
    if delegated {
        facts.push(("Requested by", d.requester.to_string()));
    }
    facts.extend([
        ("Account", d.account.to_string()),
        ("Role", role_arn.clone()),
        ("From", from),
        ("Until", until.clone()),
        (
            "Approved by",
            if d.approvers.is_empty() {
                "-".to_owned()
            } else {
                d.approvers
                    .iter()
                    .map(|a| shown(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("Change request", d.change_request_id.to_string()),
        (
            "IAM policy",
            format!(
                "{} on user {user}",
                crate::policy::policy_name(&d.change_request_id)
            ),
        ),
    ]);
    if let Some(reason) = &d.request_reason {
        facts.push(("Reason", shown(reason)));
    }
    assemble(Parts {
        kind: Kind::AccessGranted,
        id: d.change_request_id.to_string(),
        people: if delegated {
            vec![user.clone(), d.requester.to_string()]
        } else {
            vec![user.clone()]
        },
        account: Some(d.account.to_string()),
        headline: format!("Access granted: {user} to {}/{}", d.account, d.role),
        facts,
        next: vec![
            format!(
                "{user} may assume {role_arn} from the start of the window until its end, e.g. `aws sts assume-role --role-arn {role_arn} --role-session-name {user}`."
            ),
            format!("At {until} changegate removes the permission and sends another message."),
            if d.sessions_cut {
                format!(
                    "Sessions started inside the window are cut at {until}: sessions must be named {user}."
                )
            } else {
                "Sessions started inside the window last until they expire (the role's maximum session duration).".to_owned()
            },
            commands(
                "Next, with the changegate command",
                &[
                    format!("changegate assume {}", d.change_request_id),
                    format!("changegate end {}", d.change_request_id),
                ],
            ),
        ],
    })
}

fn refused(d: &AccessRefused) -> Notification {
    let who = d
        .user
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| d.requester_arn.as_deref().map(shown))
        .unwrap_or_else(|| "unknown requester".to_owned());
    assemble(Parts {
        kind: Kind::AccessRefused,
        id: d.change_request_id.to_string(),
        people: d.user.iter().map(ToString::to_string).collect(),
        account: None,
        headline: format!(
            "Access refused: change request {} by {}",
            d.change_request_id, who
        ),
        facts: vec![
            ("Requester", who.clone()),
            ("Change request", d.change_request_id.to_string()),
            ("Reason", printable(&d.reason)),
        ],
        next: vec![
            "No access was granted and nothing was changed in IAM.".to_owned(),
            "Fix what the reason says and file a new request.".to_owned(),
            commands(
                "Next, with the changegate command",
                &[
                    format!("changegate status {}", d.change_request_id),
                    "changegate request ACCOUNT --for 1h --reason WHY --dry-run".to_owned(),
                ],
            ),
        ],
    })
}

fn revoked(d: &AccessRevoked) -> Notification {
    if Cause::parse(&d.cause) == Cause::Extended {
        return extended(d);
    }
    let (from, until) = window_lines(&d.window);
    let role_arn = role_arn(&d.account, &d.role);
    let mut facts = vec![
        ("Who", d.user.to_string()),
        ("Account", d.account.to_string()),
        ("Role", role_arn.clone()),
        ("Window", format!("{from} until {until}")),
        ("Removed at", moment(&d.revoked_at, &d.window.end_offset)),
        ("Why", Cause::parse(&d.cause).describe()),
    ];
    // An end through the end runbook: who ended it, and the reason they gave.
    if let Some(operator) = &d.ended_by {
        facts.push(("Ended by", shown(operator)));
        let reason = d.end_reason.as_deref().unwrap_or_default();
        let reason = if reason.trim().is_empty() {
            "none given".to_owned()
        } else {
            printable(reason)
        };
        facts.push(("Their reason", reason));
    }
    facts.push((
        "Live sessions",
        d.sessions
            .as_deref()
            .map(printable)
            .unwrap_or_else(|| "not cut by changegate: they last until they expire".to_owned()),
    ));
    facts.push(("Change request", d.change_request_id.to_string()));
    assemble(Parts {
        kind: Kind::AccessRevoked,
        id: d.change_request_id.to_string(),
        people: vec![d.user.to_string()],
        account: Some(d.account.to_string()),
        headline: format!("Access revoked: {} from {}/{}", d.user, d.account, d.role),
        facts,
        next: vec![
            format!("{} can no longer assume {role_arn}.", d.user),
            commands(
                "For more access, with the changegate command",
                &[format!(
                    "changegate request {} --for 1h --reason WHY",
                    d.account
                )],
            ),
        ],
    })
}

/// A grant retired because its extension was granted: the access goes on.
fn extended(d: &AccessRevoked) -> Notification {
    let (from, until) = window_lines(&d.window);
    let by = d
        .ended_by
        .as_deref()
        .map(shown)
        .unwrap_or_else(|| "its extension".to_owned());
    assemble(Parts {
        kind: Kind::AccessRevoked,
        id: d.change_request_id.to_string(),
        people: vec![d.user.to_string()],
        account: Some(d.account.to_string()),
        headline: format!(
            "Access extended: {} on {}/{} goes on under {by}",
            d.user, d.account, d.role
        ),
        facts: vec![
            ("Who", d.user.to_string()),
            ("Account", d.account.to_string()),
            ("Role", role_arn(&d.account, &d.role)),
            ("Replaced", format!("{from} until {until}")),
            ("Replaced at", moment(&d.revoked_at, &d.window.end_offset)),
            ("Replaced by", by),
            ("Change request", d.change_request_id.to_string()),
        ],
        next: vec![
            format!(
                "Nothing changes for {}: live sessions go on, and the extension's \"Access granted\" message says until when.",
                d.user
            ),
            commands(
                "Next, with the changegate command",
                &["changegate status".to_owned()],
            ),
        ],
    })
}

/// The notification for a change request's new status, or `None` for statuses
/// that add nothing for people (for example `RunbookInProgress`, which follows
/// every approval, or a status changegate does not know).
pub fn render_change_request(cr: &ChangeRequestStatus) -> Option<Notification> {
    let status = Status::parse(&cr.ops_item_status);
    let (kind, what, mut next): (Kind, &str, Vec<String>) = match status {
        Status::PendingApproval => (
            Kind::RequestPendingApproval,
            "is waiting for approval",
            vec![
                "An approver reviews it in Systems Manager Change Manager.".to_owned(),
                "changegate grants nothing until it is approved.".to_owned(),
            ],
        ),
        Status::Approved => (
            Kind::RequestApproved,
            "was approved",
            vec!["changegate now checks the request and sends a separate message when access is granted or refused.".to_owned()],
        ),
        Status::Rejected => (Kind::RequestRejected, "was rejected", vec!["No access will be granted for this request.".to_owned()]),
        ref status if status.ends_access() => (
            Kind::RequestEnded,
            "ended",
            vec![
                "No new access will be granted for this request.".to_owned(),
                "Any access already granted for it is removed at once; an \"Access revoked\" message follows.".to_owned(),
            ],
        ),
        _ => return None,
    };
    let (requester, who) = who_is(cr.ops_item_created_by.as_deref(), "unknown requester");
    let title = cr
        .change_request_title
        .as_deref()
        .map(shown)
        .unwrap_or_default();
    let id = shown(&cr.change_request_id);
    next.push(commands(
        "Follow it with the changegate command",
        &[format!("changegate status {id}")],
    ));
    let mut facts = vec![
        ("Requester", who.clone()),
        ("Change request", id.clone()),
        ("Title", title),
        ("Status", shown(&cr.ops_item_status)),
    ];
    if !cr.approvers.is_empty() {
        facts.push((
            "Approvers",
            cr.approvers
                .iter()
                .map(|a| shown(a))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Some(assemble(Parts {
        kind,
        id: cr.change_request_id.clone(),
        people: requester.map(|r| r.user.to_string()).into_iter().collect(),
        account: None,
        headline: format!("Change request {id} by {who} {what}"),
        facts,
        next,
    }))
}

/// changegate's own card for a request waiting at its approval step (`exec`,
/// Systems Manager's record of execution `id`, whose parameters are
/// `request`): who asks, for whom, where, when (UTC and the requester's
/// offset), why, what approving means, and the commands that decide it.
/// Addressed to the step's approvers (their IAM user names).
pub fn render_approval_request(
    id: &str,
    exec: &crate::execution::Execution,
    request: &crate::request::AccessRequest,
) -> Notification {
    let (filer, by) = who_is(exec.executed_by.as_deref(), "an unknown requester");
    let user = request.user.to_string();
    let listed = exec
        .approval_steps
        .first()
        .and_then(|s| s.approvers.as_deref())
        .unwrap_or_default();
    let approvers: Vec<String> = listed.iter().map(ToString::to_string).collect();
    let people: Vec<String> = listed
        .iter()
        .filter_map(|a| a.user_name().map(ToString::to_string))
        .collect();
    let mut facts = vec![("Requested by", by.clone())];
    // A delegated request (filed by someone else): whose access it is.
    if filer
        .as_ref()
        .is_some_and(|f| !f.user.same_name(&request.user))
    {
        facts.push(("For", user.clone()));
    }
    facts.extend([
        ("Account", request.account.to_string()),
        ("From", human_time(request.window.start())),
        ("Until", human_time(request.window.end())),
        (
            "Reason",
            request
                .reason
                .clone()
                .unwrap_or_else(|| "none given".to_owned()),
        ),
    ]);
    if let Some(x) = &request.extends {
        facts.push(("Extends", x.to_string()));
    }
    facts.push((
        "Approvers",
        if approvers.is_empty() {
            "-".to_owned()
        } else {
            approvers.join(", ")
        },
    ));
    facts.push(("Request", shown(id)));
    assemble(Parts {
        kind: Kind::ApprovalRequested,
        id: shown(id),
        people,
        account: Some(request.account.to_string()),
        headline: format!(
            "Approval requested: {user} asks for production access to {}",
            request.account
        ),
        facts,
        next: vec![
            format!(
                "Approving lets {user} assume the production role in {} from the start of the window until its end, and only then; changegate checks eligibility and the deployment's limits again before it grants.",
                request.account
            ),
            format!(
                "changegate counts no approval by {by} or {user}: approve only a request you neither filed nor benefit from."
            ),
            commands(
                "Decide it, as yourself, with the changegate command",
                &[
                    format!("changegate approve {} --comment ok", shown(id)),
                    format!("changegate reject {} --comment WHY", shown(id)),
                ],
            ),
        ],
    })
}

/// The filer's message for a request Systems Manager queued (`Pending`): it
/// waits, why, and that it starts by itself.
pub fn render_queued(
    id: &str,
    exec: &crate::execution::Execution,
    request: &crate::request::AccessRequest,
) -> Notification {
    let (filer, _) = who_is(exec.executed_by.as_deref(), "");
    let user = request.user.to_string();
    let mut facts = vec![];
    if let Some(f) = &filer {
        facts.push(("Requested by", f.user.to_string()));
    }
    facts.extend([
        ("For", user.clone()),
        ("Account", request.account.to_string()),
        ("From", human_time(request.window.start())),
        ("Until", human_time(request.window.end())),
        ("Request", shown(id)),
    ]);
    assemble(Parts {
        kind: Kind::RequestQueued,
        id: shown(id),
        people: filer.iter().map(|f| f.user.to_string()).collect(),
        account: Some(request.account.to_string()),
        headline: format!(
            "Request queued: {user}'s request for {} waits for Systems Manager",
            request.account
        ),
        facts,
        next: vec![
            "Systems Manager runs at most the account's quota of automations at once (100 by default) and queues the rest: this request starts by itself when another ends, and only then are your approvers asked.".to_owned(),
            "Nothing is granted while it waits; a window that ends before it is approved is refused.".to_owned(),
            commands(
                "Follow it, or withdraw it, with the changegate command",
                &[
                    format!("changegate status {}", shown(id)),
                    format!("changegate end {}", shown(id)),
                ],
            ),
        ],
    })
}

pub fn render_changegate(event: &ChangegateEvent) -> Notification {
    match event {
        ChangegateEvent::Granted(d) => granted(d),
        ChangegateEvent::Refused(d) => refused(d),
        ChangegateEvent::Revoked(d) => revoked(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChangeRequestId, IamUserName};
    use crate::policy::tests::grant;
    use crate::refusal::Refusal;
    use chrono::DateTime;

    fn name(raw: &str) -> IamUserName {
        IamUserName::parse(raw).unwrap()
    }

    #[test]
    fn given_a_grant_in_plus_nine_when_rendered_then_email_shows_who_where_when_in_utc_and_plus_nine()
     {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let n = render_changegate(&ChangegateEvent::granted(
            &g,
            &name("alice"),
            &["arn:aws:iam::123456789012:user/bob".to_owned()],
            "automation",
            None,
        ));
        assert_eq!(
            n.subject,
            "[changegate] Access granted: alice to 111122223333/CM-Prd-role"
        );
        assert!(!n.text.contains("Requested by"), "{}", n.text);
        assert_eq!(n.people, ["alice"]);
        assert_eq!(n.kind, Kind::AccessGranted);
        for want in [
            "Who:            alice",
            "Role:           arn:aws:iam::111122223333:role/CM-Prd-role",
            "From:           2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)",
            "Until:          2026-12-01 10:00:00 UTC (2026-12-01 19:00:00 +09:00)",
            "What happens next:",
            "changegate removes the permission",
        ] {
            assert!(n.text.contains(want), "missing {want:?} in\n{}", n.text);
        }
    }

    #[test]
    fn given_the_session_cut_is_on_when_a_grant_is_rendered_then_the_requester_learns_sessions_end_with_the_window()
     {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let mut event = ChangegateEvent::granted(&g, &g.user, &[], "automation", None);
        let uncut = render_changegate(&event);
        assert!(
            uncut.text.contains("last until they expire"),
            "{}",
            uncut.text
        );
        if let ChangegateEvent::Granted(d) = &mut event {
            d.sessions_cut = true;
        }
        let cut = render_changegate(&event);
        assert!(
            cut.text.contains("are cut at 2026-12-01 10:00:00 UTC"),
            "{}",
            cut.text
        );
        assert!(!cut.text.contains("last until they expire"), "{}", cut.text);
    }

    #[test]
    fn given_a_delegated_grant_when_rendered_then_both_people_are_named_and_addressed() {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let n = render_changegate(&ChangegateEvent::granted(
            &g,
            &name("oncall-lead"),
            &[],
            "change-manager",
            None,
        ));
        assert_eq!(n.people, ["alice", "oncall-lead"]);
        assert!(n.text.contains("Requested by:   oncall-lead"), "{}", n.text);
    }

    #[test]
    fn given_any_event_when_rendered_for_slack_then_the_card_has_the_custom_notification_shape() {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let n = render_changegate(&ChangegateEvent::granted(
            &g,
            &name("ALICE"),
            &["<!channel> & co".into()],
            "automation",
            Some("fix *it*".into()),
        ));
        assert!(
            !n.text.contains("Requested by"),
            "the same user in another case is not a delegation"
        );
        let msg: serde_json::Value = serde_json::from_str(&n.sns_message()).unwrap();
        assert_eq!(msg["email"], msg["default"]);
        let card: serde_json::Value = serde_json::from_str(msg["https"].as_str().unwrap()).unwrap();
        assert_eq!(card["version"], "1.0");
        assert_eq!(card["source"], "custom");
        assert_eq!(card["content"]["textType"], "client-markdown");
        assert!(
            card["content"]["title"]
                .as_str()
                .unwrap()
                .starts_with("Access granted: alice")
        );
        assert!(card["content"]["nextSteps"].as_array().unwrap().len() >= 2);
        assert!(
            card["content"]["nextSteps"][2]
                .as_str()
                .unwrap()
                .ends_with("(the role's maximum session duration)."),
            "{card}"
        );
        assert_eq!(
            card["metadata"]["threadId"],
            "changegate-d0585556-80f6-4522-8dad-dada6d45b67d"
        );
        assert_eq!(card["metadata"]["eventType"], "access-granted");
        let description = card["content"]["description"].as_str().unwrap();
        assert!(
            description.contains("&lt;!channel&gt; &amp; co"),
            "{description}"
        );
        assert!(
            description.contains("fix *it*") && !description.contains('\\'),
            "Slack shows backslashes literally: {description}"
        );
    }

    #[test]
    fn given_a_refusal_when_rendered_then_the_requester_reads_the_reason_and_that_nothing_changed()
    {
        let refusal = Refusal::WindowTooLong {
            requested_minutes: 600,
            max_minutes: 480,
        };
        let n = render_changegate(&ChangegateEvent::refused(
            &ChangeRequestId::parse("cr-1").unwrap(),
            Some(name("alice")),
            None,
            &refusal,
        ));
        assert!(n.text.contains(&refusal.to_string()));
        assert!(n.text.contains("nothing was changed in IAM"));
        assert_eq!(n.people, ["alice"]);
    }

    #[test]
    fn given_a_hostile_title_when_rendered_then_subject_is_ascii_single_line_and_short() {
        let cr = ChangeRequestStatus {
            change_request_id: "cr-1".into(),
            change_request_title: Some("x\ny".into()),
            ops_item_created_by: Some(
                "arn:aws:iam::123456789012:user/ＡＬＩＣＥ\n\u{7}".repeat(10),
            ),
            ops_item_status: "PendingApproval".into(),
            approvers: vec![],
        };
        let n = render_change_request(&cr).unwrap();
        assert!(
            n.subject.len() < 100
                && n.subject
                    .chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_control()),
            "{:?}",
            n.subject
        );
        assert!(n.people.is_empty());
    }

    #[test]
    fn given_a_request_that_ends_early_when_rendered_then_the_requester_learns_access_goes_at_once()
    {
        let cr = ChangeRequestStatus {
            change_request_id: "cr-1".into(),
            change_request_title: None,
            ops_item_created_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            ops_item_status: "Cancelled".into(),
            approvers: vec![],
        };
        let n = render_change_request(&cr).unwrap();
        assert_eq!(n.kind, Kind::RequestEnded);
        assert!(
            n.text
                .contains("Any access already granted for it is removed at once"),
            "{}",
            n.text
        );
    }

    #[test]
    fn given_statuses_that_add_nothing_when_rendered_then_no_message_is_sent() {
        for status in [
            "RunbookInProgress",
            "Scheduled",
            "CompletedWithSuccess",
            "SomethingNew",
        ] {
            let cr = ChangeRequestStatus {
                change_request_id: "cr-1".into(),
                change_request_title: None,
                ops_item_created_by: None,
                ops_item_status: status.into(),
                approvers: vec![],
            };
            assert_eq!(render_change_request(&cr), None, "{status}");
        }
    }

    #[test]
    fn given_a_revocation_in_plus_nine_when_rendered_then_every_time_reads_as_the_window_does() {
        // Given alice's grant in +09:00, revoked at its end with her sessions cut
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:02Z")
            .unwrap()
            .to_utc();
        let mut revoked = crate::events::AccessRevoked::of(&g, at, &Cause::WindowEnded);
        revoked.sessions = Some(crate::protocol::revocation::sessions_note(
            crate::ports::CutOutcome::Cut,
            &g,
            &Cause::WindowEnded,
            at,
        ));
        let n = render_changegate(&ChangegateEvent::Revoked(revoked));
        // Then the removal and the cut are written like the window: UTC, then +09:00
        for want in [
            "2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00) until 2026-12-01 10:00:00 UTC (2026-12-01 19:00:00 +09:00)",
            "Removed at:     2026-12-01 10:00:02 UTC (2026-12-01 19:00:02 +09:00)",
            "issued before 2026-12-01 10:00:00 UTC are denied",
        ] {
            assert!(n.text.contains(want), "missing {want:?} in\n{}", n.text);
        }
        assert!(
            !n.text.contains("T10:00"),
            "an RFC 3339 time in\n{}",
            n.text
        );
    }

    #[test]
    fn given_each_kind_of_message_when_rendered_then_its_last_step_is_the_changegate_command_that_comes_next()
     {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let id = g.change_request.to_string();
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:02Z")
            .unwrap()
            .to_utc();
        let cr = |status: &str| ChangeRequestStatus {
            change_request_id: id.clone(),
            change_request_title: None,
            ops_item_created_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            ops_item_status: status.into(),
            approvers: vec![],
        };
        let cases = [
            (
                render_changegate(&ChangegateEvent::granted(
                    &g,
                    &name("alice"),
                    &[],
                    "automation",
                    None,
                )),
                vec![
                    format!("`changegate assume {id}`"),
                    format!("`changegate end {id}`"),
                ],
            ),
            (
                render_changegate(&ChangegateEvent::refused(
                    &g.change_request,
                    Some(name("alice")),
                    None,
                    &Refusal::RequesterUnknown,
                )),
                vec![format!("`changegate status {id}`"), "--dry-run`".to_owned()],
            ),
            (
                render_changegate(&ChangegateEvent::Revoked(crate::events::AccessRevoked::of(
                    &g,
                    at,
                    &Cause::Operator,
                ))),
                vec!["`changegate request 111122223333 --for 1h".to_owned()],
            ),
            (
                render_change_request(&cr("PendingApproval")).unwrap(),
                vec![format!("`changegate status {id}`")],
            ),
            (
                render_change_request(&cr("Cancelled")).unwrap(),
                vec![format!("`changegate status {id}`")],
            ),
        ];
        for (n, wants) in cases {
            let last = n
                .card
                .content
                .next_steps
                .last()
                .cloned()
                .unwrap_or_default();
            for want in wants {
                assert!(
                    last.contains(&want),
                    "{:?}: {want:?} not in {last:?}",
                    n.kind
                );
            }
        }
    }

    #[test]
    fn given_a_grant_retired_by_its_extension_when_rendered_then_alice_reads_that_her_access_goes_on()
     {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let at = DateTime::parse_from_rfc3339("2026-12-01T09:40:00Z")
            .unwrap()
            .to_utc();
        let mut retired = crate::events::AccessRevoked::of(&g, at, &Cause::Extended);
        retired.ended_by = Some("its extension 0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87".into());
        let n = render_changegate(&ChangegateEvent::Revoked(retired));
        assert!(
            n.subject.starts_with("[changegate] Access extended: alice"),
            "{}",
            n.subject
        );
        assert!(
            n.text.contains("Replaced by:    its extension 0f4b1a5e"),
            "{}",
            n.text
        );
        assert!(n.text.contains("live sessions go on"), "{}", n.text);
        assert!(!n.text.contains("can no longer assume"), "{}", n.text);
    }
}
