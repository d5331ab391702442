"""`llmrec train lightgcn-bpr`: LightGCN + BPR on the per-user holdout split (the loop:
`llmrec.methods.cllm4rec.baselines.train_lightgcn_bpr`, the model: `llmrec.collab.lightgcn`)."""
from __future__ import annotations

import numpy as np
import torch

from llmrec.collab.lightgcn import LightGCN, LightGCNConfig
from llmrec.data.holdout import HoldoutSplit
from llmrec.methods.cllm4rec.baselines import BPRConfig, train_lightgcn_bpr
from llmrec.methods.holdout import HoldoutRecommender, load_weights, save_result, saved_config
from llmrec.tracking import Tracker, scoped


def train(cfg, split: HoldoutSplit, run, tracker: Tracker | None = None) -> dict:
    """metrics["test"]: the best weights' test metrics; `tracker` follows training under bpr/."""
    config = cfg.bpr
    result = train_lightgcn_bpr(split, config, checkpoint=run.file("checkpoint.safetensors"),
                                tracker=scoped(tracker, "bpr"), seed=cfg.seed)
    return save_result(run, "lightgcn-bpr", config, result)


class LightGCNRecommender(HoldoutRecommender):
    method = "lightgcn-bpr"
    _embeddings = None

    def _user_scores(self, users: np.ndarray) -> torch.Tensor:
        if self._embeddings is None:  # propagate once; every user's scores read the same layer mean
            self._embeddings = self.model.propagate()
        u, i = self._embeddings
        return u[torch.as_tensor(users)] @ i.T


def load_recommender(run, split: HoldoutSplit) -> LightGCNRecommender:
    c = saved_config(run, BPRConfig)
    model = LightGCN(split.n_users, split.n_items, LightGCNConfig(dim=c.dim, layers=c.layers, init_std=c.init_std))
    return LightGCNRecommender(load_weights(run, model, "lightgcn-bpr"), split)
