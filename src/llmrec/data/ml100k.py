"""MovieLens-100K, the embedded default: read from the RecBole wheel on PyPI, GroupLens archive as fallback.

The wheel (`pip download recbole==1.2.1 --no-deps`, sha256 pinned) ships `recbole/dataset_example/ml-100k/`
with `ml-100k.inter` (user_id, item_id, rating, timestamp), `.item` (movie_title, release_year, class) and
`.user` in RecBole's atomic format. The files are read straight out of the zip; recbole is never imported.
Titles become "Title (Year)" like the GroupLens / ML-1M titles; genres become the item text.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import pandas as pd

from llmrec.data.movielens import fetch_archive, read_delimited, read_member
from llmrec.data.build import make_dataset
from llmrec.data.download import record, reuse, verify
from llmrec.data.tabular import atomic_interactions, atomic_items, read_atomic
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file, home

RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
SOURCES = ("auto", "recbole", "grouplens")
# Item 267 has no title in the original data ("unknown"; RecBole spells it "unkonwn").
NO_TITLE = ("unknown", "unkonwn")
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                 "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
                 "Western")


def pip_download(dest_dir: Path) -> Path:
    """Run `pip download` for the pinned wheel into `dest_dir`; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", f"recbole=={RECBOLE_VERSION}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(dest_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlmrecError(f"pip download recbole=={RECBOLE_VERSION} failed ({type(exc).__name__})") from None
    wheel = dest_dir / RECBOLE_WHEEL
    if proc.returncode or not wheel.exists():
        last = (proc.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise LlmrecError(f"pip download recbole=={RECBOLE_VERSION} failed ({last})")
    return wheel


def fetch_wheel() -> Path:
    """The pinned recbole wheel under home()/raw/, fetched with pip and sha256-verified on first use."""
    dest = home() / "raw" / RECBOLE_WHEEL
    if reuse(dest, sha256=RECBOLE_SHA256):  # a damaged copy is deleted and fetched again
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pip-") as tmp:
        wheel = pip_download(Path(tmp))
        verify(wheel, sha256=RECBOLE_SHA256, what=RECBOLE_WHEEL)
        with atomic_file(dest) as out:
            shutil.copyfile(wheel, out)
    record(dest)
    return dest


def _no_title(title: pd.Series) -> pd.Series:
    return title.where(~title.str.strip().str.lower().isin(NO_TITLE), "")


def from_wheel(wheel: Path) -> Dataset:
    """Parse the atomic files inside the wheel."""
    try:
        with zipfile.ZipFile(wheel) as z:
            raw = {ext: z.read(MEMBER.format(ext)) for ext in ("inter", "item")}
    except KeyError as exc:
        raise LlmrecError(f"{wheel}: no {exc.args[0]} inside (not the expected recbole wheel)") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise LlmrecError(f"{wheel}: corrupt wheel ({exc})") from None
    where = f"{wheel}:{MEMBER.format('inter')}"
    inter = atomic_interactions(read_atomic(raw["inter"], where), where)
    items = atomic_items(read_atomic(raw["item"], f"{wheel}:{MEMBER.format('item')}"), MEMBER.format("item"))
    items["title"] = _no_title(items["title"])
    # the genre 'unknown' says there is no genre (the archive path drops its flag the same way)
    items["text"] = items["text"].str.split(", ").map(lambda g: ", ".join(x for x in g if x != "unknown"))
    return make_dataset("ml-100k", inter, items, where)


def from_grouplens(archive: Path) -> Dataset:
    """Parse `u.data` (tab separated) and `u.item` ('|' separated, latin-1, 19 genre flags) from ml-100k.zip."""
    where = f"{archive}:u.data"
    r = read_delimited(read_member(archive, "u.data"), b"\t",
                                  ["user", "item", "rating", "timestamp"], where, "latin-1")
    cols = ["item", "title", "release", "video", "url", *ML100K_GENRES]
    m = read_delimited(read_member(archive, "u.item"), b"|", cols, f"{archive}:u.item", "latin-1")
    flags = m[list(ML100K_GENRES[1:])] == "1"
    text = flags.apply(lambda row: ", ".join(g for g, on in zip(ML100K_GENRES[1:], row) if on), axis=1)
    items = pd.DataFrame({"item": m["item"], "title": _no_title(m["title"].str.strip()), "text": text})
    return make_dataset("ml-100k", r, items, where)


def load_ml100k(source: str = "auto") -> Dataset:
    """MovieLens-100K: 943 users, 1,682 movies, 100,000 ratings (1-5).

    source: 'recbole' (the PyPI wheel), 'grouplens' (the archive), 'auto' (wheel, then archive if pip fails).
    """
    if source not in SOURCES:
        raise LlmrecError(f"ml-100k: unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if source in ("auto", "recbole"):
        try:
            return from_wheel(fetch_wheel())
        except LlmrecError as exc:
            if source == "recbole":
                raise
            warnings.warn(f"ml-100k: {exc}; falling back to the GroupLens archive", stacklevel=2)
    return from_grouplens(fetch_archive("ml-100k"))
