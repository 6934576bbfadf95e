"""template.yaml and templates/production-account.yaml as CloudFormation
reads them: what a deployment anywhere, or a second one beside the first,
depends on."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

import localaws

PRODUCTION = localaws.ROOT / "templates" / "production-account.yaml"
TEMPLATES = {"template.yaml": localaws.TEMPLATE, "production-account.yaml": PRODUCTION}


def arn_patterns(template: dict[str, Any]) -> dict[str, str]:
    """Each parameter whose AllowedPattern takes ARNs, with the pattern."""
    return {
        name: spec["AllowedPattern"]
        for name, spec in (template.get("Parameters") or {}).items()
        if "arn:" in str(spec.get("AllowedPattern", ""))
    }


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_given_an_arn_parameter_when_its_arn_is_in_any_partition_then_the_pattern_takes_it(name: str, partition: str) -> None:
    """GovCloud and China ARNs begin arn:aws-us-gov: and arn:aws-cn:; every
    resource ARN in the templates uses ${AWS::Partition}, so must every
    parameter pattern, or the stack cannot be created there."""
    patterns = arn_patterns(localaws.load_template(TEMPLATES[name]))
    assert patterns, f"{name} has no ARN parameter any more: update this test"
    for param, pattern in patterns.items():
        kind = "policy" if ":policy/" in pattern else "role" if "user|role" not in pattern else "user"
        arn = f"arn:{partition}:iam::123456789012:{kind}/bob"
        assert re.search(pattern, arn), f"{name} {param} refuses {arn} ({pattern})"
        assert not re.search(pattern, f"arn:{partition}:sts::123456789012:{kind}/bob"), param


# Stack names may have 128 characters (CloudFormation CreateStack: StackName,
# [a-zA-Z][-a-zA-Z0-9]*, at most 128). Two that differ in their last one only.
STACKS = ("changegate-" + "x" * 116 + "a", "changegate-" + "x" * 116 + "b")
BOB = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/bob"
BOTH = {"RequestSources": "Both", "ApproverArns": BOB, "AllowedAccountIds": localaws.PROD_ACCOUNT}


def test_given_two_stacks_with_128_character_names_in_one_account_when_provisioned_then_no_name_collides_or_is_too_long(
    aws: localaws.Server,
) -> None:
    """Staging beside production: both stacks deploy in one account and
    Region, each with its own names, every one within AWS's limit for its
    kind (NAME_LIMITS), including those CloudFormation and SAM generate."""
    assert all(len(s) == 128 for s in STACKS)
    worlds = [localaws.provision(aws.url, parameters=BOTH, stack_name=name) for name in STACKS]

    for world in worlds:
        assert sorted(d.logical_id for d in world.documents if d.created) == [
            "AccessRunbook", "ChangeTemplate", "OperatorRunbook", "RequestRunbook"], [d.skipped for d in world.documents]
    owner: dict[tuple[str, str], str] = {}
    for world in worlds:
        for logical, (kind, name) in world.stack.physical_names().items():
            limit, source = localaws.NAME_LIMITS[kind]
            assert len(name) <= limit, f"{logical} ({kind}) is {len(name)} characters, over {limit} ({source}): {name}"
            assert (kind, name) not in owner, f"{logical} ({kind}) of both stacks is named {name}"
            owner[kind, name] = world.stack.stack_name
    # Each stack's functions name their own stack's resources.
    envs = [w.function_env("grant") for w in worlds]
    for var in ("CHANGEGATE_CHANGE_TEMPLATE", "CHANGEGATE_ACCESS_RUNBOOK", "CHANGEGATE_REQUEST_RUNBOOK",
                "CHANGEGATE_DECISIONS_TABLE", "CHANGEGATE_EVENT_BUS", "CHANGEGATE_EXPIRY_SCHEDULE_GROUP"):
        assert envs[0][var] != envs[1][var], var
    for world, env in zip(worlds, envs, strict=True):
        assert env["CHANGEGATE_REQUEST_RUNBOOK"] == world.document_name("RequestRunbook")
        assert env["CHANGEGATE_CHANGE_TEMPLATE"] == world.document_name("ChangeTemplate")
        assert env["CHANGEGATE_ACCESS_RUNBOOK"] == world.document_name("AccessRunbook")
        assert env["CHANGEGATE_EXPIRY_SCHEDULE_GROUP"] in world.schedule_groups
        assert world.function_env("revoke")["CHANGEGATE_OPERATOR_RUNBOOK"] == world.document_name("OperatorRunbook")
    # The rules listen for their own stack's documents only.
    for world in worlds:
        for rule in world.rules:
            detail = (rule.pattern or {}).get("detail") or {}
            if "Definition" in detail:
                assert detail["Definition"] == [world.document_name("RequestRunbook")], rule.name
            if rule.pattern and rule.pattern.get("detail-type") == ["Change Request Status Update"]:
                assert detail.get("change-template-document-name") == [world.document_name("ChangeTemplate")], rule.name


def documents(parameters: dict[str, str] | None = None) -> list[localaws.Document]:
    return localaws.template_documents(localaws.Stack(localaws.load_template(), {**BOTH, **(parameters or {})}))


def steps(doc: localaws.Document, action: str) -> list[dict[str, Any]]:
    return [s for s in doc.content.get("mainSteps") or [] if s.get("action") == action]


def test_given_a_runbook_with_an_inline_script_when_read_then_it_is_a_yaml_document_on_a_runtime_aws_runs() -> None:
    """aws:executeScript's Script "is not supported for JSON runbooks", and
    AWS::SSM::Document's DocumentFormat defaults to JSON: each runbook with an
    inline script says YAML, its content is YAML text, and its runtime is one
    the local AWS takes (python3.11, the one AWS tells runbooks to move to)."""
    import server

    scripted = [d for d in documents() if steps(d, "aws:executeScript")]
    assert {d.logical_id for d in scripted} == {"AccessRunbook"}
    for doc in scripted:
        assert doc.document_format == "YAML", doc.logical_id
        assert yaml.safe_load(doc.text) == doc.content
        for step in steps(doc, "aws:executeScript"):
            assert step["inputs"]["Runtime"] in server.SCRIPT_RUNTIMES, (doc.logical_id, step["name"])


@pytest.mark.parametrize("minimum", ["1", "3"])
def test_given_min_required_approvals_when_the_documents_are_read_then_it_is_an_integer_in_each(minimum: str) -> None:
    """A !Ref of a Number parameter is a string; aws:approve takes an Integer."""
    approvers = ",".join(f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/u{i}" for i in range(3))
    approvals = [(d.logical_id, s) for d in documents({"MinRequiredApprovals": minimum, "ApproverArns": approvers})
                 for s in steps(d, "aws:approve")]
    assert {logical for logical, _ in approvals} == {"ChangeTemplate", "RequestRunbook"}
    for logical, step in approvals:
        value = step["inputs"]["MinRequiredApprovals"]
        assert type(value) is int and value == int(minimum), (logical, value)


def test_given_the_change_template_when_read_then_it_depends_on_each_runbook_it_lists() -> None:
    """CloudFormation may create resources in parallel; the change template
    names its runbook, so it waits for it (DependsOn)."""
    stack = localaws.Stack(localaws.load_template(), BOTH)
    by_name = {d.name: d.logical_id for d in localaws.template_documents(stack)}
    template = next(d for d in localaws.template_documents(stack) if d.logical_id == "ChangeTemplate")
    depends_on = stack.resources["ChangeTemplate"].get("DependsOn")
    explicit = {depends_on} if isinstance(depends_on, str) else set(depends_on or [])
    listed = {by_name.get(r["name"], r["name"]) for r in template.content["executableRunBooks"]}
    assert listed == {"AccessRunbook"}
    assert listed <= explicit, f"ChangeTemplate's DependsOn {sorted(explicit)} misses {sorted(listed - explicit)}"


def approvers(n: int, kind: str = "user") -> str:
    return ",".join(f"arn:aws:iam::{localaws.HOME_ACCOUNT}:{kind}/a{i}" for i in range(n))


@pytest.mark.parametrize(("sources", "count", "minimum", "refused_by"), [
    ("Automation", 11, "1", "RefuseMoreThanTenApprovers"),
    ("Automation", 2, "3", "RefuseFewerApproversThanMinRequiredApprovals"),
    ("Both", 1, "2", "RefuseFewerApproversThanMinRequiredApprovals"),
    ("ChangeManager", 6, "1", "RefuseMoreThanFiveApproversForChangeManager"),
    ("Both", 6, "6", "Rule ChangeManagerTakesAtMostFiveApprovals"),
    ("ChangeManager", 10, "10", "Rule ChangeManagerTakesAtMostFiveApprovals"),
])
def test_given_approvals_aws_would_not_run_when_deployed_then_the_deployment_fails_saying_why(
    aws: localaws.Server, sources: str, count: int, minimum: str, refused_by: str,
) -> None:
    """aws:approve takes at most 10 approvers and a minimum no larger than
    their number; a change template's level names at most five. Each bad
    combination fails before any request could, naming what is wrong."""
    parameters = {**BOTH, "RequestSources": sources, "ApproverArns": approvers(count), "MinRequiredApprovals": minimum}

    with pytest.raises(localaws.LocalAwsError) as refused:
        localaws.provision(aws.url, parameters=parameters)

    message = str(refused.value)
    assert message.startswith(refused_by), message
    assert "MinRequiredApprovals" in message or "ApproverArns" in message


@pytest.mark.parametrize(("cutter", "named", "refused"), [
    ("changegate-session-cutter", "false", True),
    ("changegate-session-cutter", "true", False),
    ("", "false", False),
])
def test_given_the_session_cut_when_sessions_need_not_be_named_then_the_deployment_fails_saying_why(
    aws: localaws.Server, cutter: str, named: str, refused: bool,
) -> None:
    """The cut denies a person's sessions by their session name: with the cut
    on and RequireSessionName false, a session named otherwise would outlive
    it, so CloudFormation refuses that combination (grant refuses it at load
    too). Either setting alone deploys."""
    parameters = {**BOTH, "SessionCutterRoleName": cutter, "RequireSessionName": named}

    if refused:
        with pytest.raises(localaws.LocalAwsError) as why:
            localaws.provision(aws.url, parameters=parameters)
        assert str(why.value).startswith("Rule SessionCutNeedsNamedSessions"), str(why.value)
        assert "RequireSessionName must be true" in str(why.value)
    else:
        world = localaws.provision(aws.url, parameters=parameters)
        assert world.function_env("grant").get("CHANGEGATE_REQUIRE_SESSION_NAME") == named


@pytest.mark.parametrize(("sources", "count", "minimum"), [
    ("Automation", 10, "10"), ("Automation", 3, "2"), ("ChangeManager", 5, "5"), ("Both", 5, "1"), ("Both", 1, "1"),
])
def test_given_approvals_within_the_limits_when_deployed_then_every_document_is_created(
    aws: localaws.Server, sources: str, count: int, minimum: str,
) -> None:
    parameters = {**BOTH, "RequestSources": sources, "ApproverArns": approvers(count, "role"), "MinRequiredApprovals": minimum}

    world = localaws.provision(aws.url, parameters=parameters)

    assert world.documents and all(d.created for d in world.documents), [d.skipped for d in world.documents]
    for doc in world.documents:
        for step in steps(doc, "aws:approve"):
            listed = step["inputs"].get("Approvers") or step["inputs"]["EnhancedApprovals"]["Approvers"]
            assert len(listed) == count and step["inputs"]["MinRequiredApprovals"] == int(minimum)


def test_given_a_rule_that_uses_a_function_rules_cannot_when_checked_then_it_fails_as_cloudformation_does() -> None:
    """Rules take Ref and rule functions only: a rule that counted approvers
    with Fn::Select or referred to a Condition would fail the change set."""
    tpl = localaws.load_template()
    tpl["Rules"]["Counting"] = {"Assertions": [{"Assert": {"Condition": "TooManyApprovers"}}]}

    with pytest.raises(localaws.LocalAwsError, match=r"not supported in the Rules block .*\[Condition\]"):
        localaws.Stack(tpl, BOTH).check_rules()


def test_given_a_request_stopped_with_type_complete_when_its_events_are_routed_then_revoke_hears_it_end(
    aws: localaws.Server, people: dict[str, dict[str, str]],
) -> None:
    """A stop of Type Complete ends the execution Exited in the local AWS (AWS
    documents no status for it): the template's end-of-request rule for the
    request runbook routes that to revoke, as it does a Cancel. (A request is
    stopped while it waits for approval: once approved, its execution ends by
    itself.)"""
    world = localaws.provision(aws.url, parameters={**BOTH, "RequestSources": "Automation"})
    alice = aws.client("ssm", people["alice"])
    now = datetime.now(timezone.utc)
    ended = {}
    for kind in ("Complete", "Cancel"):
        execution = alice.start_automation_execution(DocumentName=world.document_name("RequestRunbook"), Parameters={
            "IAMUserName": ["alice"], "AWSAccountId": [localaws.PROD_ACCOUNT],
            "StartTime": [f"{now:%Y-%m-%dT%H:%M:%S}Z"], "EndTime": [f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"]},
        )["AutomationExecutionId"]
        world.pending()
        alice.stop_automation_execution(AutomationExecutionId=execution, Type=kind)
        revoke = world.pending().get("revoke", [])
        ended[kind] = [e["detail"]["Status"] for e in revoke if e["detail"].get("ExecutionId") == execution]

    assert ended == {"Complete": ["Exited"], "Cancel": ["Cancelled"]}


def subscribers(stack: localaws.Stack) -> list[str]:
    """Who the notification topic's policy lets subscribe (its deny's exceptions)."""
    policy = stack.resolve(stack.resources["NotificationTopicPolicy"]["Properties"])["PolicyDocument"]
    (deny,) = [s for s in policy["Statement"] if s["Sid"] == "OnlyNamedSubscribers"]
    return deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]


CHAT_ROLE = (f"arn:{localaws.PARTITION}:iam::{localaws.HOME_ACCOUNT}:role/aws-service-role/"
             "management.chatbot.amazonaws.com/AWSServiceRoleForAWSChatbot")


@pytest.mark.parametrize("named", ["", f"arn:aws:iam::{localaws.HOME_ACCOUNT}:role/ops,{BOB}"])
def test_given_amazon_q_chat_when_it_may_subscribe_then_only_its_service_linked_role_is_added(named: str) -> None:
    """Amazon Q Developer in chat applications subscribes as its
    service-linked role; AmazonQChatSubscribes=true adds exactly that role to
    the named subscribers, and the default adds nobody."""
    base = {"ApproverArns": BOB, "NotificationSubscriberArns": named}
    default = localaws.Stack(localaws.load_template(), base)

    off = subscribers(default)
    on = subscribers(localaws.Stack(localaws.load_template(), {**base, "AmazonQChatSubscribes": "true"}))

    assert CHAT_ROLE not in off and None not in off and "" not in off
    assert on == [*off, CHAT_ROLE]
    assert off == (named.split(",") if named else [default.get_att("NotifyFunctionRole", "Arn")])


def test_given_a_record_disagrees_refusal_when_it_says_operators_were_alerted_then_an_alarm_watches_its_metric() -> None:
    """The record-disagrees refusal tells the requester "Operators were
    alerted": an alarm on the operators' topic watches grant's Refusals with
    exactly that reason code, as the code spells it."""
    refusal = (localaws.ROOT / "shared" / "src" / "refusal.rs").read_text()
    assert '=> "record-disagrees"' in refusal and "Operators were alerted." in refusal
    stack = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB})
    alarm = stack.resolve(stack.resources["RecordDisagreesAlarm"]["Properties"])

    assert (alarm["Namespace"], alarm["MetricName"]) == ("changegate", "Refusals")
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"Function": "grant", "Reason": "record-disagrees"}
    assert alarm["AlarmActions"] == [stack.ref("OperatorsTopic")]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_given_the_production_account_stack_when_read_then_every_role_it_creates_keeps_one_hour_sessions() -> None:
    """The session cut cannot end Kubernetes access (EKS tokens are presigned
    sts:GetCallerIdentity, which no policy denies), so a cut session's
    credentials must expire soon: every role the production-account stack
    creates keeps IAM's one-hour minimum (docs/security-model.md)."""
    roles = {name: r for name, r in localaws.load_template(PRODUCTION)["Resources"].items()
             if r["Type"] == "AWS::IAM::Role"}

    assert roles, "production-account.yaml creates no role any more: update this test"
    assert {name: r["Properties"].get("MaxSessionDuration") for name, r in roles.items()} == dict.fromkeys(roles, 3600)


def test_given_the_deployment_when_read_then_revoke_holds_grants_to_the_scope_grant_grants_in() -> None:
    """revoke's sweep removes active grants whose user is no longer eligible
    (the tag, or an account off the allowlist): it must read the very
    allowlist and target role that grant reads, or it would remove good
    grants or keep bad ones."""
    stack = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB, "AllowedAccountIds": "111122223333,444455556666",
                                                      "TargetRoleName": "Prod"})
    grant = stack.function_environment("GrantFunction")
    revoke = stack.function_environment("RevokeFunction")

    for var in ("CHANGEGATE_ALLOWED_ACCOUNTS", "CHANGEGATE_TARGET_ROLE"):
        assert revoke.get(var) == grant[var], var
    assert revoke["CHANGEGATE_ALLOWED_ACCOUNTS"] == "111122223333,444455556666"


def test_given_an_open_request_limit_when_deployed_then_grant_reads_it_and_may_list_and_stop_requests() -> None:
    """Admission needs the limit in grant's environment, and grant's role may
    list the account's executions and stop one over the limit (else every
    request runbook execution would fail grant's invocation with AccessDenied)."""
    stack = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB, "MaxOpenRequestsPerPerson": "3"})
    assert stack.function_environment("GrantFunction")["CHANGEGATE_MAX_OPEN_REQUESTS"] == "3"
    default = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB})
    assert default.function_environment("GrantFunction")["CHANGEGATE_MAX_OPEN_REQUESTS"] == "5"

    statements = [st for p in stack.resolve(stack.resources["GrantFunction"]["Properties"]["Policies"])
                  for st in p["Statement"]]
    listed = [(st["Action"] if isinstance(st["Action"], list) else [st["Action"]], st["Resource"]) for st in statements]
    actions = {a: resource for names, resource in listed for a in names}
    assert actions["ssm:DescribeAutomationExecutions"] == "*"
    assert actions["ssm:StopAutomationExecution"].endswith(":automation-execution/*")


def test_given_a_requester_boundary_when_deployed_then_grant_reads_it_and_only_then() -> None:
    """RequesterPermissionsBoundaryArn reaches grant as
    CHANGEGATE_REQUESTER_BOUNDARY (grant refuses users without it); empty,
    the variable is not set at all (not the string "None")."""
    arn = "arn:aws:iam::123456789012:policy/changegate-requester-boundary"
    on = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB, "RequesterPermissionsBoundaryArn": arn})
    off = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB})

    assert on.function_environment("GrantFunction")["CHANGEGATE_REQUESTER_BOUNDARY"] == arn
    assert "CHANGEGATE_REQUESTER_BOUNDARY" not in off.function_environment("GrantFunction")


def test_given_a_target_role_boundary_when_the_stack_creates_the_target_role_then_the_role_carries_it() -> None:
    """With CreateTargetRole=true, the boundary the cutter's writes require is
    set on the role the stack creates (else the first cut would be denied)."""
    boundary = "arn:aws:iam::123456789012:policy/prod-role-boundary"
    base = {"ChangegateAccountId": "123456789012", "RevokeRoleArn": "arn:aws:iam::123456789012:role/r",
            "GrantRoleArn": "arn:aws:iam::123456789012:role/g", "CreateTargetRole": "true"}
    bounded = localaws.Stack(localaws.load_template(PRODUCTION), {**base, "TargetRoleBoundaryArn": boundary})
    unbounded = localaws.Stack(localaws.load_template(PRODUCTION), base)

    assert bounded.resolve(bounded.resources["TargetRole"]["Properties"]).get("PermissionsBoundary") == boundary
    assert "PermissionsBoundary" not in unbounded.resolve(unbounded.resources["TargetRole"]["Properties"])


def test_given_the_session_cut_when_deployed_then_an_alarm_warns_at_75_percent_of_the_roles_budget() -> None:
    """SessionCutBudgetUsed (the code's metric name) from both functions that
    write the cut is watched, and the operators hear of it at 75 %, before a
    full budget makes a grant deny every session of the role."""
    ports = (localaws.ROOT / "shared" / "aws" / "src" / "ports.rs").read_text()
    assert '"SessionCutBudgetUsed"' in ports
    cut = localaws.Stack(localaws.load_template(), {"ApproverArns": BOB, "SessionCutterRoleName": "changegate-session-cutter"})
    alarm = cut.resolve(cut.resources["SessionCutBudgetAlarm"]["Properties"])

    watched = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert watched == {"grant", "revoke"}
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m} == {"SessionCutBudgetUsed"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (75, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [cut.ref("OperatorsTopic")]
    assert cut.template["Resources"]["SessionCutBudgetAlarm"]["Condition"] == "CutSessions"


@pytest.mark.parametrize(("hours", "seconds"), [(None, 86400), ("168", 604800), ("1", 3600)])
def test_given_an_approval_timeout_when_the_documents_are_read_then_every_approval_step_waits_that_long(
    hours: str | None, seconds: int
) -> None:
    """ApprovalTimeoutHours reaches each aws:approve step (the request
    runbook's and the change template's level) as an integer timeoutSeconds;
    unset, it is a day (168 hours is the longest aws:approve allows)."""
    parameters = {"ApprovalTimeoutHours": hours} if hours else {}
    approvals = [(d.logical_id, s) for d in documents(parameters) for s in steps(d, "aws:approve")]
    assert {logical for logical, _ in approvals} == {"ChangeTemplate", "RequestRunbook"}
    for logical, step in approvals:
        assert step["timeoutSeconds"] == seconds and type(step["timeoutSeconds"]) is int, (logical, step)


def test_given_a_request_runbook_rejected_when_its_events_are_routed_then_grant_hears_it_and_refuses_it_to_the_requester(
    aws: localaws.Server, people: dict[str, dict[str, str]],
) -> None:
    """A rejection ends the request runbook's execution Failed. The template's
    rules must bring that to grant, whose refusal is what tells the requester
    (revoke's rule removes access, and announces nothing when there is none)."""
    world = localaws.provision(aws.url, parameters={**BOTH, "RequestSources": "Automation"})
    alice, bob = aws.client("ssm", people["alice"]), aws.client("ssm", people["bob"])
    now = datetime.now(timezone.utc)
    execution = alice.start_automation_execution(DocumentName=world.document_name("RequestRunbook"), Parameters={
        "IAMUserName": ["alice"], "AWSAccountId": [localaws.PROD_ACCOUNT],
        "StartTime": [f"{now:%Y-%m-%dT%H:%M:%S}Z"], "EndTime": [f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"]},
    )["AutomationExecutionId"]
    world.pending()

    bob.send_automation_signal(AutomationExecutionId=execution, SignalType="Reject", Payload={"Comment": ["no"]})

    caught = world.pending()
    grant = [e["detail"]["Status"] for e in caught.get("grant", [])
             if e["detail"].get("ExecutionId") == execution and "StepName" not in e["detail"]]
    assert "Failed" in grant, caught


@pytest.mark.parametrize("parameters", [
    {"ApproverArns": BOB},
    {"ApproverArns": f"{BOB},arn:aws:iam::123456789012:role/Approvers", "RequestSources": "Both",
     "AllowedAccountIds": "111122223333,444455556666", "AccountAliases": "prod=111122223333,staging=444455556666",
     "RequesterPermissionsBoundaryArn": "arn:aws:iam::123456789012:policy/boundary",
     "SessionCutterRoleName": "changegate-session-cutter", "OperatorArns": "arn:aws:iam::123456789012:role/OnCall"},
    {"ApproverArns": BOB, "RequestSources": "ChangeManager"},
])
def test_given_a_deployment_when_the_command_reads_its_settings_then_they_are_grants_own_and_the_operators(
        parameters: dict[str, str]) -> None:
    """The changegate command checks a request up front with grant's own
    rules: its SSM parameter (CliSettings) must hold exactly grant's
    environment (a value grant lacks is ''), plus the operators' runbook,
    the operators and the aliases, as JSON CloudFormation can write."""
    stack = localaws.Stack(localaws.load_template(), parameters)
    settings = stack.resolve(stack.resources["CliSettings"]["Properties"])
    values = json.loads(settings["Value"])
    grant = stack.function_environment("GrantFunction")
    revoke = stack.function_environment("RevokeFunction")

    assert settings["Name"] == "/changegate/stacks/changegate/cli"
    own = {"CHANGEGATE_OPERATOR_RUNBOOK", "CHANGEGATE_OPERATORS", "CHANGEGATE_ACCOUNT_ALIASES"}
    assert set(grant) <= set(values) - own, set(grant) - set(values)
    for key in set(values) - own:
        assert values[key] == grant.get(key, ""), key
    for key in ("CHANGEGATE_OPERATOR_RUNBOOK", "CHANGEGATE_OPERATORS"):
        assert values[key] == revoke.get(key, ""), key
    assert values["CHANGEGATE_ACCOUNT_ALIASES"] == parameters.get("AccountAliases", "")
    assert len(settings["Value"]) <= 4096, "a standard SSM parameter holds at most 4 KB"


def test_given_300_requests_approved_with_the_automation_quota_enforced_then_none_holds_a_slot_and_other_automations_start(
    aws: localaws.Server, people: dict[str, dict[str, str]],
) -> None:
    """The local AWS runs 100 automations at once, as AWS does by default, and
    queues the rest (Pending). 300 requests filed at once: 100 wait for their
    approvers, 200 are queued. Each approval ends its execution (the runbook
    wakes grant and is done), so the queue drains as bob approves, and once
    all 300 windows are approved no execution of the request runbook is left
    open: the next automation anyone starts runs at once. (The slots do not
    depend on who files a request, so alice files them all.)"""
    import time

    world = localaws.provision(aws.url, parameters={**BOTH, "RequestSources": "Automation"})
    alice, bob = aws.client("ssm", people["alice"]), aws.client("ssm", people["bob"])
    runbook = world.document_name("RequestRunbook")
    now = datetime.now(timezone.utc)
    window = {"IAMUserName": ["alice"], "AWSAccountId": [localaws.PROD_ACCOUNT],
              "StartTime": [f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"],
              "EndTime": [f"{now + timedelta(hours=9):%Y-%m-%dT%H:%M:%S}Z"]}
    ids = [alice.start_automation_execution(DocumentName=runbook, Parameters=window)["AutomationExecutionId"]
           for _ in range(300)]

    def statuses() -> dict[str, str]:
        listed: dict[str, str] = {}
        for page in aws.client("ssm").get_paginator("describe_automation_executions").paginate():
            for e in page["AutomationExecutionMetadataList"]:
                listed[e["AutomationExecutionId"]] = e["AutomationExecutionStatus"]
        return {i: listed.get(i, "missing") for i in ids}

    first = statuses()
    assert sorted(first.values()).count("Waiting") == 100 and sorted(first.values()).count("Pending") == 200

    approved: set[str] = set()
    deadline = time.monotonic() + 300
    while len(approved) < len(ids):
        assert time.monotonic() < deadline, f"{len(approved)} approved; the queue did not drain"
        waiting = [i for i, s in statuses().items() if s == "Waiting" and i not in approved]
        for i in waiting:
            bob.send_automation_signal(AutomationExecutionId=i, SignalType="Approve")
            approved.add(i)
        if not waiting:
            time.sleep(0.05)

    deadline = time.monotonic() + 30
    while set(statuses().values()) != {"Success"}:
        assert time.monotonic() < deadline, sorted(set(statuses().values()))
        time.sleep(0.05)
    other = alice.start_automation_execution(DocumentName=runbook, Parameters=window)["AutomationExecutionId"]
    assert aws.client("ssm").get_automation_execution(
        AutomationExecutionId=other)["AutomationExecution"]["AutomationExecutionStatus"] == "Waiting"
