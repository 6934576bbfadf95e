//! revoke's handler: removes grants at a window's end (its expiry schedule,
//! or the one-minute sweep), on an early end that Systems Manager confirms,
//! and on an operator's request. Every removal is the core's one revocation
//! path ([`changegate::protocol::revocation`]) run over the AWS ports.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use changegate::config::RevokeConfig;
use changegate::events::{AccessRevoked, Cause, ExpiryTarget};
use changegate::execution::Execution;
use changegate::fault::Fault;
use changegate::ids::{ChangeRequestId, IamUserId, IamUserName};
use changegate::operator::{NotAnOperator, authenticate, may_end};
use changegate::policy::{Grant, POLICY_PREFIX, policy_name};
use changegate::ports::{Ledger, Requests, UserGrants};
use changegate::protocol::ending::{Ended, Ending, Expiry, SweepItem};
use changegate::protocol::revocation::{Reach, Revocation, Revoked};
use changegate::protocol::{Invocation, Machine, run};
use changegate::record::EndedBy;
use changegate::request::PARAM_USER;
use changegate::sweep::sort_grants;
use changegate::text::shown;
use changegate::trigger::RevokeInput;

use crate::metrics;
use crate::ports::{AwsPorts, Settings};
use crate::sdk;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SweepReport {
    pub pages_read: u32,
    pub users_scanned: u32,
    pub active_grants: usize,
    pub revoked: Vec<String>,
    pub already_gone: Vec<String>,
    /// Active grants whose check failed (a throttle, say): nothing was due
    /// that is known of; the next minute's sweep checks them again.
    pub checks_deferred: Vec<String>,
    /// Revocations another invocation recorded but could not announce
    /// (its lease ran out), announced by this sweep.
    pub announced_late: Vec<String>,
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
    /// A request to end access early that is not an authentic one (not the
    /// end runbook, or started by someone who may not end that request):
    /// nothing was removed.
    Refused {
        reason_code: String,
        reason: String,
    },
}

fn ignored(id: &str, reason: String) -> RevokeOutcome {
    info!(change_request_id = %shown(id), outcome = "ignored", reason = %reason, "nothing to revoke");
    RevokeOutcome::Ignored { reason }
}

fn refused(code: &str, reason: String) -> RevokeOutcome {
    warn!(outcome = "refused", reason_code = code, reason = %reason, "not an authentic request to end; nothing removed");
    RevokeOutcome::Refused {
        reason_code: code.to_owned(),
        reason,
    }
}

/// The user a request names (`IAMUserName`), as Systems Manager records it.
fn requested_user(exec: &Execution) -> Option<IamUserName> {
    exec.parameters()
        .and_then(|p| p.get(PARAM_USER))
        .into_iter()
        .flatten()
        .find_map(|u| IamUserName::parse(u).ok())
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

/// Removing grants over the AWS ports: what revoke does, and grant's undo too.
pub struct Revocations {
    pub ports: AwsPorts,
    reach: Reach,
}

impl Revocations {
    pub fn new(ports: AwsPorts) -> Self {
        let reach = Reach {
            cuts: ports.cutter.is_some(),
            expiry: ports.expiry_group.is_some(),
        };
        Self { ports, reach }
    }

    /// Removes `grant` for `cause` (grant's undo of its own attach). Returns
    /// the revocation when this invocation recorded it, `None` when another already had.
    pub async fn revoke(
        &self,
        grant: &Grant,
        cause: &Cause,
        inv: &Invocation,
    ) -> Result<Option<AccessRevoked>, Fault> {
        let mut machine = Revocation::new(grant.clone(), cause.clone(), inv.clone(), self.reach);
        let revoked = match run(&mut machine, &self.ports, inv.now).await? {
            Revoked::Revoked(r) => Some(r),
            Revoked::AlreadyGone => None,
        };
        self.removed(grant, cause, revoked.as_ref());
        Ok(revoked)
    }

    /// Logs and counts one removal.
    fn removed(&self, grant: &Grant, cause: &Cause, revoked: Option<&AccessRevoked>) {
        let Some(revoked) = revoked else {
            info!(change_request_id = %grant.change_request, user = %grant.user, outcome = "already-gone", "grant already removed");
            return;
        };
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
        let function = self.ports.function;
        metrics::count(function, "Revocations", Some(("Cause", cause.as_str())));
        if let Some(lag) = revoked.revocation_lag_ms {
            metrics::emit(
                function,
                "RevocationLag",
                lag as f64,
                metrics::Unit::Milliseconds,
                None,
            );
        }
    }

    /// Runs one revoke path to its end and reports what it did.
    pub async fn finish<M>(&self, machine: &mut M, inv: &Invocation) -> Result<RevokeOutcome, Fault>
    where
        M: Machine<Outcome = Ended>,
    {
        let ended = run(machine, &self.ports, inv.now).await?;
        Ok(self.report(ended))
    }

    /// Logs and counts what a revoke path did.
    fn report(&self, ended: Ended) -> RevokeOutcome {
        match ended {
            Ended::Nothing(why) => RevokeOutcome::Ignored { reason: why },
            Ended::Removed {
                grant,
                cause,
                revoked,
            } => {
                self.removed(&grant, &cause, revoked.as_ref());
                outcome(&grant, &cause, revoked)
            }
        }
    }

    /// Ends request `id` for `cause` (the tombstone, so that no grant can
    /// start after it, naming the operator and their reason when `by` says
    /// an operator ended it), then removes the grant of `user` if there is one.
    pub async fn end(
        &self,
        id: &ChangeRequestId,
        user: Option<IamUserName>,
        cause: &Cause,
        by: Option<EndedBy>,
        inv: &Invocation,
    ) -> Result<RevokeOutcome, Fault> {
        let mut ending = Ending::new(id.clone(), user, cause.clone(), inv.clone(), self.reach);
        if let Some(by) = by {
            ending = ending.ended_by(by);
        }
        let outcome = self.finish(&mut ending, inv).await?;
        if let RevokeOutcome::Ignored { reason } = &outcome {
            info!(change_request_id = %id, outcome = "ignored", reason = %reason, "nothing to revoke");
        }
        Ok(outcome)
    }
}

/// Why the sweep looks at a grant it listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    WindowEnded,
    NoLongerEligible,
    /// Active: it goes if its request ended.
    IfItsRequestEnded,
}

pub struct Revoker {
    pub config: RevokeConfig,
    pub revocations: Revocations,
}

impl Revoker {
    pub fn new(config: RevokeConfig, sdk: &aws_config::SdkConfig) -> Self {
        let ports = AwsPorts::new(
            sdk,
            Settings {
                table: &config.decisions_table,
                bus: &config.event_bus,
                expiry: None,
                expiry_group: config.expiry_group.clone(),
                session_cutter: config.session_cutter.clone(),
                function: "revoke",
                document_versions: false,
            },
        );
        Self {
            config,
            revocations: Revocations::new(ports),
        }
    }

    /// `deadline` is when Lambda stops the invocation; the sweep starts no
    /// revocation it could not finish before then.
    pub async fn handle(
        &self,
        input: Value,
        inv: &Invocation,
        deadline: Option<SystemTime>,
    ) -> Result<RevokeOutcome, Fault> {
        match RevokeInput::parse(input) {
            RevokeInput::Expiry(target) => self.expire(&target, inv).await,
            RevokeInput::Operator(execution) => self.end_runbook(&execution, inv).await,
            RevokeInput::Refused(reason) => Ok(refused("retired-payload", reason)),
            RevokeInput::StatusChanged(id) => self.status_changed(&id, inv).await,
            RevokeInput::Sweep => self.sweep(inv, deadline).await.map(RevokeOutcome::Swept),
        }
    }

    /// A grant's expiry schedule fired: remove that one grant if its window
    /// has ended. (Anything else is left to the sweep, which checks everything.)
    pub async fn expire(
        &self,
        target: &ExpiryTarget,
        inv: &Invocation,
    ) -> Result<RevokeOutcome, Fault> {
        let user_id = target.user_id.as_deref().map(IamUserId::parse).transpose();
        let (Ok(id), Ok(user), Ok(user_id)) = (
            ChangeRequestId::parse(&target.change_request_id),
            IamUserName::parse(&target.user),
            user_id,
        ) else {
            return Ok(ignored(
                &target.change_request_id,
                "the schedule's input names no valid grant".to_owned(),
            ));
        };
        let mut expiry = Expiry::new(
            id.clone(),
            user,
            user_id,
            inv.clone(),
            self.revocations.reach,
        );
        let outcome = self.revocations.finish(&mut expiry, inv).await?;
        if let RevokeOutcome::Ignored { reason } = &outcome {
            info!(change_request_id = %id, outcome = "ignored", reason = %reason, "nothing to revoke");
        }
        Ok(outcome)
    }

    /// A request's status changed. Only Systems Manager's word that it ended
    /// removes anything: a forged or stale event removes nothing.
    pub async fn status_changed(
        &self,
        raw_id: &str,
        inv: &Invocation,
    ) -> Result<RevokeOutcome, Fault> {
        let Ok(id) = ChangeRequestId::parse(raw_id) else {
            return Ok(ignored(raw_id, "not a change request id".to_owned()));
        };
        let Some(exec) = self.revocations.ports.execution(&id).await? else {
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
            .end(
                &id,
                user,
                &Cause::EndedEarly(exec.status.clone()),
                None,
                inv,
            )
            .await
    }

    /// The end runbook asks to end a request's access now. Only an execution
    /// of the stack's end runbook, running now and started (Systems Manager's
    /// record, not the payload) by a configured operator, or by the request's
    /// filer or beneficiary as Systems Manager records the request, ends the
    /// request it names, whatever its own status.
    pub async fn end_runbook(
        &self,
        execution: &str,
        inv: &Invocation,
    ) -> Result<RevokeOutcome, Fault> {
        let exec = match ChangeRequestId::parse(execution) {
            Ok(id) => self.revocations.ports.execution(&id).await?,
            Err(_) => None,
        };
        let refuse = |why: NotAnOperator| {
            metrics::count(
                "revoke",
                "OperatorRequestsRefused",
                Some(("Reason", why.code())),
            );
            refused(why.code(), why.to_string())
        };
        let end = match authenticate(execution, exec.as_ref(), &self.config.operators) {
            Ok(end) => end,
            Err(why) => return Ok(refuse(why)),
        };
        let request = self
            .revocations
            .ports
            .execution(&end.change_request)
            .await?;
        let cause = match may_end(execution, &end, request.as_ref()) {
            Ok(cause) => cause,
            Err(why) => return Ok(refuse(why)),
        };
        info!(
            execution_id = %shown(execution),
            change_request_id = %end.change_request,
            ended_by = %end.by,
            operator = end.by_operator,
            reason = %end.reason,
            "early end through the end runbook"
        );
        let user = request.as_ref().and_then(requested_user);
        let by = EndedBy {
            who: end.by.clone(),
            reason: end.reason.clone(),
        };
        self.revocations
            .end(&end.change_request, user, &cause, Some(by), inv)
            .await
    }

    /// One sweep: every grant whose window ended, every grant whose user is
    /// no longer eligible for it (the eligibility tag or the allowlist), and
    /// every grant whose request ended (Systems Manager says so, or its
    /// record has an end). Keeps going
    /// past a grant it cannot remove, then fails naming every one it could not.
    /// A failed *check* of an active grant is no failed revocation: nothing is
    /// known to be due, and the next minute's sweep checks it again.
    pub async fn sweep(
        &self,
        inv: &Invocation,
        deadline: Option<SystemTime>,
    ) -> Result<SweepReport, Fault> {
        let now = inv.now;
        let listing = self
            .revocations
            .ports
            .policies_with_prefix(POLICY_PREFIX)
            .await?;
        let sorted = sort_grants(&listing.policies, now, self.config.eligibility.as_ref());
        for (grant, why) in &sorted.lost {
            info!(change_request_id = %grant.change_request, user = %grant.user, account = %grant.account, why = %why, "no longer eligible; revoking");
        }
        let mut report = SweepReport {
            pages_read: listing.pages,
            users_scanned: listing.users,
            active_grants: sorted.active.len() + sorted.lost.len(),
            ..SweepReport::default()
        };
        let mut failures = Vec::new();
        // A revocation is five calls (remove, unschedule, record, announce,
        // mark announced), and five more with the session cut (open the
        // production account, read the role, list and read its inline
        // policy, write it).
        let calls = if self.revocations.reach.cuts { 10 } else { 5 };
        let needed = sdk::OPERATION_TIMEOUT * calls + Duration::from_secs(1);
        let work: Vec<(&Grant, Due)> = sorted
            .ended
            .iter()
            .map(|g| (g, Due::WindowEnded))
            .chain(sorted.lost.iter().map(|(g, _)| (g, Due::NoLongerEligible)))
            .chain(sorted.active.iter().map(|g| (g, Due::IfItsRequestEnded)))
            .collect();
        for (done, &(grant, due)) in work.iter().enumerate() {
            let window_ended = due == Due::WindowEnded;
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
            let reach = self.revocations.reach;
            let mut item = match due {
                Due::NoLongerEligible => SweepItem::lost(grant.clone(), inv.clone(), reach),
                _ => SweepItem::new(grant.clone(), inv.clone(), reach),
            };
            match run(&mut item, &self.revocations.ports, now).await {
                Ok(Ended::Nothing(_)) => {}
                Ok(ended) => {
                    if !window_ended {
                        report.active_grants -= 1;
                    }
                    match self.revocations.report(ended) {
                        RevokeOutcome::Revoked { .. } => report.revoked.push(name),
                        _ => report.already_gone.push(name),
                    }
                }
                Err(fault) if item.checking() => {
                    warn!(change_request_id = %grant.change_request, error = %fault, "could not check an active grant; the next sweep checks it again");
                    report.checks_deferred.push(name);
                }
                // Due (its window or its request ended), and not removed.
                Err(fault) => {
                    if !window_ended {
                        report.active_grants -= 1;
                    }
                    failures.push(format!("{name} on {}: {fault}", grant.user));
                }
            }
        }
        // Revocations whose recorder stopped before announcing them (the
        // policy may be gone, so IAM's listing no longer shows them).
        match self.revocations.ports.unannounced_revocations().await {
            Ok(pending) => {
                for record in pending {
                    if work.iter().any(|(g, _)| g.change_request == record.id) {
                        continue;
                    }
                    let Some(mut item) =
                        SweepItem::resume(&record, inv.clone(), self.revocations.reach)
                    else {
                        continue;
                    };
                    let name = policy_name(&record.id);
                    match run(&mut item, &self.revocations.ports, now).await {
                        Ok(ended) => {
                            if let RevokeOutcome::Revoked { .. } = self.revocations.report(ended) {
                                report.announced_late.push(name);
                            }
                        }
                        Err(fault) => {
                            failures.push(format!("announcing the revocation of {name}: {fault}"))
                        }
                    }
                }
            }
            Err(fault) => {
                warn!(error = %fault, "could not read the unannounced revocations; the next sweep reads them again");
                report
                    .checks_deferred
                    .push("unannounced revocations".to_owned());
            }
        }
        if !report.checks_deferred.is_empty() {
            metrics::emit(
                "revoke",
                "SweepChecksDeferred",
                report.checks_deferred.len() as f64,
                metrics::Unit::Count,
                None,
            );
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
}
