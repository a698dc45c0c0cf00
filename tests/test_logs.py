"""A job's log holds what a user needs and nothing else (issue 16, "Logs").

Each job runs in a fresh interpreter (as Snakemake runs a ``script:``), through the real
adapter or :func:`islim.jobs.job` with a fake ``snakemake`` object, and its log and streams are
read back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO, snakemake

#: Runs workflow_scripts/<argv[1]>.py with a fake ``snakemake`` object read from the JSON argv[2].
ADAPTER = textwrap.dedent(
    """
    import json, runpy, sys, types

    class Names(dict):  # Snakemake's named lists: attributes, and dict() of them
        __getattr__ = dict.__getitem__

    fields = json.loads(sys.argv[2])
    fake = types.SimpleNamespace(
        rule=fields["rule"], threads=1, config={}, resources={}, log=[fields["log"]], output=fields.get("output", []),
        wildcards=Names(fields.get("wildcards", {})), params=Names(fields.get("params", {})),
    )
    runpy.run_path(sys.argv[1], init_globals={"snakemake": fake}, run_name="__main__")
    """
)

#: Runs the job context around a body given as argv[2], with the log at argv[1].
BODY = textwrap.dedent(
    """
    import sys, types
    from islim.jobs import job
    fake = types.SimpleNamespace(rule="check", threads=1, config={}, resources={}, log=[sys.argv[1]], wildcards={})
    with job(fake):
        exec(sys.argv[2])
    """
)


def run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_figure_job_logs_no_fonttools_subsetting(tmp_path):
    """matplotlib's PDF backend subsets fonts through fontTools, which logged 55-110 INFO lines per figure."""
    log = tmp_path / "figure.log"
    body = textwrap.dedent(
        f"""
        from islim.plotting.style import new_figure, save_figure
        figure, axes = new_figure(4.0, 3.0, 1, 1)
        axes[0][0].plot([1, 2, 3], [3, 1, 2], label="Recall@20 ± s.e.")
        axes[0][0].set_title("ImplicitSLIM: αβγ 0123456789")
        axes[0][0].legend()
        save_figure(figure, {str(tmp_path / "figure")!r})
        """
    )
    result = run_child(BODY, str(log), body)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "figure.pdf").read_bytes().startswith(b"%PDF")
    text = log.read_text()
    assert "fontTools" not in text, text[:2000]
    assert [line.split(" ", 3)[2] for line in text.splitlines()] == ["INFO", "INFO"]  # the job's start and "done in"


def test_quieted_loggers_still_pass_warnings(tmp_path):
    log = tmp_path / "warn.log"
    body = "import logging; logging.getLogger('fontTools.subset').info('noise'); logging.getLogger('fontTools.ttLib').warning('kept')"
    assert run_child(BODY, str(log), body).returncode == 0
    text = log.read_text()
    assert "noise" not in text and "WARNING fontTools.ttLib: kept" in text


def test_a_failed_fetch_logs_its_message_once_and_no_traceback(tmp_path):
    """The real fetch adapter on a source that does not exist: exit status 1, the download error's
    message (with the data_mirror advice) once in the log, nothing on stderr to repeat it."""
    from islim.pipeline import fetch_parameters

    entry = {"kind": "movielens-tsv", "sources": [{"url": (tmp_path / "nowhere" / "u.data.zip").as_uri(), "member": "u.data"}]}
    log = tmp_path / "logs" / "fetch" / "broken.log"
    fields = {
        "rule": "fetch",
        "log": str(log),
        "output": [str(tmp_path / "data" / "raw" / "broken" / "manifest.json")],
        "wildcards": {"dataset": "broken"},
        "params": {"entry": fetch_parameters(entry), "mirror": None},
    }
    result = run_child(ADAPTER, str(REPO / "workflow_scripts" / "fetch.py"), json.dumps(fields))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "DownloadError" not in result.stderr, result.stderr
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("could not obtain a verified copy of dataset 'broken'") == 1
    assert "data_mirror" in text  # the advice the message gives
    assert "ERROR islim.job: rule fetch failed:" in text


def test_an_unexpected_error_is_logged_once_with_its_traceback(tmp_path):
    log = tmp_path / "bug.log"
    result = run_child(BODY, str(log), "def broken():\n    return {}['missing']\nbroken()")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("KeyError: 'missing'") == 1 and "in broken" in text
    assert "done in" not in text


@pytest.mark.workflow
def test_the_workflow_prints_no_empty_shell_commands(tmp_path):
    """printshellcmds made Snakemake print `Shell command: None` for every script rule."""
    result = snakemake(tmp_path, "--dry-run", "--cores", "2")
    assert result.returncode == 0, result.stderr
    assert "rule fetch:" in result.stdout
    assert "Shell command" not in result.stdout + result.stderr
    rules = "".join(path.read_text() for path in sorted(Path(REPO, "rules").glob("*.smk")))
    assert "shell:" not in rules  # with a shell rule, printshellcmds would be worth having again
