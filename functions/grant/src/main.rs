//! grant: Change Manager status update -> a windowed sts:AssumeRole policy for the requester.

use changegate::config::GrantConfig;
use changegate::grant::Grantor;
use changegate::metrics::count;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = GrantConfig::from_env().inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate::sdk::load().await;
    let grantor = &Grantor::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        grantor.handle(event.payload, Utc::now()).await.inspect_err(|f| count("grant", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
