"""Cost of EASE, SLIM-LLE and ImplicitSLIM against the number of items, on this machine.

Usage::

    python -m benchmarks.bench_scaling [--items 1000 2000 4000 8000] [--explicit-max-items 4000]
        [--d 64] [--threads 2] [--out results/summary/scaling.csv]

The same measurement as the workflow's opt-in target ``snakemake scaling`` (``islim.scaling``:
synthetic matrices of 7·I users and 500·I ones by default, each method in a fresh forked child on
``--threads`` threads; sizes not given come from config ``report.scaling``'s defaults). Writes
the CSV and, beside it, ``<stem>.json`` (machine, BLAS libraries, date), then prints the fitted
log-log slopes (those of the report figure's legend).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from islim.scaling import default_settings, write_scaling
from islim.slopes import fitted_slopes


def main() -> None:
    defaults = default_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=defaults["items"])
    parser.add_argument("--explicit-max-items", type=int, default=defaults["explicit_max_items"])
    parser.add_argument("--d", type=int, default=defaults["d"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/summary/scaling.csv"))
    args = parser.parse_args()
    settings = {"items": args.items, "explicit_max_items": args.explicit_max_items, "d": args.d}
    table = write_scaling(settings, args.threads, args.out, args.out.with_suffix(".json"), log=lambda line: print(line, flush=True))
    for row in fitted_slopes(table).itertuples(index=False):
        print(f"{row.method}: time ~ I^{row.time_slope:.2f} (largest two: {row.time_slope_largest:.2f}), memory ~ I^{row.memory_slope:.2f}")
    print("written", args.out, "and", args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
