"""One-sequence-per-line files: `user item item ...`, whitespace separated (SASRec, S3-Rec, ICLRec data).

The public `Beauty.txt`, `Sports_and_Outdoors.txt`, `ml-1m.txt` ... files hold either one line per user
(`user i1 i2 i3 ...`, S3-Rec / ICLRec) or one line per interaction (`user item`, SASRec). Both read the same
way: a line adds its items, in order, to the end of its user's sequence. The files carry no time and no rating:
an interaction's timestamp is its position in the user's sequence (0, 1, ...; monotone per user, so
leave-one-out takes the last item as test), and every rating is 1.0 (implicit feedback).
Blank lines and lines starting with '#' are skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError

SUFFIXES = (".seq", ".sequences.txt")
"""File names with these endings are read by this loader when a path is given as the dataset."""


def read_sequences(path: str | Path) -> pd.DataFrame:
    """user, item, rating (1.0), timestamp (position in the user's sequence) from a sequence file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LlmrecError(f"{path}: no such file") from None
    except OSError as exc:
        raise LlmrecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LlmrecError(f"{path}: line {line}: not UTF-8 text (byte {exc.start})") from None
    users: list[str] = []
    items: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise LlmrecError(f"{path}: line {lineno}: user {fields[0][:40]!r} has no items "
                              "(expected `user item item ...`)")
        users.extend([fields[0]] * (len(fields) - 1))
        items.extend(fields[1:])
    if not users:
        raise LlmrecError(f"{path}: no sequences (expected lines `user item item ...`)")
    frame = pd.DataFrame({"user": users, "item": items, "rating": np.float32(1.0)})
    frame["timestamp"] = frame.groupby("user", sort=False).cumcount().astype(np.int64)
    return frame


def load_sequences(path: str | Path, name: str = "sequences") -> Dataset:
    """A sequence file as a Dataset (no item text: titles and text are empty)."""
    return make_dataset(name, read_sequences(path), None, str(path))
