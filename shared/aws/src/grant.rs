//! grant's handler: parse the trigger, then run the core's grant protocol
//! ([`changegate::protocol::grant`]) over the AWS ports. Nothing here decides.

use serde_json::Value;
use tracing::info;

use changegate::config::GrantConfig;
use changegate::fault::Fault;
use changegate::ids::{ChangeRequestId, Home};
pub use changegate::protocol::grant::GrantOutcome;
use changegate::protocol::grant::GrantRun;
use changegate::protocol::{Invocation, run};
use changegate::text::shown;
use changegate::trigger::Trigger;

use crate::metrics;
use crate::ports::{AwsPorts, Settings};

pub struct Grantor {
    pub config: GrantConfig,
    pub ports: AwsPorts,
}

fn ignored(reason: String) -> GrantOutcome {
    info!(outcome = "ignored", reason = %reason, "nothing to decide");
    GrantOutcome::Ignored { reason }
}

impl Grantor {
    pub fn new(config: GrantConfig, sdk: &aws_config::SdkConfig) -> Self {
        let ports = AwsPorts::new(
            sdk,
            Settings {
                table: &config.decisions_table,
                bus: &config.event_bus,
                expiry: config.expiry.clone(),
                expiry_group: None,
                session_cutter: config.session_cutter.clone(),
                function: "grant",
                document_versions: true,
            },
        );
        Self { config, ports }
    }

    /// One invocation: `inv` is Lambda's request id, deadline and the time it started.
    pub async fn handle(
        &self,
        input: Value,
        home: &Home,
        inv: &Invocation,
    ) -> Result<GrantOutcome, Fault> {
        let raw = match Trigger::parse(input) {
            Trigger::Look(id) => id,
            Trigger::Ignore(reason) => return Ok(ignored(reason)),
        };
        let Ok(id) = ChangeRequestId::parse(&raw) else {
            return Ok(ignored(format!("{:?} is not a request id", shown(&raw))));
        };
        let mut machine = GrantRun::new(id, inv.clone(), &self.config, home);
        let outcome = run(&mut machine, &self.ports, inv.now).await?;
        match &outcome {
            GrantOutcome::Granted { .. } => metrics::count("grant", "Grants", None),
            GrantOutcome::Refused { reason_code, .. } => {
                metrics::count("grant", "Refusals", Some(("Reason", reason_code)))
            }
            _ => {}
        }
        Ok(outcome)
    }
}
