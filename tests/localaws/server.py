#!/usr/bin/env python3
"""Local AWS for changegate: moto's server plus what moto 5.2.1 lacks.

    python tests/localaws/server.py [--host 127.0.0.1] [--port 0] [--verbose]

Prints exactly one line to stdout, ``READY http://127.0.0.1:<port>``, once the
socket is bound (port 0 picks a free one), then serves until SIGTERM/SIGINT.
Everything else (moto's chatter, request logs with --verbose) goes to stderr.

What this adds to moto, in-process and at the wire level:

* SSM Change Manager calls (JSON 1.1, ``X-Amz-Target: AmazonSSM.<Action>``),
  patched onto moto's ``SimpleSystemManagerResponse``:
  StartChangeRequestExecution, GetAutomationExecution, SendAutomationSignal,
  StopAutomationExecution. Each status change puts a ``Change Request Status
  Update`` event (source ``aws.ssm``) on the account's default EventBridge bus,
  as Change Manager does, so rules and their SQS targets fire.
* ``GET /_localaws/sns/published``: every message published to a topic, from
  moto's own record, with the raw message exactly as published (subscribers
  only ever see one per-protocol variant of a ``MessageStructure=json`` one).

See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.events.models import events_backends
from moto.iam.exceptions import InvalidInput
from moto.iam.responses import IamResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sns.models import sns_backends
from moto.ssm.exceptions import InvalidResourceId
from moto.ssm.models import SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition
from werkzeug.serving import make_server

log = logging.getLogger("localaws")

# ---------------------------------------------------------------------------
# Change Manager
# ---------------------------------------------------------------------------

# One lock for all change requests: the server is threaded, and a signal
# must see (and change) a request's status atomically.
_LOCK = threading.RLock()

# Change request statuses (AutomationExecutionStatus and the OpsItem status
# in events share these names for change requests).
PENDING_APPROVAL = "PendingApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
SCHEDULED = "Scheduled"
RUNBOOK_IN_PROGRESS = "RunbookInProgress"
COMPLETED_WITH_SUCCESS = "CompletedWithSuccess"
CANCELLED = "Cancelled"
FINAL = {REJECTED, COMPLETED_WITH_SUCCESS, CANCELLED}

APPROVAL_STEP = "ApproveChangeRequest"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    """Timestamps inside event details and approver decisions, as AWS writes
    them: UTC, microseconds, ``Z``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_datetime(value: Any) -> datetime | None:
    """A request timestamp as moto's parser hands it over (datetime, epoch
    number or ISO string) to an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    text = str(value)
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _error(code: str, message: str) -> JsonRESTError:
    """moto's JSON error (``{"__type": code, "message": ...}``, HTTP 400),
    carrying the code AWS uses for the same failure."""
    return JsonRESTError(code, message)


@dataclass
class Decision:
    approver: str
    decision: str  # "Approve" | "Reject"
    time: datetime
    comment: str

    def as_aws(self) -> dict[str, str]:
        return {
            "Approver": self.approver,
            "Decision": self.decision,
            "ApprovalDecisionTime": _iso(self.time),
            "Comment": self.comment,
        }


@dataclass
class ChangeRequest:
    id: str
    account: str
    region: str
    template: str
    template_version: str
    name: str
    runbooks: list[dict[str, Any]]
    requester: str
    ops_item_id: str
    created: datetime
    scheduled_time: datetime | None = None
    scheduled_end_time: datetime | None = None
    parameters: dict[str, list[str]] | None = None
    tags: list[dict[str, str]] | None = None
    auto_approve: bool = False
    change_details: str | None = None
    status: str = PENDING_APPROVAL
    modified: datetime | None = None
    modified_by: str = ""
    decisions: list[Decision] = field(default_factory=list)
    approval: str = "Waiting"  # the approval step's ApprovalStatus: Waiting | Approved | Rejected
    approval_end: datetime | None = None
    execution_end: datetime | None = None

    # -- ARNs ---------------------------------------------------------------
    @property
    def _partition(self) -> str:
        return get_partition(self.region)

    @property
    def ops_item_arn(self) -> str:
        return f"arn:{self._partition}:ssm:{self.region}:{self.account}:opsitem/{self.ops_item_id}"

    @property
    def runbook_name(self) -> str:
        return self.runbooks[0]["DocumentName"]

    @property
    def runbook_version(self) -> str:
        return self.runbooks[0].get("DocumentVersion") or "1"

    @property
    def runbook_arn(self) -> str:
        return f"arn:{self._partition}:ssm:{self.region}:{self.account}:document/{self.runbook_name}"

    # -- views --------------------------------------------------------------
    def approval_step_status(self) -> str:
        return {"Approved": "Success", "Rejected": "Failed"}.get(
            self.approval, "Cancelled" if self.status == CANCELLED else "Waiting"
        )

    def as_automation_execution(self) -> dict[str, Any]:
        """The GetAutomationExecution view. moto serialises it against the
        botocore model, so datetimes become epoch seconds on the wire."""
        step: dict[str, Any] = {
            "StepName": APPROVAL_STEP,
            "Action": "aws:approve",
            "StepStatus": self.approval_step_status(),
            "ExecutionStartTime": self.created,
            "Outputs": {
                "ApprovalStatus": [self.approval],
                # AWS hands the decisions back as one JSON string in a list.
                "ApproverDecisions": [json.dumps([d.as_aws() for d in self.decisions])],
            },
        }
        if self.approval_end:
            step["ExecutionEndTime"] = self.approval_end
        execution: dict[str, Any] = {
            "AutomationExecutionId": self.id,
            "DocumentName": self.template,
            "DocumentVersion": self.template_version,
            "ExecutionStartTime": self.created,
            "AutomationExecutionStatus": self.status,
            "AutomationSubtype": "ChangeRequest",
            "ChangeRequestName": self.name,
            "ExecutedBy": self.requester,
            "OpsItemId": self.ops_item_id,
            "Mode": "Auto",
            "Runbooks": [
                {
                    "DocumentName": rb["DocumentName"],
                    "DocumentVersion": rb.get("DocumentVersion") or "1",
                    "Parameters": rb.get("Parameters") or {},
                }
                for rb in self.runbooks
            ],
            "StepExecutions": [step],
            "StepExecutionsTruncated": False,
        }
        if self.scheduled_time:
            execution["ScheduledTime"] = self.scheduled_time
        if self.parameters:
            execution["Parameters"] = self.parameters
        if self.execution_end:
            execution["ExecutionEndTime"] = self.execution_end
        return execution

    def event_detail(self) -> dict[str, Any]:
        """The ``detail`` of a Change Request Status Update event, in the
        documented shape (kebab-case keys, ISO times, ARNs of IAM principals)."""
        return {
            "change-request-id": self.id,
            "change-request-title": self.name,
            "ops-item-id": self.ops_item_id,
            "ops-item-created-by": self.requester,
            "ops-item-created-time": _iso(self.created),
            "ops-item-modified-by": self.modified_by,
            "ops-item-modified-time": _iso(self.modified or self.created),
            "ops-item-status": self.status,
            "change-template-document-name": self.template,
            "runbook-document-arn": self.runbook_arn,
            "runbook-document-version": self.runbook_version,
            "auto-approve": self.auto_approve,
            # Approvers come from the change template, which moto cannot hold
            # (it rejects the Automation.ChangeTemplate document type).
            "approvers": [],
        }


def _requests(account: str, region: str) -> dict[str, ChangeRequest]:
    """Change requests live on moto's SSM backend for (account, region), so
    ``/moto-api/reset`` (which rebuilds backends) forgets them too."""
    backend = ssm_backends[account][region]
    store = getattr(backend, "_localaws_change_requests", None)
    if store is None:
        store = {}
        backend._localaws_change_requests = store  # type: ignore[attr-defined]
        backend._localaws_client_tokens = {}  # type: ignore[attr-defined]
    return store


def _client_tokens(account: str, region: str) -> dict[str, str]:
    _requests(account, region)
    return ssm_backends[account][region]._localaws_client_tokens  # type: ignore[attr-defined]


def _set_status(cr: ChangeRequest, status: str, by: str) -> None:
    """Moves the request to ``status`` and tells EventBridge, the way Change
    Manager does: one event per OpsItem status change, on the default bus of
    the request's account and region."""
    cr.status = status
    cr.modified = _now()
    cr.modified_by = by
    if status in FINAL:
        cr.execution_end = cr.modified
    entries = events_backends[cr.account][cr.region].put_events(
        [
            {
                "Source": "aws.ssm",
                "DetailType": "Change Request Status Update",
                "Resources": [cr.ops_item_arn, cr.runbook_arn],
                "Detail": json.dumps(cr.event_detail()),
                "EventBusName": "default",
            }
        ]
    )
    failed = [e for e in entries if "ErrorCode" in e]
    if failed:
        log.warning("change request %s -> %s: event not put: %s", cr.id, status, failed)
    log.info("change request %s -> %s (by %s)", cr.id, status, by)


def _run_runbook(cr: ChangeRequest, by: str) -> None:
    """The approved runbook "runs" at once and succeeds: changegate's runbook
    only carries parameters; the work happens in the grant Lambda."""
    _set_status(cr, RUNBOOK_IN_PROGRESS, by)
    _set_status(cr, COMPLETED_WITH_SUCCESS, by)


def _start_scheduled(cr: ChangeRequest, by: str) -> None:
    """Timer callback: a Scheduled request whose ScheduledTime has come runs."""
    with _LOCK:
        if cr.status == SCHEDULED:
            _run_runbook(cr, by)


def _approve(cr: ChangeRequest, by: str) -> None:
    cr.approval = "Approved"
    cr.approval_end = _now()
    _set_status(cr, APPROVED, by)
    delay = (cr.scheduled_time - _now()).total_seconds() if cr.scheduled_time else 0.0
    if delay <= 0:
        _run_runbook(cr, by)
        return
    _set_status(cr, SCHEDULED, by)
    timer = threading.Timer(min(delay, threading.TIMEOUT_MAX), _start_scheduled, args=(cr, by))
    timer.daemon = True
    timer.start()


def _caller_arn(response: SimpleSystemManagerResponse) -> str:
    """The ARN of whoever signed this request, as STS GetCallerIdentity would
    answer for the same access key (an IAM user's ARN for keys moto IAM made)."""
    _, arn, _ = sts_backends[response.current_account][get_partition(response.region)].get_caller_identity(
        response.get_access_key(), response.region
    )
    return arn


def _get(response: SimpleSystemManagerResponse, execution_id: Any) -> ChangeRequest:
    cr = _requests(response.current_account, response.region).get(str(execution_id or ""))
    if cr is None:
        raise _error(
            "AutomationExecutionNotFoundException",
            f"Automation execution {execution_id} not found.",
        )
    return cr


def start_change_request_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    template = self._get_param("DocumentName")
    runbooks = self._get_param("Runbooks") or []
    if not template:
        raise _error("ValidationException", "DocumentName is required.")
    # The API model allows exactly one runbook per change request.
    if len(runbooks) != 1 or not runbooks[0].get("DocumentName"):
        raise _error(
            "ValidationException",
            "1 validation error detected: Value at 'runbooks' failed to satisfy constraint: "
            "Member must have length less than or equal to 1 and greater than or equal to 1, "
            "each with a DocumentName",
        )
    account, region = self.current_account, self.region
    with _LOCK:
        token = self._get_param("ClientToken")
        tokens = _client_tokens(account, region)
        if token and token in tokens:  # idempotent retry
            return ActionResult({"AutomationExecutionId": tokens[token]})
        requester = _caller_arn(self)
        now = _now()
        cr = ChangeRequest(
            id=str(uuid.uuid4()),
            account=account,
            region=region,
            template=template,
            template_version=str(self._get_param("DocumentVersion") or "1"),
            name=self._get_param("ChangeRequestName") or template,
            runbooks=[dict(rb) for rb in runbooks],
            requester=requester,
            ops_item_id="oi-" + secrets.token_hex(6),
            created=now,
            scheduled_time=_as_datetime(self._get_param("ScheduledTime")),
            scheduled_end_time=_as_datetime(self._get_param("ScheduledEndTime")),
            parameters=self._get_param("Parameters"),
            tags=self._get_param("Tags"),
            auto_approve=bool(self._get_param("AutoApprove", False)),
            change_details=self._get_param("ChangeDetails"),
        )
        _requests(account, region)[cr.id] = cr
        if token:
            tokens[token] = cr.id
        _set_status(cr, PENDING_APPROVAL, requester)
        if cr.auto_approve:
            # AutoApprove: the request runs without waiting for reviewers.
            _approve(cr, requester)
    return ActionResult({"AutomationExecutionId": cr.id})


def get_automation_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    with _LOCK:
        cr = _get(self, self._get_param("AutomationExecutionId"))
        return ActionResult({"AutomationExecution": cr.as_automation_execution()})


def send_automation_signal(self: SimpleSystemManagerResponse) -> ActionResult:
    signal_type = self._get_param("SignalType")
    payload = self._get_param("Payload") or {}
    comment = " ".join(payload.get("Comment") or [])
    with _LOCK:
        cr = _get(self, self._get_param("AutomationExecutionId"))
        if signal_type not in ("Approve", "Reject"):
            raise _error(
                "InvalidAutomationSignalException",
                f"Signal {signal_type} is not valid for a change request awaiting approval.",
            )
        if cr.status != PENDING_APPROVAL:
            raise _error(
                "InvalidAutomationSignalException",
                f"Automation execution {cr.id} is in status {cr.status}; it is not waiting for approval.",
            )
        by = _caller_arn(self)
        cr.decisions.append(Decision(by, signal_type, _now(), comment))
        if signal_type == "Approve":
            _approve(cr, by)
        else:
            cr.approval = "Rejected"
            cr.approval_end = _now()
            _set_status(cr, REJECTED, by)
    return ActionResult({})


def stop_automation_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    with _LOCK:
        cr = _get(self, self._get_param("AutomationExecutionId"))
        if cr.status in FINAL:
            raise _error(
                "InvalidAutomationStatusUpdateException",
                f"Automation execution {cr.id} is already {cr.status}.",
            )
        _set_status(cr, CANCELLED, _caller_arn(self))
    return ActionResult({})


# ---------------------------------------------------------------------------
# SNS: what was published, from moto's own record
# ---------------------------------------------------------------------------


def _aws_attributes(attributes: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """moto's parsed ``{"Type", "Value"}`` back to the API's shape."""
    out = {}
    for name, attr in (attributes or {}).items():
        kind = attr.get("Type", "String")
        value_key = "BinaryValue" if kind.startswith("Binary") else "StringValue"
        out[name] = {"DataType": kind, value_key: str(attr.get("Value"))}
    return out


def sns_published() -> list[dict[str, Any]]:
    """Every message published to a topic, read from moto's own record
    (``Topic.sent_notifications``: id, raw message, subject, attributes,
    group id), topic by topic, each in publication order. The raw message is
    what the publisher sent, so a ``MessageStructure=json`` message still holds
    every per-protocol variant. ``/moto-api/reset`` forgets it with the topics."""
    out = []
    for account, regions in list(dict.items(sns_backends)):
        for region, backend in list(dict.items(regions)):
            for topic in list(backend.topics.values()):
                for message_id, message, subject, attributes, group_id in list(topic.sent_notifications):
                    out.append(
                        {
                            "MessageId": message_id,
                            "Account": account,
                            "Region": region,
                            "TopicArn": topic.arn,
                            "Subject": subject,
                            "Message": message,
                            "MessageAttributes": _aws_attributes(attributes),
                            "MessageGroupId": group_id,
                        }
                    )
    return out


def _wrap_tag_validation() -> None:
    """Tags on change requests (``ResourceType=Automation``, the execution id),
    as SSM's AddTagsToResource / ListTagsForResource / RemoveTagsFromResource
    allow; moto 5.2.1 only knows other resource types. An id that names no
    change request is ``InvalidResourceId``, as on AWS."""
    original = SimpleSystemManagerBackend._validate_resource_type_and_id
    if getattr(original, "_localaws", False):
        return

    def validate(self: SimpleSystemManagerBackend, resource_type: str, resource_id: str) -> str:
        if resource_type == "Automation":
            with _LOCK:
                if resource_id not in _requests(self.account_id, self.region_name):
                    raise InvalidResourceId()
            return resource_id
        return original(self, resource_type, resource_id)

    validate._localaws = True  # type: ignore[attr-defined]
    SimpleSystemManagerBackend._validate_resource_type_and_id = validate  # type: ignore[method-assign]


def get_account_authorization_details(self: IamResponse) -> ActionResult:
    """IAM's paging, which moto 5.2.1 lacks (it returns everything at once):
    ``MaxItems`` (1-1000, default 100) entries per page over users, groups,
    roles and policies in that order, ``IsTruncated`` and an opaque ``Marker``."""
    details = self.backend.get_account_authorization_details(self._get_param("Filter", []))
    entries = [("UserDetailList", e) for e in details["users"]]
    entries += [("GroupDetailList", e) for e in details["groups"]]
    entries += [("RoleDetailList", e) for e in details["roles"]]
    entries += [("Policies", e) for e in details["managed_policies"]]
    try:
        max_items = int(self._get_param("MaxItems") or 100)
        start = int(self._get_param("Marker") or 0)
    except ValueError:
        raise InvalidInput("MaxItems and Marker must be integers here") from None
    if not 1 <= max_items <= 1000 or start < 0:
        raise InvalidInput("MaxItems must be from 1 to 1000")
    page = entries[start : start + max_items]
    result: dict[str, Any] = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}
    for key, entry in page:
        result[key].append(entry)
    result["IsTruncated"] = start + max_items < len(entries)
    if result["IsTruncated"]:
        result["Marker"] = str(start + max_items)
    return ActionResult(result)


def install() -> None:
    """Patches moto in this process. Idempotent."""
    # moto dispatches AmazonSSM.<Action> to the snake_case method of the
    # response class, found by introspection at call time.
    SimpleSystemManagerResponse.start_change_request_execution = start_change_request_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.get_automation_execution = get_automation_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.send_automation_signal = send_automation_signal  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.stop_automation_execution = stop_automation_execution  # type: ignore[attr-defined]
    _wrap_tag_validation()
    IamResponse.get_account_authorization_details = get_account_authorization_details  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# WSGI: /_localaws/... before moto's dispatcher
# ---------------------------------------------------------------------------


class LocalAwsApp:
    """Serves ``/_localaws/...`` itself and hands every other request to
    moto's host/signature-based dispatcher unchanged."""

    def __init__(self, moto_app: Any):
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_localaws/"):
            return self.moto_app(environ, start_response)
        if path.rstrip("/") == "/_localaws/sns/published":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return self._json(start_response, "405 Method Not Allowed", {"error": "GET only"})
            return self._json(start_response, "200 OK", sns_published())
        return self._json(start_response, "404 Not Found", {"error": f"no such endpoint: {path}"})

    @staticmethod
    def _json(start_response: Any, status: str, body: Any) -> list[bytes]:
        data = json.dumps(body, indent=2).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto server with changegate's local-AWS extensions")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 = any free port (default)")
    parser.add_argument("--verbose", action="store_true", help="log requests and extension activity to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    install()
    server = make_server(args.host, args.port, LocalAwsApp(DomainDispatcherApplication(create_backend_app)), threaded=True)
    port = server.server_port
    # moto builds some self-referencing URLs from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"READY http://{args.host}:{port}", flush=True)
    # stdout carries the READY line only: moto prints the odd diagnostic, and a
    # reader that stops after READY must never block us on a full pipe.
    sys.stdout = sys.stderr

    while not stop.wait(1.0):
        if not thread.is_alive():
            return 1
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Tearing down moto's hundreds of modules takes ~2 s at interpreter exit;
    # the server is already closed and stdout flushed, so leave at once.
    os._exit(code)
