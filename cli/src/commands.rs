//! The commands, each a few AWS calls signed with the person's own
//! credentials around the `changegate` crate's decisions: what the functions
//! check is what the command checks, so a refusal up front is the refusal
//! grant would send.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ssm::types::SignalType;
use chrono::{DateTime, FixedOffset, Local, Utc};
use serde_json::json;

use changegate::admission::OpenRun;
use changegate::check::{Checked, UserRecord, decide as decide_grant, request_rules};
use changegate::eligibility::ELIGIBILITY_TAG;
use changegate::execution::{Execution, Source};
use changegate::fault::Fault;
use changegate::ids::{ChangeRequestId, Home, IamUserName, Principal, UserArn};
use changegate::record::DecisionRecord;
use changegate::request::{
    AccessRequest, PARAM_ACCOUNT, PARAM_END, PARAM_REASON, PARAM_START, PARAM_USER, RawParameters,
    parse_parameters,
};
use changegate::status::Status;
use changegate::window::human_time;
use changegate_aws::adapters::Iam;
use changegate_aws::records::Records;
use changegate_aws::ssm::Ssm;

use crate::Done;
use crate::deployment::{Deployment, parameter_name};
use crate::error::{CliError, Exit};
use crate::view::{Phase, View, view};
use crate::when::{human_duration, parse_duration, parse_start};

/// The shortest and longest role session STS issues by default (AssumeRole:
/// `DurationSeconds` 900 to the role's maximum, 3600 unless raised).
const SESSION_MIN_SECS: i64 = 900;
const SESSION_MAX_SECS: i64 = 3600;

/// Who is calling, where, and the deployment they call.
pub struct Context {
    pub deployment: Deployment,
    /// The caller as STS names them.
    pub me: Principal,
    pub me_arn: String,
    pub home: Home,
    sdk: SdkConfig,
    ssm: aws_sdk_ssm::Client,
}

impl Context {
    /// The standard credential chain (with `--region`/`--profile`), the
    /// caller's identity (STS) and the stack's settings (SSM).
    pub async fn load(
        stack: &str,
        region: Option<String>,
        profile: Option<String>,
    ) -> Result<Self, CliError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(CliError::Usage(
                "no AWS region: pass --region, set AWS_REGION, or set a region in your profile"
                    .into(),
            ));
        }
        let me = aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CliError::from(Fault::aws("sts:GetCallerIdentity")(e)))?;
        let me_arn = me.arn().unwrap_or_default().to_owned();
        let principal = Principal::parse(&me_arn).ok_or_else(|| {
            CliError::Refused(format!(
                "you are signed in as {me_arn}: changegate takes requests and decisions from IAM users and their role sessions"
            ))
        })?;
        let home = match &principal {
            Principal::User(u) => Home {
                partition: u.partition.clone(),
                account: u.account.clone(),
            },
            Principal::AssumedRole {
                partition, account, ..
            } => Home {
                partition: partition.clone(),
                account: account.clone(),
            },
        };
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        let name = parameter_name(stack);
        let settings = match ssm.get_parameter().name(&name).send().await {
            Ok(out) => out.parameter.and_then(|p| p.value).unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
                return Err(CliError::NotFound(format!(
                    "no changegate stack named {stack} in account {} and region {region} (no SSM parameter {name}): pass --stack or set CHANGEGATE_STACK",
                    home.account
                )));
            }
            Err(e) => return Err(Fault::aws("ssm:GetParameter")(e).into()),
        };
        Ok(Self {
            deployment: Deployment::parse(stack, &settings)?,
            me: principal,
            me_arn,
            home,
            ssm,
            sdk,
        })
    }

    fn requests(&self) -> Ssm {
        Ssm::without_versions(self.ssm.clone())
    }

    fn records(&self) -> Records {
        Records::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.deployment.grant.decisions_table.clone(),
        )
    }

    /// The caller as an IAM user: requests are filed by users (grant refuses
    /// any other `ExecutedBy`).
    fn me_as_user(&self) -> Result<&UserArn, CliError> {
        match &self.me {
            Principal::User(u) => Ok(u),
            Principal::AssumedRole { role, session, .. } => Err(CliError::Refused(format!(
                "you are signed in as role {role} (session {session}); changegate grants access to IAM users, so file the request as your IAM user (changegate would refuse it as requester-not-a-user)"
            ))),
        }
    }

    /// Whether the caller is the one who filed a request or the one it is for.
    fn is_mine(&self, filer: Option<UserArn>, user: Option<UserArn>) -> bool {
        [filer, user].iter().flatten().any(|u| self.me.may_be(u))
    }

    /// Request `id` as Systems Manager and changegate's record hold it.
    async fn request(&self, id: &str) -> Result<Found, CliError> {
        let cr = ChangeRequestId::parse(id).map_err(|_| {
            CliError::Usage(format!(
                "'{id}' is not a request id (e.g. d0585556-80f6-4522-8dad-dada6d45b67d)"
            ))
        })?;
        let exec = self.requests().execution(id).await?.ok_or_else(|| {
            CliError::NotFound(format!(
                "Systems Manager has no request {id} in this account and region"
            ))
        })?;
        let record = self.records().get(&cr).await?;
        Ok(Found { exec, record })
    }

    fn view(&self, id: &str, found: &Found, now: DateTime<Utc>) -> View {
        let approvers: Vec<String> = self
            .deployment
            .grant
            .approvals
            .approvers
            .iter()
            .map(ToString::to_string)
            .collect();
        view(
            id,
            &found.exec,
            found.record.as_ref(),
            &approvers,
            self.deployment.grant.target_role.as_str(),
            now,
        )
    }
}

struct Found {
    exec: Execution,
    record: Option<DecisionRecord>,
}

impl Found {
    fn request(&self) -> Option<AccessRequest> {
        self.exec.access_request().and_then(Result::ok)
    }

    /// Who filed it (Systems Manager's `ExecutedBy`), as a user.
    fn filer(&self) -> Option<UserArn> {
        self.exec.executed_by.as_deref().and_then(UserArn::parse)
    }
}

fn refused(r: changegate::refusal::Refusal) -> CliError {
    CliError::Refused(format!("{} ({})", r, r.code()))
}

/// A window as people read it: UTC, and local when it differs.
fn shown_window(start: DateTime<FixedOffset>, end: DateTime<FixedOffset>) -> String {
    format!(
        "{} to {} ({})",
        human_time(start),
        human_time(end),
        human_duration(end - start)
    )
}

/// What a person asks for, as typed.
pub struct Ask<'a> {
    pub account: &'a str,
    pub length: &'a str,
    pub start: Option<&'a str>,
    pub reason: &'a str,
    pub user: Option<&'a str>,
}

/// `changegate request`: checked up front as grant will check it, then filed
/// as the request runbook's execution (or, with `--dry-run`, only checked;
/// with `--wait`, followed until it is decided).
pub async fn request(
    ctx: &Context,
    ask: &Ask<'_>,
    dry_run: bool,
    wait: bool,
) -> Result<Done, CliError> {
    let Ask {
        account,
        length,
        start,
        reason,
        user,
    } = *ask;
    let d = &ctx.deployment;
    let runbook = d.request_runbook()?;
    let me = ctx.me_as_user()?;
    let account = d.account(account)?;
    let length = parse_duration(length).map_err(|e| CliError::Usage(e.to_string()))?;
    let start = parse_start(start, Local::now().fixed_offset())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let end = start + length;
    let user = user.unwrap_or(me.user.as_str());
    let extra = [(PARAM_REASON, reason.to_owned())];
    let raw = runbook_parameters(
        user,
        account.as_str(),
        (start, end),
        if reason.is_empty() { &[] } else { &extra },
    );
    let now = Utc::now();
    let asked = parse_parameters(&raw, true).map_err(refused)?;
    request_rules(&asked, &d.grant, now).map_err(refused)?;
    let beneficiary = ctx.home.user(&asked.user);
    if beneficiary != *me && !d.grant.allow_delegated {
        return Err(refused(changegate::refusal::Refusal::NotTheRequester {
            user: asked.user.to_string(),
            requester: me.user.to_string(),
        }));
    }
    let alias = d
        .alias_of(account.as_str())
        .map(|a| format!("{a}, "))
        .unwrap_or_default();
    let what = format!(
        "{user} in account {alias}{account}, role {}: {}",
        d.grant.target_role,
        shown_window(asked.window.start(), asked.window.end())
    );
    if dry_run {
        return dry_run_checks(ctx, runbook, me, &beneficiary, asked, &what).await;
    }
    let (id, queued, waiting) = file(ctx, runbook, raw).await?;
    let filed = format!("requested {id}\n  {what}\n  {waiting}");
    if wait {
        eprintln!("{filed}");
        return follow(ctx, &id).await;
    }
    Ok(Done {
        text: format!("{filed}\n  next: changegate status {id}"),
        json: json!({"id": id, "phase": Phase::Waiting, "queued": queued, "user": user, "account": account.as_str(),
            "role": d.grant.target_role.as_str(), "start": asked.window.start_utc(), "end": asked.window.end_utc()}),
        exit: Exit::Ok,
    })
}

/// The request runbook's parameters: `user`'s access to `account` over
/// `window` (RFC 3339, each end in its own offset, as the requester wrote
/// it), and the optional ones in `extra`.
fn runbook_parameters(
    user: &str,
    account: &str,
    window: (DateTime<FixedOffset>, DateTime<FixedOffset>),
    extra: &[(&str, String)],
) -> RawParameters {
    let fmt = |t: DateTime<FixedOffset>| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    [
        (PARAM_USER, user.to_owned()),
        (PARAM_ACCOUNT, account.to_owned()),
        (PARAM_START, fmt(window.0)),
        (PARAM_END, fmt(window.1)),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .map(|(k, v)| (k.to_owned(), vec![v]))
    .collect()
}

/// Files the request runbook with `raw`: its execution id, whether Systems
/// Manager queued it, and what it waits for, in words.
async fn file(
    ctx: &Context,
    runbook: &str,
    raw: RawParameters,
) -> Result<(String, bool, String), CliError> {
    let d = &ctx.deployment;
    let id = ctx
        .ssm
        .start_automation_execution()
        .document_name(runbook)
        .set_parameters(Some(raw.into_iter().collect()))
        .send()
        .await
        .map_err(|e| CliError::from(Fault::aws("ssm:StartAutomationExecution")(e)))?
        .automation_execution_id
        .unwrap_or_default();
    // Over the account's concurrent-automation quota, Systems Manager queues
    // the execution (Pending): say so, rather than that approvers were asked.
    let queued = ctx
        .requests()
        .execution(&id)
        .await?
        .is_some_and(|e| e.status == changegate::status::Status::Pending);
    let waiting = if queued {
        format!(
            "queued by Systems Manager: the account already runs its maximum of concurrent automations (100 by default); {} will be asked once it starts",
            approvers_line(d)
        )
    } else {
        format!("waiting for approval by {}", approvers_line(d))
    };
    Ok((id, queued, waiting))
}

/// `changegate extend ID --by LENGTH [--reason]`: a linked request (the
/// request runbook's `Extends`) from the original start until the end plus
/// LENGTH, approved by the same rules and so held to the deployment's maximum
/// duration counted from the original start; once it is granted, grant
/// retires the earlier grant (its policy is then redundant), cutting no
/// session, so the access goes on without a gap.
pub async fn extend(
    ctx: &Context,
    id: &str,
    by: &str,
    reason: &str,
    wait: bool,
) -> Result<Done, CliError> {
    let d = &ctx.deployment;
    let runbook = d.request_runbook()?;
    let found = ctx.request(id).await?;
    let Some(earlier) = found.request() else {
        return Err(CliError::Refused(format!(
            "{id} is not an access request changegate can read, so it cannot be extended"
        )));
    };
    if !ctx.is_mine(found.filer(), Some(ctx.home.user(&earlier.user))) {
        return Err(CliError::Refused(format!(
            "{id} is not yours: only its requester or the person it is for may extend it"
        )));
    }
    let now = Utc::now();
    let v = ctx.view(id, &found, now);
    if !(v.granted && matches!(v.phase, Phase::Granted | Phase::Approved)) {
        return Err(CliError::Refused(format!(
            "{id} has no grant to extend ({}); ask anew: changegate request ACCOUNT --for 1h",
            v.summary
        )));
    }
    let by = parse_duration(by).map_err(|e| CliError::Usage(e.to_string()))?;
    let (start, end) = (earlier.window.start(), earlier.window.end() + by);
    let why: String = if reason.is_empty() {
        format!("extends {id}")
    } else {
        format!("extends {id}: {reason}")
    }
    .chars()
    .take(changegate::request::MAX_REASON_CHARS)
    .collect();
    let raw = runbook_parameters(
        earlier.user.as_str(),
        earlier.account.as_str(),
        (start, end),
        &[
            (PARAM_REASON, why),
            (changegate::request::PARAM_EXTENDS, id.to_owned()),
        ],
    );
    let asked = parse_parameters(&raw, true).map_err(refused)?;
    request_rules(&asked, &d.grant, now).map_err(|r| {
        CliError::Refused(format!(
            "{} ({}; an extension counts from the original start, {})",
            r,
            r.code(),
            human_time(start)
        ))
    })?;
    let (new, queued, waiting) = file(ctx, runbook, raw).await?;
    let filed = format!(
        "requested {new}, extending {id}\n  {} in account {}: {}\n  {waiting}; once granted, {id} is replaced by it without a gap",
        earlier.user,
        earlier.account,
        shown_window(start, end)
    );
    if wait {
        eprintln!("{filed}");
        return follow(ctx, &new).await;
    }
    Ok(Done {
        text: format!("{filed}\n  next: changegate status {new}"),
        json: json!({"id": new, "extends": id, "phase": Phase::Waiting, "queued": queued,
            "start": asked.window.start_utc(), "end": asked.window.end_utc()}),
        exit: Exit::Ok,
    })
}

fn approvers_line(d: &Deployment) -> String {
    d.grant
        .approvals
        .approvers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What grant would decide, read-only: the user's eligibility, permissions
/// boundary and inline-policy budget (IAM), and the open-request limit (SSM).
async fn dry_run_checks(
    ctx: &Context,
    runbook: &str,
    me: &UserArn,
    beneficiary: &UserArn,
    request: AccessRequest,
    what: &str,
) -> Result<Done, CliError> {
    let d = &ctx.deployment;
    let iam = Iam::new(aws_sdk_iam::Client::new(&ctx.sdk));
    let record: UserRecord = iam
        .user_record(beneficiary.user.as_str(), ELIGIBILITY_TAG)
        .await?
        .ok_or_else(|| {
            CliError::Refused(format!(
                "there is no IAM user {} in account {}",
                beneficiary.user, ctx.home.account
            ))
        })?;
    let open = ctx.requests().open_runs(runbook).await?;
    // A request not filed yet counts as the newest.
    changegate::admission::admit("", runbook, me, &open, d.grant.max_open_requests)
        .map_err(refused)?;
    let checked = Checked {
        // A placeholder: the request has no id until it is filed.
        id: ChangeRequestId::parse("00000000-0000-0000-0000-000000000000")
            .map_err(|_| CliError::Usage("id".into()))?,
        source: Source::Automation,
        request,
        requester: me.clone(),
        beneficiary: beneficiary.clone(),
        approvers: Vec::new(),
    };
    let role = match decide_grant(&checked, &record, &d.grant).map_err(refused)? {
        changegate::check::Verdict::Grant(g) | changegate::check::Verdict::AlreadyGranted(g) => {
            g.role
        }
    };
    Ok(Done {
        text: format!(
            "dry run: changegate would accept this request (nothing was filed)\n  {what}\n  role {role}; eligibility, boundary, policy budget and open-request limit pass\n  it still needs approval by {}",
            approvers_line(d)
        ),
        json: json!({"dry_run": true, "accepted": true, "role": role.as_str()}),
        exit: Exit::Ok,
    })
}

/// How often `--wait` asks Systems Manager and changegate again.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Follows request `id` until changegate has decided it (or it ended), with
/// one progress line (rewritten in place on a terminal); ends as `status`.
async fn follow(ctx: &Context, id: &str) -> Result<Done, CliError> {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let found = ctx.request(id).await?;
        let v = ctx.view(id, &found, Utc::now());
        if v.summary != last {
            if terminal {
                eprint!("\r\x1b[2K{}", v.summary);
            } else {
                eprintln!("{}", v.summary);
            }
            let _ = std::io::stderr().flush();
            last.clone_from(&v.summary);
        }
        let decided = found
            .record
            .as_ref()
            .is_some_and(|r| r.state.is_some() || r.ended.is_some());
        if decided || matches!(v.phase, Phase::Refused | Phase::Ended) {
            if terminal {
                eprintln!();
            }
            return Ok(Done {
                text: view_text(&v),
                json: json!(v),
                exit: v.exit(),
            });
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// `changegate status [ID]`: one request, or every open request I filed.
pub async fn status(ctx: &Context, id: Option<&str>) -> Result<Done, CliError> {
    if let Some(id) = id {
        let found = ctx.request(id).await?;
        let v = ctx.view(id, &found, Utc::now());
        return Ok(Done {
            text: view_text(&v),
            json: json!(v),
            exit: v.exit(),
        });
    }
    let mine = |run: &OpenRun| {
        run.executed_by
            .as_deref()
            .and_then(Principal::parse)
            .is_some_and(|p| p == ctx.me)
    };
    let views = recent_views(ctx, Recent::Any, mine).await?;
    Ok(listed(
        views,
        "you have no recent requests; ask with: changegate request ACCOUNT --for 1h --reason WHY",
    ))
}

/// Which open requests `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    All,
    /// Waiting for a decision, and not the caller's own (filed by or for them).
    Pending,
    /// Granted: live now, or approved for a window that has not started.
    Active,
}

/// `changegate list [--pending | --active]`: the account's requests that are
/// not over: waiting for a decision, or granted (live or to come).
pub async fn list(ctx: &Context, only: Only) -> Result<Done, CliError> {
    let which = match only {
        Only::Pending => Recent::Open,
        Only::All | Only::Active => Recent::Any,
    };
    let views: Vec<View> = recent_views(ctx, which, |_| true)
        .await?
        .into_iter()
        .filter(|v| !matches!(v.phase, Phase::Ended | Phase::Refused))
        .collect();
    let own = |v: &View| {
        let user = v
            .user
            .as_deref()
            .and_then(|u| IamUserName::parse(u).ok())
            .map(|u| ctx.home.user(&u));
        ctx.is_mine(v.filed_by.as_deref().and_then(UserArn::parse), user)
    };
    let granted = |v: &View| v.granted && matches!(v.phase, Phase::Granted | Phase::Approved);
    let views: Vec<View> = views
        .into_iter()
        .filter(|v| match only {
            Only::All => true,
            Only::Pending => v.phase == Phase::Waiting && !own(v),
            Only::Active => granted(v),
        })
        .collect();
    let none = match only {
        Only::All => "no request in this account waits or is granted",
        Only::Pending => "nothing waits for your decision",
        Only::Active => "no live grants",
    };
    Ok(listed(views, none))
}

/// Which request runbook executions a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recent {
    /// Still open: waiting for a decision (or queued).
    Open,
    /// Any status, started recently enough to hold a window that is not
    /// over: a granted request's execution has ended, so its status says
    /// nothing about its window.
    Any,
}

/// The views of the request runbook executions `which` reads and `keep`
/// selects. A request decided long ago is not read: a window that is not over
/// was filed at most the approval wait (7 days at most), the furthest start
/// ahead and the longest window ago.
async fn recent_views(
    ctx: &Context,
    which: Recent,
    keep: impl Fn(&OpenRun) -> bool,
) -> Result<Vec<View>, CliError> {
    let runbook = ctx.deployment.request_runbook()?;
    let now = Utc::now();
    let runs = match which {
        Recent::Open => ctx.requests().open_runs(runbook).await?,
        Recent::Any => {
            let grant = &ctx.deployment.grant;
            let horizon = chrono::TimeDelta::days(7) + grant.max_start_ahead + grant.max_duration;
            ctx.requests()
                .runs(runbook, None, Some(now - horizon))
                .await?
        }
    };
    let mut views = Vec::new();
    for run in runs.into_iter().filter(|r| keep(r)) {
        let found = ctx.request(&run.id).await?;
        views.push(ctx.view(&run.id, &found, now));
    }
    Ok(views)
}

fn listed(views: Vec<View>, none: &str) -> Done {
    let text = if views.is_empty() {
        none.to_owned()
    } else {
        views.iter().map(view_text).collect::<Vec<_>>().join("\n\n")
    };
    Done {
        text,
        json: json!(views),
        exit: Exit::Ok,
    }
}

fn view_text(v: &View) -> String {
    let mut lines = vec![format!("{}: {}", v.id, v.summary)];
    if let (Some(user), Some(account)) = (&v.user, &v.account) {
        lines.push(format!(
            "  {user} in account {account}, role {}",
            v.role.as_deref().unwrap_or("?")
        ));
    }
    if let Some(by) = &v.filed_by {
        lines.push(format!("  filed by {by}"));
    }
    if let Some(reason) = &v.reason {
        lines.push(format!("  reason: {reason}"));
    }
    lines.push(format!("  next: {}", v.next));
    lines.join("\n")
}

/// `changegate approve|reject ID`: as the caller, so Systems Manager records
/// who decided; never one's own request (changegate would not count it).
pub async fn decide(
    ctx: &Context,
    id: &str,
    approve: bool,
    comment: &str,
) -> Result<Done, CliError> {
    let found = ctx.request(id).await?;
    let v = ctx.view(id, &found, Utc::now());
    let own = ctx.is_mine(
        found.filer(),
        found.request().map(|r| ctx.home.user(&r.user)),
    );
    if own && approve {
        return Err(CliError::Refused(format!(
            "{id} is your own request ({}): changegate does not count an approval by its requester or beneficiary; ask another approver ({})",
            v.user.as_deref().unwrap_or("?"),
            approvers_line(&ctx.deployment)
        )));
    }
    if found.exec.status != Status::Waiting {
        return Err(CliError::Refused(format!(
            "{id} is not waiting for a decision: {}",
            v.summary
        )));
    }
    let mut signal = ctx
        .ssm
        .send_automation_signal()
        .automation_execution_id(id)
        .signal_type(if approve {
            SignalType::Approve
        } else {
            SignalType::Reject
        });
    if !comment.is_empty() {
        signal = signal.payload("Comment", vec![comment.to_owned()]);
    }
    match signal.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_invalid_automation_signal_exception()) =>
        {
            return Err(CliError::Refused(format!(
                "Systems Manager did not take your decision on {id}: you may not be one of its approvers ({})",
                approvers_line(&ctx.deployment)
            )));
        }
        Err(e) => return Err(Fault::aws("ssm:SendAutomationSignal")(e).into()),
    }
    let verb = if approve { "approved" } else { "rejected" };
    Ok(Done {
        text: format!(
            "{verb} {id} as {}\n  {} in account {}, {}",
            ctx.me_arn,
            v.user.as_deref().unwrap_or("?"),
            v.account.as_deref().unwrap_or("?"),
            match (v.start, v.end) {
                (Some(s), Some(e)) => shown_window(s.fixed_offset(), e.fixed_offset()),
                _ => String::new(),
            }
        ),
        json: json!({"id": id, "decision": verb, "by": ctx.me_arn}),
        exit: Exit::Ok,
    })
}

/// `changegate end ID [--reason]`: ends my access now. A request still
/// open (waiting for its approvers) is withdrawn: its execution is stopped,
/// which ends it for changegate too. A decided one (its execution has
/// finished) is ended with the end runbook, which revoke authenticates from
/// Systems Manager's records (I filed it, or it is for me).
pub async fn end(ctx: &Context, id: &str, reason: &str) -> Result<Done, CliError> {
    let found = ctx.request(id).await?;
    let mine = ctx.is_mine(
        found.filer(),
        found.request().map(|r| ctx.home.user(&r.user)),
    );
    if !mine {
        return Err(CliError::Refused(format!(
            "{id} is not yours: only its requester or the person it is for may end it (operators: changegate revoke {id} --reason WHY)"
        )));
    }
    let open = changegate::admission::OPEN_STATUSES.contains(&found.exec.status.as_str());
    if open && ctx.requests().stop(id).await? {
        return Ok(Done {
            text: format!(
                "withdrew {id}: its execution is stopped, so nothing will be granted for it (and any access is removed within a minute; you will get a message)"
            ),
            json: json!({"id": id, "withdrawn": true}),
            exit: Exit::Ok,
        });
    }
    let run = start_end_runbook(ctx, id, reason).await?;
    Ok(Done {
        text: format!(
            "ending {id}: started the end runbook ({run}); the access is removed at once and you will get a message (changegate status {id})"
        ),
        json: json!({"id": id, "end_run": run}),
        exit: Exit::Ok,
    })
}

/// Starts the stack's end runbook for request `id`; its execution id.
async fn start_end_runbook(ctx: &Context, id: &str, reason: &str) -> Result<String, CliError> {
    let runbook = ctx.deployment.operators.runbook.clone();
    if runbook.is_empty() {
        return Err(CliError::Usage(format!(
            "stack {} has no end runbook (CHANGEGATE_OPERATOR_RUNBOOK is empty in its settings)",
            ctx.deployment.stack
        )));
    }
    let mut params = std::collections::HashMap::new();
    params.insert(
        changegate::operator::PARAM_CHANGE_REQUEST_ID.to_owned(),
        vec![id.to_owned()],
    );
    params.insert(
        changegate::operator::PARAM_REASON.to_owned(),
        vec![reason.to_owned()],
    );
    Ok(ctx
        .ssm
        .start_automation_execution()
        .document_name(&runbook)
        .set_parameters(Some(params))
        .send()
        .await
        .map_err(|e| CliError::from(Fault::aws("ssm:StartAutomationExecution")(e)))?
        .automation_execution_id
        .unwrap_or_default())
}

/// `changegate revoke ID --reason`: the end runbook, which checks that the
/// caller is an operator from its own execution record.
pub async fn revoke(ctx: &Context, id: &str, reason: &str) -> Result<Done, CliError> {
    let run = start_end_runbook(ctx, id, reason).await?;
    Ok(Done {
        text: format!(
            "revoking {id}: started the end runbook ({run}); its EndAccess step says what was done (aws ssm get-automation-execution --automation-execution-id {run})"
        ),
        json: json!({"id": id, "operator_run": run}),
        exit: Exit::Ok,
    })
}

/// `changegate assume ID`: a session of the granted role, named as the grant
/// requires, for at most the rest of the window.
pub async fn assume(
    ctx: &Context,
    id: &str,
    credential_process: bool,
    command: &[String],
) -> Result<Done, CliError> {
    let now = Utc::now();
    let found = ctx.request(id).await?;
    let v = ctx.view(id, &found, now);
    match v.phase {
        Phase::Granted => {}
        Phase::Approved | Phase::Waiting => {
            return Err(CliError::Waiting(format!(
                "{id} is not usable yet: {}",
                v.summary
            )));
        }
        Phase::Refused | Phase::Ended => {
            return Err(CliError::Refused(format!(
                "{id} gives no access: {}",
                v.summary
            )));
        }
    }
    let grant = found
        .record
        .as_ref()
        .and_then(|r| r.grant.as_ref())
        .ok_or_else(|| {
            CliError::Waiting(format!(
                "{id}: changegate has not recorded the grant yet; try again in a minute"
            ))
        })?;
    // The name the grant's policy requires (the user's name as IAM had it).
    let session = grant.beneficiary.clone();
    let left = v.end.map_or(SESSION_MIN_SECS, |e| (e - now).num_seconds());
    let secs = left.clamp(SESSION_MIN_SECS, SESSION_MAX_SECS);
    let role_arn = format!(
        "arn:{}:iam::{}:role/{}",
        ctx.home.partition, grant.account, grant.role
    );
    let out = aws_sdk_sts::Client::new(&ctx.sdk)
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name(&session)
        .duration_seconds(i32::try_from(secs).unwrap_or(3600))
        .send()
        .await
        .map_err(|e| CliError::from(Fault::aws("sts:AssumeRole")(e)))?;
    let creds = out.credentials.ok_or_else(|| {
        CliError::from(Fault::Unexpected {
            operation: "sts:AssumeRole",
            why: "no credentials in the answer".into(),
        })
    })?;
    let expires = DateTime::<Utc>::from_timestamp(creds.expiration.secs(), 0).unwrap_or(now);
    let (key, secret, token) = (
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
    );
    if !command.is_empty() {
        // The profile goes (its keys are not the session's), so the region
        // it gave is handed on explicitly: both names, as the AWS CLI and
        // the SDKs read one or the other.
        let mut child = std::process::Command::new(&command[0]);
        child
            .args(&command[1..])
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_SESSION_TOKEN", &token);
        if let Some(region) = ctx.sdk.region() {
            child
                .env("AWS_REGION", region.as_ref())
                .env("AWS_DEFAULT_REGION", region.as_ref());
        }
        let status = child
            .status()
            .map_err(|e| CliError::Usage(format!("cannot run {}: {e}", command[0])))?;
        // The command's own exit status, as `env` or `sudo` pass it on.
        std::process::exit(status.code().unwrap_or(1));
    }
    let exports = format!(
        "export AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_SESSION_TOKEN={token}\n# {role_arn} as session {session}, until {}",
        human_time(expires.fixed_offset())
    );
    let answer = json!({"Version": 1, "AccessKeyId": key, "SecretAccessKey": secret,
        "SessionToken": token, "Expiration": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    Ok(Done {
        // credential_process reads JSON on stdout whatever --output says.
        text: if credential_process {
            answer.to_string()
        } else {
            exports
        },
        json: answer,
        exit: Exit::Ok,
    })
}
