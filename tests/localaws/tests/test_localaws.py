"""localaws.py: the template read as the local world, the functions' environment, the binaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

import localaws

# A template in the shape changegate's uses: a bus, a table, a request runbook
# whose content refers to parameters and resources, a function whose rule is on
# the stack's bus and whose environment names the table.
MINI = """
Parameters:
  Approvers: {Type: CommaDelimitedList}
  MinApprovals: {Type: Number, Default: 1}
  Sources: {Type: String, Default: automation}
Conditions:
  AutomationOn: !Not [!Equals [!Ref Sources, change-manager]]
Resources:
  Bus: {Type: AWS::Events::EventBus, Properties: {Name: !Sub '${AWS::StackName}-bus'}}
  Decisions:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: change_request_id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: change_request_id, AttributeType: S}]
  RequestRunbook:
    Type: AWS::SSM::Document
    Condition: AutomationOn
    Properties:
      Name: changegate-access-request
      DocumentType: Automation
      DocumentFormat: YAML
      Content: !Sub
        - |
          schemaVersion: '0.3'
          parameters: {IAMUserName: {type: String}}
          mainSteps:
            - name: Approve
              action: aws:approve
              inputs:
                Approvers: ["${Approvers}"]
                MinRequiredApprovals: ${MinApprovals}
            - name: Grant
              action: aws:invokeLambdaFunction
              inputs:
                FunctionName: ${GrantFunction.Arn}
                Payload: '{"changegate-request": {"execution-id": "{{automation:EXECUTION_ID}}"}}'
        - Approvers: !Join ['", "', !Ref Approvers]
  GrantFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          CHANGEGATE_DECISIONS_TABLE: !Ref Decisions
          CHANGEGATE_EVENT_BUS: !Ref Bus
          CHANGEGATE_SOURCES: !Ref Sources
          CHANGEGATE_APPROVERS: !Join [',', !Ref Approvers]
          CHANGEGATE_BUS_ARN: !GetAtt Bus.Arn
      Events:
        Own:
          Type: EventBridgeRule
          Properties:
            EventBusName: !Ref Bus
            Pattern: {source: [changegate]}
        Sweep:
          Type: Schedule
          Properties: {Schedule: rate(1 minute)}
"""
BOB = "arn:aws:iam::123456789012:user/bob"


def mini() -> dict:
    return yaml.load(MINI, Loader=localaws._CfnLoader)  # noqa: S506  (a SafeLoader subclass)


def test_given_short_tags_when_the_template_is_read_then_they_become_intrinsic_functions() -> None:
    tpl = mini()

    assert tpl["Resources"]["Bus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-bus"}
    assert tpl["Resources"]["RequestRunbook"]["Properties"]["Content"]["Fn::Sub"][1] == {
        "Approvers": {"Fn::Join": ['", "', {"Ref": "Approvers"}]}}
    assert tpl["Conditions"]["AutomationOn"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Sources"}, "change-manager"]}]}


def test_given_parameters_when_a_function_environment_is_resolved_then_it_names_the_local_bus_and_table() -> None:
    stack = localaws.Stack(mini(), {"Approvers": BOB})

    env = stack.function_environment("GrantFunction")

    assert env == {
        "CHANGEGATE_DECISIONS_TABLE": "changegate-decisions",
        "CHANGEGATE_EVENT_BUS": "changegate",
        "CHANGEGATE_SOURCES": "automation",
        "CHANGEGATE_APPROVERS": BOB,
        "CHANGEGATE_BUS_ARN": "arn:aws:events:us-east-1:123456789012:event-bus/changegate",
    }


def test_given_a_required_parameter_unset_when_it_is_used_then_the_error_names_it() -> None:
    stack = localaws.Stack(mini())

    with pytest.raises(localaws.UnresolvedReference, match="Approvers"):
        stack.function_environment("GrantFunction")


def test_given_a_false_condition_when_listing_documents_then_the_conditional_one_is_left_out() -> None:
    on = localaws.template_documents(localaws.Stack(mini(), {"Approvers": BOB}))
    off = localaws.template_documents(localaws.Stack(mini(), {"Approvers": BOB, "Sources": "change-manager"}))

    assert [d.name for d in on] == ["changegate-access-request"] and off == []
    steps = on[0].content["mainSteps"]
    assert steps[0]["inputs"] == {"Approvers": [BOB], "MinRequiredApprovals": 1}
    assert on[0].document_format == "YAML" and yaml.safe_load(on[0].text) == on[0].content
    assert steps[1]["inputs"]["FunctionName"] == "arn:aws:lambda:us-east-1:123456789012:function:changegate-grant"
    assert json.loads(steps[1]["inputs"]["Payload"]) == {
        "changegate-request": {"execution-id": "{{automation:EXECUTION_ID}}"}}


def test_given_the_mini_template_when_provisioned_then_the_table_bus_runbook_and_rule_queue_exist(
    aws: localaws.Server,
) -> None:
    world = localaws.provision(aws.url, template=mini(), parameters={"Approvers": BOB})

    table = aws.client("dynamodb").describe_table(TableName="changegate-decisions")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "change_request_id", "KeyType": "HASH"}]
    assert "changegate" in [b["Name"] for b in aws.client("events").list_event_buses()["EventBuses"]]
    assert [(d.name, d.created) for d in world.documents] == [("changegate-access-request", True)]
    assert [(r.name, r.function, r.bus, r.schedule) for r in world.rules] == [
        ("GrantFunctionOwn", "grant", "changegate", None), ("GrantFunctionSweep", "grant", "default", "rate(1 minute)")]

    aws.client("events").put_events(Entries=[{"Source": "changegate", "DetailType": "Access Granted",
                                              "Detail": "{}", "EventBusName": "changegate"}])

    [event] = world.pending()["grant"]
    assert (event["source"], event["account"], event["version"]) == ("changegate", localaws.HOME_ACCOUNT, "0")
    assert world.pending() == {}


def test_given_a_number_parameter_referenced_into_a_document_map_when_provisioned_then_the_local_aws_refuses_it(
    aws: localaws.Server,
) -> None:
    """A !Ref of a Number parameter is a string ("the parameter value becomes a
    string", CloudFormation Parameters), and aws:approve's MinRequiredApprovals
    is an Integer: the local AWS refuses the document, as its documentation
    reads, so a template that did this cannot pass here."""
    tpl = mini()
    props = tpl["Resources"]["RequestRunbook"]["Properties"]
    props["Content"] = {"schemaVersion": "0.3", "mainSteps": [{"name": "Approve", "action": "aws:approve", "inputs": {
        "Approvers": {"Ref": "Approvers"}, "MinRequiredApprovals": {"Ref": "MinApprovals"}}}]}

    world = localaws.provision(aws.url, template=tpl, parameters={"Approvers": BOB})

    [doc] = world.documents
    assert not doc.created and doc.skipped and "MinRequiredApprovals must be an Integer" in doc.skipped


def test_given_an_inline_script_in_a_json_document_when_created_then_the_local_aws_refuses_it(aws: localaws.Server) -> None:
    """aws:executeScript: Script "is not supported for JSON runbooks"; the
    same runbook in YAML is taken, and a runtime AWS no longer runs is not."""
    step = {"name": "S", "action": "aws:executeScript",
            "inputs": {"Runtime": "python3.11", "Handler": "h", "Script": "def h(e, c):\n    return {}\n"}}
    runbook = {"schemaVersion": "0.3", "mainSteps": [step]}
    ssm = aws.client("ssm")

    with pytest.raises(ClientError) as refused:
        ssm.create_document(Name="inline-json", DocumentType="Automation", DocumentFormat="JSON", Content=json.dumps(runbook))
    assert refused.value.response["Error"]["Code"] == "InvalidDocumentContent"
    assert "not supported for JSON" in str(refused.value)
    ssm.create_document(Name="inline-yaml", DocumentType="Automation", DocumentFormat="YAML", Content=yaml.safe_dump(runbook))
    step["inputs"]["Runtime"] = "python3.8"
    with pytest.raises(ClientError, match="python3.8"):
        ssm.create_document(Name="old-runtime", DocumentType="Automation", DocumentFormat="YAML",
                            Content=yaml.safe_dump(runbook))


def test_given_template_yaml_when_provisioned_then_every_function_is_built_and_every_document_accounted_for(
    aws: localaws.Server,
) -> None:
    world = localaws.provision(aws.url)

    assert set(world.stack.functions().values()) == set(localaws.FUNCTIONS)
    assert world.documents and all(d.created or d.skipped for d in world.documents)
    assert world.document("AccessRunbook").created, world.document("AccessRunbook").skipped
    assert {r.function for r in world.rules} == set(localaws.FUNCTIONS)
    assert world.function_env("notify")["CHANGEGATE_TOPIC_ARN"] == world.topic_arn


def test_given_a_variable_that_is_aws_novalue_when_the_environment_is_resolved_then_it_is_not_set() -> None:
    """The template passes CHANGEGATE_SESSION_CUTTER_ROLE only with the cut on
    (!If [CutSessions, ..., !Ref AWS::NoValue]); off, Lambda has no such
    variable, so neither may the local function."""
    tpl = localaws.load_template()
    off = localaws.Stack(tpl).function_environment("GrantFunction")
    on = localaws.Stack(tpl, {"SessionCutterRoleName": "changegate-session-cutter"}).function_environment("GrantFunction")

    assert "CHANGEGATE_SESSION_CUTTER_ROLE" not in off
    assert "None" not in off.values()
    assert on["CHANGEGATE_SESSION_CUTTER_ROLE"] == "changegate-session-cutter"


def test_given_a_property_that_is_aws_novalue_when_resolved_then_it_is_left_out() -> None:
    stack = localaws.Stack(mini(), {"Approvers": BOB})

    assert stack.resolve({"A": {"Ref": "AWS::NoValue"}, "B": {"Fn::If": ["AutomationOn", "x", {"Ref": "AWS::NoValue"}]}}) == {
        "B": "x"}


def test_given_a_list_item_that_is_aws_novalue_when_resolved_then_it_is_removed() -> None:
    """The undelivered-events queue's policy lists the rules as
    !If [UseAutomation, <rule>, !Ref AWS::NoValue]; CloudFormation drops the
    items whose branch is NoValue, so no None may reach the local AWS."""
    stack = localaws.Stack(mini(), {"Approvers": BOB})

    resolved = stack.resolve([
        "a",
        {"Ref": "AWS::NoValue"},
        {"Fn::If": ["AutomationOn", "b", {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["AutomationOn", {"Ref": "AWS::NoValue"}, "c"]},
    ])

    assert resolved == ["a", "b"]


def test_given_a_find_in_map_when_resolved_then_it_reads_the_templates_mappings_as_cloudformation_does() -> None:
    """Fn::FindInMap [map, top-level key, second-level key] (ApprovalTimeoutHours
    into seconds); a key the mapping lacks fails, as CloudFormation's does."""
    template = {**mini(), "Mappings": {"Timeouts": {"24": {"Seconds": 86400}}}}
    stack = localaws.Stack(template, {"Approvers": BOB})

    assert stack.resolve({"Fn::FindInMap": ["Timeouts", "24", "Seconds"]}) == 86400
    with pytest.raises(localaws.UnresolvedReference):
        stack.resolve({"Fn::FindInMap": ["Timeouts", "25", "Seconds"]})


def test_given_a_stray_aws_profile_when_building_a_function_environment_then_it_is_removed(
    aws: localaws.Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", "https://iam.amazonaws.com")

    env = localaws.base_env(aws.url)

    assert env["AWS_ENDPOINT_URL"] == aws.url
    assert env["AWS_PROFILE"] is None and env["AWS_ENDPOINT_URL_IAM"] is None


def test_given_cargo_target_dir_when_finding_binaries_then_they_are_looked_for_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path))
    localaws.target_dir.cache_clear()
    try:
        assert localaws.binary("grant") == tmp_path / "debug" / "grant"
        assert localaws.missing_binaries() == list(localaws.FUNCTIONS)
        (tmp_path / "debug").mkdir()
        for name in localaws.FUNCTIONS:
            (tmp_path / "debug" / name).write_text("#!/bin/sh\n")
            (tmp_path / "debug" / name).chmod(0o755)
        assert localaws.missing_binaries() == []
    finally:
        monkeypatch.undo()
        localaws.target_dir.cache_clear()


def test_given_the_approver_settings_when_the_environment_is_resolved_then_grant_gets_approvers_and_the_session_rule() -> None:
    """grant reads CHANGEGATE_APPROVERS on both paths and
    CHANGEGATE_APPROVER_SESSIONS_ARE_PEOPLE from ApproverSessionsArePeople
    (false unless the deployment says role session names are people)."""
    tpl = localaws.load_template()
    bob = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/bob"
    default = localaws.Stack(tpl, {"RequestSources": "ChangeManager", "ApproverArns": bob}).function_environment("GrantFunction")
    people = localaws.Stack(tpl, {"ApproverArns": bob, "ApproverSessionsArePeople": "true"}).function_environment("GrantFunction")

    assert default["CHANGEGATE_APPROVERS"] == bob
    assert default["CHANGEGATE_APPROVER_SESSIONS_ARE_PEOPLE"] == "false"
    assert people["CHANGEGATE_APPROVER_SESSIONS_ARE_PEOPLE"] == "true"
