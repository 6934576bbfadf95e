//! grant: an approved request (Change Manager or the request runbook) -> a windowed sts:AssumeRole policy for the requester.

use changegate::aws::Fault;
use changegate::config::GrantConfig;
use changegate::grant::Grantor;
use changegate::ids::Home;
use changegate::metrics::count;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = GrantConfig::from_env().inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate::sdk::load().await;
    let grantor = &Grantor::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let home = Home::from_function_arn(&event.context.invoked_function_arn).ok_or_else(|| {
            Fault::Unexpected {
                operation: "lambda:context",
                why: "the invoked function ARN names no partition and account".into(),
            }
        });
        let result = match home {
            Ok(home) => grantor.handle(event.payload, &home, Utc::now()).await,
            Err(fault) => Err(fault),
        };
        result.inspect_err(|f| count("grant", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
