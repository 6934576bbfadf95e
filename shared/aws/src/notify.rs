//! notify: one SNS message per event, for email and for Slack.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use tracing::info;

use crate::adapters::{Fault, Topic};
use changegate::config::NotifyConfig;
use changegate::events::Incoming;
use changegate::message::{Notification, render_change_request, render_changegate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum NotifyOutcome {
    Published { kind: String, message_id: String },
    Skipped { reason: String },
}

/// The notification an event deserves, if any. Pure.
pub fn notification(event: EventBridgeEvent) -> Result<Notification, String> {
    match Incoming::parse(event).map_err(|e| e.to_string())? {
        Incoming::ChangeRequest(cr) => render_change_request(&cr)
            .ok_or_else(|| format!("status {:?} needs no message", cr.ops_item_status)),
        Incoming::Changegate(ev) => Ok(render_changegate(&ev)),
        Incoming::Scheduled => Err("scheduled events need no message".to_owned()),
        // The request runbook's approvers are told by its aws:approve step;
        // the requester hears from changegate's own events.
        Incoming::AutomationStep(_) | Incoming::AutomationExecution(_) => {
            Err("Automation status events need no message".to_owned())
        }
    }
}

pub struct Notifier {
    pub config: NotifyConfig,
    pub topic: Topic,
}

impl Notifier {
    pub fn new(config: NotifyConfig, sdk: &aws_config::SdkConfig) -> Self {
        let topic = Topic::new(aws_sdk_sns::Client::new(sdk), config.topic_arn.clone());
        Self { config, topic }
    }

    pub async fn handle(&self, event: EventBridgeEvent) -> Result<NotifyOutcome, Fault> {
        let n = match notification(event) {
            Ok(n) => n,
            Err(reason) => {
                info!(outcome = "skipped", reason = %reason, "no notification");
                return Ok(NotifyOutcome::Skipped { reason });
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
