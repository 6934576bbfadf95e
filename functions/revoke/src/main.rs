//! revoke: remove a grant when its expiry schedule fires, every grant whose
//! window or request has ended (the one-minute sweep), the grant of a request
//! that Systems Manager reports ended early, and on an operator's request.

use changegate::config::RevokeConfig;
use changegate::metrics::count;
use changegate::revoke::Revoker;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = RevokeConfig::from_env().inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate::sdk::load().await;
    let revoker = &Revoker::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        revoker
            .handle(event.payload, Utc::now(), Some(deadline))
            .await
            .inspect_err(|f| count("revoke", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
