"""server.py's SSM Automation and Change Manager emulation, with plain boto3
against a server of its own (``--max-inline-steps 1``, so that every
execution with two steps or more is truncated in GetAutomationExecution)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import yaml

import localaws

SERVER = Path(__file__).resolve().parents[1] / "server.py"
ACCOUNT = "123456789012"

SCRIPT = """
from datetime import datetime, timezone


def handler(events, context):
    end = datetime.fromisoformat(events["EndTime"].replace("Z", "+00:00")).astimezone(timezone.utc)
    return {"EndUtc": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
"""
TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})$"
PARAMETERS = {
    "IAMUserName": {"type": "String", "allowedPattern": r"^[\w+=,.@-]{1,64}$"},
    "AWSAccountId": {"type": "String", "allowedPattern": "^[0-9]{12}$"},
    "StartTime": {"type": "String", "allowedPattern": TIME},
    "EndTime": {"type": "String", "allowedPattern": TIME},
}
STAY_OPEN = [
    {
        "name": "ComputeEnd",
        "action": "aws:executeScript",
        "inputs": {"Runtime": "python3.11", "Handler": "handler", "Script": SCRIPT, "InputPayload": {"EndTime": "{{ EndTime }}"}},
        "outputs": [{"Name": "EndUtc", "Selector": "$.Payload.EndUtc", "Type": "String"}],
    },
    {"name": "StayOpen", "action": "aws:sleep", "inputs": {"Timestamp": "{{ ComputeEnd.EndUtc }}"}},
]
RUNBOOK = {"schemaVersion": "0.3", "parameters": PARAMETERS, "mainSteps": STAY_OPEN}


def change_template(levels: list[list[str]], auto: bool = False) -> dict[str, Any]:
    return {
        "schemaVersion": "0.3",
        "emergencyChange": False,
        "autoApprovable": auto,
        "executableRunBooks": [{"name": "changegate-access-runbook", "version": "$DEFAULT"}],
        "mainSteps": [
            {
                "name": f"Level{i + 1}",
                "action": "aws:approve",
                "timeoutSeconds": 3600,
                "inputs": {
                    "Message": "please review",
                    "EnhancedApprovals": {
                        "Approvers": [{"approver": a, "type": "IamUser", "minRequiredApprovals": 0} for a in level],
                        "MinRequiredApprovals": 1,
                    },
                },
            }
            for i, level in enumerate(levels)
        ],
    }


def request_runbook(approvers: list[str], topic: str | None = None, sleep: dict[str, str] | None = None) -> dict[str, Any]:
    approve: dict[str, Any] = {
        "name": "Approve",
        "action": "aws:approve",
        "inputs": {"Approvers": approvers, "MinRequiredApprovals": 1, "Message": "id {{automation:EXECUTION_ID}}"},
    }
    if topic:
        approve["inputs"]["NotificationArn"] = topic
    grant = {
        "name": "Grant",
        "action": "aws:invokeLambdaFunction",
        "inputs": {
            "FunctionName": "changegate-grant",
            "InvocationType": "Event",
            "Payload": '{"changegate-request": {"execution-id": "{{automation:EXECUTION_ID}}"}}',
        },
    }
    tail = [{"name": "StayOpen", "action": "aws:sleep", "inputs": sleep}] if sleep else STAY_OPEN
    return {
        "schemaVersion": "0.3",
        "parameters": dict(PARAMETERS, Reason={"type": "String", "default": ""}),
        "mainSteps": [approve, grant, *tail],
    }


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with localaws.Server(args=["--max-inline-steps", "1"]) as aws:
        yield aws.url


def client(url: str, service: str, creds: dict[str, str] | None = None) -> Any:
    creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **creds)


class World:
    """A reset server with users alice, bob, carol, dave, an SQS queue of every
    aws.ssm event, and the caller's SSM clients."""

    def __init__(self, url: str):
        self.url = url
        urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", data=b"", method="POST")).read()
        iam = client(url, "iam")
        self.ssm = {"admin": client(url, "ssm")}
        for user in ("alice", "bob", "carol", "dave"):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
            self.ssm[user] = client(url, "ssm", creds)
        self.sqs = client(url, "sqs")
        self.queue = self.sqs.create_queue(QueueName="ssm-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = client(url, "events")
        events.put_rule(Name="ssm", EventPattern=json.dumps({"source": ["aws.ssm"]}))
        events.put_targets(Rule="ssm", Targets=[{"Id": "q", "Arn": arn}])

    def document(self, name: str, content: dict[str, Any], kind: str = "Automation") -> None:
        """YAML, as changegate's documents are: an inline script is refused in JSON."""
        self.ssm["admin"].create_document(Name=name, DocumentType=kind, DocumentFormat="YAML", Content=yaml.safe_dump(content))

    def events(self) -> list[dict[str, Any]]:
        out = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.ssm["admin"].get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]

    def all_steps(self, execution_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        pages = self.ssm["admin"].get_paginator("describe_automation_step_executions")
        return pages.paginate(AutomationExecutionId=execution_id, **kwargs).build_full_result()["StepExecutions"]

    def invocations(self, drain: bool = False) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/_localaws/lambda/invocations" + ("?drain=1" if drain else "")) as r:
            return json.load(r)


@pytest.fixture
def world(url: str) -> World:
    return World(url)


def window(seconds: float) -> dict[str, list[str]]:
    """The four parameters for a window from now, written in +09:00."""
    now = datetime.now(timezone(timedelta(hours=9)))
    return {
        "IAMUserName": ["alice"],
        "AWSAccountId": ["111122223333"],
        "StartTime": [now.isoformat(timespec="seconds")],
        "EndTime": [(now + timedelta(seconds=seconds)).isoformat(timespec="seconds")],
    }


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# -- Change Manager -------------------------------------------------------------


def file_request(world: World, who: str = "alice", template: str = "changegate-access", **kwargs: Any) -> str:
    params = kwargs.pop("params", None) or window(2)
    runbook = kwargs.pop("runbook", "changegate-access-runbook")
    return world.ssm[who].start_change_request_execution(
        DocumentName=template, ChangeRequestName="prod", Runbooks=[{"DocumentName": runbook, "Parameters": params}], **kwargs
    )["AutomationExecutionId"]


def test_change_requests_need_the_template_and_runbook_as_documents(world: World) -> None:
    start = world.ssm["alice"].start_change_request_execution
    runbooks = [{"DocumentName": "changegate-access-runbook", "Parameters": window(2)}]
    assert error_code(start, DocumentName="changegate-access", Runbooks=runbooks) == "AutomationDefinitionNotFoundException"
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("lookalike", change_template([["bob"]]))  # an Automation document, not a change template
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")
    assert (
        world.ssm["admin"].describe_document(Name="changegate-access")["Document"]["DocumentType"] == "Automation.ChangeTemplate"
    )
    assert error_code(start, DocumentName="lookalike", Runbooks=runbooks) == "AutomationDefinitionNotFoundException"
    missing = [{"DocumentName": "no-such-runbook", "Parameters": window(2)}]
    assert error_code(start, DocumentName="changegate-access", Runbooks=missing) == "AutomationDefinitionNotFoundException"
    bad = [{"DocumentName": "changegate-access-runbook", "Parameters": dict(window(2), AWSAccountId=["12"])}]
    assert error_code(start, DocumentName="changegate-access", Runbooks=bad) == "InvalidAutomationExecutionParametersException"
    # The template does not allow auto-approval.
    assert error_code(start, DocumentName="changegate-access", Runbooks=runbooks, AutoApprove=True) == "ValidationException"
    six = [{"Key": f"k{i}", "Value": "v"} for i in range(6)]
    assert error_code(start, DocumentName="changegate-access", Runbooks=runbooks, Tags=six) == "ValidationException"


def test_every_level_must_approve_and_the_request_stays_open_until_the_end(world: World) -> None:
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access", change_template([["bob"], ["carol"]]), kind="Automation.ChangeTemplate")
    world.events()
    cr = file_request(world, params=window(3))
    ex = world.execution(cr)
    assert ex["AutomationExecutionStatus"] == "PendingApproval"
    assert (ex["DocumentName"], ex["AutomationSubtype"], ex["ExecutedBy"]) == (
        "changegate-access",
        "ChangeRequest",
        f"arn:aws:iam::{ACCOUNT}:user/alice",
    )
    assert [(rb["DocumentName"], rb["DocumentVersion"]) for rb in ex["Runbooks"]] == [("changegate-access-runbook", "1")]
    # --max-inline-steps 1: two levels, one inline.
    assert ex["StepExecutionsTruncated"] is True
    assert [s["StepName"] for s in ex["StepExecutions"]] == ["Level1"]

    signal = world.ssm["dave"].send_automation_signal
    assert error_code(signal, AutomationExecutionId=cr, SignalType="Approve") == "AccessDeniedException"
    signal = world.ssm["carol"].send_automation_signal  # a level-2 approver, at level 1
    assert error_code(signal, AutomationExecutionId=cr, SignalType="Approve") == "AccessDeniedException"

    world.ssm["bob"].send_automation_signal(AutomationExecutionId=cr, SignalType="Approve", Payload={"Comment": ["ok"]})
    assert world.execution(cr)["AutomationExecutionStatus"] == "PendingApproval"
    steps = world.all_steps(cr, PaginationConfig={"PageSize": 1})
    assert [(s["StepName"], s["Action"], s["StepStatus"]) for s in steps] == [
        ("Level1", "aws:approve", "Success"),
        ("Level2", "aws:approve", "Waiting"),
    ]
    assert steps[0]["Outputs"]["ApprovalStatus"] == ["Approved"]
    decisions = [json.loads(d) for d in steps[0]["Outputs"]["ApproverDecisions"]]
    assert [(d["Approver"], d["Decision"], d["Comment"]) for d in decisions] == [
        (f"arn:aws:iam::{ACCOUNT}:user/bob", "Approve", "ok")
    ]
    assert json.loads(steps[1]["Inputs"]["EnhancedApprovals"])["Approvers"][0]["approver"] == "carol"
    waiting = world.all_steps(cr, Filters=[{"Key": "StepExecutionStatus", "Values": ["Waiting"]}])
    assert [s["StepName"] for s in waiting] == ["Level2"]
    assert [s["StepName"] for s in world.all_steps(cr, ReverseOrder=True)] == ["Level2", "Level1"]

    world.ssm["carol"].send_automation_signal(AutomationExecutionId=cr, SignalType="Approve")
    assert world.execution(cr)["AutomationExecutionStatus"] == "RunbookInProgress"
    wait_for(lambda: world.execution(cr)["AutomationExecutionStatus"] == "CompletedWithSuccess")
    statuses = [e["detail"]["ops-item-status"] for e in world.events() if e["detail-type"] == "Change Request Status Update"]
    assert statuses == ["PendingApproval", "Approved", "RunbookInProgress", "CompletedWithSuccess"]


def test_cancel_in_the_window_and_reject(world: World) -> None:
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")
    cr = file_request(world, params=window(60))
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=cr, SignalType="Approve")
    assert world.execution(cr)["AutomationExecutionStatus"] == "RunbookInProgress"
    world.ssm["alice"].stop_automation_execution(AutomationExecutionId=cr)
    assert world.execution(cr)["AutomationExecutionStatus"] == "Cancelled"
    stop = world.ssm["alice"].stop_automation_execution
    assert error_code(stop, AutomationExecutionId=cr) == "InvalidAutomationStatusUpdateException"

    rejected = file_request(world)
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=rejected, SignalType="Reject")
    ex = world.execution(rejected)
    assert ex["AutomationExecutionStatus"] == "Rejected"
    assert ex["StepExecutions"][0]["StepStatus"] == "Failed"
    assert ex["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Rejected"]


def test_auto_approve_only_when_the_template_allows_it(world: World) -> None:
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access", change_template([["bob"]], auto=True), kind="Automation.ChangeTemplate")
    cr = file_request(world, AutoApprove=True, params=window(30))
    ex = world.execution(cr)
    assert ex["AutomationExecutionStatus"] == "RunbookInProgress"
    assert ex["StepExecutions"][0]["Outputs"] == {"ApprovalStatus": ["Approved"], "ApproverDecisions": []}


def test_an_execution_holds_at_most_five_tags(world: World) -> None:
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")
    cr = file_request(world, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(4)])
    admin = world.ssm["admin"]
    admin.add_tags_to_resource(
        ResourceType="Automation", ResourceId=cr, Tags=[{"Key": "k0", "Value": "w"}, {"Key": "k4", "Value": "v"}]
    )
    assert len(admin.list_tags_for_resource(ResourceType="Automation", ResourceId=cr)["TagList"]) == 5
    add = admin.add_tags_to_resource
    assert error_code(add, ResourceType="Automation", ResourceId=cr, Tags=[{"Key": "k5", "Value": "v"}]) == "TooManyTagsError"
    assert (
        error_code(add, ResourceType="Automation", ResourceId="0" * 36, Tags=[{"Key": "a", "Value": "v"}]) == "InvalidResourceId"
    )


# -- plain Automation -------------------------------------------------------------


APPROVERS = [f"arn:aws:iam::{ACCOUNT}:user/bob", "carol"]


def start(world: World, params: dict[str, list[str]] | None = None, who: str = "alice") -> str:
    return world.ssm[who].start_automation_execution(DocumentName="changegate-access-request", Parameters=params or window(2))[
        "AutomationExecutionId"
    ]


def test_request_runbook_parameters_are_checked(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    run = world.ssm["alice"].start_automation_execution
    for params in (
        {"IAMUserName": ["alice"]},
        dict(window(2), Extra=["x"]),
        dict(window(2), AWSAccountId=["1"]),
        dict(window(2), IAMUserName=["a", "b"]),
    ):
        code = error_code(run, DocumentName="changegate-access-request", Parameters=params)
        assert code == "InvalidAutomationExecutionParametersException", params
    assert error_code(run, DocumentName="no-such-runbook") == "AutomationDefinitionNotFoundException"


def test_request_runbook_approval_grant_call_and_window(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    world.events()
    execution = start(world, window(3))
    ex = world.execution(execution)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    assert ex["ExecutedBy"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert ex["Parameters"]["Reason"] == [""]
    assert "AutomationSubtype" not in ex
    assert ex["StepExecutionsTruncated"] is True
    approve = ex["StepExecutions"][0]
    assert (approve["StepName"], approve["StepStatus"]) == ("Approve", "Waiting")
    assert json.loads(approve["Inputs"]["Approvers"]) == APPROVERS
    assert json.loads(approve["Inputs"]["Message"]) == f"id {execution}"

    signal = world.ssm["dave"].send_automation_signal
    assert error_code(signal, AutomationExecutionId=execution, SignalType="Approve") == "AccessDeniedException"
    world.ssm["carol"].send_automation_signal(AutomationExecutionId=execution, SignalType="Approve")
    assert world.execution(execution)["AutomationExecutionStatus"] == "InProgress"
    steps = {s["StepName"]: s for s in world.all_steps(execution)}
    assert [s["StepStatus"] for s in steps.values()] == ["Success", "Success", "Success", "InProgress"]
    decisions = [json.loads(d) for d in steps["Approve"]["Outputs"]["ApproverDecisions"]]
    assert [d["Approver"] for d in decisions] == [f"arn:aws:iam::{ACCOUNT}:user/carol"]
    assert steps["ComputeEnd"]["Outputs"]["EndUtc"][0].endswith("Z")
    calls = world.invocations(drain=True)
    assert [(c["FunctionName"], c["InvocationType"], json.loads(c["Payload"])) for c in calls] == [
        ("changegate-grant", "Event", {"changegate-request": {"execution-id": execution}})
    ]
    assert world.invocations() == []

    wait_for(lambda: world.execution(execution)["AutomationExecutionStatus"] == "Success")
    seen = [(e["detail-type"], e["detail"]["Status"], e["detail"].get("StepName")) for e in world.events()]
    step, run = "EC2 Automation Step Status-change Notification", "EC2 Automation Execution Status-change Notification"
    assert seen == [
        (run, "InProgress", None),
        (step, "Waiting", "Approve"),
        (run, "Waiting", None),
        (step, "Success", "Approve"),
        (run, "InProgress", None),
        (step, "Success", "Grant"),
        (step, "InProgress", "ComputeEnd"),
        (step, "Success", "ComputeEnd"),
        (step, "InProgress", "StayOpen"),
        (step, "Success", "StayOpen"),
        (run, "Success", None),
    ]


def test_automation_event_shape(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    world.events()
    execution = start(world)
    first = world.events()[0]
    assert first["source"] == "aws.ssm"
    assert first["resources"] == [
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-execution/{execution}",
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/changegate-access-request:1",
    ]
    detail = first["detail"]
    assert set(detail) == {
        "ExecutionId",
        "Definition",
        "DefinitionVersion",
        "Status",
        "StartTime",
        "EndTime",
        "Time",
        "ExecutedBy",
    }
    assert detail["DefinitionVersion"] == 1.0
    datetime.strptime(detail["StartTime"], "%b %d, %Y %I:%M:%S %p")  # e.g. "Nov 29, 2024 7:43:25 PM"


def test_reject_and_stop(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    rejected = start(world)
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=rejected, SignalType="Reject")
    ex = world.execution(rejected)
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert ex["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Rejected"]
    signal = world.ssm["carol"].send_automation_signal
    assert error_code(signal, AutomationExecutionId=rejected, SignalType="Approve") == "InvalidAutomationSignalException"
    assert world.invocations(drain=True) == []

    stopped = start(world, window(60))
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=stopped, SignalType="Approve")
    world.ssm["alice"].stop_automation_execution(AutomationExecutionId=stopped)
    assert world.execution(stopped)["AutomationExecutionStatus"] == "Cancelled"
    assert [s["StepStatus"] for s in world.all_steps(stopped)][-1] == "Cancelled"


def test_a_complete_stop_ends_the_execution_exited(world: World) -> None:
    """StopAutomationExecution Type=Complete: AWS documents the type, not the
    status it ends in; the emulator ends it Exited (an ending status changegate
    removes access on), and refuses a type AWS does not list."""
    world.document("changegate-access-request", request_runbook(APPROVERS))
    execution = start(world, window(60))
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=execution, SignalType="Approve")
    world.events()
    stop = world.ssm["alice"].stop_automation_execution
    assert error_code(stop, AutomationExecutionId=execution, Type="Finish") == "ValidationException"
    stop(AutomationExecutionId=execution, Type="Complete")
    ex = world.execution(execution)
    assert ex["AutomationExecutionStatus"] == "Exited" and "ExecutionEndTime" in ex
    ended = [e["detail"]["Status"] for e in world.events() if e["detail-type"].endswith("Execution Status-change Notification")]
    assert ended == ["Exited"]
    assert error_code(stop, AutomationExecutionId=execution) == "InvalidAutomationStatusUpdateException"


def test_approval_topic_must_be_named_automation(world: World) -> None:
    sns = client(world.url, "sns")
    good = sns.create_topic(Name="Automation-changegate-approvers")["TopicArn"]
    bad = sns.create_topic(Name="changegate-approvers")["TopicArn"]
    world.document("changegate-access-request", request_runbook(APPROVERS, topic=bad))
    ex = world.execution(start(world))
    assert ex["AutomationExecutionStatus"] == "Failed"
    world.ssm["admin"].update_document(
        Name="changegate-access-request", Content=yaml.safe_dump(request_runbook(APPROVERS, topic=good)),
        DocumentFormat="YAML", DocumentVersion="$LATEST",
    )
    world.ssm["admin"].update_document_default_version(Name="changegate-access-request", DocumentVersion="2")
    execution = start(world)
    assert world.execution(execution)["AutomationExecutionStatus"] == "Waiting"
    assert world.execution(execution)["DocumentVersion"] == "2"
    with urllib.request.urlopen(world.url + "/_localaws/sns/published") as r:
        published = [m for m in json.load(r) if m["TopicArn"] == good]
    assert len(published) == 1 and execution in published[0]["Message"]


def test_sleep_longer_than_seven_days_fails(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS, sleep={"Duration": "P8D"}))
    execution = start(world)
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=execution, SignalType="Approve")
    ex = world.execution(execution)
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert "604800" in ex["FailureMessage"]


def test_branch_and_next_step_chain_sleeps(world: World) -> None:
    """A runbook may chain sleeps (aws:sleep lasts at most 7 days) with
    aws:branch and nextStep; the server follows them."""
    script = """
import time


def handler(events, context):
    return {"Left": int(events["Until"]) - int(time.time())}
"""
    loop = {
        "schemaVersion": "0.3",
        "parameters": {"Until": {"type": "String"}},
        "mainSteps": [
            {
                "name": "Left",
                "action": "aws:executeScript",
                "inputs": {
                    "Runtime": "python3.11",
                    "Handler": "handler",
                    "Script": script,
                    "InputPayload": {"Until": "{{ Until }}"},
                },
                "outputs": [{"Name": "Left", "Selector": "$.Payload.Left", "Type": "Integer"}],
            },
            {
                "name": "More",
                "action": "aws:branch",
                "inputs": {
                    "Choices": [{"NextStep": "Nap", "Variable": "{{ Left.Left }}", "NumericGreater": 0}],
                    "Default": "Done",
                },
            },
            {"name": "Nap", "action": "aws:sleep", "nextStep": "Left", "inputs": {"Duration": "PT1S"}},
            {"name": "Done", "action": "aws:sleep", "isEnd": True, "inputs": {"Duration": "PT0S"}},
        ],
    }
    world.document("looper", loop)
    execution = world.ssm["alice"].start_automation_execution(
        DocumentName="looper", Parameters={"Until": [str(int(time.time()) + 2)]}
    )["AutomationExecutionId"]
    assert world.execution(execution)["AutomationExecutionStatus"] == "InProgress"
    wait_for(lambda: world.execution(execution)["AutomationExecutionStatus"] == "Success")
    names = [s["StepName"] for s in world.all_steps(execution)]
    assert names[:4] == ["Left", "More", "Nap", "Left"] and names[-2:] == ["More", "Done"], names
    assert names.count("Left") == names.count("More") == names.count("Nap") + 1


def test_describe_automation_executions_lists_both_kinds(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")
    waiting = start(world)
    cr = file_request(world)
    admin = world.ssm["admin"]
    listed = admin.get_paginator("describe_automation_executions").paginate(PaginationConfig={"PageSize": 1}).build_full_result()
    assert {m["AutomationExecutionId"] for m in listed["AutomationExecutionMetadataList"]} == {waiting, cr}
    only = admin.describe_automation_executions(Filters=[{"Key": "ExecutionStatus", "Values": ["Waiting"]}])
    [meta] = only["AutomationExecutionMetadataList"]
    assert (meta["AutomationExecutionId"], meta["DocumentName"], meta["CurrentStepName"]) == (
        waiting,
        "changegate-access-request",
        "Approve",
    )
    changes = admin.describe_automation_executions(Filters=[{"Key": "AutomationSubtype", "Values": ["ChangeRequest"]}])
    assert [m["AutomationExecutionId"] for m in changes["AutomationExecutionMetadataList"]] == [cr]


def test_given_filters_aws_would_refuse_when_describing_executions_then_each_is_refused_as_aws_documents(
    world: World,
) -> None:
    """DescribeAutomationExecutions as its API Reference bounds it: a filter
    takes 1-10 values of 1-150 characters (AutomationExecutionFilter)."""
    admin = world.ssm["admin"]
    for values in (["Waiting"] * 11, ["x" * 151]):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            admin.describe_automation_executions(Filters=[{"Key": "DocumentNamePrefix", "Values": values}])
        assert refused.value.response["Error"]["Code"] == "InvalidFilterValue", values
    ten = ["Pending", "InProgress", "Waiting", "Cancelling", "Success", "Failed", "TimedOut", "Cancelled", "Exited", "Approved"]
    admin.describe_automation_executions(Filters=[{"Key": "ExecutionStatus", "Values": ten}])


def test_the_templates_documents_run_here(url: str) -> None:
    """changegate's own documents, provisioned from template.yaml, run to the
    end in this emulator: no step of theirs is one it does not emulate."""
    sys.path.insert(0, str(SERVER.parent))
    import localaws

    world = World(url)
    people = [f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{ACCOUNT}:user/carol"]
    provisioned = localaws.provision(
        url, parameters={"RequestSources": "Both", "ApproverArns": ",".join(people), "AllowedAccountIds": "111122223333"}
    )
    made = {d.logical_id: d.document_type for d in provisioned.documents if d.created}
    assert made == {"AccessRunbook": "Automation", "ChangeTemplate": "Automation.ChangeTemplate",
                    "RequestRunbook": "Automation", "OperatorRunbook": "Automation"}, [d.skipped for d in provisioned.documents]
    execution = world.ssm["alice"].start_automation_execution(
        DocumentName=provisioned.document_name("RequestRunbook"), Parameters=window(2))["AutomationExecutionId"]
    assert world.execution(execution)["AutomationExecutionStatus"] == "Waiting"
    world.ssm["bob"].send_automation_signal(AutomationExecutionId=execution, SignalType="Approve")
    # Approved, it wakes grant (asynchronously) and ends: it holds no slot
    # of the account's concurrent automations while the access lasts
    assert world.execution(execution)["AutomationExecutionStatus"] == "Success"
    assert [c["AutomationExecutionId"] for c in world.invocations(drain=True)] == [execution]
    ids = [execution]
    cr = file_request(world, template=provisioned.document_name("ChangeTemplate"),
                      runbook=provisioned.document_name("AccessRunbook"), params=window(2))
    world.ssm["carol"].send_automation_signal(AutomationExecutionId=cr, SignalType="Approve")
    assert world.execution(cr)["AutomationExecutionStatus"] == "RunbookInProgress"
    ids.append(cr)
    for i in ids:
        wait_for(lambda i=i: world.execution(i)["AutomationExecutionStatus"] in ("Success", "CompletedWithSuccess"))
    # The operators' runbook calls revoke synchronously: its step runs (the
    # execution InProgress) until the call is answered, and the answer is
    # the step's and the execution's output.
    operator = world.ssm["alice"].start_automation_execution(
        DocumentName=provisioned.document_name("OperatorRunbook"),
        Parameters={"ChangeRequestId": [execution], "Reason": ["incident over"]})["AutomationExecutionId"]
    assert world.execution(operator)["AutomationExecutionStatus"] == "InProgress"
    [call] = world.invocations(drain=True)
    assert (call["AutomationExecutionId"], call["StepName"], call["InvocationType"]) == (operator, "EndAccess", "RequestResponse")
    assert json.loads(call["Payload"]) == {"changegate-end": {"execution-id": operator}}
    answer = json.dumps({"Payload": json.dumps({"outcome": "ignored"})}).encode()
    request = urllib.request.Request(f"{url}/_localaws/lambda/invocations/{call['InvocationId']}", data=answer, method="POST")
    with urllib.request.urlopen(request) as r:
        assert r.status == 200
    done = world.execution(operator)
    assert done["AutomationExecutionStatus"] == "Success", done
    assert done["Outputs"] == {"EndAccess.Payload": [json.dumps({"outcome": "ignored"})]}
    with pytest.raises(urllib.error.HTTPError) as again:
        urllib.request.urlopen(urllib.request.Request(request.full_url, data=answer, method="POST"))
    assert again.value.code == 404


def test_client_token_is_a_uuid_and_a_retry_must_repeat_the_request(world: World) -> None:
    world.document("changegate-access-request", request_runbook(APPROVERS))
    run = world.ssm["alice"].start_automation_execution
    params = window(30)
    token = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    first = run(DocumentName="changegate-access-request", Parameters=params, ClientToken=token)["AutomationExecutionId"]
    again = run(DocumentName="changegate-access-request", Parameters=params, ClientToken=token.upper())["AutomationExecutionId"]
    assert first == again
    other = dict(params, IAMUserName=["bob"])
    code = error_code(run, DocumentName="changegate-access-request", Parameters=other, ClientToken=token)
    assert code == "IdempotentParameterMismatch"
    code = error_code(
        run, DocumentName="changegate-access-request", Parameters=params, ClientToken="same-token-0000000000000000000000000"
    )
    assert code == "ValidationException"


def test_an_approval_message_over_4096_characters_fails_the_step(world: World) -> None:
    runbook = request_runbook(APPROVERS)
    runbook["mainSteps"][0]["inputs"]["Message"] = "Reason: {{ Reason }}"
    world.document("changegate-access-request", runbook)
    execution = start(world, dict(window(30), Reason=["x" * 4100]))
    ex = world.execution(execution)
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert "4096" in ex["FailureMessage"]


def test_over_the_concurrency_quota_an_execution_waits_pending() -> None:
    with localaws.Server(args=["--max-concurrent-automations", "1"]) as aws:
        world = World(aws.url)
        world.document("changegate-access-request", request_runbook(APPROVERS))
        first = start(world, window(60))
        second = start(world, window(60))
        assert world.execution(first)["AutomationExecutionStatus"] == "Waiting"
        assert world.execution(second)["AutomationExecutionStatus"] == "Pending"
        world.ssm["alice"].stop_automation_execution(AutomationExecutionId=first)
        wait_for(lambda: world.execution(second)["AutomationExecutionStatus"] == "Waiting")


def test_a_runbook_with_a_service_role_needs_pass_role(world: World) -> None:
    """With moto's IAM enforcement on, starting a runbook that names an
    assumeRole needs iam:PassRole on it (iam:PassedToService ssm.amazonaws.com)."""
    role = f"arn:aws:iam::{ACCOUNT}:role/changegate-request-runbook"
    runbook = dict(request_runbook(APPROVERS), assumeRole=role)
    world.document("changegate-access-request", runbook)
    iam = client(world.url, "iam")
    start_only = {"Effect": "Allow", "Action": ["ssm:StartAutomationExecution", "ssm:GetAutomationExecution"], "Resource": "*"}
    pass_role = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role,
        "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
    }
    iam.put_user_policy(
        UserName="alice",
        PolicyName="p",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [start_only, pass_role]}),
    )
    iam.put_user_policy(
        UserName="dave", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [start_only]})
    )
    auth = urllib.request.Request(
        world.url + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(auth).read()
    try:
        assert start(world, who="alice")
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            start(world, who="dave")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "iam:PassRole" in str(denied.value)
    finally:
        off = urllib.request.Request(
            world.url + "/moto-api/reset-auth", data=b"inf", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(off).read()


# -- as strict as AWS: the runbook's role and the change template's runbooks -----------


def runbook_role(world: World, name: str, statements: list[dict[str, Any]], service: str = "ssm.amazonaws.com") -> str:
    iam = client(world.url, "iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    if statements:
        iam.put_role_policy(RoleName=name, PolicyName="p",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return arn


def test_a_runbook_invokes_lambda_as_its_role_only_where_the_role_allows_it(world: World) -> None:
    """aws:invokeLambdaFunction in a runbook with an assumeRole acts as that
    role: without lambda:InvokeFunction on the function the step fails (and,
    onFailure Continue aside, nothing is invoked); a role that does not exist
    or does not trust Systems Manager ends the execution before any step."""
    grant_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:changegate-grant"
    allowed = runbook_role(world, "can-invoke", [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": grant_arn}])
    other = runbook_role(world, "invokes-another", [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": f"{grant_arn}-other"}])
    untrusting = runbook_role(world, "trusts-lambda", [], service="lambda.amazonaws.com")
    outcomes = {}
    for role in (allowed, other, untrusting, f"arn:aws:iam::{ACCOUNT}:role/no-such-role"):
        runbook = dict(request_runbook(APPROVERS, sleep={"Duration": "PT0S"}), assumeRole=role)
        world.document(f"rb-{role.rsplit('/', 1)[1]}", runbook)
        execution = world.ssm["alice"].start_automation_execution(
            DocumentName=f"rb-{role.rsplit('/', 1)[1]}", Parameters=window(2))["AutomationExecutionId"]
        if world.execution(execution)["AutomationExecutionStatus"] == "Waiting":
            world.ssm["bob"].send_automation_signal(AutomationExecutionId=execution, SignalType="Approve")
        ex = world.execution(execution)
        steps = {s["StepName"]: s for s in world.all_steps(execution)}
        outcomes[role.rsplit("/", 1)[1]] = (ex["AutomationExecutionStatus"], steps.get("Grant", {}).get("StepStatus"),
                                            ex.get("FailureMessage", ""))
    calls = world.invocations(drain=True)

    assert outcomes["can-invoke"][:2] == ("Success", "Success")
    assert outcomes["invokes-another"][:2] == ("Failed", "Failed") and "lambda:InvokeFunction" in outcomes["invokes-another"][2]
    assert outcomes["trusts-lambda"][:2] == ("Failed", "Pending") and "ssm.amazonaws.com" in outcomes["trusts-lambda"][2]
    assert outcomes["no-such-role"][:2] == ("Failed", "Pending") and "does not exist" in outcomes["no-such-role"][2]
    assert len(calls) == 1


def test_a_change_template_runs_only_the_runbooks_it_lists_and_they_must_exist_first(world: World) -> None:
    """executableRunBooks: a change template listing a runbook that does not
    exist is refused, and a change request may run only a listed runbook at
    the listed version."""
    code = error_code(world.ssm["admin"].create_document, Name="changegate-access", DocumentType="Automation.ChangeTemplate",
                      DocumentFormat="YAML", Content=yaml.safe_dump(change_template([["bob"]])))
    assert code == "InvalidDocumentContent"
    world.document("changegate-access-runbook", RUNBOOK)
    world.document("changegate-access-runbook-copy", RUNBOOK)
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")

    start = world.ssm["alice"].start_change_request_execution
    copy = [{"DocumentName": "changegate-access-runbook-copy", "Parameters": window(2)}]
    assert error_code(start, DocumentName="changegate-access", Runbooks=copy) == "ValidationException"
    world.ssm["admin"].update_document(Name="changegate-access-runbook", Content=yaml.safe_dump(dict(RUNBOOK, description="v2")),
                                       DocumentFormat="YAML", DocumentVersion="$LATEST")
    older = [{"DocumentName": "changegate-access-runbook", "DocumentVersion": "2", "Parameters": window(2)}]
    assert error_code(start, DocumentName="changegate-access", Runbooks=older) == "ValidationException"
    assert file_request(world)


def test_a_change_request_whose_runbook_has_a_service_role_needs_pass_role(world: World) -> None:
    """As for StartAutomationExecution: the requester passes the runbook's
    role (who must for a change request is not documented; strict here)."""
    role = runbook_role(world, "waits", [])
    world.document("changegate-access-runbook", dict(RUNBOOK, assumeRole=role))
    world.document("changegate-access", change_template([["bob"]]), kind="Automation.ChangeTemplate")
    iam = client(world.url, "iam")
    may_file = {"Effect": "Allow", "Action": "ssm:StartChangeRequestExecution", "Resource": "*"}
    may_pass = {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
                "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}}
    for user, statements in (("alice", [may_file, may_pass]), ("dave", [may_file])):
        iam.put_user_policy(UserName=user, PolicyName="p",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    auth = urllib.request.Request(world.url + "/moto-api/reset-auth", data=b"0", method="POST",
                                  headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(auth).read()
    try:
        assert file_request(world, who="alice")
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            file_request(world, who="dave")
        assert "iam:PassRole" in str(denied.value)
    finally:
        off = urllib.request.Request(world.url + "/moto-api/reset-auth", data=b"inf", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(off).read()
