"""The docs a user reads, against the template and the code they describe:
every stack parameter and every CHANGEGATE_* variable is documented (and
nothing documented is gone), every refusal code is listed, and every
relative link leads somewhere. A change to template.yaml or the functions'
configuration that leaves the docs behind fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import localaws

ROOT = localaws.ROOT
CONFIGURATION = ROOT / "docs" / "configuration.md"
SECURITY_MODEL = ROOT / "docs" / "security-model.md"
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])

VARIABLE = re.compile(r"\bCHANGEGATE_[A-Z0-9_]*[A-Z0-9]\b")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(markdown: str, heading: str) -> str:
    """The body of the ``## heading`` section, up to the next heading of its level or above."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^#{{1,2}} |\Z)", markdown, re.MULTILINE | re.DOTALL)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def first_column(markdown: str) -> set[str]:
    """The backticked names in the first column of the tables in ``markdown``."""
    return set(re.findall(r"^\| `([^`]+)` \|", markdown, re.MULTILINE))


def function_environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's environment variables as the template sets them (Globals included)."""
    common = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    return {
        logical: {**common, **((spec.get("Properties") or {}).get("Environment") or {}).get("Variables", {})}
        for logical, spec in template["Resources"].items()
        if spec.get("Type") == "AWS::Serverless::Function"
    }


def read_by(paths: list[Path]) -> dict[str, set[str]]:
    """Every CHANGEGATE_* name the files mention, with the files that do."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in VARIABLE.findall(text(path)):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


FUNCTION_CODE = sorted([*(ROOT / "shared" / "src").rglob("*.rs"), *(ROOT / "shared" / "aws" / "src").rglob("*.rs")])
CLI_CODE = sorted((ROOT / "cli" / "src").rglob("*.rs"))
HARNESS = sorted(
    [
        ROOT / "Makefile",
        *(ROOT / "tests" / "src").rglob("*.rs"),
        *(ROOT / "tests" / "tests").rglob("*.rs"),
        *(ROOT / "tests" / "localaws").glob("*.py"),
    ]
)


def template_variables() -> set[str]:
    return {name for env in function_environments(localaws.load_template()).values() for name in env if VARIABLE.fullmatch(name)}


def local_only() -> set[str]:
    return first_column(section(text(CONFIGURATION), "Local-only variables"))


def test_given_the_template_when_its_parameters_are_read_then_docs_configuration_names_each_and_no_other() -> None:
    """Every Parameter a deployer can set is described in configuration.md's
    parameter tables, and every parameter those tables describe still exists."""
    parameters = set(localaws.load_template()["Parameters"])
    documented = first_column(section(text(CONFIGURATION), "Stack parameters"))
    assert parameters - documented == set(), "template.yaml parameters missing from docs/configuration.md"
    assert documented - parameters == set(), "docs/configuration.md describes parameters template.yaml does not have"


def test_given_the_production_account_template_when_read_then_docs_configuration_names_each_parameter_and_no_other() -> None:
    """The same for templates/production-account.yaml and its own table."""
    parameters = set(localaws.load_template(localaws.ROOT / "templates" / "production-account.yaml")["Parameters"])
    documented = first_column(section(text(CONFIGURATION), "The production-account stack's parameters"))
    assert parameters == documented


def test_given_the_functions_environments_when_read_then_docs_configuration_names_every_variable_set() -> None:
    """Every CHANGEGATE_* variable template.yaml sets on a function has a row
    in configuration.md's table of the functions' environment."""
    variables = template_variables()
    assert variables, "template.yaml sets no CHANGEGATE_* variable any more: update this test"
    documented = first_column(section(text(CONFIGURATION), "The functions' environment"))
    assert variables - documented == set(), "variables template.yaml sets but docs/configuration.md does not describe"


def test_given_the_rust_code_when_grepped_then_every_variable_it_names_is_set_by_the_template_or_local_only() -> None:
    """A CHANGEGATE_* name the functions' code (shared/src, shared/aws/src)
    names is one the template sets, or a local-only one documented as such:
    a variable the code reads and no deployment sets is a setting nobody can
    make. And every variable the environment table describes is one the code
    still names."""
    named = read_by(FUNCTION_CODE)
    assert named, "the functions' code names no CHANGEGATE_* variable any more: update this test"
    unset = {name: sorted(files) for name, files in named.items() if name not in template_variables() | local_only()}
    assert unset == {}, "named by the code, set by no template and not documented as local-only"
    documented = first_column(section(text(CONFIGURATION), "The functions' environment"))
    assert documented - set(named) == set(), "docs/configuration.md describes variables the code no longer reads"


def test_given_the_command_when_grepped_then_each_variable_of_its_own_is_documented_as_the_commands() -> None:
    """A CHANGEGATE_* name the changegate command (cli/src) reads that no
    function's environment holds is in configuration.md's table of the
    command's settings, and that table names nothing the command no longer reads."""
    own = {name for name in read_by(CLI_CODE) if name not in template_variables()}
    documented = first_column(section(text(CONFIGURATION), "The changegate command's settings"))
    assert own, "the command reads no variable of its own any more: update this test"
    assert own == documented


def test_given_the_test_harness_when_grepped_then_each_variable_only_it_reads_is_documented_as_local_only() -> None:
    """The Makefile's and the test harness's own CHANGEGATE_* variables are in
    configuration.md's local-only table, and nothing there is something a
    deployment sets."""
    harness_only = {
        name: sorted(files)
        for name, files in read_by(HARNESS).items()
        if name not in template_variables() and name not in read_by(FUNCTION_CODE) and name not in read_by(CLI_CODE)
    }
    missing = {name: files for name, files in harness_only.items() if name not in local_only()}
    assert missing == {}, "read by the harness, missing from docs/configuration.md's local-only variables"
    assert local_only() & template_variables() == set(), "documented as local-only, but template.yaml sets them"


def codes(source: Path) -> set[str]:
    """The codes a ``fn code`` match hands out (``Self::X { .. } => "the-code"``)."""
    body = text(source).split("pub fn code(&self)", 1)[1].split("\n    }\n", 1)[0]
    return set(re.findall(r'=>\s*\{?\s*"([a-z-]+)"', body))


@pytest.mark.parametrize("source", ["shared/src/refusal.rs", "shared/src/operator.rs"])
def test_given_the_refusal_codes_when_read_from_the_code_then_docs_security_model_lists_each_in_its_refusals(
    source: str,
) -> None:
    """Each stable refusal code (grant's, and the operators' runbook's) has its
    row in the one list of refusals, and the list names no code the code
    does not hand out."""
    handed_out = codes(ROOT / source)
    assert len(handed_out) > 5, f"no codes read from {source}: update this test"
    listed = first_column(section(text(SECURITY_MODEL), "Refusals"))
    assert handed_out - listed == set(), f"codes of {source} missing from docs/security-model.md#refusals"
    retired = {"retired-payload"}  # revoke's answer to an earlier release's payload (shared/aws/src/revoke.rs)
    assert retired <= listed and "retired-payload" in text(ROOT / "shared" / "aws" / "src" / "revoke.rs")
    every_code = codes(ROOT / "shared/src/refusal.rs") | codes(ROOT / "shared/src/operator.rs") | retired
    assert listed - every_code == set(), "docs/security-model.md lists refusal codes the code does not hand out"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", FENCE.sub("", text(path)), re.MULTILINE):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_given_a_doc_when_its_relative_links_are_followed_then_each_file_and_heading_exists(doc: Path) -> None:
    """README.md, CONTRIBUTING.md and docs/*.md link only to files that exist,
    and, for a Markdown file, to headings it has."""
    broken = []
    for target in LINK.findall(FENCE.sub("", text(doc))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading in {file.relative_to(ROOT)}")
    assert broken == [], f"{doc.relative_to(ROOT)} has broken links"
