"""What the recommenders of the sequence family (sasrec-rank, popularity-rank, lcrec) share: the users' known
past, titles, the popularity fallback for unknown users, candidate checks, and which test users are scored.

The known past of a user is everything the run's leave-one-out split holds for them, oldest first: the train
items (as many as the split kept), then the valid and the test item. `recommend` continues that sequence and
never returns one of its items (unless candidates are given explicitly).

Unknown users and items follow the one rule of `llmrec.ids` (an error, or the popularity fallback when asked for),
applied by `llmrec.serving.Serving`, which every recommender of the family subclasses.
"""
from __future__ import annotations

import numpy as np

from llmrec.collab.ranking import popularity
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.ids import RunIds


def eval_rows(n_users: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted rows of `split.users` in a seeded subset of k users (all when k is None or >= n_users)."""
    if k is None or k >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=k, replace=False))


def lcrec_eval_rows(n_users: int, test_users: int | None, valid_users: int | None, seed: int,
                    part: str) -> np.ndarray:
    """The users LC-Rec scores on `part`: valid draws with `seed`, test with `seed + 1`. sasrec-rank reports its
    `test` metrics on these same users, so a benchmark of both compares like with like."""
    if part == "valid":
        return eval_rows(n_users, valid_users, seed)
    if part == "test":
        return eval_rows(n_users, test_users, seed + 1)
    raise LlmrecError(f"part must be 'valid' or 'test', got {part!r}")


class SequenceUsers:
    """Per-user known past, titles and train popularity of a `SequenceSplit`."""

    def __init__(self, split: SequenceSplit):
        self.split = split
        users = split.users.reset_index(drop=True)
        self.row_of = {int(u): r for r, u in enumerate(users["user_id"].tolist())}
        self.past = []
        for row in users.itertuples(index=False):
            tail = [int(x) for x in (row.valid, row.test) if int(x) > 0]
            self.past.append(np.asarray(list(np.asarray(row.train, dtype=np.int64)) + tail, dtype=np.int64))
        self.titles = {int(i): str(t) for i, t in zip(split.items["item_id"], split.items["title"])}
        self.counts = popularity(split).astype(np.float64)  # train occurrences per item (the cold-start fallback)
        self.counts[0] = 0.0
        self.ids = RunIds.of_split(split, self.row_of)

    def history(self, user: int) -> np.ndarray | None:
        """The user's known past, oldest first; None for a user the split does not hold."""
        row = self.row_of.get(int(user))
        return None if row is None else self.past[row]

    def unseen(self, past: np.ndarray) -> np.ndarray:
        """Every item id not in `past` (the default candidates)."""
        seen = np.zeros(self.split.n_items, dtype=bool)
        seen[past] = True
        return np.flatnonzero(~seen[1:]) + 1

    def top(self, items: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, str, float]]:
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
        return [(int(items[j]), self.titles.get(int(items[j]), ""), float(scores[j])) for j in order]
