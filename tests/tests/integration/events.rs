//! The sample events in `events/` stay usable: each is JSON, the EventBridge
//! ones parse as the Lambda payload type, and the direct inputs have the
//! shapes the design names.

use changegate_tests::*;
use serde_json::Value;

#[test]
fn given_the_sample_events_when_read_then_each_is_the_shape_its_source_sends() {
    let dir = workspace_root().join("events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("events/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let event = sample_event(name);
        if event.get("detail-type").is_some() {
            // EventBridge: the envelope, and a detail object
            let parsed = as_event(&event);
            assert_eq!(parsed.source, event["source"].as_str().unwrap(), "{name}");
            assert!(event["detail"].is_object(), "{name}");
        } else {
            // A direct invocation: one key naming the input, an object of strings
            let map = event
                .as_object()
                .unwrap_or_else(|| panic!("{name}: not an object"));
            assert_eq!(map.len(), 1, "{name}");
            let (key, body) = map.iter().next().unwrap();
            assert!(key.starts_with("changegate-"), "{name}: {key}");
            assert!(
                body.as_object()
                    .is_some_and(|b| !b.is_empty() && b.values().all(Value::is_string)),
                "{name}"
            );
        }
    }
    let expiry: changegate::events::ExpiryInput =
        serde_json::from_value(sample_event("changegate-expiry.json"))
            .expect("revoke's expiry input");
    assert_eq!(expiry.expiry.user, "alice");
    assert_eq!(
        expiry.expiry.user_id.as_deref(),
        Some("AIDACKCEVSQ6C2EXAMPLE")
    );
    let step = sample_event("automation-step-approved.json");
    assert_eq!(
        (
            step["detail"]["Action"].as_str(),
            step["detail"]["Status"].as_str()
        ),
        (Some("aws:approve"), Some("Success"))
    );
}
