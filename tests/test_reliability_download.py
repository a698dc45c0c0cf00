"""Download faults against a local HTTP server: streams cut mid-file (with and without a
Content-Length), bodies that hang or drip, HTTP errors, bad checksums, a bad mirror copy, and the
``.part`` files of killed runs.

Expected bytes and digests are computed independently (hashlib on the fabricated content); the
server records every request's Range header so that resumption is observed, not assumed. Deadlines,
throughput windows and read timeouts are set to fractions of a second so that every case is fast.
"""

from __future__ import annotations

import fcntl
import http.server
import logging
import os
import re
import threading
import time
from pathlib import Path

import pytest

import islim.download as dl
import islim.download.transfer as dl_transfer
from islim.errors import ConfigError, DownloadError, IntegrityError
from tests.test_download import ROWS, leftovers, sha256, tar_bytes, zip_bytes

PAYLOAD = ROWS * 40  # ~ 40 KB, so that a cut lands well inside the file


class FaultyServer:
    """Serves ``files`` on 127.0.0.1; each path's behaviour is set in ``modes``.

    Modes: ``"ok"``; ``"ranges"`` (honours ``Range`` with 206 on every request); ``"cut"`` (the
    first response announces the full length but stops after ``cut_at`` bytes and drops the
    connection; later requests honour ``Range`` with 206); ``"cut-no-range"`` (as ``cut`` but
    ranges are ignored: 200 and the whole file); ``"cut-always"`` (every response is cut, ranges
    are ignored); ``"cut-no-length"`` (no Content-Length, ``cut_at`` bytes, then the connection is
    closed: to the client, a complete body); ``"hang"`` (no Content-Length, ``cut_at`` bytes, then
    silence until the server closes); ``("drip", n, interval)`` (announces the full length, then
    sends ``n`` bytes every ``interval`` seconds); an integer HTTP status (sent with an empty body).
    Handlers that wait give up when the server closes, and after 10 s in any case.
    """

    def __init__(self, cut_at: int = 10_000):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, object] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_at = cut_at
        self.closing = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                mode = server.modes.get(self.path, "ok")
                if isinstance(mode, int):
                    self.send_error(mode)
                    return
                data = server.files[self.path]
                try:
                    self._serve(mode, data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: as intended
                    pass

            def _serve(self, mode, data):
                first = sum(1 for path, _ in server.requests if path == self.path) == 1
                if (mode in ("cut", "cut-no-range") and first) or mode == "cut-always":
                    self._send(200, data, len(data), cut=server.cut_at)
                    return
                if mode in ("cut-no-length", "hang"):
                    self._send(200, data, None, cut=server.cut_at)
                    if mode == "hang":
                        server.closing.wait(timeout=10)
                    return
                if isinstance(mode, tuple) and mode[0] == "drip":
                    self._drip(data, *mode[1:])
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and mode in ("cut", "ranges"):
                    start = int(match.group(1))
                    self._send(206, data[start:], len(data) - start, content_range=f"bytes {start}-{len(data) - 1}/{len(data)}")
                    return
                self._send(200, data, len(data))

            def _send(self, status, body, length, cut=None, content_range=None):
                self.send_response(status)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                if content_range:
                    self.send_header("Content-Range", content_range)
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

            def _drip(self, data, n, interval):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                deadline = time.monotonic() + 10
                for start in range(0, len(data), n):
                    if server.closing.is_set() or time.monotonic() > deadline:
                        break
                    self.wfile.write(data[start : start + n])
                    self.wfile.flush()
                    time.sleep(interval)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def put(self, path: str, data: bytes, mode: object = "ok") -> str:
        self.files[path], self.modes[path] = data, mode
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.requests if p == path]

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(monkeypatch, request):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = FaultyServer()
    request.addfinalizer(srv.close)
    return srv


@pytest.fixture
def raw_dir(tmp_path) -> Path:
    return tmp_path / "raw"


# ------------------------------------------------------------------ a stream cut mid-file


def test_cut_download_is_resumed_with_a_range_request(server, raw_dir):
    url = server.put("/ratings.tsv", PAYLOAD, "cut")
    path = dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(sha256=sha256(PAYLOAD)), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/ratings.tsv") == [None, f"bytes={server.cut_at}-"]
    assert not leftovers(raw_dir)


def test_cut_download_restarts_cleanly_when_ranges_are_ignored(server, raw_dir):
    url = server.put("/ratings.tsv", PAYLOAD, "cut-no-range")
    path = dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(size=len(PAYLOAD), sha256=sha256(PAYLOAD)), progress=False)
    assert path.read_bytes() == PAYLOAD  # not the first 10 kB twice
    assert server.ranges("/ratings.tsv") == [None, f"bytes={server.cut_at}-"]


def test_cut_archive_is_resumed_inside_fetch_and_its_member_extracted(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": PAYLOAD})
    server.cut_at = len(archive) // 2
    source = {
        "url": server.put("/ds.zip", archive, "cut"),
        "sha256": sha256(archive),
        "member": "ds/ratings.tsv",
        "member_sha256": sha256(PAYLOAD),
    }
    assert dl.fetch("toy", [source], raw_dir, progress=False).read_bytes() == PAYLOAD
    assert (raw_dir / "ds.zip").read_bytes() == archive
    assert len(server.ranges("/ds.zip")) == 2


def test_a_download_cut_on_every_request_gives_up_after_max_attempts(server, raw_dir, monkeypatch):
    monkeypatch.setattr(dl_transfer, "MAX_ATTEMPTS", 3)
    url = server.put("/ratings.tsv", PAYLOAD, "cut-always")
    with pytest.raises(IntegrityError, match=rf"{len(PAYLOAD)} bytes announced, {server.cut_at} received after 3 request"):
        dl.download_file(url, raw_dir / "ratings.tsv", progress=False)
    assert len(server.ranges("/ratings.tsv")) == 3
    assert list(raw_dir.iterdir()) == []  # a truncated copy is not kept


# ------------------------------------------------------------------ HTTP errors


def test_500_then_404_then_good_source_is_used_in_order(server, raw_dir):
    first = {"url": server.put("/a/ratings.tsv", b"", 500), "sha256": sha256(PAYLOAD)}
    second = {"url": server.put("/b/ratings.tsv", b"", 404), "sha256": sha256(PAYLOAD)}
    third = {"url": server.put("/c/ratings.tsv", PAYLOAD), "sha256": sha256(PAYLOAD)}
    assert dl.fetch("toy", [first, second, third], raw_dir, progress=False).read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/a/ratings.tsv", "/b/ratings.tsv", "/c/ratings.tsv"]


def test_every_source_failing_lists_each_source_and_its_reason(server, raw_dir):
    sources = [
        {"url": server.put("/a/ratings.tsv", b"", 500), "sha256": sha256(PAYLOAD)},
        {"url": server.put("/b/ratings.tsv", b"", 404), "sha256": sha256(PAYLOAD)},
        {"url": server.put("/c/ratings.tsv", PAYLOAD[:-1] + b"?"), "sha256": sha256(PAYLOAD)},
    ]
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", sources, raw_dir, progress=False)
    lines = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 3
    for line, source, reason in zip(lines, sources, ("HTTP Error 500", "HTTP Error 404", "sha256 mismatch")):
        assert source["url"] in line and reason in line
    assert "data_mirror" in str(caught.value)


# ------------------------------------------------------------------ wrong checksum


def test_wrong_checksum_keeps_the_bad_copy_aside_and_says_where(server, raw_dir):
    url = server.put("/ratings.tsv", PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(IntegrityError) as caught:
        dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(sha256=wrong), progress=False)
    bad = raw_dir / "ratings.tsv.bad"
    assert not (raw_dir / "ratings.tsv").exists()
    assert bad.read_bytes() == PAYLOAD
    assert str(bad) in str(caught.value) and sha256(PAYLOAD) in str(caught.value) and wrong in str(caught.value)
    assert not leftovers(raw_dir)


def test_a_later_good_download_leaves_the_final_file_and_replaces_nothing_else(server, raw_dir):
    url = server.put("/ratings.tsv", PAYLOAD[:100])
    with pytest.raises(IntegrityError):
        dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(sha256=sha256(PAYLOAD)), progress=False)
    server.put("/ratings.tsv", PAYLOAD)
    dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(sha256=sha256(PAYLOAD)), progress=False)
    assert (raw_dir / "ratings.tsv").read_bytes() == PAYLOAD
    assert (raw_dir / "ratings.tsv.bad").read_bytes() == PAYLOAD[:100]  # still there to inspect


# ------------------------------------------------------------------ mirror with a file of the wrong size


def test_mirror_archive_of_the_wrong_size_is_refused_and_the_network_used(server, raw_dir, tmp_path):
    archive = zip_bytes({"ds/ratings.tsv": PAYLOAD})
    source = {"url": server.put("/ds.zip", archive), "size": len(archive), "sha256": sha256(archive), "member": "ds/ratings.tsv"}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ds.zip").write_bytes(archive[:-7])
    assert dl.fetch("toy", [source], raw_dir, mirror=mirror, progress=False).read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/ds.zip"]
    assert (mirror / "ds.zip").read_bytes() == archive[:-7]  # the mirror is never modified


def test_mirror_file_of_the_wrong_size_is_named_in_the_error_when_nothing_else_works(server, raw_dir, tmp_path):
    source = {"url": server.put("/ratings.tsv", b"", 503), "size": len(PAYLOAD), "sha256": sha256(PAYLOAD)}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ratings.tsv").write_bytes(PAYLOAD + b"extra\n")
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, mirror=mirror, progress=False)
    message = str(caught.value)
    assert f"mirror {mirror / 'ratings.tsv'}" in message
    assert f"more than the expected {len(PAYLOAD)} bytes" in message and "HTTP Error 503" in message
    assert not (raw_dir / "ratings.tsv").exists() and not leftovers(raw_dir)


# ------------------------------------------------------------------ bodies that cannot be told complete, hang or drip


def member_only_source(url: str) -> dict:
    """A source like ml-latest-small's: nothing about the archive itself, the member's sha256 pinned."""
    return {"url": url, "member": "ds/ratings.tsv", "member_sha256": sha256(PAYLOAD)}


@pytest.fixture
def fast_timeouts(monkeypatch):
    """A silent connection is given up after 0.3 s, and a download tries twice."""
    monkeypatch.setattr(dl_transfer, "TIMEOUT_S", 0.3)
    monkeypatch.setattr(dl_transfer, "MAX_ATTEMPTS", 2)


def test_zip_cut_without_content_length_is_checked_through_its_member_and_never_reaches_the_final_path(server, raw_dir):
    archive = zip_bytes({"ds/ratings.tsv": PAYLOAD, "ds/README": os.urandom(4000)})
    server.cut_at = len(archive) // 2
    source = member_only_source(server.put("/ds.zip", archive, "cut-no-length"))
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, progress=False)
    message = str(caught.value)
    cause = f"the server sent no Content-Length and the source gives no size or digest of the download, so a stream cut short cannot be told from a complete one; this copy ({server.cut_at} bytes) failed the checks that could be made, so it is most likely truncated"
    assert f"{source['url']}: DataFormatError: ds.zip from {source['url']}: {cause}: " in message  # the cause first, then the check
    assert sorted(p.name for p in raw_dir.iterdir()) == ["ds.zip.bad"]  # no archive, no member, no .part
    assert (raw_dir / "ds.zip.bad").read_bytes() == archive[: server.cut_at]


def test_tar_gz_cut_after_its_member_without_content_length_is_read_to_its_end_and_refused(server, raw_dir):
    archive = tar_bytes([("ds/ratings.tsv", PAYLOAD), ("ds/README", os.urandom(20_000))])
    server.cut_at = len(archive) - 100  # the member is whole and verifies; the archive is not
    source = member_only_source(server.put("/ds.tar.gz", archive, "cut-no-length"))
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, progress=False)
    message = str(caught.value)
    assert source["url"] in message and "ends early" in message and "most likely truncated" in message
    assert sorted(p.name for p in raw_dir.iterdir()) == ["ds.tar.gz.bad"]


def test_a_download_nothing_can_check_says_so(server, raw_dir, caplog):
    url = server.put("/ratings.tsv", PAYLOAD, "cut-no-length")
    with caplog.at_level(logging.WARNING, logger="islim.download"):
        path = dl.download_file(url, raw_dir / "ratings.tsv", progress=False)
    assert path.read_bytes() == PAYLOAD[: server.cut_at]  # indistinguishable from a complete body ...
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert url in warning and "cannot be told from a complete one" in warning and "accepted unverified" in warning  # ... and said so


def test_a_body_that_hangs_leaves_nothing_and_the_error_names_the_stall(server, raw_dir, fast_timeouts):
    archive = zip_bytes({"ds/ratings.tsv": PAYLOAD, "ds/README": os.urandom(4000)})
    server.cut_at = len(archive) // 2
    source = member_only_source(server.put("/ds.zip", archive, "hang"))
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert source["url"] in message and "no data for 0.3 s" in message
    assert f"broke off on each of 2 request(s), the last after {server.cut_at} bytes" in message
    assert list(raw_dir.iterdir()) == []  # nothing at the final path, no .part, no 0-byte file


def test_a_dripping_server_is_given_up_below_the_minimum_throughput(server, raw_dir):
    source = {
        "url": server.put("/ratings.tsv", PAYLOAD, ("drip", 100, 0.05)),  # 2 kB/s
        "sha256": sha256(PAYLOAD),
        "min_bytes_per_s": 10_000,
        "throughput_window_s": 0.25,
    }
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert source["url"] in message and "too slow" in message
    assert "min_bytes_per_s = 10000 averaged over its throughput_window_s = 0.25 s" in message
    assert list(raw_dir.iterdir()) == []


def test_a_steady_but_slow_download_is_given_up_at_its_deadline(server, raw_dir):
    source = {
        "url": server.put("/ratings.tsv", PAYLOAD, ("drip", 2000, 0.05)),  # 40 kB/s: 1 s for the file
        "sha256": sha256(PAYLOAD),
        "deadline_s": 0.3,
        "min_bytes_per_s": 1000,
        "throughput_window_s": 0.1,
    }
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        dl.fetch("toy", [source], raw_dir, progress=False)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert source["url"] in message and "not complete within the source's deadline_s = 0.3 s" in message
    assert list(raw_dir.iterdir()) == []


def test_transfer_limits_are_validated_and_default_to_hours_and_kilobytes(tmp_path):
    assert dl.parse_source({"url": "https://x/a.zip"}).limits == dl.Limits(deadline_s=43200, min_bytes_per_s=4096, throughput_window_s=120)
    assert dl.parse_source({"url": "https://x/a.zip", "deadline_s": 1.5}).limits.deadline_s == 1.5
    for key, value in (("deadline_s", 0), ("min_bytes_per_s", -1), ("throughput_window_s", 0), ("deadline_s", "1h")):
        with pytest.raises(ConfigError, match=f"field '{key}'"):
            dl.parse_source({"url": "https://x/a.zip", key: value})


# ------------------------------------------------------------------ .part files of killed runs


def test_the_part_file_of_a_killed_run_is_resumed(server, raw_dir):
    raw_dir.mkdir()
    (raw_dir / "ratings.tsv.part").write_bytes(PAYLOAD[:10_000])
    url = server.put("/ratings.tsv", PAYLOAD, "ranges")
    path = dl.download_file(url, raw_dir / "ratings.tsv", dl.Expected(sha256=sha256(PAYLOAD)), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges("/ratings.tsv") == ["bytes=10000-"]
    assert not leftovers(raw_dir)


def test_leftovers_of_killed_runs_that_cannot_be_checked_are_removed(server, raw_dir):
    raw_dir.mkdir()
    (raw_dir / "ratings.tsv.part").write_bytes(b"stale bytes of another version\n")
    (raw_dir / ".ratings.tsv.k3x9_q7z.part").write_bytes(b"a temporary file of an older islim\n")
    url = server.put("/ratings.tsv", PAYLOAD, "ranges")
    assert dl.download_file(url, raw_dir / "ratings.tsv", progress=False).read_bytes() == PAYLOAD
    assert server.ranges("/ratings.tsv") == [None]  # nothing to check a resumed copy with: started over
    assert not leftovers(raw_dir)


def test_a_part_file_another_process_is_writing_is_left_alone(server, raw_dir):
    raw_dir.mkdir()
    held = raw_dir / "ratings.tsv.part"
    held.write_bytes(b"in progress")
    url = server.put("/ratings.tsv", PAYLOAD)
    with open(held, "rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process's lock (flock locks are per open file)
        with pytest.raises(DownloadError, match=r"ratings\.tsv\.part is being written by another process"):
            dl.download_file(url, raw_dir / "ratings.tsv", progress=False)
    assert held.read_bytes() == b"in progress" and not (raw_dir / "ratings.tsv").exists()
    assert server.requests == []
