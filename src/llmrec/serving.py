"""What every recommender of a saved run offers, whatever its method: `recommend`, `recommend_for_items`, `score`,
`score_csv`, and for files of any size `score_stream` / `recommend_many` / `recommend_stream`, in the dataset's own
ids, under the one rule of `llmrec.ids` for unknown ids and cold start.

A method's recommender subclasses `Serving` and works on known internal ids only:
    ids: RunIds                                   # raw <-> internal, known users
    item_popularity: np.ndarray                   # train interactions per internal item id (the fallback)
    item_titles: dict[int, str]
    _recommend(user, k, candidates) -> [(item, title, score)]      candidates: None or known item ids
    _score(users, items) -> np.ndarray                              known pairs only
    _recommend_for_items(items, k, candidates) (optional)           a new user from known items
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError, UnknownIdError
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
        fallback scored the row, when a fallback was asked for), in memory; `score_stream` for big files."""
        from llmrec.streaming import pair_rows

        path = Path(path)
        numbers, users, items = (list(c) for c in zip(*pair_rows(path)))
        scores, cold = self._score_pairs(users, items, cold_start, internal_ids,
                                         lambda j: f"{path}: row {numbers[j]}: ")
        out = pd.DataFrame({"user_id": users, "item_id": items, "score": scores})
        if cold_start is not None:
            out["cold_start"] = cold
        return out

    def score_stream(self, path: str | Path, out: str | Path | None = None, *, chunk: int = 4096,
                     cold_start: str | None = None, internal_ids: bool = False, progress: bool = False) -> int:
        """Score a pairs CSV of any size into `out` (CSV user_id,item_id,score[,cold_start]; None: stdout),
        `chunk` rows per model call, memory flat. A first pass checks every row and id (an error names the file
        and row before any scoring); `out` appears only when complete. Returns the number of rows."""
        from llmrec.streaming import chunks, csv_output, pair_rows, progress_bar

        path = Path(path)
        check_cold_start(cold_start)
        total = 0
        for rows in chunks(pair_rows(path), chunk):  # pass 1: the id rule, fast (no model)
            self.resolve_pairs([r[1] for r in rows], [r[2] for r in rows], cold_start, internal_ids,
                               lambda j: f"{path}: row {rows[j][0]}: ")
            total += len(rows)
        header = ["user_id", "item_id", "score"] + (["cold_start"] if cold_start is not None else [])
        with csv_output(out) as writer, progress_bar(total, progress, "pair") as bar:
            writer.writerow(header)
            for rows in chunks(pair_rows(path), chunk):
                users, items = [r[1] for r in rows], [r[2] for r in rows]
                scores, cold = self._score_pairs(users, items, cold_start, internal_ids,
                                                 lambda j: f"{path}: row {rows[j][0]}: ")
                flags = ([bool(c)] for c in cold) if cold_start is not None else itertools.repeat([])
                writer.writerows([u, i, float(s), *f] for u, i, s, f in zip(users, items, scores, flags))
                bar.update(len(rows))
        return total

    def recommend_many(self, users, k: int = 10, candidates=None, *, cold_start: str | None = None,
                       internal_ids: bool = False, **options) -> Iterator[tuple[object, list[tuple], bool]]:
        """(user, top-k, cold) for each user in turn (cold: the fallback ranked them); lazy, so an iterator of
        users of any length runs in flat memory."""
        for user in users:
            cold = self.ids.user(user, internal_ids) is None
            yield user, self.recommend(user, k, candidates, cold_start=cold_start, internal_ids=internal_ids,
                                       **options), cold

    def recommend_stream(self, path: str | Path, out: str | Path | None = None, k: int = 10, candidates=None, *,
                         cold_start: str | None = None, internal_ids: bool = False, progress: bool = False,
                         chunk: int = 4096) -> int:
        """Top-k for every user of a users file (one id a line, or a CSV with a user_id column) into `out` (CSV
        user_id,rank,item_id,title,score[,cold_start]; None: stdout). Like `score_stream`: a first pass checks
        every user, then users are ranked `chunk` at a time and `out` appears only when complete."""
        from llmrec.streaming import chunks, csv_output, progress_bar, user_rows

        path = Path(path)
        k = check_k(k)
        check_cold_start(cold_start)
        if candidates is not None:
            self.ids.items(candidates, "candidates", internal_ids)
        total = 0
        for n, user in user_rows(path):  # pass 1: the id rule, before any ranking
            if cold_start is None and self.ids.user(user, internal_ids) is None:
                raise UnknownIdError(f"{path}: row {n}: {self.ids.unknown_user(user)}")
            total += 1
        header = ["user_id", "rank", "item_id", "title", "score"] + (["cold_start"] if cold_start else [])
        with csv_output(out) as writer, progress_bar(total, progress, "user") as bar:
            writer.writerow(header)
            for rows in chunks(user_rows(path), chunk):
                done = self.recommend_many([u for _, u in rows], k, candidates, cold_start=cold_start,
                                           internal_ids=internal_ids)
                for user, top, cold in done:
                    flag = [cold] if cold_start else []
                    writer.writerows([user, r, item, title, score, *flag]
                                     for r, (item, title, score) in enumerate(top, 1))
                bar.update(len(rows))
        return total

    # -- the rule, once ------------------------------------------------------------------------------------------
    def resolve_pairs(self, users: list, items: list, cold_start, internal_ids: bool, where=lambda j: ""
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Internal ids of (user, item) pairs, 0 for an id the run does not know; an error for the first one
        unless `cold_start` (`where(j)` prefixes it: the file and row, the request)."""
        check_cold_start(cold_start)
        u = np.zeros(len(users), dtype=np.int64)
        i = np.zeros(len(items), dtype=np.int64)
        for j, (a, b) in enumerate(zip(users, items)):
            uj, ij = self.ids.user(a, internal_ids), self.ids.item(b, internal_ids)
            if cold_start is None and (uj is None or ij is None):
                exc = self.ids.unknown_user(a) if uj is None else self.ids.unknown_item(b)
                raise UnknownIdError(f"{where(j)}{exc}")
            u[j], i[j] = uj or 0, ij or 0
        return u, i

    def score_resolved(self, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of internal-id pairs from `resolve_pairs` (the model's for known pairs, the popularity fallback
        where an id is 0) and the fallback's mask. The HTTP server scores many requests' pairs in one call."""
        known = (u > 0) & (i > 0)
        out = np.zeros(len(u), dtype=np.float64)
        if known.any():
            out[known] = self._score(u[known], i[known])
        if (~known).any():  # the fallback: the item's share of train interactions (0 for an unknown item)
            counts = np.asarray(self.item_popularity, dtype=np.float64)
            out[~known] = counts[i[~known]] / max(counts[1:].sum(), 1.0)
            out[~known & (i == 0)] = 0.0
        return out, ~known

    def _score_pairs(self, users: list, items: list, cold_start, internal_ids: bool, where):
        return self.score_resolved(*self.resolve_pairs(users, items, cold_start, internal_ids, where))

    def _popular(self, k: int, candidates: np.ndarray | None) -> list[tuple[int, str, float]]:
        """The cold-start ranking: candidates (default: every item) by train interactions, ties by id."""
        pool = candidates if candidates is not None else np.arange(1, self.ids.n_items)
        counts = np.asarray(self.item_popularity, dtype=np.float64)[pool]
        order = np.argsort(-counts, kind="stable")[:k]
        return [(int(pool[j]), self.item_titles.get(int(pool[j]), ""), float(counts[j])) for j in order]

    def _out(self, top, internal_ids: bool) -> list[tuple]:
        return [(self.ids.item_out(int(i), internal_ids), title, float(s)) for i, title, s in top]
