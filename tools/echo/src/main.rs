//! echo: the start-up floor. A bare `lambda_runtime` function that answers
//! each event with the event itself, built with the same runtime, tokio and
//! release profile as grant, revoke and notify. It is not in template.yaml
//! and never deployed: `make bench` (tools/bench.py) times its init (process
//! start to the first `GET /next`) side by side with the functions', so that
//! their start-up is read against what any Rust Lambda function costs here.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
