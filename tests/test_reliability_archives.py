"""Hostile archives, zip and tar: escaping paths, links and decompression bombs are refused with a
clear message, and nothing is written outside (or, for refusals, inside) the target directory.

(Plain ``../`` members and links requested by name are covered in ``test_download.py``.)
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

import islim.archive as archive_module
import islim.download as dl
from islim.archive import open_member
from islim.errors import DataFormatError, DownloadError
from tests.test_download import ROWS, sha256, tar_bytes, zip_bytes

BOMB_BYTES = 24 * 2**20  # above RATIO_FLOOR_BYTES; zeros compress about 1000x


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def build(kind: str, members: list[tuple[str, bytes]]) -> bytes:
    return zip_bytes(dict(members)) if kind == "zip" else tar_bytes(members, mode="w:gz")


def read_member(path: Path, member: str, dest: Path) -> bytes:
    with open_member(path, member, dest) as (stream, _):
        return stream.read()


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


# ------------------------------------------------------------------ escaping member names


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("name", ["/tmp/islim-evil.txt", "ds/../../evil.txt", "./../evil.txt"])
def test_absolute_and_escaping_members_are_refused(tmp_path, kind, name):
    path = write(tmp_path / f"evil.{kind}", build(kind, [(name, b"owned\n")]))
    with pytest.raises(DataFormatError, match=r"refusing archive member .*outside the extraction directory"):
        read_member(path, name, tmp_path / "raw")
    assert not Path("/tmp/islim-evil.txt").exists() and not (tmp_path / "evil.txt").exists()


# ------------------------------------------------------------------ links pointing out of the target


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_fetching_a_link_member_fails_and_creates_no_link(tmp_path, kind):
    data = tar_bytes([link("ds/ratings.tsv", "/etc/passwd", kind)], mode="w:gz")
    source = {"url": str(write(tmp_path / "ds.tar.gz", data)), "member": "ds/ratings.tsv"}
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError, match="expected a regular file"):
        dl.fetch("toy", [source], raw, progress=False)
    assert files_under(raw) == ["ds.tar.gz.bad"]  # the rejected download only, no link, no member


def test_links_beside_the_wanted_member_are_never_materialised(tmp_path):
    members = [
        link("ds/passwd", "/etc/passwd", tarfile.SYMTYPE),
        link("ds/hard", "../../etc/shadow", tarfile.LNKTYPE),
        ("ds/ratings.tsv", ROWS),
    ]
    source = {"url": str(write(tmp_path / "ds.tar.gz", tar_bytes(members))), "member": "ds/ratings.tsv", "member_sha256": sha256(ROWS)}
    raw = tmp_path / "raw"
    assert dl.fetch("toy", [source], raw, progress=False).read_bytes() == ROWS
    assert files_under(raw) == ["ds.tar.gz", "ratings.tsv"]


def test_zip_symlink_pointing_out_is_refused_by_fetch(tmp_path):
    info = zipfile.ZipInfo("ds/ratings.tsv")
    info.external_attr = 0o120777 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(info, "../../../etc/passwd")
    source = {"url": str(write(tmp_path / "ds.zip", buffer.getvalue())), "member": "ds/ratings.tsv"}
    with pytest.raises(DownloadError, match="symbolic link"):
        dl.fetch("toy", [source], tmp_path / "raw", progress=False)
    assert files_under(tmp_path / "raw") == ["ds.zip.bad"]


# ------------------------------------------------------------------ decompression bombs


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_bomb_member_is_refused_before_decompression(tmp_path, kind):
    path = write(tmp_path / f"bomb.{kind}", build(kind, [("ds/ratings.tsv", bytes(BOMB_BYTES))]))
    assert path.stat().st_size * archive_module.MAX_RATIO < BOMB_BYTES  # really a bomb by the limit
    with pytest.raises(DataFormatError) as caught:
        read_member(path, "ds/ratings.tsv", tmp_path / "raw")
    message = str(caught.value)
    expanded = int(re.search(r"would decompress to ([\d,]+) bytes", message).group(1).replace(",", ""))
    assert BOMB_BYTES <= expanded <= BOMB_BYTES + 1024  # the member (tar: plus its 512-byte header)
    assert "decompression bomb" in message and "trusted copy" in message


def test_a_tar_bomb_before_the_wanted_member_is_refused_by_its_name(tmp_path):
    path = write(tmp_path / "bomb.tar.gz", tar_bytes([("pad", bytes(BOMB_BYTES)), ("ds/ratings.tsv", ROWS)]))
    with pytest.raises(DataFormatError, match=r"refusing member 'pad'"):
        read_member(path, "ds/ratings.tsv", tmp_path / "raw")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_bomb_fetched_as_a_source_leaves_no_member(tmp_path, kind):
    path = write(tmp_path / f"bomb.{kind}", build(kind, [("ds/ratings.tsv", bytes(BOMB_BYTES))]))
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError, match="decompression bomb"):
        dl.fetch("toy", [{"url": str(path), "member": "ds/ratings.tsv"}], raw, progress=False)
    assert not (raw / "ratings.tsv").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_total_size_limit_applies_whatever_the_ratio(tmp_path, kind, monkeypatch):
    path = write(tmp_path / f"ok.{kind}", build(kind, [("ds/ratings.tsv", ROWS)]))
    assert read_member(path, "ds/ratings.tsv", tmp_path) == ROWS  # within the default limits
    monkeypatch.setattr(archive_module, "MAX_EXPANDED_BYTES", len(ROWS) - 1)
    with pytest.raises(DataFormatError, match=f"the limits are {len(ROWS) - 1:,} bytes"):
        read_member(path, "ds/ratings.tsv", tmp_path)


def test_small_highly_compressible_members_are_accepted(tmp_path):
    zeros = bytes(archive_module.RATIO_FLOOR_BYTES)  # ratio ~1000, but not above the floor
    path = write(tmp_path / "zeros.zip", zip_bytes({"ds/ratings.tsv": zeros}))
    assert read_member(path, "ds/ratings.tsv", tmp_path) == zeros
