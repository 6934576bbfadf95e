"""IAM users across a rename, as AWS keeps them: the unique id stays, the
user's policies, tags and access keys move to the new name, a taken name and
an unknown user are refused with IAM's own errors."""

from __future__ import annotations

import re

import botocore.exceptions
import pytest

import localaws


def _error(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_given_a_user_when_created_then_its_unique_id_has_the_shape_aws_gives_users(aws: localaws.Server) -> None:
    user = aws.client("iam").create_user(UserName="alice")["User"]
    assert re.fullmatch(r"AIDA[A-Z0-9]{17}", user["UserId"]), user["UserId"]


def test_given_a_user_with_a_policy_tags_and_a_key_when_renamed_then_all_move_and_the_id_stays(
    aws: localaws.Server,
) -> None:
    iam = aws.client("iam")
    user_id = iam.create_user(UserName="alice", Tags=[{"Key": "changegate:eligible", "Value": "111122223333"}])[
        "User"
    ]["UserId"]
    document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}'
    iam.put_user_policy(UserName="alice", PolicyName="changegate-x", PolicyDocument=document)
    key = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]

    iam.update_user(UserName="alice", NewUserName="alice2")

    renamed = iam.get_user(UserName="alice2")["User"]
    assert renamed["UserId"] == user_id
    assert renamed["Arn"].endswith(":user/alice2")
    assert renamed.get("Tags") == [{"Key": "changegate:eligible", "Value": "111122223333"}]
    assert iam.list_user_policies(UserName="alice2")["PolicyNames"] == ["changegate-x"]
    keys = iam.list_access_keys(UserName="alice2")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["UserName"]) for k in keys] == [(key, "alice2")]
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        iam.get_user(UserName="alice")
    assert _error(gone) == "NoSuchEntity"
    details = iam.get_account_authorization_details(Filter=["User"])["UserDetailList"]
    assert [(u["UserName"], u["UserId"], [p["PolicyName"] for p in u["UserPolicyList"]]) for u in details] == [
        ("alice2", user_id, ["changegate-x"])
    ]


def test_given_a_taken_name_or_an_unknown_user_when_renaming_then_iam_refuses_with_its_own_errors(
    aws: localaws.Server,
) -> None:
    iam = aws.client("iam")
    iam.create_user(UserName="alice")
    iam.create_user(UserName="bob")
    with pytest.raises(botocore.exceptions.ClientError) as taken:
        iam.update_user(UserName="alice", NewUserName="BOB")
    assert _error(taken) == "EntityAlreadyExists"
    with pytest.raises(botocore.exceptions.ClientError) as unknown:
        iam.update_user(UserName="carol", NewUserName="carol2")
    assert _error(unknown) == "NoSuchEntity"
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        iam.update_user(UserName="alice", NewUserName="alice/2")
    assert _error(bad) == "ValidationError"
    iam.update_user(UserName="alice", NewUserName="Alice")
    assert iam.get_user(UserName="Alice")["User"]["UserName"] == "Alice"


def test_given_a_permissions_boundary_when_put_on_a_user_then_iam_shows_it_and_deleting_it_removes_it(
    aws: localaws.Server,
) -> None:
    """PutUserPermissionsBoundary and DeleteUserPermissionsBoundary as IAM's
    API Reference has them (moto 5.2.1 lacks both): the boundary is a managed
    policy that exists, and GetUser and GetAccountAuthorizationDetails show
    it as the user's PermissionsBoundary."""
    iam = aws.client("iam")
    document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}'
    arn = iam.create_policy(PolicyName="requester-boundary", PolicyDocument=document)["Policy"]["Arn"]
    iam.create_user(UserName="alice")
    assert "PermissionsBoundary" not in iam.get_user(UserName="alice")["User"]

    iam.put_user_permissions_boundary(UserName="alice", PermissionsBoundary=arn)

    expected = {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}
    assert iam.get_user(UserName="alice")["User"]["PermissionsBoundary"] == expected
    [listed] = iam.get_account_authorization_details(Filter=["User"])["UserDetailList"]
    assert listed["PermissionsBoundary"] == expected
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        iam.put_user_permissions_boundary(UserName="alice", PermissionsBoundary=arn.replace("requester", "other"))
    assert _error(missing) == "NoSuchEntity"
    with pytest.raises(botocore.exceptions.ClientError) as nobody:
        iam.put_user_permissions_boundary(UserName="bob", PermissionsBoundary=arn)
    assert _error(nobody) == "NoSuchEntity"

    iam.delete_user_permissions_boundary(UserName="alice")
    assert "PermissionsBoundary" not in iam.get_user(UserName="alice")["User"]
