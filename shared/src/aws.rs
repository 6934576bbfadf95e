//! Thin adapters over the AWS SDK: each call changegate makes, with AWS's
//! "not found" answers turned into values and every other error into a [`Fault`].

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_iam::types::EntityType;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_ssm::types::ResourceTypeForTagging;
use lambda_runtime::Diagnostic;
use percent_encoding::percent_decode_str;

use crate::approval::{ApproverDecision, parse_decisions};
use crate::config::ExpirySchedules;
use crate::events::{ChangegateEvent, ExpiryInput, ExpiryTarget, SOURCE_CHANGEGATE};
use crate::policy::Grant;
use crate::message::Notification;
use crate::request::RawParameters;

/// An AWS call that did not succeed: throttling, 5xx, timeouts, access denied.
/// A fault fails the invocation so that Lambda retries it.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{operation} returned an unexpected answer: {why}")]
    Unexpected { operation: &'static str, why: String },
    #[error("the revocation sweep could not finish {} revocation(s): {}", .0.len(), .0.join("; "))]
    Sweep(Vec<String>),
}

impl Fault {
    fn unexpected<E: std::fmt::Display>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |why| Self::Unexpected { operation, why: why.to_string() }
    }

    fn aws<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |err| Self::Aws {
            operation,
            message: error_chain(&err),
            source: Box::new(err),
        }
    }

    /// A short name for the kind of fault, for metrics and Lambda's error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws { .. } => "changegate.AwsFault",
            Self::Unexpected { .. } => "changegate.UnexpectedAnswer",
            Self::Sweep(_) => "changegate.SweepIncomplete",
        }
    }
}

/// The error with its whole chain of causes, on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl From<Fault> for Diagnostic {
    fn from(fault: Fault) -> Self {
        Diagnostic { error_type: fault.kind().to_owned(), error_message: fault.to_string() }
    }
}

/// What Systems Manager says about a change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub status: String,
    pub executed_by: Option<String>,
    /// The parameters of each runbook, in order.
    pub runbooks: Vec<RawParameters>,
    /// Every decision recorded on the request's `aws:approve` steps; `None`
    /// when there is no such record or it cannot be read.
    pub approvals: Option<Vec<ApproverDecision>>,
}

#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
}

impl Ssm {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }

    /// `GetAutomationExecution` with the change request id; `None` when SSM has no such request.
    pub async fn change_request(&self, id: &str) -> Result<Option<ChangeRequest>, Fault> {
        const OP: &str = "ssm:GetAutomationExecution";
        let out = match self.client.get_automation_execution().automation_execution_id(id).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_automation_execution_not_found_exception()) => {
                return Ok(None);
            }
            Err(e) => return Err(Fault::aws(OP)(e)),
        };
        let exec = out
            .automation_execution
            .ok_or_else(|| Fault::Unexpected { operation: OP, why: "no AutomationExecution in the answer".into() })?;
        let status = exec
            .automation_execution_status()
            .map(|s| s.as_str().to_owned())
            .ok_or_else(|| Fault::Unexpected { operation: OP, why: "no AutomationExecutionStatus".into() })?;
        let runbooks = exec
            .runbooks()
            .iter()
            .map(|rb| {
                rb.parameters()
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>())
                    .unwrap_or_default()
            })
            .collect();
        let decisions: Vec<String> = exec
            .step_executions()
            .iter()
            .filter(|step| step.action() == Some("aws:approve"))
            .filter_map(|step| step.outputs().and_then(|o| o.get("ApproverDecisions")))
            .flatten()
            .cloned()
            .collect();
        let approvals = if decisions.is_empty() { None } else { parse_decisions(&decisions) };
        Ok(Some(ChangeRequest { status, executed_by: exec.executed_by().map(str::to_owned), runbooks, approvals }))
    }

    /// The value of tag `key` on the change request (an Automation execution);
    /// `None` when it has no such tag or Systems Manager has no such request.
    pub async fn tag(&self, id: &str, key: &str) -> Result<Option<String>, Fault> {
        let out = self.client.list_tags_for_resource().resource_type(ResourceTypeForTagging::Automation).resource_id(id).send().await;
        match out {
            Ok(out) => Ok(out.tag_list().iter().find(|t| t.key() == key).map(|t| t.value().to_owned())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_resource_id()) => Ok(None),
            Err(e) => Err(Fault::aws("ssm:ListTagsForResource")(e)),
        }
    }

    /// Sets tag `key` to `value` on the change request.
    pub async fn set_tag(&self, id: &str, key: &str, value: &str) -> Result<(), Fault> {
        const OP: &str = "ssm:AddTagsToResource";
        let tag = aws_sdk_ssm::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(Fault::unexpected(OP))?;
        self.client
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Automation)
            .resource_id(id)
            .tags(tag)
            .send()
            .await
            .map_err(Fault::aws(OP))?;
        Ok(())
    }
}

/// An inline user policy as listed by `GetAccountAuthorizationDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    pub user: String,
    pub name: String,
    /// The decoded JSON document.
    pub document: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyListing {
    pub pages: u32,
    pub users: u32,
    /// Only the policies whose name has changegate's prefix.
    pub policies: Vec<UserPolicy>,
}

/// What IAM holds about one user that a grant decision needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    /// The value of the user's tag named by the caller, if set.
    pub tag: Option<String>,
    /// Every inline policy of the user: name and decoded document.
    pub inline_policies: Vec<(String, String)>,
}

/// Put or not: whether the user existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Done,
    NoSuchUser,
}

#[derive(Debug, Clone)]
pub struct Iam {
    client: aws_sdk_iam::Client,
}

fn decode(document: &str) -> Result<String, Fault> {
    percent_decode_str(document)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(Fault::unexpected("iam policy document"))
}

impl Iam {
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self { client }
    }

    /// The user's tag `tag_key` and all its inline policies; `None` when there is no such user.
    pub async fn user_record(&self, user: &str, tag_key: &str) -> Result<Option<UserRecord>, Fault> {
        let found = match self.client.get_user().user_name(user).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => return Ok(None),
            Err(e) => return Err(Fault::aws("iam:GetUser")(e)),
        };
        let tag = found
            .user()
            .and_then(|u| u.tags().iter().find(|t| t.key() == tag_key))
            .map(|t| t.value().to_owned());
        let mut names = Vec::new();
        let mut pages = self.client.list_user_policies().user_name(user).into_paginator().send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => names.extend(page.policy_names().iter().cloned()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => return Ok(None),
                Err(e) => return Err(Fault::aws("iam:ListUserPolicies")(e)),
            }
        }
        let mut inline_policies = Vec::with_capacity(names.len());
        for name in names {
            if let Some(doc) = self.user_policy(user, &name).await? {
                inline_policies.push((name, doc));
            }
        }
        Ok(Some(UserRecord { tag, inline_policies }))
    }

    /// The decoded document of `policy` on `user`; `None` when either does not exist.
    pub async fn user_policy(&self, user: &str, policy: &str) -> Result<Option<String>, Fault> {
        match self.client.get_user_policy().user_name(user).policy_name(policy).send().await {
            Ok(out) => decode(out.policy_document()).map(Some),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(None),
            Err(e) => Err(Fault::aws("iam:GetUserPolicy")(e)),
        }
    }

    pub async fn put_user_policy(&self, user: &str, policy: &str, document: &str) -> Result<Put, Fault> {
        match self.client.put_user_policy().user_name(user).policy_name(policy).policy_document(document).send().await {
            Ok(_) => Ok(Put::Done),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(Put::NoSuchUser),
            Err(e) => Err(Fault::aws("iam:PutUserPolicy")(e)),
        }
    }

    /// Deletes `policy` from `user`; `false` when it was already gone.
    pub async fn delete_user_policy(&self, user: &str, policy: &str) -> Result<bool, Fault> {
        match self.client.delete_user_policy().user_name(user).policy_name(policy).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => Ok(false),
            Err(e) => Err(Fault::aws("iam:DeleteUserPolicy")(e)),
        }
    }

    /// Every inline user policy whose name starts with `prefix`, read page by
    /// page from `GetAccountAuthorizationDetails` (1,000 users a page).
    pub async fn user_policies_with_prefix(&self, prefix: &str) -> Result<PolicyListing, Fault> {
        let mut pages = self
            .client
            .get_account_authorization_details()
            .filter(EntityType::User)
            .max_items(1000)
            .into_paginator()
            .send();
        let mut listing = PolicyListing::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(Fault::aws("iam:GetAccountAuthorizationDetails"))?;
            listing.pages += 1;
            for user in page.user_detail_list() {
                listing.users += 1;
                let Some(user_name) = user.user_name() else { continue };
                for policy in user.user_policy_list() {
                    let (Some(name), Some(doc)) = (policy.policy_name(), policy.policy_document()) else { continue };
                    if name.starts_with(prefix) {
                        listing.policies.push(UserPolicy {
                            user: user_name.to_owned(),
                            name: name.to_owned(),
                            document: decode(doc)?,
                        });
                    }
                }
            }
        }
        Ok(listing)
    }
}

/// One-time EventBridge Scheduler schedules that remove a grant at its end.
#[derive(Debug, Clone)]
pub struct Schedules {
    client: aws_sdk_scheduler::Client,
}

impl Schedules {
    pub fn new(client: aws_sdk_scheduler::Client) -> Self {
        Self { client }
    }

    /// Creates the schedule `changegate-<id>` that invokes revoke at the
    /// window's end, then deletes itself. An existing one (a retry) is kept.
    pub async fn create_expiry(&self, config: &ExpirySchedules, grant: &Grant) -> Result<(), Fault> {
        const OP: &str = "scheduler:CreateSchedule";
        let input = ExpiryInput {
            expiry: ExpiryTarget { change_request_id: grant.change_request.to_string(), user: grant.user.to_string() },
        };
        let input = serde_json::to_string(&input).map_err(Fault::unexpected(OP))?;
        let target = aws_sdk_scheduler::types::Target::builder()
            .arn(&config.target_arn)
            .role_arn(&config.role_arn)
            .input(input)
            .build()
            .map_err(Fault::unexpected(OP))?;
        let window = aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
            .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
            .build()
            .map_err(Fault::unexpected(OP))?;
        let at = grant.window.end_utc().format("%Y-%m-%dT%H:%M:%S");
        let out = self
            .client
            .create_schedule()
            .name(grant.policy_name())
            .group_name(&config.group)
            .description(format!("changegate: remove {} from {} at the end of its window", grant.policy_name(), grant.user))
            .schedule_expression(format!("at({at})"))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(aws_sdk_scheduler::types::ActionAfterCompletion::Delete)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => Ok(()),
            Err(e) => Err(Fault::aws(OP)(e)),
        }
    }

    /// Deletes a schedule; `false` when it was already gone (it fired, or never existed).
    pub async fn delete(&self, group: &str, name: &str) -> Result<bool, Fault> {
        match self.client.delete_schedule().group_name(group).name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
            Err(e) => Err(Fault::aws("scheduler:DeleteSchedule")(e)),
        }
    }
}

/// changegate's events on an EventBridge bus.
#[derive(Debug, Clone)]
pub struct Bus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl Bus {
    pub fn new(client: aws_sdk_eventbridge::Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    pub async fn put(&self, event: &ChangegateEvent) -> Result<(), Fault> {
        const OP: &str = "events:PutEvents";
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE_CHANGEGATE)
            .detail_type(event.detail_type())
            .detail(event.detail_json())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(Fault::aws(OP))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_code().map(|c| format!("{c}: {}", e.error_message().unwrap_or(""))))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Fault::Unexpected { operation: OP, why: format!("the event was not accepted ({why})") });
        }
        Ok(())
    }
}

/// The notification topic.
#[derive(Debug, Clone)]
pub struct Topic {
    client: aws_sdk_sns::Client,
    arn: String,
}

impl Topic {
    pub fn new(client: aws_sdk_sns::Client, arn: impl Into<String>) -> Self {
        Self { client, arn: arn.into() }
    }

    /// Publishes one notification; returns SNS's message id.
    pub async fn publish(&self, n: &Notification) -> Result<String, Fault> {
        const OP: &str = "sns:Publish";
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(Fault::unexpected(OP))
        };
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.arn)
            .subject(&n.subject)
            .message_structure("json")
            .message(n.sns_message())
            .message_attributes("kind", attribute(n.kind.as_str())?);
        if !n.change_request_id.is_empty() {
            request = request.message_attributes("change_request_id", attribute(&n.change_request_id)?);
        }
        if !n.people.is_empty() {
            let people = serde_json::to_string(&n.people).map_err(Fault::unexpected(OP))?;
            let value = MessageAttributeValue::builder()
                .data_type("String.Array")
                .string_value(people)
                .build()
                .map_err(Fault::unexpected(OP))?;
            request = request.message_attributes("user", value);
        }
        if let Some(account) = &n.account {
            request = request.message_attributes("account", attribute(account)?);
        }
        let out = request.send().await.map_err(Fault::aws(OP))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}
