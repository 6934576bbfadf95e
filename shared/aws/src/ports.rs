//! The core's ports over the AWS SDK: one value holding every adapter a
//! function uses, so that the protocol's driver runs against AWS exactly as
//! its tests run it in memory.

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use changegate::admission::OpenRun;
use changegate::check::UserRecord;
use changegate::config::ExpirySchedules;
use changegate::eligibility::ELIGIBILITY_TAG;
use changegate::events::ChangegateEvent;
use changegate::execution::Execution;
use changegate::fault::Fault;
use changegate::ids::{ChangeRequestId, IamUserId, IamUserName, RoleName};
use changegate::policy::{Grant, PARTITION, PolicyListing};
use changegate::ports::{
    Bus as BusPort, CutAt, CutOutcome, Ledger, Put, Requests, Schedules as SchedulesPort,
    SessionCuts, UserGrants,
};
use changegate::record::{DecisionRecord, LedgerWrite};
use changegate::session::SessionCut;

use crate::adapters::{Bus, Iam, Schedules, Ssm};
use crate::metrics;
use crate::records::Records;
use crate::sessions::Sessions;

/// The session cut in the production accounts, through the cutter role.
pub struct Cutter {
    sessions: Sessions,
    /// The function using it, for metrics.
    function: &'static str,
}

impl Cutter {
    pub fn new(sdk: &aws_config::SdkConfig, cutter_role: RoleName, function: &'static str) -> Self {
        Self {
            sessions: Sessions::new(sdk, PARTITION, cutter_role, function),
            function,
        }
    }

    async fn update(
        &self,
        grant: &Grant,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut SessionCut),
    ) -> Result<CutOutcome, Fault> {
        const OP: &str = "iam:PutRolePolicy";
        let production = self.sessions.open(&grant.account).await?;
        let Some(role) = production.target_role(&grant.role).await? else {
            warn!(change_request_id = %grant.change_request, account = %grant.account, role = %grant.role, "no such target role; no session to cut");
            return Ok(CutOutcome::NoSuchRole);
        };
        let mut cut = SessionCut::from_role(role.cut_document()).map_err(Fault::unexpected(OP))?;
        change(&mut cut);
        cut.collect(now, role.max_session);
        let others = role.others_chars();
        let rendered = cut.render(others, now).map_err(Fault::unexpected(OP))?;
        production.write(&grant.role, &rendered.written).await?;
        metrics::emit(
            self.function,
            "SessionCutBudgetUsed",
            rendered.budget_used_percent(others),
            metrics::Unit::Percent,
            None,
        );
        let Some(fallback) = rendered.fallback else {
            info!(change_request_id = %grant.change_request, user = %grant.user, account = %grant.account, role = %grant.role, "session cut written");
            return Ok(CutOutcome::Cut);
        };
        metrics::count(self.function, "SessionCutFallbacks", None);
        error!(
            change_request_id = %grant.change_request, account = %grant.account, role = %grant.role,
            all_before = %fallback.all_before, dropped = ?fallback.dropped,
            "the role's inline policy budget is full: every session of the role issued before now is denied"
        );
        Ok(CutOutcome::AllSessionsCut)
    }
}

/// Every adapter a function uses, as the core's ports.
pub struct AwsPorts {
    pub ssm: Ssm,
    pub records: Records,
    pub iam: Iam,
    pub bus: Bus,
    pub schedules: Schedules,
    pub expiry: Option<ExpirySchedules>,
    /// Where expiry schedules live (revoke deletes them; grant creates them).
    pub expiry_group: Option<String>,
    /// `None` when the deployment cuts no sessions (no production-account stack).
    pub cutter: Option<Cutter>,
    /// The function, for metrics.
    pub function: &'static str,
}

/// Where a function's ports write.
pub struct Settings<'a> {
    pub table: &'a str,
    pub bus: &'a str,
    pub expiry: Option<ExpirySchedules>,
    pub expiry_group: Option<String>,
    pub session_cutter: Option<RoleName>,
    pub function: &'static str,
    /// Whether executions come with their documents' current versions
    /// (grant decides on them; revoke never does).
    pub document_versions: bool,
}

impl AwsPorts {
    pub fn new(sdk: &aws_config::SdkConfig, settings: Settings<'_>) -> Self {
        Self {
            ssm: if settings.document_versions {
                Ssm::new(aws_sdk_ssm::Client::new(sdk))
            } else {
                Ssm::without_versions(aws_sdk_ssm::Client::new(sdk))
            },
            records: Records::new(aws_sdk_dynamodb::Client::new(sdk), settings.table),
            iam: Iam::new(aws_sdk_iam::Client::new(sdk)),
            bus: Bus::new(aws_sdk_eventbridge::Client::new(sdk), settings.bus),
            schedules: Schedules::new(aws_sdk_scheduler::Client::new(sdk)),
            expiry_group: settings
                .expiry_group
                .or_else(|| settings.expiry.as_ref().map(|e| e.group.clone())),
            expiry: settings.expiry,
            cutter: settings
                .session_cutter
                .map(|role| Cutter::new(sdk, role, settings.function)),
            function: settings.function,
        }
    }
}

impl Requests for AwsPorts {
    async fn execution(&self, id: &ChangeRequestId) -> Result<Option<Execution>, Fault> {
        self.ssm.execution(id.as_str()).await
    }

    async fn default_version(&self, document: &str) -> Result<Option<String>, Fault> {
        self.ssm.default_version(document).await
    }

    async fn open_runs(&self, document: &str) -> Result<Vec<OpenRun>, Fault> {
        self.ssm.open_runs(document).await
    }

    async fn stop(&self, id: &ChangeRequestId) -> Result<bool, Fault> {
        self.ssm.stop(id.as_str()).await
    }
}

impl Ledger for AwsPorts {
    async fn record(&self, id: &ChangeRequestId) -> Result<Option<DecisionRecord>, Fault> {
        self.records.get(id).await
    }

    async fn write(&self, write: &LedgerWrite) -> Result<bool, Fault> {
        self.records.write(write).await
    }

    async fn unannounced_revocations(&self) -> Result<Vec<DecisionRecord>, Fault> {
        self.records.unannounced_revocations().await
    }
}

impl UserGrants for AwsPorts {
    async fn user(&self, user: &IamUserName) -> Result<Option<UserRecord>, Fault> {
        self.iam.user_record(user.as_str(), ELIGIBILITY_TAG).await
    }

    async fn policy(&self, user: &IamUserName, policy: &str) -> Result<Option<String>, Fault> {
        self.iam.user_policy(user.as_str(), policy).await
    }

    async fn put_policy(
        &self,
        user: &IamUserName,
        policy: &str,
        document: &str,
    ) -> Result<Put, Fault> {
        self.iam
            .put_user_policy(user.as_str(), policy, document)
            .await
    }

    async fn delete_policy(&self, user: &IamUserName, policy: &str) -> Result<bool, Fault> {
        self.iam.delete_user_policy(user.as_str(), policy).await
    }

    async fn policies_with_prefix(&self, prefix: &str) -> Result<PolicyListing, Fault> {
        self.iam.user_policies_with_prefix(prefix).await
    }

    async fn user_id(&self, user: &IamUserName) -> Result<Option<IamUserId>, Fault> {
        self.iam.user_id(user.as_str()).await
    }

    async fn user_named(&self, id: &IamUserId) -> Result<Option<IamUserName>, Fault> {
        self.iam.user_named(id).await
    }
}

impl SessionCuts for AwsPorts {
    async fn cut(&self, grant: &Grant, at: CutAt, now: DateTime<Utc>) -> Result<CutOutcome, Fault> {
        let Some(cutter) = &self.cutter else {
            return Err(Fault::Unexpected {
                operation: "iam:PutRolePolicy",
                why: "a session cut was asked for, but this deployment cuts no sessions".into(),
            });
        };
        let (start, end) = (grant.window.start_utc(), grant.window.end_utc());
        match at {
            CutAt::WindowEnd => {
                cutter
                    .update(grant, now, |cut| {
                        cut.extend(&grant.session_name, start, end, now)
                    })
                    .await
            }
            CutAt::Now => {
                cutter
                    .update(grant, now, |cut| cut.cut_now(&grant.session_name, now))
                    .await
            }
        }
    }
}

impl BusPort for AwsPorts {
    async fn announce(&self, event: &ChangegateEvent) -> Result<(), Fault> {
        self.bus.put(event).await
    }
}

impl SchedulesPort for AwsPorts {
    async fn schedule_expiry(&self, grant: &Grant) -> Result<(), Fault> {
        match &self.expiry {
            Some(expiry) => self.schedules.create_expiry(expiry, grant).await,
            None => Ok(()),
        }
    }

    async fn unschedule(&self, name: &str) -> Result<bool, Fault> {
        match &self.expiry_group {
            Some(group) => self.schedules.delete(group, name).await,
            None => Ok(false),
        }
    }
}
