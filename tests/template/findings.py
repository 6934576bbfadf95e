#!/usr/bin/env python3
"""Per-template verdicts from one cfn-lint or checkov run over several templates.

lint.sh runs each linter once over many templates (the clean ones and the
deliberately broken ones), with JSON output, and then asks:

    findings.py TOOL RESULTS STATUS FILE...
        Check the run, then print one line per FILE: the number of findings
        in it, a tab, and FILE as given. The run is checked first: its JSON
        parses, its exit STATUS is the one its findings imply (so no finding
        went missing and the tool did not crash), every finding names one of
        FILE..., and (checkov) every FILE was scanned: it has checks and no
        parsing error. If not, print why on stderr and exit 1.
    findings.py TOOL RESULTS show FILE...
        Print the findings in each FILE, one a line.

TOOL is cfn-lint (RESULTS from `cfn-lint --format json`; every match is a
finding, whatever its level, as every match makes cfn-lint exit non-zero) or
checkov (RESULTS from `checkov -o json`; a failed check is a finding).
Findings are matched to files by absolute path, so FILE may be given as it was
to the tool, relative to the working directory or not.

Exit status 2: bad usage or unreadable results.
"""

import json
import os
import sys
from typing import Any

USAGE = """usage: findings.py cfn-lint|checkov RESULTS STATUS FILE...
       findings.py cfn-lint|checkov RESULTS show FILE..."""

# cfn-lint's exit status is the OR of these over its matches (non_zero_exit_code
# defaults to informational, so every level counts); 1 is a crash or bad usage.
CFN_LINT_LEVELS = {"Error": 2, "Warning": 4, "Informational": 8}


class Results:
    def __init__(self, tool: str, path: str):
        self.tool = tool
        with open(path) as f:
            data = json.load(f)
        # finding: (absolute path of the file, readable one-line description)
        self.findings: list[tuple[str, str]] = []
        self.scanned: set[str] = set()  # checkov: files with at least one check
        self.parse_errors: set[str] = set()
        self.levels: set[str] = set()
        if tool == "cfn-lint":
            self._cfn_lint(data)
        else:
            self._checkov(data)

    def _cfn_lint(self, data: Any) -> None:
        if not isinstance(data, list):
            raise ValueError("cfn-lint's JSON output is not a list of matches")
        for m in data:
            start = m["Location"]["Start"]
            if m["Level"] not in CFN_LINT_LEVELS:
                raise ValueError(f"unknown cfn-lint level {m['Level']!r}")
            self.levels.add(m["Level"])
            description = f"{m['Filename']}:{start['LineNumber']}:{start['ColumnNumber']}: {m['Rule']['Id']} {m['Message']}"
            self.findings.append((os.path.abspath(m["Filename"]), description))

    def _checkov(self, data: Any) -> None:
        # One framework gives one report (a dict); several give a list of them;
        # a run that found nothing to scan gives only a summary (no "results").
        reports = data if isinstance(data, list) else [data]
        for report in reports:
            results = report.get("results")
            if results is None:
                continue
            if report.get("check_type") != "cloudformation":
                raise ValueError(f"unexpected checkov report type {report.get('check_type')!r}")
            for c in results.get("failed_checks") or []:
                first, last = c["file_line_range"]
                description = f"{c['file_abs_path']}:{first}-{last}: {c['check_id']} {c['check_name']} ({c['resource']})"
                self.findings.append((os.path.abspath(c["file_abs_path"]), description))
            for key in ("failed_checks", "passed_checks", "skipped_checks"):
                self.scanned |= {os.path.abspath(c["file_abs_path"]) for c in results.get(key) or []}
            self.parse_errors |= {os.path.abspath(p) for p in results.get("parsing_errors") or []}

    def of(self, filename: str) -> list[str]:
        path = os.path.abspath(filename)
        return [d for p, d in self.findings if p == path]

    def expected_status(self) -> int:
        if self.tool == "cfn-lint":
            status = 0
            for level in self.levels:
                status |= CFN_LINT_LEVELS[level]
            return status
        return 1 if self.findings else 0


def covers(results: Results, status: int, filenames: list[str]) -> list[str]:
    problems = []
    if status != results.expected_status():
        problems.append(f"{results.tool} exited {status}, but its findings imply exit status {results.expected_status()}")
    paths = {os.path.abspath(f) for f in filenames}
    for path, description in results.findings:
        if path not in paths:
            problems.append(f"a finding in a file {results.tool} was not asked about: {description}")
    if results.tool == "checkov":
        for f in filenames:
            if os.path.abspath(f) in results.parse_errors:
                problems.append(f"checkov could not parse {f}")
            elif os.path.abspath(f) not in results.scanned:
                problems.append(f"checkov reports no check on {f}")
    return problems


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 4 or args[0] not in ("cfn-lint", "checkov") or not (args[2] == "show" or args[2].isdigit()):
        print(USAGE, file=sys.stderr)
        return 2
    tool, path, query, filenames = args[0], args[1], args[2], args[3:]
    try:
        results = Results(tool, path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{sys.argv[0]}: cannot read {tool}'s results {path}: {e!r}", file=sys.stderr)
        return 2
    if query == "show":
        for f in filenames:
            for description in results.of(f):
                print(description)
        return 0
    problems = covers(results, int(query), filenames)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    for f in filenames:
        print(f"{len(results.of(f))}\t{f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
