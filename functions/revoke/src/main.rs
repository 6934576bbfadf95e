//! revoke: every minute, remove every changegate grant whose window has ended.

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
    // The schedule's event carries nothing the sweep needs.
    run(service_fn(move |_: LambdaEvent<Value>| async move { revoker.sweep(Utc::now()).await })).await
}
