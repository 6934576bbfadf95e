//! Systems Manager: a request as its Automation execution records it.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{
    AutomationExecution, AutomationExecutionFilter, AutomationExecutionFilterKey,
    AutomationSubtype, StepExecution, StopType,
};

use changegate::admission::{OPEN_STATUSES, OpenRun};

use changegate::approval::{
    ApprovalStatus, parse_decisions, parse_min_required, parse_step_approvers,
};
use changegate::execution::{ApprovalStep, Execution, Origin, RunbookRun, Versions};
use changegate::fault::Fault;
use changegate::request::RawParameters;
use changegate::status::Status;
use changegate::verify::ChangeRequestRecord;

const APPROVE: &str = "aws:approve";

#[derive(Debug, Clone)]
pub struct Ssm {
    client: aws_sdk_ssm::Client,
    /// Whether an execution comes with its documents' current versions
    /// (one `DescribeDocument` each): grant decides on them; revoke, whose
    /// sweep reads every active grant's execution each minute, does not.
    versions: bool,
}

fn parameters(p: Option<&std::collections::HashMap<String, Vec<String>>>) -> RawParameters {
    p.map(|p| {
        p.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    })
    .unwrap_or_default()
}

/// One `aws:approve` step, read into the domain's terms.
fn approval_step(step: &StepExecution) -> ApprovalStep {
    let output = |key: &str| step.outputs().and_then(|o| o.get(key));
    let input = |key: &str| step.inputs().and_then(|i| i.get(key));
    let enhanced = input("EnhancedApprovals").map(String::as_str);
    ApprovalStep {
        name: step.step_name().unwrap_or_default().to_owned(),
        status: Status::parse(step.step_status().map(|s| s.as_str()).unwrap_or_default()),
        approval_status: output("ApprovalStatus")
            .and_then(|v| v.first())
            .map(|raw| ApprovalStatus::parse(raw)),
        decisions: output("ApproverDecisions")
            .filter(|v| !v.is_empty())
            .and_then(|v| parse_decisions(v)),
        // Inputs are JSON text: a runbook's `Approvers` (a list, or one), or
        // a change template level's `EnhancedApprovals` object.
        approvers: parse_step_approvers(input("Approvers").map(String::as_str), enhanced),
        min_required: parse_min_required(
            input("MinRequiredApprovals").map(String::as_str),
            enhanced,
        ),
    }
}

/// Who may approve at an `aws:approve` step, as it ran: `Inputs.Approvers`
/// (a list of names or ARNs, or one) or a change template's
/// `EnhancedApprovals.Approvers` (objects naming each `approver`). Inputs are
/// JSON text; what cannot be read names nobody.
fn may_approve(step: &StepExecution) -> Vec<String> {
    use serde_json::Value;
    let input = |key: &str| {
        step.inputs()
            .and_then(|i| i.get(key))
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
    };
    let list = match input("Approvers") {
        Some(v) => v,
        None => input("EnhancedApprovals")
            .and_then(|e| e.get("Approvers").cloned())
            .unwrap_or(Value::Null),
    };
    let entries = match list {
        Value::Array(items) => items,
        one => vec![one],
    };
    entries
        .iter()
        .filter_map(|e| match e {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("approver")
                .or_else(|| o.get("Approver"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect()
}

impl Ssm {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self {
            client,
            versions: true,
        }
    }

    /// Reads executions without their documents' current versions (revoke).
    pub fn without_versions(client: aws_sdk_ssm::Client) -> Self {
        Self {
            client,
            versions: false,
        }
    }

    /// `GetAutomationExecution` as Systems Manager answers it; `None` when
    /// it has no such execution.
    async fn get_execution(&self, id: &str) -> Result<Option<AutomationExecution>, Fault> {
        const OP: &str = "ssm:GetAutomationExecution";
        let out = match self
            .client
            .get_automation_execution()
            .automation_execution_id(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_automation_execution_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Fault::aws(OP)(e)),
        };
        out.automation_execution
            .map(Some)
            .ok_or_else(|| Fault::Unexpected {
                operation: OP,
                why: "no AutomationExecution in the answer".into(),
            })
    }

    /// `GetAutomationExecution`, and every `aws:approve` step (paging
    /// `DescribeAutomationStepExecutions` when the steps were truncated);
    /// `None` when Systems Manager has no such execution.
    pub async fn execution(&self, id: &str) -> Result<Option<Execution>, Fault> {
        const OP: &str = "ssm:GetAutomationExecution";
        let Some(exec) = self.get_execution(id).await? else {
            return Ok(None);
        };
        let status = exec
            .automation_execution_status()
            .map(|s| Status::parse(s.as_str()))
            .ok_or_else(|| Fault::Unexpected {
                operation: OP,
                why: "no AutomationExecutionStatus".into(),
            })?;
        let document = exec.document_name().unwrap_or_default().to_owned();
        // The version of each document as the request ran it: the
        // execution's own (a change request's: its change template's), and
        // each runbook's.
        let mut versions = Versions::default();
        if let Some(v) = exec.document_version() {
            versions.ran.insert(document.clone(), v.to_owned());
        }
        let origin = if exec.automation_subtype() == Some(&AutomationSubtype::ChangeRequest) {
            let runbooks = exec
                .runbooks()
                .iter()
                .map(|rb| {
                    if let Some(v) = rb.document_version() {
                        versions
                            .ran
                            .insert(rb.document_name().to_owned(), v.to_owned());
                    }
                    RunbookRun {
                        document: rb.document_name().to_owned(),
                        parameters: parameters(rb.parameters()),
                    }
                })
                .collect();
            Origin::ChangeRequest {
                template: document,
                runbooks,
            }
        } else {
            Origin::Automation {
                document,
                parameters: parameters(exec.parameters()),
            }
        };
        let approval_steps = if exec.step_executions_truncated() {
            self.approval_steps(id).await?
        } else {
            exec.step_executions()
                .iter()
                .filter(|s| s.action() == Some(APPROVE))
                .map(approval_step)
                .collect()
        };
        // And the deployment's current version of each (one DescribeDocument
        // per document; a document that is gone has none).
        if self.versions {
            for name in versions.ran.keys() {
                if let Some(current) = self.default_version(name).await? {
                    versions.current.insert(name.clone(), current);
                }
            }
        }
        Ok(Some(Execution {
            status,
            executed_by: exec.executed_by().map(str::to_owned),
            origin,
            approval_steps,
            versions,
        }))
    }

    /// A change request as Systems Manager records it, for its messages:
    /// `GetAutomationExecution` (and every `aws:approve` step when they were
    /// truncated); `None` when Systems Manager has no such execution.
    pub async fn change_request(&self, id: &str) -> Result<Option<ChangeRequestRecord>, Fault> {
        let Some(exec) = self.get_execution(id).await? else {
            return Ok(None);
        };
        let steps = if exec.step_executions_truncated() {
            self.approve_steps(id).await?
        } else {
            exec.step_executions()
                .iter()
                .filter(|s| s.action() == Some(APPROVE))
                .cloned()
                .collect()
        };
        let mut approvers: Vec<String> = Vec::new();
        for a in steps.iter().flat_map(may_approve) {
            if !approvers.contains(&a) {
                approvers.push(a);
            }
        }
        Ok(Some(ChangeRequestRecord {
            template: (exec.automation_subtype() == Some(&AutomationSubtype::ChangeRequest))
                .then(|| exec.document_name().unwrap_or_default().to_owned()),
            status: Status::parse(
                exec.automation_execution_status()
                    .map(|s| s.as_str())
                    .unwrap_or_default(),
            ),
            requester: exec.executed_by().map(str::to_owned),
            title: exec.change_request_name().map(str::to_owned),
            approvers,
        }))
    }

    /// Every `aws:approve` step of an execution as Systems Manager returns it, all pages.
    async fn approve_steps(&self, id: &str) -> Result<Vec<StepExecution>, Fault> {
        const OP: &str = "ssm:DescribeAutomationStepExecutions";
        let mut steps = Vec::new();
        let mut pages = self
            .client
            .describe_automation_step_executions()
            .automation_execution_id(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(Fault::aws(OP))?;
            steps.extend(
                page.step_executions()
                    .iter()
                    .filter(|s| s.action() == Some(APPROVE))
                    .cloned(),
            );
        }
        Ok(steps)
    }

    /// `DescribeDocument`'s `DefaultVersion`; `None` when Systems Manager has
    /// no such document (`InvalidDocument`).
    pub async fn default_version(&self, name: &str) -> Result<Option<String>, Fault> {
        const OP: &str = "ssm:DescribeDocument";
        match self.client.describe_document().name(name).send().await {
            Ok(out) => Ok(out
                .document()
                .and_then(|d| d.default_version())
                .map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_invalid_document()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Fault::aws(OP)(e)),
        }
    }

    /// The account's executions of documents whose name begins with
    /// `document` in [`OPEN_STATUSES`]: every page of
    /// `DescribeAutomationExecutions` (at most 50 a page; a filter takes at
    /// most 10 values: SSM API Reference, AutomationExecutionFilter).
    pub async fn open_runs(&self, document: &str) -> Result<Vec<OpenRun>, Fault> {
        self.runs(document, Some(&OPEN_STATUSES), None).await
    }

    /// Every execution of `document` (a name prefix, as Systems Manager
    /// filters) in one of `statuses` (any, when `None`) started after
    /// `since` (any time, when `None`): every page read.
    pub async fn runs(
        &self,
        document: &str,
        statuses: Option<&[&str]>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<OpenRun>, Fault> {
        const OP: &str = "ssm:DescribeAutomationExecutions";
        let filter = |key, values: &[&str]| {
            AutomationExecutionFilter::builder()
                .key(key)
                .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
                .build()
                .map_err(Fault::unexpected("an AutomationExecutionFilter"))
        };
        let mut filters = vec![filter(
            AutomationExecutionFilterKey::DocumentNamePrefix,
            &[document],
        )?];
        if let Some(statuses) = statuses {
            filters.push(filter(
                AutomationExecutionFilterKey::ExecutionStatus,
                statuses,
            )?);
        }
        // The value's format is not documented (*unconfirmed*): an ISO 8601
        // UTC time, as Systems Manager writes its own times. Only the
        // changegate command's listings pass `since`; were AWS to read it
        // otherwise, a listing could miss a request, which is still found by
        // its id (grant and revoke never list by time).
        if let Some(since) = since {
            let at = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            filters.push(filter(
                AutomationExecutionFilterKey::StartTimeAfter,
                &[&at],
            )?);
        }
        let mut pages = self
            .client
            .describe_automation_executions()
            .set_filters(Some(filters))
            .max_results(50)
            .into_paginator()
            .send();
        let mut runs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(Fault::aws(OP))?;
            for m in page.automation_execution_metadata_list() {
                let (Some(id), Some(document)) = (m.automation_execution_id(), m.document_name())
                else {
                    continue;
                };
                runs.push(OpenRun {
                    id: id.to_owned(),
                    document: document.to_owned(),
                    executed_by: m.executed_by().map(str::to_owned),
                    started: m
                        .execution_start_time()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
        }
        Ok(runs)
    }

    /// Stops execution `id` (`Cancel`); `false` when it had ended already
    /// (`InvalidAutomationStatusUpdateException`) or does not exist.
    pub async fn stop(&self, id: &str) -> Result<bool, Fault> {
        match self
            .client
            .stop_automation_execution()
            .automation_execution_id(id)
            .r#type(StopType::Cancel)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_invalid_automation_status_update_exception()
                        || s.is_automation_execution_not_found_exception()
                }) =>
            {
                Ok(false)
            }
            Err(e) => Err(Fault::aws("ssm:StopAutomationExecution")(e)),
        }
    }

    /// Every `aws:approve` step of an execution, all pages.
    async fn approval_steps(&self, id: &str) -> Result<Vec<ApprovalStep>, Fault> {
        Ok(self
            .approve_steps(id)
            .await?
            .iter()
            .map(approval_step)
            .collect())
    }
}
