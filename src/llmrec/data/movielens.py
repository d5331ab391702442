"""MovieLens archives from GroupLens: ml-1m (`::`-separated, latin-1) and ml-20m (CSV); ml-100k's archive too.

Checksums are the MD5s GroupLens publishes beside each archive (`<archive>.md5`), as pinned by many projects;
they could not be re-computed here (no internet). Set LLMREC_GROUPLENS_URL to use a mirror holding the same
archives (tests point it at a local server).
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.download import download, sidecar
from llmrec.data.tabular import check_field_counts
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError
from llmrec.paths import home

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Archive:
    file: str
    """File name under the base URL and under home()/raw/."""
    md5: str | None
    """Published MD5 of the official archive (None: not verified, with a warning)."""


ARCHIVES = {
    "ml-100k": Archive("ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": Archive("ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
    "ml-20m": Archive("ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3"),
}


def base_url() -> str:
    return os.environ.get("LLMREC_GROUPLENS_URL", DEFAULT_BASE_URL).rstrip("/")


def fetch_archive(name: str) -> Path:
    """The archive under home()/raw/, downloaded and checksum-verified on first use."""
    archive = ARCHIVES[name]
    return download(f"{base_url()}/{archive.file}", home() / "raw" / archive.file, md5=archive.md5)


def read_member(archive: Path, basename: str) -> bytes:
    """Bytes of the zip member whose file name is `basename` (any folder). A corrupt archive is removed."""
    try:
        with zipfile.ZipFile(archive) as z:
            hits = sorted(n for n in z.namelist() if n.rsplit("/", 1)[-1] == basename)
            if not hits:
                raise LlmrecError(f"{archive}: no {basename} inside")
            return z.read(hits[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        archive.unlink(missing_ok=True)  # never leave a broken archive looking complete
        sidecar(archive).unlink(missing_ok=True)
        raise LlmrecError(f"{archive}: corrupt zip archive ({exc}); removed it, run again to re-download") from None


def read_delimited(raw: bytes, sep: bytes, names: list[str], where: str, encoding: str) -> pd.DataFrame:
    text = raw.replace(sep, b"\t") if sep != b"\t" else raw  # the C parser takes one-char separators only
    try:
        frame = pd.read_csv(io.BytesIO(text), sep="\t", header=None, names=names, dtype=str, encoding=encoding,
                            quoting=3, keep_default_na=False, na_filter=True, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LlmrecError(f"{where}: malformed ({str(exc).strip().splitlines()[-1] if str(exc) else exc})") from None
    if frame.empty:
        raise LlmrecError(f"{where}: no rows")
    check_field_counts(text, len(names), len(frame), where)
    return frame


def genres_text(genres: pd.Series, sep: str = "|") -> pd.Series:
    """'Animation|Children's' -> "Animation, Children's"; placeholders for no genre become ''."""
    out = genres.astype(str).str.strip().str.split(sep).str.join(", ")
    return out.where(~out.isin(["(no genres listed)", "unknown"]), "")


def load_ml1m() -> Dataset:
    """MovieLens-1M: 6,040 users, 3,706 rated movies, 1,000,209 ratings (1-5), titles "Title (Year)", genres."""
    archive = fetch_archive("ml-1m")
    where = f"{archive}:ratings.dat"
    r = read_delimited(read_member(archive, "ratings.dat"), b"::", ["user", "item", "rating", "timestamp"],
                        where, "latin-1")
    m = read_delimited(read_member(archive, "movies.dat"), b"::", ["item", "title", "genres"],
                        f"{archive}:movies.dat", "latin-1")
    items = pd.DataFrame({"item": m["item"], "title": m["title"], "text": genres_text(m["genres"])})
    return make_dataset("ml-1m", r, items, where)


def load_ml20m() -> Dataset:
    """MovieLens-20M: 138,493 users, 26,744 rated movies, 20,000,263 ratings (0.5-5)."""
    archive = fetch_archive("ml-20m")
    where = f"{archive}:ratings.csv"
    try:
        r = pd.read_csv(io.BytesIO(read_member(archive, "ratings.csv")),
                        dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float32, "timestamp": np.int64})
        m = pd.read_csv(io.BytesIO(read_member(archive, "movies.csv")), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise LlmrecError(f"{archive}: malformed csv ({str(exc).strip().splitlines()[-1]})") from None
    for frame, cols, member in ((r, ("userId", "movieId", "rating", "timestamp"), "ratings.csv"),
                                (m, ("movieId", "title", "genres"), "movies.csv")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise LlmrecError(f"{archive}:{member}: missing column(s) {', '.join(missing)}")
    raw = pd.DataFrame({"user": r["userId"], "item": r["movieId"], "rating": r["rating"], "timestamp": r["timestamp"]})
    items = pd.DataFrame({"item": m["movieId"], "title": m["title"], "text": genres_text(m["genres"])})
    return make_dataset("ml-20m", raw, items, where)
