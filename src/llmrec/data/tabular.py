"""Generic files: CSV / TSV / parquet with a column mapping, and RecBole atomic files (`.inter`, `.item`).

RecBole atomic format: tab separated, a header of `name:type` fields (type token, token_seq, float, float_seq),
sequences separated by spaces. The parser here is shared with the ml-100k loader, whose files are in that format.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
# Item fields that become the title / the text, first present wins for the title; text joins all present.
TITLE_FIELDS = ("movie_title", "title", "name", "book_title", "item_name")
YEAR_FIELDS = ("release_year", "year")
TEXT_FIELDS = ("class", "genre", "genres", "categories", "category", "brand", "description")
SEQ_JOIN = ", "


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older files (MovieLens) are latin-1; every byte decodes


def read_atomic(source: bytes | str | Path, where: str | None = None) -> pd.DataFrame:
    """Read one atomic file into a frame named by field (no `:type`); float fields numeric, others str."""
    if isinstance(source, (str, Path)):
        where = where or str(source)
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise LlmrecError(f"{where}: cannot read ({exc.strerror or exc})") from None
    else:
        raw = source
    where = where or "atomic file"
    text = _decode(raw, where)
    header = text.partition("\n")[0]
    fields = header.rstrip("\r").split("\t")
    if not header.strip():
        raise LlmrecError(f"{where}: empty file (expected a header of name:type fields)")
    names, types = [], []
    for f in fields:
        name, sep, kind = f.partition(":")
        if not sep or kind not in ATOMIC_TYPES or not name:
            raise LlmrecError(f"{where}: header field {f!r} is not name:type with type in {', '.join(ATOMIC_TYPES)}")
        names.append(name)
        types.append(kind)
    if len(set(names)) != len(names):
        raise LlmrecError(f"{where}: duplicate field names in header")
    try:
        # header=0 with names: pandas' line numbers in errors are then the file's own
        frame = pd.read_csv(io.StringIO(text), sep="\t", header=0, names=names, dtype=str, quoting=csv.QUOTE_NONE,
                            keep_default_na=False, na_filter=True, na_values=[], engine="c")
    except pd.errors.ParserError as exc:
        raise LlmrecError(f"{where}: malformed row ({_short(exc)})") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({n: pd.Series(dtype=str) for n in names})
    check_field_counts(text, len(names), len(frame) + 1, where)
    for name, kind in zip(names, types):
        if kind == "float":
            values = pd.to_numeric(frame[name], errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                row = int(np.argmax(bad))
                raise LlmrecError(f"{where}: line {row + 2}: field {name} = {frame[name].iloc[row]!r} is not a number")
            frame[name] = values.astype(np.float64)
    frame.attrs["types"] = dict(zip(names, types))
    return frame


def check_field_counts(text: str | bytes, n_fields: int, n_lines: int, where: str) -> None:
    """Raise on the first non-blank line without exactly `n_fields` tab-separated fields.

    pandas pads short rows (a truncated last line, say) silently and rejects long ones, so a total tab count
    that is off means a short row somewhere: only then is the text scanned line by line."""
    tab, newline = ("\t", "\n") if isinstance(text, str) else (b"\t", b"\n")
    if text.count(tab) == n_lines * (n_fields - 1):
        return
    for lineno, line in enumerate(text.split(newline), 1):
        line = line.rstrip(b"\r" if isinstance(line, bytes) else "\r")
        if line and line.count(tab) != n_fields - 1:
            raise LlmrecError(f"{where}: line {lineno}: expected {n_fields} fields, found {line.count(tab) + 1}")


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def atomic_interactions(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """An `.inter` frame -> raw interactions (user, item, rating, timestamp)."""
    for col in ("user_id", "item_id"):
        if col not in frame.columns:
            raise LlmrecError(f"{where}: no {col} field (fields: {', '.join(frame.columns)})")
    out = pd.DataFrame({"user": frame["user_id"], "item": frame["item_id"]})
    if "rating" in frame.columns:
        out["rating"] = frame["rating"]
    if "timestamp" in frame.columns:
        out["timestamp"] = frame["timestamp"]
    return out


def atomic_items(frame: pd.DataFrame, where: str, year_in_title: bool = True) -> pd.DataFrame:
    """An `.item` frame -> item, title ("Title (Year)" when a 4-digit year field exists), text (the text fields)."""
    if "item_id" not in frame.columns:
        raise LlmrecError(f"{where}: no item_id field (fields: {', '.join(frame.columns)})")
    types = frame.attrs.get("types", {})
    title_field = next((f for f in TITLE_FIELDS if f in frame.columns), None)
    title = frame[title_field].astype(str).str.strip() if title_field else pd.Series("", index=frame.index)
    year_field = next((f for f in YEAR_FIELDS if f in frame.columns), None)
    if year_in_title and year_field and title_field:
        year = frame[year_field].astype(str).str.strip()
        add = year.str.fullmatch(r"\d{4}") & (title != "") & ~title.str.contains(r"\(\d{4}\)$")
        title = title.where(~add, title + " (" + year + ")")
    parts = []
    for f in TEXT_FIELDS:
        if f in frame.columns:
            col = frame[f].astype(str).str.strip()
            if types.get(f) == "token_seq":  # RecBole separates sequence tokens by spaces
                col = col.str.split().str.join(SEQ_JOIN)
            parts.append(col)
    text = pd.Series("", index=frame.index)
    for col in parts:
        text = text.where(col == "", text.where(text == "", text + ". ") + col)
    return pd.DataFrame({"item": frame["item_id"], "title": title, "text": text})


def load_atomic(inter: str | Path, item: str | Path | None = None, name: str = "recbole") -> Dataset:
    """RecBole atomic files. `item` defaults to the `.item` file beside `inter` when it exists."""
    inter = Path(inter)
    if item is None and inter.with_suffix(".item").exists():
        item = inter.with_suffix(".item")
    interactions = atomic_interactions(read_atomic(inter), str(inter))
    items = atomic_items(read_atomic(item), str(item)) if item is not None else None
    return make_dataset(name, interactions, items, str(inter))


def _read_table(path: Path, sep: str | None, encoding: str) -> pd.DataFrame:
    if not path.exists():
        raise LlmrecError(f"{path}: no such file")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if sep is None:
            sep = "\t" if any(s in (".tsv", ".tab", ".txt") for s in suffixes) else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                           engine="c" if len(sep) == 1 else "python")
    except pd.errors.EmptyDataError:
        raise LlmrecError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise LlmrecError(f"{path}: cannot read as a table ({_short(exc)})") from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt parquet file
        if type(exc).__module__.startswith("pyarrow"):
            raise LlmrecError(f"{path}: cannot read as parquet ({_short(exc)})") from None
        raise


def _column(frame: pd.DataFrame, col: str, path: Path, role: str) -> pd.Series:
    if col not in frame.columns:
        raise LlmrecError(f"{path}: no column {col!r} for the {role} (columns: {', '.join(map(str, frame.columns))})")
    return frame[col]


def load_table(path: str | Path, *, user: str = "user_id", item: str = "item_id", rating: str | None = None,
               timestamp: str | None = None, sep: str | None = None, items: str | Path | None = None,
               item_key: str | None = None, title: str | None = None, text: str | list[str] | None = None,
               encoding: str = "utf-8", name: str = "csv") -> Dataset:
    """Interactions from a CSV/TSV/parquet file, item titles/text from an optional item file.

    user/item/rating/timestamp: column names (rating absent: implicit, 1.0; timestamp absent: file order;
    timestamps may be unix seconds or dates). items: item file (default: the interactions file itself);
    item_key: its id column (default `item`); title: its title column; text: one column or several (joined
    with '. ').
    """
    path = Path(path)
    frame = _read_table(path, sep, encoding)
    raw = pd.DataFrame({"user": _column(frame, user, path, "user id"), "item": _column(frame, item, path, "item id")})
    if rating:
        raw["rating"] = _column(frame, rating, path, "rating")
    if timestamp:
        raw["timestamp"] = _column(frame, timestamp, path, "timestamp")
    item_frame = None
    if items is not None or title or text:
        # no item file: titles/text come from the interactions file itself (first row per item wins)
        source = Path(items) if items is not None else path
        table = _read_table(source, sep, encoding) if items is not None else frame
        items = source
        item_frame = pd.DataFrame({"item": _column(table, item_key or item, items, "item id")})
        item_frame["title"] = _column(table, title, items, "title").fillna("").astype(str) if title else ""
        cols = [text] if isinstance(text, str) else list(text or [])
        joined = pd.Series("", index=table.index)
        for c in cols:
            col = _column(table, c, items, "text").fillna("").astype(str).str.strip()
            joined = joined.where(col == "", joined.where(joined == "", joined + ". ") + col)
        item_frame["text"] = joined
    return make_dataset(name, raw, item_frame, str(path))
