//! grant: an approved request (Change Manager or the request runbook) -> a windowed sts:AssumeRole policy for the requester.

// The handler's future (the protocol's machines run over the AWS ports) is
// deeper than rustc's default query depth allows on a clean build.
#![recursion_limit = "256"]

use changegate::config::GrantConfig;
use changegate::fault::Fault;
use changegate::ids::Home;
use changegate_aws::env::Env;
use changegate_aws::grant::Grantor;
use changegate_aws::metrics::count;
use changegate_aws::{Failure, invocation};
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config =
        GrantConfig::from_source(&Env).inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate_aws::sdk::load().await;
    let grantor = &Grantor::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let inv = invocation(&event.context, Utc::now());
        let home = Home::from_function_arn(&event.context.invoked_function_arn).ok_or_else(|| {
            Fault::Unexpected {
                operation: "lambda:context",
                why: "the invoked function ARN names no partition and account".into(),
            }
        });
        let result = match home {
            Ok(home) => grantor.handle(event.payload, &home, &inv).await,
            Err(fault) => Err(fault),
        };
        result
            .map_err(Failure::from)
            .inspect_err(|Failure(f)| count("grant", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
