//! grant: on any sign that a request was approved (a Change Manager status
//! event, an Automation step or execution event, or the request runbook's own
//! call), read the request from Systems Manager, check it, and decide it
//! exactly once: record, attach one windowed policy, announce.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use crate::adapters::{Fault, Put, Ssm};
use crate::metrics;
use crate::revoke::{RevocationSettings, Revocations};
use changegate::check::{Checked, Checking, Verdict, check_request, decide};
use changegate::config::GrantConfig;
use changegate::eligibility::ELIGIBILITY_TAG;
use changegate::events::{Cause, ChangegateEvent};
use changegate::expiry::{expiry_at, wants_expiry_schedule};
use changegate::ids::{ChangeRequestId, Home, IamUserName, UserArn};
use changegate::policy::Grant;
use changegate::record::{DecisionRecord, State};
use changegate::refusal::Refusal;
use changegate::status::Status;
use changegate::text::shown;
use changegate::trigger::Trigger;
use changegate::window::utc_string;

/// What one invocation did; returned to Lambda as the invocation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GrantOutcome {
    Granted {
        change_request_id: String,
        user: String,
        policy_name: String,
    },
    /// The decision was made earlier but not announced (an earlier attempt stopped): announced now.
    Announced {
        change_request_id: String,
        decision: String,
    },
    Refused {
        change_request_id: String,
        reason_code: String,
        reason: String,
    },
    /// An earlier invocation decided and announced; nothing to do.
    AlreadyDecided {
        change_request_id: String,
        decision: String,
    },
    /// The request ended while it was being granted: the grant was undone.
    Undone {
        change_request_id: String,
        cause: String,
    },
    /// Not approved yet and not ended: a later event brings it back.
    Waiting {
        change_request_id: String,
        why: String,
    },
    Ignored {
        reason: String,
    },
}

pub struct Grantor {
    pub config: GrantConfig,
    pub ssm: Ssm,
    pub revocations: Revocations,
}

/// The one log record of a decision: what an auditor needs, no credentials, no event body.
fn audit(
    id: &ChangeRequestId,
    checked: Option<&Checked>,
    grant: Option<&Grant>,
    outcome: &str,
    refusal: Option<&Refusal>,
) {
    let dash = || "-".to_owned();
    let request = checked.map(|c| &c.request);
    info!(
        change_request_id = %id,
        source = checked.map(|c| c.source.as_str()).unwrap_or("-"),
        requester = %checked.map(|c| c.requester.to_string()).unwrap_or_else(dash),
        approvers = %checked.map(|c| c.approvers.join(" ")).unwrap_or_else(dash),
        user = %request.map(|r| r.user.to_string()).unwrap_or_else(dash),
        account = %request.map(|r| r.account.to_string()).unwrap_or_else(dash),
        role = %grant.map(|g| g.role.to_string()).unwrap_or_else(dash),
        start = %request.map(|r| utc_string(r.window.start_utc())).unwrap_or_else(dash),
        end = %request.map(|r| utc_string(r.window.end_utc())).unwrap_or_else(dash),
        outcome,
        reason_code = refusal.map(Refusal::code).unwrap_or("-"),
        reason = %refusal.map(ToString::to_string).unwrap_or_else(dash),
        "grant decision"
    );
}

fn ignored(reason: String) -> GrantOutcome {
    info!(outcome = "ignored", reason = %reason, "nothing to decide");
    GrantOutcome::Ignored { reason }
}

/// The requester's user name, from the ARN a record or Systems Manager holds.
fn user_of(arn: Option<&str>) -> Option<IamUserName> {
    arn.and_then(UserArn::parse).map(|a| a.user)
}

impl Grantor {
    pub fn new(config: GrantConfig, sdk: &aws_config::SdkConfig) -> Self {
        let group = config.expiry.as_ref().map(|e| e.group.clone());
        let revocations = Revocations::new(
            sdk,
            RevocationSettings {
                table: &config.decisions_table,
                bus: &config.event_bus,
                expiry_group: group,
                session_cutter: config.session_cutter.clone(),
                function: "grant",
            },
        );
        Self {
            config,
            ssm: Ssm::new(aws_sdk_ssm::Client::new(sdk)),
            revocations,
        }
    }

    pub async fn handle(
        &self,
        input: Value,
        home: &Home,
        now: DateTime<Utc>,
    ) -> Result<GrantOutcome, Fault> {
        let raw = match Trigger::parse(input) {
            Trigger::Look(id) => id,
            Trigger::Ignore(reason) => return Ok(ignored(reason)),
        };
        let Ok(id) = ChangeRequestId::parse(&raw) else {
            return Ok(ignored(format!("{:?} is not a request id", shown(&raw))));
        };
        if let Some(record) = self.revocations.records.get(&id).await? {
            return self.resume(record, now).await;
        }
        let exec = self.ssm.execution(id.as_str()).await?;
        let requester_arn = exec.as_ref().and_then(|e| e.executed_by.clone());
        let checked = match check_request(&id, exec.as_ref(), &self.config, home, now) {
            Ok(Checking::Checked(c)) => *c,
            Ok(Checking::Waiting(why)) => {
                info!(change_request_id = %id, outcome = "waiting", why = %why, "not approved yet");
                return Ok(GrantOutcome::Waiting {
                    change_request_id: id.to_string(),
                    why,
                });
            }
            Err(refusal) => return self.refuse(&id, None, requester_arn, refusal, now).await,
        };
        let user = checked.request.user.as_str();
        let Some(record) = self
            .revocations
            .iam
            .user_record(user, ELIGIBILITY_TAG)
            .await?
        else {
            return self
                .refuse(
                    &id,
                    Some(&checked),
                    requester_arn,
                    Refusal::UserNotFound {
                        user: user.to_owned(),
                    },
                    now,
                )
                .await;
        };
        let grant = match decide(&checked, &record, &self.config) {
            Ok(Verdict::Grant(g) | Verdict::AlreadyGranted(g)) => g,
            Err(refusal) => {
                return self
                    .refuse(&id, Some(&checked), requester_arn, refusal, now)
                    .await;
            }
        };
        let claim = DecisionRecord::granting(&checked, &grant, now);
        if !self.revocations.records.create(&claim).await? {
            // Decided (or ended) by someone else meanwhile: follow that record.
            let record =
                self.revocations
                    .records
                    .get(&id)
                    .await?
                    .ok_or_else(|| Fault::Unexpected {
                        operation: "dynamodb:PutItem",
                        why: "the conditional write failed but there is no record".into(),
                    })?;
            return self.resume(record, now).await;
        }
        audit(&id, Some(&checked), Some(&grant), "claimed", None);
        self.attach(&claim, &grant, now).await
    }

    /// Carries on from the record an earlier invocation left.
    async fn resume(
        &self,
        record: DecisionRecord,
        now: DateTime<Utc>,
    ) -> Result<GrantOutcome, Fault> {
        let id = record.id.clone();
        let decided = |decision: &str| {
            info!(change_request_id = %id, decision, outcome = "already-decided", "decided earlier; nothing to do");
            Ok(GrantOutcome::AlreadyDecided {
                change_request_id: id.to_string(),
                decision: decision.to_owned(),
            })
        };
        if let Some(cause) = record.end_cause() {
            // Ended: a grant of this request must not stay. (The revocation
            // that ended it removes the policy; this covers an attach that raced it.)
            if let (Some(State::Granting | State::Granted), Some(grant)) =
                (record.state, record.to_grant())
            {
                self.revocations.revoke(&grant, &cause, now).await?;
            }
            return decided(&format!("ended ({})", cause.as_str()));
        }
        match (record.state, record.announced) {
            (Some(State::Granting), _) => {
                let grant = record.to_grant().ok_or_else(|| Fault::Unexpected {
                    operation: "dynamodb:GetItem",
                    why: "a claim without its grant".into(),
                })?;
                self.attach(&record, &grant, now).await
            }
            (Some(State::Granted), false) => {
                let grant = record.to_grant().ok_or_else(|| Fault::Unexpected {
                    operation: "dynamodb:GetItem",
                    why: "a grant without its fields".into(),
                })?;
                self.announce_grant(&record, &grant).await?;
                Ok(GrantOutcome::Announced {
                    change_request_id: id.to_string(),
                    decision: State::Granted.as_str().to_owned(),
                })
            }
            (Some(State::Refused), false) => {
                let refused = ChangegateEvent::Refused(changegate::events::AccessRefused {
                    change_request_id: id.clone(),
                    user: user_of(record.requester.as_deref()),
                    requester_arn: record.requester.as_deref().map(shown),
                    reason_code: record.reason_code.clone().unwrap_or_default(),
                    reason: record.reason.clone().unwrap_or_default(),
                });
                self.revocations.bus.put(&refused).await?;
                self.revocations.records.mark_announced(&id).await?;
                Ok(GrantOutcome::Announced {
                    change_request_id: id.to_string(),
                    decision: State::Refused.as_str().to_owned(),
                })
            }
            (Some(state), true) => decided(state.as_str()),
            (None, _) => decided("none"),
        }
    }

    /// Holding the claim: attach, confirm the request is still open, schedule
    /// the expiry, record the grant, announce.
    async fn attach(
        &self,
        claim: &DecisionRecord,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<GrantOutcome, Fault> {
        let id = &grant.change_request;
        let name = grant.policy_name();
        // The session cut first, effective from the window's end: whatever
        // runs or fails later, no session of this grant outlives its window.
        if let Some(cuts) = &self.revocations.cuts {
            cuts.at_end(grant, now).await?;
        }
        // Written ahead: every policy in IAM has a record, even if this invocation dies next.
        info!(change_request_id = %id, user = %grant.user, account = %grant.account, role = %grant.role, policy = %name, outcome = "attaching", "attaching grant");
        if self
            .revocations
            .iam
            .put_user_policy(grant.user.as_str(), &name, &grant.document_json())
            .await?
            == Put::NoSuchUser
        {
            let refusal = Refusal::UserNotFound {
                user: grant.user.to_string(),
            };
            let record = DecisionRecord::refused(id, &refusal, claim.requester.clone(), now);
            if self.revocations.records.replace_claim(&record).await? {
                return self.announce_refusal(&record, &refusal).await;
            }
            // The request ended meanwhile; nothing was attached.
            return Ok(GrantOutcome::AlreadyDecided {
                change_request_id: id.to_string(),
                decision: "ended".to_owned(),
            });
        }
        // A cancel may have raced the attach: Systems Manager's word, then the record's.
        let status = self.ssm.execution(id.as_str()).await?.map(|e| e.status);
        if let Some(status) = status.filter(Status::ends_access) {
            return self.undo(grant, Cause::EndedEarly(status), now).await;
        }
        if let Some(expiry) = &self.config.expiry {
            if wants_expiry_schedule(grant.window.end_utc(), now) {
                self.revocations
                    .schedules
                    .create_expiry(expiry, grant)
                    .await?;
            } else {
                info!(change_request_id = %id, at = %expiry_at(grant.window.end_utc()), "window ends within the minute; the sweep removes it");
            }
        }
        if !self.revocations.records.mark_granted(id, now).await? {
            let cause = self
                .revocations
                .records
                .get(id)
                .await?
                .and_then(|r| r.end_cause())
                .unwrap_or(Cause::Operator);
            return self.undo(grant, cause, now).await;
        }
        metrics::count("grant", "Grants", None);
        self.announce_grant(claim, grant).await?;
        Ok(GrantOutcome::Granted {
            change_request_id: id.to_string(),
            user: grant.user.to_string(),
            policy_name: name,
        })
    }

    async fn undo(
        &self,
        grant: &Grant,
        cause: Cause,
        now: DateTime<Utc>,
    ) -> Result<GrantOutcome, Fault> {
        info!(change_request_id = %grant.change_request, cause = cause.as_str(), outcome = "undone", "the request ended while being granted");
        self.revocations
            .records
            .end(&grant.change_request, &cause, now)
            .await?;
        self.revocations.revoke(grant, &cause, now).await?;
        Ok(GrantOutcome::Undone {
            change_request_id: grant.change_request.to_string(),
            cause: cause.as_str().to_owned(),
        })
    }

    async fn announce_grant(&self, record: &DecisionRecord, grant: &Grant) -> Result<(), Fault> {
        let requester = user_of(record.requester.as_deref()).unwrap_or_else(|| grant.user.clone());
        let decided = record.grant.as_ref();
        let approvers = decided.map(|d| d.approvers.clone()).unwrap_or_default();
        let source = decided.map(|d| d.source.clone()).unwrap_or_default();
        let mut event = ChangegateEvent::granted(
            grant,
            &requester,
            &approvers,
            &source,
            decided.and_then(|d| d.request_reason.clone()),
        );
        if let ChangegateEvent::Granted(g) = &mut event {
            g.sessions_cut = self.revocations.cuts.is_some();
        }
        self.revocations.bus.put(&event).await?;
        self.revocations
            .records
            .mark_announced(&grant.change_request)
            .await?;
        info!(change_request_id = %grant.change_request, user = %grant.user, outcome = "granted", "access granted and announced");
        Ok(())
    }

    async fn refuse(
        &self,
        id: &ChangeRequestId,
        checked: Option<&Checked>,
        requester: Option<String>,
        refusal: Refusal,
        now: DateTime<Utc>,
    ) -> Result<GrantOutcome, Fault> {
        audit(id, checked, None, "refused", Some(&refusal));
        let record = DecisionRecord::refused(id, &refusal, requester, now);
        if refusal.is_final() && !self.revocations.records.create(&record).await? {
            let record =
                self.revocations
                    .records
                    .get(id)
                    .await?
                    .ok_or_else(|| Fault::Unexpected {
                        operation: "dynamodb:PutItem",
                        why: "the conditional write failed but there is no record".into(),
                    })?;
            return self.resume(record, now).await;
        }
        metrics::count("grant", "Refusals", Some(("Reason", refusal.code())));
        self.announce_refusal(&record, &refusal).await
    }

    async fn announce_refusal(
        &self,
        record: &DecisionRecord,
        refusal: &Refusal,
    ) -> Result<GrantOutcome, Fault> {
        let user = user_of(record.requester.as_deref());
        let event = ChangegateEvent::refused(
            &record.id,
            user,
            record.requester.as_deref().map(shown),
            refusal,
        );
        self.revocations.bus.put(&event).await?;
        if refusal.is_final() {
            self.revocations.records.mark_announced(&record.id).await?;
        }
        Ok(GrantOutcome::Refused {
            change_request_id: record.id.to_string(),
            reason_code: refusal.code().to_owned(),
            reason: refusal.to_string(),
        })
    }
}
