"""What every recommender of a saved run offers, whatever its method: `recommend`, `recommend_for_items`, `score`
and `score_csv` in the dataset's own ids, under the one rule of `llmrec.ids` for unknown ids and cold start.

A method's recommender subclasses `Serving` and works on known internal ids only:
    ids: RunIds                                   # raw <-> internal, known users
    item_popularity: np.ndarray                   # train interactions per internal item id (the fallback)
    item_titles: dict[int, str]
    _recommend(user, k, candidates) -> [(item, title, score)]      candidates: None or known item ids
    _score(users, items) -> np.ndarray                              known pairs only
    _recommend_for_items(items, k, candidates) (optional)           a new user from known items
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.ids import RunIds, check_cold_start


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise LlmrecError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


class Serving:
    ids: RunIds
    item_popularity: np.ndarray
    item_titles: dict

    # -- public API ---------------------------------------------------------------------------------------------
    def recommend(self, user, k: int = 10, candidates=None, *, cold_start: str | None = None,
                  internal_ids: bool = False, **options) -> list[tuple]:
        """Top-k (item id, title, score) for `user` among `candidates` (default: every item they have not had).
        Ids are the dataset's own unless `internal_ids`; an unknown user is an error unless `cold_start`."""
        k = check_k(k)
        check_cold_start(cold_start)
        cand = None if candidates is None else self.ids.items(candidates, "candidates", internal_ids)
        u = self.ids.user(user, internal_ids)
        if u is None:
            if cold_start is None:
                raise self.ids.unknown_user(user)
            top = self._popular(k, cand)
        else:
            top = self._recommend(u, k, cand, **options)
        return self._out(top, internal_ids)

    def recommend_for_items(self, items, k: int = 10, candidates=None, *, internal_ids: bool = False,
                            **options) -> list[tuple]:
        """Top-k for a user the run has not seen, from the (known) items they interacted with."""
        if not hasattr(self, "_recommend_for_items"):
            raise LlmrecError(f"a {getattr(self, 'method', type(self).__name__)} run cannot recommend from a new "
                              "user's items (--items; cllm4rec, multvae and popularity-holdout runs can); give a user")
        k = check_k(k)
        known = self.ids.items(items, "items", internal_ids)
        cand = None if candidates is None else self.ids.items(candidates, "candidates", internal_ids)
        return self._out(self._recommend_for_items(known, k, cand, **options), internal_ids)

    def score(self, users, items, *, cold_start: str | None = None, internal_ids: bool = False) -> np.ndarray:
        """Scores of (user, item) pairs, higher = more likely liked (see `llmrec.ids` for unknown ids)."""
        users, items = list(np.asarray(users, dtype=object).ravel()), list(np.asarray(items, dtype=object).ravel())
        if len(users) != len(items):
            raise LlmrecError(f"score: {len(users)} users but {len(items)} items")
        return self._score_pairs(users, items, cold_start, internal_ids, lambda j: "score: ")[0]

    def score_csv(self, path: str | Path, *, cold_start: str | None = None, internal_ids: bool = False
                  ) -> pd.DataFrame:
        """(user_id, item_id) rows of a CSV with a `score` column added (and `cold_start`, True where the
        fallback scored the row, when a fallback was asked for). Every row must have the header's fields."""
        path = Path(path)
        header, rows, numbers = read_pairs(path)
        users, items = [r[header.index("user_id")] for r in rows], [r[header.index("item_id")] for r in rows]
        scores, cold = self._score_pairs(users, items, cold_start, internal_ids,
                                         lambda j: f"{path}: row {numbers[j]}: ")
        out = pd.DataFrame({"user_id": users, "item_id": items, "score": scores})
        if cold_start is not None:
            out["cold_start"] = cold
        return out

    # -- the rule, once ------------------------------------------------------------------------------------------
    def _score_pairs(self, users: list, items: list, cold_start, internal_ids: bool, where):
        check_cold_start(cold_start)
        u = np.zeros(len(users), dtype=np.int64)
        i = np.zeros(len(items), dtype=np.int64)
        for j, (a, b) in enumerate(zip(users, items)):
            uj, ij = self.ids.user(a, internal_ids), self.ids.item(b, internal_ids)
            if cold_start is None and (uj is None or ij is None):
                exc = self.ids.unknown_user(a) if uj is None else self.ids.unknown_item(b)
                raise LlmrecError(f"{where(j)}{exc}")
            u[j], i[j] = uj or 0, ij or 0
        known = (u > 0) & (i > 0)
        out = np.zeros(len(u), dtype=np.float64)
        if known.any():
            out[known] = self._score(u[known], i[known])
        if (~known).any():  # the fallback: the item's share of train interactions (0 for an unknown item)
            counts = np.asarray(self.item_popularity, dtype=np.float64)
            out[~known] = counts[i[~known]] / max(counts[1:].sum(), 1.0)
            out[~known & (i == 0)] = 0.0
        return out, ~known

    def _popular(self, k: int, candidates: np.ndarray | None) -> list[tuple[int, str, float]]:
        """The cold-start ranking: candidates (default: every item) by train interactions, ties by id."""
        pool = candidates if candidates is not None else np.arange(1, self.ids.n_items)
        counts = np.asarray(self.item_popularity, dtype=np.float64)[pool]
        order = np.argsort(-counts, kind="stable")[:k]
        return [(int(pool[j]), self.item_titles.get(int(pool[j]), ""), float(counts[j])) for j in order]

    def _out(self, top, internal_ids: bool) -> list[tuple]:
        return [(self.ids.item_out(int(i), internal_ids), title, float(s)) for i, title, s in top]


def read_pairs(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and their line numbers of a pairs CSV, every row with exactly the header's fields (pandas
    would take an extra field for an index column and shift the row silently)."""
    try:
        with open(path, newline="") as fh:
            lines = [r for r in csv.reader(fh)]
    except FileNotFoundError:
        raise LlmrecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LlmrecError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if not lines:
        raise LlmrecError(f"{path}: empty file (expected a header user_id,item_id)")
    header = [h.strip() for h in lines[0]]
    missing = [c for c in ("user_id", "item_id") if c not in header]
    if missing:
        raise LlmrecError(f"{path}: missing column(s) {', '.join(missing)} (expected user_id,item_id)")
    rows, numbers = [], []
    for n, row in enumerate(lines[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise LlmrecError(f"{path}: row {n}: {len(row)} fields but the header has {len(header)} "
                              f"({','.join(header)})")
        rows.append([c.strip() for c in row])
        numbers.append(n)
    if not rows:
        raise LlmrecError(f"{path}: no (user_id, item_id) rows")
    return header, rows, numbers
