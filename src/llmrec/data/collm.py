"""The CoLLM / BinLLM processed splits: `{train,valid,valid_small,test}_ood2.pkl`, loose or in a zip.

These pickles are the papers' exact data (ML-1M: 33,891 / 10,401 / 5,200 / 7,331 rows). Columns used: uid, iid,
label, timestamp, his (0 sentinel + the user's earlier positives), title, his_title. Ids are already remapped with
0 reserved, so they are kept as they are.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.safe_pickle import read_frame_pickle
from llmrec.data.types import CLICK_PARTS, ClickSplit
from llmrec.errors import LlmrecError

REQUIRED = ("uid", "iid", "label", "timestamp", "his", "title")
WARM_DEFINITIONS = ("paper", "not_cold")
MAX_ID = 100_000_000
"""Ids are remapped (dense from 1); a larger one means a wrong column and would size tables by it."""


def _read_pickle(raw: bytes, where: str) -> pd.DataFrame:
    df = read_frame_pickle(raw, where)  # never pd.read_pickle: a pickle could run code (see safe_pickle)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LlmrecError(f"{where}: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise LlmrecError(f"{where}: no rows")
    return df


def _pick_folder(path: Path, folders: dict[str, set[str]]) -> str:
    """The folder holding the parts: `path` itself, else its one sub-folder that holds any (no deeper search)."""
    if folders.get(""):
        return ""
    holding = sorted(f for f, names in folders.items() if names)
    if len(holding) > 1:
        raise LlmrecError(f"{path}: *_ood2.pkl files in several folders ({', '.join(holding)}); point to one of them")
    if not holding:
        raise LlmrecError(f"{path}: no *_ood2.pkl files in it or in a sub-folder one level down")
    return holding[0]


def _find_parts(path: Path) -> dict[str, tuple[bytes, str]]:
    """Raw bytes of each part `<part>_ood2.pkl`, from a directory or a zip.

    Searched: the folder (or the zip's top level) itself, else exactly one sub-folder one level down (the zip of
    the papers' data extracts to `ml-1m/`). Never deeper, so a home folder passed by mistake is not crawled.
    """
    names = {f"{part}_ood2.pkl": part for part in CLICK_PARTS}
    found: dict[str, tuple[bytes, str]] = {}
    if path.is_dir():
        folders: dict[str, set[str]] = {"": {n for n in names if (path / n).is_file()}}
        try:
            subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError as exc:
            raise LlmrecError(f"{path}: cannot list ({exc.strerror or exc})") from None
        for sub in subs:
            folders[sub.name] = {n for n in names if (sub / n).is_file()}
        folder = path / _pick_folder(path, folders)
        for n, part in names.items():
            if (folder / n).is_file():
                try:
                    found[part] = ((folder / n).read_bytes(), str(folder / n))
                except OSError as exc:
                    raise LlmrecError(f"{folder / n}: cannot read ({exc.strerror or exc})") from None
    elif path.is_file():
        try:
            with zipfile.ZipFile(path) as z:
                members = [m for m in z.namelist() if not m.endswith("/")]
                folders = {}
                for m in members:
                    parent, _, base = m.rstrip("/").rpartition("/")
                    if base in names and parent.count("/") == 0:
                        folders.setdefault(parent, set()).add(base)
                folder = _pick_folder(path, folders)
                for n, part in names.items():
                    member = f"{folder}/{n}" if folder else n
                    if member in members:
                        found[part] = (z.read(member), f"{path}:{member}")
        except LlmrecError:
            raise
        except zipfile.BadZipFile:
            raise LlmrecError(f"{path}: expected a directory or a zip holding *_ood2.pkl files") from None
        except Exception as exc:  # noqa: BLE001 zlib, struct, OS errors from a damaged archive: all a bad file
            raise LlmrecError(f"{path}: corrupt zip ({type(exc).__name__}: {_first_line(exc)})") from None
    elif path.exists():
        raise LlmrecError(f"{path}: expected a directory or a zip holding *_ood2.pkl files")
    else:
        raise LlmrecError(f"{path}: no such file or directory")
    missing = [p for p in CLICK_PARTS if p not in found]
    if missing:
        raise LlmrecError(f"{path}: missing {', '.join(p + '_ood2.pkl' for p in missing)}")
    return found


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def warm_flags(frame: pd.DataFrame, train: pd.DataFrame, definition: str = "paper", min_count: int = 3) -> pd.Series:
    """Warm rows.

    'paper': user and item each have MORE than `min_count` train rows, as the official `read_info` notebook computes
    it (3,522 of 7,331 ML-1M test rows; "at least 3" would give 3,682). 'not_cold': both occur in
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


def _frame(df: pd.DataFrame, titles: dict[int, str], max_history: int) -> pd.DataFrame:
    """One pickle's rows in our click-frame columns; collects item titles into `titles`."""
    for iid, title in zip(df["iid"].to_numpy(), df["title"]):
        titles[int(iid)] = str(title)
    if "his_title" in df.columns:  # history titles cover items never a target in any split
        for his, his_t in zip(df["his"], df["his_title"]):
            for iid, title in zip(np.asarray(his).reshape(-1)[1:], list(his_t)[1:]):
                titles.setdefault(int(iid), str(title))
    history = [np.asarray(h, dtype=np.int64).reshape(-1)[1:][-max_history:] for h in df["his"]]
    return pd.DataFrame({
        "user_id": df["uid"].to_numpy(np.int64),
        "item_id": df["iid"].to_numpy(np.int64),
        "label": df["label"].to_numpy().astype(np.int8),
        "timestamp": df["timestamp"].to_numpy(np.int64),
        "history": history,
    })


def load_collm(path: str | Path, name: str = "collm-ml1m", domain: str = "movie", max_history: int = 50,
               warm_definition: str = "paper") -> ClickSplit:
    """Read the four pickles into a ClickSplit. History keeps the last `max_history` positives."""
    path = Path(path)
    found = _find_parts(path)
    parts = {p: _read_pickle(raw, where) for p, (raw, where) in found.items()}
    titles: dict[int, str] = {}
    frames = {}
    for p, df in parts.items():
        try:
            frames[p] = _frame(df, titles, max_history)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:  # wrong kind of column (text ids, ...)
            raise LlmrecError(f"{found[p][1]}: unexpected column values ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
    for p, f in frames.items():
        ids = [f["user_id"].to_numpy(), f["item_id"].to_numpy(), *f["history"]]
        low, high = min(int(a.min()) for a in ids if len(a)), max(int(a.max()) for a in ids if len(a))
        if low < 0 or high > MAX_ID:
            raise LlmrecError(f"{found[p][1]}: ids must lie in 0..{MAX_ID:,} (found {low}..{high})")
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
