"""Per-user random holdout for top-k ranking (the Mult-VAE / CLLM4Rec protocol), cached, and its evaluation.

Split (CLLM4Rec, docs/papers.md): keep interactions with rating > `threshold` (3), one row per (user, item) pair,
filter to the k-core (users and items with at least `min_count` interactions, repeated until stable), renumber
users and items contiguously from 1 (0 stays padding), then shuffle each user's items with a seeded generator and
cut at round(0.8 n) and round(0.9 n) (halves rounded up): train / valid / test. Cutting at cumulative boundaries
keeps every part within one item of its share, and train is never empty.

Evaluation (`evaluate_scores`, metrics: `llmrec.metrics.holdout_metrics`): score every item, exclude the user's train items (and the padding id), rank the
rest; Recall@k = |top-k ∩ held-out| / min(k, |held-out|), NDCG@k with binary gains. Users with no held-out items
in the part are skipped, so a metric is never NaN while at least one user has held-out items. As in the official
CLLM4Rec code, valid items are not excluded when ranking for the test part (the input is the train items).
With `intervals=True` every metric also gets a 95% bootstrap interval over the users (`recall@20_lo`,
`recall@20_hi`, ...), the interval of a mean of one value per user.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from llmrec.data.info import is_implicit
from llmrec.data.splits import cached_split, raw_id_meta, split_config
from llmrec.data.types import Dataset
from llmrec.data.split_configs import HoldoutConfig
from llmrec.errors import LlmrecError
from llmrec.metrics import holdout_metrics
from llmrec.paths import atomic_dir

HOLDOUT_VERSION = 1
"""Bump when the split's rows could change for the same options: cached holdout splits are then rebuilt."""
PARTS = ("train", "valid", "test")


@dataclass
class HoldoutSplitConfig(HoldoutConfig):
    """`HoldoutConfig` and the seed: what one split is a function of (`holdout_split`'s keyword arguments, the
    cache key)."""

    seed: int = 2023
    """Seeds the per-user shuffles (the experiment's `seed`)."""


@dataclass
class HoldoutSplit:
    """Train / valid / test (user, item) pairs of a per-user random holdout, with their own contiguous ids."""

    name: str
    train: pd.DataFrame
    """user_id, item_id (int64), one row per pair, grouped by user (within a user: shuffled order)."""
    valid: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    """item_id (this split's id), title, text, source_item_id (the Dataset's id)."""
    users: pd.DataFrame
    """user_id (this split's id), source_user_id (the Dataset's id)."""
    n_users: int
    """User ids 0..n_users-1 (0 reserved)."""
    n_items: int
    """Item ids 0..n_items-1 (0 reserved)."""
    meta: dict = field(default_factory=dict)

    def part(self, name: str) -> pd.DataFrame:
        if name not in PARTS:
            raise KeyError(f"unknown holdout part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def user_items(self, part: str) -> list[np.ndarray]:
        """Per user id (index 0..n_users-1), the items of `part` in stored order (empty arrays for none)."""
        frame = self.part(part)
        u = frame["user_id"].to_numpy(np.int64)
        i = frame["item_id"].to_numpy(np.int64)
        order = np.argsort(u, kind="stable")
        u, i = u[order], i[order]
        bounds = np.searchsorted(u, np.arange(self.n_users + 1))
        return [i[bounds[k]:bounds[k + 1]] for k in range(self.n_users)]

    def eval_users(self, part: str) -> np.ndarray:
        """Users with at least one item in `part` (sorted): the users a metric averages over."""
        return np.unique(self.part(part)["user_id"].to_numpy(np.int64))

    def matrix(self, part: str):
        """Binary scipy CSR matrix [n_users, n_items] of `part`."""
        from scipy.sparse import csr_matrix

        frame = self.part(part)
        data = np.ones(len(frame), dtype=np.float32)
        return csr_matrix((data, (frame["user_id"].to_numpy(), frame["item_id"].to_numpy())),
                          shape=(self.n_users, self.n_items))

    def titles(self) -> dict[int, str]:
        return dict(zip(self.items["item_id"].tolist(), self.items["title"].tolist()))

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            for p in PARTS:
                self.part(p).to_parquet(tmp / f"{p}.parquet", index=False)
            self.items.to_parquet(tmp / "items.parquet", index=False)
            self.users.to_parquet(tmp / "users.parquet", index=False)
            info = {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, "meta": self.meta}
            (tmp / "split.json").write_text(json.dumps(info, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> "HoldoutSplit":
        path = Path(path)
        info = json.loads((path / "split.json").read_text())
        parts = {p: pd.read_parquet(path / f"{p}.parquet") for p in PARTS}
        return cls(name=info["name"], items=pd.read_parquet(path / "items.parquet"),
                   users=pd.read_parquet(path / "users.parquet"), n_users=info["n_users"], n_items=info["n_items"],
                   meta=info.get("meta", {}), **parts)


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows in the k-core: every kept user and item has >= k kept rows."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=users.max(initial=0) + 1)
        ic = np.bincount(items[keep], minlength=items.max(initial=0) + 1)
        ok = keep & (uc[users] >= k) & (ic[items] >= k)
        if ok.sum() == keep.sum():
            return keep
        keep = ok


def cut_points(n: int, fractions: tuple) -> tuple[int, int]:
    """Cumulative cuts (end of train, end of valid) of n shuffled items, halves rounded up."""
    c1 = math.floor(fractions[0] * n + 0.5 + 1e-9)
    c2 = math.floor((fractions[0] + fractions[1]) * n + 0.5 + 1e-9)
    c1 = max(1, min(c1, n)) if n else 0  # train never empty
    return c1, max(c1, min(c2, n))


def holdout_split(ds: Dataset, *, threshold: float = 3.0, min_count: int = 5, fractions=(0.8, 0.1, 0.1),
                  seed: int = 2023) -> HoldoutSplit:
    """The per-user random train / valid / test split of `ds` (see the module docstring)."""
    cfg = HoldoutSplitConfig(threshold=threshold, min_count=min_count, fractions=fractions, seed=seed)
    inter = ds.interactions
    # implicit data (one rating for every row, e.g. none given): every interaction is a positive
    rating = inter["rating"].to_numpy(np.float64)
    positive = np.ones(len(inter), dtype=bool) if is_implicit(ds) else rating > cfg.threshold
    pos = inter.loc[positive, ["user_id", "item_id"]]
    pos = pos.drop_duplicates().sort_values(["user_id", "item_id"], kind="stable")
    if pos.empty:
        raise LlmrecError(f"{ds.name}: no interaction has rating > {cfg.threshold} (ratings "
                          f"{inter['rating'].min():g}..{inter['rating'].max():g}); set holdout.threshold")
    u, i = pos["user_id"].to_numpy(np.int64), pos["item_id"].to_numpy(np.int64)
    keep = k_core(u, i, cfg.min_count)
    if not keep.any():
        raise LlmrecError(f"{ds.name}: the {cfg.min_count}-core of the interactions with rating > "
                          f"{cfg.threshold} is empty; lower holdout.min_count")
    u, i = u[keep], i[keep]
    src_users, new_u = np.unique(u, return_inverse=True)
    src_items, new_i = np.unique(i, return_inverse=True)
    new_u, new_i = new_u + 1, new_i + 1
    part = np.empty(len(new_u), dtype=np.int8)
    order = np.empty(len(new_u), dtype=np.int64)  # rows regrouped by user, shuffled within each user
    starts = np.searchsorted(new_u, np.arange(1, len(src_users) + 2))  # rows are sorted by user already
    for user in range(1, len(src_users) + 1):
        a, b = starts[user - 1], starts[user]
        perm = a + np.random.default_rng([cfg.seed, user]).permutation(b - a)
        order[a:b] = perm
        c1, c2 = cut_points(b - a, cfg.fractions)
        part[a:a + c1], part[a + c1:a + c2], part[a + c2:b] = 0, 1, 2
    frames = {}
    for k, name in enumerate(PARTS):
        rows = order[part == k]
        frames[name] = pd.DataFrame({"user_id": new_u[rows], "item_id": new_i[rows]})
    items = ds.items.set_index("item_id").reindex(src_items)
    items = pd.DataFrame({"item_id": np.arange(1, len(src_items) + 1, dtype=np.int64),
                          "title": items["title"].fillna("").to_numpy(), "text": items["text"].fillna("").to_numpy(),
                          "source_item_id": src_items})
    users = pd.DataFrame({"user_id": np.arange(1, len(src_users) + 1, dtype=np.int64), "source_user_id": src_users})
    meta = {"source": ds.name, "protocol": "holdout", **asdict(cfg), "version": HOLDOUT_VERSION,
            "rows": {p: len(f) for p, f in frames.items()}, "users": len(src_users), "items": len(src_items),
            "dropped_by_core": int((~keep).sum()), **raw_id_meta(ds, src_users, src_items)}
    return HoldoutSplit(name=ds.name, items=items, users=users, n_users=len(src_users) + 1,
                        n_items=len(src_items) + 1, meta=meta, **frames)


def get_holdout_split(name: str, *, dataset_options: dict | None = None, refresh: bool = False,
                      **options) -> HoldoutSplit:
    """`holdout_split(load_dataset(name, **dataset_options), **options)`, built once and cached (atomically)
    under home()/splits/."""
    dataset_options = dict(dataset_options or {})
    cfg = split_config(HoldoutSplitConfig, options, f"{name} holdout split")
    return cached_split("holdout", name, dataset_options, cfg, HoldoutSplit, holdout_split, refresh=refresh,
                        version=HOLDOUT_VERSION)


# ---------------------------------------------------------------------------------------------------------------
# Full-ranking evaluation shared by every model on this split (Mult-VAE, LightGCN, CLLM4Rec, popularity).

def exclusion_mask(item_lists: list[np.ndarray], n_items: int) -> torch.Tensor:
    """[len(item_lists), n_items] bool: True at each list's items and at the padding id 0."""
    mask = torch.zeros(len(item_lists), n_items, dtype=torch.bool)
    mask[:, 0] = True
    rows = np.concatenate([np.full(len(x), r) for r, x in enumerate(item_lists)]) if item_lists else []
    cols = np.concatenate(item_lists) if item_lists else []
    if len(cols):
        mask[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)] = True
    return mask


def top_items(scores: torch.Tensor, exclude: torch.Tensor, k: int) -> torch.Tensor:
    """[B, k] item ids by descending score with excluded items (bool mask [B, n_items]) never ranked first."""
    scores = scores.float().masked_fill(exclude.to(scores.device), float("-inf"))
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


def evaluate_scores(split: HoldoutSplit, part: str, score_users: Callable[[np.ndarray], torch.Tensor],
                    batch_size: int = 256, k: int = 100, users: np.ndarray | None = None,
                    intervals: bool = False) -> dict[str, float]:
    """`metrics.holdout_metrics` of a scorer on `part`: score_users(user ids [B]) -> scores [B, n_items]; train items are
    excluded. `users` restricts the evaluated users (default: every user with items in `part`); `intervals` adds
    the bootstrap intervals over users."""
    if part not in ("valid", "test"):
        raise LlmrecError(f"evaluate on 'valid' or 'test', not {part!r}")
    users = split.eval_users(part) if users is None else np.asarray(users, dtype=np.int64)
    if not len(users):
        raise LlmrecError(f"{split.name}: no user has {part} items to evaluate")
    train, held = split.user_items("train"), split.user_items(part)
    tops = []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            scores = score_users(batch)
            tops.append(top_items(scores, exclusion_mask([train[u] for u in batch], split.n_items), k).cpu())
    return holdout_metrics(torch.cat(tops).numpy(), [held[u] for u in users], intervals)


def popularity_scores(split: HoldoutSplit) -> torch.Tensor:
    """[n_items] train interaction counts: the popularity baseline's score of every item."""
    counts = np.bincount(split.train["item_id"].to_numpy(np.int64), minlength=split.n_items)
    return torch.as_tensor(counts, dtype=torch.float32)
