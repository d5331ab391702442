"""Downloads: stream to a temporary name with a progress bar, verify length and checksum, then rename.

An interrupted, truncated or corrupt download never appears under its final name.
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file

CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path, *, md5: str | None = None, sha256: str | None = None, what: str | None = None) -> None:
    """Raise LlmrecError unless the file matches every checksum given."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            got = file_digest(path, algorithm)
            if got != expected.lower():
                raise LlmrecError(f"{what or path}: {algorithm} checksum mismatch (got {got}, expected {expected}); "
                                  "the file is corrupt or not the pinned version")


def download(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` unless it is already there. Checksums given are verified before the rename."""
    dest = Path(dest)
    if dest.exists():
        return dest
    if not md5 and not sha256:
        warnings.warn(f"{url}: no checksum pinned, the download is not verified", stacklevel=2)
    with atomic_file(dest) as tmp:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) URLs from our table/env)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LlmrecError(f"{url}: download failed ({reason})") from None
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        got = 0
        try:
            with response, open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                                        desc=dest.name, disable=None, leave=False) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, OSError) as exc:
            raise LlmrecError(f"{url}: download interrupted after {got} bytes ({type(exc).__name__}); "
                              "nothing was saved") from None
        if total is not None and got != total:
            raise LlmrecError(f"{url}: download truncated ({got} of {total} bytes); nothing was saved")
        verify(tmp, md5=md5, sha256=sha256, what=url)
    return dest
