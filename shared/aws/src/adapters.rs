//! Thin adapters over the AWS SDK: each call changegate makes, with AWS's
//! "not found" answers turned into values and every other error into a
//! [`Fault`]. They read AWS into the domain's types and depend on the domain,
//! never the reverse.

pub use crate::records::Records;
pub use crate::sessions::{ProductionIam, Sessions, TargetRole};
pub use crate::ssm::Ssm;
pub use changegate::fault::Fault;
pub use changegate::ports::Put;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_iam::types::EntityType;
use aws_sdk_sns::types::MessageAttributeValue;
use percent_encoding::percent_decode_str;

use changegate::check::UserRecord;
use changegate::config::ExpirySchedules;
use changegate::eligibility::ELIGIBILITY_TAG;
use changegate::events::{ChangegateEvent, ExpiryInput, ExpiryTarget, SOURCE_CHANGEGATE};
use changegate::expiry::expiry_at;
use changegate::ids::{IamUserId, IamUserName};
use changegate::message::Notification;
use changegate::policy::Grant;
use changegate::policy::{PolicyListing, UserPolicy};

#[derive(Debug, Clone)]
pub struct Iam {
    client: aws_sdk_iam::Client,
}

pub fn decode(document: &str) -> Result<String, Fault> {
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
    pub async fn user_record(
        &self,
        user: &str,
        tag_key: &str,
    ) -> Result<Option<UserRecord>, Fault> {
        let found = match self.client.get_user().user_name(user).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Fault::aws("iam:GetUser")(e)),
        };
        let tag = found
            .user()
            .and_then(|u| u.tags().iter().find(|t| t.key() == tag_key))
            .map(|t| t.value().to_owned());
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_user_policies()
            .user_name(user)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => names.extend(page.policy_names().iter().cloned()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Fault::aws("iam:ListUserPolicies")(e)),
            }
        }
        let mut inline_policies = Vec::with_capacity(names.len());
        for name in names {
            if let Some(doc) = self.user_policy(user, &name).await? {
                inline_policies.push((name, doc));
            }
        }
        let name = found
            .user()
            .and_then(|u| changegate::ids::IamUserName::parse(u.user_name()).ok());
        let id = found
            .user()
            .and_then(|u| changegate::ids::IamUserId::parse(u.user_id()).ok());
        let boundary = found
            .user()
            .and_then(|u| u.permissions_boundary())
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_owned);
        Ok(Some(UserRecord {
            name,
            id,
            tag,
            boundary,
            inline_policies,
        }))
    }

    /// IAM's unique id of the user called `user` (GetUser's `UserId`); `None`
    /// when there is no such user.
    pub async fn user_id(&self, user: &str) -> Result<Option<IamUserId>, Fault> {
        const OP: &str = "iam:GetUser";
        match self.client.get_user().user_name(user).send().await {
            Ok(out) => {
                let raw = out.user().map(|u| u.user_id()).unwrap_or_default();
                IamUserId::parse(raw)
                    .map(Some)
                    .map_err(|e| Fault::Unexpected {
                        operation: OP,
                        why: format!("the user's UserId {e}"),
                    })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Fault::aws(OP)(e)),
        }
    }

    /// The name IAM has now for the user whose unique id is `id`. IAM has no
    /// lookup by id: the account's users are read page by page from
    /// `GetAccountAuthorizationDetails` (the sweep's listing, which revoke may
    /// already call) until one has it; `None` when none does.
    pub async fn user_named(&self, id: &IamUserId) -> Result<Option<IamUserName>, Fault> {
        let mut pages = self
            .client
            .get_account_authorization_details()
            .filter(EntityType::User)
            .max_items(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(Fault::aws("iam:GetAccountAuthorizationDetails"))?;
            let found = page
                .user_detail_list()
                .iter()
                .find(|u| u.user_id() == Some(id.as_str()))
                .and_then(|u| u.user_name());
            if let Some(name) = found {
                return IamUserName::parse(name)
                    .map(Some)
                    .map_err(|e| Fault::Unexpected {
                        operation: "iam:GetAccountAuthorizationDetails",
                        why: format!("the user name of {id} {e}"),
                    });
            }
        }
        Ok(None)
    }

    /// The decoded document of `policy` on `user`; `None` when either does not exist.
    pub async fn user_policy(&self, user: &str, policy: &str) -> Result<Option<String>, Fault> {
        match self
            .client
            .get_user_policy()
            .user_name(user)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(out) => decode(out.policy_document()).map(Some),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Fault::aws("iam:GetUserPolicy")(e)),
        }
    }

    pub async fn put_user_policy(
        &self,
        user: &str,
        policy: &str,
        document: &str,
    ) -> Result<Put, Fault> {
        match self
            .client
            .put_user_policy()
            .user_name(user)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
        {
            Ok(_) => Ok(Put::Done),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(Put::NoSuchUser)
            }
            Err(e) => Err(Fault::aws("iam:PutUserPolicy")(e)),
        }
    }

    /// Deletes `policy` from `user`; `false` when it was already gone.
    pub async fn delete_user_policy(&self, user: &str, policy: &str) -> Result<bool, Fault> {
        match self
            .client
            .delete_user_policy()
            .user_name(user)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
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
                let Some(user_name) = user.user_name() else {
                    continue;
                };
                // GetAccountAuthorizationDetails lists each user's tags
                // (IAM API Reference, UserDetail: Tags).
                let eligibility = user
                    .tags()
                    .iter()
                    .find(|t| t.key() == ELIGIBILITY_TAG)
                    .map(|t| t.value().to_owned());
                for policy in user.user_policy_list() {
                    let (Some(name), Some(doc)) = (policy.policy_name(), policy.policy_document())
                    else {
                        continue;
                    };
                    if name.starts_with(prefix) {
                        listing.policies.push(UserPolicy {
                            user: user_name.to_owned(),
                            name: name.to_owned(),
                            document: decode(doc)?,
                            eligibility: eligibility.clone(),
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
    pub async fn create_expiry(
        &self,
        config: &ExpirySchedules,
        grant: &Grant,
    ) -> Result<(), Fault> {
        const OP: &str = "scheduler:CreateSchedule";
        let input = ExpiryInput {
            expiry: ExpiryTarget {
                change_request_id: grant.change_request.to_string(),
                user: grant.user.to_string(),
                user_id: grant.user_id.as_ref().map(ToString::to_string),
            },
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
        let at = expiry_at(grant.window.end_utc()).format("%Y-%m-%dT%H:%M:%S");
        let out = self
            .client
            .create_schedule()
            .name(grant.policy_name())
            .group_name(&config.group)
            .description(format!(
                "changegate: remove {} from {} at the end of its window",
                grant.policy_name(),
                grant.user
            ))
            .schedule_expression(format!("at({at})"))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(aws_sdk_scheduler::types::ActionAfterCompletion::Delete)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Fault::aws(OP)(e)),
        }
    }

    /// Deletes a schedule; `false` when it was already gone (it fired, or never existed).
    pub async fn delete(&self, group: &str, name: &str) -> Result<bool, Fault> {
        match self
            .client
            .delete_schedule()
            .group_name(group)
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
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
        Self {
            client,
            name: name.into(),
        }
    }

    pub async fn put(&self, event: &ChangegateEvent) -> Result<(), Fault> {
        const OP: &str = "events:PutEvents";
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE_CHANGEGATE)
            .detail_type(event.detail_type())
            .detail(event.detail_json())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(Fault::aws(OP))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| {
                    e.error_code()
                        .map(|c| format!("{c}: {}", e.error_message().unwrap_or("")))
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Fault::Unexpected {
                operation: OP,
                why: format!("the event was not accepted ({why})"),
            });
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
        Self {
            client,
            arn: arn.into(),
        }
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
        request = request.message_attributes(
            "change_request_id",
            attribute(n.change_request_id.as_str())?,
        );
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
