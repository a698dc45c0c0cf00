"""The import-linter contracts in ``pyproject.toml`` hold, and they can fail.

``test_import_contracts_are_kept`` runs ``lint-imports`` on the checkout. The other tests copy the
package's Python files into a temporary directory, add one forbidden import (or an unplaced
module) to the copy, and check that ``lint-imports`` run on the copy, with the same contracts,
reports exactly that violation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``lint-imports`` (from beside the running interpreter) on ``cwd``'s ``pyproject.toml``."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} not found: install the test extra (pip install -e '.[test]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_import_contracts_are_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, f"lint-imports failed:\n{done.stdout}\n{done.stderr}"
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    """A directory holding a copy of ``islim``'s ``.py`` files and the checkout's import-linter config."""
    base = tmp_path_factory.mktemp("layers")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert config["root_package"] == "islim"
    (base / "pyproject.toml").write_text(_importlinter_toml(config), encoding="utf-8")
    return base


def _importlinter_toml(config: dict) -> str:
    """``[tool.importlinter]`` (scalars and lists of strings only, as used here) written back as TOML."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[tool.importlinter]"]
    lines += [f"{key} = {value(v)}" for key, v in config.items() if key != "contracts"]
    for contract in config["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {value(v)}" for key, v in contract.items()]
    return "\n".join(lines) + "\n"


#: (file in the copy, text appended to it, what the report must contain)
VIOLATIONS = {
    "back-import": (
        "linalg.py",
        "\nimport islim.models  # noqa\n",
        ["islim.linalg is not allowed to import islim.models", "islim.linalg -> islim.models"],
    ),
    "independent-siblings": ("gram.py", "\n\ndef _f():\n    from islim import spmm  # noqa\n", ["islim.gram -> islim.spmm", "BROKEN"]),
    "snakemake": ("config.py", "\n\ndef _f():\n    import snakemake  # noqa\n", ["islim.config -> snakemake", "BROKEN"]),
    "unplaced-module": (
        "unplaced_module.py",
        '"""A new top-level module the layers do not name."""\n',
        ["islim.unplaced_module", "not listed as layers"],
    ),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_violation_in_a_copy_of_the_package_breaks_the_contracts(case, package_copy, tmp_path):
    filename, addition, expected = VIOLATIONS[case]
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(package_copy / "pyproject.toml", work / "pyproject.toml")
    shutil.copytree(ROOT / "islim", work / "islim", ignore=_not_python)
    with open(work / "islim" / filename, "a", encoding="utf-8") as handle:
        handle.write(addition)
    env = {**os.environ, "PYTHONPATH": str(work)}  # the copy, not the installed checkout
    done = lint_imports(work, env)
    report = done.stdout + done.stderr
    assert done.returncode != 0, f"lint-imports accepted the {case} violation:\n{report}"
    for text in expected:
        assert text in report, f"{text!r} not in the lint-imports report:\n{report}"


def _not_python(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree`` filter: keep directories and ``.py`` files only."""
    return {name for name in names if not name.endswith(".py") and not (Path(directory) / name).is_dir() or name == "__pycache__"}
