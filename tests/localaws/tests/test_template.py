"""template.yaml and templates/production-account.yaml as CloudFormation
reads them: what a deployment anywhere, or a second one beside the first,
depends on."""

from __future__ import annotations

import re
from typing import Any

import pytest

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
        kind = "role" if "user|role" not in pattern else "user"
        arn = f"arn:{partition}:iam::123456789012:{kind}/bob"
        assert re.search(pattern, arn), f"{name} {param} refuses {arn} ({pattern})"
        assert not re.search(pattern, f"arn:{partition}:sts::123456789012:{kind}/bob"), param
