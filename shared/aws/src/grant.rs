//! grant's handler: parse the trigger, then run the core's grant protocol
//! ([`changegate::protocol::grant`]) over the AWS ports. Nothing here decides.

use serde_json::Value;
use tracing::{info, warn};

use changegate::config::GrantConfig;
use changegate::events::Cause;
use changegate::execution::Execution;
use changegate::extension::retires;
use changegate::fault::Fault;
use changegate::ids::{ChangeRequestId, Home};
use changegate::ports::Requests;
use changegate::protocol::ending::{Ended, Ending};
pub use changegate::protocol::grant::GrantOutcome;
use changegate::protocol::grant::GrantRun;
use changegate::protocol::revocation::Reach;
use changegate::protocol::{Invocation, run};
use changegate::record::{EndedBy, State};
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
        let mut machine = GrantRun::new(id.clone(), inv.clone(), &self.config, home);
        let outcome = run(&mut machine, &self.ports, inv.now).await?;
        let granted = State::Granted.as_str();
        let is_granted = match &outcome {
            GrantOutcome::Granted { .. } => true,
            GrantOutcome::Announced { decision, .. }
            | GrantOutcome::AlreadyDecided { decision, .. } => decision == granted,
            _ => false,
        };
        if is_granted {
            let request = match machine.request() {
                Some(exec) => Some(exec.clone()),
                None => self.ports.execution(&id).await?,
            };
            self.retire_extended(&id, request.as_ref(), inv).await?;
        }
        match &outcome {
            GrantOutcome::Granted { .. } => metrics::count("grant", "Grants", None),
            GrantOutcome::Refused { reason_code, .. } => {
                metrics::count("grant", "Refusals", Some(("Reason", reason_code)))
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Request `id` (`exec`, Systems Manager's record of it, as grant read
    /// it) is granted: when it extends an earlier request of the same person
    /// ([`retires`], on Systems Manager's records of both), that one's grant
    /// is retired now (its tombstone, then its policy, no session cut: see
    /// [`changegate::extension`]). Every trigger of `id` does this again, so
    /// a fault here fails the invocation and a retry carries on; once done,
    /// it finds the tombstone and nothing to remove.
    async fn retire_extended(
        &self,
        id: &ChangeRequestId,
        exec: Option<&Execution>,
        inv: &Invocation,
    ) -> Result<(), Fault> {
        let Some(Ok(request)) = exec.and_then(Execution::access_request) else {
            return Ok(());
        };
        let Some(extended) = request.extends.clone() else {
            return Ok(());
        };
        let earlier = self.ports.execution(&extended).await?;
        let retire = match retires(id, &request, earlier.as_ref(), inv.now) {
            Ok(Some(retire)) => retire,
            Ok(None) => return Ok(()),
            Err(why) => {
                warn!(change_request_id = %id, extends = %extended, why = %why, "the extended request's grant is left to its own end");
                return Ok(());
            }
        };
        let reach = Reach {
            cuts: self.ports.cutter.is_some(),
            expiry: self.ports.expiry_group.is_some(),
        };
        let mut ending = Ending::new(
            retire.extended.clone(),
            Some(retire.user),
            Cause::Extended,
            inv.clone(),
            reach,
        )
        .ended_by(EndedBy {
            who: format!("its extension {id}"),
            reason: String::new(),
        });
        let ended = run(&mut ending, &self.ports, inv.now).await?;
        match ended {
            Ended::Removed { .. } => {
                info!(change_request_id = %id, extends = %extended, "extended: the earlier grant is retired");
            }
            Ended::Nothing(why) => {
                info!(change_request_id = %id, extends = %extended, why = %why, "extended: nothing left to retire");
            }
        }
        Ok(())
    }
}
