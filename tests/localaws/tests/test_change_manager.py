"""server.py's Change Manager: the event shape and the request's life, over the
real SSM wire protocol (test_server_automation.py covers approval levels,
approvers, runbooks that stay open and plain Automation)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError

import localaws

# This test's own change template and runbook (not template.yaml's).
CHANGE_TEMPLATE_NAME = "changegate-access"
ACCESS_RUNBOOK = "changegate-access-runbook"
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
RUNBOOK = {
    "DocumentName": ACCESS_RUNBOOK,
    "Parameters": {
        "IAMUserName": ["alice"],
        "AWSAccountId": [localaws.PROD_ACCOUNT],
        "StartTime": ["2026-12-01T18:00:00+09:00"],
        "EndTime": ["2026-12-01T19:00:00+09:00"],
    },
}
DETAIL_KEYS = {
    "change-request-id", "change-request-title", "ops-item-id", "ops-item-created-by", "ops-item-created-time",
    "ops-item-modified-by", "ops-item-modified-time", "ops-item-status", "change-template-document-name",
    "runbook-document-arn", "runbook-document-version", "auto-approve", "approvers",
}


# A change template with one approval level (bob) that allows auto-approval,
# and a runbook with changegate's four parameters that completes at once.
CHANGE_TEMPLATE = {
    "schemaVersion": "0.3",
    "emergencyChange": False,
    "autoApprovable": True,
    "executableRunBooks": [{"name": ACCESS_RUNBOOK, "version": "$DEFAULT"}],
    "mainSteps": [{
        "name": "ApproveChangeRequest",
        "action": "aws:approve",
        "timeoutSeconds": 3600,
        "inputs": {"Message": "review", "EnhancedApprovals": {
            "Approvers": [{"approver": "bob", "type": "IamUser", "minRequiredApprovals": 0}], "MinRequiredApprovals": 1}},
    }],
}
QUICK_RUNBOOK = {
    "schemaVersion": "0.3",
    "parameters": {name: {"type": "String"} for name in RUNBOOK["Parameters"]},
    "mainSteps": [{"name": "Done", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}],
}


class ChangeManager:
    """alice files, bob approves; a rule on the default bus feeds a queue."""

    def __init__(self, aws: localaws.Server, people: dict[str, dict[str, str]]):
        ssm = aws.client("ssm")
        # The runbook first: a change template's runbooks must exist.
        ssm.create_document(Name=ACCESS_RUNBOOK, DocumentType="Automation", DocumentFormat="JSON",
                            Content=json.dumps(QUICK_RUNBOOK))
        ssm.create_document(Name=CHANGE_TEMPLATE_NAME, DocumentType="Automation.ChangeTemplate",
                            DocumentFormat="JSON", Content=json.dumps(CHANGE_TEMPLATE))
        self.alice = aws.client("ssm", people["alice"])
        self.bob = aws.client("ssm", people["bob"])
        self.sqs = aws.client("sqs")
        self.queue, arn = localaws.queue(self.sqs, "ssm-events")
        events = aws.client("events")
        pattern = {"source": ["aws.ssm"], "detail-type": ["Change Request Status Update"]}
        events.put_rule(Name="cr", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="cr", Targets=[{"Id": "q", "Arn": arn}])

    def start(self, **extra: Any) -> str:
        return self.alice.start_change_request_execution(
            DocumentName=CHANGE_TEMPLATE_NAME, ChangeRequestName="title", Runbooks=[RUNBOOK], **extra
        )["AutomationExecutionId"]

    def execution(self, cid: str) -> dict[str, Any]:
        return self.alice.get_automation_execution(AutomationExecutionId=cid)["AutomationExecution"]

    def events(self) -> list[dict[str, Any]]:
        return localaws.drain(self.sqs, self.queue)

    def events_until(self, status: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events until the one announcing ``status`` (bounded wait):
        runbook steps run on timers."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not any(e["detail"]["ops-item-status"] == status for e in seen) and time.monotonic() < deadline:
            seen += self.events()
            time.sleep(0.05)
        return seen

    def statuses(self, until: str | None = None) -> list[tuple[str, str]]:
        """The statuses the events announced (with who caused each); with
        ``until``, up to that one."""
        events = self.events_until(until) if until else self.events()
        return [(e["detail"]["ops-item-status"], e["detail"]["ops-item-modified-by"]) for e in events]


@pytest.fixture
def cm(aws: localaws.Server, people: dict[str, dict[str, str]]) -> ChangeManager:
    return ChangeManager(aws, people)


def expect_error(code: str, call: Callable[[], Any]) -> None:
    with pytest.raises(ClientError) as caught:
        call()
    got = (caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"])
    assert got == (code, 400)


def test_given_alice_when_she_files_a_request_then_it_awaits_approval_names_her_and_emits_the_documented_event(
    cm: ChangeManager,
) -> None:
    cid = cm.start()

    ex = cm.execution(cid)
    assert ex["AutomationExecutionStatus"] == "PendingApproval"
    assert ex["ExecutedBy"] == ALICE and ex["AutomationSubtype"] == "ChangeRequest"
    assert ex["Runbooks"][0]["Parameters"] == RUNBOOK["Parameters"]
    step = ex["StepExecutions"][0]
    assert step["Action"] == "aws:approve" and step["Outputs"]["ApprovalStatus"] == ["Waiting"]
    [event] = cm.events()
    assert event["source"] == "aws.ssm" and event["detail-type"] == "Change Request Status Update"
    d = event["detail"]
    assert set(d) == DETAIL_KEYS
    assert d["change-request-id"] == cid and d["ops-item-status"] == "PendingApproval"
    assert d["ops-item-id"] == ex["OpsItemId"] and d["ops-item-created-by"] == ALICE
    assert d["runbook-document-arn"] == "arn:aws:ssm:us-east-1:123456789012:document/changegate-access-runbook"
    assert event["resources"] == [f"arn:aws:ssm:us-east-1:123456789012:opsitem/{d['ops-item-id']}",
                                  d["runbook-document-arn"]]


def test_given_a_pending_request_when_bob_approves_then_it_runs_to_success_and_records_bob_as_approver(
    cm: ChangeManager,
) -> None:
    cid = cm.start()
    cm.events()

    cm.bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve", Payload={"Comment": ["fine"]})

    assert cm.statuses(until="CompletedWithSuccess") == [
        ("Approved", BOB), ("RunbookInProgress", BOB), ("CompletedWithSuccess", BOB)]
    ex = cm.execution(cid)
    assert ex["AutomationExecutionStatus"] == "CompletedWithSuccess"
    outputs = ex["StepExecutions"][0]["Outputs"]
    [decision] = [json.loads(d) for d in outputs["ApproverDecisions"]]
    assert outputs["ApprovalStatus"] == ["Approved"]
    assert (decision["Approver"], decision["Decision"], decision["Comment"]) == (BOB, "Approve", "fine")


def test_given_an_approved_request_when_signalled_or_stopped_again_then_ssm_errors_and_unknown_ids_are_not_found(
    cm: ChangeManager,
) -> None:
    cid = cm.start()
    cm.bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve")
    cm.statuses(until="CompletedWithSuccess")
    missing = "00000000-0000-0000-0000-000000000000"

    expect_error("InvalidAutomationSignalException",
                 lambda: cm.bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve"))
    expect_error("InvalidAutomationStatusUpdateException",
                 lambda: cm.bob.stop_automation_execution(AutomationExecutionId=cid))
    expect_error("AutomationExecutionNotFoundException",
                 lambda: cm.bob.get_automation_execution(AutomationExecutionId=missing))
    expect_error("AutomationExecutionNotFoundException",
                 lambda: cm.bob.send_automation_signal(AutomationExecutionId=missing, SignalType="Approve"))


def test_given_a_pending_request_when_bob_rejects_then_it_is_rejected(cm: ChangeManager) -> None:
    cid = cm.start()

    cm.bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Reject", Payload={"Comment": ["no"]})

    assert cm.statuses() == [("PendingApproval", ALICE), ("Rejected", BOB)]
    ex = cm.execution(cid)
    assert ex["AutomationExecutionStatus"] == "Rejected"
    assert ex["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Rejected"]


def test_given_a_pending_request_when_alice_stops_it_then_it_is_cancelled(cm: ChangeManager) -> None:
    cid = cm.start()

    cm.alice.stop_automation_execution(AutomationExecutionId=cid, Type="Cancel")

    assert cm.statuses() == [("PendingApproval", ALICE), ("Cancelled", ALICE)]
    assert cm.execution(cid)["AutomationExecutionStatus"] == "Cancelled"


def test_given_a_scheduled_time_ahead_when_approved_then_it_is_scheduled_and_runs_at_that_time(
    cm: ChangeManager,
) -> None:
    at = datetime.now(timezone.utc) + timedelta(seconds=2)
    cid = cm.start(ScheduledTime=at)

    cm.bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve")

    assert cm.statuses() == [("PendingApproval", ALICE), ("Approved", BOB), ("Scheduled", BOB)]
    ex = cm.execution(cid)
    assert ex["AutomationExecutionStatus"] == "Scheduled" and abs(ex["ScheduledTime"] - at).total_seconds() < 1
    # The clock is the subject here: the runbook starts at ScheduledTime, two seconds from now.
    assert [s for s, _ in cm.statuses(until="CompletedWithSuccess")] == ["RunbookInProgress", "CompletedWithSuccess"]


def test_given_auto_approve_when_alice_files_then_it_is_approved_at_once_by_her(cm: ChangeManager) -> None:
    cid = cm.start(AutoApprove=True)

    seen = cm.events_until("CompletedWithSuccess")
    assert [(e["detail"]["ops-item-status"], e["detail"]["ops-item-modified-by"]) for e in seen] == [
        ("PendingApproval", ALICE), ("Approved", ALICE), ("RunbookInProgress", ALICE), ("CompletedWithSuccess", ALICE)]
    assert all(e["detail"]["auto-approve"] is True for e in seen)
    assert cm.execution(cid)["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Approved"]


def test_given_a_client_token_when_the_same_request_is_retried_then_the_same_id_comes_back(cm: ChangeManager) -> None:
    token = "6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64"  # the API wants a UUID

    assert cm.start(ClientToken=token) == cm.start(ClientToken=token)
    assert [s for s, _ in cm.statuses()] == ["PendingApproval"]


def test_given_two_runbooks_when_filing_then_validation_fails(cm: ChangeManager) -> None:
    expect_error("ValidationException", lambda: cm.alice.start_change_request_execution(
        DocumentName=CHANGE_TEMPLATE_NAME, Runbooks=[RUNBOOK, RUNBOOK]))


def test_given_a_change_request_when_tagged_then_its_tags_read_back_and_unknown_ids_are_invalid(
    cm: ChangeManager,
) -> None:
    cid = cm.start()

    cm.alice.add_tags_to_resource(ResourceType="Automation", ResourceId=cid,
                                  Tags=[{"Key": "changegate:outcome", "Value": "granted"}])

    tags = cm.alice.list_tags_for_resource(ResourceType="Automation", ResourceId=cid)["TagList"]
    assert tags == [{"Key": "changegate:outcome", "Value": "granted"}]
    expect_error("InvalidResourceId", lambda: cm.alice.list_tags_for_resource(
        ResourceType="Automation", ResourceId="00000000-0000-0000-0000-000000000000"))
