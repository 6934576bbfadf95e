#!/usr/bin/env python3
"""Write templates after the SAM transform, as plain CloudFormation JSON.

cfn-lint skips its IAM action check (W3037) on any template that uses the SAM
transform (aws/serverless-application-model#3633), so a misspelt action in a
function's `Policies` passes `cfn-lint template.yaml`. Linting the expansion
as well closes that gap. It expands several templates in one process (the
import is most of its run time) and writes each one's expansion to
DIR/<name>.json, where <name> is the template's file name without its suffix:

    python3 tests/template/sam_transform.py --to "$tmp/expanded" template.yaml "$tmp/broken.yaml"
    cfn-lint "$tmp/expanded/template.json"

A template that fails to expand (or crashes the translator) gets no output
file; its errors go to stderr, each line prefixed by its file name, and the
exit status is 1 (the other templates are still written).

It uses the transform cfn-lint itself runs (same SAM translator, local CodeUri
replaced by a placeholder S3 URI), so both see the same resources. Run it with
the Python that has the pinned cfn-lint installed.
"""

import json
import os
import sys
import traceback

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


def write_all(directory: str, filenames: list[str]) -> int:
    """Write each template's expansion to DIRECTORY/<name>.json."""
    outputs = [os.path.join(directory, os.path.splitext(os.path.basename(f))[0] + ".json") for f in filenames]
    if len(set(outputs)) != len(outputs):
        print(f"{sys.argv[0]}: two templates would share an output file: {filenames}", file=sys.stderr)
        return 2
    os.makedirs(directory, exist_ok=True)
    status = 0
    for filename, output in zip(filenames, outputs, strict=True):
        try:
            expanded, problems = expand(filename)
        except Exception:  # a broken template may crash the translator: it did not expand
            expanded, problems = None, [traceback.format_exc().rstrip()]
        if expanded is None:
            status = 1
            for line in "\n".join(problems).splitlines():
                print(f"{filename}: {line}", file=sys.stderr)
            continue
        with open(output, "w") as out:
            json.dump(expanded, out, indent=2, sort_keys=False)
            out.write("\n")
    return status


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "--to":
        print(f"usage: {sys.argv[0]} --to DIR TEMPLATE...", file=sys.stderr)
        return 2
    return write_all(args[1], args[2:])


if __name__ == "__main__":
    sys.exit(main())
