"""Summaries of datasets and splits, as dicts (for code) and small aligned tables (for the CLI)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.types import CLICK_PARTS, ClickSplit, Dataset, SequenceSplit


def _date(t) -> str:
    return pd.Timestamp(int(t), unit="s", tz="UTC").strftime("%Y-%m-%d")


def _share(mask) -> float:
    return round(float(np.mean(mask)), 4) if len(mask) else 0.0


def is_implicit(ds: Dataset) -> bool:
    """True when every rating is the same (no rating column, or one value): each interaction is a positive."""
    rating = ds.interactions["rating"].to_numpy(np.float64)
    return bool(len(rating)) and float(rating.min()) == float(rating.max())


def describe(ds: Dataset, threshold: float = 4.0) -> dict:
    """Counts, time range, rating range, positive rate at `threshold` (implicit data: every row is positive),
    share of items with a title / text."""
    inter = ds.interactions
    implicit = is_implicit(ds)
    n_users, n_items = int(inter["user_id"].nunique()), int(inter["item_id"].nunique())
    per_user = inter["user_id"].value_counts()
    rating = inter["rating"].to_numpy(np.float64)
    ts = inter["timestamp"].to_numpy(np.int64)
    return {
        "name": ds.name,
        "users": n_users,
        "items": n_items,
        "interactions": len(inter),
        "density": round(len(inter) / max(n_users * n_items, 1), 6),
        "per_user_mean": round(float(per_user.mean()), 2) if len(per_user) else 0.0,
        "per_user_median": float(per_user.median()) if len(per_user) else 0.0,
        "time_first": _date(ts.min()) if len(ts) else "",
        "time_last": _date(ts.max()) if len(ts) else "",
        "rating_min": float(rating.min()) if len(rating) else 0.0,
        "rating_max": float(rating.max()) if len(rating) else 0.0,
        "rating_mean": round(float(rating.mean()), 4) if len(rating) else 0.0,
        "feedback": "implicit (all ratings equal: every interaction is a positive)" if implicit else "explicit",
        "threshold": "none needed" if implicit else threshold,
        "positive_rate": 1.0 if implicit else _share(rating >= threshold),
        "items_with_title": _share(ds.items["title"].astype(str).str.len().to_numpy() > 0),
        "items_with_text": _share(ds.items["text"].astype(str).str.len().to_numpy() > 0),
    }


def _part_info(f: pd.DataFrame) -> dict:
    his = np.fromiter((len(h) for h in f["history"]), dtype=np.int64, count=len(f))
    ts = f["timestamp"].to_numpy(np.int64)
    return {
        "rows": len(f),
        "users": int(f["user_id"].nunique()),
        "items": int(f["item_id"].nunique()),
        "positive_rate": _share(f["label"].to_numpy() == 1),
        "warm": _share(f["warm"].to_numpy()),
        "not_cold": _share(f["not_cold"].to_numpy()),
        "history_mean": round(float(his.mean()), 2) if len(his) else 0.0,
        "history_median": float(np.median(his)) if len(his) else 0.0,
        "time_first": _date(ts.min()) if len(ts) else "",
        "time_last": _date(ts.max()) if len(ts) else "",
    }


def describe_split(split: ClickSplit | SequenceSplit) -> dict:
    """Per-part statistics of a click split, or user / sequence-length statistics of a sequence split."""
    if isinstance(split, ClickSplit):
        return {"name": split.name, "kind": "click", "n_users": split.n_users, "n_items": split.n_items,
                "parts": {p: _part_info(split.part(p)) for p in CLICK_PARTS}}
    lengths = np.fromiter((len(t) for t in split.users["train"]), dtype=np.int64, count=len(split.users))
    return {"name": split.name, "kind": "sequence", "n_users": split.n_users, "n_items": split.n_items,
            "users": len(split.users), "train_items": int(lengths.sum()),
            "train_length_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
            "train_length_max": int(lengths.max()) if len(lengths) else 0}


def _cell(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1000 else f"{v:g}"
    return str(v)


def format_info(info: dict) -> str:
    """A small aligned table: one `key  value` line per field; per-part fields of a click split as columns."""
    lines = []
    flat = {k: v for k, v in info.items() if not isinstance(v, dict)}
    width = max((len(k) for k in flat), default=0)
    lines += [f"{k.ljust(width)}  {_cell(v)}" for k, v in flat.items()]
    parts = info.get("parts")
    if parts:
        cols = list(parts)
        keys = list(next(iter(parts.values())))
        table = [["", *cols]] + [[k, *(_cell(parts[c][k]) for c in cols)] for k in keys]
        widths = [max(len(row[j]) for row in table) for j in range(len(table[0]))]
        lines.append("")
        for row in table:
            lines.append("  ".join(row[0].ljust(widths[0]) if j == 0 else row[j].rjust(widths[j])
                                   for j in range(len(row))).rstrip())
    return "\n".join(lines)
