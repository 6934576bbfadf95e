#!/usr/bin/env python3
"""Check what template.yaml deploys for each value of RequestSources.

After the SAM transform (the one cfn-lint runs), the template's Conditions
are evaluated for the given stack parameters and every resource whose
Condition is false is dropped, as CloudFormation would. Then:

* Automation: no change template, and no rule for Change Manager events
  (``Change Request Status Update``): the stack deploys in an account that
  never enabled Change Manager. The request runbook and its rules exist.
* ChangeManager: the change template and its rules exist; no request
  runbook and no rule for plain Automation events.
* Both: everything.

In every case the change template (if any) has auto-approval off, and no
function environment or IAM policy keeps a reference to a resource that is
not deployed.

It checks each template it is given in one process (the import is most of
its run time), prefixes each problem with the template's file name, and prints
one verdict line per template on stdout, ``accepted FILE`` or ``rejected
FILE``; the exit status is 1 if any was rejected. A template that does not
expand, or that crashes the check, is rejected:

    python3 tests/template/sources_check.py template.yaml "$tmp/broken.yaml"

Run it with the Python that has the pinned cfn-lint installed.
"""

import json
import re
import sys
import traceback
from typing import Any

import yaml
from sam_transform import expand

APPROVERS = ["arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:role/ProdApprovers"]
CHANGE_MANAGER_EVENT = "Change Request Status Update"
AUTOMATION_EVENTS = ("EC2 Automation Step Status-change Notification", "EC2 Automation Execution Status-change Notification")
CHANGE_TEMPLATE = "Automation.ChangeTemplate"
REQUEST_RUNBOOK = "RequestRunbook"  # its logical id (its name is the stack's own)


class Unresolved(Exception):
    pass


class Conditions:
    """CloudFormation's condition functions over parameter values (and the
    intrinsic functions used inside them: Ref, Join, Split, Select)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]):
        self.template = template
        self.values: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                continue  # a required parameter no condition uses
            if "List" in str(spec.get("Type", "")) and isinstance(value, str):
                value = value.split(",")
            self.values[name] = value
        self.cache: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.cache:
            self.cache[name] = bool(self.value(self.template["Conditions"][name]))
        return self.cache[name]

    def value(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            raise Unresolved(f"not a function: {v!r}")
        (fn, arg), = v.items()
        if fn == "Ref":
            if arg not in self.values:  # includes required parameters left unset
                raise Unresolved(f"Ref {arg} in a condition")
            return self.values[arg]
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = self.value(arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x) for x in arg)
        if fn == "Fn::Join":
            sep, items = arg
            items = self.value(items)
            return str(sep).join(str(x) for x in items)
        if fn == "Fn::Split":
            sep, text = self.value(arg)
            return str(text).split(sep)
        if fn == "Fn::Select":
            index, items = self.value(arg)
            return items[int(index)]
        raise Unresolved(f"{fn} in a condition")


def prune(value: Any, cond: Conditions) -> Any:
    """``value`` with every Fn::If decided and AWS::NoValue removed."""
    if isinstance(value, list):
        out = [prune(x, cond) for x in value]
        return [x for x in out if x is not NoValue]
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::If" in value:
            name, yes, no = value["Fn::If"]
            return prune(yes if cond.condition(name) else no, cond)
        if value == {"Ref": "AWS::NoValue"}:
            return NoValue
        out = {k: prune(v, cond) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NoValue}
    return value


class _NoValue:
    pass


NoValue = _NoValue()


def references(value: Any) -> set[str]:
    """Logical ids named by Ref, Fn::GetAtt and Fn::Sub in ``value``."""
    found: set[str] = set()
    if isinstance(value, list):
        for x in value:
            found |= references(x)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                named = set() if isinstance(v, str) else set(v[1])  # the Sub's own variables
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)} - named
                if not isinstance(v, str):
                    found |= references(v[1])
            else:
                found |= references(v)
    return found


def deployed(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    cond = Conditions(template, parameters)
    resources = {}
    for logical, spec in template["Resources"].items():
        if "Condition" in spec and not cond.condition(spec["Condition"]):
            continue
        resources[logical] = prune(spec, cond)
    return resources


def content(props: dict[str, Any]) -> dict[str, Any]:
    """A document's Content as a map: given as one, or as YAML or JSON text,
    plain or in a Fn::Sub (each ${...} read as a placeholder string)."""
    value = props.get("Content") or {}
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        value = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        value = re.sub(r"\$\{[^}]*\}", "SUBSTITUTED", value)
    return yaml.safe_load(value) if isinstance(value, str) else value


def event_types(resource: dict[str, Any]) -> set[str]:
    pattern = (resource.get("Properties") or {}).get("EventPattern") or {}
    if isinstance(pattern, str):
        pattern = json.loads(pattern)
    return set(pattern.get("detail-type") or [])


def check(template: dict[str, Any], sources: str) -> list[str]:
    resources = deployed(template, {"RequestSources": sources, "ApproverArns": APPROVERS})
    problems = []
    documents = {
        logical: (r.get("Properties") or {})
        for logical, r in resources.items()
        if r.get("Type") == "AWS::SSM::Document"
    }
    kinds = {p.get("DocumentType") for p in documents.values()}
    rule_events: set[str] = set()
    for r in resources.values():
        if r.get("Type") == "AWS::Events::Rule":
            rule_events |= event_types(r)
    cm, auto = sources in ("ChangeManager", "Both"), sources in ("Automation", "Both")

    if (CHANGE_TEMPLATE in kinds) != cm:
        problems.append(f"change template {'missing' if cm else 'deployed'}")
    if (CHANGE_MANAGER_EVENT in rule_events) != cm:
        problems.append(f"rule for {CHANGE_MANAGER_EVENT!r} {'missing' if cm else 'deployed'}")
    if (REQUEST_RUNBOOK in documents) != auto:
        problems.append(f"request runbook {'missing' if auto else 'deployed'}")
    for event in AUTOMATION_EVENTS:
        if (event in rule_events) != auto:
            problems.append(f"rule for {event!r} {'missing' if auto else 'deployed'}")
    for props in documents.values():
        if props.get("DocumentType") == CHANGE_TEMPLATE and content(props).get("autoApprovable") is not False:
            problems.append("change template allows auto-approval")
    # Nothing deployed may point at a resource that is not.
    known = set(resources) | set(template.get("Parameters") or {})
    for logical, r in resources.items():
        for ref in references(r) - known:
            if not ref.startswith("AWS::"):
                problems.append(f"{logical} refers to {ref}, which is not deployed")
    return [f"RequestSources={sources}: {p}" for p in problems]


def problems_in(filename: str) -> list[str]:
    """What is wrong with what the template deploys, for each RequestSources value."""
    expanded, errors = expand(filename)
    if expanded is None:
        return errors or ["the SAM transform failed"]
    problems = []
    for sources in ("Automation", "ChangeManager", "Both"):
        problems += check(expanded, sources)
    return problems


def main() -> int:
    filenames = sys.argv[1:]
    if not filenames or any(f.startswith("-") for f in filenames):
        print(f"usage: {sys.argv[0]} TEMPLATE...", file=sys.stderr)
        return 2
    status = 0
    for filename in filenames:
        try:
            problems = problems_in(filename)
        except Exception:  # a broken template may crash the check: rejected
            problems = [traceback.format_exc().rstrip()]
        for line in "\n".join(problems).splitlines():
            print(f"{filename}: {line}", file=sys.stderr)
        print(f"{'rejected' if problems else 'accepted'} {filename}", flush=True)
        if problems:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
