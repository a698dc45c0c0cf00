"""Names that become paths: a dataset name is one safe path component, so that no dataset writes
outside its own folders (``data/raw/<name>``, ``results/<name>``, ``reports/<name>``).

The configuration is refused, naming the key and what a dataset name may be, by the CLI's
validation and by the workflow before any job runs.
"""

from __future__ import annotations

import copy

import pytest

from islim.config import load_config, validate_config
from islim.errors import ConfigError
from tests.workflow_helpers import REPO, snakemake, write_tiny_config

#: Names that are not a folder of their own: the parent and the current folder, a hidden folder,
#: and the folders of reports/ and results/ that hold every dataset's summary and benchmarks.
UNSAFE = ["..", ".", ".hidden", "summary", "benchmarks"]


def renamed(config: dict, old: str, new: str) -> dict:
    """``config`` with dataset ``old`` renamed ``new`` and run alone."""
    config = copy.deepcopy(config)
    config["datasets"][new] = config["datasets"].pop(old)
    config["run_datasets"] = [new]
    return config


@pytest.mark.parametrize("name", UNSAFE)
def test_a_dataset_name_that_is_not_its_own_folder_is_refused(name):
    with pytest.raises(ConfigError) as caught:
        validate_config(renamed(load_config(REPO / "config.yaml"), "ml-100k", name))
    message = str(caught.value)
    for key in ("datasets", "run_datasets/0"):
        assert f"  - {key}: {name!r} does not match" in message
    assert "(expected: a dataset name: one path component of letters, digits, '_', '.' and '-' that does not start with '.'" in message
    assert "rename a dataset whose name is not" in message


@pytest.mark.workflow
def test_the_workflow_refuses_a_dataset_named_dot_dot_before_running_anything(tmp_path):
    config = renamed(load_config(REPO / "config.yaml"), "ml-100k", "..")
    configfile = write_tiny_config(tmp_path, {"run_datasets": config["run_datasets"], "datasets": {"..": config["datasets"][".."]}})
    result = snakemake(tmp_path / "work", "-n", "--cores", "1", configfile=configfile, timeout=600)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "'..' does not match" in output and "a dataset name: one path component" in output
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "runs").exists()
