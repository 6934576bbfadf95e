//! revoke: remove grants whose window has ended (every minute), and the grant
//! of a change request that ends early (rejected, cancelled, closed, failed).

use changegate::config::RevokeConfig;
use changegate::revoke::Revoker;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = RevokeConfig::from_env().inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = aws_config::load_from_env().await;
    let revoker = &Revoker::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<Value>| async move { revoker.handle(event.payload, Utc::now()).await })).await
}
