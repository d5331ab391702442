"""`llmrec train multvae`: Mult-VAE on the per-user holdout split (the model: `llmrec.collab.multvae`).

    llmrec train multvae --config configs/multvae-ml100k.yaml
    llmrec recommend runs/multvae-ml-100k --items 12,45,77     # a new user folded into the encoder
"""
from __future__ import annotations

import numpy as np
import torch

from llmrec.collab.multvae import MultVAE, MultVAEConfig, dense_rows, train_multvae
from llmrec.data.holdout import HoldoutSplit
from llmrec.methods.holdout import HoldoutRecommender, load_weights, save_result, saved_config
from llmrec.tracking import Tracker, scoped


def train(cfg, split: HoldoutSplit, run, tracker: Tracker | None = None) -> dict:
    """metrics["test"]: the best weights' test metrics; metrics["curve"]: valid metrics against samples and
    seconds; `tracker` (llmrec.tracking) follows training under multvae/."""
    config = cfg.multvae
    result = train_multvae(split, config, checkpoint=run.file("checkpoint.safetensors"),
                           tracker=scoped(tracker, "multvae"), seed=cfg.seed)
    return save_result(run, "multvae", config, result, stopped_early=result.stopped_early)


class MultVAERecommender(HoldoutRecommender):
    method = "multvae"

    def _user_scores(self, users: np.ndarray) -> torch.Tensor:
        return self.model.scores(dense_rows(self._train_matrix, users))

    def _recommend_for_items(self, items: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k for a new user from the items they interacted with, folded into the encoder (no retraining)."""
        x = torch.zeros(1, self.split.n_items)
        x[0, torch.as_tensor(items)] = 1.0
        with torch.no_grad():
            return self._top(self.model.scores(x)[0], items, k, candidates)


def load_recommender(run, split: HoldoutSplit) -> MultVAERecommender:
    model = MultVAE(split.n_items, saved_config(run, MultVAEConfig))
    return MultVAERecommender(load_weights(run, model, "multvae"), split)
