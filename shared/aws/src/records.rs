//! The decision table (DynamoDB): one item per request, keyed by its id.
//! Every write that decides is conditional, so two invocations racing on
//! one request cannot both decide it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use changegate::events::{Cause, WindowDetail};
use changegate::fault::Fault;
use changegate::ids::ChangeRequestId;
use changegate::record::{Decided, DecisionRecord, Ended, Revoked, State};
use changegate::window::utc_string;

pub const KEY: &str = "change_request_id";

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn to_item(r: &DecisionRecord) -> Item {
    let mut item = Item::new();
    item.insert(KEY.into(), s(r.id.as_str()));
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            item.insert(k.into(), s(v));
        }
    };
    put("state", r.state.map(|st| st.as_str().to_owned()));
    put("decided_at", r.decided_at.clone());
    put("requester", r.requester.clone());
    put("reason_code", r.reason_code.clone());
    put("reason", r.reason.clone());
    if let Some(g) = &r.grant {
        put("source", Some(g.source.clone()));
        put("beneficiary", Some(g.beneficiary.clone()));
        put("account", Some(g.account.clone()));
        put("role", Some(g.role.clone()));
        put("window_start", Some(g.window.start.clone()));
        put("window_end", Some(g.window.end.clone()));
        put("start_offset", Some(g.window.start_offset.clone()));
        put("end_offset", Some(g.window.end_offset.clone()));
        put("request_reason", g.request_reason.clone());
        item.insert(
            "named_sessions".into(),
            AttributeValue::Bool(g.named_sessions),
        );
        if !g.approvers.is_empty() {
            item.insert(
                "approvers".into(),
                AttributeValue::L(g.approvers.iter().map(|a| s(a.as_str())).collect()),
            );
        }
    }
    item.insert("announced".into(), AttributeValue::Bool(r.announced));
    item
}

fn from_item(id: &ChangeRequestId, item: &Item) -> DecisionRecord {
    let grant = text(item, "beneficiary").map(|beneficiary| Decided {
        source: text(item, "source").unwrap_or_default(),
        beneficiary,
        approvers: item
            .get("approvers")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|a| a.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        account: text(item, "account").unwrap_or_default(),
        role: text(item, "role").unwrap_or_default(),
        window: WindowDetail {
            start: text(item, "window_start").unwrap_or_default(),
            end: text(item, "window_end").unwrap_or_default(),
            start_offset: text(item, "start_offset").unwrap_or_default(),
            end_offset: text(item, "end_offset").unwrap_or_default(),
        },
        request_reason: text(item, "request_reason"),
        named_sessions: item
            .get("named_sessions")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    });
    DecisionRecord {
        id: id.clone(),
        state: text(item, "state").and_then(|st| State::parse(&st)),
        decided_at: text(item, "decided_at"),
        requester: text(item, "requester"),
        announced: item
            .get("announced")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        grant,
        reason_code: text(item, "reason_code"),
        reason: text(item, "reason"),
        ended: text(item, "ended_at").map(|at| Ended {
            at,
            cause: text(item, "end_cause").unwrap_or_default(),
        }),
        revoked: text(item, "revoked_at").map(|at| Revoked {
            at,
            cause: text(item, "revocation_cause").unwrap_or_default(),
            lag_ms: item
                .get("revocation_lag_ms")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
        }),
    }
}

fn conditional_failed<E>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

impl Records {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The record of request `id` (strongly consistent); `None` if nothing was decided yet.
    pub async fn get(&self, id: &ChangeRequestId) -> Result<Option<DecisionRecord>, Fault> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(Fault::aws("dynamodb:GetItem"))?;
        Ok(out.item().map(|item| from_item(id, item)))
    }

    /// Writes a new decision; `false` when the request already has a record
    /// (another invocation decided, or it ended first).
    pub async fn create(&self, record: &DecisionRecord) -> Result<bool, Fault> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY)
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(Fault::aws("dynamodb:PutItem")(e)),
        }
    }

    /// Replaces a claim this invocation holds (`granting`) with `record`.
    pub async fn replace_claim(&self, record: &DecisionRecord) -> Result<bool, Fault> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression("#s = :granting AND attribute_not_exists(ended_at)")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":granting", s(State::Granting.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(Fault::aws("dynamodb:PutItem")(e)),
        }
    }

    /// `granting` -> `granted`, unless the request ended meanwhile (then `false`).
    pub async fn mark_granted(
        &self,
        id: &ChangeRequestId,
        now: DateTime<Utc>,
    ) -> Result<bool, Fault> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(id.as_str()))
            .update_expression("SET #s = :granted, granted_at = :now")
            .condition_expression("#s IN (:granting, :granted) AND attribute_not_exists(ended_at)")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":granted", s(State::Granted.as_str()))
            .expression_attribute_values(":granting", s(State::Granting.as_str()))
            .expression_attribute_values(":now", s(utc_string(now)))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(Fault::aws("dynamodb:UpdateItem")(e)),
        }
    }

    /// The decision was announced.
    pub async fn mark_announced(&self, id: &ChangeRequestId) -> Result<(), Fault> {
        self.update(
            id,
            "SET announced = :t",
            &[(":t", AttributeValue::Bool(true))],
        )
        .await
    }

    /// The tombstone: the request ended (or an operator ended it) at `at`.
    /// The first end is kept; creates the record if there is none yet.
    pub async fn end(
        &self,
        id: &ChangeRequestId,
        cause: &Cause,
        at: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let expr = "SET ended_at = if_not_exists(ended_at, :at), end_cause = if_not_exists(end_cause, :cause)";
        self.update(
            id,
            expr,
            &[(":at", s(utc_string(at))), (":cause", s(cause.as_str()))],
        )
        .await
    }

    /// How the access ended: when, why, and (at a window's end) the lag.
    /// Records how the access ended: when, why, and (at a window's end) the
    /// lag. `true` when this call recorded it first (the revocation is then
    /// to be announced, even if an earlier attempt already removed the policy).
    pub async fn revoked(
        &self,
        id: &ChangeRequestId,
        cause: &Cause,
        at: DateTime<Utc>,
        lag_ms: Option<i64>,
    ) -> Result<bool, Fault> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(id.as_str()))
            .condition_expression("attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", s(utc_string(at)))
            .expression_attribute_values(":cause", s(cause.as_str()));
        let mut expr = "SET revoked_at = :at, revocation_cause = :cause".to_owned();
        if let Some(lag) = lag_ms {
            expr.push_str(", revocation_lag_ms = :lag");
            req = req.expression_attribute_values(":lag", AttributeValue::N(lag.to_string()));
        }
        match req.update_expression(expr).send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(Fault::aws("dynamodb:UpdateItem")(e)),
        }
    }

    async fn update(
        &self,
        id: &ChangeRequestId,
        expression: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<(), Fault> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(id.as_str()))
            .update_expression(expression);
        for (k, v) in values {
            req = req.expression_attribute_values(*k, v.clone());
        }
        req.send()
            .await
            .map_err(Fault::aws("dynamodb:UpdateItem"))?;
        Ok(())
    }
}
