//! revoke: the sweep. Reads every changegate policy from IAM (the policies are
//! the source of truth), deletes those whose window has ended, and announces each.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::aws::{Bus, Fault, Iam, Schedules, UserPolicy};
use crate::metrics;
use crate::config::RevokeConfig;
use crate::aws::Ssm;
use crate::events::{AccessRevoked, CAUSE_WINDOW_ENDED, ChangeRequestStatus, ChangegateEvent, ExpiryInput, ExpiryTarget, Incoming};
use crate::ids::ChangeRequestId;
use crate::policy::policy_name;
use crate::request::{PARAM_USER, shown};
use crate::sdk;
use crate::status::ends_access;
use crate::ids::IamUserName;
use crate::policy::{Grant, POLICY_PREFIX};

/// Sorts the listed policies into expired grants, and counts the rest. Pure.
pub fn expired(policies: &[UserPolicy], now: DateTime<Utc>) -> (Vec<Grant>, usize) {
    let mut expired = Vec::new();
    let mut active = 0;
    for p in policies {
        let grant = IamUserName::parse(&p.user)
            .map_err(|e| e.to_string())
            .and_then(|user| Grant::from_policy(&user, &p.name, &p.document).map_err(|e| e.to_string()));
        match grant {
            Ok(g) if g.window.has_ended(now) => expired.push(g),
            Ok(_) => active += 1,
            Err(why) => warn!(user = %p.user, policy = %p.name, why = %why, "not a changegate grant; left alone"),
        }
    }
    (expired, active)
}

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
    /// A grant's expiry schedule fired.
    Expired { change_request_id: String, user: String, policy_name: String, revocation_lag_ms: i64 },
    EndedEarly { change_request_id: String, user: String, policy_name: String, cause: String },
    Ignored { reason: String },
}

pub struct Revoker {
    pub config: RevokeConfig,
    pub iam: Iam,
    pub ssm: Ssm,
    pub bus: Bus,
    pub schedules: Schedules,
}

impl Revoker {
    pub fn new(config: RevokeConfig, sdk: &aws_config::SdkConfig) -> Self {
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(sdk), config.event_bus.clone());
        Self {
            config,
            iam: Iam::new(aws_sdk_iam::Client::new(sdk)),
            ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)),
            bus,
            schedules: Schedules::new(aws_sdk_scheduler::Client::new(sdk)),
        }
    }

    /// A change request that ended early loses its grant now; anything else
    /// (the one-minute schedule, whatever its payload) runs the sweep, which is
    /// always safe.
    ///
    /// `deadline` is when Lambda stops the invocation; the sweep starts no
    /// revocation it could not finish before then.
    pub async fn handle(&self, event: serde_json::Value, now: DateTime<Utc>, deadline: Option<SystemTime>) -> Result<RevokeOutcome, Fault> {
        if let Ok(ExpiryInput { expiry }) = serde_json::from_value::<ExpiryInput>(event.clone()) {
            return self.expire(&expiry, now).await;
        }
        let change_request = serde_json::from_value::<EventBridgeEvent>(event).ok().map(Incoming::parse);
        match change_request {
            Some(Ok(Incoming::ChangeRequest(cr))) => self.end_early(&cr, now).await,
            _ => self.sweep(now, deadline).await.map(RevokeOutcome::Swept),
        }
    }

    /// The changegate grant `user` holds for change request `id`, or why
    /// there is none to remove.
    async fn held_grant(&self, user: &IamUserName, id: &ChangeRequestId) -> Result<Result<Grant, String>, Fault> {
        let name = policy_name(id);
        let Some(document) = self.iam.user_policy(user.as_str(), &name).await? else {
            return Ok(Err(format!("{user} holds no grant for this change request")));
        };
        Ok(Grant::from_policy(user, &name, &document).map_err(|why| format!("{name} on {user} is not a changegate grant ({why}); left alone")))
    }

    /// A grant's expiry schedule fired: remove that one grant if its window
    /// has ended. (Anything else is left to the sweep, which checks everything.)
    pub async fn expire(&self, target: &ExpiryTarget, now: DateTime<Utc>) -> Result<RevokeOutcome, Fault> {
        let ignore = |reason: String| {
            info!(change_request_id = %shown(&target.change_request_id), outcome = "ignored", reason = %reason, "expiry: nothing to do");
            Ok(RevokeOutcome::Ignored { reason })
        };
        let (Ok(id), Ok(user)) = (ChangeRequestId::parse(&target.change_request_id), IamUserName::parse(&target.user)) else {
            return ignore("the schedule's input names no valid grant".to_owned());
        };
        let grant = match self.held_grant(&user, &id).await? {
            Ok(grant) => grant,
            Err(none) => return ignore(none),
        };
        let name = grant.policy_name();
        if !grant.window.has_ended(now) {
            return ignore(format!("the window ends at {}; the sweep removes it then", grant.window.end_utc()));
        }
        if !self.iam.delete_user_policy(user.as_str(), &name).await? {
            return ignore("removed meanwhile".to_owned());
        }
        let revoked = AccessRevoked::of(&grant, now, CAUSE_WINDOW_ENDED);
        let lag = revoked.revocation_lag_ms.unwrap_or_default();
        info!(change_request_id = %id, user = %user, account = %grant.account, role = %grant.role, revocation_lag_ms = lag, outcome = "revoked", "access revoked at the window's end");
        record_revocation(CAUSE_WINDOW_ENDED, Some(lag));
        self.bus.put(&ChangegateEvent::Revoked(revoked)).await?;
        Ok(RevokeOutcome::Expired { change_request_id: id.to_string(), user: user.to_string(), policy_name: name, revocation_lag_ms: lag })
    }

    /// Removes the grant of a change request that was rejected, cancelled,
    /// closed or failed. Removing access is always safe, so the event's status
    /// is enough; Systems Manager tells whose grant it is.
    pub async fn end_early(&self, cr: &ChangeRequestStatus, now: DateTime<Utc>) -> Result<RevokeOutcome, Fault> {
        let ignore = |reason: String| {
            info!(change_request_id = %shown(&cr.change_request_id), outcome = "ignored", reason = %reason, "no early end");
            Ok(RevokeOutcome::Ignored { reason })
        };
        if !ends_access(&cr.ops_item_status) {
            return ignore(format!("status {} does not end access", shown(&cr.ops_item_status)));
        }
        let Ok(id) = ChangeRequestId::parse(&cr.change_request_id) else {
            return ignore("not a change request id".to_owned());
        };
        let Some(ssm) = self.ssm.change_request(id.as_str()).await? else {
            return ignore("Systems Manager has no such change request".to_owned());
        };
        let user = ssm.runbooks.iter().filter_map(|p| p.get(PARAM_USER)).flatten().find_map(|u| IamUserName::parse(u).ok());
        let Some(user) = user else {
            return ignore("the request names no valid IAM user, so nothing was granted".to_owned());
        };
        let grant = match self.held_grant(&user, &id).await? {
            Ok(grant) => grant,
            Err(none) => return ignore(none),
        };
        let name = grant.policy_name();
        let cause = shown(&cr.ops_item_status);
        if self.iam.delete_user_policy(user.as_str(), &name).await? {
            info!(
                change_request_id = %id, user = %user, account = %grant.account, role = %grant.role,
                end = %grant.window.end_utc(), cause = %cause, outcome = "revoked-early", "access revoked early"
            );
            record_revocation(&cause, None);
            self.bus.put(&ChangegateEvent::revoked(&grant, now, &cause)).await?;
        }
        if let Some(group) = &self.config.expiry_group {
            self.schedules.delete(group, &name).await?;
        }
        Ok(RevokeOutcome::EndedEarly { change_request_id: id.to_string(), user: user.to_string(), policy_name: name, cause })
    }

    /// One sweep. Keeps going past a grant it cannot remove, then fails naming
    /// every one it could not, so that Lambda retries and an alarm can fire.
    pub async fn sweep(&self, now: DateTime<Utc>, deadline: Option<SystemTime>) -> Result<SweepReport, Fault> {
        let listing = self.iam.user_policies_with_prefix(POLICY_PREFIX).await?;
        let (grants, active) = expired(&listing.policies, now);
        let mut report = SweepReport {
            pages_read: listing.pages,
            users_scanned: listing.users,
            active_grants: active,
            ..SweepReport::default()
        };
        let mut failures = Vec::new();
        // A revocation is two calls (delete, announce), each at most OPERATION_TIMEOUT.
        let needed = sdk::OPERATION_TIMEOUT * 2 + Duration::from_secs(1);
        for (done, grant) in grants.iter().enumerate() {
            if deadline.is_some_and(|d| SystemTime::now() + needed > d) {
                let rest: Vec<String> = grants[done..].iter().map(|g| format!("{} on {}", g.policy_name(), g.user)).collect();
                failures.push(format!("not reached before the invocation's deadline (the next sweep continues): {}", rest.join(", ")));
                break;
            }
            let (user, name) = (grant.user.as_str(), grant.policy_name());
            match self.iam.delete_user_policy(user, &name).await {
                Ok(false) => {
                    info!(change_request_id = %grant.change_request, user, outcome = "already-gone", "grant already removed");
                    report.already_gone.push(name);
                }
                Ok(true) => {
                    let revoked = AccessRevoked::of(grant, now, CAUSE_WINDOW_ENDED);
                    let lag = revoked.revocation_lag_ms.unwrap_or_default();
                    info!(
                        change_request_id = %grant.change_request,
                        user,
                        account = %grant.account,
                        role = %grant.role,
                        end = %grant.window.end_utc(),
                        revocation_lag_ms = lag,
                        outcome = "revoked",
                        "access revoked"
                    );
                    record_revocation(CAUSE_WINDOW_ENDED, Some(lag));
                    match self.bus.put(&ChangegateEvent::Revoked(revoked)).await {
                        Ok(()) => report.revoked.push(name),
                        Err(fault) => failures.push(format!("{name} on {user} was removed but not announced: {fault}")),
                    }
                }
                Err(fault) => failures.push(format!("{name} on {user}: {fault}")),
            }
        }
        if failures.is_empty() {
            Ok(report)
        } else {
            metrics::emit("revoke", "RevocationFailures", failures.len() as f64, metrics::Unit::Count, None);
            error!(failures = failures.len(), revoked = report.revoked.len(), "sweep incomplete");
            Err(Fault::Sweep(failures))
        }
    }
}

/// The Revocations metric (by cause) and, at a window's end, RevocationLag.
fn record_revocation(cause: &str, lag_ms: Option<i64>) {
    metrics::count("revoke", "Revocations", Some(("Cause", cause)));
    if let Some(lag) = lag_ms {
        metrics::emit("revoke", "RevocationLag", lag as f64, metrics::Unit::Milliseconds, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::grant;

    fn listed(g: &Grant) -> UserPolicy {
        UserPolicy { user: g.user.to_string(), name: g.policy_name(), document: g.document_json() }
    }

    #[test]
    fn given_grants_around_now_when_sorting_then_only_those_whose_end_has_passed_are_expired() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let ended = grant("2026-12-01T09:00:00Z", "2026-12-01T09:59:59Z");
        let ends_now = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let running = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:01Z");
        let future = grant("2026-12-02T09:00:00Z", "2026-12-02T10:00:00Z");
        let (exp, active) = expired(&[listed(&ended), listed(&ends_now), listed(&running), listed(&future)], now);
        assert_eq!(exp, vec![ended, ends_now]);
        assert_eq!(active, 2);
    }

    #[test]
    fn given_a_foreign_policy_with_the_prefix_when_sorting_then_it_is_never_expired() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let mut foreign = listed(&g);
        foreign.document = foreign.document.replace("sts:AssumeRole", "iam:*");
        let (exp, active) = expired(&[foreign], now);
        assert!(exp.is_empty());
        assert_eq!(active, 0);
    }
}
