#!/usr/bin/env python3
"""Local AWS for changegate: moto's server plus what moto 5.2.1 lacks.

    python tests/localaws/server.py [--host 127.0.0.1] [--port 0] [--verbose] [--max-inline-steps N]
        [--max-concurrent-automations N]

Prints exactly one line to stdout, ``READY http://127.0.0.1:<port>``, once the
socket is bound (port 0 picks a free one), then serves until SIGTERM/SIGINT.
Everything else (moto's chatter, request logs with --verbose) goes to stderr.

What this adds to moto, in-process and at the wire level:

* SSM Automation and Change Manager (JSON 1.1, ``X-Amz-Target:
  AmazonSSM.<Action>``), patched onto moto's ``SimpleSystemManagerResponse``:
  StartAutomationExecution, StartChangeRequestExecution,
  GetAutomationExecution, DescribeAutomationExecutions,
  DescribeAutomationStepExecutions, SendAutomationSignal,
  StopAutomationExecution; ``Automation.ChangeTemplate``
  documents. Runbook steps run for real where they can (aws:approve,
  aws:sleep, aws:executeScript with inline Python, aws:invokeLambdaFunction
  recorded for the test harness), on timers in real time. Each status change
  puts the event AWS puts on the account's default EventBridge bus (``Change
  Request Status Update``; ``EC2 Automation Execution/Step Status-change
  Notification``), so rules and their SQS targets fire.
* Tags on executions (at most 5), IAM GetAccountAuthorizationDetails paging.
* IAM users as AWS has them across a rename: AWS-shaped unique ids
  (``AIDA`` + 17), and UpdateUser with NewUserName that keeps the id and moves
  the user's tags and access keys with it (moto loses the tags), refusing a
  taken name (EntityAlreadyExists) and an unknown user (NoSuchEntity).
* IAM users' permissions boundaries: PutUserPermissionsBoundary and
  DeleteUserPermissionsBoundary, shown by GetUser and
  GetAccountAuthorizationDetails.
* ``GET /_localaws/lambda/invocations[?drain=1]``: the Lambda invocations
  runbooks asked for. A ``RequestResponse`` invocation keeps its step
  ``InProgress`` (as AWS does while the function runs) until the harness
  answers it: ``POST /_localaws/lambda/invocations/<InvocationId>`` with
  ``{"Payload": ..., "FunctionError": ...}``.
* ``GET /_localaws/sns/published``: every message published to a topic, from
  moto's own record, with the raw message exactly as published (subscribers
  only ever see one per-protocol variant of a ``MessageStructure=json`` one).

See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlparse

from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.events.models import events_backends
from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult
from moto.iam.exceptions import EntityAlreadyExists, InvalidInput, NoSuchEntity, ValidationError
from moto.iam.models import User, iam_backends
from moto.iam.responses import IamResponse
from moto.moto_api._internal.models import MotoAPIBackend
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
# SSM Automation and Change Manager
# ---------------------------------------------------------------------------

# One lock for all executions: the server is threaded, timers fire on their
# own threads, and a signal must see (and change) an execution atomically.
_LOCK = threading.RLock()

# Execution statuses (AutomationExecutionStatus; a change request's OpsItem
# status in its events uses the same names).
PENDING_APPROVAL = "PendingApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
SCHEDULED = "Scheduled"
RUNBOOK_IN_PROGRESS = "RunbookInProgress"
COMPLETED_WITH_SUCCESS = "CompletedWithSuccess"
COMPLETED_WITH_FAILURE = "CompletedWithFailure"
CANCELLED = "Cancelled"
IN_PROGRESS = "InProgress"
WAITING = "Waiting"
SUCCESS = "Success"
FAILED = "Failed"
PENDING = "Pending"
TIMED_OUT = "TimedOut"
EXITED = "Exited"
FINAL = {REJECTED, COMPLETED_WITH_SUCCESS, COMPLETED_WITH_FAILURE, CANCELLED, SUCCESS, FAILED, TIMED_OUT, EXITED}
STEP_FINAL = {SUCCESS, FAILED, CANCELLED, TIMED_OUT}

CHANGE_TEMPLATE_TYPE = "Automation.ChangeTemplate"
MAX_TAGS_PER_EXECUTION = 5  # "Automations can have a maximum of 5 tags" (AddTagsToResource)
MAX_SLEEP_SECONDS = 604800  # aws:sleep: "Automation supports a maximum delay of 604800 seconds (7 days)"
DEFAULT_MAX_INLINE_STEPS = 100  # GetAutomationExecution's inline step limit: not documented by AWS
# "By default, Automation lets you run up to 100 concurrent automations at a
# time" (user guide, adaptive concurrency); more wait in a queue.
DEFAULT_MAX_CONCURRENT_AUTOMATIONS = 100
MAX_CONCURRENT_AUTOMATIONS = DEFAULT_MAX_CONCURRENT_AUTOMATIONS
MAX_QUEUED_AUTOMATIONS = 1000  # the queue's size: not confirmed in AWS documentation

# Settable with --max-inline-steps: how many StepExecutions GetAutomationExecution
# returns before it says StepExecutionsTruncated.
MAX_INLINE_STEPS = DEFAULT_MAX_INLINE_STEPS

# Every aws:invokeLambdaFunction step "run" (moto cannot run changegate's
# functions): GET /_localaws/lambda/invocations hands them to the test harness.
_LAMBDA_INVOCATIONS: list[dict[str, Any]] = []
_LAMBDA_LOCK = threading.Lock()
# Synchronous (RequestResponse) invocations not answered yet, by InvocationId:
# their step stays InProgress until the harness posts the function's answer.
_PENDING_CALLS: dict[str, tuple[Any, Any, Any]] = {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    """Timestamps inside event details and approver decisions, as AWS writes
    them: UTC, microseconds, ``Z``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_time(t: datetime | None) -> str:
    """Times in Automation events, as AWS's sample writes them:
    ``Nov 29, 2024 7:43:25 PM`` (UTC, no leading zeros on day and hour)."""
    if t is None:
        return "No End Time"
    t = t.astimezone(timezone.utc)
    hour = t.hour % 12 or 12
    return f"{t:%b} {t.day}, {t.year} {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


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


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _iso_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration such as ``PT10M`` or ``P1DT2H``."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


# -- documents ---------------------------------------------------------------


def _documents(account: str, region: str, name: str) -> Any:
    return ssm_backends[account][region]._documents.get(name)


def _document(account: str, region: str, name: str, version: str | None, kind: str) -> Any:
    """The document ``name`` at ``version`` ($DEFAULT when absent), which must
    be of type ``kind``: AutomationDefinitionNotFoundException or
    AutomationDefinitionVersionNotFoundException otherwise, as SSM answers."""
    docs = _documents(account, region, name)
    if docs is None or docs.get_default_version().document_type != kind:
        what = "change template" if kind == CHANGE_TEMPLATE_TYPE else "Automation runbook"
        raise _error("AutomationDefinitionNotFoundException", f"{what} {name} was not found (type {kind}).")
    if version in (None, "", "$DEFAULT"):
        return docs.get_default_version()
    if version == "$LATEST":
        return docs.get_latest_version()
    found = docs.find_by_version(str(version))
    if found is None:
        raise _error("AutomationDefinitionVersionNotFoundException", f"Document {name} has no version {version}.")
    return found


# aws:executeScript runtimes the emulator accepts: the one AWS tells runbook
# authors to use (user guide, aws:executeScript: "Beginning December 4, 2024,
# you can no longer create or update runbooks that use the aws:executeScript
# action with Python 3.6, 3.7, or 3.8 runtimes ... upgrade ... to Python
# 3.11"). Any other is refused, as 3.6-3.8 are on AWS (stricter than AWS for
# the runtimes it still lists: it runs Python only, changegate's 3.11).
SCRIPT_RUNTIMES = {"python3.11"}
_REFERENCE = re.compile(r"^\{\{\s*[\w:.\-]+\s*\}\}$")


def _whole_number(value: Any) -> bool:
    """An Integer input as SSM documents it: a number in the content, or a
    ``{{ reference }}`` resolved at run time, never a string like "1"."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and bool(_REFERENCE.match(value)))


def _content_problems(content: dict[str, Any], document_format: str) -> list[str]:
    """What SSM documents as invalid in an Automation document's steps, that
    moto does not check:
    * aws:executeScript: an inline ``Script`` in a JSON document ("This
      parameter is not supported for JSON runbooks. JSON runbooks must
      provide script content using the Attachment input parameter"), and a
      runtime outside SCRIPT_RUNTIMES;
    * aws:approve: ``MinRequiredApprovals`` (and an approver's
      ``minRequiredApprovals``) that is not an integer ("Type: Integer").
    Where AWS would refuse these (at CreateDocument or when the step runs) is
    not documented: the emulator refuses the document, and a value that only
    turns out wrong at run time fails the step (_approver_entries)."""
    problems = []
    for step in content.get("mainSteps") or []:
        if not isinstance(step, dict):
            continue
        inputs = step.get("inputs") or {}
        name, action = step.get("name"), step.get("action")
        if action == "aws:executeScript":
            if "Script" in inputs and document_format.upper() == "JSON":
                problems.append(f"step {name}: the Script input parameter is not supported for JSON documents; "
                                "JSON documents must provide script content using the Attachment input parameter")
            if inputs.get("Runtime") not in SCRIPT_RUNTIMES:
                problems.append(f"step {name}: Runtime {inputs.get('Runtime')!r} is not supported "
                                f"(localaws takes {', '.join(sorted(SCRIPT_RUNTIMES))})")
        if action == "aws:approve":
            enhanced = inputs.get("EnhancedApprovals") if isinstance(inputs.get("EnhancedApprovals"), dict) else {}
            for where, holder in (("inputs", inputs), ("EnhancedApprovals", enhanced)):
                if "MinRequiredApprovals" in holder and not _whole_number(holder["MinRequiredApprovals"]):
                    problems.append(f"step {name}: {where}.MinRequiredApprovals must be an Integer, "
                                    f"not {holder['MinRequiredApprovals']!r}")
            for approver in enhanced.get("Approvers") or inputs.get("Approvers") or []:
                if isinstance(approver, dict) and "minRequiredApprovals" in approver and not _whole_number(
                        approver["minRequiredApprovals"]):
                    problems.append(f"step {name}: an approver's minRequiredApprovals must be an Integer, "
                                    f"not {approver['minRequiredApprovals']!r}")
    return problems


def _parsed(content: str, document_format: str) -> dict[str, Any] | None:
    import yaml

    try:
        value = json.loads(content) if document_format.upper() == "JSON" else yaml.safe_load(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _wrap_document_checks() -> None:
    """CreateDocument and UpdateDocument refuse what _content_problems finds
    (InvalidDocumentContent), in Automation documents and change templates."""
    from moto.ssm.exceptions import InvalidDocumentContent

    original_create = SimpleSystemManagerBackend.create_document
    if getattr(original_create, "_localaws", False):
        return
    original_update = SimpleSystemManagerBackend.update_document

    def check(backend: SimpleSystemManagerBackend, content: str, document_type: str | None, document_format: str) -> None:
        if document_type not in ("Automation", CHANGE_TEMPLATE_TYPE):
            return
        parsed = _parsed(content, document_format or "JSON")
        problems = _content_problems(parsed, document_format or "JSON") if parsed is not None else []
        if parsed is not None and document_type == CHANGE_TEMPLATE_TYPE:
            # Its runbooks must exist when it is created or updated. Whether
            # SSM checks this is not documented (*unconfirmed*): strict here,
            # so that a stack creating the template before its runbook fails.
            for entry in parsed.get("executableRunBooks") or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                try:
                    _document(backend.account_id, backend.region_name, str(name), entry.get("version"), "Automation")
                except JsonRESTError:
                    problems.append(f"executableRunBooks: runbook {name} version {entry.get('version')} does not exist")
        if problems:
            raise InvalidDocumentContent("; ".join(problems))

    def create(self: SimpleSystemManagerBackend, content: str, requires: Any, attachments: Any, name: str,
               version_name: str, document_type: str, document_format: str, target_type: str, tags: Any) -> Any:
        check(self, content, document_type, document_format)
        return original_create(self, content, requires, attachments, name, version_name, document_type,
                               document_format, target_type, tags)

    def update(self: SimpleSystemManagerBackend, content: str, attachments: Any, name: str, version_name: str,
               document_version: str, document_format: str, target_type: str) -> Any:
        docs = self._documents.get(name)
        kind = docs.get_default_version().document_type if docs is not None else None
        check(self, content, kind, document_format)
        return original_update(self, content, attachments, name, version_name, document_version, document_format,
                               target_type)

    create._localaws = True  # type: ignore[attr-defined]
    SimpleSystemManagerBackend.create_document = create  # type: ignore[method-assign]
    SimpleSystemManagerBackend.update_document = update  # type: ignore[method-assign]


def _wrap_parameter_pattern() -> None:
    """PutParameter validates the value against the parameter's
    AllowedPattern ("A regular expression used to validate the parameter
    value", PutParameter); moto 5.2.1 stores any value. The error code is
    ParameterPatternMismatchException, as PutParameter lists it (its wording
    for this case is *unconfirmed*)."""
    from moto.ssm.exceptions import SSMException

    original = SimpleSystemManagerBackend.put_parameter
    if getattr(original, "_localaws", False):
        return

    def put(self: SimpleSystemManagerBackend, name: str, description: str, value: str, parameter_type: str,
            allowed_pattern: str, *args: Any, **kwargs: Any) -> Any:
        if allowed_pattern and value is not None and not re.search(allowed_pattern, str(value)):
            raise SSMException("ParameterPatternMismatchException",
                               f"Parameter value, cannot be validated against allowedPattern: {allowed_pattern}")
        return original(self, name, description, value, parameter_type, allowed_pattern, *args, **kwargs)

    put._localaws = True  # type: ignore[attr-defined]
    SimpleSystemManagerBackend.put_parameter = put  # type: ignore[method-assign]


def _wrap_document_types() -> None:
    """CreateDocument / UpdateDocument accept ``Automation.ChangeTemplate``
    (moto 5.2.1 rejects it as an invalid document type)."""
    import moto.ssm.models as ssm_models

    original = ssm_models._validate_document_info
    if getattr(original, "_localaws", False):
        return

    def validate(content: str, name: str, document_type: str | None, document_format: str, strict: bool = True) -> None:
        if document_type == CHANGE_TEMPLATE_TYPE:
            document_type = "Automation"
        original(content=content, name=name, document_type=document_type, document_format=document_format, strict=strict)

    validate._localaws = True  # type: ignore[attr-defined]
    ssm_models._validate_document_info = validate  # type: ignore[assignment]


# -- parameters and {{ }} ----------------------------------------------------


def _invalid_parameters(message: str) -> JsonRESTError:
    return _error("InvalidAutomationExecutionParametersException", message)


def _default_values(kind: str, default: Any) -> list[str]:
    if kind == "StringList":
        return [str(v) for v in default]
    if kind in ("StringMap", "MapList"):
        return [json.dumps(default)]
    if kind == "Boolean":
        return ["true" if default else "false"]
    return [str(default)]


def _validate_parameters(definitions: dict[str, Any] | None, given: dict[str, Any] | None, document: str) -> dict[str, list[str]]:
    """``given`` checked against the document's parameter definitions as SSM
    does (unknown names, required values, types, allowedPattern, allowedValues,
    length limits), with defaults filled in."""
    definitions = definitions or {}
    given = given or {}
    for name in given:
        if name not in definitions:
            raise _invalid_parameters(f"Parameter {name} is not defined in document {document}.")
    out: dict[str, list[str]] = {}
    for name, spec in definitions.items():
        spec = spec or {}
        kind = spec.get("type", "String")
        if name in given:
            raw = given[name]
            values = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
        elif "default" in spec:
            values = _default_values(kind, spec["default"])
        else:
            raise _invalid_parameters(f"Parameter {name} is required in document {document}.")
        if kind in ("String", "Integer", "Boolean", "StringMap") and len(values) != 1:
            raise _invalid_parameters(f"Parameter {name} of type {kind} takes exactly one value.")
        if kind == "Integer":
            try:
                int(values[0])
            except ValueError:
                raise _invalid_parameters(f"Parameter {name} must be an integer.") from None
        if kind == "Boolean" and values[0].lower() not in ("true", "false"):
            raise _invalid_parameters(f"Parameter {name} must be true or false.")
        pattern = spec.get("allowedPattern")
        allowed = spec.get("allowedValues")
        for value in values if name in given else []:
            if pattern is not None and not re.search(pattern, value):
                raise _invalid_parameters(f"Parameter {name} value {value!r} does not match the allowed pattern {pattern}.")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise _invalid_parameters(f"Parameter {name} value {value!r} is not one of the allowed values.")
            if "minChars" in spec and len(value) < int(spec["minChars"]):
                raise _invalid_parameters(f"Parameter {name} is shorter than {spec['minChars']} characters.")
            if "maxChars" in spec and len(value) > int(spec["maxChars"]):
                raise _invalid_parameters(f"Parameter {name} is longer than {spec['maxChars']} characters.")
        if name in given and "minItems" in spec and len(values) < int(spec["minItems"]):
            raise _invalid_parameters(f"Parameter {name} has fewer than {spec['minItems']} items.")
        if name in given and "maxItems" in spec and len(values) > int(spec["maxItems"]):
            raise _invalid_parameters(f"Parameter {name} has more than {spec['maxItems']} items.")
        out[name] = values
    return out


def _typed(definitions: dict[str, Any] | None, values: dict[str, list[str]]) -> dict[str, Any]:
    """Parameter values as ``{{ name }}`` yields them: a string, a list for
    StringList, a number, a boolean, a map."""
    out: dict[str, Any] = {}
    for name, vals in values.items():
        kind = ((definitions or {}).get(name) or {}).get("type", "String")
        if kind == "StringList":
            out[name] = list(vals)
        elif kind == "Integer":
            out[name] = int(vals[0])
        elif kind == "Boolean":
            out[name] = vals[0].lower() == "true"
        elif kind in ("StringMap", "MapList"):
            try:
                out[name] = json.loads(vals[0])
            except ValueError:
                out[name] = vals[0]
        else:
            out[name] = vals[0] if vals else ""
    return out


_VARIABLE = re.compile(r"\{\{\s*([\w:.\-]+)\s*\}\}")


def _resolve(value: Any, ctx: dict[str, Any]) -> Any:
    """``{{ name }}`` replaced from ``ctx`` (parameters, ``automation:`` and
    ``global:`` variables, ``Step.Output``). A value that is a single
    reference takes the referenced value's type (a list stays a list)."""
    if isinstance(value, str):
        whole = _VARIABLE.fullmatch(value.strip())
        if whole and whole.group(1) in ctx:
            return ctx[whole.group(1)]

        def one(m: re.Match[str]) -> str:
            if m.group(1) not in ctx:
                return m.group(0)
            v = ctx[m.group(1)]
            return v if isinstance(v, str) else json.dumps(v)

        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [_resolve(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, ctx) for k, v in value.items()}
    return value


# -- identities -----------------------------------------------------------------


def _caller_arn(response: SimpleSystemManagerResponse) -> str:
    """The ARN of whoever signed this request, as STS GetCallerIdentity would
    answer for the same access key (an IAM user's ARN for keys moto IAM made)."""
    _, arn, _ = sts_backends[response.current_account][get_partition(response.region)].get_caller_identity(
        response.get_access_key(), response.region
    )
    return arn


def _principal(arn: str) -> tuple[str, str, str]:
    """(account, kind, name) of an IAM user ARN (``user``) or an assumed-role
    session ARN (``role``, the role's name); ("", "", "") otherwise."""
    m = re.match(r"^arn:[\w-]+:iam::(\d{12}):user/(?:.*/)?([^/]+)$", arn)
    if m:
        return m.group(1), "user", m.group(2)
    m = re.match(r"^arn:[\w-]+:sts::(\d{12}):assumed-role/([^/]+)/[^/]+$", arn)
    if m:
        return m.group(1), "role", m.group(2)
    return "", "", ""


def _approver_entries(inputs: dict[str, Any]) -> tuple[list[tuple[str, str]], int]:
    """An aws:approve step's approvers as (approver, type) and its minimum
    number of approvals. Runbooks write ``Approvers: [name or ARN, ...]``;
    change templates ``EnhancedApprovals: {Approvers: [{approver, type,
    minRequiredApprovals}], MinRequiredApprovals}`` (or ``Approvers`` with the
    same objects)."""
    enhanced = inputs.get("EnhancedApprovals") or {}
    raw = enhanced.get("Approvers") if isinstance(enhanced, dict) and enhanced.get("Approvers") else inputs.get("Approvers")
    entries: list[tuple[str, str]] = []
    per_approver = 0
    for item in raw or []:
        if item is None:
            continue
        if isinstance(item, dict):
            name = str(item.get("approver") or item.get("Approver") or item.get("Name") or "")
            kind = str(item.get("type") or item.get("Type") or item.get("ApproverType") or "")
            each = item.get("minRequiredApprovals") or 0
            if isinstance(each, bool) or not isinstance(each, int):
                raise ValueError(f"an approver's minRequiredApprovals must be an Integer, not {each!r}")
            per_approver += each
        else:
            name, kind = str(item), ""
        if name:
            entries.append((name, kind))
    minimum = inputs.get("MinRequiredApprovals")
    if minimum is None and isinstance(enhanced, dict):
        minimum = enhanced.get("MinRequiredApprovals")
    if minimum is None:
        minimum = per_approver or 1
    if isinstance(minimum, bool) or not isinstance(minimum, int):
        # aws:approve documents MinRequiredApprovals as an Integer: a string
        # (a !Ref of a Number parameter, or a {{ }} of a String) is refused.
        raise ValueError(f"MinRequiredApprovals must be an Integer, not {minimum!r}")
    return entries, minimum


def _is_approver(caller: str, entries: list[tuple[str, str]], account: str) -> bool:
    """Whether ``caller`` (an ARN) is one of ``entries``: an IAM user name or
    ARN, an IAM role (name or ARN; any session of it), an assumed-role session
    ARN, or an IAM group the calling user is in. SSO users and groups never
    match locally."""
    c_account, c_kind, c_name = _principal(caller)
    for name, kind in entries:
        if name.startswith("arn:"):
            a_account, a_kind, a_name = _principal(name)
            role = re.match(r"^arn:[\w-]+:iam::(\d{12}):role/(?:.*/)?([^/]+)$", name)
            if name == caller:
                return True
            if a_kind == "user" and c_kind == "user" and (a_account, a_name.lower()) == (c_account, c_name.lower()):
                return True
            if role and c_kind == "role" and (role.group(1), role.group(2)) == (c_account, c_name):
                return True
            continue
        if c_account != account:
            continue
        kind = kind or "IamUser"
        if kind == "IamUser" and c_kind == "user" and name.lower() == c_name.lower():
            return True
        if kind == "IamRole" and c_kind == "role" and name == c_name:
            return True
        if kind == "IamGroup" and c_kind == "user":
            try:
                group = iam_backends[account][get_partition("us-east-1")].get_group(name)
            except Exception:  # noqa: BLE001 - an unknown group has no members
                continue
            if any(u.name.lower() == c_name.lower() for u in group.users):
                return True
    return False


# -- executions -----------------------------------------------------------------


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
class Step:
    """One step of a runbook (or one approval level of a change template) as it runs."""

    name: str
    action: str
    spec: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = PENDING
    start: datetime | None = None
    end: datetime | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, list[str]] = field(default_factory=dict)
    failure: str | None = None
    approvers: list[tuple[str, str]] = field(default_factory=list)
    min_required: int = 1
    decisions: list[Decision] = field(default_factory=list)
    approval: str = "Waiting"  # aws:approve's ApprovalStatus
    branch_to: str | None = None  # aws:branch's choice

    def as_aws(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "StepName": self.name,
            "Action": self.action,
            "StepExecutionId": self.id,
            "StepStatus": self.status,
            "OnFailure": str(self.spec.get("onFailure", "Abort")),
            "MaxAttempts": int(self.spec.get("maxAttempts", 1)),
            "IsEnd": bool(self.spec.get("isEnd", False)),
            "IsCritical": bool(self.spec.get("isCritical", True)),
        }
        if "timeoutSeconds" in self.spec:
            out["TimeoutSeconds"] = int(self.spec["timeoutSeconds"])
        if "nextStep" in self.spec:
            out["NextStep"] = str(self.spec["nextStep"])
        if self.start:
            out["ExecutionStartTime"] = self.start
        if self.end:
            out["ExecutionEndTime"] = self.end
        if self.inputs is not None:
            # Inputs is a map of strings: every value as JSON text (a string
            # quoted, a list as a JSON array).
            out["Inputs"] = {k: json.dumps(v) for k, v in self.inputs.items()}
        if self.action == "aws:approve" and self.status != PENDING:
            self.outputs["ApprovalStatus"] = [self.approval]
            # A MapList output: one JSON map per approver decision.
            self.outputs["ApproverDecisions"] = [json.dumps(d.as_aws()) for d in self.decisions]
        if self.outputs:
            out["Outputs"] = self.outputs
        if self.failure:
            out["FailureMessage"] = self.failure
        return out


@dataclass
class Run:
    """The steps of one runbook being run, with what ``{{ }}`` can see."""

    document: str
    version: str
    steps: list[Step]
    ctx: dict[str, Any]
    index: int = 0
    timer: threading.Timer | None = None
    active: bool = True
    declared_outputs: list[str] = field(default_factory=list)  # the document's ``outputs``
    plan: list[dict[str, Any]] = field(default_factory=list)  # the document's mainSteps
    assume_role: str | None = None  # the document's assumeRole, resolved: the role its steps act as
    started: bool = False


@dataclass
class Execution:
    id: str
    account: str
    region: str
    subtype: str | None  # "ChangeRequest" or None (plain Automation)
    document: str
    document_version: str
    executed_by: str
    created: datetime
    parameters: dict[str, list[str]]
    steps: list[Step]  # a plain execution's steps; a change request's approval levels
    status: str = IN_PROGRESS
    end: datetime | None = None
    failure: str | None = None
    outputs: dict[str, list[str]] = field(default_factory=dict)
    run: Run | None = None  # the runbook being run (a change request's runbook after approval)
    # Change requests only:
    name: str = ""
    runbooks: list[dict[str, Any]] = field(default_factory=list)
    ops_item_id: str = ""
    scheduled_time: datetime | None = None
    scheduled_end_time: datetime | None = None
    auto_approve: bool = False
    change_details: str | None = None
    modified: datetime | None = None
    modified_by: str = ""
    timer: threading.Timer | None = None
    approval_run: Run | None = None  # a change request's approval levels, as a run of aws:approve steps
    runbook_values: dict[str, list[str]] = field(default_factory=dict)  # its runbook's parameters, checked

    @property
    def is_change_request(self) -> bool:
        return self.subtype == "ChangeRequest"

    @property
    def partition(self) -> str:
        return get_partition(self.region)

    @property
    def ops_item_arn(self) -> str:
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:opsitem/{self.ops_item_id}"

    @property
    def runbook_name(self) -> str:
        return self.runbooks[0]["DocumentName"] if self.runbooks else self.document

    @property
    def runbook_version(self) -> str:
        return str(self.runbooks[0].get("DocumentVersion") or "1") if self.runbooks else self.document_version

    @property
    def runbook_arn(self) -> str:
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:document/{self.runbook_name}"

    def current_step(self) -> Step | None:
        steps = self.run.steps if self.run else self.steps
        return next((s for s in steps if s.status in (WAITING, IN_PROGRESS)), None)

    def as_aws(self) -> dict[str, Any]:
        """The GetAutomationExecution view (moto serialises it against the
        botocore model, so datetimes become epoch seconds on the wire)."""
        out: dict[str, Any] = {
            "AutomationExecutionId": self.id,
            "DocumentName": self.document,
            "DocumentVersion": self.document_version,
            "ExecutionStartTime": self.created,
            "AutomationExecutionStatus": self.status,
            "ExecutedBy": self.executed_by,
            "Mode": "Auto",
            "StepExecutions": [s.as_aws() for s in self.steps[:MAX_INLINE_STEPS]],
            "StepExecutionsTruncated": len(self.steps) > MAX_INLINE_STEPS,
        }
        if self.parameters:
            out["Parameters"] = self.parameters
        if self.end:
            out["ExecutionEndTime"] = self.end
        if self.failure:
            out["FailureMessage"] = self.failure
        if self.outputs:
            out["Outputs"] = self.outputs
        current = self.current_step()
        if current and not self.is_change_request:
            out["CurrentStepName"] = current.name
            out["CurrentAction"] = current.action
        if self.is_change_request:
            out["AutomationSubtype"] = "ChangeRequest"
            out["ChangeRequestName"] = self.name
            out["OpsItemId"] = self.ops_item_id
            out["Runbooks"] = [
                {
                    "DocumentName": rb["DocumentName"],
                    "DocumentVersion": str(rb.get("DocumentVersion") or "1"),
                    "Parameters": rb.get("Parameters") or {},
                }
                for rb in self.runbooks
            ]
            if self.scheduled_time:
                out["ScheduledTime"] = self.scheduled_time
        return out

    def change_request_detail(self) -> dict[str, Any]:
        """The ``detail`` of a Change Request Status Update event, in the
        documented shape (kebab-case keys, ISO times, ARNs of IAM principals)."""
        return {
            "change-request-id": self.id,
            "change-request-title": self.name,
            "ops-item-id": self.ops_item_id,
            "ops-item-created-by": self.executed_by,
            "ops-item-created-time": _iso(self.created),
            "ops-item-modified-by": self.modified_by,
            "ops-item-modified-time": _iso(self.modified or self.created),
            "ops-item-status": self.status,
            "change-template-document-name": self.document,
            "runbook-document-arn": self.runbook_arn,
            "runbook-document-version": self.runbook_version,
            "auto-approve": self.auto_approve,
            "approvers": [name for s in self.steps for name, _ in s.approvers],
        }


def _store(account: str, region: str) -> dict[str, Execution]:
    """Executions live on moto's SSM backend for (account, region), so
    ``/moto-api/reset`` (which rebuilds backends) forgets them too."""
    backend = ssm_backends[account][region]
    store = getattr(backend, "_localaws_executions", None)
    if store is None:
        store = {}
        backend._localaws_executions = store  # type: ignore[attr-defined]
        backend._localaws_client_tokens = {}  # type: ignore[attr-defined]
    return store


def _client_tokens(account: str, region: str) -> dict[str, tuple[str, str]]:
    _store(account, region)
    return ssm_backends[account][region]._localaws_client_tokens  # type: ignore[attr-defined]


def _alive(ex: Execution) -> bool:
    """Whether ``ex`` is still the server's (not forgotten by a reset)."""
    return _store(ex.account, ex.region).get(ex.id) is ex


def _get(response: SimpleSystemManagerResponse, execution_id: Any) -> Execution:
    ex = _store(response.current_account, response.region).get(str(execution_id or ""))
    if ex is None:
        raise _error("AutomationExecutionNotFoundException", f"Automation execution {execution_id} not found.")
    return ex


def _put_event(ex: Execution, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
    entries = events_backends[ex.account][ex.region].put_events(
        [
            {
                "Source": "aws.ssm",
                "DetailType": detail_type,
                "Resources": resources,
                "Detail": json.dumps(detail),
                "EventBusName": "default",
            }
        ]
    )
    failed = [e for e in entries if "ErrorCode" in e]
    if failed:
        log.warning("execution %s: %s not put: %s", ex.id, detail_type, failed)


def _automation_resources(ex: Execution) -> list[str]:
    prefix = f"arn:{ex.partition}:ssm:{ex.region}:{ex.account}"
    return [f"{prefix}:automation-execution/{ex.id}", f"{prefix}:automation-definition/{ex.document}:{ex.document_version}"]


def _elapsed_ms(start: datetime | None, end: datetime | None) -> float:
    return round(((end or _now()) - (start or _now())).total_seconds() * 1000.0, 1)


def _definition_version(ex: Execution) -> float:
    try:
        return float(ex.document_version)
    except ValueError:
        return 1.0


def _set_status(ex: Execution, status: str, by: str) -> None:
    """Moves the execution to ``status`` and tells EventBridge: a change
    request puts a ``Change Request Status Update`` event, a plain Automation
    execution an ``EC2 Automation Execution Status-change Notification``."""
    if ex.status == status and not ex.is_change_request:
        return
    ex.status = status
    ex.modified = _now()
    ex.modified_by = by
    if status in FINAL:
        ex.end = ex.modified
        if ex.timer:
            ex.timer.cancel()
        if not ex.is_change_request and _alive(ex):
            threading.Thread(target=_dequeue_later, args=(ex.account, ex.region), daemon=True).start()
    if ex.is_change_request:
        _put_event(ex, "Change Request Status Update", [ex.ops_item_arn, ex.runbook_arn], ex.change_request_detail())
    else:
        _put_event(
            ex,
            "EC2 Automation Execution Status-change Notification",
            _automation_resources(ex),
            {
                "ExecutionId": ex.id,
                "Definition": ex.document,
                "DefinitionVersion": _definition_version(ex),
                "Status": status,
                "StartTime": _event_time(ex.created),
                "EndTime": _event_time(ex.end),
                "Time": _elapsed_ms(ex.created, ex.end),
                "ExecutedBy": ex.executed_by,
            },
        )
    log.info("execution %s (%s) -> %s (by %s)", ex.id, ex.document, status, by)


def _dequeue_later(account: str, region: str) -> None:
    with _LOCK:
        _dequeue(account, region)


def _set_step(ex: Execution, step: Step, status: str, failure: str | None = None) -> None:
    """A step's status change; for a plain Automation execution, an
    ``EC2 Automation Step Status-change Notification`` event. (A change
    request's levels and runbook steps put none: see README.)"""
    step.status = status
    if status not in (PENDING,) and step.start is None:
        step.start = _now()
    if status in STEP_FINAL:
        step.end = _now()
    if failure:
        step.failure = failure
    if not ex.is_change_request:
        _put_event(
            ex,
            "EC2 Automation Step Status-change Notification",
            _automation_resources(ex),
            {
                "ExecutionId": ex.id,
                "Definition": ex.document,
                "DefinitionVersion": _definition_version(ex),
                "Status": status,
                "EndTime": _event_time(step.end),
                "StartTime": _event_time(step.start),
                "Time": _elapsed_ms(step.start, step.end),
                "StepName": step.name,
                "Action": step.action,
            },
        )
    log.info("execution %s step %s (%s) -> %s%s", ex.id, step.name, step.action, status, f": {failure}" if failure else "")


# -- running steps --------------------------------------------------------------


def _steps_of(document: Any) -> list[Step]:
    return [
        Step(name=str(s.get("name")), action=str(s.get("action")), spec=s) for s in (document.content_json.get("mainSteps") or [])
    ]


def _new_run(ex: Execution, document: Any, values: dict[str, list[str]]) -> Run:
    ctx = _typed(document.content_json.get("parameters"), values)
    ctx.update(
        {
            "automation:EXECUTION_ID": ex.id,
            "automation:DOCUMENT_EXECUTION_ID": ex.id,
            "global:ACCOUNT_ID": ex.account,
            "global:REGION": ex.region,
            "global:AWS_PARTITION": ex.partition,
            "global:DATE": _now().strftime("%Y-%m-%d"),
            "global:DATE_TIME": _now().strftime("%Y-%m-%d_%H.%M.%S"),
        }
    )
    role = _resolve(document.content_json.get("assumeRole"), ctx)
    return Run(
        document=document.name,
        version=document.document_version,
        steps=_steps_of(document),
        ctx=ctx,
        plan=list(document.content_json.get("mainSteps") or []),
        declared_outputs=[str(o) for o in document.content_json.get("outputs") or []],
        assume_role=role if isinstance(role, str) and role else None,
    )


# -- the runbook's role ------------------------------------------------------------


def _role(ex: Execution, role_arn: str) -> Any:
    """The IAM role ``role_arn`` names in moto, or None (another account's,
    or none of that name)."""
    m = re.match(r"^arn:[\w-]+:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
    if not m or m.group(1) != ex.account:
        return None
    try:
        return iam_backends[ex.account][ex.partition].get_role(m.group(2))
    except Exception:  # noqa: BLE001 - moto's NoSuchEntity: no such role
        return None


def _assume_role_problem(ex: Execution, role_arn: str) -> str | None:
    """Why Automation could not act as the runbook's ``assumeRole``: the role
    must exist and trust ssm.amazonaws.com with sts:AssumeRole (its trust
    policy's conditions are not evaluated, as moto evaluates none but
    StringEquals). None if it can."""
    role = _role(ex, role_arn)
    if role is None:
        return f"The defined assume role is unable to be assumed: {role_arn} does not exist."
    trust = role.assume_role_policy_document
    trust = json.loads(trust) if isinstance(trust, str) else trust
    for statement in (trust or {}).get("Statement") or []:
        services = (statement.get("Principal") or {}).get("Service") or []
        actions = statement.get("Action") or []
        if (statement.get("Effect") == "Allow" and "ssm.amazonaws.com" in ([services] if isinstance(services, str) else services)
                and "sts:AssumeRole" in ([actions] if isinstance(actions, str) else actions)):
            return None
    return f"The defined assume role is unable to be assumed: {role_arn} does not trust ssm.amazonaws.com."


def _role_permits(ex: Execution, role_arn: str, action: str, resource: str) -> bool:
    """Whether the role's own policies (inline and attached) allow ``action``
    on ``resource``: an explicit Deny wins, no Allow denies."""
    role = _role(ex, role_arn)
    if role is None:
        return False
    backend = iam_backends[ex.account][ex.partition]
    documents = [backend.get_role_policy(role.name, name)[1] for name in backend.list_role_policies(role.name)]
    documents += list(getattr(role, "managed_policies", {}).values())
    permitted = False
    for document in documents:
        verdict = IAMPolicy(document).is_action_permitted(action, resource)
        if verdict == PermissionResult.DENIED:
            return False
        permitted = permitted or verdict == PermissionResult.PERMITTED
    return permitted


def _start_step(ex: Execution, run: Run, step: Step) -> None:
    """Runs ``step`` as far as it goes now: to Success or Failed, or to
    Waiting (aws:approve) or InProgress (aws:sleep) until a signal or timer."""
    try:
        step.inputs = _resolve(step.spec.get("inputs") or {}, run.ctx)
    except Exception as exc:  # noqa: BLE001 - a bad document fails the step, as in AWS
        _set_step(ex, step, FAILED, f"inputs: {exc}")
        return
    inputs = step.inputs
    action = step.action
    if action == "aws:approve":
        try:
            step.approvers, step.min_required = _approver_entries(inputs)
        except ValueError as exc:
            _set_step(ex, step, FAILED, f"aws:approve: {exc}")
            return
        problem = None
        if not step.approvers:
            problem = "aws:approve needs Approvers"
        elif len(step.approvers) > 10:
            problem = "aws:approve takes at most 10 approvers"
        elif step.min_required < 1 or (not ex.is_change_request and step.min_required > len(step.approvers)):
            problem = "MinRequiredApprovals must be from 1 to the number of approvers"
        elif len(str(inputs.get("Message") or "")) > 4096:
            problem = "aws:approve Message is longer than 4096 characters"
        elif float(step.spec.get("timeoutSeconds") or 0) > 2592000:
            problem = "aws:approve timeoutSeconds is more than 2592000 (30 days)"
        topic = inputs.get("NotificationArn")
        if topic and not str(topic).rsplit(":", 1)[-1].startswith("Automation"):
            problem = f"the SNS topic of NotificationArn must be named Automation...: {topic}"
        if problem:
            _set_step(ex, step, FAILED, problem)
            return
        step.approval = "Waiting"
        _set_step(ex, step, WAITING)
        if topic:
            _notify_approvers(ex, step, str(topic))
        return
    if action == "aws:invokeLambdaFunction":
        invocation_type = str(inputs.get("InvocationType") or "RequestResponse")
        payload = inputs.get("Payload")
        function = str(inputs.get("FunctionName") or "")
        function_arn = function if function.startswith("arn:") else (
            f"arn:{ex.partition}:lambda:{ex.region}:{ex.account}:function:{function}")
        # With a service role, the step invokes as that role: its policies must
        # allow lambda:InvokeFunction on the function (Systems Manager user
        # guide, aws:invokeLambdaFunction; "Create the service roles for
        # Automation"). Without one, the caller's own permissions apply, which
        # moto checks only for the caller's own calls.
        if run.assume_role and not _role_permits(ex, run.assume_role, "lambda:InvokeFunction", function_arn):
            _set_step(ex, step, FAILED, f"AccessDenied: {run.assume_role} is not authorized to perform "
                                        f"lambda:InvokeFunction on {function_arn}")
            return
        invocation_id = str(uuid.uuid4())
        with _LAMBDA_LOCK:
            _LAMBDA_INVOCATIONS.append(
                {
                    "InvocationId": invocation_id,
                    "Time": _iso(_now()),
                    "Account": ex.account,
                    "Region": ex.region,
                    "AutomationExecutionId": ex.id,
                    "StepName": step.name,
                    "FunctionName": inputs.get("FunctionName"),
                    "Qualifier": inputs.get("Qualifier"),
                    "InvocationType": invocation_type,
                    "Payload": payload if isinstance(payload, str) or payload is None else json.dumps(payload),
                    "ClientContext": inputs.get("ClientContext"),
                    "LogType": inputs.get("LogType"),
                }
            )
        if invocation_type == "RequestResponse":
            # The step runs as long as the function does (the harness runs it
            # and answers, see answer_invocation).
            with _LAMBDA_LOCK:
                _PENDING_CALLS[invocation_id] = (ex, run, step)
            _set_step(ex, step, IN_PROGRESS)
            return
        step.outputs["StatusCode"] = ["202" if invocation_type == "Event" else "204"]
        _set_step(ex, step, SUCCESS)
        return
    if action == "aws:executeScript":
        _execute_script(ex, run, step)
        return
    if action == "aws:branch":
        try:
            choice = next((c for c in inputs.get("Choices") or [] if _choice_holds(c)), None)
        except (ValueError, TypeError) as exc:
            _set_step(ex, step, FAILED, f"aws:branch: {exc}")
            return
        target = choice.get("NextStep") if choice else inputs.get("Default")
        if not target:
            _set_step(ex, step, FAILED, "aws:branch: no choice holds and there is no Default")
            return
        step.branch_to = str(target)
        _set_step(ex, step, SUCCESS)
        return
    if action == "aws:sleep":
        try:
            if inputs.get("Timestamp"):
                until = _as_datetime(str(inputs["Timestamp"]))
                assert until is not None
                delay = (until - _now()).total_seconds()
            elif inputs.get("Duration"):
                delay = _iso_duration(str(inputs["Duration"]))
            else:
                raise ValueError("aws:sleep needs Duration or Timestamp")
        except (ValueError, AssertionError) as exc:
            _set_step(ex, step, FAILED, str(exc))
            return
        if delay > MAX_SLEEP_SECONDS:
            _set_step(ex, step, FAILED, f"aws:sleep of {delay:.0f} s exceeds the maximum delay of {MAX_SLEEP_SECONDS} s (7 days)")
            return
        if delay <= 0:
            _set_step(ex, step, SUCCESS)
            return
        _set_step(ex, step, IN_PROGRESS)
        run.timer = threading.Timer(delay, _wake, args=(ex, run, step))
        run.timer.daemon = True
        run.timer.start()
        return
    _set_step(ex, step, FAILED, f"localaws does not emulate the action {action}")


_BRANCH_TESTS: dict[str, Any] = {
    "StringEquals": lambda a, b: str(a) == str(b),
    "EqualsIgnoreCase": lambda a, b: str(a).lower() == str(b).lower(),
    "StartsWith": lambda a, b: str(a).startswith(str(b)),
    "EndsWith": lambda a, b: str(a).endswith(str(b)),
    "Contains": lambda a, b: str(b) in (a if isinstance(a, list) else str(a)),
    "NumericEquals": lambda a, b: float(a) == float(b),
    "NumericGreater": lambda a, b: float(a) > float(b),
    "NumericLesser": lambda a, b: float(a) < float(b),
    "NumericGreaterOrEquals": lambda a, b: float(a) >= float(b),
    "NumericLesserOrEquals": lambda a, b: float(a) <= float(b),
    "BooleanEquals": lambda a, b: str(a).lower() == str(b).lower(),
}


def answer_invocation(invocation_id: str, answer: dict[str, Any]) -> bool:
    """The harness ran a RequestResponse invocation: its step gets the
    function's answer as outputs (StatusCode 200, Payload, FunctionError),
    succeeds (or fails, with a FunctionError) and the run goes on. False when
    no such invocation is waiting."""
    with _LAMBDA_LOCK:
        pending = _PENDING_CALLS.pop(invocation_id, None)
    if pending is None:
        return False
    ex, run, step = pending
    with _LOCK:
        if not (_alive(ex) and run.active and step.status == IN_PROGRESS):
            return True
        payload = answer.get("Payload")
        step.outputs["StatusCode"] = ["200"]
        step.outputs["Payload"] = [payload if isinstance(payload, str) else json.dumps(payload)]
        error = answer.get("FunctionError")
        if error:
            step.outputs["FunctionError"] = [str(error)]
            # (maxAttempts is not emulated: the first failure is the step's.)
            _set_step(ex, step, FAILED, f"the function failed: {error}")
        else:
            _set_step(ex, step, SUCCESS)
        _advance(ex, run)
    return True


def _choice_holds(choice: dict[str, Any]) -> bool:
    """One aws:branch choice (its Variable already resolved): an operator
    from _BRANCH_TESTS, or And / Or / Not of choices."""
    if "And" in choice:
        return all(_choice_holds(c) for c in choice["And"])
    if "Or" in choice:
        return any(_choice_holds(c) for c in choice["Or"])
    if "Not" in choice:
        return not _choice_holds(choice["Not"])
    for op, test in _BRANCH_TESTS.items():
        if op in choice:
            return bool(test(choice.get("Variable"), choice[op]))
    raise ValueError(f"unknown choice {choice}")


def _execute_script(ex: Execution, run: Run, step: Step) -> None:
    """aws:executeScript with an inline Python ``Script``: runs ``Handler``
    in-process with ``InputPayload`` (changegate's own documents only). The
    return value is the step's ``Payload`` output; declared ``outputs`` are
    read from it with their ``Selector`` (``$.Payload.a.b``)."""
    inputs = step.inputs or {}
    runtime = str(inputs.get("Runtime") or "")
    if runtime not in SCRIPT_RUNTIMES:
        _set_step(ex, step, FAILED, f"localaws runs {', '.join(sorted(SCRIPT_RUNTIMES))} scripts only (Runtime {runtime!r})")
        return
    if not inputs.get("Script") or not inputs.get("Handler"):
        _set_step(ex, step, FAILED, "localaws runs an inline Script with a Handler only (no attachments)")
        return
    _set_step(ex, step, IN_PROGRESS)
    namespace: dict[str, Any] = {"__name__": f"localaws_script_{step.name}"}
    try:
        exec(compile(str(inputs["Script"]), f"<{run.document}:{step.name}>", "exec"), namespace)  # noqa: S102 - our own documents
        result = namespace[str(inputs["Handler"])](inputs.get("InputPayload") or {}, {})
    except Exception as exc:  # noqa: BLE001 - the script's failure is the step's
        _set_step(ex, step, FAILED, f"{type(exc).__name__}: {exc}")
        return
    step.outputs["Payload"] = [json.dumps(result)]
    for output in step.spec.get("outputs") or []:
        name = str(output.get("Name"))
        value: Any = {"Payload": result}
        for key in str(output.get("Selector", "")).removeprefix("$.").split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            _set_step(ex, step, FAILED, f"output {name}: selector {output.get('Selector')} found nothing")
            return
        run.ctx[f"{step.name}.{name}"] = value
        step.outputs[name] = (
            [str(v) for v in value] if isinstance(value, list) else [value if isinstance(value, str) else json.dumps(value)]
        )
    _set_step(ex, step, SUCCESS)


def _notify_approvers(ex: Execution, step: Step, topic: str) -> None:
    """aws:approve's NotificationArn: a message to the topic, if moto has it."""
    sns = sns_backends[ex.account][ex.region]
    if topic not in getattr(sns, "topics", {}):
        log.warning("execution %s step %s: topic %s does not exist; no approval notification", ex.id, step.name, topic)
        return
    message = "\n".join(
        [
            str((step.inputs or {}).get("Message") or ""),
            f"Automation execution {ex.id} ({ex.document}) is waiting for approval at step {step.name}.",
        ]
    ).strip()
    try:
        sns.publish(message, topic, subject="APPROVAL REQUIRED")
    except Exception as exc:  # noqa: BLE001 - a notification never breaks the run
        log.warning("approval notification to %s failed: %s", topic, exc)


def _wake(ex: Execution, run: Run, step: Step) -> None:
    """Timer: a sleeping step is over."""
    with _LOCK:
        if not (_alive(ex) and run.active and step.status == IN_PROGRESS):
            return
        _set_step(ex, step, SUCCESS)
        _advance(ex, run)


MAX_STEP_EXECUTIONS = 1000  # a loop guard: the emulator's, not AWS's


def _instance(run: Run, name: str) -> int | None:
    """Where the run goes to run step ``name`` next: its pending instance
    after the current one, or (a step that already ran, as in a loop) a fresh
    step execution inserted right after the current one."""
    for i in range(run.index + 1, len(run.steps)):
        if run.steps[i].name == name and run.steps[i].status == PENDING:
            return i
    spec = next((s for s in run.plan if s.get("name") == name), None)
    if spec is None:
        return None
    run.steps.insert(run.index + 1, Step(name=name, action=str(spec.get("action")), spec=spec))
    return run.index + 1


def _advance(ex: Execution, run: Run) -> None:
    """Runs the run's steps from where it stands until one waits or all are
    done. After a step: ``isEnd`` ends the run; ``aws:branch``'s choice or
    ``nextStep`` names the next step; otherwise the next in the document."""
    order = [str(s.get("name")) for s in run.plan]
    if not run.started:
        run.started = True
        problem = _assume_role_problem(ex, run.assume_role) if run.assume_role else None
        if problem:
            _finish(ex, run, False, problem)
            return
    while run.active and run.index < len(run.steps):
        if len(run.steps) > MAX_STEP_EXECUTIONS:
            _finish(ex, run, False, f"more than {MAX_STEP_EXECUTIONS} step executions (localaws loop guard)")
            return
        step = run.steps[run.index]
        if step.status == PENDING:
            _start_step(ex, run, step)
        if step.status in (WAITING, IN_PROGRESS):
            if not ex.is_change_request and step.status == WAITING:
                _set_status(ex, WAITING, ex.executed_by)
            elif not ex.is_change_request:
                _set_status(ex, IN_PROGRESS, ex.executed_by)
            return
        if step.status == SUCCESS:
            if step.spec.get("isEnd"):
                break
            target = step.branch_to or step.spec.get("nextStep")
        else:
            on_failure = str(step.spec.get("onFailure", "Abort"))
            if on_failure.startswith("step:"):
                target = on_failure[5:]
            elif on_failure == "Continue":
                target = None
            else:
                _finish(ex, run, False, step.failure or f"Step {step.name} {step.status.lower()}")
                return
        if target is None:
            position = order.index(step.name) if step.name in order else len(order)
            if position + 1 >= len(order):
                break
            target = order[position + 1]
        following = _instance(run, str(target))
        if following is None:
            _finish(ex, run, False, f"Step {step.name}: no step named {target}")
            return
        run.index = following
    _finish(ex, run, True, None)


def _finish(ex: Execution, run: Run, ok: bool, failure: str | None) -> None:
    run.active = False
    if failure:
        ex.failure = failure
    if ex.is_change_request:
        _set_status(ex, COMPLETED_WITH_SUCCESS if ok else COMPLETED_WITH_FAILURE, ex.modified_by or ex.executed_by)
        return
    outputs = {}
    for ref in run.declared_outputs:
        step_name, _, out_name = ref.partition(".")
        step = next((s for s in run.steps if s.name == step_name), None)
        if step and out_name in step.outputs:
            outputs[ref] = step.outputs[out_name]
    ex.outputs = outputs
    _set_status(ex, SUCCESS if ok else FAILED, ex.executed_by)


def _stop_run(ex: Execution, run: Run | None) -> None:
    if run is None:
        return
    run.active = False
    if run.timer:
        run.timer.cancel()
    for step in run.steps:
        if step.status in (WAITING, IN_PROGRESS):
            _set_step(ex, step, CANCELLED)


def _arm_approval_timeout(ex: Execution, run: Run, step: Step) -> None:
    """aws:approve's timeoutSeconds (default 7 days): undecided by then, the
    step and the execution end TimedOut."""
    seconds = float(step.spec.get("timeoutSeconds") or MAX_SLEEP_SECONDS)
    run.timer = threading.Timer(min(seconds, threading.TIMEOUT_MAX), _approval_timed_out, args=(ex, run, step))
    run.timer.daemon = True
    run.timer.start()


def _approval_timed_out(ex: Execution, run: Run, step: Step) -> None:
    with _LOCK:
        if not (_alive(ex) and run.active and step.status == WAITING):
            return
        run.active = False
        _set_step(ex, step, TIMED_OUT, "Step timed out waiting for approval")
        ex.failure = step.failure
        _set_status(ex, TIMED_OUT, ex.executed_by)


# -- the API ----------------------------------------------------------------


def _check_tags(tags: Any) -> list[dict[str, str]]:
    tags = list(tags or [])
    if len({t.get("Key") for t in tags}) > MAX_TAGS_PER_EXECUTION:
        raise _error("ValidationException", f"An automation execution can have at most {MAX_TAGS_PER_EXECUTION} tags.")
    return tags


_UUID = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")


def _idempotency(self: SimpleSystemManagerResponse) -> tuple[tuple[str, str] | None, str | None]:
    """``ClientToken``: a UUID (else ValidationException). A retry with the
    same token and the same request returns the first execution's id (second
    value); with a different request, IdempotentParameterMismatch."""
    token = self._get_param("ClientToken")
    if not token:
        return None, None
    if not _UUID.match(str(token)):
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value '{token}' at 'clientToken' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {_UUID.pattern.strip('^$')}",
        )
    try:
        body = json.loads(self.body or "{}")
    except ValueError:
        body = {}
    body.pop("ClientToken", None)
    entry = (str(token).lower(), json.dumps(body, sort_keys=True, default=str))
    seen = _client_tokens(self.current_account, self.region).get(entry[0])
    if seen is None:
        return entry, None
    first_id, fingerprint = seen
    if fingerprint != entry[1]:
        raise _error("IdempotentParameterMismatch", "The ClientToken was used before with different parameters.")
    return entry, first_id


def _register(ex: Execution, tags: list[dict[str, str]], token: tuple[str, str] | None) -> None:
    _store(ex.account, ex.region)[ex.id] = ex
    if token:
        _client_tokens(ex.account, ex.region)[token[0]] = (ex.id, token[1])
    if tags:
        backend = ssm_backends[ex.account][ex.region]
        backend._resource_tags["Automation"][ex.id] = {t["Key"]: t.get("Value", "") for t in tags}


def _unsupported(self: SimpleSystemManagerResponse, *names: str) -> None:
    for name in names:
        if self._get_param(name):
            raise _error("ValidationException", f"localaws does not emulate {name}.")


def start_change_request_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    template_name = self._get_param("DocumentName")
    runbooks = self._get_param("Runbooks") or []
    if not template_name:
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
        token, retried = _idempotency(self)
        if retried:
            return ActionResult({"AutomationExecutionId": retried})
        template = _document(account, region, template_name, self._get_param("DocumentVersion"), CHANGE_TEMPLATE_TYPE)
        runbook = dict(runbooks[0])
        runbook_doc = _document(account, region, runbook["DocumentName"], runbook.get("DocumentVersion"), "Automation")
        _check_executable(account, region, template, runbook_doc)
        runbook_values = _validate_parameters(
            runbook_doc.content_json.get("parameters"), runbook.get("Parameters"), runbook_doc.name
        )
        # The runbook's service role is passed to Automation when the request
        # runs it: as for StartAutomationExecution, the requester needs
        # iam:PassRole on it. Who passes it for a change request is not
        # documented (*unconfirmed*); requiring it of the requester is the
        # strict reading (README: requesters hold PassRole on RunbookRoleArn).
        role = _resolve(runbook_doc.content_json.get("assumeRole"),
                        _typed(runbook_doc.content_json.get("parameters"), runbook_values))
        if isinstance(role, str) and role.startswith("arn:"):
            _check_pass_role(self, role)
        runbook["DocumentVersion"] = runbook_doc.document_version
        template_values = _validate_parameters(
            template.content_json.get("parameters"), self._get_param("Parameters"), template.name
        )
        auto_approve = bool(self._get_param("AutoApprove", False))
        if auto_approve and not (template.content_json.get("autoApprovable") or template.content_json.get("autoApprove")):
            raise _error("ValidationException", f"Change template {template.name} does not allow auto-approval (autoApprovable).")
        tags = _check_tags(self._get_param("Tags"))
        requester = _caller_arn(self)
        ex = Execution(
            id=str(uuid.uuid4()),
            account=account,
            region=region,
            subtype="ChangeRequest",
            document=template.name,
            document_version=template.document_version,
            executed_by=requester,
            created=_now(),
            parameters=template_values,
            steps=[],
            status=PENDING,
            name=self._get_param("ChangeRequestName") or template.name,
            runbooks=[runbook],
            ops_item_id="oi-" + secrets.token_hex(6),
            scheduled_time=_as_datetime(self._get_param("ScheduledTime")),
            scheduled_end_time=_as_datetime(self._get_param("ScheduledEndTime")),
            auto_approve=auto_approve,
            change_details=self._get_param("ChangeDetails"),
        )
        levels = _new_run(ex, template, template_values)
        levels.steps = [s for s in levels.steps if s.action == "aws:approve"]
        if not levels.steps:
            raise _error("ValidationException", f"Change template {template.name} has no aws:approve step.")
        for level in levels.steps:
            try:
                entries, minimum = _approver_entries(_resolve(level.spec.get("inputs") or {}, levels.ctx))
            except ValueError as exc:
                raise _error("ValidationException", f"Change template {template.name}: level {level.name}: {exc}") from None
            if not entries or minimum < 1:
                raise _error(
                    "ValidationException", f"Change template {template.name}: approval level {level.name} has no valid approvers."
                )
            level.approvers, level.min_required = entries, minimum  # the event's approvers list every level
        ex.approval_run = levels
        ex.steps = levels.steps
        ex.runbook_values = runbook_values
        _register(ex, tags, token)
        _set_status(ex, PENDING_APPROVAL, requester)
        _open_level(ex, levels, levels.steps[0], requester)
        if auto_approve and ex.status == PENDING_APPROVAL:
            # AutoApprove (allowed by the template): every level passes
            # without reviewers, as the requester; no approver decisions.
            if levels.timer:
                levels.timer.cancel()
            for level in levels.steps:
                if level.status == PENDING:
                    level.inputs = _resolve(level.spec.get("inputs") or {}, levels.ctx)
                    level.approvers, level.min_required = _approver_entries(level.inputs)
                level.approval = "Approved"
                _set_step(ex, level, SUCCESS)
            levels.active = False
            _all_approved(ex, requester)
    return ActionResult({"AutomationExecutionId": ex.id})


def _executable(account: str, region: str, template: Any) -> list[tuple[str, str]]:
    """A change template's executableRunBooks as (name, version): the
    runbooks a change request under it may run ("Creating change templates
    using command line tools")."""
    out = []
    for entry in template.content_json.get("executableRunBooks") or []:
        if isinstance(entry, dict) and entry.get("name"):
            out.append((str(entry["name"]), str(entry.get("version") or "$DEFAULT")))
    return out


def _check_executable(account: str, region: str, template: Any, runbook: Any) -> None:
    """A change request may run only a runbook its template lists, at the
    version listed ($DEFAULT and $LATEST as they stand when it is filed)."""
    for name, version in _executable(account, region, template):
        if name != runbook.name:
            continue
        listed = _document(account, region, name, version, "Automation").document_version
        if listed == runbook.document_version:
            return
    raise _error(
        "ValidationException",
        f"Runbook {runbook.name} version {runbook.document_version} is not one of change template "
        f"{template.name}'s executableRunBooks {_executable(account, region, template)}.",
    )


def _open_level(ex: Execution, run: Run, level: Step, by: str) -> None:
    """A change request's approval level opens (``Waiting``, with its
    timeout); a level that cannot (bad inputs) fails the request."""
    _start_step(ex, run, level)
    if level.status == WAITING:
        _arm_approval_timeout(ex, run, level)
        return
    run.active = False
    ex.failure = level.failure
    _set_status(ex, FAILED, by)


def _all_approved(ex: Execution, by: str) -> None:
    """Every level approved: Approved, then the runbook runs now or at ScheduledTime."""
    _set_status(ex, APPROVED, by)
    delay = (ex.scheduled_time - _now()).total_seconds() if ex.scheduled_time else 0.0
    if delay <= 0:
        _start_runbook(ex, by)
        return
    _set_status(ex, SCHEDULED, by)
    ex.timer = threading.Timer(min(delay, threading.TIMEOUT_MAX), _scheduled, args=(ex, by))
    ex.timer.daemon = True
    ex.timer.start()


def _scheduled(ex: Execution, by: str) -> None:
    """Timer: a Scheduled change request whose ScheduledTime has come runs."""
    with _LOCK:
        if _alive(ex) and ex.status == SCHEDULED:
            _start_runbook(ex, by)


def _start_runbook(ex: Execution, by: str) -> None:
    """A change request's runbook runs, step by step, while the request is
    RunbookInProgress; it completes when the runbook does."""
    _set_status(ex, RUNBOOK_IN_PROGRESS, by)
    try:
        document = _document(ex.account, ex.region, ex.runbook_name, ex.runbook_version, "Automation")
    except JsonRESTError as exc:
        ex.failure = str(exc)
        _set_status(ex, COMPLETED_WITH_FAILURE, by)
        return
    ex.run = _new_run(ex, document, ex.runbook_values)
    _advance(ex, ex.run)


def start_automation_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    name = self._get_param("DocumentName")
    if not name:
        raise _error("ValidationException", "DocumentName is required.")
    _unsupported(self, "Targets", "TargetMaps", "TargetParameterName", "TargetLocations", "TargetLocationsURL")
    if self._get_param("Mode") not in (None, "", "Auto"):
        raise _error("ValidationException", "localaws emulates Mode Auto only.")
    account, region = self.current_account, self.region
    with _LOCK:
        token, retried = _idempotency(self)
        if retried:
            return ActionResult({"AutomationExecutionId": retried})
        document = _document(account, region, name, self._get_param("DocumentVersion"), "Automation")
        values = _validate_parameters(document.content_json.get("parameters"), self._get_param("Parameters"), document.name)
        role = _resolve(document.content_json.get("assumeRole"), _typed(document.content_json.get("parameters"), values))
        if isinstance(role, str) and role.startswith("arn:"):
            _check_pass_role(self, role)
        tags = _check_tags(self._get_param("Tags"))
        caller = _caller_arn(self)
        ex = Execution(
            id=str(uuid.uuid4()),
            account=account,
            region=region,
            subtype=None,
            document=document.name,
            document_version=document.document_version,
            executed_by=caller,
            created=_now(),
            parameters=values,
            steps=[],
            status=PENDING,
        )
        ex.run = _new_run(ex, document, values)
        ex.steps = ex.run.steps
        running = [e for e in _store(account, region).values() if not e.is_change_request and e.status not in FINAL]
        queued = [e for e in running if e.status == PENDING]
        if len(queued) >= MAX_QUEUED_AUTOMATIONS:
            raise _error(
                "AutomationExecutionLimitExceededException",
                f"{len(running) - len(queued)} automations run and {len(queued)} wait in the queue.",
            )
        _register(ex, tags, token)
        if len(running) - len(queued) >= MAX_CONCURRENT_AUTOMATIONS or queued:
            # Over the concurrency quota: the execution waits, Pending, until one ends.
            _set_status(ex, PENDING, caller)
            return ActionResult({"AutomationExecutionId": ex.id})
        _set_status(ex, IN_PROGRESS, caller)
        _advance(ex, ex.run)
    return ActionResult({"AutomationExecutionId": ex.id})


def _check_pass_role(self: SimpleSystemManagerResponse, role_arn: str) -> None:
    """A runbook that names a service role (``assumeRole``) runs as that role,
    so starting it needs ``iam:PassRole`` on the role, with
    ``iam:PassedToService`` = ``ssm.amazonaws.com``. Checked, like every
    permission here, only while moto's IAM enforcement is on
    (``/moto-api/reset-auth``)."""
    if ActionAuthenticatorMixin.request_count < moto_settings.INITIAL_NO_AUTH_ACTION_COUNT:
        return
    request = IAMRequest(
        account_id=self.current_account,
        method=self.method,
        path=urlparse(self.uri).path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action="PassRole",
    )
    request._action = "iam:PassRole"
    permitted = False
    for policy in request._access_key.collect_policies():
        verdict = IAMPolicy(policy).is_action_permitted(
            "iam:PassRole", role_arn, incoming_condition_values={"iam:PassedToService": "ssm.amazonaws.com"}
        )
        if verdict == PermissionResult.DENIED:
            request._raise_access_denied()
        permitted = permitted or verdict == PermissionResult.PERMITTED
    if not permitted:
        request._raise_access_denied()


def _dequeue(account: str, region: str) -> None:
    """A slot is free: the oldest queued (Pending) execution starts."""
    store = _store(account, region)
    running = [e for e in store.values() if not e.is_change_request and e.status not in FINAL and e.status != PENDING]
    if len(running) >= MAX_CONCURRENT_AUTOMATIONS:
        return
    queued = sorted(
        (e for e in store.values() if not e.is_change_request and e.status == PENDING and e.run), key=lambda e: e.created
    )
    if queued:
        ex = queued[0]
        _set_status(ex, IN_PROGRESS, ex.executed_by)
        _advance(ex, ex.run)  # type: ignore[arg-type]


def get_automation_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    with _LOCK:
        ex = _get(self, self._get_param("AutomationExecutionId"))
        return ActionResult({"AutomationExecution": ex.as_aws()})


def send_automation_signal(self: SimpleSystemManagerResponse) -> ActionResult:
    signal_type = self._get_param("SignalType")
    payload = self._get_param("Payload") or {}
    comment = " ".join(payload.get("Comment") or [])
    with _LOCK:
        ex = _get(self, self._get_param("AutomationExecutionId"))
        if signal_type not in ("Approve", "Reject"):
            raise _error("InvalidAutomationSignalException", f"localaws does not emulate the signal {signal_type}.")
        run = ex.approval_run if ex.is_change_request else ex.run
        waiting = ex.status == (PENDING_APPROVAL if ex.is_change_request else WAITING)
        step = next((s for s in run.steps if s.status == WAITING and s.action == "aws:approve"), None) if run else None
        if not waiting or step is None or run is None:
            raise _error(
                "InvalidAutomationSignalException",
                f"Automation execution {ex.id} is in status {ex.status}; no step is waiting for approval.",
            )
        by = _caller_arn(self)
        if not _is_approver(by, step.approvers, ex.account):
            raise _error("AccessDeniedException", f"{by} is not an approver of step {step.name} of automation execution {ex.id}.")
        if any(d.approver == by for d in step.decisions):
            raise _error("InvalidAutomationSignalException", f"{by} has already decided on step {step.name}.")
        step.decisions.append(Decision(by, signal_type, _now(), comment))
        if signal_type == "Reject":
            step.approval = "Rejected"
            if run.timer:
                run.timer.cancel()
            _set_step(ex, step, FAILED, f"Step {step.name} was rejected by {by}")
            if ex.is_change_request:
                run.active = False
                _set_status(ex, REJECTED, by)
            else:
                _advance(ex, run)
            return ActionResult({})
        approvals = len({d.approver for d in step.decisions if d.decision == "Approve"})
        if approvals < step.min_required:
            return ActionResult({})
        step.approval = "Approved"
        if run.timer:
            run.timer.cancel()
        _set_step(ex, step, SUCCESS)
        if ex.is_change_request:
            ex.modified_by = by
            run.index += 1
            if run.index < len(run.steps):
                _open_level(ex, run, run.steps[run.index], by)
            else:
                run.active = False
                _all_approved(ex, by)
        else:
            _set_status(ex, IN_PROGRESS, by)
            _advance(ex, run)
    return ActionResult({})


# The status each StopAutomationExecution ``Type`` ends an execution in. The
# API reference documents the types (Cancel, the default, and Complete) but
# not what a Complete stop ends in (*unconfirmed*): the emulator ends it
# ``Exited``, the one terminal status that is neither a success nor any
# other documented ending. changegate ends access on both (status.rs).
STOP_STATUS = {"Cancel": CANCELLED, "Complete": EXITED}


def stop_automation_execution(self: SimpleSystemManagerResponse) -> ActionResult:
    kind = self._get_param("Type") or "Cancel"
    if kind not in STOP_STATUS:
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Complete, Cancel]",
        )
    with _LOCK:
        ex = _get(self, self._get_param("AutomationExecutionId"))
        if ex.status in FINAL:
            raise _error("InvalidAutomationStatusUpdateException", f"Automation execution {ex.id} is already {ex.status}.")
        by = _caller_arn(self)
        if ex.timer:
            ex.timer.cancel()
        _stop_run(ex, ex.approval_run)
        _stop_run(ex, ex.run)
        _set_status(ex, STOP_STATUS[kind], by)
    return ActionResult({})


_STEP_FILTER_KEYS = {
    "StartTimeBefore",
    "StartTimeAfter",
    "StepExecutionStatus",
    "StepExecutionId",
    "StepName",
    "Action",
    "ParentStepExecutionId",
    "ParentStepIteration",
    "ParentStepIteratorValue",
}
DEFAULT_STEP_PAGE = 10  # DescribeAutomationStepExecutions' default MaxResults: not documented by AWS


def _step_matches(step: Step, key: str, values: list[str]) -> bool:
    if key == "StepName":
        return step.name in values
    if key == "Action":
        return step.action in values
    if key == "StepExecutionId":
        return step.id in values
    if key == "StepExecutionStatus":
        return step.status.upper() in {v.upper() for v in values}
    if key in ("StartTimeBefore", "StartTimeAfter"):
        try:
            limit = _as_datetime(values[0])
        except ValueError:
            raise _error("InvalidFilterValue", f"{values[0]} is not a timestamp.") from None
        if step.start is None or limit is None:
            return False
        return step.start <= limit if key == "StartTimeBefore" else step.start >= limit
    return False  # Parent...: no step here runs inside a loop


_EXECUTION_FILTER_KEYS = {
    "DocumentNamePrefix",
    "ExecutionStatus",
    "ExecutionId",
    "ParentExecutionId",
    "CurrentAction",
    "StartTimeBefore",
    "StartTimeAfter",
    "AutomationType",
    "TagKey",
    "TargetResourceGroup",
    "AutomationSubtype",
    "OpsItemId",
}


def _execution_matches(ex: Execution, key: str, values: list[str]) -> bool:
    if key == "DocumentNamePrefix":
        return any(ex.document.startswith(v) for v in values)
    if key == "ExecutionStatus":
        return ex.status.upper() in {v.upper() for v in values}
    if key == "ExecutionId":
        return ex.id in values
    if key == "CurrentAction":
        current = ex.current_step()
        return bool(current) and current.action in values  # type: ignore[union-attr]
    if key in ("StartTimeBefore", "StartTimeAfter"):
        try:
            limit = _as_datetime(values[0])
        except ValueError:
            raise _error("InvalidFilterValue", f"{values[0]} is not a timestamp.") from None
        assert limit is not None
        return ex.created <= limit if key == "StartTimeBefore" else ex.created >= limit
    if key == "AutomationType":
        return "Local" in values
    if key == "TagKey":
        tags = ssm_backends[ex.account][ex.region]._resource_tags["Automation"].get(ex.id, {})
        return any(v in tags for v in values)
    if key == "AutomationSubtype":
        return (ex.subtype or "") in values
    if key == "OpsItemId":
        return ex.ops_item_id in values
    return False  # ParentExecutionId, TargetResourceGroup: nothing here has them


def describe_automation_executions(self: SimpleSystemManagerResponse) -> ActionResult:
    """Executions of this account and region, newest first, as
    AutomationExecutionMetadata; Filters, MaxResults (1-50, default 10),
    NextToken."""
    filters = self._get_param("Filters")
    max_results = self._get_param("MaxResults")
    token = self._get_param("NextToken")
    if max_results is not None and not 1 <= int(max_results) <= 50:
        raise _error("ValidationException", "MaxResults must be from 1 to 50.")
    # API Reference: Filters 1-10 members; AutomationExecutionFilter Values
    # 1-10 members of 1-150 characters each.
    if filters is not None and not 1 <= len(filters) <= 10:
        raise _error("ValidationException", "Filters must have from 1 to 10 members.")
    with _LOCK:
        found = sorted(_store(self.current_account, self.region).values(), key=lambda e: e.created, reverse=True)
        for f in filters or []:
            key, values = f.get("Key"), f.get("Values") or []
            if key not in _EXECUTION_FILTER_KEYS:
                raise _error("InvalidFilterKey", f"{key} is not a valid filter key.")
            if not 1 <= len(values) <= 10 or any(not 1 <= len(v) <= 150 for v in values):
                raise _error("InvalidFilterValue", f"Filter {key} takes from 1 to 10 values of 1 to 150 characters.")
            found = [e for e in found if _execution_matches(e, key, values)]
        start = 0
        if token:
            try:
                start = int(json.loads(base64.b64decode(token))["offset"])
            except Exception:  # noqa: BLE001 - any unreadable token
                raise _error("InvalidNextToken", "The NextToken is not valid.") from None
        size = int(max_results or DEFAULT_STEP_PAGE)
        metadata = []
        for ex in found[start : start + size]:
            view = ex.as_aws()
            for key in ("StepExecutions", "StepExecutionsTruncated", "Parameters", "Outputs"):
                view.pop(key, None)
            view["AutomationType"] = "Local"
            metadata.append(view)
        result: dict[str, Any] = {"AutomationExecutionMetadataList": metadata}
        if start + size < len(found):
            result["NextToken"] = base64.b64encode(json.dumps({"offset": start + size}).encode()).decode()
    return ActionResult(result)


def describe_automation_step_executions(self: SimpleSystemManagerResponse) -> ActionResult:
    filters = self._get_param("Filters")
    max_results = self._get_param("MaxResults")
    token = self._get_param("NextToken")
    if filters is not None and not 1 <= len(filters) <= 6:
        raise _error("ValidationException", "Filters must have from 1 to 6 members.")
    if max_results is not None and not 1 <= int(max_results) <= 50:
        raise _error("ValidationException", "MaxResults must be from 1 to 50.")
    with _LOCK:
        ex = _get(self, self._get_param("AutomationExecutionId"))
        steps = list(ex.steps)
        for f in filters or []:
            key, values = f.get("Key"), f.get("Values") or []
            if key not in _STEP_FILTER_KEYS:
                raise _error("InvalidFilterKey", f"{key} is not a valid filter key.")
            if not 1 <= len(values) <= 10:
                raise _error("InvalidFilterValue", f"Filter {key} takes from 1 to 10 values.")
            steps = [s for s in steps if _step_matches(s, key, values)]
        if self._get_param("ReverseOrder"):
            steps.reverse()
        start = 0
        if token:
            try:
                decoded = json.loads(base64.b64decode(token))
                assert decoded["execution"] == ex.id
                start = int(decoded["offset"])
            except Exception:  # noqa: BLE001 - any unreadable token
                raise _error("InvalidNextToken", "The NextToken is not valid.") from None
        size = int(max_results or DEFAULT_STEP_PAGE)
        page = steps[start : start + size]
        result: dict[str, Any] = {"StepExecutions": [s.as_aws() for s in page]}
        if start + size < len(steps):
            result["NextToken"] = base64.b64encode(json.dumps({"execution": ex.id, "offset": start + size}).encode()).decode()
    return ActionResult(result)


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
    """Tags on automation executions and change requests
    (``ResourceType=Automation``, the execution id), as SSM's
    AddTagsToResource / ListTagsForResource / RemoveTagsFromResource allow;
    moto 5.2.1 only knows other resource types. An id that names no execution
    is ``InvalidResourceId``, and an execution holds at most 5 tags
    (``TooManyTagsError``), as on AWS."""
    original = SimpleSystemManagerBackend._validate_resource_type_and_id
    if getattr(original, "_localaws", False):
        return

    def validate(self: SimpleSystemManagerBackend, resource_type: str, resource_id: str) -> str:
        if resource_type == "Automation":
            with _LOCK:
                if resource_id not in _store(self.account_id, self.region_name):
                    raise InvalidResourceId()
            return resource_id
        return original(self, resource_type, resource_id)

    validate._localaws = True  # type: ignore[attr-defined]
    SimpleSystemManagerBackend._validate_resource_type_and_id = validate  # type: ignore[method-assign]

    original_add = SimpleSystemManagerBackend.add_tags_to_resource

    def add_tags(self: SimpleSystemManagerBackend, resource_type: str, resource_id: str, tags: dict[str, str]) -> None:
        if resource_type == "Automation":
            with _LOCK:
                self._validate_resource_type_and_id(resource_type, resource_id)
                existing = self._resource_tags[resource_type].get(resource_id, {})
                if len(set(existing) | set(tags)) > MAX_TAGS_PER_EXECUTION:
                    raise _error(
                        "TooManyTagsError",
                        f"The Automation resource {resource_id} would have more than {MAX_TAGS_PER_EXECUTION} tags.",
                    )
                original_add(self, resource_type, resource_id, tags)
            return
        original_add(self, resource_type, resource_id, tags)

    SimpleSystemManagerBackend.add_tags_to_resource = add_tags  # type: ignore[method-assign]


def _wrap_reset() -> None:
    """``POST /moto-api/reset`` also forgets the recorded Lambda invocations
    (executions live on the SSM backends and go with them)."""
    original = MotoAPIBackend.reset
    if getattr(original, "_localaws_automation", False):
        return

    def reset(self: MotoAPIBackend) -> None:
        original(self)
        with _LAMBDA_LOCK:
            _LAMBDA_INVOCATIONS.clear()
            _PENDING_CALLS.clear()

    reset._localaws_automation = True  # type: ignore[attr-defined]
    MotoAPIBackend.reset = reset  # type: ignore[method-assign]


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


# IAM's user name pattern (API reference, UpdateUser NewUserName): [\w+=,.@-]{1,64}.
_IAM_USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)


def _wrap_user_ids() -> None:
    """IAM users get AWS-shaped unique ids: ``AIDA`` and 17 upper-case
    letters and digits (IAM User Guide, "IAM identifiers": unique ids; moto
    5.2.1 uses 20 random lower-case characters)."""
    original = User.__init__
    if getattr(original, "_localaws", False):
        return
    from moto.iam.utils import generate_access_key_id_from_account_id

    def init(self: User, account_id: str, region_name: str, name: str, path: str | None = None) -> None:
        original(self, account_id, region_name, name, path)
        self.id = generate_access_key_id_from_account_id(account_id, prefix="AIDA", total_length=21)

    init._localaws = True  # type: ignore[attr-defined]
    User.__init__ = init  # type: ignore[method-assign]


def update_user(self: IamResponse) -> ActionResult:
    """IAM's UpdateUser as AWS does it (moto 5.2.1 answers a generic 404 for
    an unknown user, takes a name another user has, and loses the user's tags,
    which it keys by the user's ARN). A renamed user keeps its unique id; its
    inline and attached policies, groups, access keys and tags stay with it
    under the new name (IAM User Guide, "Rename an IAM user"). IAM user names
    are unique regardless of case."""
    user_name = self._get_param("UserName")
    new_path = self._get_param("NewPath")
    new_name = self._get_param("NewUserName")
    backend = self.backend
    with _LOCK:
        user = backend.users.get(user_name)
        if user is None:
            raise NoSuchEntity(f"The user with name {user_name} cannot be found.")
        if new_name is not None:
            if not _IAM_USER_NAME.match(new_name):
                raise ValidationError(
                    f"1 validation error detected: Value '{new_name}' at 'newUserName' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
                )
            taken = [n for n in backend.users if n.lower() == new_name.lower() and n != user_name]
            if taken:
                raise EntityAlreadyExists(f"User with name {new_name} already exists.")
        old_arn = user.arn
        tags = backend.tagger.list_tags_for_resource(old_arn)["Tags"]
        backend.update_user(user_name, new_path, new_name)
        if user.arn != old_arn:
            backend.tagger.delete_all_tags_for_resource(old_arn)
            if tags:
                backend.tagger.tag_resource(user.arn, tags)
        for key in user.access_keys:
            key.user_name = user.name
    return EmptyResult()


def _user_boundary(self: IamResponse) -> tuple[Any, str | None]:
    user_name = self._get_param("UserName")
    user = self.backend.users.get(user_name)
    if user is None:
        raise NoSuchEntity(f"The user with name {user_name} cannot be found.")
    return user, self._get_param("PermissionsBoundary")


def put_user_permissions_boundary(self: IamResponse) -> ActionResult:
    """IAM's PutUserPermissionsBoundary, which moto 5.2.1 lacks: the boundary
    must be a managed policy that exists (an AWS managed one, or one of the
    account's), and GetUser and GetAccountAuthorizationDetails then show it
    as the user's ``PermissionsBoundary`` (IAM API Reference)."""
    with _LOCK:
        user, arn = _user_boundary(self)
        if not arn or not 20 <= len(arn) <= 2048:
            raise ValidationError("PermissionsBoundary must be from 20 to 2048 characters.")
        if ":iam::aws:policy/" not in arn and arn not in self.backend.managed_policies:
            raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
        user.permissions_boundary = {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}
    return EmptyResult()


def delete_user_permissions_boundary(self: IamResponse) -> ActionResult:
    """IAM's DeleteUserPermissionsBoundary (moto 5.2.1 lacks it)."""
    with _LOCK:
        user, _ = _user_boundary(self)
        user.permissions_boundary = None
    return EmptyResult()


def _cache_pure_lookups() -> None:
    """Lookups moto repeats on every request, remembered instead; what they
    return is unchanged, so nothing on the wire is. moto lists its own package
    directory to route each request (``list_of_moto_modules``), lists a
    response class's methods to find the action's (``install()`` has added
    ours by then), and builds a new JSONPath parser (a yacc table) for each
    input path of each EventBridge target on every PutEvents; together they
    were a quarter of the server's CPU in the test suites."""
    import functools

    import jsonpath_ng.ext
    from moto import backends
    from moto.core import responses

    if getattr(backends.list_of_moto_modules, "_localaws_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._localaws_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]
    # A class's methods do not change once install() has run; the list is only read.
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)  # type: ignore[assignment]
    # A parsed path is read-only (find/filter), so one may serve every event.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def install() -> None:
    """Patches moto in this process. Idempotent."""
    # moto dispatches AmazonSSM.<Action> to the snake_case method of the
    # response class, found by introspection at its first call.
    SimpleSystemManagerResponse.start_change_request_execution = start_change_request_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.get_automation_execution = get_automation_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.send_automation_signal = send_automation_signal  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.stop_automation_execution = stop_automation_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.start_automation_execution = start_automation_execution  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.describe_automation_step_executions = describe_automation_step_executions  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.describe_automation_executions = describe_automation_executions  # type: ignore[attr-defined]
    _wrap_document_types()
    _wrap_document_checks()
    _wrap_parameter_pattern()
    _wrap_tag_validation()
    _wrap_reset()
    IamResponse.get_account_authorization_details = get_account_authorization_details  # type: ignore[method-assign]
    IamResponse.update_user = update_user  # type: ignore[method-assign]
    IamResponse.put_user_permissions_boundary = put_user_permissions_boundary  # type: ignore[attr-defined]
    IamResponse.delete_user_permissions_boundary = delete_user_permissions_boundary  # type: ignore[attr-defined]
    _wrap_user_ids()
    _cache_pure_lookups()


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
        prefix = "/_localaws/lambda/invocations/"
        if path.startswith(prefix) and path.rstrip("/") != prefix.rstrip("/"):
            if environ.get("REQUEST_METHOD") != "POST":
                return self._json(start_response, "405 Method Not Allowed", {"error": "POST only"})
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                answer = json.loads(environ["wsgi.input"].read(length) or b"{}")
            except ValueError:
                return self._json(start_response, "400 Bad Request", {"error": "the answer is not JSON"})
            if not answer_invocation(path[len(prefix):].strip("/"), answer):
                return self._json(start_response, "404 Not Found", {"error": "no such invocation is waiting"})
            return self._json(start_response, "200 OK", {})
        if path.rstrip("/") == "/_localaws/lambda/invocations":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return self._json(start_response, "405 Method Not Allowed", {"error": "GET only"})
            query = parse_qs(environ.get("QUERY_STRING", ""))
            drain = query.get("drain", ["0"])[0] not in ("", "0", "false")
            with _LAMBDA_LOCK:
                body = list(_LAMBDA_INVOCATIONS)
                if drain:
                    _LAMBDA_INVOCATIONS.clear()
            return self._json(start_response, "200 OK", body)
        return self._json(start_response, "404 Not Found", {"error": f"no such endpoint: {path}"})

    @staticmethod
    def _json(start_response: Any, status: str, body: Any) -> list[bytes]:
        data = json.dumps(body, indent=2).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help``); exits with status 2 on a bad one."""
    parser = argparse.ArgumentParser(description="moto server with changegate's local-AWS extensions")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 = any free port (default)")
    parser.add_argument("--verbose", action="store_true", help="log requests and extension activity to stderr")
    parser.add_argument(
        "--max-inline-steps",
        type=int,
        default=DEFAULT_MAX_INLINE_STEPS,
        help=f"StepExecutions GetAutomationExecution returns before StepExecutionsTruncated (default {DEFAULT_MAX_INLINE_STEPS})",
    )
    parser.add_argument(
        "--max-concurrent-automations",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_AUTOMATIONS,
        help="plain Automation executions running at once per account and Region; more wait Pending "
        f"(default {DEFAULT_MAX_CONCURRENT_AUTOMATIONS}, AWS's default quota)",
    )
    args = parser.parse_args(argv)
    if args.max_inline_steps < 1 or args.max_concurrent_automations < 1:
        parser.error("--max-inline-steps and --max-concurrent-automations must be at least 1")
    return args


def serve(args: argparse.Namespace) -> Any:
    """Applies the command line's settings, patches moto (``install``) and
    binds a threaded server for a fresh app on ``args.host:args.port``; the
    caller runs ``serve_forever``. Used by ``main`` and by ``pool.py``, which
    calls it in a forked child per server."""
    global MAX_INLINE_STEPS, MAX_CONCURRENT_AUTOMATIONS
    MAX_INLINE_STEPS = args.max_inline_steps
    MAX_CONCURRENT_AUTOMATIONS = args.max_concurrent_automations

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    install()
    server = make_server(args.host, args.port, LocalAwsApp(DomainDispatcherApplication(create_backend_app)), threaded=True)
    # moto builds some self-referencing URLs from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.server_port)
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = serve(args)
    port = server.server_port

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
