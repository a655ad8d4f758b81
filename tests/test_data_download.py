"""Downloader against a loopback HTTP server on 127.0.0.1 (no external network)."""

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mqlrec.data import DataError
from mqlrec.data.download import AMAZON_2018_CATEGORIES, amazon_2018_urls, download

PAYLOAD = bytes(range(256)) * 1500 + b"tail"  # ~384 KB: several read blocks
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    honour_range = True
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).requests.append((self.path, self.headers.get("Range")))
        if self.path != "/file.bin":
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and type(self).honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    _Handler.requests = []
    _Handler.honour_range = True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_verifies_and_renames(server, tmp_path):
    base, _ = server
    dest = tmp_path / "sub" / "file.bin"
    assert download(f"{base}/file.bin", str(dest), sha256=DIGEST.upper(), timeout=5, progress=False) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(dest.parent) == ["file.bin"]  # no .part left


def test_mismatch_is_an_error_and_leaves_nothing(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="sha256 mismatch: got " + DIGEST):
        download(f"{base}/file.bin", str(dest), sha256="0" * 64, timeout=5, progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_from_partial_file(server, tmp_path, honour_range):
    base, handler = server
    handler.honour_range = honour_range
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:100_000])
    assert download(f"{base}/file.bin", str(dest), sha256=DIGEST, timeout=5, progress=False) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    assert handler.requests == [("/file.bin", "bytes=100000-")]
    assert not (tmp_path / "file.bin.part").exists()


def test_complete_partial_file_and_existing_target(server, tmp_path):
    base, handler = server
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)  # server answers 416: nothing left to fetch
    assert download(f"{base}/file.bin", str(dest), sha256=DIGEST, timeout=5, progress=False) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    handler.requests.clear()
    assert download(f"{base}/file.bin", str(dest), sha256=DIGEST, timeout=5, progress=False) == DIGEST
    assert handler.requests == []  # already there with the right digest: no request
    with pytest.raises(DataError, match="exists with sha256"):
        download(f"{base}/file.bin", str(dest), sha256="1" * 64, timeout=5, progress=False)


def test_corrupt_partial_file_is_caught_by_the_digest(server, tmp_path):
    base, _ = server
    (tmp_path / "file.bin.part").write_bytes(b"\xff" * 1000)
    with pytest.raises(DataError, match="sha256 mismatch"):
        download(f"{base}/file.bin", str(tmp_path / "file.bin"), sha256=DIGEST, timeout=5, progress=False)
    assert os.listdir(tmp_path) == []  # next run starts clean


def test_http_errors_and_bad_arguments(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{base}/missing.bin", str(tmp_path / "m.bin"), timeout=5, progress=False)
    with pytest.raises(DataError, match="64 hex digits"):
        download(f"{base}/file.bin", str(tmp_path / "m.bin"), sha256="abc", timeout=5, progress=False)
    assert os.listdir(tmp_path) == []


def test_amazon_registry():
    assert set(AMAZON_2018_CATEGORIES) == {"Instruments", "Arts", "Games"}
    urls = amazon_2018_urls("Instruments")
    assert urls["reviews"].endswith("/Musical_Instruments_5.json.gz")
    assert urls["meta"].endswith("/meta_Musical_Instruments.json.gz")
    with pytest.raises(DataError, match="unknown dataset"):
        amazon_2018_urls("Books")
