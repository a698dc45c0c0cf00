"""Running one workflow job: its log file, its thread budget and its memory budget.

``workflow_scripts/*.py`` wrap their single library call in :func:`job` so that every rule logs
to its ``log:`` file (tracebacks included), uses no more compute threads than its ``threads:``,
and honours the configured memory budget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from islim.memory import BUDGET_ENV
from islim.threads import limit_threads


@contextlib.contextmanager
def job(snakemake: Any) -> Iterator[logging.Logger]:
    """Context for a Snakemake ``script:`` job (the ``snakemake`` object it receives).

    Redirects stdout/stderr (progress bars included) and the ``logging`` root to ``log[0]``, limits
    threads to ``snakemake.threads``, exports the memory budget, and logs any exception before
    re-raising it so Snakemake marks the job failed.
    """
    log_path = snakemake.log[0]
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with (
        open(log_path, "w", encoding="utf-8", buffering=1) as stream,
        contextlib.redirect_stderr(stream),
        contextlib.redirect_stdout(stream),
    ):
        logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        logger = logging.getLogger("islim.job")
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
        except BaseException:
            logger.exception("job failed")
            raise
        logger.info("done in %.2f s", time.perf_counter() - start)
    sys.stderr.flush()
