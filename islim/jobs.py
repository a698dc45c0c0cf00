"""Running one workflow job: its log file, its thread budget and its memory budget.

``workflow_scripts/*.py`` wrap their single library call in :func:`job` so that every rule logs
to its ``log:`` file, uses no more compute threads than its ``threads:``, and honours the
configured memory budget. A failure is written to the log once (islim's own errors as their
message, anything else with its traceback) and the job exits with status 1, so Snakemake marks
it failed and, with ``show-failed-logs``, shows that log: nothing else repeats it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from islim.errors import IslimError
from islim.memory import BUDGET_ENV
from islim.threads import limit_threads

#: Libraries whose INFO records say nothing a user of the workflow needs, with the level kept.
#: fontTools: matplotlib's PDF backend subsets every embedded font through it, logging dozens of
#: INFO lines per figure.
QUIET_LOGGERS = {"fontTools": logging.WARNING}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Exit status of a failed job (its error is already in the log).
FAILED = 1


def quiet_libraries() -> None:
    """Raise the level of :data:`QUIET_LOGGERS` (the job log and the ``islim`` command line)."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def configure_logging(stream: Any) -> logging.Logger:
    """Send the ``logging`` root (INFO and above) to ``stream``, quiet :data:`QUIET_LOGGERS`, and
    return the job's logger ``islim.job``."""
    logging.basicConfig(stream=stream, level=logging.INFO, format=LOG_FORMAT, force=True)
    quiet_libraries()
    return logging.getLogger("islim.job")


def log_failure(logger: logging.Logger, rule: str, error: BaseException) -> None:
    """Write a failed job's error once: an :class:`~islim.errors.IslimError` (which says what is
    wrong and what to do) as its message, anything else (a bug) with its traceback."""
    if isinstance(error, IslimError):
        logger.error("rule %s failed: %s", rule, error)
    else:
        logger.error("rule %s failed with an unexpected %s", rule, type(error).__name__, exc_info=error)


@contextlib.contextmanager
def job(snakemake: Any) -> Iterator[logging.Logger]:
    """Context for a Snakemake ``script:`` job (the ``snakemake`` object it receives).

    Redirects stdout/stderr (progress bars included) and the ``logging`` root to ``log[0]``, limits
    threads to ``snakemake.threads`` and exports the memory budget. An exception raised inside is
    logged by :func:`log_failure` and ends the process with status :data:`FAILED` (a
    :class:`SystemExit`, which Python does not print again); an interrupt is logged and re-raised.
    """
    log_path = snakemake.log[0]
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with (
        open(log_path, "w", encoding="utf-8", buffering=1) as stream,
        contextlib.redirect_stderr(stream),
        contextlib.redirect_stdout(stream),
    ):
        logger = configure_logging(stream)
        budget = snakemake.config.get("memory_budget_gb")
        if not budget and os.environ.get("SLURM_JOB_ID") and snakemake.resources.get("mem_mb"):
            # In a cluster job "available memory" is the node's, not the job's allocation.
            budget = snakemake.resources["mem_mb"] / 1024
        if budget:
            os.environ[BUDGET_ENV] = str(budget)
        limit_threads(snakemake.threads)
        logger.info("rule %s, wildcards %s, threads %d", snakemake.rule, dict(snakemake.wildcards), snakemake.threads)
        start = time.perf_counter()
        try:
            yield logger
        except KeyboardInterrupt:
            logger.error("rule %s interrupted after %.2f s", snakemake.rule, time.perf_counter() - start)
            raise
        except Exception as error:  # every failure is logged once, then the job exits
            log_failure(logger, snakemake.rule, error)
            failed = True
        else:
            failed = False
            logger.info("done in %.2f s", time.perf_counter() - start)
    sys.stderr.flush()
    if failed:
        raise SystemExit(FAILED)
