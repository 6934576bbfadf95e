//! notify: every Change Manager and changegate event -> one SNS message (email text + Slack card).

// The handler's future (the protocol's machines run over the AWS ports) is
// deeper than rustc's default query depth allows on a clean build.
#![recursion_limit = "256"]

use changegate::config::NotifyConfig;
use changegate_aws::Failure;
use changegate_aws::env::Env;
use changegate_aws::metrics::count;
use changegate_aws::notify::Notifier;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config =
        NotifyConfig::from_source(&Env).inspect_err(|e| tracing::error!("configuration: {e}"))?;
    let sdk = changegate_aws::sdk::load().await;
    let notifier = &Notifier::new(config, &sdk);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        notifier
            .handle(event.payload)
            .await
            .map_err(Failure::from)
            .inspect_err(|Failure(f)| count("notify", "Faults", Some(("Kind", f.kind()))))
    }))
    .await
}
