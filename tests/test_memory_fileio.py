"""Memory budget, atomic file writes and thread limits."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
import threadpoolctl
import torch

from islim import memory
from islim.errors import MemoryBudgetError
from islim.fileio import atomic_path, write_csv, write_json, write_text
from islim.memory import BUDGET_ENV, GIB, dense_bytes, ensure_fits, memory_budget, peak_rss_bytes
from islim.threads import _ENV_VARS, blas_description, limit_threads

# --- memory ---------------------------------------------------------------------------------------


def meminfo_kib(field: str) -> int:
    with open("/proc/meminfo", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def test_budget_argument_beats_environment_beats_available(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 123_456_789)
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert memory_budget() == 123_456_789
    monkeypatch.setenv(BUDGET_ENV, "1.5")
    assert memory_budget() == int(1.5 * GIB)
    assert memory_budget(4096) == 4096


def test_empty_environment_variable_falls_back_to_available(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 42)
    monkeypatch.setenv(BUDGET_ENV, "")
    assert memory_budget() == 42


def test_malformed_environment_budget_raises(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "eight")
    with pytest.raises(MemoryBudgetError, match=BUDGET_ENV):
        memory_budget()


def test_available_bytes_is_memavailable():
    found = memory.available_bytes()
    assert 0 < found <= meminfo_kib("MemTotal") * 1024
    assert abs(found - meminfo_kib("MemAvailable") * 1024) < 0.2 * meminfo_kib("MemTotal") * 1024


def test_ensure_fits_passes_and_fails_at_the_budget(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    ensure_fits(1000, "small", budget_bytes=1000)
    with pytest.raises(MemoryBudgetError, match=r"big thing needs an estimated 2\.00 GiB but the memory budget is 1\.00 GiB"):
        ensure_fits(2 * GIB, "big thing", budget_bytes=GIB)
    monkeypatch.setenv(BUDGET_ENV, "0.5")
    with pytest.raises(MemoryBudgetError, match=r"0\.50 GiB"):
        ensure_fits(GIB, "from the environment")


def test_dense_bytes_equals_numpy_nbytes():
    assert dense_bytes((20, 30), np.dtype(np.float32).itemsize) == np.empty((20, 30), np.float32).nbytes
    assert dense_bytes((20_108, 20_108), 4, copies=3) == 3 * 4 * 20_108**2


def test_peak_rss_agrees_with_the_kernel_high_water_mark():
    """``ru_maxrss`` and ``VmHWM`` are updated at slightly different moments: allow 5 %."""
    with open("/proc/self/status", encoding="ascii") as handle:
        hwm_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    assert peak_rss_bytes() == pytest.approx(hwm_kib * 1024, rel=0.05)


# --- atomic files ---------------------------------------------------------------------------------


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    final = tmp_path / "out" / "result.npz"
    with pytest.raises(RuntimeError):
        with atomic_path(final, suffix=".npz") as tmp:
            assert tmp.parent == final.parent and tmp.name.endswith(".npz")
            np.savez(tmp, x=np.arange(3))
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    final = tmp_path / "result.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_atomic_path_moves_the_file_into_place_with_umask_permissions(tmp_path):
    final = tmp_path / "result.txt"
    with atomic_path(final) as tmp:
        tmp.write_text("done")
    assert final.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o666 & ~umask


def test_write_json_content_is_sorted_and_rejects_nan(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"b": [1, 2.5], "a": {"z": None, "y": "text"}})
    text = path.read_text()
    assert json.loads(text) == {"a": {"y": "text", "z": None}, "b": [1, 2.5]}
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_write_text_and_write_csv(tmp_path):
    write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_csv(tmp_path / "f.csv", frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), frame)


# --- threads --------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads(monkeypatch):
    """Put BLAS/OpenMP pools, torch and the environment back after a test that limits them."""
    for var in _ENV_VARS:
        monkeypatch.setenv(var, os.environ.get(var, ""))
    pools = {info["user_api"]: info["num_threads"] for info in threadpoolctl.threadpool_info()}
    torch_threads = torch.get_num_threads()
    yield
    threadpoolctl.threadpool_limits(limits=pools)
    torch.set_num_threads(torch_threads)


def test_limit_threads_sets_blas_openmp_and_torch_to_one(restore_threads):
    np.ones((4, 4)) @ np.ones((4, 4))  # make sure a BLAS pool is loaded
    limit_threads(1)
    pools = threadpoolctl.threadpool_info()
    assert pools and all(info["num_threads"] == 1 for info in pools)
    assert torch.get_num_threads() == 1
    assert all(os.environ[var] == "1" for var in _ENV_VARS)
    assert all(entry["num_threads"] == "1" for entry in blas_description())


def test_limit_threads_clamps_to_at_least_one(restore_threads):
    limit_threads(0)
    assert all(info["num_threads"] == 1 for info in threadpoolctl.threadpool_info())
    assert torch.get_num_threads() == 1
