"""Downloads: stream to a temporary name with a progress bar, verify length and checksum, then rename.

An interrupted, truncated or corrupt download never appears under its final name. Each file kept in the cache
gets a sidecar `<file>.sha256.json` ({size, sha256}, written atomically after the file); a reuse checks the file
against it (and against the pinned checksum), so a file damaged later is deleted and fetched again rather than
read as data and blamed on the network.
"""
from __future__ import annotations

import hashlib
import http.client
import json
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


def sidecar(path: str | Path) -> Path:
    return Path(f"{path}.sha256.json")


def record(path: str | Path) -> None:
    """Write the sidecar of a complete file: its size and sha256."""
    path = Path(path)
    info = {"size": path.stat().st_size, "sha256": file_digest(path, "sha256")}
    with atomic_file(sidecar(path)) as tmp:
        tmp.write_text(json.dumps(info))


def damage(path: str | Path, *, md5: str | None = None, sha256: str | None = None) -> str | None:
    """Why a cached file is not the one written: size and sha256 against its sidecar, or, for a file without one
    (cached before sidecars, or placed by hand), against the pinned sums. None when it checks out."""
    path = Path(path)
    try:
        expected = json.loads(sidecar(path).read_text())
    except FileNotFoundError:
        for algorithm, want in (("sha256", sha256), ("md5", md5)):
            if want and file_digest(path, algorithm) != want.lower():
                return f"{algorithm} differs from the pinned one"
        return None
    except (OSError, ValueError):
        return "unreadable checksum sidecar"
    if not isinstance(expected, dict):
        return "unreadable checksum sidecar"
    size = path.stat().st_size
    if size != expected.get("size"):
        return f"{size} bytes, {expected.get('size')} when written"
    if file_digest(path, "sha256") != expected.get("sha256"):
        return "sha256 differs from the recorded one"
    return None


def reuse(path: str | Path, *, md5: str | None = None, sha256: str | None = None) -> bool:
    """True when `path` is in the cache and intact; a damaged copy is deleted (with a warning) and False returned."""
    path = Path(path)
    if not path.is_file():
        return False
    why = damage(path, md5=md5, sha256=sha256)
    if why is None:
        return True
    warnings.warn(f"{path}: cached copy is damaged ({why}); deleted it, fetching it again", stacklevel=3)
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)
    return False


def download(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` unless it is already there. Checksums given are verified before the rename."""
    dest = Path(dest)
    if reuse(dest, md5=md5, sha256=sha256):
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
    record(dest)
    return dest
