#!/usr/bin/env python3
"""Print template.yaml after the SAM transform, as plain CloudFormation JSON.

cfn-lint skips its IAM action check (W3037) on any template that uses the SAM
transform (aws/serverless-application-model#3633), so a misspelt action in a
function's `Policies` passes `cfn-lint template.yaml`. Linting this output as
well closes that gap:

    python3 tests/template/sam_transform.py template.yaml >"$tmp/expanded.json"
    cfn-lint "$tmp/expanded.json"

It uses the transform cfn-lint itself runs (same SAM translator, local CodeUri
replaced by a placeholder S3 URI), so both see the same resources. Run it with
the Python that has the pinned cfn-lint installed.
"""

import json
import sys

from cfnlint.decode import decode
from cfnlint.template.transforms._sam import Transform


def expand(filename: str) -> tuple[dict | None, list[str]]:
    """The template after the SAM transform, or None and why not."""
    template, errors = decode(filename)
    if errors or template is None:
        return None, [str(e) for e in errors or []]
    transform = Transform(filename, template, "us-east-1")
    failures = transform.transform_template()
    if failures:
        return None, [str(f) for f in failures]
    return json.loads(json.dumps(transform.template())), []


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} TEMPLATE", file=sys.stderr)
        return 2
    expanded, problems = expand(sys.argv[1])
    if expanded is None:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    json.dump(expanded, sys.stdout, indent=2, sort_keys=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
