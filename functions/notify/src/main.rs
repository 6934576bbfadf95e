//! notify: every Change Manager and changegate event -> one SNS message (email text + Slack card).

use changegate::config::NotifyConfig;
use changegate::metrics::count;
use changegate::notify::Notifier;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = NotifyConfig::from_env().inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate::sdk::load().await;
    let notifier = &Notifier::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        notifier
            .handle(event.payload)
            .await
            .inspect_err(|f| count("notify", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
