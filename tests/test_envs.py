"""The conda environments in envs/ stay in sync with pyproject.toml, and every rule declares one.

Conda cannot run on the CI machines (no conda binary, no channels), so these offline checks are
what keeps ``--sdm conda`` meaningful: the files parse, every package maps to a pyproject
dependency with the same version constraints, and every rule that runs code points at an
existing environment file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from tests.workflow_helpers import REPO

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]

# PyPI name -> conda-forge name where they differ (keep explicit: a wrong name only fails at solve time).
CONDA_NAME = {"torch": "pytorch", "snakemake": "snakemake-minimal", "matplotlib": "matplotlib-base"}
# Packages an environment may list without a pyproject counterpart.
CONDA_ONLY = {"python", "pip"}
ALLOWED_ENV_KEYS = {"name", "channels", "dependencies"}
# `pip:` entries that install this checkout itself (paths relative to the environment file).
SELF_INSTALL = {"-e ..", "-e ../", ".."}
# "name", "name >=1,<2" or "name ==2.13.0": pip-style operators only, so pyproject and conda agree.
CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\s+(?P<spec>[<>=!~][^\s]*))?$")
RULE_HEADER = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
ACTIONS = ("script", "shell", "run", "notebook", "wrapper", "cwl")


def conda_name(pypi_name: str) -> str:
    """The conda-forge package name of a PyPI distribution (canonical, lower case)."""
    name = canonicalize_name(pypi_name)
    return CONDA_NAME.get(name, name)


def expected_packages() -> dict[str, SpecifierSet]:
    """conda name -> version constraints for python and every runtime dependency of pyproject.toml.

    Extras (``snakemake[reports]``) add the extra's own requirements as read from the installed
    distribution's metadata, with their constraints.
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    expected = {"python": SpecifierSet(project["requires-python"])}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        expected[conda_name(requirement.name)] = requirement.specifier
        for extra in requirement.extras:
            for extra_line in requires(requirement.name) or []:
                extra_requirement = Requirement(extra_line)
                if extra_requirement.marker is not None and extra_requirement.marker.evaluate({"extra": extra}):
                    expected[conda_name(extra_requirement.name)] = extra_requirement.specifier
    return expected


def parse_conda_spec(line: str) -> tuple[str, SpecifierSet]:
    """Split a conda dependency such as ``"numpy >=1.26"`` into (name, constraints)."""
    match = CONDA_SPEC.match(line.strip())
    assert match, f"conda dependency {line!r}: expected 'name' or 'name <pip-style constraints>' (e.g. 'numpy >=1.26')"
    try:
        return canonicalize_name(match["name"]), SpecifierSet(match["spec"] or "")
    except InvalidSpecifier as exc:
        raise AssertionError(f"conda dependency {line!r} has constraints pip cannot read: {exc}") from exc


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(env, dict), f"{path.name}: expected a YAML mapping, found {type(env).__name__}"
    return env


def split_dependencies(env: dict) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of an environment."""
    conda, pip = [], []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            assert set(entry) == {"pip"}, f"only a 'pip:' sub-list may appear among dependencies, found {sorted(entry)}"
            pip.extend(entry["pip"])
        else:
            conda.append(entry)
    return conda, pip


def rule_blocks(path: Path) -> dict[str, str]:
    """Rule name -> the text of its body, for every ``rule``/``checkpoint`` in a Snakemake file."""
    text = path.read_text(encoding="utf-8")
    headers = list(RULE_HEADER.finditer(text))
    blocks = {}
    for header, following in zip(headers, [*headers[1:], None]):
        body = text[header.end() : following.start() if following else len(text)]
        # The body ends at the first non-blank line that is not indented.
        end = re.search(r"^\S", body, re.MULTILINE)
        blocks[header.group(1)] = body[: end.start()] if end else body
    return blocks


def directive(body: str, name: str) -> str | None:
    """The string value of a directive (``conda: "x"`` on one line or on the next), or None."""
    match = re.search(rf"^\s+{name}:\s*(?:\n\s*)?[\"']([^\"']+)[\"']", body, re.MULTILINE)
    return match.group(1) if match else None


def all_rules() -> dict[str, tuple[Path, str]]:
    rules = {}
    for path in RULE_FILES:
        for name, body in rule_blocks(path).items():
            assert name not in rules, f"rule {name} is defined twice ({rules[name][0].name}, {path.name})"
            rules[name] = (path, body)
    return rules


def test_there_is_at_least_one_environment():
    assert ENV_FILES, "expected conda environment files envs/*.yaml, found none"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_environment_file_is_a_valid_conda_environment(path):
    env = load_env(path)
    assert {"channels", "dependencies"} <= set(env), f"{path.name}: needs 'channels' and 'dependencies', has {sorted(env)}"
    assert set(env) <= ALLOWED_ENV_KEYS, f"{path.name}: unexpected keys {sorted(set(env) - ALLOWED_ENV_KEYS)}"
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"]), f"{path.name}: 'channels' must list channel names"
    assert "defaults" not in env["channels"], f"{path.name}: use conda-forge (and nodefaults), not the licensed 'defaults' channel"
    conda, pip = split_dependencies(env)
    names = [parse_conda_spec(line)[0] for line in conda]
    assert len(names) == len(set(names)), f"{path.name}: duplicated packages {sorted(n for n in names if names.count(n) > 1)}"
    if pip:
        assert "pip" in names, f"{path.name}: has a 'pip:' sub-list but does not install pip"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_environment_matches_pyproject(path):
    expected = expected_packages()
    conda, pip = split_dependencies(load_env(path))
    found = dict(parse_conda_spec(line) for line in conda)
    for name, spec in found.items():
        if name in CONDA_ONLY - {"python"}:
            continue
        assert name in expected, (
            f"{path.name}: {name} is not a dependency of pyproject.toml (or its conda name is missing from CONDA_NAME "
            f"in {Path(__file__).name}); add it to pyproject.toml or remove it from the environment"
        )
        assert spec == expected[name], f"{path.name}: {name} has constraints '{spec}', pyproject.toml says '{expected[name]}'"
    if SELF_INSTALL & {entry.strip() for entry in pip}:
        missing = sorted(set(expected) - set(found))
        assert not missing, (
            f"{path.name} installs islim with pip but lacks {missing}: pip would pull them from PyPI into the conda "
            "environment; list them as conda packages"
        )


def test_name_map_targets_are_real_pyproject_dependencies():
    """The explicit PyPI -> conda map stays relevant: every key is a current dependency."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dependencies = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    assert set(CONDA_NAME) <= dependencies, f"stale entries in CONDA_NAME: {sorted(set(CONDA_NAME) - dependencies)}"


def test_conda_spec_parser_on_hand_worked_examples():
    assert parse_conda_spec("numpy >=1.26") == ("numpy", SpecifierSet(">=1.26"))
    assert parse_conda_spec("snakemake-minimal >=9.27,<10") == ("snakemake-minimal", SpecifierSet("<10,>=9.27"))
    assert parse_conda_spec("pygments") == ("pygments", SpecifierSet())
    with pytest.raises(AssertionError, match="pip-style"):
        parse_conda_spec("numpy=1.26")  # conda's fuzzy '=' is not a pip operator


def test_rule_parser_on_a_hand_worked_example(tmp_path):
    path = tmp_path / "x.smk"
    path.write_text(
        'rule a:\n    output:\n        "a",\n    conda:\n        "../envs/a.yaml"\n    shell:\n        "touch {output}"\n\n\n'
        'x = 1\n\n\ncheckpoint b:\n    conda: "envs/b.yaml"\n    script:\n        "b.py"\n'
    )
    blocks = rule_blocks(path)
    assert sorted(blocks) == ["a", "b"]
    assert directive(blocks["a"], "conda") == "../envs/a.yaml"
    assert directive(blocks["b"], "conda") == "envs/b.yaml"
    assert directive(blocks["a"], "script") is None and "x = 1" not in blocks["a"]


@pytest.mark.workflow  # loads the workflow with Snakemake (a few seconds)
def test_regex_finds_exactly_the_rules_snakemake_sees():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = {line.strip() for line in result.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    assert listed == set(all_rules()), f"Snakemake lists {sorted(listed)}, the regex found {sorted(all_rules())}"


def test_every_rule_that_runs_code_declares_an_existing_conda_environment():
    rules = all_rules()
    runs_code = {
        name: (path, body) for name, (path, body) in rules.items() if any(re.search(rf"^\s+{a}:", body, re.MULTILINE) for a in ACTIONS)
    }
    assert runs_code, "expected rules with script:/shell:/run: actions, found none"
    for name, (path, body) in runs_code.items():
        env = directive(body, "conda")
        assert env, f"rule {name} ({path.name}) runs code but has no 'conda:' directive; add conda: \"../envs/<env>.yaml\""
        target = (path.parent / env).resolve()  # conda: paths are relative to the file that holds the rule
        assert target.is_file(), f"rule {name} ({path.name}): conda environment {env} does not exist (looked for {target})"
        assert target in {p.resolve() for p in ENV_FILES}, f"rule {name}: {env} is not under envs/"
