"""The CoLLM / BinLLM processed splits: `{train,valid,valid_small,test}_ood2.pkl`, loose or in a zip.

These pickles are the papers' exact data (ML-1M: 33,891 / 10,401 / 5,200 / 7,331 rows). Columns used: uid, iid,
label, timestamp, his (0 sentinel + the user's earlier positives), title, his_title. Ids are already remapped with
0 reserved, so they are kept as they are.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.types import CLICK_PARTS, ClickSplit
from llmrec.errors import LlmrecError

REQUIRED = ("uid", "iid", "label", "timestamp", "his", "title")
WARM_DEFINITIONS = ("paper", "not_cold")


def _read_pickle(raw: bytes, where: str) -> pd.DataFrame:
    try:
        df = pd.read_pickle(io.BytesIO(raw))
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as exc:
        raise LlmrecError(f"{where}: not a readable pandas pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(df, pd.DataFrame):
        raise LlmrecError(f"{where}: expected a pandas DataFrame, found {type(df).__name__}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LlmrecError(f"{where}: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise LlmrecError(f"{where}: no rows")
    return df


def _find_parts(path: Path) -> dict[str, tuple[bytes, str]]:
    """Raw bytes of each part, from a directory or a zip, by file name suffix `<part>_ood2.pkl`."""
    found: dict[str, tuple[bytes, str]] = {}
    if path.is_dir():
        for part in CLICK_PARTS:
            hits = sorted(path.rglob(f"{part}_ood2.pkl"))
            if hits:
                found[part] = (hits[0].read_bytes(), str(hits[0]))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for part in CLICK_PARTS:
                hits = sorted(n for n in z.namelist() if Path(n).name == f"{part}_ood2.pkl")
                if hits:
                    try:
                        found[part] = (z.read(hits[0]), f"{path}:{hits[0]}")
                    except (zipfile.BadZipFile, EOFError, OSError) as exc:
                        raise LlmrecError(f"{path}: corrupt zip member {hits[0]} ({exc})") from None
    elif path.exists():
        raise LlmrecError(f"{path}: expected a directory or a zip holding *_ood2.pkl files")
    else:
        raise LlmrecError(f"{path}: no such file or directory")
    missing = [p for p in CLICK_PARTS if p not in found]
    if missing:
        raise LlmrecError(f"{path}: missing {', '.join(p + '_ood2.pkl' for p in missing)}")
    return found


def warm_flags(frame: pd.DataFrame, train: pd.DataFrame, definition: str = "paper", min_count: int = 3) -> pd.Series:
    """Warm rows.

    'paper': user and item each have MORE than `min_count` train rows, as the official `read_info` notebook computes
    it (3,522 of 7,331 ML-1M test rows; docs/papers.md's wording "at least 3" would give 3,682). 'not_cold': both occur in
    train (4,153 rows).
    """
    users = train["user_id"].value_counts()
    items = train["item_id"].value_counts()
    u = frame["user_id"].map(users).fillna(0)
    i = frame["item_id"].map(items).fillna(0)
    if definition == "paper":
        return (u > min_count) & (i > min_count)
    if definition == "not_cold":
        return (u > 0) & (i > 0)
    raise LlmrecError(f"unknown warm definition {definition!r}; expected one of {WARM_DEFINITIONS}")


def load_collm(path: str | Path, name: str = "collm-ml1m", domain: str = "movie", max_history: int = 50,
               warm_definition: str = "paper") -> ClickSplit:
    """Read the four pickles into a ClickSplit. History keeps the last `max_history` positives."""
    path = Path(path)
    parts = {p: _read_pickle(raw, where) for p, (raw, where) in _find_parts(path).items()}
    titles: dict[int, str] = {}
    frames = {}
    for p, df in parts.items():
        for iid, title in zip(df["iid"].to_numpy(), df["title"]):
            titles[int(iid)] = str(title)
        if "his_title" in df.columns:  # history titles cover items never a target in any split
            for his, his_t in zip(df["his"], df["his_title"]):
                for iid, title in zip(np.asarray(his)[1:], list(his_t)[1:]):
                    titles.setdefault(int(iid), str(title))
        history = [np.asarray(h, dtype=np.int64)[1:][-max_history:] for h in df["his"]]
        frames[p] = pd.DataFrame({
            "user_id": df["uid"].to_numpy(np.int64),
            "item_id": df["iid"].to_numpy(np.int64),
            "label": df["label"].to_numpy().astype(np.int8),
            "timestamp": df["timestamp"].to_numpy(np.int64),
            "history": history,
        })
    train = frames["train"]
    for p, f in frames.items():
        f["warm"] = warm_flags(f, train, warm_definition).to_numpy()
        f["not_cold"] = warm_flags(f, train, "not_cold").to_numpy()
    n_users = int(max(f["user_id"].max() for f in frames.values())) + 1
    n_items = int(max(max(f["item_id"].max() for f in frames.values()), max(titles))) + 1
    items = pd.DataFrame({"item_id": np.arange(1, n_items, dtype=np.int64)})
    items["title"] = items["item_id"].map(titles).fillna("").astype(str)
    items["text"] = ""
    meta = {"source": str(path), "format": "collm-ood2", "max_history": max_history,
            "warm_definition": warm_definition}
    return ClickSplit(name=name, items=items, n_users=n_users, n_items=n_items, domain=domain, meta=meta, **frames)
