//! The decision table (DynamoDB): one item per request, keyed by its id. The
//! core defines every write with its condition ([`LedgerWrite`]); this adapter
//! only renders them as DynamoDB requests, so the conditions the protocol's
//! tests prove are the ones DynamoDB enforces.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use changegate::fault::Fault;
use changegate::ids::ChangeRequestId;
use changegate::record::{
    Condition, DecisionRecord, Item, KEY, LedgerWrite, PENDING_INDEX, PENDING_REVOCATION, Update,
    Value, attr,
};

#[derive(Debug, Clone)]
pub struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::L(l) => AttributeValue::L(l.iter().map(|s| AttributeValue::S(s.clone())).collect()),
    }
}

fn from_attribute(v: &AttributeValue) -> Option<Value> {
    match v {
        AttributeValue::S(s) => Some(Value::S(s.clone())),
        AttributeValue::N(n) => n.parse().ok().map(Value::N),
        AttributeValue::Bool(b) => Some(Value::Bool(*b)),
        AttributeValue::L(l) => Some(Value::L(
            l.iter().filter_map(|a| a.as_s().ok().cloned()).collect(),
        )),
        _ => None,
    }
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Item {
    item.iter()
        .filter_map(|(k, v)| from_attribute(v).map(|v| (k.clone(), v)))
        .collect()
}

/// A condition or update rendered as an expression, with its placeholders.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn name(&mut self, attr: &str) -> String {
        let key = format!("#n{}", self.names.len());
        let existing = self.names.iter().find(|(_, v)| v.as_str() == attr);
        match existing {
            Some((k, _)) => k.clone(),
            None => {
                self.names.insert(key.clone(), attr.to_owned());
                key
            }
        }
    }

    fn value(&mut self, v: &Value) -> String {
        let key = format!(":v{}", self.values.len());
        self.values.insert(key.clone(), to_attribute(v));
        key
    }

    fn condition(&mut self, c: &Condition) -> Option<String> {
        Some(match c {
            Condition::NoItem => format!("attribute_not_exists({})", self.name(KEY)),
            Condition::Absent(a) => format!("attribute_not_exists({})", self.name(a)),
            Condition::Exists(a) => format!("attribute_exists({})", self.name(a)),
            Condition::Equals(a, v) => format!("{} = {}", self.name(a), self.value(v)),
            Condition::In(a, vs) => {
                let name = self.name(a);
                let values: Vec<String> = vs.iter().map(|v| self.value(v)).collect();
                format!("{name} IN ({})", values.join(", "))
            }
            Condition::All(cs) => {
                let parts: Vec<String> = cs.iter().filter_map(|c| self.condition(c)).collect();
                if parts.is_empty() {
                    return None;
                }
                parts
                    .iter()
                    .map(|p| format!("({p})"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            }
        })
    }
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
            .key(KEY, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(Fault::aws("dynamodb:GetItem"))?;
        Ok(out
            .item()
            .map(|item| DecisionRecord::from_item(id, &from_item(item))))
    }

    /// Applies `write` if its condition holds; `false` when it did not.
    pub async fn write(&self, write: &LedgerWrite) -> Result<bool, Fault> {
        let op = write.operation();
        let mut expr = Expression::default();
        let condition = expr.condition(&write.condition());
        let result = match write.update() {
            Update::Put(item) => {
                let item: HashMap<String, AttributeValue> = item
                    .iter()
                    .map(|(k, v)| (k.clone(), to_attribute(v)))
                    .collect();
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names((!expr.names.is_empty()).then_some(expr.names))
                    .set_expression_attribute_values(
                        (!expr.values.is_empty()).then_some(expr.values),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (conditional_failed(&e), Fault::aws(op)(e)))
            }
            Update::Set { set, keep, remove } => {
                let mut parts = Vec::new();
                for (k, v) in &set {
                    parts.push(format!("{} = {}", expr.name(k), expr.value(v)));
                }
                for (k, v) in &keep {
                    let name = expr.name(k);
                    parts.push(format!("{name} = if_not_exists({name}, {})", expr.value(v)));
                }
                let mut update = format!("SET {}", parts.join(", "));
                if !remove.is_empty() {
                    let names: Vec<String> = remove.iter().map(|k| expr.name(k)).collect();
                    update.push_str(&format!(" REMOVE {}", names.join(", ")));
                }
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key(KEY, AttributeValue::S(write.id().to_string()))
                    .update_expression(update)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(Some(expr.names))
                    .set_expression_attribute_values(Some(expr.values))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (conditional_failed(&e), Fault::aws(op)(e)))
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err((true, _)) => Ok(false),
            Err((false, fault)) => Err(fault),
        }
    }
}

impl Records {
    /// Every record whose revocation waits for its announcement: the
    /// table's sparse index, read page by page.
    pub async fn unannounced_revocations(&self) -> Result<Vec<DecisionRecord>, Fault> {
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", attr::PENDING)
                .expression_attribute_values(":p", AttributeValue::S(PENDING_REVOCATION.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(Fault::aws("dynamodb:Query"))?;
            for item in out.items() {
                let item = from_item(item);
                let id = match item.get(KEY) {
                    Some(Value::S(key)) => ChangeRequestId::parse(key).ok(),
                    _ => None,
                };
                if let Some(id) = id {
                    records.push(DecisionRecord::from_item(&id, &item));
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(records),
            }
        }
    }
}

fn conditional_failed<E>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}
