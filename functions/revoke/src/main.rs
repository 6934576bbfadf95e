//! revoke: remove a grant when its expiry schedule fires, every grant whose
//! window or request has ended (the one-minute sweep), the grant of a request
//! that Systems Manager reports ended early, and on an operator's request.

// The handler's future nests every port's (the SDK's futures are deep): the
// compiler's default layout depth (128) is just short of it.
#![recursion_limit = "256"]

use changegate::config::RevokeConfig;
use changegate_aws::env::Env;
use changegate_aws::metrics::count;
use changegate_aws::revoke::Revoker;
use changegate_aws::{Failure, invocation};
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config =
        RevokeConfig::from_source(&Env).inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate_aws::sdk::load().await;
    let revoker = &Revoker::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        let inv = invocation(&event.context, Utc::now());
        revoker
            .handle(event.payload, &inv, Some(deadline))
            .await
            .map_err(Failure::from)
            .inspect_err(|Failure(f)| count("revoke", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
