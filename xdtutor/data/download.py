"""Verified, atomic downloads (stage 1, collect).

:func:`fetch` streams a URL into a temporary file next to the destination, checks the byte count
and the sha256, and only then renames it into place. A failed or interrupted transfer never leaves
a half-written file behind and is retried from scratch (nothing is resumed). Only the standard
library is used (``urllib``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..utils import sha256_file  # noqa: F401  (re-exported: the registry and tests use it from here)
from .errors import ChecksumError, DownloadError

CHUNK = 1 << 16


class _Incomplete(Exception):
    """The server closed the connection before sending Content-Length bytes."""


def _download_once(url: str, dest: Path, sha256: str | None, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "xdtutor"})
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                expected = resp.headers.get("Content-Length")
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except Exception as exc:  # http.client.IncompleteRead, reset, timeout
                        raise _Incomplete(f"connection lost after {received} bytes: {exc}") from exc
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    received += len(block)
            if expected is not None and received != int(expected):
                raise _Incomplete(f"got {received} of {expected} bytes")
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(url, None, "sha256",
                                f"downloaded {received} bytes with sha256 {digest}, expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fetch(url: str, dest: str | os.PathLike, sha256: str | None, *, retries: int = 3,
          timeout: float = 60.0, backoff: float = 1.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its sha256.

    If ``dest`` already exists with the right sha256 nothing is downloaded. Transient failures
    (connection errors, short bodies, 5xx, checksum mismatches) are retried from scratch up to
    ``retries`` times with exponential backoff; HTTP 4xx errors fail at once.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: Final path; its folder is created.
        sha256: Expected hex digest (``None`` skips the check — only for tests/tools).
        retries: Attempts in total (>= 1).
        timeout: Socket timeout in seconds.
        backoff: Seconds before the 2nd attempt, doubled after each failure.

    Returns:
        ``dest`` as a Path.

    Raises:
        ChecksumError: Every attempt delivered content with the wrong sha256.
        DownloadError: HTTP error, lost connection on every attempt.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and sha256 is not None and sha256_file(dest) == sha256.lower():
        return dest
    last: Exception | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _download_once(url, dest, sha256, timeout)
            return dest
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                raise DownloadError(url, None, None, f"HTTP {exc.code} {exc.reason}") from exc
            last = exc
        except ChecksumError as exc:
            last = exc
        except (_Incomplete, urllib.error.URLError, OSError) as exc:
            last = exc
    if isinstance(last, ChecksumError):
        raise last
    offline = isinstance(last, urllib.error.URLError) and not isinstance(last, urllib.error.HTTPError)
    hint = (" — is this machine offline? Put a copy of the data in a folder and set XDTUTOR_DATA_DIR to it"
            if offline else "")
    raise DownloadError(url, None, None, f"download failed after {max(1, retries)} attempt(s): {last}{hint}")
