//! template.yaml's end runbook in the local AWS: an operator, or a request's own people, ends a
//! request's access by starting it; its `aws:invokeLambdaFunction` step
//! (synchronous, so the execution stays `InProgress` while revoke runs) is
//! recorded by the local AWS, and the test hands its payload to revoke, then
//! revoke's answer back to the step.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Creds, World, get_json, localaws_json, plain_http};

/// The end runbook as the stack deploys it, created in one local AWS.
pub struct OperatorRunbook {
    /// Its name (`OperatorRunbookName`).
    pub name: String,
    /// `OperatorArns`, as the stack passes them to revoke.
    pub operators: String,
}

/// One start of the runbook, as revoke receives it.
pub struct OperatorCall {
    pub execution_id: String,
    /// The payload revoke is invoked with.
    pub payload: Value,
    invocation_id: String,
}

fn resolve(operators: &str) -> Value {
    let code = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import localaws
stack = localaws.Stack(localaws.load_template(), {"OperatorArns": sys.argv[2]})
doc = next(d for d in localaws.template_documents(stack) if d.logical_id == "OperatorRunbook")
assert not doc.skipped, doc.skipped
role = stack.resolve(stack.resources["OperatorRunbookRole"]["Properties"])
print(json.dumps({"name": doc.name, "text": doc.text, "env": stack.function_environment("RevokeFunction"), "role": {
    "name": stack.name("OperatorRunbookRole"), "trust": role["AssumeRolePolicyDocument"], "policies": role["Policies"]}}))
"#;
    localaws_json(
        code,
        &[operators.as_ref()],
        "reading template.yaml's end runbook",
    )
}

impl OperatorRunbook {
    /// template.yaml's end runbook and its role, deployed with
    /// `OperatorArns` = `operators`, created in `world`'s local AWS.
    pub async fn create(world: &World, operators: &str) -> Self {
        let v = resolve(operators);
        let role = &v["role"];
        let role_name = role["name"].as_str().expect("role name");
        world
            .iam
            .create_role()
            .role_name(role_name)
            .assume_role_policy_document(role["trust"].to_string())
            .send()
            .await
            .expect("the end runbook's role");
        for policy in role["policies"].as_array().expect("policies") {
            world
                .iam
                .put_role_policy()
                .role_name(role_name)
                .policy_name(policy["PolicyName"].as_str().expect("policy name"))
                .policy_document(policy["PolicyDocument"].to_string())
                .send()
                .await
                .expect("the role's policy");
        }
        let name = v["name"].as_str().expect("name").to_owned();
        aws_sdk_ssm::Client::new(&world.sdk)
            .create_document()
            .name(&name)
            .document_type(aws_sdk_ssm::types::DocumentType::Automation)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
            .content(v["text"].as_str().expect("text"))
            .send()
            .await
            .expect("create the end runbook");
        assert_eq!(
            v["env"]["CHANGEGATE_OPERATOR_RUNBOOK"], name,
            "revoke is told the runbook's name"
        );
        assert_eq!(v["env"]["CHANGEGATE_OPERATORS"], operators);
        Self {
            name,
            operators: operators.to_owned(),
        }
    }

    /// revoke's variables for this runbook, as the template sets them.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                changegate::config::VAR_OPERATOR_RUNBOOK.to_owned(),
                self.name.clone(),
            ),
            (
                changegate::config::VAR_OPERATORS.to_owned(),
                self.operators.clone(),
            ),
        ]
    }

    /// `creds` starts the runbook to end request `id`; waits for its call to
    /// revoke (at most 15 s) and returns it.
    pub async fn start(
        &self,
        world: &World,
        creds: &Creds,
        id: &str,
        reason: &str,
    ) -> OperatorCall {
        let ssm = aws_sdk_ssm::Client::new(&world.aws.sdk_as(creds).await);
        let execution_id = ssm
            .start_automation_execution()
            .document_name(&self.name)
            .parameters("ChangeRequestId", vec![id.to_owned()])
            .parameters("Reason", vec![reason.to_owned()])
            .send()
            .await
            .unwrap_or_else(|e| panic!("start the end runbook: {:?}", e.into_service_error()))
            .automation_execution_id()
            .expect("id")
            .to_owned();
        Self::call(world, &execution_id).await
    }

    /// Waits (at most 15 s) for the call to revoke of the runbook's execution
    /// `execution_id` (started by anyone: a person, the changegate command).
    pub async fn call(world: &World, execution_id: &str) -> OperatorCall {
        let execution_id = execution_id.to_owned();
        let deadline = Instant::now() + Duration::from_secs(15);
        let url = format!(
            "{}/_localaws/lambda/invocations?drain=1",
            world.aws.endpoint
        );
        loop {
            let calls = get_json(&url);
            let calls = calls.as_array().cloned().unwrap_or_default();
            if let Some(call) = calls
                .iter()
                .find(|c| c["AutomationExecutionId"] == execution_id.as_str())
            {
                assert_eq!(call["StepName"], "EndAccess", "{call}");
                assert_eq!(call["InvocationType"], "RequestResponse", "{call}");
                assert!(
                    call["FunctionName"]
                        .as_str()
                        .is_some_and(|f| f.ends_with(":function:changegate-revoke")),
                    "{call}"
                );
                let payload = call["Payload"].as_str().expect("payload");
                return OperatorCall {
                    execution_id,
                    payload: serde_json::from_str(payload).expect("payload JSON"),
                    invocation_id: call["InvocationId"].as_str().expect("id").to_owned(),
                };
            }
            assert!(
                Instant::now() < deadline,
                "the end runbook never called revoke"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl OperatorCall {
    /// Hands revoke's `response` back to the runbook's step, which then ends.
    pub fn answer(&self, world: &World, response: &Value) {
        let url = format!(
            "{}/_localaws/lambda/invocations/{}",
            world.aws.endpoint, self.invocation_id
        );
        let body = json!({"Payload": response.to_string()}).to_string();
        let (status, answer) = plain_http("POST", &url, &body);
        assert_eq!(status, 200, "POST {url}: {answer}");
    }
}
