"""Raw frames -> `Dataset`: validate, remap raw ids to contiguous internal ids 1.., attach item text.

Every loader ends here, so the id rule is the same for all sources: users and items are sorted by raw id
(numerically when every id is a plain integer, else as strings) and numbered from 1; 0 stays the padding id.
Rows keep the source's order (splits break timestamp ties by it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError

RAW_COLUMNS = ("user", "item", "rating", "timestamp")


def _normalized(values: pd.Series | np.ndarray) -> np.ndarray:
    """Integer ids as int64 (also floats holding integers, e.g. read next to NaNs), anything else as stripped str."""
    s = pd.Series(values)
    if pd.api.types.is_float_dtype(s.dtype):
        f = s.to_numpy(np.float64)
        if np.isfinite(f).all() and (f == np.round(f)).all():
            return f.astype(np.int64)
    if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
        return s.to_numpy(np.int64)
    return s.astype(str).str.strip().to_numpy(dtype=object)


def id_strings(values: pd.Series | np.ndarray) -> np.ndarray:
    """Raw ids as strings ('12', not '12.0'), so ids read from different files compare equal."""
    return _normalized(values).astype(str).astype(object)


def _sorted_order(raw: np.ndarray) -> np.ndarray:
    """Permutation sorting raw id strings: numerically if all are digit strings (short enough), else as text."""
    lengths = np.fromiter((len(x) for x in raw), dtype=np.int64, count=len(raw))
    if len(raw) and lengths.max() <= 18 and all(x.isascii() and x.isdigit() for x in raw):  # not "²"
        numbers = raw.astype(np.int64)
        return np.lexsort((raw.astype(str), numbers))  # '007' and '7' tie numerically: text decides
    return np.argsort(raw.astype(str), kind="stable")


def encode_ids(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Internal ids (1..n, int64) for raw ids, and the raw ids in internal order (raw[i - 1] is id i)."""
    codes, uniques = pd.factorize(_normalized(values), sort=False)  # strings for the uniques only: fast
    uniques = np.asarray(uniques).astype(str).astype(object)
    order = _sorted_order(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return rank[codes], [str(x) for x in uniques[order]]


def _timestamps(col: pd.Series, where: str) -> np.ndarray:
    """Unix seconds from numbers or date strings; a bad value names its row."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        parsed = pd.to_datetime(col, utc=True)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise LlmrecError(f"{where}: row {int(np.argmax(bad)) + 1}: timestamp is missing or not a number")
        return np.round(values).astype(np.int64)
    else:
        numeric = pd.to_numeric(col, errors="coerce")
        if numeric.notna().all():
            return _timestamps(numeric, where)
        parsed = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise LlmrecError(f"{where}: row {row + 1}: timestamp {col.iloc[row]!r} is not a number or a date")
    return (parsed.astype("datetime64[s, UTC]").astype("int64")).to_numpy(np.int64)


def standard_interactions(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check and type a raw interaction frame: user, item (raw ids), rating (float; 1 if absent), timestamp."""
    missing = [c for c in ("user", "item") if c not in frame.columns]
    if missing:
        raise LlmrecError(f"{where}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise LlmrecError(f"{where}: no interactions")
    out = pd.DataFrame({"user": frame["user"].to_numpy(), "item": frame["item"].to_numpy()})
    for col in ("user", "item"):
        bad = out[col].isna().to_numpy()
        if not bad.any() and not pd.api.types.is_numeric_dtype(out[col].dtype):
            bad = out[col].astype(str).str.strip().to_numpy() == ""
        if bad.any():
            raise LlmrecError(f"{where}: row {int(np.argmax(bad)) + 1}: {col} id is empty")
    if "rating" in frame.columns:
        rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(rating)
        if bad.any():
            row = int(np.argmax(bad))
            raise LlmrecError(f"{where}: row {row + 1}: rating {frame['rating'].iloc[row]!r} is not a number")
        out["rating"] = rating.astype(np.float32)
    else:
        out["rating"] = np.float32(1.0)  # implicit feedback: every row is an interaction
    if "timestamp" in frame.columns:
        out["timestamp"] = _timestamps(frame["timestamp"].reset_index(drop=True), where)
    else:
        out["timestamp"] = np.arange(len(out), dtype=np.int64)  # no time: file order is the order
    return out


def kcore_filter(inter: pd.DataFrame, k: int, iterative: bool = True, user: str = "user",
                 item: str = "item") -> pd.DataFrame:
    """Keep users and items with at least `k` rows. `iterative`: repeat until stable (a true k-core);
    otherwise filter once (both counts taken on the input, as the BinLLM Amazon-Book script does)."""
    if k <= 1:
        return inter
    while True:
        u = inter[user].map(inter[user].value_counts())
        i = inter[item].map(inter[item].value_counts())
        keep = ((u >= k) & (i >= k)).to_numpy()
        if keep.all():
            return inter
        inter = inter.loc[keep]
        if not iterative or inter.empty:
            return inter


def make_dataset(name: str, interactions: pd.DataFrame, items: pd.DataFrame | None, where: str) -> Dataset:
    """Build a `Dataset` from raw frames.

    interactions: user, item (raw ids), rating, timestamp (see `standard_interactions`).
    items: item (raw id), title, text; items without interactions are dropped, interacted items missing
    here get empty title and text.
    """
    inter = standard_interactions(interactions, where)
    user_id, raw_users = encode_ids(inter["user"])
    item_id, raw_items = encode_ids(inter["item"])
    frame = pd.DataFrame({
        "user_id": user_id,
        "item_id": item_id,
        "rating": inter["rating"].to_numpy(np.float32),
        "timestamp": inter["timestamp"].to_numpy(np.int64),
    })
    title = np.full(len(raw_items), "", dtype=object)
    text = np.full(len(raw_items), "", dtype=object)
    if items is not None and len(items):
        if "item" not in items.columns:
            raise LlmrecError(f"{where}: item table has no item id column")
        index = pd.Series(np.arange(len(raw_items)), index=pd.Index(raw_items))
        keys = pd.Series(id_strings(items["item"]))
        first = ~keys.duplicated().to_numpy()  # a repeated item row: the first one wins
        pos = keys[first].map(index)
        found = pos.notna().to_numpy()
        rows = pos[found].to_numpy(np.int64)
        for col, target in (("title", title), ("text", text)):
            if col in items.columns:
                values = items[col].to_numpy(dtype=object)[first][found]
                target[rows] = [v if isinstance(v, str) else "" for v in values]
    item_frame = pd.DataFrame({
        "item_id": np.arange(1, len(raw_items) + 1, dtype=np.int64),
        "title": pd.Series(title, dtype=object).str.strip().astype(str),
        "text": pd.Series(text, dtype=object).str.strip().astype(str),
    })
    return Dataset(name=name, interactions=frame, items=item_frame, n_users=len(raw_users) + 1,
                   n_items=len(raw_items) + 1, raw_user_ids=raw_users, raw_item_ids=raw_items)
