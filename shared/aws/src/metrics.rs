//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per
//! data point, which CloudWatch Logs turns into metrics in the `changegate`
//! namespace, dimensioned by function (and by reason, cause or kind).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "changegate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Percent,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Percent => "Percent",
        }
    }
}

/// One EMF record: `name` = `value` for `function`, with an optional extra dimension.
pub fn record(
    at: DateTime<Utc>,
    function: &str,
    name: &str,
    value: f64,
    unit: Unit,
    dimension: Option<(&str, &str)>,
) -> String {
    let mut dimensions = vec!["Function"];
    let mut root = Map::new();
    root.insert("Function".into(), Value::from(function));
    if let Some((key, val)) = dimension {
        dimensions.push(key);
        root.insert(key.into(), Value::from(val));
    }
    root.insert(name.into(), Value::from(value));
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": name, "Unit": unit.as_str()}],
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// Writes one record to stdout, where Lambda hands it to CloudWatch Logs.
pub fn emit(function: &str, name: &str, value: f64, unit: Unit, dimension: Option<(&str, &str)>) {
    println!(
        "{}",
        record(Utc::now(), function, name, value, unit, dimension)
    );
}

pub fn count(function: &str, name: &str, dimension: Option<(&str, &str)>) {
    emit(function, name, 1.0, Unit::Count, dimension);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_refusal_when_recorded_then_the_line_is_valid_emf_with_function_and_reason_dimensions()
     {
        let at: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let line = record(
            at,
            "grant",
            "Refusals",
            1.0,
            Unit::Count,
            Some(("Reason", "window-too-long")),
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Function"], "grant");
        assert_eq!(v["Reason"], "window-too-long");
        assert_eq!(v["Refusals"], 1.0);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_796_115_600_000i64);
        assert_eq!(m["Namespace"], "changegate");
        assert_eq!(m["Dimensions"], json!([["Function", "Reason"]]));
        assert_eq!(m["Metrics"], json!([{"Name": "Refusals", "Unit": "Count"}]));
        assert!(!line.contains('\n'));
    }
}
