"""`popularity-rank`: every item scored by how often it occurs in the train sequences, the floor a sequence
recommender must clear. Nothing is learned beyond the counts.

Test metrics as sasrec-rank reports them (see `sasrec_rank/recipe.py`): `test` on LC-Rec's test users under the same
config, `test_all` on every user, both with 95% bootstrap intervals over users, seen items under the family's one
rule (`lcrec.exclude_seen`). Ties between equally popular items rank pessimistically (the target below them).
Run files: `popularity.json` (the counts).
"""
from __future__ import annotations

import numpy as np

from llmrec.collab.ranking import popularity, popularity_ranks
from llmrec.metrics import leave_one_out_metrics as ranking_metrics
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.methods.sasrec_rank.recipe import exclude_seen, lcrec_test_rows
from llmrec.methods.sequence import SequenceUsers
from llmrec.serving import Serving


def _metrics(split: SequenceSplit, part: str, rows, exclude: bool, intervals: bool = True) -> dict:
    return ranking_metrics(popularity_ranks(split, part, exclude, rows), intervals)


def train(cfg, split: SequenceSplit, run, tracker=None) -> dict:
    """Nothing is trained (`tracker` is accepted as every recipe's is, and logs only the test metrics)."""
    rule = exclude_seen(cfg)
    run.save_json("popularity.json", {"counts": popularity(split).tolist()})
    return {"test": _metrics(split, "test", lcrec_test_rows(cfg, split), rule),
            "test_all": _metrics(split, "test", None, rule), "valid": _metrics(split, "valid", None, rule, False),
            "exclude_seen": rule}


def load_recommender(run, split: SequenceSplit) -> "PopularityRecommender":
    return PopularityRecommender(run, split)


class PopularityRecommender(Serving):
    """The most popular train items the user has not had (or the best of the given candidates)."""

    def __init__(self, run, split: SequenceSplit):
        self.run, self.split, self.cfg = run, split, run.config
        self.users = SequenceUsers(split)
        self.counts = np.asarray(run.load_json("popularity.json")["counts"], dtype=np.float64)
        self.ids, self.item_popularity, self.item_titles = self.users.ids, self.counts, self.users.titles
        self.method = "popularity-rank"

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        cand = self.users.unseen(self.users.history(user)) if candidates is None else candidates
        return self.users.top(cand, self.counts[cand], k)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.counts[items]

    def evaluate(self, part: str = "test") -> dict:
        """'valid' (all users), 'test' (LC-Rec's test users, as in training) or 'test_all' (all users)."""
        rule = exclude_seen(self.cfg)
        if part == "valid":
            return _metrics(self.split, "valid", None, rule, False)
        if part == "test":
            return _metrics(self.split, "test", lcrec_test_rows(self.cfg, self.split), rule)
        if part == "test_all":
            return _metrics(self.split, "test", None, rule)
        raise LlmrecError(f"evaluate: part must be valid, test or test_all for popularity-rank, got {part!r}")
