"""The data layer's plain containers. Every stage after loading sees only these.

Conventions (all ids are internal, contiguous, and 0 is reserved for padding):
- `Dataset.interactions`: columns user_id (int64, 1..), item_id (int64, 1..), rating (float32), timestamp (int64,
  unix seconds), one row per interaction.
- `Dataset.items`: columns item_id, title (str, may be ""), text (str: genres / description / brand; may be ""),
  one row per item id 1..n_items-1.
- Click-prediction frames (`ClickSplit`): columns user_id, item_id, label (int8, 0/1), timestamp, history (list of
  item ids: the user's positives strictly before the row, chronological, only the last `max_history` kept),
  warm (bool), not_cold (bool).
- Sequences (`SequenceSplit`): one row per user with `train` (chronological item list), `valid` and `test` targets.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.paths import atomic_dir

CLICK_COLUMNS = ["user_id", "item_id", "label", "timestamp", "history", "warm", "not_cold"]
CLICK_PARTS = ("train", "valid", "valid_small", "test")


@dataclass
class Dataset:
    """Interactions and item text of one dataset, with internal ids (0 reserved)."""

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    n_users: int = 0
    """Number of user ids including the reserved 0: max(user_id) + 1."""
    n_items: int = 0
    """Number of item ids including the reserved 0: max(item_id) + 1."""
    raw_user_ids: list[str] = field(default_factory=list)
    """raw_user_ids[i - 1] is the source's id of internal user i."""
    raw_item_ids: list[str] = field(default_factory=list)
    """raw_item_ids[j - 1] is the source's id of internal item j."""

    def titles(self) -> dict[int, str]:
        return dict(zip(self.items["item_id"].tolist(), self.items["title"].tolist()))


@dataclass
class ClickSplit:
    """Click-prediction samples (CoLLM / BinLLM protocol): train, valid, valid_small, test frames."""

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    valid_small: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    """item_id, title, text: as in `Dataset.items`."""
    n_users: int
    n_items: int
    domain: str = "movie"
    """Noun used by the prompts: 'movie' or 'book' (or any singular noun; plural adds 's')."""
    meta: dict = field(default_factory=dict)
    """How it was made (source, cuts, threshold, seed, warm definition): saved beside the frames. Also the raw id
    maps `raw_user_ids` / `raw_item_ids` (raw[i - 1] is internal id i; see llmrec.ids), absent in CoLLM's split."""

    def part(self, name: str) -> pd.DataFrame:
        if name not in CLICK_PARTS:
            raise KeyError(f"unknown split part {name!r}; expected one of {CLICK_PARTS}")
        return getattr(self, name)

    def titles(self) -> dict[int, str]:
        return dict(zip(self.items["item_id"].tolist(), self.items["title"].tolist()))

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            for p in CLICK_PARTS:
                _to_parquet(self.part(p), tmp / f"{p}.parquet")
            self.items.to_parquet(tmp / "items.parquet", index=False)
            info = {"name": self.name, "n_users": self.n_users, "n_items": self.n_items,
                    "domain": self.domain, "meta": self.meta}
            (tmp / "split.json").write_text(json.dumps(info, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> "ClickSplit":
        path = Path(path)
        info = json.loads((path / "split.json").read_text())
        parts = {p: _from_parquet(path / f"{p}.parquet") for p in CLICK_PARTS}
        return cls(name=info["name"], items=pd.read_parquet(path / "items.parquet"), n_users=info["n_users"],
                   n_items=info["n_items"], domain=info.get("domain", "movie"), meta=info.get("meta", {}), **parts)


@dataclass
class SequenceSplit:
    """Leave-one-out sequences for ranking: per user, train items, then a valid and a test target."""

    name: str
    users: pd.DataFrame
    """user_id, train (list of item ids, chronological), valid (item id), test (item id)."""
    items: pd.DataFrame
    n_users: int
    n_items: int
    meta: dict = field(default_factory=dict)
    """How it was made, and the raw id maps `raw_user_ids` / `raw_item_ids` (see ClickSplit.meta)."""

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            _to_parquet(self.users, tmp / "users.parquet")
            self.items.to_parquet(tmp / "items.parquet", index=False)
            info = {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, "meta": self.meta}
            (tmp / "split.json").write_text(json.dumps(info, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> "SequenceSplit":
        path = Path(path)
        info = json.loads((path / "split.json").read_text())
        return cls(name=info["name"], users=_from_parquet(path / "users.parquet"),
                   items=pd.read_parquet(path / "items.parquet"), n_users=info["n_users"],
                   n_items=info["n_items"], meta=info.get("meta", {}))


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
    # pyarrow turns a column of numpy arrays into list<int64> itself; going through .tolist() was ~10x slower
    # and built a Python int per history item (tens of GB for an ml-20m-size split)
    df.to_parquet(path, index=False)


def _from_parquet(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    for col in ("history", "train"):
        if col in df.columns:
            df[col] = df[col].map(lambda a: np.asarray(a, dtype=np.int64))
    return df
