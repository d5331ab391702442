"""`llmrec train multvae | lightgcn-bpr | popularity-holdout`: the baselines of CLLM4Rec on a per-user holdout split.

All are scored by the same full-ranking protocol as CLLM4Rec (`llmrec.data.holdout.evaluate_scores`: every item
scored, the user's train items excluded, Recall@20, Recall@40, NDCG@100 over every user with held-out items, the
test metrics with their 95% bootstrap intervals over users). `popularity-holdout` ranks the unseen items by train
interaction count (nothing to train). The run directory gets `model.safetensors` (the selected weights),
`model.json` (what rebuilds the model) and `history.json` (one row per epoch with the samples and training seconds
so far: a learning curve); `checkpoint.safetensors` is written while training, so a killed run resumes where it was.

    llmrec train multvae --config configs/multvae-ml100k.yaml
    llmrec recommend runs/multvae-ml-100k --user 5            # or --items 12,45,77 (Mult-VAE folds a new user in)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from llmrec.data.holdout import HoldoutSplit, evaluate_scores, exclusion_mask
from llmrec.metrics import METRIC_KS
from llmrec.errors import LlmrecError
from llmrec.ids import RunIds
from llmrec.serving import Serving
from llmrec.tracking import Tracker, scoped

POPULARITY = "popularity-holdout"
"""The popularity baseline's method name (its ranking rule is the one every model here is evaluated by)."""


def _config(cls, section: dict, where: str):
    from llmrec.config import from_dict

    return from_dict(cls, section, where)


def train(cfg, split: HoldoutSplit, run, tracker: Tracker | None = None) -> dict:
    """Train the method of `cfg` (multvae, lightgcn-bpr or popularity-holdout); metrics["test"] = test metrics of the
    best weights, metrics["curve"] = valid metrics against samples and training seconds. `tracker`
    (llmrec.tracking) follows training under multvae/ or bpr/."""
    if cfg.method == "multvae":
        from llmrec.collab.multvae import MultVAEConfig, train_multvae

        config = _config(MultVAEConfig, cfg.multvae, "multvae")
        result = train_multvae(split, config, checkpoint=run.file("checkpoint.safetensors"),
                               tracker=scoped(tracker, "multvae"))
        extra = {"stopped_early": result.stopped_early}
    elif cfg.method == "lightgcn-bpr":
        from llmrec.methods.cllm4rec.baselines import BPRConfig, train_lightgcn_bpr

        config = _config(BPRConfig, cfg.bpr, "bpr")
        result = train_lightgcn_bpr(split, config, checkpoint=run.file("checkpoint.safetensors"),
                                    tracker=scoped(tracker, "bpr"))
        extra = {}
    elif cfg.method == POPULARITY:
        from llmrec.methods.cllm4rec.baselines import popularity_baseline

        config, result, extra = None, popularity_baseline(split), {}
    else:
        raise LlmrecError(f"holdout_recipe: no baseline called {cfg.method!r} (multvae, lightgcn-bpr, {POPULARITY})")
    run.save_tensors("model.safetensors", result.model.state_dict())
    run.save_json("model.json", {"method": cfg.method, "config": dataclasses.asdict(config) if config else {}})
    run.save_json("history.json", result.history)
    run.log(f"{cfg.method}: best epoch {result.best_epoch}, valid {result.best_valid}, test {result.test}")
    return {"valid": result.best_valid, "test": result.test, "best_epoch": result.best_epoch,
            "epochs": len(result.history), "train_seconds": round(result.seconds, 1),
            "curve": learning_curve(result.history), "threads": torch.get_num_threads(), **extra}


def learning_curve(history: list[dict]) -> list[dict]:
    """One row per validated epoch: samples and training seconds so far, valid Recall@20, Recall@40, NDCG@100
    (the same columns as CLLM4Rec's metrics["curve"])."""
    keys = [f"{kind}@{k}" for kind, k in METRIC_KS]
    return [{"epoch": h["epoch"], "samples": h["samples"], "train_seconds": h["train_seconds"],
             **{k: h[f"valid_{k}"] for k in keys}} for h in history if f"valid_{keys[0]}" in h]


class HoldoutRecommender(Serving):
    """A trained Mult-VAE or LightGCN-BPR: full-catalogue top-k and evaluation on the run's split."""

    def __init__(self, method: str, model: torch.nn.Module, split: HoldoutSplit):
        self.method, self.model, self.split = method, model.eval(), split
        self.item_titles = split.titles()
        self.train_items = split.user_items("train")
        self._train_matrix = split.matrix("train")
        self._embeddings = None
        self.ids = RunIds.of_split(split, range(1, split.n_users))
        self.item_popularity = np.bincount(split.train["item_id"].to_numpy(np.int64), minlength=split.n_items)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """[len(users), n_items] scores of every item (train items not yet excluded)."""
        users = np.asarray(users, dtype=np.int64)
        with torch.no_grad():
            if self.method == "multvae":
                from llmrec.collab.multvae import dense_rows
                return self.model.scores(dense_rows(self._train_matrix, users))
            if self.method == POPULARITY:
                return self.model.scores(len(users))
            if self._embeddings is None:
                self._embeddings = self.model.propagate()
            u, i = self._embeddings
            return u[torch.as_tensor(users)] @ i.T

    def _top(self, scores: torch.Tensor, seen: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        exclude = exclusion_mask([seen], self.split.n_items)[0]
        if candidates is not None:
            allowed = torch.zeros_like(exclude)
            allowed[torch.as_tensor(candidates)] = True
            exclude |= ~allowed
        left = int((~exclude).sum())
        if not left:
            raise LlmrecError("recommend: no candidate item left once the known items are excluded")
        top = scores.float().masked_fill(exclude, float("-inf")).topk(min(k, left))
        return [(int(i), self.item_titles.get(int(i), ""), float(v)) for v, i in zip(top.values, top.indices)]

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, score) for a user of the split; their train items are excluded."""
        return self._top(self.score_users(np.array([user]))[0], self.train_items[user], k, candidates)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's ranking score of each (user, item) pair (train items are not excluded here)."""
        out = np.zeros(len(users))
        uniq, row = np.unique(users, return_inverse=True)
        scores = self.score_users(uniq).float().cpu().numpy()
        out[:] = scores[row, items]
        return out

    def _recommend_for_items(self, items: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        """Mult-VAE: top-k for a new user from the items they interacted with (folded into the encoder, no
        retraining); popularity: the most popular other items; LightGCN has no embedding for a user outside its
        graph."""
        if self.method == POPULARITY:
            return self._top(self.model.scores(1)[0], items, k, candidates)
        if self.method != "multvae":
            raise LlmrecError(f"{self.method} runs cannot recommend for a new user's items (no user outside the "
                              "training graph has an embedding); use --user, or a cllm4rec / multvae run")
        x = torch.zeros(1, self.split.n_items)
        x[0, torch.as_tensor(items)] = 1.0
        return self._top(self.model.scores(x)[0], items, k, candidates)

    def evaluate(self, part: str = "test") -> dict:
        """Full-ranking Recall@20, Recall@40, NDCG@100 on `part` (train items excluded), with their intervals."""
        return evaluate_scores(self.split, part, self.score_users, intervals=True)


def load_recommender(run, split: HoldoutSplit) -> HoldoutRecommender:
    """The selected model of a finished multvae / lightgcn-bpr run."""
    desc = run.load_json("model.json")
    method = desc["method"]
    if method == "multvae":
        from llmrec.collab.multvae import MultVAE, MultVAEConfig
        model = MultVAE(split.n_items, _config(MultVAEConfig, desc["config"], f"{run.path}/model.json"))
    elif method == "lightgcn-bpr":
        from llmrec.collab.lightgcn import LightGCN, LightGCNConfig
        c = desc["config"]
        model = LightGCN(split.n_users, split.n_items, LightGCNConfig(dim=c["dim"], layers=c["layers"],
                                                                      init_std=c["init_std"]))
    elif method == POPULARITY:
        from llmrec.methods.cllm4rec.baselines import Popularity
        model = Popularity(torch.zeros(split.n_items))
    else:
        raise LlmrecError(f"{run.path}/model.json: unknown method {method!r}")
    try:
        model.load_state_dict(run.load_tensors("model.safetensors"))
    except RuntimeError as exc:
        raise LlmrecError(f"{run.path}/model.safetensors: does not match {method} "
                          f"({str(exc).splitlines()[0]})") from None
    return HoldoutRecommender(method, model, split)
