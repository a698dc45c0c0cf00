"""Cluster execution: the SLURM profiles, and (CI only) the tiny workflow on a real SLURM cluster.

The end-to-end tests start a throw-away single-node cluster (tests/slurm/slurm-up.sh: slurmctld,
slurmd and munged on this machine, as root), build the EASE run record of the tiny configuration's
synthetic dataset (fetch -> split -> ease) through ``--profile profiles/slurm-ci``, check that every
non-local job went through sbatch with the resources Snakemake planned, and compare the record with
a local run of the same target.
They start daemons and write /etc/slurm/slurm.conf, so they only run where ``CI=true``,
``ISLIM_SLURM_TEST=1`` and the user is root; the daemons are stopped in every case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from islim.models.deep.estimator import TorchRecommender
from islim.models.registry import MODELS, model_class
from tests.workflow_helpers import REPO, snakemake, write_tiny_config

#: The deep (torch) models: the ones that train on a GPU when they get one.
DEEP_MODELS = {name for name, spec in MODELS.items() if issubclass(model_class(name), TorchRecommender)}

SLURM_SCRIPTS = REPO / "tests" / "slurm"
USER_PROFILE = REPO / "profiles" / "slurm"
CI_PROFILE = REPO / "profiles" / "slurm-ci"
DATASET = "synthetic-tiny"
# One model's run record: the data chain plus one model, whatever else the workflow grows. (It
# goes after an option: the helper's --configfile takes every plain argument that follows it.)
TARGET = f"results/{DATASET}/runs/ease.json"
RUN_TIMEOUT_S = 600
SLURM_DEFAULT_MIN_JOB_AGE_S = 300

E2E_ENABLED = os.environ.get("CI") == "true" and os.environ.get("ISLIM_SLURM_TEST") == "1" and os.geteuid() == 0
skip_unless_ci_root = pytest.mark.skipif(
    not E2E_ENABLED, reason="starts SLURM daemons as root: only with CI=true, ISLIM_SLURM_TEST=1 and uid 0"
)


def needs_cluster(test):
    """Mark an end-to-end test: one of the workflow tests, skipped unless CI runs it as root."""
    return pytest.mark.workflow(skip_unless_ci_root(test))


needs_plugin = pytest.mark.skipif(
    find_spec("snakemake_executor_plugin_slurm") is None, reason="needs the 'slurm' extra: pip install -e '.[slurm]'"
)

SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", re.MULTILINE)
RUN_ID = re.compile(r"^SLURM run ID: (\S+)$", re.MULTILINE)
JOB_HEADER = re.compile(r"^(localrule|rule) (\w+):$")


def load_profile(directory: Path) -> dict:
    return yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))


def min_job_age_of_ci_cluster() -> int:
    """MinJobAge (seconds) in the CI cluster's slurm.conf template."""
    match = re.search(r"^MinJobAge=(\d+)$", (SLURM_SCRIPTS / "slurm.conf.in").read_text(), re.MULTILINE)
    assert match, "tests/slurm/slurm.conf.in must set MinJobAge (squeue-based polling depends on it)"
    return int(match.group(1))


def planned_jobs(log: str) -> dict[int, dict]:
    """Snakemake job id -> {"rule", "local", and the indented fields} from a Snakemake run's output.

    Snakemake prints every job it starts as ``rule NAME:`` (``localrule NAME:`` when it runs in the
    main process) followed by indented ``key: value`` lines (jobid, wildcards, threads, resources).
    """
    jobs, current = {}, None
    for line in log.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            current = {"rule": header.group(2), "local": header.group(1) == "localrule"}
        elif current is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
            if key == "jobid":
                jobs[int(value)] = current
        else:
            current = None
    return jobs


def submissions(log: str) -> dict[int, tuple[str, Path]]:
    """Snakemake job id -> (SLURM job id, SLURM log file) for every job submitted with sbatch."""
    return {int(job): (slurm_id, Path(path)) for job, slurm_id, path in SUBMITTED.findall(log)}


def key_values(text: str) -> dict[str, str]:
    """Snakemake's ``"mem_mb=1025, runtime=120"`` (resources, wildcards) -> {"mem_mb": "1025", "runtime": "120"}."""
    return dict(item.split("=", 1) for item in text.split(", ") if item)


def scontrol_job(slurm_id: str) -> dict[str, str]:
    """The fields of ``scontrol show job -o ID`` (one line of ``Key=Value``)."""
    result = subprocess.run(["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"scontrol does not know SLURM job {slurm_id}: {result.stderr}"
    return dict(re.findall(r"(\S+?)=(\S*)", result.stdout))


def slurm_minutes(limit: str) -> int:
    """A SLURM time limit ``[D-]HH:MM:SS`` in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + minutes + round(seconds / 60)


def slurm_megabytes(memory: str) -> int:
    """A SLURM memory size such as ``1025M`` or ``2G`` in MB (SLURM's M is MiB, as Snakemake's mem_mb is here)."""
    scale = {"M": 1, "G": 1024, "T": 1024**2}
    return int(float(memory[:-1]) * scale[memory[-1]])


# ---------------------------------------------------------------------------- profiles (always run)


def test_output_parsers_on_hand_worked_examples():
    log = (
        "rule ease:\n    jobid: 2\n    wildcards: dataset=x\n    threads: 2\n"
        "    resources: tmpdir=<TBD>, mem_mb=1025, runtime=120\nShell command: None\n"
        "localrule fetch:\n    jobid: 4\n"
    )
    assert planned_jobs(log) == {
        2: {
            "rule": "ease",
            "local": False,
            "jobid": "2",
            "wildcards": "dataset=x",
            "threads": "2",
            "resources": "tmpdir=<TBD>, mem_mb=1025, runtime=120",
        },
        4: {"rule": "fetch", "local": True, "jobid": "4"},
    }
    assert key_values("tmpdir=<TBD>, mem_mb=1025") == {"tmpdir": "<TBD>", "mem_mb": "1025"} and key_values("") == {}
    assert slurm_minutes("02:00:00") == 120 and slurm_minutes("1-00:05:00") == 1445
    assert slurm_megabytes("1025M") == 1025 and slurm_megabytes("2G") == 2048
    assert submissions("Job 3 has been submitted with SLURM jobid 17 (log: /w/.snakemake/slurm_logs/rule_a/17.log).") == {
        3: ("17", Path("/w/.snakemake/slurm_logs/rule_a/17.log"))
    }


def test_ci_cluster_keeps_finished_jobs_long_enough_for_squeue_polling():
    """The plugin silently falls back to sacct (which hangs without slurmdbd) below 3 x the initial interval."""
    profile = load_profile(CI_PROFILE)
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= min_job_age_of_ci_cluster()


def test_user_profile_polls_safely_under_slurm_default_min_job_age():
    profile = load_profile(USER_PROFILE)
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= SLURM_DEFAULT_MIN_JOB_AGE_S
    assert profile["retries"] >= 1, "rules scale mem_mb with `attempt`: retries give them more memory"


@pytest.mark.workflow
@needs_plugin
def test_user_profile_dry_run_plans_every_job_with_placeholders_and_gpus_for_deep_models(tmp_path):
    assert {"multvae", "recvae", "hvamp"} <= DEEP_MODELS
    config = write_tiny_config(tmp_path, {"run_datasets": [DATASET]})
    result = snakemake(tmp_path, "--dry-run", "--profile", str(USER_PROFILE), configfile=config, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = [job for job in planned_jobs(result.stdout + result.stderr).values() if job["rule"] != "all"]
    assert {"fetch", "split", "ease"} <= {job["rule"] for job in jobs}
    for job in jobs:
        resources = key_values(job["resources"])
        assert resources["slurm_account"] == "<your-account>"
        assert resources["runtime"].isdigit() and int(resources["runtime"]) > 0, f"{job['rule']} has no runtime"
        model = key_values(job.get("wildcards", "")).get("model")
        wants_gpu = job["rule"] == "train_point" and model in DEEP_MODELS
        assert resources.get("gpu", "0") == ("1" if wants_gpu else "0"), f"{job['rule']} {model}: gpu={resources.get('gpu')}"
        expected_partition = "<your-gpu-partition>" if wants_gpu else "<your-partition>"
        assert resources["slurm_partition"] == expected_partition, f"{job['rule']} {model}"


# ------------------------------------------------------------------ end to end on SLURM (CI only)


def run_script(name: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SLURM_SCRIPTS / name)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A single-node SLURM cluster for the module's tests; always torn down, also when start-up fails."""
    try:
        up = run_script("slurm-up.sh")
        assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stdout}\n{up.stderr}"
        yield
    finally:
        down = run_script("slurm-down.sh")
        assert down.returncode == 0, f"slurm-down.sh failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    directory = tmp_path_factory.mktemp("slurm_run")
    config = write_tiny_config(directory, {"run_datasets": [DATASET]})
    start = time.monotonic()
    result = snakemake(directory, "--profile", str(CI_PROFILE), TARGET, configfile=config, timeout=RUN_TIMEOUT_S)
    wall_s = time.monotonic() - start
    print(f"SLURM run of {TARGET}: {wall_s:.1f} s")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return directory, result.stdout + result.stderr


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("local_run")
    config = write_tiny_config(directory, {"run_datasets": [DATASET]})
    result = snakemake(directory, "--cores", "2", TARGET, configfile=config, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return directory


@needs_cluster
def test_every_cluster_job_went_through_sbatch_and_local_rules_did_not(slurm_run):
    _, log = slurm_run
    jobs, submitted = planned_jobs(log), submissions(log)
    assert submitted, "no 'submitted with SLURM jobid' line in Snakemake's output"
    cluster_jobs = {jobid for jobid, job in jobs.items() if not job["local"] and job["rule"] != "all"}
    assert set(submitted) == cluster_jobs, f"submitted {sorted(submitted)}, expected the non-local jobs {sorted(cluster_jobs)}"
    assert {"split", "ease_point"} <= {jobs[jobid]["rule"] for jobid in submitted}, "the heavy rules must run on the cluster"
    print("SLURM job ids:", {jobs[j]["rule"]: slurm_id for j, (slurm_id, _) in submitted.items()})


@needs_cluster
def test_slurm_ran_each_job_in_the_run_directory_with_the_planned_resources(slurm_run):
    directory, log = slurm_run
    run_id = RUN_ID.search(log).group(1)
    jobs = planned_jobs(log)
    for jobid, (slurm_id, slurm_log) in submissions(log).items():
        job, record = jobs[jobid], scontrol_job(slurm_id)
        resources = key_values(job["resources"])
        assert record["JobState"] == "COMPLETED", f"SLURM job {slurm_id} ({job['rule']}): {record['JobState']}"
        assert record["JobName"] == run_id and Path(record["WorkDir"]) == directory
        # The plugin's comment names the rule and its wildcards (dataset first, then e.g. a grid point).
        assert record["Comment"].startswith(f"rule_{job['rule']}_wildcards_{DATASET}")
        assert int(record["CPUs/Task"]) == int(job.get("threads", 1)), "threads -> --cpus-per-task"
        assert slurm_megabytes(record["MinMemoryNode"]) == int(resources["mem_mb"]), "mem_mb -> --mem"
        assert slurm_minutes(record["TimeLimit"]) == int(resources["runtime"]), "runtime -> --time"
        assert f"Finished jobid: 0 (Rule: {job['rule']})" in slurm_log.read_text(), f"job step log {slurm_log}"


@needs_cluster
def test_slurm_run_gives_the_same_results_as_a_local_run(slurm_run, local_run):
    slurm_dir, _ = slurm_run
    on_slurm, local = (json.loads((d / TARGET).read_text()) for d in (slurm_dir, local_run))
    for key in ("dataset", "model", "params", "n_users", "metrics", "extra"):
        assert on_slurm[key] == local[key], f"run record field {key!r} differs between SLURM and local runs"
