"""Shared fixtures: the small real datasets in ``../shared/data`` and their prepared splits.

The data sits beside the checkout (``<checkout>/../shared/data``); it is read from there and never
copied into the repository. Tests that need it are skipped when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from islim.data.readers import read_interactions
from islim.data.split import Split, prepare

#: Property-based tests: a fixed example sequence (derandomized), few enough examples for CI, no
#: per-example deadline (timings vary on shared machines).
settings.register_profile("islim", max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True)
settings.load_profile("islim")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ML_SMALL_RATINGS = SHARED_DATA / "ml-latest-small" / "ratings.csv"
LASTFM_USER_ARTISTS = SHARED_DATA / "hetrec2011-lastfm-2k" / "user_artists.dat"

#: The ML-20M preprocessing applied to ml-latest-small (protocol §2, H = 60).
ML_SMALL_ENTRY = {"kind": "movielens-csv", "threshold": 3.5, "min_user_interactions": 5, "heldout_users": 60}

#: Last.fm 2K play counts as a user's own triplets file (binarised, no threshold).
LASTFM_ENTRY = {
    "kind": "custom",
    "path": str(LASTFM_USER_ARTISTS),
    "format": "tsv",
    "user_col": "userID",
    "item_col": "artistID",
    "rating_col": "weight",
    "threshold": None,
    "min_user_interactions": 5,
    "heldout_users": 0.1,
}


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared test data {path} is not available")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of small real datasets beside the checkout."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml_small_entry() -> dict:
    """A copy of the ml-latest-small registry entry used by the fixtures."""
    return dict(ML_SMALL_ENTRY)


@pytest.fixture(scope="session")
def lastfm_entry() -> dict:
    """A copy of the Last.fm 2K custom-dataset entry used by the fixtures."""
    return dict(LASTFM_ENTRY)


@pytest.fixture(scope="session")
def ml_small_path() -> Path:
    return _require(ML_SMALL_RATINGS)


@pytest.fixture(scope="session")
def ml_small_frame(ml_small_path) -> pd.DataFrame:
    """ml-latest-small ``ratings.csv`` read by the library (columns user, item, rating). Do not mutate."""
    return read_interactions(ml_small_path, {"kind": "movielens-csv"})


@pytest.fixture(scope="session")
def ml_small_split(ml_small_frame) -> Split:
    """ml-latest-small prepared with threshold 3.5, ≥ 5 interactions per user, 60 held-out users."""
    return prepare(ml_small_frame, ML_SMALL_ENTRY, "ml-latest-small")


@pytest.fixture(scope="session")
def lastfm_path() -> Path:
    return _require(LASTFM_USER_ARTISTS)


@pytest.fixture(scope="session")
def lastfm_frame(lastfm_path) -> pd.DataFrame:
    """Last.fm 2K ``user_artists.dat`` read as a custom TSV triplets file. Do not mutate."""
    return read_interactions(lastfm_path, LASTFM_ENTRY)


@pytest.fixture(scope="session")
def lastfm_split(lastfm_frame) -> Split:
    return prepare(lastfm_frame, LASTFM_ENTRY, "lastfm-2k")


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run a module's small torch trainings on one intra-op thread (restored afterwards): on a
    loaded machine, thread-pool contention makes tiny models many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
