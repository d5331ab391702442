"""The recommender of a finished click run (every click method's `load_recommender` builds one): "score this
pair" and "top-k for this user" with a collaborative scorer, an LLM scorer over the run's prompts, or both.

Histories are the user's positives in every part of the run's split, oldest first (the user's past as known now);
the users a click run knows are those with rows in its split. For LLM runs, `recommend` over the whole catalogue
first shortlists `pool` candidates (by the run's own collaborative model where it has one, else by popularity)
and re-ranks them with the LLM, each user's shared prompt prefix encoded once (YesScorer.rank).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.ids import RunIds
from llmrec.metrics import frame_metrics
from llmrec.serving import Serving


class ClickRecommender(Serving):
    """`collab(frame) -> scores`: a collaborative scorer (or None); `llm`: a YesScorer over `prompts` (or None).
    With both, the LLM scores and the collaborative model shortlists."""

    def __init__(self, run, split, collab=None, llm=None, prompts=None):
        if collab is None and llm is None:
            raise LlmrecError(f"{run.path}: a click recommender needs a collaborative or an LLM scorer")
        self.run = run
        self.cfg = run.config
        self.split = split
        self.method = self.cfg.method
        self.item_titles = split.titles()
        parts = pd.concat([split.train, split.valid, split.test], ignore_index=True).sort_values(
            "timestamp", kind="stable")
        pos = parts[parts["label"] == 1]
        self.history = {int(u): g["item_id"].to_numpy() for u, g in pos.groupby("user_id")}
        self.seen = {int(u): set(g["item_id"].tolist()) for u, g in parts.groupby("user_id")}
        counts = split.train["item_id"].value_counts()
        self.item_popularity = np.zeros(split.n_items)  # train rows per item: the shortlist without a model
        self.item_popularity[counts.index.to_numpy()] = counts.to_numpy()
        self.ids = RunIds.of_split(split, self.seen)
        self._collab, self._llm, self.prompts = collab, llm, prompts

    # -- scoring (known internal ids; llmrec.serving applies the id rule) ---------------------------------------
    def _frame(self, users, items, history_len: int = 50) -> pd.DataFrame:
        empty = np.zeros(0, dtype=np.int64)
        return pd.DataFrame({"user_id": users, "item_id": items, "label": np.zeros(len(users), dtype=np.int8),
                             "history": [self.history.get(int(u), empty)[-history_len:] for u in users]})

    def _collab_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._collab(self._frame(users, items))

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self._llm is None:
            return self._collab_scores(users, items)
        return self._llm.rank(self.prompts.for_frame(self._frame(users, items)))

    def _recommend(self, user: int, k: int, candidates, pool: int = 100) -> list[tuple[int, str, float]]:
        """Top-k among `candidates` (default: every item the user has not seen; LLM runs shortlist `pool`)."""
        if candidates is None:
            seen = self.seen.get(user, set())
            candidates = np.array([i for i in range(1, self.split.n_items) if i not in seen], dtype=np.int64)
            if self._llm is not None and len(candidates) > pool:
                candidates = self._shortlist(user, candidates, pool)
        if not len(candidates):
            raise LlmrecError(f"recommend: no candidate items left for user {user} (they have seen them all)")
        scores = self._score(np.full(len(candidates), user), candidates)
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:k]
        return [(int(candidates[j]), self.item_titles.get(int(candidates[j]), ""), float(scores[j])) for j in order]

    def _shortlist(self, user: int, candidates: np.ndarray, pool: int) -> np.ndarray:
        if self._collab is not None:
            pre = self._collab_scores(np.full(len(candidates), user), candidates)
        else:
            pre = self.item_popularity[candidates]
        return candidates[np.argsort(-pre, kind="stable")[:pool]]

    def score_frame(self, frame: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """Scores of the rows of a click frame (user_id, item_id, history), each with its own history, as in
        training and `evaluate` (`score` uses each user's whole known history instead)."""
        if self._llm is None:
            return self._collab(frame)
        return self._llm.rank(self.prompts.for_frame(frame), progress=progress)  # a shared prefix encoded once

    def evaluate(self, part: str = "test") -> dict:
        """AUC / UAUC (overall, warm, cold) with 95% user-bootstrap intervals of the run on a part of its split
        (eval.test_rows applies to test)."""
        from llmrec.methods.click import subset

        frame = self.split.part(part)
        if part == "test":
            frame = subset(frame, self.cfg.eval.test_rows, self.cfg.seed)
        return frame_metrics(frame, self.score_frame(frame, progress=True), intervals=True)
