"""Code hashes from the import graph (islim.codehash) and the rules' `params: code=` values."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from islim.codehash import code_hash, reachable_modules

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.stem for path in (REPO / "workflow_scripts").glob("*.py"))
#: Scripts that draw report figures (one per figure, or one for all of them).
FIGURE_SCRIPTS = [script for script in SCRIPTS if script == "figure" or script.startswith("plot_")]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch(path: Path) -> None:
    """Append a comment: new bytes, same behaviour."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("# touched\n")


# --- a small fake package --------------------------------------------------------------------

FAKE = {
    "pkg/__init__.py": '"""fake"""\n',
    "pkg/a.py": "import pkg.b\n\ndef f():\n    from pkg import lazy\n    return lazy\n",
    "pkg/b.py": '"""Not an import: :mod:`pkg.unused`, pkg.unused."""\nX = 1\n',
    "pkg/registry.py": 'import importlib\nSPECS = {"x": "pkg.plugins.x:Thing", "np": "numpy.linalg"}\n',
    "pkg/plugins/__init__.py": "",
    # literals with a loader function: they are imports of the loader, not of the data's readers
    "pkg/loading.py": (
        "import importlib\n"
        'SPECS = {"y": ("Y", "pkg.plugins.y:Other")}\n'
        "def load(name):\n    module, _, attr = SPECS[name][1].partition(':')\n    return getattr(importlib.import_module(module), attr)\n"
    ),
    "pkg/plugins/y.py": "class Other: ...\n",
    "pkg/plugins/x.py": "class Thing: ...\n",
    "pkg/lazy.py": "def g():\n    import pkg.deeper.inner\n",
    "pkg/deeper/__init__.py": "",
    "pkg/deeper/inner.py": "",
    "pkg/sub/__init__.py": "from pkg.sub.base import BASE\n",
    "pkg/sub/base.py": "BASE = 0\n",
    "pkg/sub/leaf.py": "from . import sibling\nfrom ..b import X\n",
    "pkg/sub/sibling.py": "from .. import data\n",
    "pkg/data.py": 'PACKAGE_DATA = ("res/table.csv",)\n',
    "pkg/res/table.csv": "a,b\n1,2\n",
    "pkg/res/other.csv": "unused\n",
    "pkg/unused.py": "import pkg.b\n",
    "scripts/direct.py": "import pkg.b\n",
    "scripts/transitive.py": "from pkg.a import f\n",
    "scripts/from_package.py": "from pkg.sub import leaf\n",
    "scripts/lazy_only.py": "def main():\n    from pkg.lazy import g\n    g()\n",
    "scripts/outside.py": "import json\nimport numpy\nfrom . import nothing\n",
    "scripts/registry_user.py": "from pkg.registry import SPECS\n",
    "scripts/spec_reader.py": "from pkg.loading import SPECS\nprint(SPECS['y'][0])\n",
    "scripts/spec_loader.py": "from pkg.loading import load\nload('y')\n",
    # one module, several steps: a script reaches the lazy imports of the functions it can call only
    "pkg/steps.py": (
        "from pkg.b import X\n"
        "def fetch():\n    from pkg import fetched\n    return helper()\n"
        "def helper():\n    from pkg import helped\n"
        "def sweep():\n    from pkg import swept\n"
        "def make():\n    from pkg import made\n"
        "def with_default(x=make()):\n    from pkg import defaulted\n"
        "@decorate\ndef registered():\n    from pkg import decorated\n"
        "class Model:\n    def fit(self):\n        from pkg import fitted\n"
        "def _unused():\n    import pkg.never\n"
    ),
    **{f"pkg/{name}.py": "" for name in ("fetched", "helped", "swept", "made", "defaulted", "decorated", "fitted", "never")},
    "scripts/only_fetch.py": "from pkg.steps import fetch\nfetch()\n",
    "scripts/only_sweep.py": "def main():\n    from pkg.steps import sweep\n",
    "scripts/whole_steps.py": "import pkg.steps\n",
    "scripts/steps_from_package.py": "from pkg import steps\n",
}

#: What any script importing pkg/steps.py reaches in it.
STEPS = ("pkg/steps.py", "pkg/made.py", "pkg/decorated.py", "pkg/fitted.py")

#: What each fake script reaches (paths relative to the package's parent).
FAKE_REACH = {
    "direct": {"pkg/__init__.py", "pkg/b.py"},
    "transitive": {"pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/lazy.py", "pkg/deeper/__init__.py", "pkg/deeper/inner.py"},
    "from_package": {
        "pkg/__init__.py",
        "pkg/sub/__init__.py",
        "pkg/sub/base.py",
        "pkg/sub/leaf.py",
        "pkg/sub/sibling.py",
        "pkg/b.py",
        "pkg/data.py",
        "pkg/res/table.csv",
    },
    "lazy_only": {"pkg/__init__.py", "pkg/lazy.py", "pkg/deeper/__init__.py", "pkg/deeper/inner.py"},
    "outside": set(),
    # a registry naming "module:Class" strings for importlib.import_module
    "registry_user": {"pkg/__init__.py", "pkg/registry.py", "pkg/plugins/__init__.py", "pkg/plugins/x.py"},
    # a module with a loader: reading its names reaches no plugin, calling the loader does
    "spec_reader": {"pkg/__init__.py", "pkg/loading.py"},
    "spec_loader": {"pkg/__init__.py", "pkg/loading.py", "pkg/plugins/__init__.py", "pkg/plugins/y.py"},
    # steps.py runs make() (a default value), keeps the decorated function and the class; fetch
    # calls helper; sweep and _unused are not called
    "only_fetch": {"pkg/__init__.py", "pkg/b.py", *STEPS, "pkg/fetched.py", "pkg/helped.py"},
    "only_sweep": {"pkg/__init__.py", "pkg/b.py", *STEPS, "pkg/swept.py"},
    # the module as a whole: m.anything may be called
    "whole_steps": {"pkg/__init__.py", "pkg/b.py", *STEPS, *(f"pkg/{n}.py" for n in ("fetched", "helped", "swept", "defaulted", "never"))},
    "steps_from_package": {
        "pkg/__init__.py",
        "pkg/b.py",
        *STEPS,
        *(f"pkg/{n}.py" for n in ("fetched", "helped", "swept", "defaulted", "never")),
    },
}


@pytest.fixture
def fake(tmp_path):
    for name, text in FAKE.items():
        write(tmp_path / name, text)
    return tmp_path


def reach(script: Path, package: Path) -> set[str]:
    return {path.relative_to(package.resolve().parent).as_posix() for path in reachable_modules(script, package)}


@pytest.mark.parametrize("script", sorted(FAKE_REACH))
def test_fake_scripts_reach_exactly_their_imports(fake, script):
    assert reach(fake / "scripts" / f"{script}.py", fake / "pkg") == FAKE_REACH[script]


@pytest.mark.parametrize("changed", sorted(name for name in FAKE if name.startswith("pkg/")))
def test_touching_a_file_changes_exactly_the_hashes_of_the_scripts_reaching_it(fake, changed):
    before = {script: code_hash(fake / "scripts" / f"{script}.py", fake / "pkg") for script in FAKE_REACH}
    touch(fake / changed)
    after = {script: code_hash(fake / "scripts" / f"{script}.py", fake / "pkg") for script in FAKE_REACH}
    assert {script for script in FAKE_REACH if before[script] != after[script]} == {
        script for script, files in FAKE_REACH.items() if changed in files
    }


def test_hash_is_16_hex_digits_and_independent_of_where_the_tree_lies(fake, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(fake, elsewhere, dirs_exist_ok=True)
    for script in FAKE_REACH:
        digest = code_hash(fake / "scripts" / f"{script}.py", fake / "pkg")
        assert re.fullmatch(r"[0-9a-f]{16}", digest)
        assert code_hash(elsewhere / "scripts" / f"{script}.py", elsewhere / "pkg") == digest


def test_a_renamed_module_changes_the_hash_even_with_the_same_bytes(fake):
    before = code_hash(fake / "scripts" / "direct.py", fake / "pkg")
    (fake / "pkg" / "b.py").rename(fake / "pkg" / "c.py")
    write(fake / "scripts" / "direct.py", "import pkg.c\n")
    assert code_hash(fake / "scripts" / "direct.py", fake / "pkg") != before


def test_a_declared_data_file_that_does_not_exist_is_an_error(fake):
    write(fake / "pkg" / "data.py", 'PACKAGE_DATA = ("res/missing.csv",)\n')
    with pytest.raises(FileNotFoundError, match="res/missing.csv"):
        reachable_modules(fake / "scripts" / "from_package.py", fake / "pkg")


def test_package_data_must_be_string_literals(fake):
    write(fake / "pkg" / "data.py", 'NAME = "res/table.csv"\nPACKAGE_DATA = (NAME,)\n')
    with pytest.raises(ValueError, match="PACKAGE_DATA must be a tuple of string literals"):
        reachable_modules(fake / "scripts" / "from_package.py", fake / "pkg")


def test_package_data_accepts_glob_patterns(fake):
    write(fake / "pkg" / "data.py", 'PACKAGE_DATA: tuple[str, ...] = ("res/*.csv",)\n')
    assert {"pkg/res/table.csv", "pkg/res/other.csv"} <= reach(fake / "scripts" / "from_package.py", fake / "pkg")


# --- the real repository ---------------------------------------------------------------------


@pytest.fixture
def repo_copy(tmp_path):
    """A copy of islim/ and workflow_scripts/ (edits here never touch the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "islim", tmp_path / "islim", ignore=ignore)
    shutil.copytree(REPO / "workflow_scripts", tmp_path / "workflow_scripts", ignore=ignore)
    return tmp_path


def repo_hashes(root: Path) -> dict[str, str]:
    return {script: code_hash(root / "workflow_scripts" / f"{script}.py", root / "islim") for script in SCRIPTS}


def test_real_scripts_reach_the_modules_they_run_and_their_data():
    reaches = {script: reach(REPO / "workflow_scripts" / f"{script}.py", REPO / "islim") for script in SCRIPTS}
    # The modules the hand-kept list of the ablation rules used to miss.
    assert {"islim/gram.py", "islim/data/split.py", "islim/__init__.py", "islim/embeddings/__init__.py"} <= reaches["ablation_cell"]
    # The model registry names its classes as "module:Class" strings (imported on first use).
    assert {"islim/models/registry.py", "islim/models/linear.py", "islim/models/deep/trainer.py"} <= reaches["train_point"]
    # Lazy imports inside pipeline.ease_point, two levels down.
    assert {"islim/models/ease.py", "islim/gram.py", "islim/evaluate.py", "islim/metrics.py"} <= reaches["ease_point"]
    # The selections read the points' files: no model's code reruns them.
    assert not {"islim/models/linear.py", "islim/models/ease.py", "islim/models/deep/estimator.py"} & (reaches["train"] | reaches["ease"])
    assert "islim/reference/published.csv" in reaches["results_table"]
    assert FIGURE_SCRIPTS and all("islim/plotting/style.py" in reaches[script] for script in FIGURE_SCRIPTS)
    assert "islim/plotting/style.py" not in reaches["train_point"]
    assert not any(path.startswith("islim/models/deep/") for path in reaches["ease"] | reaches["ease_point"])
    assert all("islim/cli.py" not in files for files in reaches.values())


def test_touching_any_real_module_changes_exactly_the_hashes_of_the_scripts_reaching_it(repo_copy):
    reaches = {script: reach(repo_copy / "workflow_scripts" / f"{script}.py", repo_copy / "islim") for script in SCRIPTS}
    files = sorted(path.relative_to(repo_copy).as_posix() for path in (repo_copy / "islim").rglob("*") if path.is_file())
    assert "islim/reference/published.csv" in files and "islim/cli.py" in files
    before = repo_hashes(repo_copy)
    for one in SCRIPTS:  # the same hash exactly for the same reach
        assert {other for other in SCRIPTS if before[other] == before[one]} == {
            other for other in SCRIPTS if reaches[other] == reaches[one]
        }
    reached_by_none = []
    for name in files:
        touch(repo_copy / name)
        after = repo_hashes(repo_copy)
        changed = {script for script in SCRIPTS if after[script] != before[script]}
        assert changed == {script for script in SCRIPTS if name in reaches[script]}, name
        if not changed:
            reached_by_none.append(name)
        before = after
    assert "islim/cli.py" in reached_by_none  # a module no script imports changes no hash


def test_every_islim_module_a_script_imports_at_run_time_is_in_its_reach():
    """Execute each script's top-level islim imports (fresh process per script, forked) and compare
    sys.modules with the static reach (which must be a superset: it also holds the lazy imports)."""
    probe = """
import ast, json, os, sys
import numpy, pandas, scipy.sparse  # shared by all children (imported once, before the forks)
result = {}
for script in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        tree = ast.parse(open(script).read())
        nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(nodes, []), script, "exec"), {})
        files = sorted(m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "islim" and getattr(m, "__file__", None))
        os.write(write, json.dumps(files).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as stream:
        result[script] = json.loads(stream.read() or "null")
    os.wait()
print(json.dumps(result))
"""
    scripts = [str(REPO / "workflow_scripts" / f"{script}.py") for script in SCRIPTS]
    done = subprocess.run([sys.executable, "-c", probe, *scripts], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    for script in scripts:
        assert imported[script], f"{script}: the probe imported no islim module"
        loaded = {Path(path).resolve() for path in imported[script]}
        assert loaded <= set(reachable_modules(Path(script), REPO / "islim")), script


# --- the rules' code params ------------------------------------------------------------------


def rule_scripts() -> dict[str, str | None]:
    """rule name -> stem of its `script:` (None for rules without one), from rules/*.smk."""
    rules = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=(?:rule|checkpoint) \w+:)", path.read_text(encoding="utf-8"))[1:]:
            name = re.match(r"(?:rule|checkpoint) (\w+):", block).group(1)
            script = re.search(r'script:\s*\n\s*"\.\./workflow_scripts/(\w+)\.py"', block)
            rules[name] = script.group(1) if script else None
            code = re.findall(r"^\s+code=(.*),$", block, re.MULTILINE)
            assert code == ([f'code("{script.group(1)}")'] if script else []), f"{path.name}: rule {name}"
    return rules


def test_every_rule_with_a_script_passes_that_scripts_code_hash():
    rules = rule_scripts()
    assert {"fetch", "split", "ease", "ablation_cell", "ablation_reference", "train", "aggregate", "results_table"} <= set(rules)
    assert set(filter(None, rules.values())) == set(SCRIPTS)  # every script is some rule's


def rules_changed_by(repo_copy: Path, name: str) -> set[str]:
    rules = rule_scripts()
    before = repo_hashes(repo_copy)
    touch(repo_copy / name)
    after = repo_hashes(repo_copy)
    return {rule for rule, script in rules.items() if script and before[script] != after[script]}


@pytest.mark.workflow
def test_a_gram_change_reruns_the_rules_whose_scripts_reach_it(repo_copy):
    reaching = {
        rule
        for rule, script in rule_scripts().items()
        if script and "islim/gram.py" in reach(repo_copy / "workflow_scripts" / f"{script}.py", repo_copy / "islim")
    }
    changed = rules_changed_by(repo_copy, "islim/gram.py")
    assert changed == reaching
    # The rules that run gram.py's code, and rules that cannot depend on it. fetch and split share
    # islim/pipeline.py with ease_sweep, but not the functions whose lazy imports reach gram.py.
    assert {"ease_point", "ablation_cell", "ablation_reference", "train_point"} <= changed
    # The model registry's "module:Class" strings count only for scripts that load classes
    # (islim.models.registry.model_class), not for those reading names and styles.
    assert not changed & {"fetch", "split", "aggregate", "provenance", "results_table"}
    # Also in `changed`: ablation_table and the ablation seed rules (islim.ablations imports
    # islim.embeddings at module level; their inputs change with the cells anyway); figure (the
    # ablation grid reads the paper cells' styles from islim.embeddings.registry, whose package
    # imports the extraction code); scaling_measure (it times the extraction).
    assert changed == {
        "ease_point",
        "ablation_cell",
        "ablation_reference",
        "ablation_reference_seed",
        "ablation_seed_mean",
        "ablation_table",
        "train_point",
        "figure",
        "scaling_measure",
    }


@pytest.mark.workflow
def test_a_plot_style_change_reruns_only_figure_rules(repo_copy):
    figure_rules = {rule for rule, script in rule_scripts().items() if script in FIGURE_SCRIPTS}
    assert figure_rules and rules_changed_by(repo_copy, "islim/plotting/style.py") == figure_rules


@pytest.mark.workflow
def test_a_published_numbers_change_reruns_only_the_results_tables(repo_copy):
    assert rules_changed_by(repo_copy, "islim/reference/published.csv") == {"results_table"}
