//! revoke: removes grants. One way to remove ([`Revocations::revoke`]), used
//! at a window's end (its expiry schedule, or the one-minute sweep), on an
//! early end that Systems Manager confirms, on an operator's request, and by
//! grant when a request ended while it was being granted.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::adapters::{Bus, Fault, Iam, Records, Schedules, Sessions, Ssm};
use crate::metrics;
use crate::sdk;
use changegate::config::RevokeConfig;
use changegate::events::{AccessRevoked, Cause, ChangegateEvent, ExpiryTarget};
use changegate::ids::{ChangeRequestId, IamUserName, RoleName};
use changegate::policy::{Grant, PARTITION, POLICY_PREFIX, policy_name};
use changegate::request::PARAM_USER;
use changegate::session::SessionCut;
use changegate::sweep::sort_grants;
use changegate::text::shown;
use changegate::trigger::{OperatorRevoke, RevokeInput};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SweepReport {
    pub pages_read: u32,
    pub users_scanned: u32,
    pub active_grants: usize,
    pub revoked: Vec<String>,
    pub already_gone: Vec<String>,
}

/// What one invocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RevokeOutcome {
    Swept(SweepReport),
    Revoked {
        change_request_id: String,
        user: String,
        policy_name: String,
        cause: String,
        revocation_lag_ms: Option<i64>,
    },
    Ignored {
        reason: String,
    },
}

fn ignored(id: &str, reason: String) -> RevokeOutcome {
    info!(change_request_id = %shown(id), outcome = "ignored", reason = %reason, "nothing to revoke");
    RevokeOutcome::Ignored { reason }
}

/// What a session cut did in the production account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutOutcome {
    /// The person's sessions are cut at the window's end (or now).
    Cut,
    /// The role's inline-policy budget was full: every session of the role
    /// issued before now is denied instead (IAM's "revoke active sessions").
    AllSessionsCut,
    /// The target role does not exist there: no session of it can be live.
    NoSuchRole,
}

/// The session cut (issue 10): a Deny on the target role in the production
/// account for the person's sessions issued before the cut, effective from
/// the cut on, so that no session outlives its window. Written when access
/// is granted (effective at the window's end, whatever runs then), moved to
/// now by an early end or an operator, and restored at the window's end.
pub struct SessionCuts {
    sessions: Sessions,
    /// The function using it, for metrics.
    function: &'static str,
}

impl SessionCuts {
    pub fn new(sdk: &aws_config::SdkConfig, cutter_role: RoleName, function: &'static str) -> Self {
        Self {
            sessions: Sessions::new(sdk, PARTITION, cutter_role, function),
            function,
        }
    }

    /// The cut at the end of `grant`'s window (idempotent: also restores a lost one).
    pub async fn at_end(&self, grant: &Grant, now: DateTime<Utc>) -> Result<CutOutcome, Fault> {
        let (start, end) = (grant.window.start_utc(), grant.window.end_utc());
        self.update(grant, now, |cut| cut.extend(&grant.user, start, end, now))
            .await
    }

    /// The cut moved to now: the request ended early, or an operator ended it.
    pub async fn now(&self, grant: &Grant, now: DateTime<Utc>) -> Result<CutOutcome, Fault> {
        self.update(grant, now, |cut| cut.cut_now(&grant.user, now))
            .await
    }

    async fn update(
        &self,
        grant: &Grant,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut SessionCut),
    ) -> Result<CutOutcome, Fault> {
        const OP: &str = "iam:PutRolePolicy";
        let production = self.sessions.open(&grant.account).await?;
        let Some(role) = production.target_role(&grant.role).await? else {
            warn!(change_request_id = %grant.change_request, account = %grant.account, role = %grant.role, "no such target role; no session to cut");
            return Ok(CutOutcome::NoSuchRole);
        };
        let mut cut = SessionCut::from_role(role.cut_document()).map_err(Fault::unexpected(OP))?;
        change(&mut cut);
        cut.collect(now, role.max_session);
        let rendered = cut
            .render(role.others_chars(), now)
            .map_err(Fault::unexpected(OP))?;
        production.write(&grant.role, &rendered.written).await?;
        let Some(fallback) = rendered.fallback else {
            info!(change_request_id = %grant.change_request, user = %grant.user, account = %grant.account, role = %grant.role, "session cut written");
            return Ok(CutOutcome::Cut);
        };
        metrics::count(self.function, "SessionCutFallbacks", None);
        error!(
            change_request_id = %grant.change_request, account = %grant.account, role = %grant.role,
            all_before = %fallback.all_before, dropped = ?fallback.dropped,
            "the role's inline policy budget is full: every session of the role issued before now is denied"
        );
        Ok(CutOutcome::AllSessionsCut)
    }
}

/// Removing a grant: the policy, its expiry schedule, the session cut, the
/// record, the log, the metric and the announcement, in one place.
pub struct Revocations {
    pub iam: Iam,
    pub records: Records,
    pub bus: Bus,
    pub schedules: Schedules,
    pub expiry_group: Option<String>,
    /// `None` when the deployment cuts no sessions (no production-account stack).
    pub cuts: Option<SessionCuts>,
}

/// Where a function's revocations write: its table, bus, schedule group and
/// (when sessions are cut) the cutter role in the production accounts.
pub struct RevocationSettings<'a> {
    pub table: &'a str,
    pub bus: &'a str,
    pub expiry_group: Option<String>,
    pub session_cutter: Option<RoleName>,
    /// The function, for metrics and production's CloudTrail.
    pub function: &'static str,
}

impl Revocations {
    pub fn new(sdk: &aws_config::SdkConfig, settings: RevocationSettings<'_>) -> Self {
        Self {
            iam: Iam::new(aws_sdk_iam::Client::new(sdk)),
            records: Records::new(aws_sdk_dynamodb::Client::new(sdk), settings.table),
            bus: Bus::new(aws_sdk_eventbridge::Client::new(sdk), settings.bus),
            schedules: Schedules::new(aws_sdk_scheduler::Client::new(sdk)),
            expiry_group: settings.expiry_group,
            cuts: settings
                .session_cutter
                .map(|role| SessionCuts::new(sdk, role, settings.function)),
        }
    }

    /// Removes `grant` for `cause` at `now`. Returns the revocation when this
    /// call removed the policy, `None` when it was already gone.
    pub async fn revoke(
        &self,
        grant: &Grant,
        cause: &Cause,
        now: DateTime<Utc>,
    ) -> Result<Option<AccessRevoked>, Fault> {
        let name = grant.policy_name();
        let removed = self
            .iam
            .delete_user_policy(grant.user.as_str(), &name)
            .await?;
        // Then live sessions: at the window's end the cut written at grant
        // time applies (restored if lost); any other cause moves it to now. A
        // production account out of reach fails the invocation (the grant is
        // already gone), so the cut is retried and alarmed like any revocation.
        let cut = match (&self.cuts, cause) {
            (None, _) => None,
            (Some(cuts), Cause::WindowEnded) => Some(cuts.at_end(grant, now).await?),
            (Some(cuts), _) => Some(cuts.now(grant, now).await?),
        };
        if *cause != Cause::WindowEnded {
            if let Some(group) = &self.expiry_group {
                self.schedules.delete(group, &name).await?;
            }
        }
        let mut revoked = AccessRevoked::of(grant, now, cause);
        revoked.sessions = cut.map(|c| sessions_note(&c, grant, cause, now));
        let first = self
            .records
            .revoked(&grant.change_request, cause, now, revoked.revocation_lag_ms)
            .await?;
        if !removed && !first {
            info!(change_request_id = %grant.change_request, user = %grant.user, outcome = "already-gone", "grant already removed");
            return Ok(None);
        }
        info!(
            change_request_id = %grant.change_request,
            user = %grant.user,
            account = %grant.account,
            role = %grant.role,
            end = %grant.window.end_utc(),
            cause = cause.as_str(),
            revocation_lag_ms = ?revoked.revocation_lag_ms,
            outcome = "revoked",
            "access revoked"
        );
        metrics::count("revoke", "Revocations", Some(("Cause", cause.as_str())));
        if let Some(lag) = revoked.revocation_lag_ms {
            metrics::emit(
                "revoke",
                "RevocationLag",
                lag as f64,
                metrics::Unit::Milliseconds,
                None,
            );
        }
        self.bus
            .put(&ChangegateEvent::Revoked(revoked.clone()))
            .await?;
        Ok(Some(revoked))
    }

    /// The changegate grant `user` holds for request `id`, or why there is none.
    pub async fn held(
        &self,
        user: &IamUserName,
        id: &ChangeRequestId,
    ) -> Result<Result<Grant, String>, Fault> {
        let name = policy_name(id);
        let Some(document) = self.iam.user_policy(user.as_str(), &name).await? else {
            return Ok(Err(format!("{user} holds no grant for this request")));
        };
        Ok(Grant::from_policy(user, &name, &document).map_err(|why| {
            format!("{name} on {user} is not a changegate grant ({why}); left alone")
        }))
    }

    /// Ends request `id` for `cause` (the tombstone, so that no grant can
    /// start after it), then removes the grant of `user` if there is one.
    pub async fn end(
        &self,
        id: &ChangeRequestId,
        user: Option<IamUserName>,
        cause: &Cause,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, Fault> {
        self.records.end(id, cause, now).await?;
        let user = match user {
            Some(user) => user,
            None => match self.records.get(id).await?.and_then(|r| r.to_grant()) {
                Some(g) => g.user,
                None => {
                    return Ok(ignored(
                        id.as_str(),
                        "no grant was decided for this request; it is closed to grants".to_owned(),
                    ));
                }
            },
        };
        let grant = match self.held(&user, id).await? {
            Ok(grant) => grant,
            Err(none) => match self
                .records
                .get(id)
                .await?
                .filter(|r| r.revoked.is_none())
                .and_then(|r| r.to_grant())
            {
                // Removed by an earlier attempt that then failed (the
                // production account out of reach): finish it, cut and announce.
                Some(grant) => grant,
                None => {
                    if let Some(group) = &self.expiry_group {
                        self.schedules.delete(group, &policy_name(id)).await?;
                    }
                    return Ok(ignored(id.as_str(), none));
                }
            },
        };
        let revoked = self.revoke(&grant, cause, now).await?;
        Ok(outcome(&grant, cause, revoked))
    }
}

/// What happened to live sessions, in words for the notification.
fn sessions_note(cut: &CutOutcome, grant: &Grant, cause: &Cause, now: DateTime<Utc>) -> String {
    // A cut now is at the next whole second (see session.rs); at the end, the end.
    let at = match cause {
        Cause::WindowEnded => grant.window.end_utc(),
        _ => now.with_nanosecond(0).map_or(now, |s| {
            if s == now {
                s
            } else {
                s + chrono::TimeDelta::seconds(1)
            }
        }),
    };
    let at = changegate::window::utc_string(at);
    match cut {
        CutOutcome::Cut => format!(
            "sessions of {} in {}/{} issued before {at} are denied from then on",
            grant.user, grant.account, grant.role
        ),
        CutOutcome::AllSessionsCut => format!(
            "the role's inline-policy budget was full: every session of {}/{} issued before {at} is denied (operators were alerted)",
            grant.account, grant.role
        ),
        CutOutcome::NoSuchRole => format!(
            "{}/{} does not exist: no session to cut",
            grant.account, grant.role
        ),
    }
}

fn outcome(grant: &Grant, cause: &Cause, revoked: Option<AccessRevoked>) -> RevokeOutcome {
    match revoked {
        Some(r) => RevokeOutcome::Revoked {
            change_request_id: grant.change_request.to_string(),
            user: grant.user.to_string(),
            policy_name: grant.policy_name(),
            cause: cause.as_str().to_owned(),
            revocation_lag_ms: r.revocation_lag_ms,
        },
        None => ignored(
            grant.change_request.as_str(),
            "removed meanwhile".to_owned(),
        ),
    }
}

pub struct Revoker {
    pub config: RevokeConfig,
    pub ssm: Ssm,
    pub revocations: Revocations,
}

impl Revoker {
    pub fn new(config: RevokeConfig, sdk: &aws_config::SdkConfig) -> Self {
        let revocations = Revocations::new(
            sdk,
            RevocationSettings {
                table: &config.decisions_table,
                bus: &config.event_bus,
                expiry_group: config.expiry_group.clone(),
                session_cutter: config.session_cutter.clone(),
                function: "revoke",
            },
        );
        Self {
            config,
            ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)),
            revocations,
        }
    }

    /// `deadline` is when Lambda stops the invocation; the sweep starts no
    /// revocation it could not finish before then.
    pub async fn handle(
        &self,
        input: Value,
        now: DateTime<Utc>,
        deadline: Option<SystemTime>,
    ) -> Result<RevokeOutcome, Fault> {
        match RevokeInput::parse(input) {
            RevokeInput::Expiry(target) => self.expire(&target, now).await,
            RevokeInput::Operator(op) => self.operator(&op, now).await,
            RevokeInput::StatusChanged(id) => self.status_changed(&id, now).await,
            RevokeInput::Sweep => self.sweep(now, deadline).await.map(RevokeOutcome::Swept),
        }
    }

    /// A grant's expiry schedule fired: remove that one grant if its window
    /// has ended. (Anything else is left to the sweep, which checks everything.)
    pub async fn expire(
        &self,
        target: &ExpiryTarget,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, Fault> {
        let (Ok(id), Ok(user)) = (
            ChangeRequestId::parse(&target.change_request_id),
            IamUserName::parse(&target.user),
        ) else {
            return Ok(ignored(
                &target.change_request_id,
                "the schedule's input names no valid grant".to_owned(),
            ));
        };
        let grant = match self.revocations.held(&user, &id).await? {
            Ok(grant) => grant,
            Err(none) => return Ok(ignored(id.as_str(), none)),
        };
        if !grant.window.has_ended(now) {
            return Ok(ignored(
                id.as_str(),
                format!(
                    "the window ends at {}; the sweep removes it then",
                    grant.window.end_utc()
                ),
            ));
        }
        let revoked = self
            .revocations
            .revoke(&grant, &Cause::WindowEnded, now)
            .await?;
        Ok(outcome(&grant, &Cause::WindowEnded, revoked))
    }

    /// A request's status changed. Only Systems Manager's word that it ended
    /// removes anything: a forged or stale event removes nothing.
    pub async fn status_changed(
        &self,
        raw_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, Fault> {
        let Ok(id) = ChangeRequestId::parse(raw_id) else {
            return Ok(ignored(raw_id, "not a change request id".to_owned()));
        };
        let Some(exec) = self.ssm.execution(id.as_str()).await? else {
            return Ok(ignored(
                raw_id,
                "Systems Manager has no such request".to_owned(),
            ));
        };
        if !exec.status.ends_access() {
            return Ok(ignored(
                raw_id,
                format!(
                    "Systems Manager reports {}; nothing is removed",
                    exec.status
                ),
            ));
        }
        let user = exec
            .parameters()
            .and_then(|p| p.get(PARAM_USER))
            .into_iter()
            .flatten()
            .find_map(|u| IamUserName::parse(u).ok());
        self.revocations
            .end(&id, user, &Cause::EndedEarly(exec.status.clone()), now)
            .await
    }

    /// An operator ends a request's access now, whatever Systems Manager says.
    pub async fn operator(
        &self,
        op: &OperatorRevoke,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, Fault> {
        let Ok(id) = ChangeRequestId::parse(&op.change_request_id) else {
            return Ok(ignored(
                &op.change_request_id,
                "not a change request id".to_owned(),
            ));
        };
        info!(change_request_id = %id, reason = %op.reason.as_deref().map(shown).unwrap_or_default(), "operator revocation");
        let user = match self.ssm.execution(id.as_str()).await? {
            Some(exec) => exec
                .parameters()
                .and_then(|p| p.get(PARAM_USER))
                .into_iter()
                .flatten()
                .find_map(|u| IamUserName::parse(u).ok()),
            None => None,
        };
        self.revocations.end(&id, user, &Cause::Operator, now).await
    }

    /// One sweep: every grant whose window ended, and every grant whose request
    /// ended (Systems Manager says so, or its record has an end). Keeps going
    /// past a grant it cannot remove, then fails naming every one it could not.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        deadline: Option<SystemTime>,
    ) -> Result<SweepReport, Fault> {
        let listing = self
            .revocations
            .iam
            .user_policies_with_prefix(POLICY_PREFIX)
            .await?;
        let (ended, active) = sort_grants(&listing.policies, now);
        let mut report = SweepReport {
            pages_read: listing.pages,
            users_scanned: listing.users,
            active_grants: active.len(),
            ..SweepReport::default()
        };
        let mut failures = Vec::new();
        // A revocation is at most five calls (read, delete, schedule, record, announce).
        let needed = sdk::OPERATION_TIMEOUT * 5 + Duration::from_secs(1);
        let work: Vec<(&Grant, bool)> = ended
            .iter()
            .map(|g| (g, true))
            .chain(active.iter().map(|g| (g, false)))
            .collect();
        for (done, &(grant, window_ended)) in work.iter().enumerate() {
            if deadline.is_some_and(|d| SystemTime::now() + needed > d) {
                let rest: Vec<String> = work[done..]
                    .iter()
                    .map(|(g, _)| format!("{} on {}", g.policy_name(), g.user))
                    .collect();
                failures.push(format!(
                    "not reached before the invocation's deadline (the next sweep continues): {}",
                    rest.join(", ")
                ));
                break;
            }
            let name = grant.policy_name();
            let cause = if window_ended {
                Some(Cause::WindowEnded)
            } else {
                match self.ended_cause(&grant.change_request).await {
                    Ok(cause) => cause,
                    Err(fault) => {
                        failures.push(format!("{name} on {}: {fault}", grant.user));
                        continue;
                    }
                }
            };
            let Some(cause) = cause else { continue };
            if !window_ended {
                report.active_grants -= 1;
                if let Err(fault) = self
                    .revocations
                    .records
                    .end(&grant.change_request, &cause, now)
                    .await
                {
                    failures.push(format!("{name} on {}: {fault}", grant.user));
                    continue;
                }
            }
            match self.revocations.revoke(grant, &cause, now).await {
                Ok(Some(_)) => report.revoked.push(name),
                Ok(None) => report.already_gone.push(name),
                Err(fault) => failures.push(format!("{name} on {}: {fault}", grant.user)),
            }
        }
        if failures.is_empty() {
            Ok(report)
        } else {
            metrics::emit(
                "revoke",
                "RevocationFailures",
                failures.len() as f64,
                metrics::Unit::Count,
                None,
            );
            error!(
                failures = failures.len(),
                revoked = report.revoked.len(),
                "sweep incomplete"
            );
            Err(Fault::Sweep(failures))
        }
    }

    /// Why an active grant's request is over, if it is: its record's end, or
    /// Systems Manager's status.
    async fn ended_cause(&self, id: &ChangeRequestId) -> Result<Option<Cause>, Fault> {
        if let Some(cause) = self
            .revocations
            .records
            .get(id)
            .await?
            .and_then(|r| r.end_cause())
        {
            return Ok(Some(cause));
        }
        Ok(self
            .ssm
            .execution(id.as_str())
            .await?
            .filter(|e| e.status.ends_access())
            .map(|e| Cause::EndedEarly(e.status)))
    }
}
