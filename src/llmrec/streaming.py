"""Input and output files of batch inference, read and written a row at a time so memory stays flat whatever
their size: a pairs CSV (user_id,item_id), a users file (one id a line, or a CSV with a user_id column), and a CSV
output written atomically (a temporary file renamed at the end: a killed run leaves no half file).

Row numbers are the CSV record numbers (the header is row 1), as every other file error of the CLI names them.
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import sys
from pathlib import Path
from typing import Iterable, Iterator

from llmrec.errors import LlmrecError

CHUNK = 4096
"""Rows scored (or users ranked) per model call when streaming a file."""


def chunks(rows: Iterable, size: int = CHUNK) -> Iterator[list]:
    """Lists of at most `size` consecutive items of `rows` (the last one shorter)."""
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


@contextlib.contextmanager
def _records(path: Path) -> Iterator[Iterator[list[str]]]:
    """The file's CSV records, with one-line errors for a missing or unreadable file."""
    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        raise LlmrecError(f"{path}: no such file") from None
    except OSError as exc:
        raise LlmrecError(f"{path}: cannot read ({exc.strerror or exc})") from None

    def records():
        try:
            yield from csv.reader(fh)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise LlmrecError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None

    with fh:
        yield records()


def _blank(row: list[str]) -> bool:
    return not row or all(not c.strip() for c in row)


def pair_rows(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """(row number, user id, item id) of a pairs CSV, every row with exactly the header's fields (pandas would take
    an extra field for an index column and shift the row silently)."""
    path = Path(path)
    with _records(path) as records:
        header = next(records, None)
        if header is None:
            raise LlmrecError(f"{path}: empty file (expected a header user_id,item_id)")
        header = [h.strip() for h in header]
        missing = [c for c in ("user_id", "item_id") if c not in header]
        if missing:
            raise LlmrecError(f"{path}: missing column(s) {', '.join(missing)} (expected user_id,item_id)")
        cu, ci = header.index("user_id"), header.index("item_id")
        n_rows = 0
        for n, row in enumerate(records, start=2):
            if _blank(row):
                continue
            if len(row) != len(header):
                raise LlmrecError(f"{path}: row {n}: {len(row)} fields but the header has {len(header)} "
                                  f"({','.join(header)})")
            n_rows += 1
            yield n, row[cu].strip(), row[ci].strip()
        if not n_rows:
            raise LlmrecError(f"{path}: no (user_id, item_id) rows")


def user_rows(path: str | Path) -> Iterator[tuple[int, str]]:
    """(row number, user id) of a users file: one id a line, or a CSV whose header has a user_id column."""
    path = Path(path)
    with _records(path) as records:
        first = next(records, None)
        while first is not None and _blank(first):
            first = next(records, None)
        if first is None:
            raise LlmrecError(f"{path}: empty file (expected one user id a line or a CSV with a user_id column)")
        header = [h.strip() for h in first]
        column = header.index("user_id") if "user_id" in header else None
        if column is None and len(header) > 1:
            raise LlmrecError(f"{path}: row 1: {len(header)} fields but no user_id column (expected one user id a "
                              "line or a CSV with a user_id column)")
        if column is None:  # no header: the first line is a user
            yield 1, header[0]
        n_rows = column is None
        for n, row in enumerate(records, start=2):
            if _blank(row):
                continue
            if column is None and len(row) != 1:
                raise LlmrecError(f"{path}: row {n}: {len(row)} fields (expected one user id a line)")
            if column is not None and len(row) != len(header):
                raise LlmrecError(f"{path}: row {n}: {len(row)} fields but the header has {len(header)} "
                                  f"({','.join(header)})")
            n_rows += 1
            yield n, row[column or 0].strip()
        if not n_rows:
            raise LlmrecError(f"{path}: no user ids")


@contextlib.contextmanager
def csv_output(out: str | Path | None):
    """A csv.writer onto `out`, which appears only complete (temp file + rename); None: stdout, as it comes."""
    if out is None:
        yield csv.writer(sys.stdout, lineterminator="\n")
        return
    from llmrec.paths import atomic_file

    try:
        with atomic_file(out) as tmp, open(tmp, "w", newline="") as fh:
            yield csv.writer(fh, lineterminator="\n")
    except OSError as exc:
        raise LlmrecError(f"--output {out}: cannot write ({exc.strerror or exc})") from None


def progress_bar(total: int, enabled: bool, unit: str):
    """A tqdm bar on stderr (a no-op object when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, file=sys.stderr, unit=unit, dynamic_ncols=True, mininterval=0.5)
