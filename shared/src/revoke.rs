//! revoke: the sweep. Reads every changegate policy from IAM (the policies are
//! the source of truth), deletes those whose window has ended, and announces each.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::aws::{Bus, Fault, Iam, UserPolicy};
use crate::config::RevokeConfig;
use crate::aws::Ssm;
use crate::events::{CAUSE_WINDOW_ENDED, ChangeRequestStatus, ChangegateEvent, Incoming};
use crate::ids::ChangeRequestId;
use crate::policy::policy_name;
use crate::request::{PARAM_USER, shown};
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
    EndedEarly { change_request_id: String, user: String, policy_name: String, cause: String },
    Ignored { reason: String },
}

pub struct Revoker {
    pub config: RevokeConfig,
    pub iam: Iam,
    pub ssm: Ssm,
    pub bus: Bus,
}

impl Revoker {
    pub fn new(config: RevokeConfig, sdk: &aws_config::SdkConfig) -> Self {
        let bus = Bus::new(aws_sdk_eventbridge::Client::new(sdk), config.event_bus.clone());
        Self { config, iam: Iam::new(aws_sdk_iam::Client::new(sdk)), ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)), bus }
    }

    /// A change request that ended early loses its grant now; anything else
    /// (the one-minute schedule, whatever its payload) runs the sweep, which is
    /// always safe.
    pub async fn handle(&self, event: serde_json::Value, now: DateTime<Utc>) -> Result<RevokeOutcome, Fault> {
        let change_request = serde_json::from_value::<EventBridgeEvent>(event).ok().map(Incoming::parse);
        match change_request {
            Some(Ok(Incoming::ChangeRequest(cr))) => self.end_early(&cr, now).await,
            _ => self.sweep(now).await.map(RevokeOutcome::Swept),
        }
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
        let name = policy_name(&id);
        let Some(document) = self.iam.user_policy(user.as_str(), &name).await? else {
            return ignore(format!("{user} holds no grant for this change request"));
        };
        let grant = match Grant::from_policy(&user, &name, &document) {
            Ok(grant) => grant,
            Err(why) => return ignore(format!("{name} on {user} is not a changegate grant ({why}); left alone")),
        };
        let cause = shown(&cr.ops_item_status);
        if self.iam.delete_user_policy(user.as_str(), &name).await? {
            info!(
                change_request_id = %id, user = %user, account = %grant.account, role = %grant.role,
                end = %grant.window.end_utc(), cause = %cause, outcome = "revoked-early", "access revoked early"
            );
            self.bus.put(&ChangegateEvent::revoked(&grant, now, &cause)).await?;
        }
        Ok(RevokeOutcome::EndedEarly { change_request_id: id.to_string(), user: user.to_string(), policy_name: name, cause })
    }

    /// One sweep. Keeps going past a grant it cannot remove, then fails naming
    /// every one it could not, so that Lambda retries and an alarm can fire.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, Fault> {
        let listing = self.iam.user_policies_with_prefix(POLICY_PREFIX).await?;
        let (grants, active) = expired(&listing.policies, now);
        let mut report = SweepReport {
            pages_read: listing.pages,
            users_scanned: listing.users,
            active_grants: active,
            ..SweepReport::default()
        };
        let mut failures = Vec::new();
        for grant in grants {
            let (user, name) = (grant.user.as_str(), grant.policy_name());
            match self.iam.delete_user_policy(user, &name).await {
                Ok(false) => {
                    info!(change_request_id = %grant.change_request, user, outcome = "already-gone", "grant already removed");
                    report.already_gone.push(name);
                }
                Ok(true) => {
                    info!(
                        change_request_id = %grant.change_request,
                        user,
                        account = %grant.account,
                        role = %grant.role,
                        end = %grant.window.end_utc(),
                        outcome = "revoked",
                        "access revoked"
                    );
                    match self.bus.put(&ChangegateEvent::revoked(&grant, now, CAUSE_WINDOW_ENDED)).await {
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
            error!(failures = failures.len(), revoked = report.revoked.len(), "sweep incomplete");
            Err(Fault::Sweep(failures))
        }
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
