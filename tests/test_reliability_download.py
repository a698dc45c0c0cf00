"""Download faults against a local HTTP server: streams cut mid-file, HTTP errors, bad checksums
and a bad mirror copy.

Expected bytes and digests are computed independently (hashlib on the fabricated content); the
server records every request's Range header so that resumption is observed, not assumed.
"""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import pytest

import islim.download as dl
import islim.download.transfer as dl_transfer
from islim.errors import DownloadError, IntegrityError
from tests.test_download import ROWS, leftovers, sha256, zip_bytes

PAYLOAD = ROWS * 40  # ~ 40 KB, so that a cut lands well inside the file


class FaultyServer:
    """Serves ``files`` on 127.0.0.1; each path's behaviour is set in ``modes``.

    Modes: ``"ok"``; ``"cut"`` (the first response announces the full length but stops after
    ``cut_at`` bytes and drops the connection; later requests honour ``Range`` with 206);
    ``"cut-no-range"`` (as ``cut`` but ranges are ignored: 200 and the whole file);
    ``"cut-always"`` (every response is cut, ranges are ignored); an integer
    HTTP status (sent with an empty body).
    """

    def __init__(self, cut_at: int = 10_000):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, object] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_at = cut_at
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                mode = server.modes.get(self.path, "ok")
                if isinstance(mode, int):
                    self.send_error(mode)
                    return
                data = server.files[self.path]
                first = sum(1 for path, _ in server.requests if path == self.path) == 1
                if (mode in ("cut", "cut-no-range") and first) or mode == "cut-always":
                    self._send(200, data, len(data), cut=server.cut_at)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and mode == "cut":
                    start = int(match.group(1))
                    self._send(206, data[start:], len(data) - start, content_range=f"bytes {start}-{len(data) - 1}/{len(data)}")
                    return
                self._send(200, data, len(data))

            def _send(self, status, body, length, cut=None, content_range=None):
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                if content_range:
                    self.send_header("Content-Range", content_range)
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
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
