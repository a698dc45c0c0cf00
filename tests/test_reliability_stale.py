"""Stale inputs: an edited custom data file is fetched again, and everything made from it reruns.

A ``kind: custom`` dataset with a local ``path`` is read in place. The file is an input of the
``fetch`` rule, whose params also hold its size and modification time, so that any edit (same
size or not, a newer or an older modification time) fetches it again; the manifest then records
the new sha256, and the split, the results and ``reports/summary/provenance.csv`` follow it. The
split step itself refuses a file whose sha256 is no longer the manifest's (e.g. via the CLI).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from islim import pipeline
from islim.errors import IntegrityError
from tests.workflow_helpers import snakemake, write_tiny_config

#: A small custom dataset: 60 users with 6–12 of 40 items, 5 held-out users per part.
ENTRY = {"kind": "custom", "user_col": "user", "item_col": "item", "heldout_users": 5, "min_user_interactions": 0}


def write_interactions(path: Path) -> Path:
    """60 users ``u00``..``u59`` with 6–12 items ``i00``..``i39`` each (seeded); ids of 3 characters."""
    rng = np.random.default_rng(3)
    rows = [(f"u{user:02d}", f"i{item:02d}") for user in range(60) for item in rng.choice(40, size=rng.integers(6, 13), replace=False)]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
    return path


def rename_item(path: Path, old: str, new: str) -> None:
    """Rename an item everywhere in the file: same size, other content."""
    assert len(old) == len(new)
    text = path.read_text(encoding="utf-8")
    assert f",{old}\n" in text
    path.write_text(text.replace(f",{old}\n", f",{new}\n"), encoding="utf-8")


def test_the_split_refuses_a_file_edited_since_it_was_fetched(tmp_path):
    data = write_interactions(tmp_path / "mine.csv")
    entry = ENTRY | {"path": str(data)}
    manifest = pipeline.fetch("mine", entry, tmp_path / "raw", progress=False)
    rename_item(data, "i00", "i99")
    assert data.stat().st_size == manifest["size"]
    with pytest.raises(IntegrityError) as caught:
        pipeline.prepare("mine", entry, tmp_path / "raw" / "manifest.json", tmp_path / "processed")
    message = str(caught.value)
    assert message.startswith(f"{data.resolve()} is missing or changed since it was fetched (its size or sha256 differs from")
    assert "fetch it again (`islim fetch mine`" in message
    assert not (tmp_path / "processed").exists()


def provenance_sha256(directory: Path) -> str:
    table = pd.read_csv(directory / "reports" / "summary" / "provenance.csv")
    return table.loc[(table["kind"] == "data") & (table["name"] == "mine"), "value"].item()


def vocabulary(directory: Path) -> set[str]:
    return set(pd.read_csv(directory / "data" / "processed" / "mine" / "items.csv", dtype=str)["item_id"])


@pytest.mark.workflow
def test_an_edited_custom_file_reruns_the_fetch_the_split_and_the_results(tmp_path):
    data = write_interactions(tmp_path / "mine.csv")
    configfile = write_tiny_config(
        tmp_path,
        {
            "run_datasets": ["mine"],
            "datasets": {"mine": ENTRY | {"path": str(data)}},
            "ablations": {"activate": False},
            "training": {"activate": False},
        },
    )
    work = tmp_path / "work"
    targets = ["results/mine/metrics.csv", "reports/summary/provenance.csv"]

    def run() -> str:
        result = snakemake(work, "--cores", "2", *targets, configfile=configfile, timeout=1200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout + result.stderr

    def sha256() -> str:
        return hashlib.sha256(data.read_bytes()).hexdigest()

    run()
    first = sha256()
    assert provenance_sha256(work) == first and "i00" in vocabulary(work)
    assert "Nothing to be done" in run()  # nothing changed: the file's size and mtime are the same

    # Same size, new content, newer modification time.
    rename_item(data, "i00", "i99")
    log = run()
    assert "rule fetch:" in log and "rule split:" in log and "rule ease:" in log
    assert provenance_sha256(work) == sha256() != first
    assert "i99" in vocabulary(work) and "i00" not in vocabulary(work)

    # New content put in place with an older modification time (as `cp -p` or `rsync -t` do).
    before = data.stat()
    rename_item(data, "i01", "i98")
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns - 10**12))
    log = run()
    assert "rule fetch:" in log and "rule split:" in log
    assert provenance_sha256(work) == sha256() and "i98" in vocabulary(work)
