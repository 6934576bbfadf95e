"""pytest fixtures for the local-AWS tooling: one server.py for the session,
reset before each test that asks for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCALAWS = Path(__file__).resolve().parents[1]
if str(LOCALAWS) not in sys.path:
    sys.path.insert(0, str(LOCALAWS))

import localaws  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[localaws.Server]:
    """One local AWS for the whole session (moto's imports take seconds)."""
    with localaws.Server(localaws.ROOT / ".localaws" / "pytest-server.log") as aws:
        yield aws


@pytest.fixture
def aws(server: localaws.Server) -> localaws.Server:
    """The session's local AWS, emptied (``/moto-api/reset``) for this test."""
    server.reset()
    return server


@pytest.fixture
def people(aws: localaws.Server) -> dict[str, dict[str, str]]:
    """IAM users alice and bob with access keys: their credentials by name."""
    iam = aws.client("iam")
    creds = {}
    for user in ("alice", "bob"):
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        creds[user] = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    return creds
