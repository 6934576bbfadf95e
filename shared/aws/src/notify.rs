//! notify: one SNS message per event, for email and for Slack, rendered from
//! the record the event names (the decision record for changegate's events,
//! Systems Manager's for a change request), never from the event's detail:
//! whoever can invoke notify directly can publish nothing changegate did not
//! decide (see changegate::verify).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use tracing::{info, warn};

use crate::adapters::{Fault, Ssm, Topic};
use crate::records::Records;
use changegate::config::NotifyConfig;
use changegate::events::{ChangeRequestStatus, ChangegateEvent, Incoming};
use changegate::execution::Execution;
use changegate::ids::ChangeRequestId;
use changegate::verify::{self, Quiet, Unverified, Verdict};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum NotifyOutcome {
    Published {
        kind: String,
        message_id: String,
    },
    Skipped {
        reason: String,
    },
    /// The event's record is missing or says otherwise: nothing was published.
    Unverified {
        reason: String,
    },
}

pub struct Notifier {
    pub config: NotifyConfig,
    pub topic: Topic,
    records: Records,
    ssm: Ssm,
}

impl Notifier {
    pub fn new(config: NotifyConfig, sdk: &aws_config::SdkConfig) -> Self {
        let topic = Topic::new(aws_sdk_sns::Client::new(sdk), config.topic_arn.clone());
        let records = Records::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.decisions_table.clone(),
        );
        let ssm = Ssm::new(aws_sdk_ssm::Client::new(sdk));
        Self {
            config,
            topic,
            records,
            ssm,
        }
    }

    /// The verdict on changegate's own event, from the decision record it names.
    async fn changegate(&self, event: &ChangegateEvent) -> Result<Verdict, Fault> {
        let record = self.records.get(event.change_request_id()).await?;
        let known = if verify::asks_systems_manager(event, record.as_ref()) {
            self.ssm
                .change_request(event.change_request_id().as_str())
                .await?
                .is_some()
        } else {
            false
        };
        Ok(verify::changegate(event, record.as_ref(), known, self.config.sessions_cut).into())
    }

    /// The verdict on a change request's status, from Systems Manager's record of it.
    async fn change_request(&self, cr: &ChangeRequestStatus) -> Result<Verdict, Fault> {
        if let Err(quiet) = verify::change_request_needs_message(cr) {
            return Ok(Verdict::Quiet(quiet));
        }
        let Some(template) = &self.config.change_template else {
            return Ok(Verdict::Quiet(Quiet::OtherTemplate));
        };
        if ChangeRequestId::parse(&cr.change_request_id).is_err() {
            return Ok(Verdict::Unverified(Unverified::NoChangeRequest));
        }
        let record = self.ssm.change_request(&cr.change_request_id).await?;
        Ok(verify::change_request(cr, record.as_ref(), template))
    }

    /// Systems Manager's record of the execution an event names (`raw`, the
    /// event's word for it); `None` for no such execution, or no id at all.
    async fn execution(&self, raw: &str) -> Result<Option<Execution>, Fault> {
        match ChangeRequestId::parse(raw) {
            Ok(id) => self.ssm.execution(id.as_str()).await,
            Err(_) => Ok(None),
        }
    }

    pub async fn handle(&self, event: EventBridgeEvent) -> Result<NotifyOutcome, Fault> {
        let detail_type = event.detail_type.clone();
        let (verdict, id) = match Incoming::parse(event) {
            Err(e) => return Ok(skipped(e.to_string())),
            Ok(Incoming::ChangeRequest(cr)) => {
                (self.change_request(&cr).await?, cr.change_request_id)
            }
            Ok(Incoming::Changegate(ev)) => (
                self.changegate(&ev).await?,
                ev.change_request_id().to_string(),
            ),
            Ok(Incoming::Scheduled) => {
                return Ok(skipped("scheduled events need no message".to_owned()));
            }
            // The request runbook's approval step waits: changegate's own card
            // for its approvers (beside aws:approve's plain text to them).
            Ok(Incoming::AutomationStep(step)) => match &self.config.request_runbook {
                Some(runbook) => {
                    let exec = self.execution(&step.execution_id).await?;
                    (
                        verify::approval_request(&step, exec.as_ref(), runbook),
                        step.execution_id,
                    )
                }
                None => return Ok(skipped("no request runbook: no approval card".to_owned())),
            },
            // Queued by Systems Manager (Pending): its filer hears that it
            // waits, and why; every other status is told by changegate's own
            // events.
            Ok(Incoming::AutomationExecution(status)) => match &self.config.request_runbook {
                Some(runbook) if status.status == "Pending" => {
                    let exec = self.execution(&status.execution_id).await?;
                    (
                        verify::queued_request(&status, exec.as_ref(), runbook),
                        status.execution_id,
                    )
                }
                _ => {
                    return Ok(skipped(
                        "Automation status events need no message".to_owned(),
                    ));
                }
            },
        };
        let n = match verdict {
            Verdict::Publish(n) => n,
            Verdict::Quiet(quiet) => return Ok(skipped(quiet.to_string())),
            Verdict::Unverified(why) => {
                let reason = why.to_string();
                // The id and the kind only: the rest of the event is whatever its sender wrote.
                warn!(
                    change_request_id = %changegate::text::shown(&id),
                    kind = kind_of(&detail_type),
                    reason = %reason,
                    outcome = "unverified",
                    "the event's record is missing or disagrees; nothing published"
                );
                // One dimension set (Function), so that the template's alarm sees it.
                crate::metrics::count("notify", "NotifyUnverified", None);
                return Ok(NotifyOutcome::Unverified { reason });
            }
        };
        let message_id = self.topic.publish(&n).await?;
        crate::metrics::count("notify", "Notifications", Some(("Kind", n.kind.as_str())));
        info!(
            change_request_id = %n.change_request_id,
            people = %n.people.join(" "),
            kind = n.kind.as_str(),
            message_id = %message_id,
            outcome = "published",
            "notification published"
        );
        Ok(NotifyOutcome::Published {
            kind: n.kind.as_str().to_owned(),
            message_id,
        })
    }
}

fn skipped(reason: String) -> NotifyOutcome {
    info!(outcome = "skipped", reason = %reason, "no notification");
    NotifyOutcome::Skipped { reason }
}

/// The metric's dimension: one of the few kinds notify is wired to receive.
fn kind_of(detail_type: &str) -> &'static str {
    use changegate::events::{
        DETAIL_CHANGE_REQUEST, DETAIL_GRANTED, DETAIL_REFUSED, DETAIL_REVOKED,
    };
    match detail_type {
        DETAIL_GRANTED => "access-granted",
        DETAIL_REFUSED => "access-refused",
        DETAIL_REVOKED => "access-revoked",
        DETAIL_CHANGE_REQUEST => "change-request",
        _ => "other",
    }
}
