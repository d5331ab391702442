"""`llmrec train popularity-holdout`: the user's unseen items ranked by train interaction count; nothing is
trained (`llmrec.methods.cllm4rec.baselines.popularity_baseline`)."""
from __future__ import annotations

import numpy as np
import torch

from llmrec.data.holdout import HoldoutSplit
from llmrec.methods.cllm4rec.baselines import Popularity, popularity_baseline
from llmrec.methods.holdout import HoldoutRecommender, load_weights, save_result


def train(cfg, split: HoldoutSplit, run, tracker=None) -> dict:
    return save_result(run, "popularity-holdout", None, popularity_baseline(split))


class PopularityHoldoutRecommender(HoldoutRecommender):
    method = "popularity-holdout"

    def _user_scores(self, users: np.ndarray) -> torch.Tensor:
        return self.model.scores(len(users))

    def _recommend_for_items(self, items: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        """The most popular items the new user has not had."""
        return self._top(self.model.scores(1)[0], items, k, candidates)


def load_recommender(run, split: HoldoutSplit) -> PopularityHoldoutRecommender:
    model = Popularity(torch.zeros(split.n_items))
    return PopularityHoldoutRecommender(load_weights(run, model, "popularity-holdout"), split)
