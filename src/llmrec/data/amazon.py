"""Amazon reviews (McAuley et al.) from files the user points to: the 2014 and the 2018 dumps.

Reviews (both years): one record per line with reviewerID, asin, overall (rating), unixReviewTime.
Metadata: 2014 has title, description (str), categories (list of lists), brand, one Python dict literal per
line (the dumps were meant to be read with `eval`); 2018 has title, description (list of str), brand, category
(list), as JSON lines. Files may be plain or gzip; JSON lines, Python-literal lines or one JSON array.
Item title = cleaned title; item text = description, then "Brand: ...", then "Categories: ...", HTML-unescaped
and stripped of tags.
"""
from __future__ import annotations

import ast
import gzip
import html
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from llmrec.data.build import kcore_filter, make_dataset
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError

REVIEW_FIELDS = {"reviewerID": "user", "asin": "item", "overall": "rating", "unixReviewTime": "timestamp"}
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


def clean_text(value) -> str:
    """Plain text from a str or a (nested) list of str: tags removed, entities unescaped, spaces collapsed."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (clean_text(v) for v in value) if t)
    text = str(value)
    for _ in range(3):  # the dumps hold doubly escaped markup ('&amp;lt;b&amp;gt;'): unescape until stable
        cleaned = html.unescape(_TAG.sub(" ", text))
        if cleaned == text:
            break
        text = cleaned
    text = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return _BEFORE_PUNCT.sub(r"\1", text)  # 'spice </i>.' -> 'spice.'


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_text(path: Path):
    if not path.exists():
        raise LlmrecError(f"{path}: no such file")
    raw = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def _parse(line: str, where: str):
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)  # the 2014 metadata: Python dict literals
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise LlmrecError(f"{where}: not a JSON object or a Python dict literal") from None
    if not isinstance(record, dict):
        raise LlmrecError(f"{where}: expected an object, found {type(record).__name__}")
    return record


def iter_records(path: Path, keep_asins: set[str] | None = None):
    """(line number, record) for each record; with `keep_asins`, lines of other items are skipped unparsed."""
    try:
        with _open_text(path) as f:
            first = f.read(1)
            while first.isspace():
                first = f.read(1)
            if first == "[":  # one JSON array
                try:
                    records = json.loads(first + f.read())
                except json.JSONDecodeError as exc:
                    raise LlmrecError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
                for n, r in enumerate(records, 1):
                    if not isinstance(r, dict):
                        raise LlmrecError(f"{path}: element {n}: expected an object")
                    if keep_asins is None or str(r.get("asin")) in keep_asins:
                        yield n, r
                return
            for n, line in enumerate(_chain(first, f), 1):
                if not line.strip():
                    continue
                if keep_asins is not None:
                    m = _ASIN.search(line)
                    if m and m.group(1) not in keep_asins:
                        continue
                yield n, _parse(line, f"{path}:{n}")
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise LlmrecError(f"{path}: cannot read ({type(exc).__name__}: {exc}); truncated or corrupt?") from None


def _chain(first: str, f):
    line = first + f.readline()
    yield line
    yield from f


def _reviews_python(path: Path) -> pd.DataFrame:
    cols: dict[str, list] = {k: [] for k in REVIEW_FIELDS}
    for n, r in iter_records(path):
        for k, values in cols.items():
            v = r.get(k)
            if v is None or v == "":
                raise LlmrecError(f"{path}:{n}: missing field {k!r}")
            values.append(v)
    frame = pd.DataFrame({new: cols[old] for old, new in REVIEW_FIELDS.items()})
    for col in ("rating", "timestamp"):
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any():
            row = int(np.argmax(values.isna().to_numpy()))
            raise LlmrecError(f"{path}: record {row + 1}: {col} {frame[col].iloc[row]!r} is not a number")
        frame[col] = values
    return frame


def _reviews_arrow(path: Path) -> pd.DataFrame | None:
    """Fast path for strict JSON lines (pyarrow, multi-threaded); None if anything is off, so the line-by-line
    reader can name the bad line."""
    schema = pa.schema([("reviewerID", pa.string()), ("asin", pa.string()), ("overall", pa.float64()),
                        ("unixReviewTime", pa.int64())])
    try:
        stream = pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None)
        table = pa_json.read_json(stream, read_options=pa_json.ReadOptions(block_size=16 << 20),
                                  parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                                                     unexpected_field_behavior="ignore"))
    except (pa.ArrowException, OSError, EOFError, ValueError):
        return None
    if table.num_rows == 0 or any(table.column(i).null_count for i in range(table.num_columns)):
        return None
    frame = table.to_pandas()
    return frame.rename(columns=REVIEW_FIELDS)


def read_reviews(path: str | Path) -> pd.DataFrame:
    """user, item, rating, timestamp from a reviews file (exact duplicate rows, present in the dumps, dropped)."""
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"{path}: no such file")
    frame = _reviews_arrow(path)
    if frame is None:
        frame = _reviews_python(path)
    if frame.empty:
        raise LlmrecError(f"{path}: no reviews")
    return frame.drop_duplicates(["user", "item", "rating", "timestamp"]).reset_index(drop=True)


def _categories(record: dict) -> list[str]:
    cats = record.get("categories", record.get("category")) or []
    flat: list[str] = []
    for c in cats:  # 2014: list of category paths; 2018: one flat list
        flat.extend(c if isinstance(c, (list, tuple)) else [c])
    seen: list[str] = []
    for c in (clean_text(x) for x in flat):
        if c and c not in seen:
            seen.append(c)
    return seen


def item_text(record: dict) -> str:
    parts = [clean_text(record.get("description"))]
    brand = clean_text(record.get("brand"))
    if brand:
        parts.append(f"Brand: {brand}.")
    cats = _categories(record)
    if cats:
        parts.append(f"Categories: {', '.join(cats)}.")
    return " ".join(p for p in parts if p)


def read_meta(path: str | Path, asins: set[str] | None = None) -> pd.DataFrame:
    """item, title, text from a metadata file (only `asins` when given)."""
    path = Path(path)
    rows = []
    for n, r in iter_records(path, asins):
        asin = r.get("asin")
        if not asin:
            raise LlmrecError(f"{path}:{n}: missing field 'asin'")
        rows.append((str(asin), clean_text(r.get("title")), item_text(r)))
    return pd.DataFrame(rows, columns=["item", "title", "text"])


def load_amazon(reviews: str | Path, meta: str | Path | None = None, *, kcore: int = 0,
                kcore_iterative: bool = True, name: str = "amazon") -> Dataset:
    """Amazon reviews (+ optional metadata), 2014 or 2018 dump.

    kcore: keep users and items with at least this many reviews (0: no filter); kcore_iterative: repeat
    until every user and item qualifies (False: filter once).
    """
    frame = read_reviews(reviews)
    frame = kcore_filter(frame, kcore, kcore_iterative)
    if frame.empty:
        raise LlmrecError(f"{reviews}: no reviews left after the {kcore}-core filter")
    items = read_meta(meta, set(frame["item"].astype(str))) if meta is not None else None
    return make_dataset(name, frame, items, str(reviews))
